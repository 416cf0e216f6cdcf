"""Firmware manifests and their Ed25519 signatures: the pure crypto of signed updates (§10.2).

A *manifest* names the hardware, firmware part, version, a monotonic security version, and the size
and SHA-256 of an image (ETSI EN 303 645 provision 5.3). It is encoded as canonical CBOR and signed
with Ed25519 over :data:`MANIFEST_DOMAIN` ‖ manifest bytes. Receivers verify the signature against
their trusted keys *before* parsing the manifest (PROTOCOL.md §10.2), hash the image as it streams
in, and refuse a lower security version than the one installed (anti-rollback, §10.4).

Private keys are never stored by this module: they are made with :func:`generate_signing_key` and
passed in by the caller. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from rayzig_core.errors import DecodeError, FirmwareIntegrityError, FirmwareSignatureError
from rayzig_core.models import FirmwarePart
from rayzig_core.protocol import codec

MANIFEST_DOMAIN = b"rayzig-firmware-manifest-v1\x00"
"""Domain-separation prefix: Ed25519 signs ``MANIFEST_DOMAIN + manifest bytes``."""

MAX_MANIFEST_BYTES = 2048
"""Largest encoded manifest accepted, so that FirmwareBegin fits in one protocol frame."""

MAX_IMAGE_SIZE = 64 * 1024 * 1024
"""Largest image a manifest may describe (64 MiB)."""

KEY_SIZE = 32
SIGNATURE_SIZE = 64
SHA256_SIZE = 32

HARDWARE_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
"""A hardware designation (PROTOCOL.md §10.2), in manifests and catalogues alike."""
VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
"""A firmware version string (PROTOCOL.md §10.1), in manifests and advisories alike."""
_VERSION_SPLIT_RE = re.compile(r"[.+_-]")


@dataclass(frozen=True, slots=True)
class FirmwareManifest:
    """What a signed image is: for which hardware and part, which version, and its hash."""

    hardware: str
    part: FirmwarePart
    version: str
    security_version: int
    """Monotonic anti-rollback counter: an image with a lower one than installed is refused."""
    size: int
    sha256: bytes
    release_notes: str
    security_fix: bool

    def to_bytes(self) -> bytes:
        """Encode as canonical CBOR (a fixed-order array); FirmwareIntegrityError if invalid."""
        _validate_manifest(self)
        data = codec.dumps(_MANIFEST_ENCODER(self))
        if len(data) > MAX_MANIFEST_BYTES:
            raise FirmwareIntegrityError(
                12,
                f"Firmware manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}; "
                "shorten the release notes.",
            )
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> FirmwareManifest:
        """Decode and validate manifest bytes; raises FirmwareIntegrityError if malformed.

        Only call this on bytes whose signature has been verified (see :func:`verify_manifest`).
        """
        if len(data) > MAX_MANIFEST_BYTES:
            raise FirmwareIntegrityError(
                12, f"Firmware manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}."
            )
        document: FirmwareManifest = decode_canonical(
            data, _MANIFEST_DECODER, _validate_manifest, FirmwareManifest.to_bytes, "manifest"
        )
        return document


_Document = TypeVar("_Document")


def decode_canonical(
    data: bytes,
    decoder: Callable[[Any], _Document],
    validate: Callable[[_Document], None],
    encode: Callable[[_Document], bytes],
    what: str,
) -> _Document:
    """Decode a signed firmware document strictly, else FirmwareIntegrityError (§10.2).

    It must be well formed, within its limits and canonically encoded; ``what`` names it.
    """
    try:
        document = decoder(codec.loads(data))
    except DecodeError as err:
        raise FirmwareIntegrityError(12, f"Firmware {what} is malformed: {err}.") from err
    validate(document)
    if encode(document) != data:
        raise FirmwareIntegrityError(12, f"Firmware {what} is not canonically encoded.")
    return document


_MANIFEST_ENCODER = codec.encoder_for(FirmwareManifest)
_MANIFEST_DECODER = codec.decoder_for(FirmwareManifest)


def _validate_manifest(manifest: FirmwareManifest) -> None:
    """Raise FirmwareIntegrityError naming the first field outside PROTOCOL.md §10.2's limits."""
    problem: str | None = None
    if not HARDWARE_RE.fullmatch(manifest.hardware):
        problem = "hardware must be 1-64 letters, digits, '.', '_' or '-'"
    elif not VERSION_RE.fullmatch(manifest.version):
        problem = "version must be 1-64 letters, digits, '.', '+', '_' or '-'"
    elif not 0 <= manifest.security_version < 2**32:
        problem = "security version must be between 0 and 2^32-1"
    elif not 0 < manifest.size <= MAX_IMAGE_SIZE:
        problem = f"image size must be between 1 and {MAX_IMAGE_SIZE} bytes"
    elif len(manifest.sha256) != SHA256_SIZE:
        problem = "SHA-256 must be 32 bytes"
    elif len(manifest.release_notes) > codec.MAX_TEXT:
        problem = f"release notes must be at most {codec.MAX_TEXT} characters"
    if problem is not None:
        raise FirmwareIntegrityError(12, f"Firmware manifest is invalid: {problem}.")


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for version strings: numeric parts compare as numbers ("1.10" > "1.9", §10.1)."""
    return tuple(
        (1, int(part), "") if part.isdigit() else (0, 0, part)
        for part in _VERSION_SPLIT_RE.split(version)
    )


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """Manifest bytes exactly as signed, with their Ed25519 signature."""

    manifest: bytes
    signature: bytes


def generate_signing_key() -> tuple[bytes, bytes]:
    """Return a fresh Ed25519 key pair as raw bytes: (private 32 bytes, public 32 bytes)."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private.private_bytes_raw(), public


