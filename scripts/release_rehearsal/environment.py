"""Where the rehearsal's inputs, tools, caches and artifacts are, and its children's environment.

Children get a clean environment: no checkout, no PYTHONPATH, no inherited index settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .processes import RehearsalError

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "release-rehearsal"
CACHE = ROOT / ".cache" / "release-rehearsal"
UV_CACHE = CACHE / "uv"
INTEGRATION = ROOT / "custom_components" / "rayzig"
MANIFEST = INTEGRATION / "manifest.json"
HACS_JSON = ROOT / "hacs.json"
DISTRIBUTION = "rayzig-core"

_DROPPED_PREFIXES = ("PYTHON", "PIP_", "CONDA_")
_DROPPED = frozenset({"VIRTUAL_ENV", "__PYVENV_LAUNCHER__"})
_DROPPED_UV = frozenset(
    {
        "UV_CACHE_DIR",
        "UV_CONSTRAINT",
        "UV_DEFAULT_INDEX",
        "UV_EXTRA_INDEX_URL",
        "UV_FIND_LINKS",
        "UV_INDEX",
        "UV_INDEX_STRATEGY",
        "UV_INDEX_URL",
        "UV_NO_CACHE",
        "UV_NO_INDEX",
        "UV_OFFLINE",
        "UV_OVERRIDE",
        "UV_PROJECT_ENVIRONMENT",
        "UV_PYTHON",
        "UV_SYSTEM_PYTHON",
    }
)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: the checkout and other indexes kept out, uv set up.

    Drops every PYTHON*, PIP_* and CONDA_* variable, VIRTUAL_ENV and uv's index and interpreter
    settings from this process's environment, then adds the rehearsal's uv settings and ``extra``.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_DROPPED_PREFIXES) and key not in _DROPPED and key not in _DROPPED_UV
    }
    env.update(
        {
            "UV_CACHE_DIR": str(UV_CACHE),
            "UV_NO_CONFIG": "1",  # no uv.toml of this machine's user changes what is resolved
            "UV_PYTHON_DOWNLOADS": "never",  # interpreters come from the machine, not a download
        }
    )
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class Tools:
    """The programs the rehearsal drives, from the project's tool environment (``.venv``)."""

    uv: Path
    pypi_server: Path

    @classmethod
    def find(cls) -> Tools:
        """Both next to this interpreter; say how to get them when they are missing."""
        bin_dir = Path(sys.executable).parent
        tools = cls(uv=bin_dir / "uv", pypi_server=bin_dir / "pypi-server")
        for tool in (tools.uv, tools.pypi_server):
            if not tool.exists():
                msg = f"{tool} is missing: run scripts/bootstrap (requirements-test.txt has it)"
                raise RehearsalError(msg)
        return tools


def home_assistant_version() -> str:
    """The oldest Home Assistant that HACS offers the integration to (``hacs.json``)."""
    return str(json.loads(HACS_JSON.read_text(encoding="utf-8"))["homeassistant"])


def manifest_requirement() -> str:
    """The integration's requirement on the library, as Home Assistant reads it."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    pins = [req for req in manifest["requirements"] if req.startswith(f"{DISTRIBUTION}==")]
    if len(pins) != 1:
        msg = f"{MANIFEST} must pin {DISTRIBUTION}==X.Y.Z exactly once, found {pins}"
        raise RehearsalError(msg)
    return str(pins[0])


def python313() -> Path:
    """Python 3.13 as scripts/bootstrap finds it: pyenv's (in the checkout), else the PATH's."""
    if shutil.which("pyenv"):
        found = subprocess.run(
            ["pyenv", "which", "python3.13"],  # noqa: S607 - pyenv from PATH, as bootstrap does
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip():
            return Path(found.stdout.strip())
    on_path = shutil.which("python3.13")
    if on_path:
        return Path(on_path)
    msg = "Python 3.13 not found: install it (pyenv install 3.13.0) or put python3.13 on PATH"
    raise RehearsalError(msg)
