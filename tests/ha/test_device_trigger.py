"""Device triggers: one per event kind on each module device, firing automations."""

from __future__ import annotations

import pytest
import voluptuous as vol
from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_get_device_automations,
    async_mock_service,
)

from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.device_trigger import TRIGGER_SCHEMA, async_get_triggers
from custom_components.rayzig.events import EVENT_KINDS
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import loaded_entry, site_modules, wait_for


async def test_triggers_listed_for_modules_only(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Module devices offer a trigger per event kind; the gateway and others offer none."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        registry = dr.async_get(hass)
        module = site_modules(gateway)[0]
        device = registry.async_get_device(identifiers={(DOMAIN, module.serial)})
        assert device is not None
        triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device.id)
        ours = [t for t in triggers if t["domain"] == DOMAIN]
        assert sorted(t["type"] for t in ours) == sorted(EVENT_KINDS)
        assert all(t["device_id"] == device.id and t["platform"] == "device" for t in ours)
        assert all(t.get("metadata", {}) == {} for t in ours)

        gateway_device_id = entry.runtime_data.coordinator.gateway_device_id
        assert gateway_device_id is not None
        assert await async_get_triggers(hass, gateway_device_id) == []
        assert await async_get_triggers(hass, "no-such-device") == []
        other = MockConfigEntry(domain="other")
        other.add_to_hass(hass)
        foreign = registry.async_get_or_create(
            config_entry_id=other.entry_id, identifiers={("other", "x")}
        )
        assert await async_get_triggers(hass, foreign.id) == []

    with pytest.raises(vol.Invalid):
        TRIGGER_SCHEMA(
            {"platform": "device", "domain": DOMAIN, "device_id": "x", "type": "explode"}
        )


async def test_trigger_fires_automation(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An automation on "output switched by a command" runs for that module only."""
    calls: list[ServiceCall] = async_mock_service(hass, "test", "automation")
    modules = site_modules(gateway)
    first, second = modules[0], modules[1]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: first.module_id in importer.cursors)
        device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, first.serial)})
        assert device is not None
        assert await async_setup_component(
            hass,
            automation.DOMAIN,
            {
                automation.DOMAIN: [
                    {
                        "trigger": {
                            "platform": "device",
                            "domain": DOMAIN,
                            "device_id": device.id,
                            "type": "command",
                        },
                        "action": {
                            "service": "test.automation",
                            "data_template": {
                                "output": "{{ trigger.event.data.output }}",
                                "user": "{{ trigger.event.data.user }}",
                                "is_on": "{{ trigger.event.data.is_on }}",
                            },
                        },
                    },
                    {
                        "trigger": {
                            "platform": "device",
                            "domain": DOMAIN,
                            "device_id": device.id,
                            "type": "repower",
                        },
                        "action": {"service": "test.automation", "data": {"what": "repower"}},
                    },
                ]
            },
        )

        gateway.call(lambda gw: gw.site.set_output(second.module_id, 0, on=True, user="installer"))
        gateway.call(lambda gw: gw.site.set_output(first.module_id, 0, on=True, user="installer"))
        await wait_for(hass, lambda: len(calls) >= 1)
        await wait_for(hass, lambda: importer.cursors.get(second.module_id, 0) >= 2)
        assert len(calls) == 1
        assert calls[0].data == {"output": 1, "user": "installer", "is_on": True}

        gateway.call(lambda gw: gw.site.power_outage([first.module_id]))
        gateway.call(lambda gw: gw.site.power_restore([first.module_id]))
        await wait_for(hass, lambda: len(calls) >= 2)
        await wait_for(
            hass,
            lambda: importer.cursors.get(first.module_id, 0) >= 3 + len(first.outputs),
        )
        assert [call.data for call in calls[1:]] == [{"what": "repower"}]
