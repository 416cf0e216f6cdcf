"""How the CLI shows security advisories (PROTOCOL.md §10.2): as JSON and as text."""

from __future__ import annotations

from collections.abc import Sequence

from rayzig_core.firmware import FirmwareAdvisory
from rayzig_core.models import FirmwareVersion


def advisory_json(advisory: FirmwareAdvisory) -> dict[str, object]:
    """An advisory as the CLI prints it in JSON (ranges as ``--affected`` takes them)."""
    return {
        "id": advisory.identifier,
        "part": advisory.part.name.lower(),
        "affected": [str(versions) for versions in advisory.affected],
        "fixed_in": advisory.fixed_in,
        "severity": advisory.severity.name.lower(),
        "summary": advisory.summary,
        "url": advisory.url,
    }


def advisories_text(found: Sequence[tuple[FirmwareAdvisory, FirmwareVersion]]) -> str:
    """Each advisory naming an installed version (from ``affecting``), or that there is none."""
    if not found:
        return "No published security advisory affects the installed firmware."
    lines = [
        f"KNOWN VULNERABILITIES: {len(found)} security "
        f"{'advisory affects' if len(found) == 1 else 'advisories affect'} the installed firmware."
    ]
    for advisory, installed in found:
        part = advisory.part.name.lower()
        lines += [
            "",
            f"{advisory.identifier} ({advisory.severity.name.lower()}): {part} "
            f"{installed.version} is affected; fixed in {advisory.fixed_in} "
            f"(`rayzig firmware install {part}`).",
            f"  {advisory.summary}",
            f"  {advisory.url}",
        ]
    return "\n".join(lines)
