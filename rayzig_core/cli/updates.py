"""``firmware check`` and ``firmware install``: signed images from an update server (§10).

The catalogue's signatures are verified against the publisher keys given (PROTOCOL.md §10.2);
``check`` also lists the signed security advisories that name an installed version. An image is
installed in resumable chunks (§10.3) and the gateway refuses a downgrade (§10.4).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from rayzig_core.cli.advisories import advisories_text, advisory_json
from rayzig_core.cli.connection import ClientOptions
from rayzig_core.cli.errors import EXIT_CONNECT, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CliError
from rayzig_core.cli.firmware import firmware_json
from rayzig_core.cli.output import Out, Progress, table
from rayzig_core.cli.session import paired_session
from rayzig_core.cli.spec import handler
from rayzig_core.cli.values import PARTS
from rayzig_core.errors import ConnectionFailedError, RequestError
from rayzig_core.firmware import (
    PART_NAMES,
    Catalogue,
    CatalogueEntry,
    UpdateServerClient,
    affecting,
    install_disruption,
    install_firmware,
    version_key,
)
from rayzig_core.models import FirmwarePart, FirmwareVersion

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateServerOptions(ClientOptions):
    """The update server's URL and the publisher keys its catalogue must be signed with."""

    server: str
    signing_key: list[bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallOptions(UpdateServerOptions):
    """Which part (and version) to install, and whether to reinstall or ask first."""

    part: str
    version: str | None
    force: bool
    yes: bool


@contextlib.asynccontextmanager
async def _catalogue(
    options: UpdateServerOptions,
) -> AsyncIterator[tuple[UpdateServerClient, Catalogue]]:
    """Open the update server (on a fresh HTTP session) and fetch its verified catalogue."""
    async with aiohttp.ClientSession() as http:
        server = UpdateServerClient(http, options.server, options.signing_key)
        catalogue = await _from_update_server(server.fetch())
        yield server, catalogue


async def _from_update_server(call: Awaitable[_T]) -> _T:
    """Await an update-server call, naming the update server (not the gateway) in errors."""
    try:
        return await call
    except ConnectionFailedError as err:
        raise CliError(str(err), EXIT_CONNECT) from None
    except RequestError as err:
        raise CliError(f"Refused firmware from the update server: {err}", EXIT_REFUSED) from None


def _newest(entries: Sequence[CatalogueEntry], part: FirmwarePart) -> CatalogueEntry | None:
    """The highest (security version, version) the catalogue has for ``part``."""
    candidates = [e for e in entries if e.manifest.part is part]
    if not candidates:
        return None
    return max(
        candidates, key=lambda e: (e.manifest.security_version, version_key(e.manifest.version))
    )


def _status(installed: FirmwareVersion, entry: CatalogueEntry | None) -> str:
    """Whether ``entry`` would update ``installed`` (a lower security version is refused)."""
    if entry is None:
        return "not published"
    manifest = entry.manifest
    if manifest.security_version < installed.security_version:
        return "older than installed (would be refused)"
    if version_key(manifest.version) > version_key(installed.version) or (
        manifest.security_version > installed.security_version
    ):
        return "update available"
    return "up to date"


@handler(UpdateServerOptions)
async def check(options: UpdateServerOptions, out: Out) -> int:
    """Compare installed firmware with the update server: newer images and security advisories.

    An advisory naming an installed version is shown in the ADVISORIES column and under the
    table (``advisories`` per part in JSON); the command still succeeds (exit 0), since it did
    what was asked: exit codes say whether a command failed (docs/CLI.md).
    """
    async with paired_session(options) as (client, _), _catalogue(options) as (_server, catalogue):
        installed = await client.firmware_versions()
    found = affecting(catalogue.advisories, installed)
    rows: list[dict[str, Any]] = []
    for version in installed:
        entry = _newest(catalogue.entries, version.part)
        rows.append(
            {
                "part": version.part.name.lower(),
                "installed": version.version,
                "installed_security_version": version.security_version,
                "available": entry.manifest.version if entry else None,
                "available_security_version": entry.manifest.security_version if entry else None,
                "security_fix": entry.manifest.security_fix if entry else None,
                "status": _status(version, entry),
                "advisories": [advisory_json(a) for a, v in found if v is version],
            }
        )
    text = table(
        ["PART", "INSTALLED", "AVAILABLE", "STATUS", "ADVISORIES"],
        [
            [
                r["part"],
                f"{r['installed']} (sec {r['installed_security_version']})",
                "-"
                if r["available"] is None
                else f"{r['available']} (sec {r['available_security_version']})"
                + (" security fix" if r["security_fix"] else ""),
                r["status"],
                ", ".join(a["id"] for a in r["advisories"]) or "-",
            ]
            for r in rows
        ],
    )
    out.result(rows, f"{text}\n\n{advisories_text(found)}")
    return EXIT_OK


def _warn_install(options: InstallOptions, part: FirmwarePart, version: str) -> None:
    """Say what installing interrupts (EN 303 645 5.3-12); on a terminal, ask before going on."""
    Out.note(install_disruption(part))
    if options.yes or not sys.stdin.isatty():
        return
    answer = input(f"Install {PART_NAMES[part]} {version} now? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("Installation cancelled; nothing was changed.", EXIT_USAGE)


@handler(InstallOptions)
async def install(options: InstallOptions, out: Out) -> int:
    """Download a signed image, verify it and install it on the gateway in resumable chunks."""
    part = PARTS[options.part]
    async with paired_session(options) as (client, _), _catalogue(options) as (server, catalogue):
        entries = catalogue.entries
        if options.version is not None:
            matching = [
                e
                for e in entries
                if e.manifest.part is part and e.manifest.version == options.version
            ]
            entry = matching[0] if matching else None
        else:
            entry = _newest(entries, part)
        if entry is None:
            wanted = f"{options.part} {options.version}" if options.version else options.part
            raise CliError(f"The update server publishes no {wanted} firmware.", EXIT_REFUSED)
        manifest = entry.manifest
        installed = {v.part: v for v in await client.firmware_versions()}.get(part)
        if installed is not None and installed.version == manifest.version and not options.force:
            out.result(
                {"installed": False, "part": options.part, "version": manifest.version},
                f"{options.part} {manifest.version} is already installed (use --force to "
                "reinstall).",
            )
            return EXIT_OK
        _warn_install(options, part, manifest.version)
        image = await _from_update_server(server.fetch_image(entry))
        progress = Progress(f"Installing {options.part} {manifest.version}", manifest.size, "bytes")
        try:
            versions = await install_firmware(client, entry, image, progress.update)
        finally:
            progress.finish()
    out.result(
        {
            "installed": True,
            "part": options.part,
            "version": manifest.version,
            "security_version": manifest.security_version,
            "firmware": firmware_json(versions),
        },
        f"Installed {options.part} {manifest.version} (security version "
        f"{manifest.security_version}).",
    )
    return EXIT_OK
