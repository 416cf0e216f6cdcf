"""The integration's one connector factory, used by the config flow and by setup.

An entry's connection fields say how Home Assistant reaches the gateway: local I2C on the computer
it runs on (``rayzig_core.I2CConnector``, looked up only for such entries: that loads the I2C
transport, and smbus2 loads when it opens the bus, which only a computer wired to the gateway
does), or TCP to a network bridge
or the virtual gateway. A rayzig_core without I2C support raises :class:`I2CUnavailableError`: the
config flow shows it as a form error, setup as an error that retrying will not fix.

Importing the I2C transport may read files: call :func:`create_connector` in the executor where
that matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rayzig_core
from rayzig_core import ConnectionFailedError, Connector, TcpConnector

from .const import (
    CONF_CONNECTION,
    CONF_HOST,
    CONF_I2C_ADDRESS,
    CONF_I2C_BUS,
    CONF_PORT,
    CONNECT_TIMEOUT,
    CONNECTION_I2C,
    DEFAULT_I2C_ADDRESS,
    DEFAULT_I2C_BUS,
    DEFAULT_PORT,
)


class I2CUnavailableError(ConnectionFailedError):
    """The installed rayzig_core has no I2C connector."""


def _i2c_connector(bus: int, address: int) -> Connector:
    """Return rayzig_core's I2C connector for a bus and 7-bit address."""
    try:
        connector_class = rayzig_core.I2CConnector  # loads the I2C transport now
    except ImportError as err:
        raise I2CUnavailableError("this rayzig-core has no I2C transport") from err
    return connector_class(bus, address)


def create_connector(data: Mapping[str, Any]) -> Connector:
    """Return the connector for the connection fields of a config entry (or of a flow).

    Raises I2CUnavailableError for an I2C connection when rayzig_core has no I2C transport,
    KeyError without a host for a bridge, ValueError for a bus or address out of range.
    """
    if data.get(CONF_CONNECTION) == CONNECTION_I2C:
        return _i2c_connector(
            int(data.get(CONF_I2C_BUS, DEFAULT_I2C_BUS)),
            int(data.get(CONF_I2C_ADDRESS, DEFAULT_I2C_ADDRESS)),
        )
    return TcpConnector(
        str(data[CONF_HOST]),
        int(data.get(CONF_PORT, DEFAULT_PORT)),
        timeout=CONNECT_TIMEOUT.total_seconds(),
    )
