"""Signed software updates: manifests, Ed25519 signatures, catalogues and the update-server client.

A *manifest* names the hardware, firmware part, version, a monotonic security version, and the size
and SHA-256 of an image (ETSI EN 303 645 provision 5.3). It is encoded as canonical CBOR and signed
with Ed25519 over :data:`MANIFEST_DOMAIN` ‖ manifest bytes. Receivers verify the signature against
their trusted keys *before* parsing the manifest, hash the image as it streams in, and refuse a
lower security version than the one installed (anti-rollback).

A *catalogue* is a directory holding ``catalogue.json`` and the images it lists::

    {"format": 1, "hardware": "RZ-GW1",
     "entries": [{"part": "rayzig", "manifest": "<base64>", "signature": "<base64>",
                  "image": "rayzig-1.3.0.bin"}]}

:func:`publish_image` adds an image to such a directory; :class:`UpdateServerClient` fetches and
verifies catalogues and images over HTTP. Private keys are never part of this module: they are
generated with :func:`generate_signing_key` and passed in by the caller.

Importing this module does not import asyncio or aiohttp; :class:`UpdateServerClient` imports
aiohttp when it is used.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from rayzig_core.errors import (
    ConnectionFailedError,
    DecodeError,
    FirmwareIntegrityError,
    FirmwareSignatureError,
)
from rayzig_core.models import FirmwarePart
from rayzig_core.protocol import codec

if TYPE_CHECKING:
    import aiohttp

MANIFEST_DOMAIN = b"rayzig-firmware-manifest-v1\x00"
"""Domain-separation prefix: Ed25519 signs ``MANIFEST_DOMAIN + manifest bytes``."""

CHUNK_SIZE = 2048
"""Image bytes per FirmwareChunk: fits one protocol frame together with the message overhead."""

MAX_MANIFEST_BYTES = 2048
"""Largest encoded manifest accepted, so that FirmwareBegin fits in one protocol frame."""

MAX_IMAGE_SIZE = 64 * 1024 * 1024
"""Largest image a manifest may describe (64 MiB)."""

MAX_CATALOGUE_BYTES = 4 * 1024 * 1024
"""Largest catalogue.json accepted from an update server."""

CATALOGUE_FILE = "catalogue.json"
CATALOGUE_FORMAT = 1

KEY_SIZE = 32
SIGNATURE_SIZE = 64
SHA256_SIZE = 32

PART_NAMES: dict[FirmwarePart, str] = {
    FirmwarePart.RAYZIG: "Rayzig",
    FirmwarePart.RAXMEGA: "Raxmega",
    FirmwarePart.RAYDAL: "Raydal",
    FirmwarePart.WBXMEGA: "WBxMega",
    FirmwarePart.TFT: "TFT",
}
"""How each firmware part is written for people."""

_INSTALL_DISRUPTION: dict[FirmwarePart, str] = {
    FirmwarePart.RAYZIG: (
        "Installing restarts the Rayzig radio: it rejoins the mesh, and until it has, modules "
        "cannot be switched or read. Outputs keep their state."
    ),
    FirmwarePart.TFT: (
        "Installing restarts the TFT display: it stays blank until the new firmware runs. "
        "Outputs keep their state."
    ),
}


def install_disruption(part: FirmwarePart) -> str:
    """What installing ``part`` interrupts, in English, told before installing (5.3-12)."""
    return _INSTALL_DISRUPTION.get(
        part,
        f"Installing restarts the {PART_NAMES[part]} part of the gateway: the gateway may not "
        "answer until it is back. Outputs keep their state.",
    )


_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
_HARDWARE_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
_IMAGE_NAME_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}")
_VERSION_SPLIT_RE = re.compile(r"[.+_-]")


# --- manifests -------------------------------------------------------------------------------


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
        try:
            manifest: FirmwareManifest = _MANIFEST_DECODER(codec.loads(data))
        except DecodeError as err:
            raise FirmwareIntegrityError(12, f"Firmware manifest is malformed: {err}.") from err
        _validate_manifest(manifest)
        if manifest.to_bytes() != data:
            raise FirmwareIntegrityError(12, "Firmware manifest is not canonically encoded.")
        return manifest


_MANIFEST_ENCODER = codec.encoder_for(FirmwareManifest)
_MANIFEST_DECODER = codec.decoder_for(FirmwareManifest)


def _validate_manifest(manifest: FirmwareManifest) -> None:
    problem: str | None = None
    if not _HARDWARE_RE.fullmatch(manifest.hardware):
        problem = "hardware must be 1-64 letters, digits, '.', '_' or '-'"
    elif not _VERSION_RE.fullmatch(manifest.version):
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
    """Sort key for version strings: numeric parts compare as numbers ("1.10" > "1.9")."""
    return tuple(
        (1, int(part), "") if part.isdigit() else (0, 0, part)
        for part in _VERSION_SPLIT_RE.split(version)
    )


# --- signatures ------------------------------------------------------------------------------


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


def verify_manifest(signed: SignedManifest, trusted_keys: Sequence[bytes]) -> FirmwareManifest:
    """Check the signature against the trusted keys, then parse the manifest.

    The signature is verified before a single byte of the manifest is parsed. Raises
    FirmwareSignatureError if no trusted key verifies it, FirmwareIntegrityError if a correctly
    signed manifest is malformed.
    """
    if len(signed.signature) == SIGNATURE_SIZE and len(signed.manifest) <= MAX_MANIFEST_BYTES:
        message = MANIFEST_DOMAIN + signed.manifest
        for key in trusted_keys:
            if len(key) != KEY_SIZE:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(key).verify(signed.signature, message)
            except (InvalidSignature, ValueError):
                continue
            return FirmwareManifest.from_bytes(signed.manifest)
    raise FirmwareSignatureError(
        11,
        "Firmware signature does not verify with any trusted key: the image is not from a "
        "trusted publisher or was modified.",
    )


def crc32(data: bytes) -> int:
    """CRC-32 (zlib/IEEE) of a chunk, as an unsigned 32-bit integer."""
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


# --- catalogues ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    """One verified catalogue entry: the signed manifest, its parsed form and the image's name."""

    signed: SignedManifest
    manifest: FirmwareManifest
    image_name: str


