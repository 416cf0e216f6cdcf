"""The update server's catalogue: ``catalogue.json`` read, verified and written (§10.2).

A catalogue is a directory holding ``catalogue.json`` and the images it lists::

    {"format": 1, "hardware": "RZ-GW1",
     "entries": [{"part": "rayzig", "manifest": "<base64>", "signature": "<base64>",
                  "image": "rayzig-1.3.0.bin"}],
     "advisories": [{"id": "RZSA-2026-0001", "advisory": "<base64>", "signature": "<base64>"}]}

Reading is done in two steps so that each section of the document has one function:
:func:`read_catalogue_document` checks the envelope (size, JSON, ``format``, ``hardware``, the
``entries`` list, the optional ``advisories`` list) and :func:`verify_catalogue` then verifies each
entry's and advisory's signature before its content is parsed. Every refusal is a
FirmwareIntegrityError (code 12) or, for an entry or advisory no trusted key signed, a
FirmwareSignatureError (code 11), and names the offending item. One bad item refuses the whole
catalogue (PROTOCOL.md §10.2): a receiver keeps what it last verified and says why, rather than
taking a tampered advisory for a withdrawn one.

The JSON is checked by hand rather than by :class:`rayzig_core.storage.JsonCodec`: mashumaro
turns any value into a ``str`` field (``null`` becomes ``"None"``), drops unknown keys, and writes
bytes as hex, while this format holds base64 and lower-case part names.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rayzig_core.errors import FirmwareIntegrityError, FirmwareSignatureError
from rayzig_core.firmware.advisory import (
    ADVISORY_ID_RE,
    FirmwareAdvisory,
    SignedAdvisory,
    verify_advisory,
)
from rayzig_core.firmware.manifest import (
    HARDWARE_RE,
    FirmwareManifest,
    SignedManifest,
    verify_manifest,
)
from rayzig_core.models import FirmwarePart

CATALOGUE_FILE = "catalogue.json"
CATALOGUE_FORMAT = 1

MAX_CATALOGUE_BYTES = 4 * 1024 * 1024
"""Largest catalogue.json accepted from an update server."""

_KNOWN_KEYS = frozenset({"format", "hardware", "entries", "advisories"})
"""The keys of ``catalogue.json`` this version reads; others are kept verbatim on rewrite."""

IMAGE_NAME_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}")
"""A plain image file name as a catalogue may list it (PROTOCOL.md §10.2)."""


@dataclass(frozen=True)
class CatalogueEntry:
    """One verified catalogue entry: the signed manifest, its parsed form and the image's name."""

    signed: SignedManifest
    manifest: FirmwareManifest
    image_name: str


@dataclass(frozen=True)
class Catalogue:
    """A verified catalogue: its hardware, image entries and security advisories."""

    hardware: str
    entries: list[CatalogueEntry]
    advisories: list[FirmwareAdvisory]


@dataclass(frozen=True, slots=True)
class CatalogueDocument:
    """``catalogue.json`` with its envelope checked; entries and advisories still unverified."""

    hardware: str
    entries: list[Any]
    advisories: list[Any]
    extra: dict[str, Any]
    """Keys this version does not know, kept verbatim when a publisher rewrites the file."""


def bad_catalogue(message: str) -> FirmwareIntegrityError:
    """The error for a malformed catalogue: code 12, ``message`` saying what is wrong."""
    return FirmwareIntegrityError(12, f"Firmware catalogue is invalid: {message}.")


def image_file_name(part: FirmwarePart, version: str) -> str:
    """File name of an image in a catalogue directory, e.g. ``rayzig-1.3.0.bin``."""
    return f"{part.name.lower()}-{version}.bin"


