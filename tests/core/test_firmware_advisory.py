"""Firmware security advisories and their Ed25519 signatures (PROTOCOL.md §10.2)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rayzig_core.errors import FirmwareIntegrityError, FirmwareSignatureError
from rayzig_core.firmware import (
    ADVISORY_DOMAIN,
    MANIFEST_DOMAIN,
    AdvisorySeverity,
    FirmwareAdvisory,
    SignedAdvisory,
    SignedManifest,
    VersionRange,
    affecting,
    generate_signing_key,
    parse_version_range,
    sign_advisory,
    sign_manifest,
    verify_advisory,
    verify_manifest,
)
from rayzig_core.models import FirmwarePart, FirmwareVersion
from tests.core.firmware_helpers import advisory_for, manifest_for


def rayzig(version: str) -> FirmwareVersion:
    return FirmwareVersion(FirmwarePart.RAYZIG, version, 3)


def test_sign_verify_round_trip(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    advisory = advisory_for()
    signed = sign_advisory(private, advisory)
    assert len(signed.signature) == 64
    assert verify_advisory(signed, [generate_signing_key()[1], b"short", public]) == advisory
    assert FirmwareAdvisory.from_bytes(signed.advisory) == advisory


@pytest.mark.parametrize("position", [0, 3, 20, -10, -1])
def test_tampered_advisory_byte_is_refused(keys: tuple[bytes, bytes], position: int) -> None:
    private, public = keys
    signed = sign_advisory(private, advisory_for())
    data = bytearray(signed.advisory)
    data[position] ^= 0x01
    with pytest.raises(FirmwareSignatureError, match="advisory signature") as info:
        verify_advisory(SignedAdvisory(bytes(data), signed.signature), [public])
    assert info.value.code == 11


def test_untrusted_key_and_bad_signatures_are_refused(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    signed = sign_advisory(private, advisory_for())
    with pytest.raises(FirmwareSignatureError):
        verify_advisory(signed, [generate_signing_key()[1]])
    with pytest.raises(FirmwareSignatureError):
        verify_advisory(SignedAdvisory(signed.advisory, signed.signature[:-1]), [public])
    with pytest.raises(FirmwareSignatureError):
        verify_advisory(signed, [])
    with pytest.raises(ValueError, match="32 raw bytes"):
        sign_advisory(private[:31], advisory_for())


def test_signature_is_checked_before_parsing(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    garbage = b"\xff\x00not cbor at all"
    with pytest.raises(FirmwareSignatureError):
        verify_advisory(SignedAdvisory(garbage, bytes(64)), [public])
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(ADVISORY_DOMAIN + garbage)
    with pytest.raises(FirmwareIntegrityError, match="advisory is malformed"):
        verify_advisory(SignedAdvisory(garbage, signature), [public])
    oversized = b"\x00" * 5000
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(ADVISORY_DOMAIN + oversized)
    with pytest.raises(FirmwareSignatureError):
        verify_advisory(SignedAdvisory(oversized, signature), [public])


def test_advisory_and_manifest_signatures_do_not_stand_in_for_each_other(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    """Each kind has its own domain prefix: one signature never verifies as the other."""
    private, public = keys
    advisory = sign_advisory(private, advisory_for())
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(advisory.advisory, advisory.signature), [public])
    manifest = sign_manifest(private, manifest_for(image))
    with pytest.raises(FirmwareSignatureError):
        verify_advisory(SignedAdvisory(manifest.manifest, manifest.signature), [public])
    bare = Ed25519PrivateKey.from_private_bytes(private).sign(advisory.advisory)
    with pytest.raises(FirmwareSignatureError):
        verify_advisory(SignedAdvisory(advisory.advisory, bare), [public])
    assert ADVISORY_DOMAIN != MANIFEST_DOMAIN


def test_non_canonical_encoding_is_refused(keys: tuple[bytes, bytes]) -> None:
    """A signed advisory with an extra (ignored-looking) field is still refused."""
    private, public = keys
    data = bytearray(advisory_for().to_bytes())
    assert data[0] == 0x88  # an array of 8 fields
    data[0] = 0x89
    data += b"\xf6"
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(ADVISORY_DOMAIN + bytes(data))
    with pytest.raises(FirmwareIntegrityError):
        verify_advisory(SignedAdvisory(bytes(data), signature), [public])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"identifier": "rzsa-2026-1"}, "identifier"),
        ({"hardware": "RZ GW1"}, "hardware"),
        ({"affected": ()}, "1-32 affected version ranges"),
        ({"affected": (VersionRange("1.0", "1 0"),)}, "affected versions"),
        ({"affected": (VersionRange("2.0", "1.9"),)}, "runs backwards"),
        ({"fixed_in": ""}, "fixed-in version must"),
        ({"fixed_in": "2.4.0"}, "fixed-in version 2.4.0 is among the affected"),
        ({"summary": ""}, "summary"),
        ({"summary": "two\nlines"}, "summary"),
        ({"summary": "x" * 501}, "summary"),
        ({"url": "javascript:alert(1)"}, "link"),
        ({"url": "https://example.com/a b"}, "link"),
        ({"url": "https://example.com/" + "a" * 600}, "link"),
    ],
)
def test_invalid_advisories_are_refused(changes: dict[str, object], match: str) -> None:
    advisory = replace(advisory_for(), **changes)  # type: ignore[arg-type]
    with pytest.raises(FirmwareIntegrityError, match=match) as info:
        advisory.to_bytes()
    assert info.value.code == 12


def test_version_ranges_follow_the_version_order() -> None:
    """1.10 > 1.9 (§10.1); a range includes both ends; an open start includes everything below."""
    assert parse_version_range("2.4.1") == VersionRange("2.4.1", "2.4.1")
    assert parse_version_range(" 1.9..1.10 ") == VersionRange("1.9", "1.10")
    assert parse_version_range("..2.4.1") == VersionRange(None, "2.4.1")
    assert "1.9.5" in parse_version_range("1.9..1.10")
    assert "1.10" in parse_version_range("1.9..1.10")
    assert "1.11" not in parse_version_range("1.9..1.10")
    assert "0.1" in parse_version_range("..2.4.1")
    assert 2 not in parse_version_range("..2.4.1")
    assert [str(parse_version_range(t)) for t in ("2.4.1", "1.9..1.10", "..2")] == [
        "2.4.1",
        "1.9..1.10",
        "..2",
    ]
    with pytest.raises(ValueError, match="lower version first"):
        parse_version_range("1.10..1.9")
    with pytest.raises(ValueError, match="not a version"):
        parse_version_range("1.0..")
    with pytest.raises(ValueError, match="not a version"):
        parse_version_range("")


def test_affects_and_affecting() -> None:
    """An advisory names a part's versions; affecting() lists the most severe first per part."""
    high = advisory_for()  # Rayzig 2.0.0..2.4.1 and 1.0.0..1.0.3, fixed in 2.5.0
    assert high.affects(rayzig("2.4.1"))
    assert high.affects(rayzig("1.0.2"))
    assert not high.affects(rayzig("1.5"))
    assert not high.affects(rayzig("2.5.0"))
    assert not high.affects(rayzig("2.4.10"))
    assert not high.affects(FirmwareVersion(FirmwarePart.TFT, "2.4.1", 1))
    critical = replace(high, identifier="RZSA-2026-0009", severity=AdvisorySeverity.CRITICAL)
    low = replace(high, identifier="RZSA-2026-0002", severity=AdvisorySeverity.LOW)
    tft = replace(high, identifier="RZSA-2026-0003", part=FirmwarePart.TFT)
    installed = [rayzig("2.0.0"), FirmwareVersion(FirmwarePart.TFT, "3.0", 1)]
    assert affecting([low, tft, high, critical], installed) == [
        (critical, installed[0]),
        (high, installed[0]),
        (low, installed[0]),
    ]
    assert affecting([], installed) == []
