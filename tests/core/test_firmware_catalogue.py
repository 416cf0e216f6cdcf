"""Firmware catalogues: publishing images and advisories, parsing and verifying (§10.2)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from rayzig_core.errors import FirmwareIntegrityError, FirmwareSignatureError
from rayzig_core.firmware import (
    CATALOGUE_FILE,
    AdvisorySeverity,
    generate_signing_key,
    parse_catalogue,
    publish_advisory,
    publish_image,
    sign_advisory,
    sign_manifest,
    verify_catalogue,
    withdraw_advisory,
)
from rayzig_core.firmware.catalogue import advisory_json
from rayzig_core.models import FirmwarePart
from tests.core.firmware_helpers import HARDWARE, advisory_for, manifest_for, publish_version


def test_publish_and_parse_catalogue(
    tmp_path: Path, keys: tuple[bytes, bytes], image: bytes
) -> None:
    private, public = keys
    first = publish_version(tmp_path, private, "1.3.0", 3, image)
    assert first.image_name == "rayzig-1.3.0.bin"
    assert (tmp_path / "rayzig-1.3.0.bin").read_bytes() == image
    tft = publish_image(
        tmp_path,
        private,
        hardware=HARDWARE,
        part=FirmwarePart.TFT,
        version="1.0",
        security_version=0,
        image=b"tft image",
        release_notes="New fonts",
    )
    # Republishing the same part and version replaces its entry.
    again = publish_version(tmp_path, private, "1.3.0", 4, image[::-1])
    entries = parse_catalogue((tmp_path / CATALOGUE_FILE).read_bytes(), [public])
    assert entries == [tft, again]
    assert entries[1].manifest.security_version == 4
    assert not list(tmp_path.glob(".*.tmp"))


def test_publish_refuses_other_hardware(
    tmp_path: Path, keys: tuple[bytes, bytes], image: bytes
) -> None:
    publish_version(tmp_path, keys[0], "1.3.0", 3, image)
    with pytest.raises(FirmwareIntegrityError, match="hardware"):
        publish_image(
            tmp_path,
            keys[0],
            hardware="OTHER",
            part=FirmwarePart.RAYZIG,
            version="9",
            security_version=9,
            image=image,
        )
    assert not (tmp_path / "rayzig-9.bin").exists()


def _catalogue(keys: tuple[bytes, bytes], image: bytes) -> dict[str, Any]:
    signed = sign_manifest(keys[0], manifest_for(image))
    return {
        "format": 1,
        "hardware": HARDWARE,
        "entries": [
            {
                "part": "rayzig",
                "manifest": base64.b64encode(signed.manifest).decode(),
                "signature": base64.b64encode(signed.signature).decode(),
                "image": "rayzig-1.3.0.bin",
            }
        ],
    }


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda doc: doc.update(format=2), "format"),
        (lambda doc: doc.update(hardware=7), "hardware"),
        (lambda doc: doc.update(entries={}), "entries"),
        (lambda doc: doc["entries"].append("x"), "entry 1"),
        (lambda doc: doc["entries"][0].update(part="flux"), "entry 0 has unknown part"),
        (lambda doc: doc["entries"][0].update(image="../etc/passwd"), r"entry 0 \(rayzig\)"),
        (lambda doc: doc["entries"][0].update(image=".hidden"), "invalid image file name"),
        (lambda doc: doc["entries"][0].update(manifest="@@@"), "manifest is not valid base64"),
        (lambda doc: doc["entries"][0].update(signature=None), "signature must be a base64"),
        (lambda doc: doc["entries"][0].update(part="tft"), "listed as tft"),
        (lambda doc: doc.update(hardware="RZ-GW2"), "is for hardware 'RZ-GW1'"),
        (lambda doc: doc["entries"].append(dict(doc["entries"][0])), "entry 1 .*repeats"),
    ],
)
def test_catalogue_parse_errors(
    keys: tuple[bytes, bytes], image: bytes, mutate: object, match: str
) -> None:
    document = _catalogue(keys, image)
    mutate(document)  # type: ignore[operator]
    with pytest.raises(FirmwareIntegrityError, match=match) as info:
        parse_catalogue(json.dumps(document).encode(), [keys[1]])
    assert info.value.code == 12
    assert "catalogue" in str(info.value)


def test_catalogue_not_json_and_unsigned_entry(keys: tuple[bytes, bytes], image: bytes) -> None:
    with pytest.raises(FirmwareIntegrityError, match="not a JSON document"):
        parse_catalogue(b"\xff{", [keys[1]])
    with pytest.raises(FirmwareIntegrityError, match="JSON object"):
        parse_catalogue(b"[]", [keys[1]])
    document = _catalogue(keys, image)
    with pytest.raises(FirmwareSignatureError, match=r"entry 0 \(rayzig, rayzig-1.3.0.bin\)"):
        parse_catalogue(json.dumps(document).encode(), [generate_signing_key()[1]])


# --- security advisories in the catalogue ------------------------------------------------------


def _document(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((directory / CATALOGUE_FILE).read_text())
    return result


def test_advisories_are_published_kept_and_verified(
    tmp_path: Path, keys: tuple[bytes, bytes], image: bytes
) -> None:
    """Images and advisories share the file; rewriting one keeps the other verbatim."""
    private, public = keys
    advisory = advisory_for()
    publish_advisory(tmp_path, private, advisory)  # into a new catalogue
    assert _document(tmp_path)["hardware"] == HARDWARE
    entry = publish_version(tmp_path, private, "2.5.0", 4, image)
    second = advisory_for(identifier="RZSA-2026-0002", severity=AdvisorySeverity.LOW)
    publish_advisory(tmp_path, private, second)
    revised = advisory_for(summary="Revised: a forged beacon can redirect the radio.")
    publish_advisory(tmp_path, private, revised)  # same identifier: replaced, moved last
    catalogue = verify_catalogue((tmp_path / CATALOGUE_FILE).read_bytes(), [public])
    assert catalogue.hardware == HARDWARE
    assert catalogue.entries == [entry]
    assert catalogue.advisories == [second, revised]
    assert [a["id"] for a in _document(tmp_path)["advisories"]] == [
        "RZSA-2026-0002",
        "RZSA-2026-0001",
    ]
    # Publishing an image again keeps the advisories byte for byte.
    before = _document(tmp_path)["advisories"]
    publish_version(tmp_path, private, "2.5.1", 4, image)
    assert _document(tmp_path)["advisories"] == before
    assert withdraw_advisory(tmp_path, "RZSA-2026-0002")
    assert not withdraw_advisory(tmp_path, "RZSA-2026-0002")
    assert not withdraw_advisory(tmp_path / "nowhere", "RZSA-2026-0001")
    catalogue = verify_catalogue((tmp_path / CATALOGUE_FILE).read_bytes(), [public])
    assert catalogue.advisories == [revised]
    assert len(catalogue.entries) == 2
    assert withdraw_advisory(tmp_path, "RZSA-2026-0001")
    assert "advisories" not in _document(tmp_path)  # none left: the file reads as before


def test_old_catalogues_read_and_unknown_keys_survive(
    tmp_path: Path, keys: tuple[bytes, bytes], image: bytes
) -> None:
    """A catalogue without advisories has none; keys of a newer publisher are kept on rewrite."""
    private, public = keys
    document = _catalogue(keys, image)
    assert "advisories" not in document
    catalogue = verify_catalogue(json.dumps(document).encode(), [public])
    assert catalogue.advisories == []
    assert len(catalogue.entries) == 1
    document["mirrors"] = ["https://mirror.example/"]
    (tmp_path / CATALOGUE_FILE).write_text(json.dumps(document))
    publish_advisory(tmp_path, private, advisory_for())
    publish_version(tmp_path, private, "2.5.0", 4, image)
    assert _document(tmp_path)["mirrors"] == ["https://mirror.example/"]


def test_publish_advisory_refuses_other_hardware(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    publish_advisory(tmp_path, keys[0], advisory_for())
    with pytest.raises(FirmwareIntegrityError, match="hardware 'RZ-GW1', not 'RZ-GW2'"):
        publish_advisory(tmp_path, keys[0], advisory_for(hardware="RZ-GW2"))


def _with_advisory(keys: tuple[bytes, bytes], image: bytes, **changes: object) -> dict[str, Any]:
    document = _catalogue(keys, image)
    signed = sign_advisory(keys[0], advisory_for(**changes))
    document["advisories"] = [advisory_json("RZSA-2026-0001", signed)]
    return document


def _flip_bit(text: str) -> str:
    data = bytearray(base64.b64decode(text))
    data[len(data) // 2] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda doc: doc.update(advisories={}), "'advisories' must be a list"),
        (lambda doc: doc["advisories"].append(7), "advisory 1 must be a JSON object"),
        (lambda doc: doc["advisories"][0].update(id="../x"), "advisory 0 has no valid 'id'"),
        (lambda doc: doc["advisories"][0].pop("id"), "advisory 0 has no valid 'id'"),
        (
            lambda doc: doc["advisories"][0].update(advisory="@@"),
            r"advisory 0 \(RZSA-2026-0001\) advisory is not valid base64",
        ),
        (
            lambda doc: doc["advisories"][0].update(id="RZSA-2026-0002"),
            "listed as RZSA-2026-0002 but signed as RZSA-2026-0001",
        ),
        (lambda doc: doc["advisories"].append(dict(doc["advisories"][0])), "advisory 1 .*repeats"),
    ],
)
def test_malformed_advisories_refuse_the_catalogue(
    keys: tuple[bytes, bytes], image: bytes, mutate: object, match: str
) -> None:
    document = _with_advisory(keys, image)
    mutate(document)  # type: ignore[operator]
    with pytest.raises(FirmwareIntegrityError, match=match) as info:
        verify_catalogue(json.dumps(document).encode(), [keys[1]])
    assert info.value.code == 12


def test_an_advisory_for_other_hardware_refuses_the_catalogue(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    document = _with_advisory(keys, image, hardware="RZ-GW2")
    with pytest.raises(FirmwareIntegrityError, match="for hardware 'RZ-GW2'"):
        verify_catalogue(json.dumps(document).encode(), [keys[1]])


def test_tampered_or_wrongly_keyed_advisory_refuses_the_whole_catalogue(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    """One advisory that does not verify refuses everything, naming it (PROTOCOL.md §10.2).

    A receiver that skipped it could not tell a tampered advisory from a withdrawn one.
    """
    tampered = _with_advisory(keys, image)
    tampered["advisories"][0]["advisory"] = _flip_bit(tampered["advisories"][0]["advisory"])
    wrong_key = _with_advisory(keys, image)
    other = sign_advisory(generate_signing_key()[0], advisory_for())
    wrong_key["advisories"][0] = advisory_json("RZSA-2026-0001", other)
    unsigned = _with_advisory(keys, image)
    unsigned["advisories"][0]["signature"] = base64.b64encode(bytes(64)).decode()
    for document in (tampered, wrong_key, unsigned):
        with pytest.raises(
            FirmwareSignatureError, match=r"advisory 0 \(RZSA-2026-0001\): signature"
        ) as info:
            verify_catalogue(json.dumps(document).encode(), [keys[1]])
        assert info.value.code == 11
        assert "tampered" in str(info.value)
        with pytest.raises(FirmwareSignatureError):
            parse_catalogue(json.dumps(document).encode(), [keys[1]])
