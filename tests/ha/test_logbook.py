"""The logbook: one worded row per physical action, naming who acted, at the module's own time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any
from unittest.mock import ANY

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.const import ATTR_FRIENDLY_NAME, STATE_ON
from homeassistant.core import Context, Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.rayzig.const import DOMAIN, EVENT_RAYZIG
from custom_components.rayzig.logbook import (
    async_describe_events,
    describe_message,
    describe_name,
)
from custom_components.rayzig.logbook_entries import (
    EVENT_RAYZIG_LOGBOOK,
    OWN_COMMANDS_KEPT,
    OwnCommand,
    OwnCommands,
)
from rayzig_core.models import Event as RecordedEvent
from rayzig_core.models import EventKind, ModuleKind, RestorePreset
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway
from rayzig_core.virtual_gateway.site.mesh import SIMULATION_USER

from .conftest import OWNER
from .runtime_helpers import entity_id, loaded_entry, site_modules, wait_for


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder must come before custom integrations are enabled (and before logbook)."""


ROWS: list[tuple[dict[str, Any], str, str]] = [
    (
        {
            "kind": "command",
            "module_name": "Utility room",
            "output": 2,
            "output_name": "Hot water",
            "is_on": True,
            "user": "alice",
        },
        "Hot water",
        "switched on by alice",
    ),
    # The output's name unknown (None, empty or missing): the module's name and its number.
    (
        {
            "kind": "command",
            "module_name": "Garage",
            "output": 2,
            "output_name": None,
            "is_on": False,
            "user": "gridco",
        },
        "Garage output 2",
        "switched off by gridco",
    ),
    (
        {"kind": "command", "module_id": 4, "output": 4, "output_name": ""},
        "Module 4 output 4",
        "switched",
    ),
    (
        {
            "kind": "preset_applied",
            "module_name": "Pond",
            "output": 1,
            "output_name": "Pump",
            "is_on": False,
        },
        "Pump",
        "set off by its power-restore preset",
    ),
    ({"kind": "power_on", "module_name": "Garage", "output": None}, "Garage", "powered on"),
    (
        {"kind": "repower", "module_name": "Garage"},
        "Garage",
        "repowered after an outage (outputs set by their power-restore presets)",
    ),
    ({"kind": "battery_low", "module_name": "Porch"}, "Porch", "reported a low battery"),
    ({"kind": "joined", "module_name": "Shed"}, "Shed", "joined the mesh"),
    ({"kind": "left", "module_id": 3}, "Module 3", "left the mesh"),
    (
        {"kind": "gap", "module_name": "Shed", "lost": 312},
        "Shed",
        "lost 312 events (event log overrun)",
    ),
    ({"kind": "gap", "module_name": "Shed", "lost": 1}, "Shed", "lost 1 event (event log overrun)"),
    ({"kind": "surprise", "module_name": "Shed"}, "Shed", "logged the event surprise"),
]


def test_describe_name_and_message() -> None:
    """The words for each kind (and for data missing parts), independent of the recorder."""
    for data, name, message in ROWS:
        assert (describe_name(data), describe_message(data)) == (name, message)


async def _logbook(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    start: datetime,
    device_id: str | None = None,
) -> list[dict[str, Any]]:
    """Every logbook row since ``start`` (of one device, or of all), oldest first."""
    await async_wait_recording_done(hass)
    client = await hass_ws_client()
    query: dict[str, Any] = {
        "id": 1,
        "type": "logbook/get_events",
        "start_time": start.isoformat(),
        "end_time": (dt_util.utcnow() + timedelta(minutes=1)).isoformat(),
    }
    if device_id is not None:
        query["device_ids"] = [device_id]
    await client.send_json(query)
    response = await client.receive_json()
    assert response["success"], response
    rows: list[dict[str, Any]] = response["result"]
    return rows


