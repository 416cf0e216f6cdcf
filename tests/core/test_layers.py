"""Which way the library's parts depend on each other (docs/DEVELOPMENT.md, architecture contract).

The test harness builds on the virtual gateway, never the reverse: ``rayzig_core.virtual_gateway``
must load without ``rayzig_core.testing``, and its root offers its names without loading them all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rayzig_core import virtual_gateway

REPO = Path(__file__).parents[2]


def _modules_loaded_by(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    return set(result.stdout.split())


def test_the_virtual_gateway_does_not_import_the_test_harness() -> None:
    loaded = _modules_loaded_by(
        "import importlib, pkgutil, rayzig_core.virtual_gateway as package\n"
        "for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "    importlib.import_module(info.name)"
    )
    assert "rayzig_core.virtual_gateway.device.gateway" in loaded
    assert "rayzig_core.virtual_gateway.i2c" in loaded
    assert not {name for name in loaded if name.startswith("rayzig_core.testing")}


def test_the_package_root_offers_its_names_and_loads_them_on_first_use() -> None:
    loaded = _modules_loaded_by("import rayzig_core.virtual_gateway")
    assert "rayzig_core.virtual_gateway.server" not in loaded
    assert "asyncio" not in loaded
    for name in virtual_gateway.__all__:
        assert getattr(virtual_gateway, name) is not None, name
