"""Firmware catalogues: publishing into a directory, parsing and verifying (PROTOCOL.md §10.2)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from rayzig_core.errors import FirmwareIntegrityError, FirmwareSignatureError
from rayzig_core.firmware import (
    CATALOGUE_FILE,
    generate_signing_key,
    parse_catalogue,
    publish_image,
    sign_manifest,
)
from rayzig_core.models import FirmwarePart
from tests.core.firmware_helpers import HARDWARE, manifest_for, publish_version


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


def _catalogue(keys: tuple[bytes, bytes], image: bytes) -> dict[str, object]:
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
