"""Logbook entries of module events, in words, at the module's own time (with the recorder)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.rayzig.const import DOMAIN, EVENT_RAYZIG
from custom_components.rayzig.logbook import async_describe_events, describe_message
from rayzig_core.models import EventKind, ModuleKind, RestorePreset
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway

from .runtime_helpers import entity_id, loaded_entry, site_modules, wait_for


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder must come before custom integrations are enabled (and before logbook)."""


MESSAGES: list[tuple[dict[str, Any], str]] = [
    (
        {
            "kind": "command",
            "output": 2,
            "output_name": "Hot water",
            "is_on": True,
            "user": "installer",
        },
        "Hot water switched on by installer",
    ),
    (
        {"kind": "preset_applied", "output": 1, "output_name": "Pond pump", "is_on": False},
        "Pond pump restored off (preset applied)",
    ),
    # The name unknown (None, empty or missing, as in events recorded before it was added):
    # the output's number instead.
    (
        {"kind": "command", "output": 2, "output_name": None, "is_on": True, "user": "installer"},
        "Output 2 switched on by installer",
    ),
    (
        {"kind": "command", "output": 4, "output_name": "", "is_on": False, "user": "gridco"},
        "Output 4 switched off by gridco",
    ),
    (
        {"kind": "command", "output": 2, "is_on": True, "user": "installer"},
        "Output 2 switched on by installer",
    ),
    (
        {"kind": "command", "output": 2, "is_on": False, "user": "automation"},
        "Output 2 switched off by automation",
    ),
    ({"kind": "command", "output": 1, "is_on": None, "user": None}, "Output 1 switched"),
    ({"kind": "repower"}, "Repowered after outage"),
    (
        {"kind": "preset_applied", "output": 1, "is_on": True},
        "Output 1 restored on (preset applied)",
    ),
    (
        {"kind": "preset_applied", "output": 3, "is_on": False},
        "Output 3 restored off (preset applied)",
    ),
    (
        {"kind": "preset_applied", "output": None, "is_on": None},
        "Output restored (preset applied)",
    ),
    ({"kind": "power_on"}, "Power on"),
    ({"kind": "battery_low"}, "Battery low"),
    ({"kind": "joined"}, "Joined the mesh"),
    ({"kind": "left"}, "Left the mesh"),
    ({"kind": "gap", "lost": 312}, "312 events were lost (event log overrun)"),
    ({"kind": "gap", "lost": 1}, "1 event was lost (event log overrun)"),
    ({"kind": "surprise"}, "Event surprise"),
]


def test_describe_message() -> None:
    """The words for each kind (and for data missing parts), independent of the recorder."""
    for data, message in MESSAGES:
        assert describe_message(data) == message


async def _logbook(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    start: datetime,
    device_id: str | None,
) -> list[dict[str, Any]]:
    """Rayzig entries of the logbook since ``start`` (of one device, or of all)."""
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
    return [entry for entry in response["result"] if entry.get("domain") == DOMAIN]


async def test_logbook_describes_every_kind(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every kind the gateway logs shows up in words, at the module's time, on its device."""
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
            gw.site.set_output(mains.module_id, 1, on=True, user="installer")
            gw.site.set_output(mains.module_id, 1, on=False, user="automation")
            gw.site.set_preset(mains.module_id, 0, RestorePreset.ON, user="installer")
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
                        "events": [[now + n, 2, 0, "automation", n % 2 == 0] for n in range(8)],
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
        # Outputs are named by their own names (the virtual site's are real ones, e.g.
        # "Hot water"), not by their numbers.
        names = [output.name for output in mains.outputs]
        assert all(name and not name.startswith("Output") for name in names)
        applied = [
            f"{names[r.output]} restored {'on' if r.is_on else 'off'} (preset applied)"
            for r in ring
            if r.kind is EventKind.PRESET_APPLIED
        ]
        assert len(applied) == len(mains.outputs)
        assert applied[0] == f"{names[0]} restored on (preset applied)"
        mains_entries = await _logbook(hass, hass_ws_client, start, mains_device.id)
        assert [e["message"] for e in mains_entries] == [
            "Power on",
            f"{names[1]} switched on by installer",
            f"{names[1]} switched off by automation",
            "Repowered after outage",
            *applied,
        ]
        assert {e["name"] for e in mains_entries} == {mains.name}
        event_entity = entity_id(hass, "event", f"{mains.serial}_event")
        assert {e["entity_id"] for e in mains_entries} == {event_entity}
        # The entries carry the module's own time, not the time of the import.
        assert [e["when"] for e in mains_entries] == pytest.approx([r.timestamp for r in ring])

        restored = "on" if battery_ring[-1].is_on else "off"
        # Its device is gone, so the logbook can no longer filter by it: read the whole logbook.
        battery_entries = [
            entry
            for entry in await _logbook(hass, hass_ws_client, start, None)
            if entry["name"] == battery.name
        ]
        assert [e["message"] for e in battery_entries] == [
            "Power on",
            "Battery low",
            "Repowered after outage",
            f"{battery.outputs[0].name} restored {restored} (preset applied)",
            "Left the mesh",
        ]

        # A module added later has the gateway's default output names.
        assert joined.outputs[0].name == "Output 1"
        joined_messages = [
            e["message"] for e in await _logbook(hass, hass_ws_client, start, joined_device.id)
        ]
        assert joined_messages == [
            "Joined the mesh",
            "312 events were lost (event log overrun)",
            *[f"Output 1 switched {'on' if n % 2 == 0 else 'off'} by automation" for n in range(8)],
        ]


async def test_describe_without_device_or_name(hass: HomeAssistant) -> None:
    """An event whose device is gone still reads well: the module's number, no entity link."""
    callbacks: dict[str, Callable[[Any], dict[str, Any]]] = {}

    def register(domain: str, event_type: str, describe: Callable[[Any], dict[str, Any]]) -> None:
        assert domain == DOMAIN
        callbacks[event_type] = describe

    async_describe_events(hass, register)
    describe = callbacks[EVENT_RAYZIG]
    assert describe(SimpleNamespace(data={"kind": "power_on", "module_id": 3})) == {
        "name": "Module 3",
        "message": "Power on",
    }
    assert describe(
        SimpleNamespace(data={"kind": "left", "module_id": 4, "device_id": "gone"})
    ) == {"name": "Module 4", "message": "Left the mesh"}
