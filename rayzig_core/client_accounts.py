"""Requests about the gateway's accounts, their limitations and enrolled clients (PROTOCOL.md §7).

A part of :class:`~rayzig_core.client.RayzigClient`, kept apart from its session, reconnection
and retry machinery: every method here is one or two plain requests through ``_call``.
"""

from __future__ import annotations

import contextlib
from typing import TypeVar

from rayzig_core.errors import RayzigError
from rayzig_core.models import EnrolledClient, GatewayInfo, GatewayUser, UserLevel, UserLimitation
from rayzig_core.protocol import messages as m

_R = TypeVar("_R", bound=m.Response)


class AccountRequests:
    """Account, limitation and client-key requests; the client supplies ``_call`` and ``info``."""

    info: GatewayInfo | None

    async def _call(self, request: m.Request, expected: type[_R]) -> _R:
        raise NotImplementedError  # pragma: no cover - RayzigClient implements it

    async def get_info(self) -> GatewayInfo:
        """Gateway identity, firmware and this client's user and level."""
        raise NotImplementedError  # pragma: no cover - RayzigClient implements it

    async def list_users(self) -> tuple[GatewayUser, ...]:
        """Gateway users (Administrator and above)."""
        return (await self._call(m.ListUsers(), m.UserList)).users

    async def add_user(self, name: str, level: UserLevel, password: str) -> None:
        """Create a user; the password must pass the policy (PasswordRejectedError)."""
        await self._call(m.AddUser(name, level, password), m.Ok)

    async def delete_user(self, name: str) -> None:
        """Delete a user; its enrolled clients lose access at once.

        Deleting this client's own account (User, Administrator or System) needs no permission
        (PROTOCOL.md §7.3, revision 2); the gateway then ends this session too.
        """
        await self._call(m.DeleteUser(name), m.Ok)

    async def list_clients(self) -> tuple[EnrolledClient, ...]:
        """Every enrolled client key, in client-id order (paged, PROTOCOL.md §5.2)."""
        clients: list[EnrolledClient] = []
        while True:
            page = await self._call(m.ListClients(len(clients)), m.ClientList)
            clients.extend(page.clients)
            if len(clients) >= page.total or not page.clients:
                return tuple(clients)

    # --- user limitations (PROTOCOL.md §7.4) -----------------------------------------------

    async def set_user_limitation(self, name: str, limitation: UserLimitation | None) -> None:
        """Limit a User account to modules and outputs or to reading; None lifts the limitation.

        Administrator and above. The user's open sessions end at once, so that its clients
        reconnect and see only what the limitation covers (their keys stay paired).
        """
        await self._call(m.SetUserLimitation(name, limitation), m.Ok)

    async def get_user_limitation(self, name: str | None = None) -> UserLimitation | None:
        """A user's limitation (None: limited by its level only); without a name, this client's.

        Any user may read its own; another user's needs an Administrator or System user.
        """
        if name is None:
            name = self.info.user if self.info is not None else (await self.get_info()).user
        return (await self._call(m.GetUserLimitation(name), m.UserLimitationResponse)).limitation

    async def add_limited_user(self, name: str, password: str, limitation: UserLimitation) -> None:
        """Create a User account and limit it (AddUser, then SetUserLimitation).

        If the limitation is refused (an unknown module, say), the new account is deleted again
        and the refusal raised, so that no unlimited account is left behind; should that deletion
        fail too (the link is lost), the account exists without the limitation: check it with
        :meth:`get_user_limitation`.
        """
        name = name.strip()  # as the gateway stores it (PROTOCOL.md §7.3)
        await self.add_user(name, UserLevel.USER, password)
        try:
            await self.set_user_limitation(name, limitation)
        except RayzigError:
            with contextlib.suppress(RayzigError):
                await self.delete_user(name)
            raise
