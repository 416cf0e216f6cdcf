"""SECURITY.md publishes what UK PSTI and ETSI EN 303 645 5.2-1 / 5.3-13 require.

A point of contact for vulnerability reports, the acknowledgement and status-update timeline, and
the security-update support period of the current release with its end date, which must be at least
24 months after the release date recorded in CHANGELOG.md.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICY = (REPO / "SECURITY.md").read_text(encoding="utf-8")
SUPPORT_MONTHS = 24


def project_version() -> str:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    version = data["project"]["version"]
    assert isinstance(version, str)
    return version


def release_date(minor: str) -> dt.date:
    """Date of the first release of ``minor`` (X.Y) in CHANGELOG.md."""
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    dates = [
        dt.date.fromisoformat(date)
        for version, date in re.findall(
            r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.MULTILINE
        )
        if version.rsplit(".", 1)[0] == minor
    ]
    assert dates, f"CHANGELOG.md has no release of {minor}"
    return min(dates)


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, 28))


def test_policy_names_a_reporting_address_and_a_private_route() -> None:
    assert "security@rayzig.dev" in POLICY
    assert "https://github.com/rayzig/rayzig/security/advisories/new" in POLICY
    assert "keys.openpgp.org" in POLICY


def test_policy_promises_acknowledgement_status_updates_and_fix_targets() -> None:
    assert re.search(r"Acknowledgement.*within \*\*7 days\*\*", POLICY)
    assert re.search(r"Status updates.*every \*\*14 days\*\*", POLICY)
    assert "target **90 days**" in POLICY
    assert "target **30 days**" in POLICY


def test_policy_has_safe_harbour_scope_and_coordinated_disclosure() -> None:
    for heading in ("## Safe harbour", "## Scope", "## Coordinated disclosure", "## Credit"):
        assert heading in POLICY


def test_current_release_has_a_published_support_end_date() -> None:
    """5.3-13: the support period of the release being shipped is published, with its end date."""
    minor = project_version().rsplit(".", 1)[0]
    date = r"(\d{4}-\d{2}-\d{2})"
    row = rf"^\| {re.escape(minor)}\.x +\| {date} +\| \*\*{date}\*\*"
    match = re.search(row, POLICY, re.MULTILINE)
    assert match, f"SECURITY.md has no support-period row for {minor}.x"
    first_release = dt.date.fromisoformat(match.group(1))
    end = dt.date.fromisoformat(match.group(2))
    assert first_release == release_date(minor)
    assert end >= add_months(first_release, SUPPORT_MONTHS)
    assert "24 months after the date of its first" in POLICY
