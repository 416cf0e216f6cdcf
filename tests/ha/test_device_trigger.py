"""Device triggers: each event kind for a whole module, and command/preset triggers per output."""

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
from custom_components.rayzig.event_data import EVENT_KINDS
from rayzig_core.models import Module
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway

from .runtime_helpers import loaded_entry, site_modules, wait_for


async def test_triggers_listed_for_modules_only(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A module offers each kind for the whole module, and command/preset for each output.

    The gateway and other integrations' devices offer none; an unloaded entry offers only the
    module-wide ones (the outputs are not known then).
    """
    module = next(m for m in site_modules(gateway) if len(m.outputs) >= 2)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        registry = dr.async_get(hass)
        device = registry.async_get_device(identifiers={(DOMAIN, module.serial)})
        assert device is not None
        triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device.id)
        ours = [t for t in triggers if t["domain"] == DOMAIN]
        assert all(t["device_id"] == device.id and t["platform"] == "device" for t in ours)
        assert all(t.get("metadata", {}) == {} for t in ours)
        assert [_key(t) for t in ours] == [*_module_wide(), *_per_output(module)]

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

        await hass.config_entries.async_unload(entry.entry_id)
        unloaded = await async_get_triggers(hass, device.id)
        assert [_key(t) for t in unloaded] == _module_wide()

    base = {"platform": "device", "domain": DOMAIN, "device_id": "x"}
    with pytest.raises(vol.Invalid):
        TRIGGER_SCHEMA({**base, "type": "explode"})
    with pytest.raises(vol.Invalid):
        TRIGGER_SCHEMA({**base, "type": "command", "subtype": "Pump", "output": 0})
    # Saved before outputs could be named: no subtype, still valid (module-wide).
    assert TRIGGER_SCHEMA({**base, "type": "command"})["type"] == "command"


def _key(trigger: dict[str, object]) -> tuple[object, ...]:
    return (trigger["type"], trigger.get("subtype"), trigger.get("output"))


def _module_wide() -> list[tuple[object, ...]]:
    output_kinds = ("command", "preset_applied")
    return [(kind, "any_output" if kind in output_kinds else None, None) for kind in EVENT_KINDS]


def _per_output(module: Module) -> list[tuple[object, ...]]:
    """The output's name as subtype (shown), its number as the key the trigger matches."""
    return [
        (kind, output.name, output.index + 1)
        for output in module.outputs
        for kind in ("command", "preset_applied")
    ]


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


def _automation(device_id: str, what: str, **trigger: object) -> dict[str, object]:
    return {
        "trigger": {"platform": "device", "domain": DOMAIN, "device_id": device_id, **trigger},
        "action": {
            "service": "test.automation",
            "data_template": {"what": what, "output": "{{ trigger.event.data.output }}"},
        },
    }


async def test_output_trigger_ignores_its_sibling(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trigger for one output fires only for it; the module-wide one fires for both outputs.

    The same holds for outputs restored by their presets after an outage, and for a trigger
    saved without a subtype (module-wide, as before outputs could be named).
    """
    calls: list[ServiceCall] = async_mock_service(hass, "test", "automation")
    module = next(m for m in site_modules(gateway) if len(m.outputs) >= 2)
    outputs = len(module.outputs)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: module.module_id in importer.cursors)
        device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, module.serial)})
        assert device is not None
        listed = {
            (t["type"], t.get("output")): t for t in await async_get_triggers(hass, device.id)
        }
        second = {k: v for k, v in listed[("command", 2)].items() if k != "device_id"}
        preset_second = {k: v for k, v in listed[("preset_applied", 2)].items() if k != "device_id"}
        anyone = {k: v for k, v in listed[("command", None)].items() if k != "device_id"}
        automations = [
            _automation(device.id, "second", **second),
            _automation(device.id, "any", **anyone),
            _automation(device.id, "saved-before", type="command"),
            _automation(device.id, "preset-second", **preset_second),
        ]
        assert await async_setup_component(
            hass, automation.DOMAIN, {automation.DOMAIN: automations}
        )
        start = importer.cursors[module.module_id]

        def switch(gw: VirtualGateway) -> None:
            gw.site.set_output(module.module_id, 0, on=True, user="alice")
            gw.site.set_output(module.module_id, 1, on=True, user="alice")

        gateway.call(switch)
        await wait_for(hass, lambda: importer.cursors[module.module_id] >= start + 2)
        await hass.async_block_till_done(
            wait_background_tasks=True
        )  # the sync fires after its cursor write
        assert sorted((c.data["what"], c.data["output"]) for c in calls) == [
            ("any", 1),
            ("any", 2),
            ("saved-before", 1),
            ("saved-before", 2),
            ("second", 2),
        ]

        calls.clear()
        gateway.call(lambda gw: gw.site.power_outage([module.module_id]))
        gateway.call(lambda gw: gw.site.power_restore([module.module_id]))
        await wait_for(hass, lambda: importer.cursors[module.module_id] >= start + 3 + outputs)
        await hass.async_block_till_done(wait_background_tasks=True)
        assert [(c.data["what"], c.data["output"]) for c in calls] == [("preset-second", 2)]