def _worded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows Rayzig words itself."""
    return [row for row in rows if row.get("domain") == DOMAIN]


async def _mark(hass: HomeAssistant) -> datetime:
    """A start time after everything recorded so far."""
    await async_wait_recording_done(hass)
    return dt_util.utcnow()


async def test_one_row_per_action_naming_who_acted(
    hass: HomeAssistant,
    *,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Home Assistant's user, an automation, another gateway user, an outage: a row each.

    A toggle from Home Assistant is the switch's own row, carrying the action's context (user,
    action); its record gets no row of its own. Another gateway user's command is one worded row
    naming her (Home Assistant adds the switch's plain state row, which no integration can drop;
    it does not borrow the Home Assistant user of a toggle seconds before). An outage and the
    return of power is one worded row. No "detected an event" row: the event entity is disabled.
    """
    assert await async_setup_component(hass, "logbook", {})
    module = next(
        m for m in site_modules(gateway) if m.kind is ModuleKind.MAINS and len(m.outputs) >= 2
    )
    imported: list[Event[dict[str, Any]]] = []

    @callback
    def on_imported(event: Event[dict[str, Any]]) -> None:
        imported.append(event)

    hass.bus.async_listen(EVENT_RAYZIG, on_imported)
    begin = await _mark(hass)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: module.module_id in importer.cursors)
        first = entity_id(hass, "switch", f"{module.serial}_output_0")
        second = entity_id(hass, "switch", f"{module.serial}_output_1")

        def logged() -> int:
            return importer.cursors[module.module_id]

        # Home Assistant's user toggles an output.
        start, seq = await _mark(hass), logged()
        user_context = Context(user_id=hass_admin_user.id)
        await hass.services.async_call(
            "switch", "toggle", {"entity_id": first}, blocking=True, context=user_context
        )
        await wait_for(hass, lambda: logged() > seq)
        assert await _logbook(hass, hass_ws_client, start) == [
            {
                "entity_id": first,
                "state": hass.states.get(first).state,
                "when": ANY,
                "context_user_id": hass_admin_user.id,
                "context_event_type": "call_service",
                "context_domain": "switch",
                "context_service": "toggle",
            }
        ]
        # Its rayzig_event (automations, device triggers) carries the action's context too.
        assert imported[-1].data["user"] == OWNER
        assert imported[-1].context.id == user_context.id

        # Another gateway user switches it back, seconds later.
        start, seq = await _mark(hass), logged()
        was_on = hass.states.get(first).state == STATE_ON
        gateway.call(lambda gw: gw.site.set_output(module.module_id, 0, not was_on, user="alice"))
        await wait_for(hass, lambda: logged() > seq)
        state = "off" if was_on else "on"
        assert await _logbook(hass, hass_ws_client, start) == [
            {
                "name": hass.states.get(first).attributes[ATTR_FRIENDLY_NAME],
                "message": f"switched {state} by alice",
                "entity_id": first,
                "domain": DOMAIN,
                "when": ANY,
            },
            {"entity_id": first, "state": state, "when": ANY},
        ]

        # An automation switches the other output: the switch's row names the automation.
        assert await async_setup_component(
            hass,
            "automation",
            {
                "automation": {
                    "alias": "Night",
                    "trigger": {"platform": "event", "event_type": "rayzig_test_night"},
                    "action": {"service": "switch.toggle", "target": {"entity_id": second}},
                }
            },
        )
        start, seq = await _mark(hass), logged()
        hass.bus.async_fire("rayzig_test_night")
        await wait_for(hass, lambda: logged() > seq)
        rows = await _logbook(hass, hass_ws_client, start)
        assert not _worded(rows)
        [switched] = [row for row in rows if row.get("entity_id") == second]
        assert switched["context_event_type"] == "automation_triggered"
        assert switched["context_entity_id"] == "automation.night"

        # The module loses power and gets it back: its outputs follow their presets.
        start, seq = await _mark(hass), logged()
        gateway.call(lambda gw: gw.site.power_outage([module.module_id]))
        gateway.call(lambda gw: gw.site.power_restore([module.module_id]))
        await wait_for(hass, lambda: logged() >= seq + 1 + len(module.outputs))
        rows = await _logbook(hass, hass_ws_client, start)
        assert [(row["name"], row["message"]) for row in _worded(rows)] == [
            (module.name, "repowered after an outage (outputs set by their power-restore presets)")
        ]

        event_entity = entity_id(hass, "event", f"{module.serial}_event")
        registry_entry = er.async_get(hass).async_get(event_entity)
        assert registry_entry is not None
        assert registry_entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        everything = await _logbook(hass, hass_ws_client, begin)
        assert not [row for row in everything if row.get("entity_id", "").startswith("event.")]


