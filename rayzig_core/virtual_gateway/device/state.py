"""What the gateway keeps across restarts (PROTOCOL.md §12), as the dataclasses that are stored.

The state file is ``{"format": STATE_FORMAT, ...GatewayState...}``, written through
:class:`rayzig_core.storage.JsonStore` (bytes as hex). :class:`UserAccount` and
:class:`ClientRecord` are both the gateway's live records and their stored form; replay-cache
entries are stored as ``[client key hex, request id, answer envelope hex, request fingerprint hex]``
in LRU order (§5.3; entries written before fingerprints existed have three items). Unknown user
names are stored only as keyed digests (§6.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from mashumaro.config import BaseConfig
from mashumaro.types import SerializationStrategy

from rayzig_core.errors import ProtocolError
from rayzig_core.models import UserLevel, UserLimitation
from rayzig_core.protocol import messages as m
from rayzig_core.storage import StoredValueError
from rayzig_core.virtual_gateway.credentials import PasswordVerifier, Throttle
from rayzig_core.virtual_gateway.device.check_budget import CheckRecord
from rayzig_core.virtual_gateway.firmware_store import FirmwareStoreState
from rayzig_core.virtual_gateway.site.site import SiteState

STATE_FORMAT = 1
"""Version of the gateway's state file."""
POLICY_VERSION = 1
"""Version of the password policy; passwords set under an older one are reported weak (§6.2)."""
KEY_BYTES = 32
"""Length of a Curve25519 key (the gateway's identity, a client's enrolled key)."""


@dataclass(slots=True)
class UserAccount:
    """A user as the gateway stores it: level, verifier, throttle (never the password)."""

    name: str
    level: UserLevel
    verifier: PasswordVerifier
    must_change: bool = False
    policy_version: int = POLICY_VERSION
    throttle: Throttle = field(default_factory=Throttle)
    limitation: UserLimitation | None = None
    """What a User account is limited to (§7.4); None (and in older state files): its level only."""

    class Config(BaseConfig):
        """Store no ``limitation`` key for an account without one: older files stay as they are."""

        omit_none = True


@dataclass(slots=True)
class ClientRecord:
    """An enrolled client key bound to a user (PROTOCOL.md §3.3)."""

    client_id: int = field(metadata={"alias": "id"})
    public_key: bytes = field(metadata={"alias": "key"})
    name: str
    user: str

    def __post_init__(self) -> None:
        """Refuse a key that is not a Curve25519 public key and an id below 1."""
        if self.client_id < 1 or len(self.public_key) != KEY_BYTES:
            raise StoredValueError("a client has an id from 1 and a 32-byte key")


NAME_DIGEST_BYTES = 16
"""Length of an unknown user name's keyed digest."""


@dataclass(slots=True)
class UnknownName:
    """The throttle of a user name without an account, under a keyed digest of the name (§6.3).

    The name itself is never stored: someone may have typed a password into the name field.
    """

    digest: bytes
    throttle: Throttle

    def __post_init__(self) -> None:
        """Refuse a digest of the wrong length."""
        if len(self.digest) != NAME_DIGEST_BYTES:
            raise StoredValueError(f"an unknown name's digest has {NAME_DIGEST_BYTES} bytes")


ReplayEntry: TypeAlias = tuple[bytes, int, m.Response, bytes | None]
"""One remembered answer: (client key, request id, the response sent, the request's fingerprint;
None for an entry stored before fingerprints existed)."""


class _ReplayEntries(SerializationStrategy):
    """Replay-cache entries as ``[key hex, request id, answer envelope hex, fingerprint hex]``.

    An entry without a fingerprint keeps the three items older files have (§5.3).
    """

    def serialize(self, value: tuple[ReplayEntry, ...]) -> list[list[object]]:
        return [
            [key.hex(), request_id, m.encode(request_id, response).hex()]
            + ([] if fingerprint is None else [fingerprint.hex()])
            for key, request_id, response, fingerprint in value
        ]

    def deserialize(self, value: object) -> tuple[ReplayEntry, ...]:
        if not isinstance(value, list):
            raise StoredValueError("a replay cache is an array of entries")
        entries: list[ReplayEntry] = []
        for index, raw in enumerate(value):
            try:
                key_hex, request_id, encoded, *rest = raw
                key = bytes.fromhex(key_hex)
                envelope = m.decode(bytes.fromhex(encoded))
                fingerprint = bytes.fromhex(rest[0]) if rest else None
            except (TypeError, ValueError, ProtocolError):
                raise StoredValueError(f"replay cache entry {index} is damaged") from None
            if type(request_id) is not int or len(rest) > 1:
                raise StoredValueError(f"replay cache entry {index} is damaged")
            if isinstance(envelope.message, m.Response):
                entries.append((key, request_id, envelope.message, fingerprint))
        return tuple(entries)


_REPLAY = {"serialization_strategy": _ReplayEntries()}


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayState:
    """Everything the gateway must keep across restarts (PROTOCOL.md §12).

    Built by :meth:`VirtualGateway.state` from the live objects (the accounts are shared, not
    copied: encode it at once) and turned back into a gateway by :meth:`VirtualGateway.restore`.
    """

    serial: str
    static_private: bytes
    scrypt_n: int
    users: tuple[UserAccount, ...]
    recovery_verifier: PasswordVerifier
    recovery_throttle: Throttle
    default_verifier: PasswordVerifier
    default_folded_verifier: PasswordVerifier | None = None
    """None in states saved before it existed (see VirtualGateway)."""
    clients: tuple[ClientRecord, ...]
    next_client_id: int = 1
    """1 in states saved before the counter existed: ids go on after the highest one."""
    replay_cache: tuple[ReplayEntry, ...] = field(metadata=_REPLAY)
    pre_auth_replay_cache: tuple[ReplayEntry, ...] = field(default=(), metadata=_REPLAY)
    unknown_names: tuple[UnknownName, ...] = ()
    """Throttles of user names without an account, least recently used first (§6.3)."""
    password_checks: tuple[CheckRecord, ...] = ()
    """The gateway's password checks of the last minute, oldest first (§6.5)."""
    firmware: FirmwareStoreState
    site: SiteState

    def __post_init__(self) -> None:
        """Refuse an identity key of the wrong length and a scrypt cost that is not 2^k."""
        if len(self.static_private) != KEY_BYTES:
            raise StoredValueError("static_private must be a 32-byte key")
        if self.scrypt_n < 2 or self.scrypt_n & (self.scrypt_n - 1):
            raise StoredValueError("scrypt_n must be a power of 2")
