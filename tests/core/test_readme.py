"""The README's library example runs as written against a factory-new virtual gateway."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rayzig_core.testing.gateway import GatewayThread

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README has no python example"
    return blocks[0]


def test_readme_example_pairs_and_toggles(tmp_path: Path) -> None:
    gateway = GatewayThread(tmp_path / "gateway.json").start()
    try:
        assert gateway.factory is not None
        module = gateway.call(lambda g: g.site.modules()[0])
        before = module.outputs[0].is_on
        script = tmp_path / "example.py"
        script.write_text(_example(), encoding="utf-8")
        env = {
            "RAYZIG_GATEWAY_PORT": str(gateway.port),
            "RAYZIG_DEFAULT_PASSWORD": gateway.factory.default_password,
            "RAYZIG_NEW_PASSWORD": "mauve-otter-juggles-47-kites",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(
                README.parent
            ),  # this checkout's rayzig_core, not another installed one
        }
        result = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert gateway.call(lambda g: g.fingerprint) in result.stdout
        after = gateway.call(lambda g: g.site.module(module.module_id).outputs[0].is_on)
        assert after is (not before)
        assert ("on" if after else "off") in result.stdout.splitlines()[-1]
        # Once more: the gateway is out of factory state now, pairing goes straight through.
        again = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        assert gateway.call(lambda g: g.site.module(module.module_id).outputs[0].is_on) is before
    finally:
        gateway.stop()


def test_readme_example_uses_only_the_public_api() -> None:
    """The example imports from ``rayzig_core`` itself, never from a module behind it."""
    imports = re.findall(r"^(?:from|import) (\S+)", _example(), re.M)
    assert "rayzig_core" in imports
    assert not [name for name in imports if name.startswith("rayzig_core.")]
    assert "from rayzig_core import RayzigClient, TcpConnector" in _example()


@pytest.mark.parametrize("key", ["RAYZIG_NEW_PASSWORD"])
def test_readme_example_never_prints_the_password(key: str) -> None:
    assert f"print({key}" not in _example()
