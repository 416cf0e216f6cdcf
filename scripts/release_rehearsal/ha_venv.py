"""A clean Home Assistant Core environment, and what Home Assistant installed into it.

The environment is what ``pip install homeassistant==X`` makes, and nothing else.

The first run resolves Home Assistant from PyPI into uv's cache (``.cache/release-rehearsal/uv``)
and records the exact set of packages it got (``.cache/release-rehearsal/homeassistant-X-pyY/``);
later runs make a fresh environment from that record offline, in seconds. Nothing of the checkout
is ever installed into it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .distributions import Distributions, file_digest, wheel_record
from .environment import CACHE, DISTRIBUTION, ROOT, Tools, clean_env
from .processes import RehearsalError, run

INSTALL_TIMEOUT = 900.0
"""Seconds for a cold install of Home Assistant from PyPI (about 1 minute here)."""
OFFLINE_TIMEOUT = 180.0

_PROBE = """
import importlib.util, json, sys
print(json.dumps({"sys_path": sys.path, "prefix": sys.prefix,
                  "rayzig_core": importlib.util.find_spec("rayzig_core") is not None}))
"""
_VERSION = "import json, platform; print(json.dumps({'version': platform.python_version()}))"
_IMPORT = """
import importlib.metadata, json, rayzig_core
print(json.dumps({"file": rayzig_core.__file__,
                  "version": importlib.metadata.version("rayzig-core")}))
"""


@dataclass(frozen=True)
class HomeAssistantVenv:
    """A virtual environment with Home Assistant Core and nothing of this project."""

    path: Path
    workdir: Path
    """The working directory of every process started from it (outside the checkout)."""

    @property
    def python(self) -> Path:
        """Its interpreter."""
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        """One of its console scripts."""
        return self.path / "bin" / name

    @property
    def site_packages(self) -> Path:
        """Where packages are installed."""
        return next((self.path / "lib").glob("python3*/site-packages"))

    def probe(self, code: str, log: Path) -> dict[str, Any]:
        """Run Python code in it, as a child of the rehearsal, and return the JSON it prints."""
        out = run(
            [str(self.python), "-c", code],
            env=clean_env(),
            cwd=self.workdir,
            log=log,
            timeout=60,
            what="a probe of the Home Assistant environment",
            stdout_only=True,
        )
        return dict(json.loads(out.strip().splitlines()[-1]))


def create(
    tools: Tools, python: Path, ha_version: str, *, path: Path, workdir: Path, log: Path
) -> tuple[HomeAssistantVenv, bool]:
    """A fresh environment at ``path``; also says whether the cache made it (a warm run)."""
    env = clean_env()
    run(
        [str(tools.uv), "venv", "--python", str(python), str(path)],
        env=env,
        cwd=workdir,
        log=log,
        timeout=120,
        what="uv venv",
    )
    venv = HomeAssistantVenv(path=path, workdir=workdir)
    version = venv.probe(_VERSION, log)["version"]
    record = CACHE / f"homeassistant-{ha_version}-py{version}" / "requirements.txt"
    pip = [str(tools.uv), "pip", "install", "--python", str(venv.python)]
    if record.exists():
        try:
            run(
                [*pip, "--offline", "--no-deps", "--requirement", str(record)],
                env=env,
                cwd=workdir,
                log=log,
                timeout=OFFLINE_TIMEOUT,
                what="installing Home Assistant from the cache",
            )
        except RehearsalError:
            pass  # the cache lost some of it: resolve again from PyPI below
        else:
            return venv, True
    run(
        [*pip, f"homeassistant=={ha_version}"],
        env=env,
        cwd=workdir,
        log=log,
        timeout=INSTALL_TIMEOUT,
        what=f"installing Home Assistant {ha_version} from PyPI",
    )
    frozen = run(
        [str(tools.uv), "pip", "freeze", "--python", str(venv.python)],
        env=env,
        cwd=workdir,
        log=log,
        timeout=60,
        what="uv pip freeze",
        stdout_only=True,
    )
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(frozen, encoding="utf-8")
    return venv, False


def check_clean(venv: HomeAssistantVenv, log: Path) -> None:
    """No ``rayzig_core`` importable and no path of the checkout on its ``sys.path``."""
    state = venv.probe(_PROBE, log)
    if state["rayzig_core"]:
        msg = "rayzig_core is importable in the fresh Home Assistant environment"
        raise RehearsalError(msg)
    inside = [p for p in state["sys_path"] if p and _inside(Path(p), ROOT)]
    if inside:
        msg = f"the Home Assistant environment has the checkout on its path: {inside}"
        raise RehearsalError(msg)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


@dataclass(frozen=True)
class Installation:
    """What Home Assistant's own install of the library left in the environment."""

    version: str
    module_file: Path
    installer: str
    files_checked: int


def check_installed(venv: HomeAssistantVenv, dists: Distributions, log: Path) -> Installation:
    """Check the library in the environment: installed by uv, byte for byte the built wheel.

    uv is Home Assistant's installer; the library must be in the environment's site-packages.
    """
    imported = venv.probe(_IMPORT, log)
    module_file = Path(imported["file"])
    if imported["version"] != dists.version or not _inside(module_file, venv.site_packages):
        msg = f"Home Assistant's environment imports {imported}, not {dists.requirement}"
        raise RehearsalError(msg)
    stem = DISTRIBUTION.replace("-", "_")
    dist_info = venv.site_packages / f"{stem}-{dists.version}.dist-info"
    installer = (dist_info / "INSTALLER").read_text(encoding="utf-8").strip()
    if installer != "uv":
        msg = f"{dist_info.name}/INSTALLER says {installer!r}: Home Assistant installs with uv"
        raise RehearsalError(msg)
    record = wheel_record(dists.wheel)
    different = [
        path for path, digest in record.items() if file_digest(venv.site_packages / path) != digest
    ]
    if different:
        msg = f"installed files differ from {dists.wheel.name}: {different[:5]}"
        raise RehearsalError(msg)
    return Installation(
        version=str(imported["version"]),
        module_file=module_file,
        installer=installer,
        files_checked=len(record),
    )
