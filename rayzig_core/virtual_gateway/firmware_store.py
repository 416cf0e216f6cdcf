"""Gateway side of signed software updates: verify, receive in resumable chunks, commit (§10).

The gateway verifies every image itself, whatever the client claims: FirmwareBegin's manifest must
carry a signature from a trusted key (checked before the manifest is parsed), name this gateway's
hardware and a part it has, and not lower that part's security version (anti-rollback; an equal one
is allowed, e.g. to reinstall). Chunks arrive in order with a CRC-32 each and are hashed as they
arrive; FirmwareCommit applies the image only if its size and SHA-256 match the signed manifest,
and only then is the installed version (and security version) raised.

:meth:`FirmwareStore.state` keeps a partial image so an install resumes after a restart. This
module is pure: no I/O and no asyncio; the gateway serialises calls.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from mashumaro.types import SerializationStrategy

from rayzig_core.errors import (
    FirmwareError,
    FirmwareIntegrityError,
    FirmwareRollbackError,
    FirmwareSignatureError,
)
from rayzig_core.firmware import (
    KEY_SIZE,
    FirmwareManifest,
    SignedManifest,
    verify_manifest,
)
from rayzig_core.firmware import (
    crc32 as _crc32,
)
from rayzig_core.models import FirmwarePart, FirmwareVersion
from rayzig_core.storage import StoredValueError

_LOGGER = logging.getLogger(__name__)

STORE_FORMAT = 1
"""Version of the store's part of the gateway state file."""
FIRMWARE_STATE = 14
"""Error code for requests that do not fit the install state (PROTOCOL.md §9)."""


def _part_name(part: FirmwarePart) -> str:
    return part.name.lower()


class _PartName(SerializationStrategy):
    """A firmware part stored as its lower-case name ("rayzig", "tft")."""

    def serialize(self, value: FirmwarePart) -> str:
        return _part_name(value)

    def deserialize(self, value: object) -> FirmwarePart:
        for part in FirmwarePart:
            if _part_name(part) == value:
                return part
        raise StoredValueError("unknown firmware part")


