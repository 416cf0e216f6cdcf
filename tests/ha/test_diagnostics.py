"""Diagnostics: useful content, and no key, fingerprint, serial, user or host in the output."""

from __future__ import annotations

import json

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.rayzig.const import CONF_UPDATE_SERVER_URL, CONF_UPDATE_SIGNING_KEY
from custom_components.rayzig.diagnostics import _plain, async_get_config_entry_diagnostics
from rayzig_core.client import ClientCredentials
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entry_for, loaded_entry, site_modules


async def test_diagnostics_redacted(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    *,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The downloaded diagnostics contain the site but none of its secrets or identifiers."""
    assert await async_setup_component(hass, "diagnostics", {})
    stranger = "0123-4567-89AB-CDEF-0123-4567-89AB-CDEF"
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        # As after the gateway presented another key while Home Assistant was running.
        entry.runtime_data.client.stats.last_error = f"Gateway key changed: presented {stranger}"
        result = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    text = json.dumps(result)
    gateway_info = gateway.call(lambda gw: (gw.serial, gw.fingerprint))
    secrets = {
        credentials.client_private_key.hex(),
        credentials.gateway_public_key.hex(),
        credentials.gateway_fingerprint,
        credentials.client_fingerprint,
        credentials.serial,
        credentials.user,
        *gateway_info,
        *(module.serial for module in site_modules(gateway)),
        stranger,
    }
    for secret in secrets:
        assert secret not in text, secret
    assert result["connection"]["state"] == "connected"
    assert result["connection"]["level"] == "system"
    assert len(result["site"]["modules"]) == len(site_modules(gateway))
    assert result["entry"]["data"]["credentials"] == "**REDACTED**"
    assert result["firmware"] is None


async def test_diagnostics_with_update_server(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With an update server configured its state is included; the signing key is not."""
    key = "ab" * 32
    entry = entry_for(
        gateway,
        credentials,
        {CONF_UPDATE_SERVER_URL: "http://127.0.0.1:9/", CONF_UPDATE_SIGNING_KEY: key},
    )
    async with loaded_entry(hass, entry, monkeypatch):
        result = await async_get_config_entry_diagnostics(hass, entry)
    assert result["firmware"] is not None
    assert key not in json.dumps(result)


def test_plain_values() -> None:
    """Bytes never appear in diagnostics, only their length."""
    assert _plain({1: b"\x00\x01", "x": (1, 2)}) == {"1": "<2 bytes>", "x": [1, 2]}
