"""Helpers of the runtime tests: load an entry with a fast-retrying real client, wait for things."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components.rayzig as integration
from custom_components.rayzig.const import (
    CONF_CONNECTION,
    CONF_CREDENTIALS,
    CONF_HOST,
    CONF_PORT,
    CONNECTION_TCP,
    DOMAIN,
)
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import Module, UserLevel
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector
from rayzig_core.virtual_gateway import VirtualGateway

from .conftest import OWNER, OWNER_PASSWORD

FAST_CLIENT: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.2, "request_timeout": 2.0}


def FastClient(*args: Any, **kwargs: Any) -> RayzigClient:  # noqa: N802 - stands in for a class
    """The real client with short back-off and timeouts (over setup's), so outages take seconds."""
    return RayzigClient(*args, **{**kwargs, **FAST_CLIENT})


async def wait_for(
    hass: HomeAssistant, predicate: Callable[[], bool], seconds: float = 15.0
) -> None:
    """Let Home Assistant run until ``predicate()`` holds (AssertionError after ``seconds``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
        await hass.async_block_till_done()


@asynccontextmanager
async def loaded_entry(
    hass: HomeAssistant, entry: MockConfigEntry, monkeypatch: object
) -> AsyncIterator[MockConfigEntry]:
    """Set ``entry`` up with the fast client; unload it afterwards if still loaded.

    With an update server, the first catalogue fetch (a background task of setup) has finished
    when the entry is handed over.
    """
    monkeypatch.setattr(integration, "RayzigClient", FastClient)  # type: ignore[attr-defined]
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    if entry.state is ConfigEntryState.LOADED and (firmware := entry.runtime_data.firmware):
        # Setup fetches the firmware catalogue in the background: let tests see its outcome.
        await wait_for(hass, lambda: firmware.data is not None or not firmware.last_update_success)
    try:
        yield entry
    finally:
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()


def site_modules(gateway: GatewayThread) -> list[Module]:
    """The gateway's modules, read on its own thread."""
    return gateway.call(lambda gw: gw.site.modules())


def entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    """Entity id of a Rayzig entity by its unique id."""
    found = er.async_get(hass).async_get_entity_id(platform, "rayzig", unique_id)
    assert found is not None, unique_id
    return found


def first_module(gateway: GatewayThread, predicate: Callable[[Module], bool]) -> Module:
    """The first module of the site matching ``predicate``."""
    return next(module for module in site_modules(gateway) if predicate(module))


def on_gateway(gateway: GatewayThread, function: Callable[[VirtualGateway], object]) -> object:
    """Run ``function`` on the gateway's thread."""
    return gateway.call(function)


async def pair_user(
    gateway: GatewayThread, name: str, level: UserLevel, password: str
) -> ClientCredentials:
    """Create a gateway user (as the installer) and pair a client as that user."""
    admin = RayzigClient(TcpConnector("127.0.0.1", gateway.port), client_name="admin tool")
    identity = await admin.identify()
    await admin.pair(identity, OWNER, OWNER_PASSWORD)
    await admin.connect()
    try:
        await admin.add_user(name, level, password)
    finally:
        await admin.close()
    client = RayzigClient(TcpConnector("127.0.0.1", gateway.port), client_name="Home Assistant")
    credentials = await client.pair(identity, name, password)
    await client.close()
    return credentials


def entry_for(
    gateway: GatewayThread, credentials: ClientCredentials, options: dict[str, Any] | None = None
) -> MockConfigEntry:
    """A config entry for the gateway with ``credentials``."""
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
        options=options or {},
    )