async def test_logbook_describes_every_kind(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every kind with a row shows up in words, at the module's time, on its device."""
    assert await async_setup_component(hass, "logbook", {})
    start = dt_util.utcnow() - timedelta(hours=1)
    battery = next(m for m in site_modules(gateway) if m.kind is ModuleKind.BATTERY)
    mains = next(
        m for m in site_modules(gateway) if m.kind is ModuleKind.MAINS and len(m.outputs) >= 2
    )

    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: mains.module_id in importer.cursors)

        def activity(gw: VirtualGateway) -> None:
            # The installer (the user Home Assistant is paired as), but from another client.
            gw.site.set_output(mains.module_id, 1, on=True, user=OWNER)
            gw.site.set_output(mains.module_id, 1, on=False, user=SIMULATION_USER)
            gw.site.set_preset(mains.module_id, 0, RestorePreset.ON, user=OWNER)
            gw.site.power_outage([mains.module_id])
            gw.site.power_restore([mains.module_id])
            percent = gw.site.module(battery.module_id).telemetry.battery_percent
            gw.site.drain_battery(battery.module_id, percent)  # flat: battery low, brown-out
            gw.site.charge_battery(battery.module_id, 100)  # repowered

        gateway.call(activity)
        await wait_for(hass, lambda: importer.cursors.get(mains.module_id, 0) >= 7)
        await wait_for(hass, lambda: importer.cursors.get(battery.module_id, 0) >= 4)

        joined = gateway.call(
            lambda gw: gw.site.add_module(kind=ModuleKind.MAINS, name="Workshop", outputs=1)
        )
        await wait_for(hass, lambda: importer.cursors.get(joined.module_id) == 1)

        # Overrun while the gateway is off: its ring (8 records here, to keep the recorder
        # quick; the 8192-record ring is tested in test_events) overwrote 312 unread records.
        def overrun(data: dict[str, Any]) -> None:
            now = time.time()
            for module in data["site"]["modules"]:
                if module["id"] == joined.module_id:
                    module["events"] = {
                        "capacity": 8,
                        "first_seq": 314,
                        "events": [[now + n, 2, 0, "alice", n % 2 == 0] for n in range(8)],
                    }

        gateway.stop()
        gateway.edit_state(overrun)
        gateway.start()
        await wait_for(hass, lambda: importer.cursors.get(joined.module_id) == 321)

        registry = dr.async_get(hass)
        mains_device = registry.async_get_device(identifiers={(DOMAIN, mains.serial)})
        battery_device = registry.async_get_device(identifiers={(DOMAIN, battery.serial)})
        joined_device = registry.async_get_device(identifiers={(DOMAIN, joined.serial)})
        assert mains_device is not None
        assert battery_device is not None
        assert joined_device is not None

        # A module leaving the mesh takes its log along; the gateway's notice is logged instead.
        battery_ring = gateway.call(lambda gw: list(gw.site.ring(battery.module_id)))
        gateway.call(lambda gw: gw.site.remove_module(battery.module_id))
        await wait_for(hass, lambda: battery.module_id not in importer.cursors)

        ring = gateway.call(lambda gw: list(gw.site.ring(mains.module_id)))
        switch = entity_id(hass, "switch", f"{mains.serial}_output_1")
        switch_name = hass.states.get(switch).attributes[ATTR_FRIENDLY_NAME]
        mains_entries = await _logbook(hass, hass_ws_client, start, mains_device.id)
        assert [(e["name"], e["message"], e.get("entity_id")) for e in mains_entries] == [
            (mains.name, "powered on", None),
            (switch_name, f"switched on by {OWNER}", switch),
            (switch_name, f"switched off by {SIMULATION_USER}", switch),
            (mains.name, REPOWERED, None),
        ]
        # The rows carry the module's own time, not the time of the import; presets applied
        # after the outage have none (the repower row and the switches' own rows tell them).
        logged = [r for r in ring if r.kind is not EventKind.PRESET_APPLIED]
        assert [e["when"] for e in mains_entries] == pytest.approx([r.timestamp for r in logged])

        # Its device is gone, so the logbook can no longer filter by it: read the whole logbook.
        battery_entries = [
            entry
            for entry in _worded(await _logbook(hass, hass_ws_client, start))
            if entry["name"] == battery.name
        ]
        assert [e["message"] for e in battery_entries] == [
            "powered on",
            "reported a low battery",
            REPOWERED,
            "left the mesh",
        ]
        assert battery_ring[-1].kind is EventKind.PRESET_APPLIED  # logged, without a row

        # A module added later has the gateway's default output names.
        assert joined.outputs[0].name == "Output 1"
        joined_switch = entity_id(hass, "switch", f"{joined.serial}_output_0")
        joined_name = hass.states.get(joined_switch).attributes[ATTR_FRIENDLY_NAME]
        joined_rows = await _logbook(hass, hass_ws_client, start, joined_device.id)
        assert [(e["name"], e["message"]) for e in joined_rows] == [
            ("Workshop", "joined the mesh"),
            ("Workshop", "lost 312 events (event log overrun)"),
            *[
                (joined_name, f"switched {'on' if n % 2 == 0 else 'off'} by alice")
                for n in range(8)
            ],
        ]


