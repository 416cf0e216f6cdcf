"""``rayzig firmware-publish``: sign an image into a catalogue directory (PROTOCOL.md §10.2)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rayzig_core.cli.errors import EXIT_OK, CliError
from rayzig_core.cli.output import Out
from rayzig_core.cli.signing_key import load_signing_key
from rayzig_core.cli.spec import handler
from rayzig_core.cli.values import PARTS
from rayzig_core.errors import RequestError
from rayzig_core.firmware import CATALOGUE_FILE, publish_image
from rayzig_core.virtual_gateway import HARDWARE as GATEWAY_HARDWARE


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """The catalogue directory, the image, its signing key file and its manifest's fields."""

    directory: str
    image: str
    signing_key_file: str
    part: str
    version: str
    security_version: int
    hardware: str | None
    release_notes: str
    security_fix: bool


def _catalogue_hardware(directory: Path) -> str:
    """The hardware of the catalogue in ``directory``; a new catalogue's is the gateway's."""
    if not (directory / CATALOGUE_FILE).exists():
        return GATEWAY_HARDWARE
    try:
        return str(json.loads((directory / CATALOGUE_FILE).read_text(encoding="utf-8"))["hardware"])
    except (OSError, ValueError, KeyError, TypeError):
        raise CliError(
            f"The catalogue in {directory} is unreadable: repair it, or name the hardware "
            "with --hardware."
        ) from None


@handler(PublishOptions)
def publish(options: PublishOptions, out: Out) -> int:
    """Sign an image and add it to a catalogue directory."""
    directory = Path(options.directory)
    private = load_signing_key(Path(options.signing_key_file).expanduser())
    hardware = options.hardware
    if hardware is None:
        hardware = _catalogue_hardware(directory)
    try:
        image = Path(options.image).read_bytes()
    except OSError as err:
        raise CliError(f"Cannot read the image {options.image}: {err.strerror}.") from None
    try:
        entry = publish_image(
            directory,
            private,
            hardware=hardware,
            part=PARTS[options.part],
            version=options.version,
            security_version=options.security_version,
            image=image,
            release_notes=options.release_notes,
            security_fix=options.security_fix,
        )
    except RequestError as err:
        raise CliError(str(err)) from None
    except OSError as err:
        raise CliError(f"Cannot write to {directory}: {err.strerror}.") from None
    manifest = entry.manifest
    out.result(
        {
            "part": options.part,
            "version": manifest.version,
            "security_version": manifest.security_version,
            "hardware": manifest.hardware,
            "size": manifest.size,
            "sha256": manifest.sha256.hex(),
            "image": entry.image_name,
            "directory": str(directory),
        },
        f"Published {options.part} {manifest.version} (security version "
        f"{manifest.security_version}, {manifest.size} bytes) for {manifest.hardware} in "
        f"{directory / entry.image_name}.",
    )
    return EXIT_OK
