"""Binary sensors: module reachable (connectivity) and battery low (own minimum or option)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import CONF_LOW_BATTERY_THRESHOLD
from rayzig_core.client import ClientCredentials
from rayzig_core.models import ModuleKind
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, entry_for, loaded_entry, site_modules, wait_for


async def test_reachable(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reachable turns off when the module drops off the mesh, and on when it returns."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch):
        sensor = entity_id(hass, "binary_sensor", f"{module.serial}_reachable")
        state = hass.states.get(sensor)
        assert state.state == STATE_ON
        assert state.attributes["device_class"] == "connectivity"
        assert er.async_get(hass).async_get(sensor).entity_category == "diagnostic"
        gateway.call(lambda gw: gw.site.power_outage([module.module_id]))
        await wait_for(hass, lambda: hass.states.get(sensor).state == STATE_OFF)
        gateway.call(lambda gw: gw.site.power_restore([module.module_id]))
        await wait_for(hass, lambda: hass.states.get(sensor).state == STATE_ON)


async def test_battery_low_at_module_minimum(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a threshold option, battery low follows the module's designated minimum."""
    modules = site_modules(gateway)
    battery = next(m for m in modules if m.kind is ModuleKind.BATTERY)
    mains = next(m for m in modules if m.kind is ModuleKind.MAINS)
    percent = battery.telemetry.battery_percent or 0
    minimum = battery.telemetry.battery_minimum_percent or 0
    async with loaded_entry(hass, config_entry, monkeypatch):
        registry = er.async_get(hass)
        assert (
            registry.async_get_entity_id("binary_sensor", "rayzig", f"{mains.serial}_battery_low")
            is None
        )
        sensor = entity_id(hass, "binary_sensor", f"{battery.serial}_battery_low")
        assert hass.states.get(sensor).state == STATE_OFF
        assert hass.states.get(sensor).attributes["device_class"] == "battery"
        gateway.call(lambda gw: gw.site.drain_battery(battery.module_id, percent - minimum))
        await wait_for(hass, lambda: hass.states.get(sensor).state == STATE_ON)


async def test_battery_low_threshold_option(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A threshold in the options overrides the module's minimum."""
    battery = next(m for m in site_modules(gateway) if m.kind is ModuleKind.BATTERY)
    percent = battery.telemetry.battery_percent or 0
    entry = entry_for(gateway, credentials, {CONF_LOW_BATTERY_THRESHOLD: percent})
    async with loaded_entry(hass, entry, monkeypatch):
        sensor = entity_id(hass, "binary_sensor", f"{battery.serial}_battery_low")
        assert hass.states.get(sensor).state == STATE_ON
        gateway.call(lambda gw: gw.site.charge_battery(battery.module_id, min(100, percent + 1)))
        if percent < 100:
            await wait_for(hass, lambda: hass.states.get(sensor).state == STATE_OFF)


async def test_module_gone_from_data(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Entities of a module missing from the data are unavailable and report nothing."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        sensor = entity_id(hass, "binary_sensor", f"{module.serial}_reachable")
        coordinator = entry.runtime_data.coordinator
        coordinator.async_set_updated_data(replace(coordinator.data, modules={}))
        await hass.async_block_till_done()
        assert hass.states.get(sensor).state == STATE_UNAVAILABLE
        entity = hass.data["entity_components"]["binary_sensor"].get_entity(sensor)
        assert entity.is_on is None
