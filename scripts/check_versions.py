"""Check that the project's version number is kept in one place and agreed on everywhere.

The single source of truth is ``version`` in ``pyproject.toml``. Everything else must agree:

* ``custom_components/rayzig/manifest.json``: ``version`` equals it, and ``requirements`` pins
  ``rayzig-core==<version>`` (exactly once). If the manifest does not exist yet the check is
  skipped with a note;
* ``CHANGELOG.md``: its top release heading (the first ``## [X.Y.Z] - YYYY-MM-DD`` below
  ``## [Unreleased]``) names the same version;
* no Python file of ``rayzig_core`` or ``custom_components/rayzig`` hard-codes a second copy
  (``__version__ = "..."``); read it with ``importlib.metadata.version("rayzig-core")`` instead.

Usage: ``python scripts/check_versions.py [--root DIR]``. Exit status 0 when everything agrees,
1 when something disagrees, 2 when a required file is missing or unreadable.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "rayzig-core"
MANIFEST = Path("custom_components/rayzig/manifest.json")
CHANGELOG = Path("CHANGELOG.md")
PYPROJECT = Path("pyproject.toml")
PYTHON_TREES = (Path("rayzig_core"), Path("custom_components/rayzig"))

VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?$")
RELEASE_HEADING_RE = re.compile(r"^## \[(?P<version>[^\]]+)\](?P<rest>.*)$")
RELEASE_REST_RE = re.compile(r"^ - \d{4}-\d{2}-\d{2}$")
HARD_CODED_RE = re.compile(r"""^\s*__version__\s*(?::[^=]*)?=\s*["']""", re.MULTILINE)
REQUIREMENT_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class MissingFileError(Exception):
    """A file the check cannot do without is missing or unreadable."""


@dataclass
class Report:
    """What the check found: failures make it fail, notes are for information."""

    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _canonical_name(name: str) -> str:
    """Normalise a distribution name as PEP 503 does (``Rayzig_Core`` == ``rayzig-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_project_version(root: Path) -> str:
    """Return ``project.version`` from pyproject.toml."""
    path = root / PYPROJECT
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise MissingFileError(f"{PYPROJECT} not found in {root}") from err
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise MissingFileError(f"{PYPROJECT} cannot be read: {err}") from err
    project = data.get("project", {})
    if "version" in project.get("dynamic", []):
        raise MissingFileError(
            f"{PYPROJECT} declares the version dynamic; it must be a literal `version = ...`"
        )
    version = project.get("version")
    if not isinstance(version, str):
        raise MissingFileError(f"{PYPROJECT} has no [project] version string")
    return version


def check_version_format(version: str, report: Report) -> None:
    """Check that the version is a plain release number such as ``0.1.0``."""
    if not VERSION_RE.match(version):
        report.failures.append(
            f"{PYPROJECT}: version {version!r} is not of the form X.Y.Z (PEP 440 release)"
        )


def check_manifest(root: Path, version: str, report: Report) -> None:
    """Check that the manifest's version and rayzig-core pin equal ``version``."""
    path = root / MANIFEST
    if not path.exists():
        report.notes.append(f"{MANIFEST} does not exist yet: manifest checks skipped")
        return
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        report.failures.append(f"{MANIFEST}: not valid JSON ({err})")
        return
    if not isinstance(manifest, dict):
        report.failures.append(f"{MANIFEST}: top level is not a JSON object")
        return
    manifest_version = manifest.get("version")
    if manifest_version != version:
        report.failures.append(
            f"{MANIFEST}: version is {manifest_version!r}, but {PYPROJECT} says {version!r}"
        )
    requirements = manifest.get("requirements")
    if not isinstance(requirements, list):
        report.failures.append(
            f"{MANIFEST}: requirements must be a list containing '{PACKAGE}=={version}'"
        )
        return
    ours = [
        req
        for req in requirements
        if isinstance(req, str)
        and (match := REQUIREMENT_NAME_RE.match(req))
        and _canonical_name(match.group(1)) == PACKAGE
    ]
    expected = f"{PACKAGE}=={version}"
    if not ours:
        report.failures.append(f"{MANIFEST}: requirements do not pin {expected!r}")
    elif len(ours) > 1:
        report.failures.append(f"{MANIFEST}: requirements name {PACKAGE} {len(ours)} times: {ours}")
    elif ours[0].replace(" ", "") != expected:
        report.failures.append(
            f"{MANIFEST}: requirement is {ours[0]!r}, expected exactly {expected!r}"
        )


def top_changelog_release(text: str) -> tuple[str, str] | None:
    """Return (version, rest of heading) of the first release heading, skipping Unreleased."""
    for line in text.splitlines():
        match = RELEASE_HEADING_RE.match(line.rstrip())
        if match and match.group("version").strip().lower() != "unreleased":
            return match.group("version").strip(), match.group("rest")
    return None


def check_changelog(root: Path, version: str, report: Report) -> None:
    """Check that CHANGELOG.md's top release is ``version``, with a date."""
    path = root / CHANGELOG
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise MissingFileError(f"{CHANGELOG} not found in {root}") from err
    except OSError as err:
        raise MissingFileError(f"{CHANGELOG} cannot be read: {err}") from err
    top = top_changelog_release(text)
    if top is None:
        report.failures.append(
            f"{CHANGELOG}: no release heading like '## [{version}] - YYYY-MM-DD'"
        )
        return
    top_version, rest = top
    if top_version != version:
        report.failures.append(
            f"{CHANGELOG}: top release is {top_version!r}, but {PYPROJECT} says {version!r}"
        )
    if not RELEASE_REST_RE.match(rest):
        report.failures.append(
            f"{CHANGELOG}: heading of {top_version!r} must read '## [{top_version}] - YYYY-MM-DD'"
        )


def check_no_second_copy(root: Path, report: Report) -> None:
    """Check that no Python source hard-codes ``__version__``."""
    for tree in PYTHON_TREES:
        base = root / tree
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if HARD_CODED_RE.search(text):
                report.failures.append(
                    f"{path.relative_to(root)}: hard-codes __version__; use "
                    f'importlib.metadata.version("{PACKAGE}") instead'
                )


def check(root: Path) -> tuple[str, Report]:
    """Run every check under ``root``; raise MissingFileError if a required file is absent."""
    report = Report()
    version = read_project_version(root)
    check_version_format(version, report)
    check_manifest(root, version, report)
    check_changelog(root, version, report)
    check_no_second_copy(root, report)
    return version, report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Check that the version in pyproject.toml is the only one and agreed on."
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository root (default: the parent of this script's folder)",
    )
    args = parser.parse_args(argv)
    try:
        version, report = check(args.root)
    except MissingFileError as err:
        sys.stderr.write(f"check_versions: error: {err}\n")
        return 2
    for note in report.notes:
        sys.stdout.write(f"check_versions: note: {note}\n")
    if report.failures:
        for failure in report.failures:
            sys.stderr.write(f"check_versions: MISMATCH: {failure}\n")
        sys.stderr.write(
            f"check_versions: {len(report.failures)} problem(s); the version lives in "
            f"{PYPROJECT} ({version!r}) and everything else must follow it\n"
        )
        return 1
    sys.stdout.write(f"check_versions: OK, version {version} everywhere\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