REPOWERED = "repowered after an outage (outputs set by their power-restore presets)"


async def test_describe_without_device_or_name(hass: HomeAssistant) -> None:
    """A row whose device is gone still reads well: the module's number, no entity link."""
    callbacks: dict[str, Callable[[Any], dict[str, Any]]] = {}

    def register(domain: str, event_type: str, describe: Callable[[Any], dict[str, Any]]) -> None:
        assert domain == DOMAIN
        callbacks[event_type] = describe

    async_describe_events(hass, register)
    assert list(callbacks) == [EVENT_RAYZIG_LOGBOOK]
    describe = callbacks[EVENT_RAYZIG_LOGBOOK]
    assert describe(SimpleNamespace(data={"kind": "power_on", "module_id": 3})) == {
        "name": "Module 3",
        "message": "powered on",
    }
    gone = {"kind": "command", "module_id": 4, "device_id": "gone", "output": 1, "user": "al"}
    assert describe(SimpleNamespace(data=gone)) == {
        "name": "Module 4 output 1",
        "message": "switched by al",
    }
    # The device is there, but not (or no longer) a switch for that output.
    entry = MockConfigEntry(domain=DOMAIN)
    entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, "RZ0000004")}
    )
    assert describe(SimpleNamespace(data={**gone, "device_id": device.id})) == {
        "name": "Module 4 output 1",
        "message": "switched by al",
    }


def test_own_commands_are_claimed_once_oldest_first() -> None:
    """A record is Home Assistant's own only if it matches a noted command (and only once)."""
    own = OwnCommands()
    first, second = Context(), Context()
    own.add(OwnCommand(5, 1, True, OWNER, first))
    own.add(OwnCommand(5, 1, True, OWNER, second))

    def record(kind: EventKind, user: str | None = OWNER, *, output: int = 1) -> RecordedEvent:
        return RecordedEvent(5, 9, 0.0, kind, output, user, True)

    assert own.claim(record(EventKind.PRESET_APPLIED, None)) is None
    assert own.claim(record(EventKind.COMMAND, "alice")) is None  # another user's
    assert own.claim(record(EventKind.COMMAND, output=0)) is None  # another output
    claimed = own.claim(record(EventKind.COMMAND))
    assert claimed is not None
    assert claimed.context is first
    claimed = own.claim(record(EventKind.COMMAND))
    assert claimed is not None
    assert claimed.context is second
    assert own.claim(record(EventKind.COMMAND)) is None
    for _ in range(OWN_COMMANDS_KEPT + 1):
        own.add(OwnCommand(5, 1, True, OWNER, Context()))
    assert sum(own.claim(record(EventKind.COMMAND)) is not None for _ in range(100)) == (
        OWN_COMMANDS_KEPT
    )


def test_own_commands_keep_the_newest_and_forget_the_dropped() -> None:
    """Past :data:`OWN_COMMANDS_KEPT` commands the oldest is dropped: its record is not claimed."""
    own = OwnCommands()
    oldest = OwnCommand(7, 0, True, OWNER, Context())
    own.add(oldest)
    for n in range(OWN_COMMANDS_KEPT):
        own.add(OwnCommand(8, n % 4, bool(n % 2), OWNER, Context()))
    assert own.claim(RecordedEvent(7, 1, 0.0, EventKind.COMMAND, 0, OWNER, True)) is None
    # The kept ones are still claimed, each once.
    claimed = own.claim(RecordedEvent(8, 2, 0.0, EventKind.COMMAND, 1, OWNER, True))
    assert claimed is not None
    assert (claimed.module_id, claimed.output, claimed.is_on) == (8, 1, True)
    own.add(oldest)
    assert own.claim(RecordedEvent(7, 3, 0.0, EventKind.COMMAND, 0, OWNER, True)) is oldest
    assert own.claim(RecordedEvent(7, 4, 0.0, EventKind.COMMAND, 0, OWNER, True)) is None
