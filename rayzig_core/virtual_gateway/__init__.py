"""The virtual gateway: the device's application, a simulated mesh, and the ways to reach it.

What the package offers (import these from here, not from the modules that define them):

* the device (``device/``): :class:`VirtualGateway`, :class:`GatewayConnection`,
  :class:`FactorySecrets`, :class:`FactoryResetReport`, :data:`FACTORY_USER`, :data:`HARDWARE`,
  and the persisted :class:`GatewayState` with its :class:`UserAccount` and :class:`ClientRecord`;
* the simulated mesh (``site/``): :class:`Site`, :class:`EventRing`, :func:`hop_count`,
  :data:`DEFAULT_HOP_LATENCY`, :data:`MAX_HOPS`;
* the firmware store: :class:`FirmwareStore`;
* serving it: over TCP with its state file (:class:`GatewayServer`, :class:`TcpFaults`,
  :func:`open_gateway`, :func:`load_state`, :func:`save_state`, :class:`GatewayStateError`) and on
  a fake I2C bus (:func:`serve_on_fake_bus`, :class:`I2CGatewayAdapter`, :class:`I2CSlaveDevice`).

Names are imported on first use, so that importing one part (e.g. the pure firmware store) does
not load asyncio and the TCP server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.device.accounts import FACTORY_USER
    from rayzig_core.virtual_gateway.device.connection import GatewayConnection
    from rayzig_core.virtual_gateway.device.gateway import (
        FactoryResetReport,
        FactorySecrets,
        VirtualGateway,
    )
    from rayzig_core.virtual_gateway.device.identity import HARDWARE
    from rayzig_core.virtual_gateway.device.state import ClientRecord, GatewayState, UserAccount
    from rayzig_core.virtual_gateway.firmware_store import FirmwareStore
    from rayzig_core.virtual_gateway.i2c import (
        I2CGatewayAdapter,
        I2CSlaveDevice,
        serve_on_fake_bus,
    )
    from rayzig_core.virtual_gateway.server import (
        GatewayServer,
        GatewayStateError,
        TcpFaults,
        load_state,
        open_gateway,
        save_state,
    )
    from rayzig_core.virtual_gateway.site.mesh import DEFAULT_HOP_LATENCY, MAX_HOPS, hop_count
    from rayzig_core.virtual_gateway.site.rings import EventRing
    from rayzig_core.virtual_gateway.site.site import Site

_HOME = {
    "FACTORY_USER": "device.accounts",
    "GatewayConnection": "device.connection",
    "FactoryResetReport": "device.gateway",
    "FactorySecrets": "device.gateway",
    "VirtualGateway": "device.gateway",
    "HARDWARE": "device.identity",
    "ClientRecord": "device.state",
    "GatewayState": "device.state",
    "UserAccount": "device.state",
    "FirmwareStore": "firmware_store",
    "I2CGatewayAdapter": "i2c",
    "I2CSlaveDevice": "i2c",
    "serve_on_fake_bus": "i2c",
    "GatewayServer": "server",
    "GatewayStateError": "server",
    "TcpFaults": "server",
    "load_state": "server",
    "open_gateway": "server",
    "save_state": "server",
    "DEFAULT_HOP_LATENCY": "site.mesh",
    "MAX_HOPS": "site.mesh",
    "hop_count": "site.mesh",
    "EventRing": "site.rings",
    "Site": "site.site",
}
"""Where each name the package offers is defined."""

__all__ = [
    "DEFAULT_HOP_LATENCY",
    "FACTORY_USER",
    "HARDWARE",
    "MAX_HOPS",
    "ClientRecord",
    "EventRing",
    "FactoryResetReport",
    "FactorySecrets",
    "FirmwareStore",
    "GatewayConnection",
    "GatewayServer",
    "GatewayState",
    "GatewayStateError",
    "I2CGatewayAdapter",
    "I2CSlaveDevice",
    "Site",
    "TcpFaults",
    "UserAccount",
    "VirtualGateway",
    "hop_count",
    "load_state",
    "open_gateway",
    "save_state",
    "serve_on_fake_bus",
]


def __getattr__(name: str) -> Any:
    """Import a name the package offers from its module on first use (PEP 562)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
