"""``rayzig firmware list``, and the firmware tables of ``info`` and ``firmware install``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rayzig_core.cli.connection import ClientOptions
from rayzig_core.cli.errors import EXIT_OK
from rayzig_core.cli.output import Out, table
from rayzig_core.cli.session import paired_session
from rayzig_core.cli.spec import handler
from rayzig_core.models import FirmwareVersion


def firmware_json(versions: Sequence[FirmwareVersion]) -> list[dict[str, Any]]:
    """Installed firmware per part (PROTOCOL.md §10.1), as ``--json`` shows it."""
    return [
        {"part": v.part.name.lower(), "version": v.version, "security_version": v.security_version}
        for v in versions
    ]


def firmware_text(versions: Sequence[FirmwareVersion]) -> str:
    """Installed firmware per part as a table."""
    return table(
        ["PART", "VERSION", "SECURITY"],
        [[v.part.name.lower(), v.version, str(v.security_version)] for v in versions],
    )


@handler(ClientOptions)
async def list_firmware(options: ClientOptions, out: Out) -> int:
    """Installed firmware per part."""
    async with paired_session(options) as (client, _):
        versions = await client.firmware_versions()
    out.result(firmware_json(versions), firmware_text(versions))
    return EXIT_OK