def _bad_catalogue(message: str) -> FirmwareIntegrityError:
    return FirmwareIntegrityError(12, f"Firmware catalogue is invalid: {message}.")


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise _bad_catalogue(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _bad_catalogue(f"{what} is not valid base64") from err


def _part_from_name(value: object, what: str) -> FirmwarePart:
    if isinstance(value, str):
        for part in FirmwarePart:
            if part.name.lower() == value:
                return part
    names = ", ".join(p.name.lower() for p in FirmwarePart)
    raise _bad_catalogue(f"{what} has unknown part {value!r} (expected one of {names})")


def _load_catalogue_json(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_CATALOGUE_BYTES:
        raise _bad_catalogue(f"it is larger than {MAX_CATALOGUE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise _bad_catalogue("it is not a JSON document") from err
    if not isinstance(document, dict):
        raise _bad_catalogue("it must be a JSON object")
    if document.get("format") != CATALOGUE_FORMAT:
        raise _bad_catalogue(
            f"unsupported format {document.get('format')!r} (expected {CATALOGUE_FORMAT})"
        )
    hardware = document.get("hardware")
    if not isinstance(hardware, str) or not _HARDWARE_RE.fullmatch(hardware):
        raise _bad_catalogue("'hardware' must be a hardware name")
    if not isinstance(document.get("entries"), list):
        raise _bad_catalogue("'entries' must be a list")
    return document


def parse_catalogue(data: bytes, trusted_keys: Sequence[bytes]) -> list[CatalogueEntry]:
    """Parse ``catalogue.json`` bytes, verifying every entry's signature and consistency.

    Raises FirmwareSignatureError for an entry no trusted key signed, FirmwareIntegrityError for
    anything malformed; both messages name the offending entry.
    """
    document = _load_catalogue_json(data)
    hardware: str = document["hardware"]
    entries: list[CatalogueEntry] = []
    seen_images: set[str] = set()
    for index, raw in enumerate(document["entries"]):
        what = f"entry {index}"
        if not isinstance(raw, dict):
            raise _bad_catalogue(f"{what} must be a JSON object")
        part = _part_from_name(raw.get("part"), what)
        what = f"entry {index} ({part.name.lower()})"
        image_name = raw.get("image")
        if not isinstance(image_name, str) or not _IMAGE_NAME_RE.fullmatch(image_name):
            raise _bad_catalogue(f"{what} has an invalid image file name {image_name!r}")
        what = f"entry {index} ({part.name.lower()}, {image_name})"
        if image_name in seen_images:
            raise _bad_catalogue(f"{what} repeats an image listed by an earlier entry")
        seen_images.add(image_name)
        signed = SignedManifest(
            manifest=_b64decode(raw.get("manifest"), f"{what} manifest"),
            signature=_b64decode(raw.get("signature"), f"{what} signature"),
        )
        try:
            manifest = verify_manifest(signed, trusted_keys)
        except FirmwareSignatureError as err:
            raise FirmwareSignatureError(
                11,
                f"Firmware catalogue {what}: signature does not verify with any trusted key.",
            ) from err
        except FirmwareIntegrityError as err:
            raise _bad_catalogue(f"{what}: {err}") from err
        if manifest.part is not part:
            raise _bad_catalogue(
                f"{what} is listed as {part.name.lower()} but its manifest is for "
                f"{manifest.part.name.lower()}"
            )
        if manifest.hardware != hardware:
            raise _bad_catalogue(
                f"{what} is for hardware {manifest.hardware!r}, the catalogue for {hardware!r}"
            )
        entries.append(CatalogueEntry(signed=signed, manifest=manifest, image_name=image_name))
    return entries


def image_file_name(part: FirmwarePart, version: str) -> str:
    """File name of an image in a catalogue directory, e.g. ``rayzig-1.3.0.bin``."""
    return f"{part.name.lower()}-{version}.bin"


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        tmp_path.chmod(0o644)
        tmp_path.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def publish_image(
    directory: Path,
    private_key: bytes,
    *,
    hardware: str,
    part: FirmwarePart,
    version: str,
    security_version: int,
    image: bytes,
    release_notes: str = "",
    security_fix: bool = False,
) -> CatalogueEntry:
    """Sign ``image``, write it into ``directory`` and (re)write ``catalogue.json`` atomically.

    The image is written before the catalogue that lists it. An existing entry for the same part
    and version is replaced; other entries are kept verbatim. Raises FirmwareIntegrityError if the
    manifest is invalid or the existing catalogue is for other hardware or malformed.
    """
    manifest = build_manifest(
        hardware=hardware,
        part=part,
        version=version,
        security_version=security_version,
        image=image,
        release_notes=release_notes,
        security_fix=security_fix,
    )
    signed = sign_manifest(private_key, manifest)
    name = image_file_name(part, version)
    catalogue_path = directory / CATALOGUE_FILE
    if catalogue_path.exists():
        document = _load_catalogue_json(catalogue_path.read_bytes())
        if document["hardware"] != hardware:
            raise _bad_catalogue(
                f"{catalogue_path} is for hardware {document['hardware']!r}, not {hardware!r}"
            )
        kept = [
            raw
            for raw in document["entries"]
            if not (isinstance(raw, dict) and raw.get("image") == name)
        ]
    else:
        kept = []
    kept.append(
        {
            "part": part.name.lower(),
            "manifest": base64.b64encode(signed.manifest).decode("ascii"),
            "signature": base64.b64encode(signed.signature).decode("ascii"),
            "image": name,
        }
    )
    document = {"format": CATALOGUE_FORMAT, "hardware": hardware, "entries": kept}
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomically(directory / name, image)
    _write_atomically(catalogue_path, json.dumps(document, indent=2).encode("utf-8") + b"\n")
    return CatalogueEntry(signed=signed, manifest=manifest, image_name=name)


# --- update-server client --------------------------------------------------------------------


class UpdateServerClient:
    """Fetches and verifies catalogues and images from an update server over HTTP(S).

    The aiohttp session is injected (Home Assistant passes its shared one) and never closed here.
    """

    CATALOGUE_TIMEOUT = 30.0
    IMAGE_TIMEOUT = 300.0

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, trusted_keys: Sequence[bytes]
    ) -> None:
        """Use ``session`` to talk to the server at ``base_url``, trusting ``trusted_keys``."""
        if not trusted_keys:
            raise ValueError("at least one trusted firmware signing key is required")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._trusted_keys = tuple(trusted_keys)

    @property
    def base_url(self) -> str:
        """The update server's base URL (without a trailing slash)."""
        return self._base_url

    async def _get(self, url: str, limit: int, time_limit: float) -> bytes:
        """GET ``url`` and return at most ``limit`` + 1 bytes of its body."""
        import aiohttp  # noqa: PLC0415 - keep aiohttp (and asyncio) out of module import

        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=time_limit)
            ) as response:
                if response.status != 200:
                    raise ConnectionFailedError(
                        f"Update server answered HTTP {response.status} for {url}; check the "
                        "update server URL and that the server publishes this file."
                    )
                body = bytearray()
                async for block in response.content.iter_chunked(65536):
                    body += block
                    if len(body) > limit:
                        break
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ConnectionFailedError(
                f"Could not fetch {url} from the update server ({type(err).__name__}); check "
                "the update server URL, that the server is running and the network connection."
            ) from err

    async def fetch_catalogue(self) -> list[CatalogueEntry]:
        """Download ``catalogue.json`` and return its verified entries."""
        url = f"{self._base_url}/{CATALOGUE_FILE}"
        data = await self._get(url, MAX_CATALOGUE_BYTES, self.CATALOGUE_TIMEOUT)
        return parse_catalogue(data, self._trusted_keys)

    async def fetch_image(self, entry: CatalogueEntry) -> bytes:
        """Download an entry's image; FirmwareIntegrityError on a size or SHA-256 mismatch."""
        from urllib.parse import quote  # noqa: PLC0415

        if not _IMAGE_NAME_RE.fullmatch(entry.image_name):
            raise _bad_catalogue(f"invalid image file name {entry.image_name!r}")
        url = f"{self._base_url}/images/{quote(entry.image_name, safe='')}"
        image = await self._get(url, entry.manifest.size, self.IMAGE_TIMEOUT)
        check_image(entry.manifest, image)
        return image

    async def latest_for(self, part: FirmwarePart) -> CatalogueEntry | None:
        """Newest entry for ``part``: highest security version, then highest version."""
        candidates = [e for e in await self.fetch_catalogue() if e.manifest.part is part]
        if not candidates:
            return None
        return max(
            candidates,
            key=lambda e: (e.manifest.security_version, version_key(e.manifest.version)),
        )


__all__ = [
    "CATALOGUE_FILE",
    "CHUNK_SIZE",
    "MANIFEST_DOMAIN",
    "CatalogueEntry",
    "FirmwareManifest",
    "SignedManifest",
    "UpdateServerClient",
    "build_manifest",
    "check_image",
    "crc32",
    "generate_signing_key",
    "parse_catalogue",
    "public_key_of",
    "publish_image",
    "sign_manifest",
    "verify_manifest",
    "version_key",
]
