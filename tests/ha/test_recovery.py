"""Prompt recovery: a probe or a zeroconf announcement ends the reconnection wait at once.

The client here waits an hour between attempts, so a reconnection within the test comes only from
the nudge under test. Probes run on Home Assistant's test clock (``async_fire_time_changed``); the
tests wait for connection states and background tasks, never for time to pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from ipaddress import ip_address
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

import custom_components.rayzig as integration
from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.recovery import (
    PROBE_INTERVAL,
    RECONNECT_BACKOFF_MAX,
    async_gateway_seen,
)
from rayzig_core.client import RayzigClient
from rayzig_core.models import ConnectionState
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, site_modules

HOUR = 3600.0
LIMIT = 30.0
"""Only a safety net against a hanging test: every wait below ends on an event."""


def SlowClient(*args: Any, **kwargs: Any) -> RayzigClient:  # noqa: N802 - stands in for a class
    """The real client, waiting an hour between reconnection attempts."""
    return RayzigClient(
        *args, **{**kwargs, "backoff_initial": HOUR, "backoff_max": HOUR, "request_timeout": 5.0}
    )


@pytest.fixture
async def slow_entry(
    hass: HomeAssistant, config_entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MockConfigEntry]:
    """The entry, loaded with a client that never reconnects by itself within a test."""
    monkeypatch.setattr(integration, "RayzigClient", SlowClient)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)  # the first import is done
    yield config_entry
    if config_entry.state is ConfigEntryState.LOADED:
        await hass.config_entries.async_unload(config_entry.entry_id)
        await hass.async_block_till_done()


async def reach(client: RayzigClient, state: ConnectionState) -> None:
    """Wait until ``client`` is in ``state``."""
    changed = asyncio.Event()
    unsubscribe = client.subscribe_state(lambda _: changed.set())
    try:
        async with asyncio.timeout(LIMIT):
            while client.state is not state:
                changed.clear()
                await changed.wait()
    finally:
        unsubscribe()


async def probe_due(hass: HomeAssistant) -> None:
    """Let one probe interval pass on Home Assistant's clock, and the probe finish."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=PROBE_INTERVAL * 1.5))
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_home_assistant_caps_the_back_off(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    config_entry.add_to_hass(hass)
    client = await integration._async_build_client(hass, config_entry)
    assert client.backoff_max == RECONNECT_BACKOFF_MAX <= 10
    await client.close()


async def test_probe_reconnects_once_the_gateway_answers(
    hass: HomeAssistant, gateway: GatewayThread, slow_entry: MockConfigEntry
) -> None:
    client: RayzigClient = slow_entry.runtime_data.client
    switch = entity_id(hass, "switch", f"{site_modules(gateway)[0].serial}_output_0")
    gateway.stop()
    await reach(client, ConnectionState.BACKOFF)
    await hass.async_block_till_done()
    assert hass.states.get(switch).state == STATE_UNAVAILABLE
    # Nothing answers: the probes fail, the client keeps waiting.
    await probe_due(hass)
    await probe_due(hass)
    assert client.state is ConnectionState.BACKOFF
    connects = client.stats.connects

    gateway.start()
    await probe_due(hass)
    await reach(client, ConnectionState.CONNECTED)
    assert client.stats.connects == connects + 1
    await hass.async_block_till_done()
    assert hass.states.get(switch).state != STATE_UNAVAILABLE


async def test_probe_stops_when_the_transport_opens_but_the_session_does_not(
    hass: HomeAssistant,
    gateway: GatewayThread,
    slow_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bridge whose gateway is away: one nudge, then the back-off decides (no hammering)."""
    client: RayzigClient = slow_entry.runtime_data.client
    gateway.stop()
    await reach(client, ConnectionState.BACKOFF)
    probes: list[None] = []

    async def transport_opens(timeout: float) -> bool:
        probes.append(None)
        return True

    monkeypatch.setattr(client, "probe", transport_opens)
    failures = client.stats.connect_failures
    await probe_due(hass)  # answers: the client tries at once, and fails (the gateway is away)
    await reach(client, ConnectionState.BACKOFF)
    await hass.async_block_till_done()
    assert client.stats.connect_failures == failures + 1
    await probe_due(hass)  # answers again: the session is what fails; probing ends
    for _ in range(3):
        await probe_due(hass)
    assert len(probes) == 2
    assert client.stats.connect_failures == failures + 1
    assert client.state is ConnectionState.BACKOFF


async def test_zeroconf_announcement_reconnects_at_once(
    hass: HomeAssistant, gateway: GatewayThread, slow_entry: MockConfigEntry
) -> None:
    client: RayzigClient = slow_entry.runtime_data.client
    gateway.stop()
    await reach(client, ConnectionState.BACKOFF)
    gateway.start()
    serial = str(slow_entry.unique_id)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=ZeroconfServiceInfo(
            ip_address=ip_address("127.0.0.1"),
            ip_addresses=[ip_address("127.0.0.1")],
            hostname="rayzig-bridge.local.",
            name=f"Rayzig {serial}._rayzig._tcp.local.",
            port=gateway.port,
            type="_rayzig._tcp.local.",
            properties={"serial": serial, "fingerprint": "ab:cd"},
        ),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    await reach(client, ConnectionState.CONNECTED)
    assert slow_entry.state is ConfigEntryState.LOADED  # nudged, not reloaded


async def test_announcement_while_connected_or_unloaded_changes_nothing(
    hass: HomeAssistant, slow_entry: MockConfigEntry
) -> None:
    client: RayzigClient = slow_entry.runtime_data.client
    async_gateway_seen(slow_entry)
    assert client.state is ConnectionState.CONNECTED
    await hass.config_entries.async_unload(slow_entry.entry_id)
    async_gateway_seen(slow_entry)
    assert slow_entry.state is ConfigEntryState.NOT_LOADED