def public_key_of(private_key: bytes) -> bytes:
    """Return the raw 32-byte Ed25519 public key of a raw private key."""
    return _private_key(private_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _private_key(private_key: bytes) -> Ed25519PrivateKey:
    if len(private_key) != KEY_SIZE:
        raise ValueError("an Ed25519 private key is 32 raw bytes")
    return Ed25519PrivateKey.from_private_bytes(private_key)


def sign_manifest(private_key: bytes, manifest: FirmwareManifest) -> SignedManifest:
    """Encode ``manifest`` and sign ``MANIFEST_DOMAIN + bytes`` with a raw Ed25519 private key."""
    data = manifest.to_bytes()
    signature = _private_key(private_key).sign(MANIFEST_DOMAIN + data)
    return SignedManifest(manifest=data, signature=signature)


def signature_verifies(
    domain: bytes, data: bytes, signature: bytes, trusted_keys: Sequence[bytes]
) -> bool:
    """Whether one of ``trusted_keys`` signed ``domain + data`` (Ed25519; nothing is parsed).

    Keys and signatures of the wrong length never verify. Shared by manifests and advisories,
    each with its own domain-separation prefix (PROTOCOL.md §10.2).
    """
    if len(signature) != SIGNATURE_SIZE:
        return False
    message = domain + data
    for key in trusted_keys:
        if len(key) != KEY_SIZE:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def verify_manifest(signed: SignedManifest, trusted_keys: Sequence[bytes]) -> FirmwareManifest:
    """Check the signature against the trusted keys, then parse the manifest (§10.2).

    The signature is verified before a single byte of the manifest is parsed. Raises
    FirmwareSignatureError if no trusted key verifies it, FirmwareIntegrityError if a correctly
    signed manifest is malformed.
    """
    if len(signed.manifest) <= MAX_MANIFEST_BYTES and signature_verifies(
        MANIFEST_DOMAIN, signed.manifest, signed.signature, trusted_keys
    ):
        return FirmwareManifest.from_bytes(signed.manifest)
    raise FirmwareSignatureError(
        11,
        "Firmware signature does not verify with any trusted key: the image is not from a "
        "trusted publisher or was modified.",
    )


def crc32(data: bytes) -> int:
    """CRC-32 (zlib/IEEE) of a chunk, as an unsigned 32-bit integer (PROTOCOL.md §10.3)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def build_manifest(
    *,
    hardware: str,
    part: FirmwarePart,
    version: str,
    security_version: int,
    image: bytes,
    release_notes: str = "",
    security_fix: bool = False,
) -> FirmwareManifest:
    """Describe ``image``: fills in its size and SHA-256."""
    manifest = FirmwareManifest(
        hardware=hardware,
        part=part,
        version=version,
        security_version=security_version,
        size=len(image),
        sha256=hashlib.sha256(image).digest(),
        release_notes=release_notes,
        security_fix=security_fix,
    )
    _validate_manifest(manifest)
    return manifest


def check_image(manifest: FirmwareManifest, image: bytes) -> None:
    """Raise FirmwareIntegrityError unless ``image`` has the manifest's size and SHA-256."""
    if len(image) != manifest.size:
        actual = "larger than that" if len(image) > manifest.size else f"only {len(image)} bytes"
        raise FirmwareIntegrityError(
            12,
            f"Firmware image {manifest.part.name.lower()} {manifest.version} should be "
            f"{manifest.size} bytes as its signed manifest says, but is {actual}: corrupted, "
            "truncated or tampered.",
        )
    if hashlib.sha256(image).digest() != manifest.sha256:
        raise FirmwareIntegrityError(
            12,
            f"Firmware image {manifest.part.name.lower()} {manifest.version} does not match the "
            "SHA-256 in its signed manifest: corrupted or tampered.",
        )