def read_catalogue_document(data: bytes) -> CatalogueDocument:
    """Check ``catalogue.json``'s size, JSON, ``format``, ``hardware`` and its two lists."""
    if len(data) > MAX_CATALOGUE_BYTES:
        raise bad_catalogue(f"it is larger than {MAX_CATALOGUE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise bad_catalogue("it is not a JSON document") from err
    if not isinstance(document, dict):
        raise bad_catalogue("it must be a JSON object")
    if document.get("format") != CATALOGUE_FORMAT:
        raise bad_catalogue(
            f"unsupported format {document.get('format')!r} (expected {CATALOGUE_FORMAT})"
        )
    hardware = document.get("hardware")
    if not isinstance(hardware, str) or not HARDWARE_RE.fullmatch(hardware):
        raise bad_catalogue("'hardware' must be a hardware name")
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise bad_catalogue("'entries' must be a list")
    advisories = document.get("advisories", [])
    if not isinstance(advisories, list):
        raise bad_catalogue("'advisories' must be a list")
    extra = {k: v for k, v in document.items() if k not in _KNOWN_KEYS}
    return CatalogueDocument(hardware, entries, advisories, extra)


def verify_catalogue(data: bytes, trusted_keys: Sequence[bytes]) -> Catalogue:
    """Parse ``catalogue.json`` bytes, verifying every entry and advisory (PROTOCOL.md §10.2).

    Raises FirmwareSignatureError for an entry or advisory no trusted key signed,
    FirmwareIntegrityError for anything malformed; both messages name the offending item. A
    catalogue without ``advisories`` (written before they existed) has none.
    """
    document = read_catalogue_document(data)
    entries: list[CatalogueEntry] = []
    seen_images: set[str] = set()
    for index, raw in enumerate(document.entries):
        entry = _parse_entry(index, raw, document.hardware, trusted_keys, seen_images)
        entries.append(entry)
    advisories: list[FirmwareAdvisory] = []
    seen_ids: set[str] = set()
    for index, raw in enumerate(document.advisories):
        advisory = _parse_advisory(index, raw, document.hardware, trusted_keys, seen_ids)
        advisories.append(advisory)
    return Catalogue(document.hardware, entries, advisories)


def parse_catalogue(data: bytes, trusted_keys: Sequence[bytes]) -> list[CatalogueEntry]:
    """The verified image entries of ``catalogue.json`` bytes (see :func:`verify_catalogue`)."""
    return verify_catalogue(data, trusted_keys).entries


def _parse_entry(
    index: int,
    raw: object,
    hardware: str,
    trusted_keys: Sequence[bytes],
    seen_images: set[str],
) -> CatalogueEntry:
    """Verify entry ``index``: its names, then its signature, then its manifest's part and hardware.

    Adds its image name to ``seen_images``, so that a repeated image is refused.
    """
    what = f"entry {index}"
    if not isinstance(raw, dict):
        raise bad_catalogue(f"{what} must be a JSON object")
    part = _part_from_name(raw.get("part"), what)
    what = f"entry {index} ({part.name.lower()})"
    image_name = raw.get("image")
    if not isinstance(image_name, str) or not IMAGE_NAME_RE.fullmatch(image_name):
        raise bad_catalogue(f"{what} has an invalid image file name {image_name!r}")
    what = f"entry {index} ({part.name.lower()}, {image_name})"
    if image_name in seen_images:
        raise bad_catalogue(f"{what} repeats an image listed by an earlier entry")
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
        raise bad_catalogue(f"{what}: {err}") from err
    if manifest.part is not part:
        raise bad_catalogue(
            f"{what} is listed as {part.name.lower()} but its manifest is for "
            f"{manifest.part.name.lower()}"
        )
    if manifest.hardware != hardware:
        raise bad_catalogue(
            f"{what} is for hardware {manifest.hardware!r}, the catalogue for {hardware!r}"
        )
    return CatalogueEntry(signed=signed, manifest=manifest, image_name=image_name)


def _parse_advisory(
    index: int,
    raw: object,
    hardware: str,
    trusted_keys: Sequence[bytes],
    seen_ids: set[str],
) -> FirmwareAdvisory:
    """Verify advisory ``index``: its signature first, then its identifier and hardware.

    Adds its identifier to ``seen_ids``, so that a repeated advisory is refused.
    """
    what = f"advisory {index}"
    if not isinstance(raw, dict):
        raise bad_catalogue(f"{what} must be a JSON object")
    listed = raw.get("id")
    if not isinstance(listed, str) or not ADVISORY_ID_RE.fullmatch(listed):
        raise bad_catalogue(f"{what} has no valid 'id' (such as RZSA-2026-0001)")
    what = f"advisory {index} ({listed})"
    signed = SignedAdvisory(
        advisory=_b64decode(raw.get("advisory"), f"{what} advisory"),
        signature=_b64decode(raw.get("signature"), f"{what} signature"),
    )
    try:
        advisory = verify_advisory(signed, trusted_keys)
    except FirmwareSignatureError as err:
        raise FirmwareSignatureError(
            11,
            f"Firmware catalogue {what}: signature does not verify with any trusted key "
            "(tampered, or signed by another publisher).",
        ) from err
    except FirmwareIntegrityError as err:
        raise bad_catalogue(f"{what}: {err}") from err
    if advisory.identifier != listed:
        raise bad_catalogue(f"{what} is listed as {listed} but signed as {advisory.identifier}")
    if advisory.hardware != hardware:
        raise bad_catalogue(
            f"{what} is for hardware {advisory.hardware!r}, the catalogue for {hardware!r}"
        )
    if listed in seen_ids:
        raise bad_catalogue(f"{what} repeats an earlier advisory")
    seen_ids.add(listed)
    return advisory


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise bad_catalogue(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise bad_catalogue(f"{what} is not valid base64") from err


def _part_from_name(value: object, what: str) -> FirmwarePart:
    """The part a catalogue name (PROTOCOL.md §10.1, e.g. ``rayzig``) stands for."""
    if isinstance(value, str):
        for part in FirmwarePart:
            if part.name.lower() == value:
                return part
    names = ", ".join(p.name.lower() for p in FirmwarePart)
    raise bad_catalogue(f"{what} has unknown part {value!r} (expected one of {names})")


def entry_json(entry: CatalogueEntry) -> dict[str, str]:
    """The JSON object that lists ``entry`` in ``catalogue.json``."""
    return {
        "part": entry.manifest.part.name.lower(),
        "manifest": base64.b64encode(entry.signed.manifest).decode("ascii"),
        "signature": base64.b64encode(entry.signed.signature).decode("ascii"),
        "image": entry.image_name,
    }


def advisory_json(identifier: str, signed: SignedAdvisory) -> dict[str, str]:
    """The JSON object that lists a signed advisory in ``catalogue.json``."""
    return {
        "id": identifier,
        "advisory": base64.b64encode(signed.advisory).decode("ascii"),
        "signature": base64.b64encode(signed.signature).decode("ascii"),
    }


def catalogue_bytes(
    hardware: str,
    entries: Sequence[object],
    advisories: Sequence[object] = (),
    extra: dict[str, Any] | None = None,
) -> bytes:
    """The bytes of a ``catalogue.json`` for ``hardware`` (entries and advisories as JSON objects).

    ``advisories`` is left out when empty, so a catalogue without any reads as before they
    existed; ``extra`` keys (from a newer publisher) follow verbatim.
    """
    document: dict[str, Any] = {
        "format": CATALOGUE_FORMAT,
        "hardware": hardware,
        "entries": list(entries),
    }
    if advisories:
        document["advisories"] = list(advisories)
    document.update({k: v for k, v in (extra or {}).items() if k not in _KNOWN_KEYS})
    return json.dumps(document, indent=2).encode("utf-8") + b"\n"
