"""Helpers shared by the tests of signed firmware (``test_firmware_*``, PROTOCOL.md §10).

The ``keys`` and ``image`` fixtures they take live in ``tests/core/conftest.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rayzig_core.firmware import (
    CHUNK_SIZE,
    AdvisorySeverity,
    CatalogueEntry,
    FirmwareAdvisory,
    FirmwareManifest,
    VersionRange,
    build_manifest,
    crc32,
    publish_image,
)
from rayzig_core.models import FirmwarePart, FirmwareVersion
from rayzig_core.virtual_gateway.firmware_store import FirmwareStore

HARDWARE = "RZ-GW1"


def manifest_for(image: bytes, **changes: object) -> FirmwareManifest:
    """A Rayzig 1.3.0 manifest (security version 3) for ``image``, with ``changes`` applied."""
    manifest = build_manifest(
        hardware=HARDWARE,
        part=FirmwarePart.RAYZIG,
        version="1.3.0",
        security_version=3,
        image=image,
        release_notes="Fixes things.",
        security_fix=True,
    )
    return replace(manifest, **changes)  # type: ignore[arg-type]


def advisory_for(**changes: object) -> FirmwareAdvisory:
    """RZSA-2026-0001: Rayzig 2.0.0-2.4.1 and 1.0.0-1.0.3 vulnerable, fixed in 2.5.0 (high)."""
    advisory = FirmwareAdvisory(
        identifier="RZSA-2026-0001",
        hardware=HARDWARE,
        part=FirmwarePart.RAYZIG,
        affected=(VersionRange("2.0.0", "2.4.1"), VersionRange("1.0.0", "1.0.3")),
        fixed_in="2.5.0",
        severity=AdvisorySeverity.HIGH,
        summary="A forged mesh beacon can make the radio join a rogue network.",
        url="https://rayzig.dev/security/RZSA-2026-0001",
    )
    return replace(advisory, **changes)  # type: ignore[arg-type]


def gateway_store(public: bytes, rayzig_sv: int = 2) -> FirmwareStore:
    """A gateway's firmware store trusting ``public``, with Rayzig 1.2.0 and TFT 0.9 installed."""
    return FirmwareStore(
        hardware=HARDWARE,
        trusted_keys=[public],
        installed={
            FirmwarePart.RAYZIG: FirmwareVersion(FirmwarePart.RAYZIG, "1.2.0", rayzig_sv),
            FirmwarePart.TFT: FirmwareVersion(FirmwarePart.TFT, "0.9", 0),
        },
    )


def send_chunks(
    store: FirmwareStore, part: FirmwarePart, image: bytes, start: int = 0, stop: int | None = None
) -> int:
    """Send ``image[start:stop]`` to ``store`` in CHUNK_SIZE chunks; return the offset reached."""
    offset = start
    end = len(image) if stop is None else stop
    while offset < end:
        data = image[offset : min(offset + CHUNK_SIZE, end)]
        _, offset, _ = store.chunk(part, offset, data, crc32(data))
    return offset


def publish_version(
    directory: Path, private: bytes, version: str, sv: int, image: bytes
) -> CatalogueEntry:
    """Publish ``image`` as Rayzig ``version`` with security version ``sv`` into ``directory``."""
    return publish_image(
        directory,
        private,
        hardware=HARDWARE,
        part=FirmwarePart.RAYZIG,
        version=version,
        security_version=sv,
        image=image,
    )
