"""Publishing into a catalogue directory for the update server: signed images and advisories.

Every change rewrites ``catalogue.json`` atomically and keeps whatever it does not change verbatim:
a new image keeps the advisories, a new advisory keeps the images, and keys of a newer format
revision stay (PROTOCOL.md §10.2).
"""

from __future__ import annotations

from pathlib import Path

from rayzig_core.firmware.advisory import FirmwareAdvisory, SignedAdvisory, sign_advisory
from rayzig_core.firmware.catalogue import (
    CATALOGUE_FILE,
    CatalogueDocument,
    CatalogueEntry,
    advisory_json,
    bad_catalogue,
    catalogue_bytes,
    entry_json,
    image_file_name,
    read_catalogue_document,
)
from rayzig_core.firmware.manifest import build_manifest, sign_manifest
from rayzig_core.models import FirmwarePart
from rayzig_core.storage import PUBLIC_MODE, write_atomic


def _existing(directory: Path, hardware: str | None) -> CatalogueDocument | None:
    """The catalogue in ``directory`` (None if there is none), refused if for other hardware."""
    path = directory / CATALOGUE_FILE
    if not path.exists():
        return None
    document = read_catalogue_document(path.read_bytes())
    if hardware is not None and document.hardware != hardware:
        raise bad_catalogue(f"{path} is for hardware {document.hardware!r}, not {hardware!r}")
    return document


def _write(directory: Path, hardware: str, document: CatalogueDocument) -> None:
    """Write ``document``'s lists and extra keys as ``catalogue.json``, readable by everyone."""
    write_atomic(
        directory / CATALOGUE_FILE,
        catalogue_bytes(hardware, document.entries, document.advisories, document.extra),
        mode=PUBLIC_MODE,
    )


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
    existing entry for the same part and version is replaced; other entries and the advisories
    are kept verbatim. Raises FirmwareIntegrityError if the manifest is invalid or the existing
    catalogue is for other hardware or malformed, and OSError if a file cannot be written.
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
    document = _existing(directory, hardware) or CatalogueDocument(hardware, [], [], {})
    kept = [
        raw
        for raw in document.entries
        if not (isinstance(raw, dict) and raw.get("image") == entry.image_name)
    ]
    write_atomic(directory / entry.image_name, image, mode=PUBLIC_MODE)
    _write(
        directory,
        hardware,
        CatalogueDocument(
            hardware, [*kept, entry_json(entry)], document.advisories, document.extra
        ),
    )
    return entry


def publish_advisory(
    directory: Path, private_key: bytes, advisory: FirmwareAdvisory
) -> SignedAdvisory:
    """Sign ``advisory`` and add it to the catalogue in ``directory`` (made if missing).

    An advisory with the same identifier is replaced (a revision); images and other advisories
    are kept verbatim. Raises FirmwareIntegrityError if the advisory is invalid or the catalogue
    is for other hardware or malformed, and OSError if it cannot be written.
    """
    signed = sign_advisory(private_key, advisory)
    hardware = advisory.hardware
    document = _existing(directory, hardware) or CatalogueDocument(hardware, [], [], {})
    kept = [raw for raw in document.advisories if not _lists(raw, advisory.identifier)]
    _write(
        directory,
        hardware,
        CatalogueDocument(
            hardware,
            document.entries,
            [*kept, advisory_json(advisory.identifier, signed)],
            document.extra,
        ),
    )
    return signed


def withdraw_advisory(directory: Path, identifier: str) -> bool:
    """Remove the advisory ``identifier`` from the catalogue in ``directory``; False if absent.

    Needs no key: receivers simply stop seeing it (and Home Assistant clears its repairs).
    """
    document = _existing(directory, None)
    if document is None:
        return False
    kept = [raw for raw in document.advisories if not _lists(raw, identifier)]
    if len(kept) == len(document.advisories):
        return False
    _write(
        directory,
        document.hardware,
        CatalogueDocument(document.hardware, document.entries, kept, document.extra),
    )
    return True


def _lists(raw: object, identifier: str) -> bool:
    """Whether the raw catalogue item ``raw`` is the advisory ``identifier``."""
    return isinstance(raw, dict) and raw.get("id") == identifier
