"""Build the ``rayzig-core`` sdist and wheel from the checkout, as the release workflow does."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .environment import DISTRIBUTION, ROOT, Tools, clean_env
from .processes import RehearsalError, run

BUILD_TIMEOUT = 300.0
"""Seconds for ``uv build`` (it fetches setuptools into its isolated build environment)."""


@dataclass(frozen=True)
class Distributions:
    """The built files and the version they carry."""

    wheel: Path
    sdist: Path
    version: str

    @property
    def requirement(self) -> str:
        """The pin that must match the integration manifest's requirement."""
        return f"{DISTRIBUTION}=={self.version}"


def build(tools: Tools, out_dir: Path, log: Path) -> Distributions:
    """``uv build``: the sdist first, then the wheel from the sdist (so the sdist is complete)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run(
        [str(tools.uv), "build", "--out-dir", str(out_dir), str(ROOT)],
        env=clean_env(),
        cwd=ROOT,
        log=log,
        timeout=BUILD_TIMEOUT,
        what="uv build",
    )
    stem = DISTRIBUTION.replace("-", "_")
    wheels = sorted(out_dir.glob(f"{stem}-*-py3-none-any.whl"))
    sdists = sorted(out_dir.glob(f"{stem}-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        msg = f"uv build made {wheels + sdists}, not one wheel and one sdist of {DISTRIBUTION}"
        raise RehearsalError(msg)
    version = wheels[0].name.split("-")[1]
    _check_wheel(wheels[0])
    return Distributions(wheel=wheels[0], sdist=sdists[0], version=version)


def _check_wheel(wheel: Path) -> None:
    """The wheel holds the library with its type marker and CLI, and nothing else."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        scripts = archive.read(entry_points).decode() if entry_points else ""
    strays = sorted({n.split("/")[0] for n in names} - {"rayzig_core"} - _dist_info_dirs(names))
    problems = []
    if "rayzig_core/py.typed" not in names:
        problems.append("rayzig_core/py.typed is missing")
    if not any(line.startswith("rayzig = rayzig_core.") for line in scripts.splitlines()):
        problems.append("the `rayzig` console script is missing")
    if strays:
        problems.append(f"it also holds {strays}")
    if problems:
        msg = f"{wheel.name}: " + "; ".join(problems)
        raise RehearsalError(msg)


def _dist_info_dirs(names: list[str]) -> set[str]:
    return {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}


def wheel_record(wheel: Path) -> dict[str, str]:
    """``path -> sha256=...`` for every hashed file the wheel's RECORD lists."""
    with zipfile.ZipFile(wheel) as archive:
        record_name = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        rows = csv.reader(io.StringIO(archive.read(record_name).decode()))
        return {path: digest for path, digest, *_ in rows if digest}


def file_digest(path: Path) -> str:
    """A file's hash in RECORD's form (``sha256=`` and unpadded urlsafe base64)."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