class _Base64(SerializationStrategy):
    """Bytes stored as standard base64 text, as partial images always were."""

    def serialize(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    def deserialize(self, value: object) -> bytes:
        if not isinstance(value, str):
            raise StoredValueError("expected base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise StoredValueError("not valid base64") from None


_PART = {"serialization_strategy": _PartName()}
_BASE64 = {"serialization_strategy": _Base64()}


@dataclass(frozen=True, slots=True)
class InstalledPart:
    """The firmware installed in one part, as stored."""

    part: FirmwarePart = field(metadata=_PART)
    version: str
    security_version: int

    def __post_init__(self) -> None:
        """Refuse a negative security version."""
        if self.security_version < 0:
            raise StoredValueError("security_version must not be negative")


@dataclass(frozen=True, slots=True)
class PartialImage:
    """An install in progress, as stored so that it resumes after a restart (§10)."""

    part: FirmwarePart = field(metadata=_PART)
    manifest: bytes = field(metadata=_BASE64)
    signature: bytes = field(metadata=_BASE64)
    data: bytes = field(metadata=_BASE64)
    last_chunk_start: int | None = None

    def __post_init__(self) -> None:
        """Refuse a last chunk that does not start inside the image held."""
        if self.last_chunk_start is not None and not 0 <= self.last_chunk_start < len(self.data):
            raise StoredValueError("last_chunk_start must be an offset into the partial image")


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareStoreState:
    """Everything a :class:`FirmwareStore` keeps across restarts (PROTOCOL.md §12)."""

    store_format: int = field(default=STORE_FORMAT, metadata={"alias": "format"})
    hardware: str
    trusted_keys: tuple[bytes, ...]
    installed: tuple[InstalledPart, ...]
    in_progress: tuple[PartialImage, ...] = ()

    def __post_init__(self) -> None:
        """Refuse another format, no or malformed trusted keys, and a part installed twice."""
        if self.store_format != STORE_FORMAT:
            raise StoredValueError(f"unsupported firmware store format, expected {STORE_FORMAT}")
        if not self.trusted_keys or any(len(key) != KEY_SIZE for key in self.trusted_keys):
            raise StoredValueError("trusted keys are one or more 32-byte Ed25519 public keys")
        if len({item.part for item in self.installed}) != len(self.installed):
            raise StoredValueError("a firmware part is installed twice")


class _Install:
    """One image being received: its verified manifest and the bytes held so far."""

    def __init__(self, signed: SignedManifest, manifest: FirmwareManifest) -> None:
        self.signed = signed
        self.manifest = manifest
        self.data = bytearray()
        self.hasher = hashlib.sha256()
        self.last_chunk_start: int | None = None

    def append(self, offset: int, data: bytes) -> None:
        self.data += data
        self.hasher.update(data)
        self.last_chunk_start = offset


class FirmwareStore:
    """Installed firmware versions of a gateway and the installs in progress, one per part."""

    def __init__(
        self,
        *,
        hardware: str,
        trusted_keys: Sequence[bytes],
        installed: Mapping[FirmwarePart, FirmwareVersion],
    ) -> None:
        """Create a store for ``hardware`` trusting ``trusted_keys`` (raw Ed25519 public keys)."""
        if not trusted_keys:
            raise ValueError("at least one trusted firmware signing key is required")
        if any(len(key) != KEY_SIZE for key in trusted_keys):
            raise ValueError("trusted firmware signing keys are 32-byte raw Ed25519 public keys")
        for part, version in installed.items():
            if version.part is not part:
                raise ValueError(
                    f"installed version for {part.name} names part {version.part.name}"
                )
        self._hardware = hardware
        self._trusted_keys = tuple(bytes(key) for key in trusted_keys)
        self._installed: dict[FirmwarePart, FirmwareVersion] = dict(installed)
        self._installs: dict[FirmwarePart, _Install] = {}

    @property
    def hardware(self) -> str:
        """Hardware name images must be built for."""
        return self._hardware

    @property
    def trusted_keys(self) -> tuple[bytes, ...]:
        """Raw Ed25519 public keys whose signatures are accepted."""
        return self._trusted_keys

    def versions(self) -> tuple[FirmwareVersion, ...]:
        """Installed firmware of every part, in part order."""
        return tuple(self._installed[part] for part in sorted(self._installed))

    def progress(self, part: FirmwarePart) -> tuple[FirmwarePart, int, int] | None:
        """``(part, offset, size)`` of the install of ``part`` in progress, or None."""
        install = self._installs.get(part)
        if install is None:
            return None
        return part, len(install.data), install.manifest.size

    # --- protocol operations -------------------------------------------------------------------

    def _check_applicable(self, manifest: FirmwareManifest) -> None:
        """Raise unless ``manifest`` is for this hardware, an installed part, and no rollback."""
        name = _part_name(manifest.part)
        if manifest.hardware != self._hardware:
            raise FirmwareIntegrityError(
                12,
                f"Firmware {name} {manifest.version} is for hardware {manifest.hardware!r}; "
                f"this gateway is {self._hardware!r}.",
            )
        current = self._installed.get(manifest.part)
        if current is None:
            raise FirmwareIntegrityError(12, f"This gateway has no {name} firmware part to update.")
        if manifest.security_version < current.security_version:
            raise FirmwareRollbackError(
                13,
                f"Firmware {name} {manifest.version} has security version "
                f"{manifest.security_version}, lower than the installed {current.version} "
                f"(security version {current.security_version}): downgrade refused.",
            )

    def _install_for(self, part: FirmwarePart) -> _Install:
        install = self._installs.get(part)
        if install is None:
            raise FirmwareError(
                FIRMWARE_STATE,
                f"No {_part_name(part)} firmware install is in progress; send FirmwareBegin first.",
            )
        return install

    def begin(self, signed: SignedManifest) -> tuple[FirmwarePart, int, int]:
        """Start or resume installing a signed image; returns ``(part, offset, size)``.

        The signature is verified before anything else. Beginning with the manifest already in
        progress resumes it at the current offset; a different manifest for the same part discards
        the partial image and starts again at 0.
        """
        manifest = verify_manifest(signed, self._trusted_keys)
        self._check_applicable(manifest)
        part = manifest.part
        install = self._installs.get(part)
        if install is None or install.signed.manifest != signed.manifest:
            install = _Install(signed, manifest)
            self._installs[part] = install
        return part, len(install.data), manifest.size

    def chunk(
        self, part: FirmwarePart, offset: int, data: bytes, crc32: int
    ) -> tuple[FirmwarePart, int, int]:
        """Accept the next chunk of the image of ``part``; returns ``(part, offset, size)``.

        ``offset`` must be the number of bytes held; repeating the previous chunk (e.g. after a
        lost acknowledgement) is acknowledged without change.
        """
        install = self._install_for(part)
        name = _part_name(part)
        held = len(install.data)
        size = install.manifest.size
        if _crc32(data) != crc32:
            raise FirmwareIntegrityError(
                12, f"Firmware {name} chunk CRC mismatch at offset {offset}; resend the chunk."
            )
        if not data:
            raise FirmwareIntegrityError(12, f"Firmware {name} chunk at offset {offset} is empty.")
        if offset == held:
            if offset + len(data) > size:
                raise FirmwareIntegrityError(
                    12,
                    f"Firmware {name} chunk at offset {offset} of {len(data)} bytes goes beyond "
                    f"the image size {size} in the signed manifest.",
                )
            install.append(offset, data)
            return part, len(install.data), size
        if (
            offset == install.last_chunk_start
            and offset + len(data) == held
            and install.data[offset:] == data
        ):
            return part, held, size
        raise FirmwareError(
            FIRMWARE_STATE,
            f"Firmware {name} chunk at offset {offset} is out of order: the gateway holds {held} "
            f"of {size} bytes; resume from offset {held}.",
        )

    def commit(self, part: FirmwarePart) -> FirmwareVersion:
        """Verify the complete image and apply it; returns the new installed version.

        On any failure the running firmware and its security version are left untouched. A
        SHA-256 mismatch discards the received image (the install must start again); an
        incomplete image is kept so the transfer can resume.
        """
        install = self._install_for(part)
        manifest = install.manifest
        name = _part_name(part)
        held = len(install.data)
        if held != manifest.size:
            raise FirmwareIntegrityError(
                12,
                f"Firmware {name} {manifest.version} is incomplete: {held} of {manifest.size} "
                f"bytes received; resume from offset {held}.",
            )
        if install.hasher.digest() != manifest.sha256:
            del self._installs[part]
            raise FirmwareIntegrityError(
                12,
                f"Firmware {name} {manifest.version} does not match the SHA-256 in its signed "
                "manifest (corrupted or tampered); it was discarded and the running firmware is "
                "unchanged. Start the install again.",
            )
        try:
            self._check_applicable(manifest)
        except FirmwareError:
            del self._installs[part]
            raise
        version = FirmwareVersion(
            part=part, version=manifest.version, security_version=manifest.security_version
        )
        self._installed[part] = version
        del self._installs[part]
        return version

    def abort(self, part: FirmwarePart) -> None:
        """Discard the install of ``part`` in progress, if any."""
        self._installs.pop(part, None)

    # --- persistence (PROTOCOL.md §12) ----------------------------------------------------------

    def state(self) -> FirmwareStoreState:
        """Trusted keys, installed firmware and partial images: what survives a restart."""
        return FirmwareStoreState(
            hardware=self._hardware,
            trusted_keys=self._trusted_keys,
            installed=tuple(
                InstalledPart(v.part, v.version, v.security_version) for v in self.versions()
            ),
            in_progress=tuple(
                PartialImage(
                    part=part,
                    manifest=install.signed.manifest,
                    signature=install.signed.signature,
                    data=bytes(install.data),
                    last_chunk_start=install.last_chunk_start,
                )
                for part, install in sorted(self._installs.items())
            ),
        )

    @classmethod
    def restore(cls, state: FirmwareStoreState) -> FirmwareStore:
        """The store :meth:`state` described.

        A saved partial image is verified again (signature, hardware, anti-rollback, length) and
        dropped with a warning if it no longer qualifies, e.g. after the trusted keys changed; its
        install then starts again.
        """
        store = cls(
            hardware=state.hardware,
            trusted_keys=state.trusted_keys,
            installed={
                item.part: FirmwareVersion(item.part, item.version, item.security_version)
                for item in state.installed
            },
        )
        for partial in state.in_progress:
            signed = SignedManifest(manifest=partial.manifest, signature=partial.signature)
            try:
                part, _, size = store.begin(signed)
            except (FirmwareSignatureError, FirmwareIntegrityError, FirmwareRollbackError) as err:
                _LOGGER.warning("Dropping saved partial firmware image: %s", err)
                continue
            if len(partial.data) > size:
                _LOGGER.warning("Dropping saved partial firmware image: longer than its manifest")
                store.abort(part)
                continue
            install = store._installs[part]
            install.append(0, partial.data)
            install.last_chunk_start = partial.last_chunk_start if partial.data else None
        return store

    def with_trusted_keys(self, trusted_keys: Sequence[bytes]) -> FirmwareStore:
        """A copy that trusts ``trusted_keys`` instead; partial images are verified again."""
        return FirmwareStore.restore(replace(self.state(), trusted_keys=tuple(trusted_keys)))
