"""Telemetry sensors: battery (battery modules only), link quality, event-log fill."""

from __future__ import annotations

import pytest
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, PERCENTAGE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import DOMAIN
from rayzig_core.models import MAX_EVENTS_PER_MODULE, ModuleKind
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, loaded_entry, site_modules, wait_for


async def test_battery_sensor(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Battery modules report their charge; mains modules have no battery sensor."""
    modules = site_modules(gateway)
    battery = next(m for m in modules if m.kind is ModuleKind.BATTERY)
    mains = next(m for m in modules if m.kind is ModuleKind.MAINS)
    async with loaded_entry(hass, config_entry, monkeypatch):
        registry = er.async_get(hass)
        assert registry.async_get_entity_id("sensor", DOMAIN, f"{mains.serial}_battery") is None
        sensor = entity_id(hass, "sensor", f"{battery.serial}_battery")
        state = hass.states.get(sensor)
        assert state.state == str(battery.telemetry.battery_percent)
        assert state.attributes["device_class"] == "battery"
        assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == PERCENTAGE
        gateway.call(lambda gw: gw.site.drain_battery(battery.module_id, 10))
        expected = str((battery.telemetry.battery_percent or 0) - 10)
        await wait_for(hass, lambda: hass.states.get(sensor).state == expected)


async def test_link_quality_disabled_by_default(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Link quality is a diagnostic sensor, disabled until the user enables it."""
    first, second = site_modules(gateway)[:2]
    config_entry.add_to_hass(hass)
    registry = er.async_get(hass)
    registry.async_get_or_create(
        "sensor", DOMAIN, f"{second.serial}_link_quality", config_entry=config_entry
    )
    async with loaded_entry(hass, config_entry, monkeypatch):
        disabled = registry.async_get(entity_id(hass, "sensor", f"{first.serial}_link_quality"))
        assert disabled.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert disabled.entity_category == "diagnostic"
        sensor = entity_id(hass, "sensor", f"{second.serial}_link_quality")
        assert hass.states.get(sensor).state == str(second.telemetry.link_quality)
        gateway.call(lambda gw: gw.site.set_link_quality(second.module_id, 77))
        await wait_for(hass, lambda: hass.states.get(sensor).state == "77")


async def test_event_log_fill(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Event-log fill is the share of the module's 8192-record ring in use."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch):
        sensor = entity_id(hass, "sensor", f"{module.serial}_event_log_fill")
        assert float(hass.states.get(sensor).state) == pytest.approx(
            100 * module.event_count / MAX_EVENTS_PER_MODULE, abs=0.01
        )

        def switch_many(gw: object) -> None:
            for n in range(82):
                gw.site.set_output(module.module_id, 0, n % 2 == 0, user="installer")  # type: ignore[attr-defined]

        gateway.call(switch_many)
        expected = 100 * (module.event_count + 82) / MAX_EVENTS_PER_MODULE
        await wait_for(
            hass,
            lambda: float(hass.states.get(sensor).state) == pytest.approx(expected, abs=0.01),
        )


async def test_runtime_sensors_disabled_by_default(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On-time and switching cycles exist per output but wait to be enabled (two per output would
    double a large site's entities); their hourly statistics are recorded either way."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch):
        registry = er.async_get(hass)
        for key in ("on_time", "switching_cycles"):
            for output in module.outputs:
                entry = registry.async_get(
                    entity_id(hass, "sensor", f"{module.serial}_{key}_{output.index}")
                )
                assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
                assert hass.states.get(entry.entity_id) is None
