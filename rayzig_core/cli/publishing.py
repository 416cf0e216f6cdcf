"""``firmware-publish``, ``advisory-publish`` and ``advisory-withdraw``: a catalogue directory.

Images and security advisories are signed with the publisher's key file into the directory that
``rayzig update-server`` serves (PROTOCOL.md §10.2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rayzig_core.cli.advisories import advisory_json
from rayzig_core.cli.errors import EXIT_OK, CliError
from rayzig_core.cli.output import Out
from rayzig_core.cli.signing_key import load_signing_key
from rayzig_core.cli.spec import handler
from rayzig_core.cli.values import PARTS
from rayzig_core.errors import RequestError
from rayzig_core.firmware import (
    CATALOGUE_FILE,
    AdvisorySeverity,
    FirmwareAdvisory,
    VersionRange,
    publish_advisory,
    publish_image,
    withdraw_advisory,
)
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


@dataclass(frozen=True, slots=True)
class AdvisoryOptions:
    """The catalogue directory, the signing key file and the advisory's fields."""

    directory: str
    signing_key_file: str
    identifier: str
    part: str
    affected: list[VersionRange]
    fixed_in: str
    severity: str
    summary: str
    url: str
    hardware: str | None


@dataclass(frozen=True, slots=True)
class WithdrawOptions:
    """The catalogue directory and the advisory to remove from it."""

    directory: str
    identifier: str


@handler(AdvisoryOptions)
def advisory(options: AdvisoryOptions, out: Out) -> int:
    """Sign a security advisory and add it to a catalogue directory (replacing a revision)."""
    directory = Path(options.directory)
    private = load_signing_key(Path(options.signing_key_file).expanduser())
    notice = FirmwareAdvisory(
        identifier=options.identifier,
        hardware=options.hardware or _catalogue_hardware(directory),
        part=PARTS[options.part],
        affected=tuple(options.affected),
        fixed_in=options.fixed_in,
        severity=AdvisorySeverity[options.severity.upper()],
        summary=options.summary,
        url=options.url,
    )
    try:
        publish_advisory(directory, private, notice)
    except RequestError as err:
        raise CliError(str(err)) from None
    except OSError as err:
        raise CliError(f"Cannot write to {directory}: {err.strerror}.") from None
    affected = ", ".join(str(versions) for versions in notice.affected)
    out.result(
        {**advisory_json(notice), "hardware": notice.hardware, "directory": str(directory)},
        f"Published advisory {notice.identifier} ({options.severity}) for {options.part} "
        f"{affected}, fixed in {notice.fixed_in}, in {directory / CATALOGUE_FILE}.",
    )
    return EXIT_OK


@handler(WithdrawOptions)
def withdraw(options: WithdrawOptions, out: Out) -> int:
    """Remove a security advisory from a catalogue directory."""
    directory = Path(options.directory)
    try:
        removed = withdraw_advisory(directory, options.identifier)
    except RequestError as err:
        raise CliError(str(err)) from None
    except OSError as err:
        raise CliError(f"Cannot write to {directory}: {err.strerror}.") from None
    if not removed:
        raise CliError(
            f"The catalogue in {directory} has no advisory {options.identifier}; "
            "check the identifier and the directory."
        )
    out.result(
        {"withdrawn": options.identifier, "directory": str(directory)},
        f"Withdrew advisory {options.identifier} from {directory / CATALOGUE_FILE}.",
    )
    return EXIT_OK
