"""The one connector factory (config flow and setup): TCP to a bridge, or local I2C."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from custom_components.rayzig.connection import I2CUnavailableError, create_connector
from custom_components.rayzig.const import (
    CONF_CONNECTION,
    CONF_HOST,
    CONF_I2C_ADDRESS,
    CONF_I2C_BUS,
    CONF_PORT,
    CONNECT_TIMEOUT,
    CONNECTION_I2C,
    CONNECTION_TCP,
    DEFAULT_I2C_ADDRESS,
    DEFAULT_I2C_BUS,
    DEFAULT_PORT,
)
from rayzig_core.transport.i2c import I2CConnector
from rayzig_core.transport.tcp import TcpConnector

from .conftest import I2C_TRANSPORT

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "custom_components" / "rayzig"


def test_bridge() -> None:
    """A bridge entry gets a TCP connector with the setup timeout (port 7780 if none stored)."""
    connector = create_connector({CONF_CONNECTION: CONNECTION_TCP, CONF_HOST: "gw", CONF_PORT: 1})
    assert isinstance(connector, TcpConnector)
    assert (connector.host, connector.port) == ("gw", 1)
    assert connector.timeout == CONNECT_TIMEOUT.total_seconds()
    connector = create_connector({CONF_HOST: "gw"})
    assert isinstance(connector, TcpConnector)
    assert connector.port == DEFAULT_PORT


def test_i2c() -> None:
    """An I2C entry gets rayzig_core's I2C connector for its bus and address (or the defaults)."""
    connector = create_connector(
        {CONF_CONNECTION: CONNECTION_I2C, CONF_I2C_BUS: 3, CONF_I2C_ADDRESS: 0x21}
    )
    assert isinstance(connector, I2CConnector)
    assert (connector.bus, connector.address, connector.channel) == (3, 0x21, 0)
    connector = create_connector({CONF_CONNECTION: CONNECTION_I2C})
    assert isinstance(connector, I2CConnector)
    assert (connector.bus, connector.address) == (DEFAULT_I2C_BUS, DEFAULT_I2C_ADDRESS)


def test_i2c_transport_loaded_only_for_i2c() -> None:
    """Only installations wired to the gateway import the I2C transport (smbus2 loads later).

    A fresh interpreter loads the whole integration and builds a bridge connector: neither is
    loaded; building an I2C connector loads the transport, and smbus2 waits until it connects.
    """
    platforms = ", ".join(
        path.stem for path in sorted(COMPONENT.glob("*.py")) if path.stem != "__init__"
    )
    code = f"""
import sys
from custom_components.rayzig import {platforms}
from custom_components.rayzig.connection import create_connector
loaded = lambda: sorted({{"smbus2", {I2C_TRANSPORT!r}}} & set(sys.modules))
create_connector({{"connection": "tcp", "host": "gw", "port": 7780}})
print(loaded())
create_connector({{"connection": "i2c", "i2c_bus": 1, "i2c_address": 0x42}})
print(loaded())
"""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    imported_for_tcp, imported_for_i2c = result.stdout.splitlines()
    assert imported_for_tcp == "[]"
    assert imported_for_i2c == repr([I2C_TRANSPORT])


def test_i2c_transport_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rayzig_core without I2C support: a clear error of its own (a connection failure)."""
    monkeypatch.setitem(sys.modules, I2C_TRANSPORT, None)
    with pytest.raises(I2CUnavailableError, match="no I2C transport"):
        create_connector({CONF_CONNECTION: CONNECTION_I2C, CONF_I2C_BUS: 1, CONF_I2C_ADDRESS: 66})


def test_damaged_connection_fields() -> None:
    """No host, or an address outside the 7-bit range: KeyError and ValueError."""
    with pytest.raises(KeyError):
        create_connector({CONF_CONNECTION: CONNECTION_TCP})
    with pytest.raises(ValueError, match="outside the usable 7-bit range"):
        create_connector({CONF_CONNECTION: CONNECTION_I2C, CONF_I2C_ADDRESS: 0x05})
