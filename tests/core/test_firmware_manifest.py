"""Firmware manifests and their Ed25519 signatures (PROTOCOL.md §10.2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rayzig_core.errors import FirmwareIntegrityError, FirmwareSignatureError
from rayzig_core.firmware import (
    MANIFEST_DOMAIN,
    FirmwareManifest,
    SignedManifest,
    crc32,
    generate_signing_key,
    public_key_of,
    sign_manifest,
    verify_manifest,
    version_key,
)
from tests.core.firmware_helpers import manifest_for


def test_sign_verify_round_trip(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    manifest = manifest_for(image)
    signed = sign_manifest(private, manifest)
    assert len(signed.signature) == 64
    assert verify_manifest(signed, [public]) == manifest
    assert FirmwareManifest.from_bytes(signed.manifest) == manifest
    assert public_key_of(private) == public


def test_any_trusted_key_verifies(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    other = generate_signing_key()[1]
    signed = sign_manifest(private, manifest_for(image))
    assert verify_manifest(signed, [other, b"short", public]).version == "1.3.0"


@pytest.mark.parametrize("position", [0, 5, 20, -33, -1])
def test_tampered_manifest_byte_is_rejected(
    keys: tuple[bytes, bytes], image: bytes, position: int
) -> None:
    private, public = keys
    signed = sign_manifest(private, manifest_for(image))
    data = bytearray(signed.manifest)
    data[position] ^= 0x01
    with pytest.raises(FirmwareSignatureError) as info:
        verify_manifest(SignedManifest(bytes(data), signed.signature), [public])
    assert info.value.code == 11


def test_tampered_signature_is_rejected(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    signed = sign_manifest(private, manifest_for(image))
    signature = bytearray(signed.signature)
    signature[10] ^= 0x80
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(signed.manifest, bytes(signature)), [public])
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(signed.manifest, signed.signature[:-1]), [public])


def test_untrusted_key_is_rejected(keys: tuple[bytes, bytes], image: bytes) -> None:
    _, public = keys
    rogue_private, _ = generate_signing_key()
    signed = sign_manifest(rogue_private, manifest_for(image))
    with pytest.raises(FirmwareSignatureError, match="trusted"):
        verify_manifest(signed, [public])
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(signed, [])


def test_signature_is_checked_before_parsing(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    garbage = b"\xff\x00not cbor at all"
    # Unsigned garbage: a signature error, never a parse error.
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(garbage, bytes(64)), [public])
    # Correctly signed but malformed: an integrity error.
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(MANIFEST_DOMAIN + garbage)
    with pytest.raises(FirmwareIntegrityError, match="malformed"):
        verify_manifest(SignedManifest(garbage, signature), [public])


def test_signature_is_domain_separated(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    data = manifest_for(image).to_bytes()
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(data)
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(data, signature), [public])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sha256": b"\x00" * 31}, "SHA-256"),
        ({"size": 0}, "size"),
        ({"security_version": -1}, "security version"),
        ({"version": "1.0 beta"}, "version"),
        ({"hardware": ""}, "hardware"),
        ({"release_notes": "x" * 1025}, "release notes"),
    ],
)
def test_invalid_manifest_cannot_be_signed(
    keys: tuple[bytes, bytes], image: bytes, changes: dict[str, object], match: str
) -> None:
    with pytest.raises(FirmwareIntegrityError, match=match):
        sign_manifest(keys[0], manifest_for(image, **changes))


def test_version_key_and_crc() -> None:
    assert version_key("1.10.0") > version_key("1.9.3")
    assert version_key("2.0") > version_key("1.99")
    assert crc32(b"123456789") == 0xCBF43926


def test_firmware_store_does_not_import_asyncio() -> None:
    code = (
        "import sys, rayzig_core.virtual_gateway.firmware_store, rayzig_core.firmware;"
        "assert 'asyncio' not in sys.modules and 'aiohttp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
