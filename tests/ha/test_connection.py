"""The one connector factory (config flow and setup): TCP to a bridge, or local I2C."""

from __future__ import annotations

import sys

import pytest

from custom_components.rayzig import connection
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


def test_i2c_transport_loaded_only_for_i2c(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only installations wired to the gateway import the I2C transport."""
    imported: list[str] = []
    real_import = connection.importlib.import_module

    def recording_import(name: str) -> object:
        imported.append(name)
        return real_import(name)

    monkeypatch.setattr(connection.importlib, "import_module", recording_import)
    create_connector({CONF_CONNECTION: CONNECTION_TCP, CONF_HOST: "gw", CONF_PORT: 7780})
    assert imported == []
    create_connector({CONF_CONNECTION: CONNECTION_I2C, CONF_I2C_BUS: 1, CONF_I2C_ADDRESS: 0x42})
    assert imported == [connection.I2C_MODULE]


def test_i2c_transport_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rayzig_core without I2C support: a clear error of its own (a connection failure)."""
    monkeypatch.setitem(sys.modules, connection.I2C_MODULE, None)
    with pytest.raises(I2CUnavailableError, match="no I2C transport"):
        create_connector({CONF_CONNECTION: CONNECTION_I2C, CONF_I2C_BUS: 1, CONF_I2C_ADDRESS: 66})


def test_damaged_connection_fields() -> None:
    """No host, or an address outside the 7-bit range: KeyError and ValueError."""
    with pytest.raises(KeyError):
        create_connector({CONF_CONNECTION: CONNECTION_TCP})
    with pytest.raises(ValueError, match="outside the usable 7-bit range"):
        create_connector({CONF_CONNECTION: CONNECTION_I2C, CONF_I2C_ADDRESS: 0x05})
