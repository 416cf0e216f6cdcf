"""The public API: ``rayzig_core``'s names resolve, agree with the type checker's, load lazily."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rayzig_core

ROOT = Path(__file__).resolve().parents[2]
NEVER_LOADED = ("homeassistant", "rayzig_core.virtual_gateway", "rayzig_core.testing")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter of this tree has loaded after running ``code``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return set(result.stdout.split())


def under(modules: set[str], *packages: str) -> set[str]:
    return {name for name in modules if name.split(".")[0] in packages or name.startswith(packages)}


def type_checking_imports() -> dict[str, str]:
    """Name → module of every import under ``if TYPE_CHECKING:`` in rayzig_core/__init__.py."""
    tree = ast.parse(Path(rayzig_core.__file__).read_text(encoding="utf-8"))
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
        if node.test.id == "TYPE_CHECKING"
    ]
    return {
        alias.asname or alias.name: str(node.module)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_every_public_name_resolves_to_its_module_value() -> None:
    assert len(rayzig_core.__all__) == len(set(rayzig_core.__all__))
    for name in rayzig_core.__all__:
        module = importlib.import_module(rayzig_core._EXPORTS[name])
        assert getattr(rayzig_core, name) is getattr(module, name), name


def test_all_the_loader_and_the_type_checker_agree() -> None:
    """A name added to one of the three lists and not the others fails here, not at a user's."""
    assert set(rayzig_core.__all__) == set(rayzig_core._EXPORTS)
    assert type_checking_imports() == rayzig_core._EXPORTS


def test_the_api_names_the_client_and_what_the_integration_uses() -> None:
    expected = {
        "RayzigClient", "ClientCredentials", "GatewayIdentity", "TcpConnector", "I2CConnector",
        "Module", "Output", "Event", "EventKind", "UserLevel", "RestorePreset", "FirmwarePart",
        "FirmwareVersion", "GatewayInfo", "ConnectionState", "MAX_EVENTS_PER_MODULE",
        "RayzigError", "RayzigInternalError", "Notification", "OutputChanged", "ModuleLeft",
        "ErrorCode", "EventLogSync", "Permission", "allowed", "permission_to_manage",
        "PERMISSIONS", "check_password", "PolicyViolation", "CatalogueEntry",
        "UpdateServerClient", "version_key", "install_firmware", "install_disruption",
        "FirmwareAdvisory", "AdvisorySeverity", "affecting",
    }  # fmt: skip
    assert expected <= set(rayzig_core.__all__)
    internals = {"Envelope", "encode", "decode", "CATALOGUE", "GatewayHello", "SecureChannel"}
    assert not internals & set(rayzig_core.__all__)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(AttributeError, match="no attribute 'RayzigClinet'"):
        _ = rayzig_core.RayzigClinet  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from rayzig_core import Envelope", {})  # the import statement itself
    assert "RayzigClient" in dir(rayzig_core)


def test_importing_the_package_loads_nothing_behind_it() -> None:
    loaded = loaded_after("import rayzig_core")
    assert "rayzig_core" in loaded
    assert not under(loaded, *NEVER_LOADED, "smbus2", "aiohttp", "zeroconf", "cryptography")
    assert under(loaded, "rayzig_core") == {"rayzig_core"}


def test_every_name_but_the_i2c_connector_leaves_the_i2c_transport_alone() -> None:
    names = [name for name in rayzig_core.__all__ if name != "I2CConnector"]
    loaded = loaded_after(f"from rayzig_core import {', '.join(names)}")
    assert "rayzig_core.client" in loaded
    assert not under(loaded, *NEVER_LOADED, "smbus2", "rayzig_core.transport.i2c")


def test_smbus2_loads_only_when_an_i2c_transport_opens_its_bus() -> None:
    """Looking up and building an I2CConnector loads the transport, not smbus2 (nor ctypes)."""
    loaded = loaded_after(
        "from rayzig_core import I2CConnector; I2CConnector(1, 0x42, channel=3).description"
    )
    assert "rayzig_core.transport.i2c" in loaded
    assert not under(loaded, *NEVER_LOADED, "smbus2", "ctypes")
    loaded = loaded_after(
        "import asyncio\n"
        "from rayzig_core import I2CConnector, DeviceNotFoundError\n"
        "async def main():\n"
        "    try:\n"
        "        await I2CConnector(9999, 0x42).connect()\n"
        "    except DeviceNotFoundError:\n"
        "        pass\n"
        "asyncio.run(main())"
    )
    assert "smbus2" in loaded
    assert not under(loaded, *NEVER_LOADED)


def test_the_frame_layer_loads_no_client_through_the_package() -> None:
    loaded = loaded_after("import rayzig_core.protocol.frames")
    assert not under(
        loaded, "rayzig_core.client", "rayzig_core.protocol.session", "aiohttp", "zeroconf"
    )
    assert not under(loaded, *NEVER_LOADED, "smbus2")
