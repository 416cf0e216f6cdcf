"""Shared fixtures: the real virtual gateway on loopback, a paired client, a config entry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import (
    CONF_CONNECTION,
    CONF_CREDENTIALS,
    CONF_HOST,
    CONF_PORT,
    CONNECTION_TCP,
    DOMAIN,
)
from custom_components.rayzig.sensor_runtime import RayzigRuntimeSensor
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import Module
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.i2c import I2CConnector
from rayzig_core.transport.tcp import TcpConnector

OWNER = "installer"
I2C_TRANSPORT = I2CConnector.__module__
"""rayzig_core's I2C transport: tests put None in its sys.modules entry for a library without it."""
OWNER_PASSWORD = "mauve-otter-juggles-47-kites"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/rayzig in every test."""


@pytest.fixture
def runtime_sensors_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runtime sensors enabled when created (on-time and cycles are disabled by default)."""
    monkeypatch.setattr(RayzigRuntimeSensor, "_attr_entity_registry_enabled_default", True)


@pytest.fixture
def gateway_factory(tmp_path: Path, socket_enabled: None) -> Iterator[GatewayThread]:
    """A virtual gateway in factory state (not started until the test starts it)."""
    gateway = GatewayThread(tmp_path / "gateway.json")
    yield gateway
    gateway.stop()


@pytest.fixture
def gateway(gateway_factory: GatewayThread) -> GatewayThread:
    """A running virtual gateway whose installer password is OWNER_PASSWORD."""
    gateway_factory.start()
    gateway_factory.setup_owner(OWNER_PASSWORD)
    return gateway_factory


@pytest.fixture
async def credentials(gateway: GatewayThread) -> ClientCredentials:
    """Credentials of a client paired as the installer (System level)."""
    client = RayzigClient(TcpConnector("127.0.0.1", gateway.port), client_name="Home Assistant")
    identity = await client.identify()
    creds = await client.pair(identity, OWNER, OWNER_PASSWORD)
    await client.close()
    return creds


@pytest.fixture
def config_entry(gateway: GatewayThread, credentials: ClientCredentials) -> MockConfigEntry:
    """A config entry for the gateway, not yet added to hass."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Rayzig {credentials.serial}",
        unique_id=credentials.serial,
        data={
            CONF_CONNECTION: CONNECTION_TCP,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: gateway.port,
            CONF_CREDENTIALS: credentials.to_dict(),
        },
        options={},
    )


@pytest.fixture
async def client(
    gateway: GatewayThread, credentials: ClientCredentials
) -> AsyncIterator[RayzigClient]:
    """A connected client of the gateway, closed after the test."""
    client = RayzigClient(TcpConnector("127.0.0.1", gateway.port), credentials)
    await client.connect()
    yield client
    await client.close()


@pytest.fixture
def module(gateway: GatewayThread) -> Module:
    """A module with two outputs or more, its log emptied (its numbering goes on)."""
    from .runtime_helpers import first_module  # noqa: PLC0415 - the helpers import this module

    found = first_module(gateway, lambda module: len(module.outputs) >= 2)
    gateway.call(lambda gw: gw.site.ring(found.module_id).clear())
    return found
