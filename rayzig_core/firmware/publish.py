"""Publishing a signed image into a catalogue directory for the update server (§10.2)."""

from __future__ import annotations

from pathlib import Path

from rayzig_core.firmware.catalogue import (
    CATALOGUE_FILE,
    CatalogueEntry,
    bad_catalogue,
    catalogue_bytes,
    entry_json,
    image_file_name,
    read_catalogue_document,
)
from rayzig_core.firmware.manifest import build_manifest, sign_manifest
from rayzig_core.models import FirmwarePart
from rayzig_core.storage import PUBLIC_MODE, write_atomic


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

    The image is written before the catalogue that lists it, both readable by everyone. An
    existing entry for the same part and version is replaced; other entries are kept verbatim.
    Raises FirmwareIntegrityError if the manifest is invalid or the existing catalogue is for
    other hardware or malformed, and OSError if a file cannot be written.
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
    entry = CatalogueEntry(
        signed=sign_manifest(private_key, manifest),
        manifest=manifest,
        image_name=image_file_name(part, version),
    )
    catalogue_path = directory / CATALOGUE_FILE
    kept: list[object] = []
    if catalogue_path.exists():
        document = read_catalogue_document(catalogue_path.read_bytes())
        if document.hardware != hardware:
            raise bad_catalogue(
                f"{catalogue_path} is for hardware {document.hardware!r}, not {hardware!r}"
            )
        kept = [
            raw
            for raw in document.entries
            if not (isinstance(raw, dict) and raw.get("image") == entry.image_name)
        ]
    write_atomic(directory / entry.image_name, image, mode=PUBLIC_MODE)
    write_atomic(
        catalogue_path, catalogue_bytes(hardware, [*kept, entry_json(entry)]), mode=PUBLIC_MODE
    )
    return entry
