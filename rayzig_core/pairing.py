"""What first contact and pairing give a client: the gateway's identity, then its own keys.

First contact (PROTOCOL.md §3.4) reveals the gateway's static key, to compare by fingerprint with
its label or display; pairing (§3.3) enrols a fresh client key for a gateway user and pins the
gateway key. :class:`ClientCredentials` is all a paired client keeps: keys, never the password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rayzig_core.models import UserLevel
from rayzig_core.protocol.noise import public_key_of
from rayzig_core.protocol.session import fingerprint
from rayzig_core.storage import JsonCodec

KEY_SIZE = 32
"""Length of a Curve25519 key, the client's private one and the gateway's public one (bytes)."""


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """What first contact reveals: the gateway's static key to pin, and who it says it is."""

    public_key: bytes
    serial: str
    model: str
    factory_state: bool
    protocol_version: int

    @property
    def fingerprint(self) -> str:
        """Fingerprint to compare with the gateway's label or display (PROTOCOL.md §3.4)."""
        return fingerprint(self.public_key)


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What a paired client keeps: its own private key and the pinned gateway key; no password.

    Stored as ``{"client_private_key": hex, "gateway_public_key": hex, "serial": str,
    "user": str, "level": int, "client_id": int}`` (Home Assistant's config entries and the
    CLI's key file); the caller must store it as a secret.
    """

    client_private_key: bytes = field(repr=False)
    gateway_public_key: bytes
    serial: str
    user: str
    level: UserLevel
    client_id: int

    @property
    def gateway_fingerprint(self) -> str:
        """Fingerprint of the pinned gateway key."""
        return fingerprint(self.gateway_public_key)

    @property
    def client_fingerprint(self) -> str:
        """Fingerprint of this client's key, as the gateway lists it."""
        return fingerprint(public_key_of(self.client_private_key))

    def to_dict(self) -> dict[str, str | int]:
        """Serialise for storage (the caller must store it as a secret)."""
        encoded: dict[str, str | int] = _CODEC.encode(self)
        return encoded

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClientCredentials:
        """Restore from :meth:`to_dict`; ValueError if damaged (the message holds no secret)."""
        try:
            credentials = _CODEC.decode(data)
            keys = (credentials.client_private_key, credentials.gateway_public_key)
            if any(len(key) != KEY_SIZE for key in keys):
                raise ValueError(f"keys must be {KEY_SIZE} bytes")
        except ValueError as err:
            raise ValueError(f"stored Rayzig credentials are damaged ({err})") from err
        return credentials


_CODEC = JsonCodec(ClientCredentials)
