"""Event entity per module: fed by the importer, translated event types, restored state."""

from __future__ import annotations

from dataclasses import replace

import pytest
from homeassistant.components.event import ATTR_EVENT_TYPE, ATTR_EVENT_TYPES
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_send
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.event import RayzigModuleEvent
from custom_components.rayzig.event_data import EVENT_KINDS, signal_new_event
from rayzig_core.models import Event, EventKind, ModuleKind
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, loaded_entry, site_modules, wait_for
from .test_events import flood


@pytest.fixture(autouse=True)
def event_entities_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event entity is disabled by default (test_logbook checks that): enable it here."""
    monkeypatch.setattr(RayzigModuleEvent, "_attr_entity_registry_enabled_default", True)


async def test_event_entity_follows_the_log(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The initial import shows each module's newest record; new records follow at once."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        module = site_modules(gateway)[0]
        event_entity = entity_id(hass, "event", f"{module.serial}_event")
        await wait_for(
            hass, lambda: hass.states.get(event_entity).attributes.get(ATTR_EVENT_TYPE) is not None
        )
        state = hass.states.get(event_entity)
        assert state.attributes[ATTR_EVENT_TYPES] == list(EVENT_KINDS)
        assert state.attributes[ATTR_EVENT_TYPE] == "power_on"
        assert state.attributes["seq"] == 1
        assert state.attributes["friendly_name"] == f"{module.name} Event"
        registry_entry = er.async_get(hass).async_get(event_entity)
        assert registry_entry is not None
        assert registry_entry.translation_key == "module_event"

        gateway.call(lambda gw: gw.site.set_output(module.module_id, 0, on=True, user="installer"))
        await wait_for(
            hass, lambda: hass.states.get(event_entity).attributes[ATTR_EVENT_TYPE] == "command"
        )
        state = hass.states.get(event_entity)
        assert state.attributes["output"] == 1
        assert state.attributes["user"] == "installer"
        assert state.attributes["is_on"] is True
        assert state.attributes["seq"] == 2
        assert state.attributes["lost"] == 0
        assert state.attributes["module_time"].endswith("+00:00")

        # A power cut and return: repower, then one preset_applied per output.
        gateway.call(lambda gw: gw.site.power_outage([module.module_id]))
        gateway.call(lambda gw: gw.site.power_restore([module.module_id]))
        await wait_for(
            hass,
            lambda: hass.states.get(event_entity).attributes[ATTR_EVENT_TYPE] == "preset_applied",
        )
        assert hass.states.get(event_entity).attributes["output"] == len(module.outputs)
        entry_id = entry.entry_id

    # Unloaded: the entity no longer listens.
    async_dispatcher_send(
        hass,
        signal_new_event(entry_id, module.module_id),
        Event(module.module_id, 99, 0.0, EventKind.BATTERY_LOW, None, None, None),
    )


async def test_event_entity_for_joined_module_and_stale_id(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A module joining later gets an event entity showing "joined"; a reused id is ignored."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        new = gateway.call(lambda gw: gw.site.add_module(kind=ModuleKind.BATTERY, name="Shed"))
        await wait_for(
            hass,
            lambda: (
                er.async_get(hass).async_get_entity_id("event", "rayzig", f"{new.serial}_event")
                is not None
            ),
        )
        event_entity = entity_id(hass, "event", f"{new.serial}_event")
        await wait_for(
            hass,
            lambda: hass.states.get(event_entity).attributes.get(ATTR_EVENT_TYPE) == "joined",
        )
        # The coordinator says the module id now belongs to another serial: the old entity
        # ignores records dispatched for that id.
        coordinator = entry.runtime_data.coordinator
        other = replace(coordinator.data.modules[new.module_id], serial="RZ0000000")
        coordinator.async_set_updated_data(
            replace(coordinator.data, modules={**coordinator.data.modules, new.module_id: other})
        )
        async_dispatcher_send(
            hass,
            signal_new_event(entry.entry_id, new.module_id),
            Event(new.module_id, 2, 0.0, EventKind.BATTERY_LOW, None, None, None),
        )
        await hass.async_block_till_done()
        assert hass.states.get(event_entity).attributes.get(ATTR_EVENT_TYPE) != "battery_low"


async def test_event_entity_restores_its_last_event_stored_while_unavailable(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unloaded while the gateway is away, the entity still shows its last event when back."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        event_entity = entity_id(hass, "event", f"{module.serial}_event")
        await wait_for(
            hass, lambda: hass.states.get(event_entity).attributes.get(ATTR_EVENT_TYPE) is not None
        )
        before = hass.states.get(event_entity)
        gateway.stop()
        await wait_for(hass, lambda: hass.states.get(event_entity).state == STATE_UNAVAILABLE)
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        gateway.start()
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)
        after = hass.states.get(event_entity)
        assert after.state == before.state
        assert after.attributes[ATTR_EVENT_TYPE] == "power_on"
        assert after.attributes["seq"] == before.attributes["seq"]


async def test_back_fill_writes_the_event_entity_once(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Thousands of back-filled records: the entity shows the newest, written once."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        event_entity = entity_id(hass, "event", f"{module.serial}_event")
        importer = entry.runtime_data.events
        # Setup's sync runs in the background: it writes the cursor before it fires the records
        # and writes the entity, so the test waits for the whole sync, not for the cursor.
        await hass.async_block_till_done(wait_background_tasks=True)
        assert module.module_id in importer.cursors
        flood(gateway, module.module_id, 2_000)  # straight into the ring: no notice, no sync
        writes: list[str] = []
        hass.bus.async_listen(
            EVENT_STATE_CHANGED,
            lambda event: writes.append(event.data["entity_id"]),
        )
        assert await importer.async_sync([module.module_id]) == 2_000
        await hass.async_block_till_done()
        assert writes.count(event_entity) == 1
        assert hass.states.get(event_entity).attributes["seq"] == importer.cursors[module.module_id]
