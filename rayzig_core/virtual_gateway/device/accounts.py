"""The gateway's accounts: users with their verifiers and throttles, and enrolled client keys.

Users (PROTOCOL.md §6, §7.3) and clients (§3.3) as the gateway keeps them, the throttles of
unknown user names (§6.3) and the factory account's reset (§12). No request handling here: the
handlers decide, this module records.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from rayzig_core.models import UserLevel
from rayzig_core.virtual_gateway.credentials import PasswordVerifier, Throttle
from rayzig_core.virtual_gateway.device.state import ClientRecord, UserAccount

FACTORY_USER = "installer"
"""The System-level account a gateway ships with (PROTOCOL.md §6.1)."""
MAX_USERS = 30
"""Most accounts a gateway holds, so that UserList always fits one frame (§7.3)."""
UNKNOWN_USER_THROTTLES = 1024
"""Unknown user names whose failed attempts are remembered (in memory, least recently used
forgotten first), so that they are throttled exactly like real accounts (§6.3)."""


class Accounts:
    """Users, enrolled clients and the verifiers of the factory secrets, with their throttles."""

    def __init__(
        self,
        *,
        users: dict[str, UserAccount],
        clients: dict[int, ClientRecord],
        recovery_verifier: PasswordVerifier,
        recovery_throttle: Throttle,
        default_verifier: PasswordVerifier,
        default_folded_verifier: PasswordVerifier | None,
        next_client_id: int = 1,
    ) -> None:
        self.users = users
        self.clients = clients
        self.recovery_verifier = recovery_verifier
        self.recovery_throttle = recovery_throttle
        self.default_verifier = default_verifier
        # Verifier of the case-folded default password, to refuse it as a new password in any
        # case (§6.2). Generated label passwords are lower case, so for a state saved before it
        # existed the plain default verifier is the folded one.
        self.default_folded_verifier = default_folded_verifier or default_verifier
        # Client ids are never reused (§3.3): a stale RevokeClient can never hit a newer key.
        self.next_client_id = max(next_client_id, max(clients, default=0) + 1)
        self.unknown_throttles: OrderedDict[str, Throttle] = OrderedDict()
        self.unknown_throttle_limit = UNKNOWN_USER_THROTTLES

    @property
    def factory_state(self) -> bool:
        """Whether the factory password is still in force (PROTOCOL.md §6.1)."""
        account = self.users.get(FACTORY_USER)
        return account is not None and account.must_change

    def client_by_key(self, key: bytes) -> ClientRecord | None:
        """The enrolled client with this static key, if any (compared in constant time)."""
        for client in self.clients.values():
            if secrets.compare_digest(client.public_key, key):
                return client
        return None

    def enrol(self, key: bytes, client_name: str, user: str) -> ClientRecord:
        """Bind ``key`` to ``user``: a key enrolled before is re-bound, a new one gets a new id."""
        existing = self.client_by_key(key)
        if existing is not None:
            existing.user, existing.name = user, client_name
            return existing
        record = ClientRecord(self.next_client_id, key, client_name, user)
        self.next_client_id += 1
        self.clients[record.client_id] = record
        return record

    def throttle_of(self, user: str) -> Throttle:
        """The throttle of an account, or of a name without one (a bounded LRU, §6.3)."""
        account = self.users.get(user)
        if account is not None:
            return account.throttle
        throttle = self.unknown_throttles.get(user)
        if throttle is None:
            throttle = self.unknown_throttles[user] = Throttle()
            while len(self.unknown_throttles) > self.unknown_throttle_limit:
                self.unknown_throttles.popitem(last=False)
        else:
            self.unknown_throttles.move_to_end(user)
        return throttle

    def remove_user(self, name: str) -> None:
        """Delete an account and every client key enrolled for it."""
        del self.users[name]
        for client_id in [c.client_id for c in self.clients.values() if c.user == name]:
            del self.clients[client_id]

    def reset_to_factory(self) -> tuple[tuple[str, ...], int]:
        """Erase every account but the factory one, every client key and every throttle (§12).

        The factory account goes back to the label's default password, to be changed. Returns the
        accounts deleted, in name order, and how many keys were erased.
        """
        removed = tuple(sorted(name for name in self.users if name != FACTORY_USER))
        clients = len(self.clients)
        self.users = {
            FACTORY_USER: UserAccount(
                FACTORY_USER, UserLevel.SYSTEM, self.default_verifier, must_change=True
            )
        }
        self.clients = {}
        self.recovery_throttle = Throttle()
        self.unknown_throttles.clear()
        return removed, clients
