"""The gateway's accounts: users with their verifiers and throttles, and enrolled client keys.

Users (PROTOCOL.md §6, §7.3) and clients (§3.3) as the gateway keeps them, the throttles of
unknown user names (§6.3) and the factory account's reset (§12). No request handling here: the
handlers decide, this module records.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict

from rayzig_core.models import UserLevel
from rayzig_core.virtual_gateway.credentials import PasswordVerifier, Throttle
from rayzig_core.virtual_gateway.device.state import (
    NAME_DIGEST_BYTES,
    ClientRecord,
    UnknownName,
    UserAccount,
)

FACTORY_USER = "installer"
"""The System-level account a gateway ships with (PROTOCOL.md §6.1)."""
MAX_USERS = 30
"""Most accounts a gateway holds, so that UserList always fits one frame (§7.3)."""
UNKNOWN_USER_THROTTLES = 1024
"""Unknown user names whose failed attempts are remembered and persisted (least recently used
forgotten first), so that they are throttled exactly like real accounts (§6.3)."""


def name_key(static_private: bytes) -> bytes:
    """The key of the unknown names' digests, derived from the gateway's identity key (§6.3)."""
    return hashlib.blake2b(b"rayzig unknown user names", key=static_private).digest()


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
        name_key: bytes,
        unknown_names: tuple[UnknownName, ...] = (),
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
        self._name_key = name_key
        self.unknown_throttles: OrderedDict[bytes, Throttle] = OrderedDict(
            (entry.digest, entry.throttle) for entry in unknown_names
        )
        """Throttles of names without an account, by :meth:`name_digest`, LRU first."""
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

    def name_digest(self, user: str) -> bytes:
        """The keyed digest under which a name without an account is throttled (§6.3)."""
        return hashlib.blake2b(
            user.encode("utf-8", "surrogatepass"), key=self._name_key, digest_size=NAME_DIGEST_BYTES
        ).digest()

    def throttle_of(self, user: str) -> Throttle:
        """The throttle of an account, or of a name without one (a bounded LRU, §6.3)."""
        account = self.users.get(user)
        if account is not None:
            return account.throttle
        digest = self.name_digest(user)
        throttle = self.unknown_throttles.get(digest)
        if throttle is None:
            throttle = self.unknown_throttles[digest] = Throttle()
            while len(self.unknown_throttles) > self.unknown_throttle_limit:
                self.unknown_throttles.popitem(last=False)
        else:
            self.unknown_throttles.move_to_end(digest)
        return throttle

    def unknown_names(self) -> tuple[UnknownName, ...]:
        """The unknown names' throttles as stored, least recently used first (§12)."""
        return tuple(UnknownName(digest, t) for digest, t in self.unknown_throttles.items())

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
