"""Event-log import: bus events with the module's timestamp, exactly once, gaps, coalescing.

These tests drive :class:`RayzigEventImporter` directly against the real virtual gateway (the
integration-level tests with the whole entry loaded are further down).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import Event as HaEvent
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import (
    CONF_EVENT_IMPORT_WINDOW,
    DOMAIN,
    EVENT_RAYZIG,
)
from custom_components.rayzig.event_cursors import ModuleCursor
from custom_components.rayzig.event_data import EVENT_KINDS, kind_name, signal_new_event
from custom_components.rayzig.event_pull import unstored
from custom_components.rayzig.events import FIRE_CHUNK, RayzigEventImporter
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import (
    MAX_EVENTS_PER_MODULE,
    ConnectionState,
    Event,
    EventKind,
)
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector
from rayzig_core.virtual_gateway import VirtualGateway

from .runtime_helpers import loaded_entry, wait_for

MODULES = 12


@pytest.fixture
async def client(
    gateway: GatewayThread, credentials: ClientCredentials
) -> AsyncIterator[RayzigClient]:
    """A connected client of the gateway (System level), closed after the test."""
    client = RayzigClient(
        TcpConnector("127.0.0.1", gateway.port),
        credentials,
        backoff_initial=0.05,
        backoff_max=0.2,
        request_timeout=1.0,
    )
    await client.connect()
    yield client
    await client.close()


def capture(hass: HomeAssistant) -> list[HaEvent[dict[str, Any]]]:
    """Collect every rayzig_event fired from now on."""
    seen: list[HaEvent[dict[str, Any]]] = []

    @callback
    def listener(event: HaEvent[dict[str, Any]]) -> None:
        seen.append(event)

    hass.bus.async_listen(EVENT_RAYZIG, listener)
    return seen


def switch(gateway: GatewayThread, module_id: int, times: int, user: str = "automation") -> None:
    """Toggle output 0 of a module ``times`` times on the gateway (logs COMMAND events)."""

    def run(gw: VirtualGateway) -> None:
        for n in range(times):
            gw.site.set_output(module_id, 0, n % 2 == 0, user=user)

    gateway.call(run)


def flood(gateway: GatewayThread, module_id: int, count: int) -> None:
    """Log ``count`` records straight into a module's ring (no notifications, fast)."""

    def run(gw: VirtualGateway) -> None:
        ring = gw.site.ring(module_id)
        for n in range(count):
            ring.append(
                module_id=module_id,
                timestamp=1_700_000_000.0 + n,
                kind=EventKind.COMMAND,
                output=0,
                user="automation",
                is_on=n % 2 == 0,
            )

    gateway.call(run)


async def new_importer(
    hass: HomeAssistant, entry: MockConfigEntry, client: RayzigClient
) -> RayzigEventImporter:
    importer = RayzigEventImporter(hass, entry, client)
    await importer.async_load()
    return importer


def test_kind_names() -> None:
    assert kind_name(EventKind.PRESET_APPLIED) == "preset_applied"
    assert kind_name(EventKind.GAP) == "gap"
    assert EVENT_KINDS == (
        "power_on",
        "command",
        "repower",
        "preset_applied",
        "battery_low",
        "joined",
        "left",
        "gap",
    )
    assert signal_new_event("abc", 3) != signal_new_event("abc", 4)


async def test_import_fires_with_module_timestamp(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """Each record becomes one rayzig_event at the module's own time, with its device."""
    config_entry.add_to_hass(hass)
    seen = capture(hass)
    dispatched: list[Event] = []
    async_dispatcher_connect(hass, signal_new_event(config_entry.entry_id, 1), dispatched.append)
    importer = await new_importer(hass, config_entry, client)

    assert await importer.async_sync() == MODULES
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(seen) == MODULES

    ring = gateway.call(lambda gw: list(gw.site.ring(1)))
    module = gateway.call(lambda gw: gw.site.module(1))
    first = next(e for e in seen if e.data["module_id"] == 1)
    assert first.time_fired_timestamp == ring[0].timestamp
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, module.serial)})
    assert device is not None
    assert first.data == {
        "device_id": device.id,
        "module_id": 1,
        "module_name": module.name,
        "output": None,
        "output_name": None,
        "kind": "power_on",
        "user": None,
        "is_on": None,
        "seq": 1,
        "lost": 0,
    }
    assert dispatched == ring

    # A command: output shown 1-based with its name, the acting user and the new state.
    switch(gateway, 1, 1, user="installer")
    assert await importer.async_sync([1]) == 1
    await hass.async_block_till_done(wait_background_tasks=True)
    command = seen[-1]
    assert command.data["kind"] == "command"
    assert command.data["output"] == 1
    assert command.data["output_name"] == module.outputs[0].name
    assert command.data["output_name"]
    assert command.data["user"] == "installer"
    assert command.data["is_on"] is True
    assert command.data["seq"] == 2
    assert (
        command.time_fired_timestamp == gateway.call(lambda gw: list(gw.site.ring(1))[-1]).timestamp
    )
    assert dispatched[-1].kind is EventKind.COMMAND

    # Nothing new: nothing fired.
    assert await importer.async_sync() == 0
    assert importer.imported == MODULES + 1
    await importer.async_stop()


async def test_output_name_from_coordinator_data(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """Events name the output as the coordinator knows it; None for an output it does not list."""
    config_entry.add_to_hass(hass)
    seen = capture(hass)
    importer = await new_importer(hass, config_entry, client)
    await importer.async_sync([2])
    module = gateway.call(lambda gw: gw.site.module(2))
    assert len(module.outputs) >= 2

    # The coordinator's module data (here: an output renamed in it) is what names the output.
    renamed = replace(
        module,
        outputs=(replace(module.outputs[0], name="Hot water"), *module.outputs[1:]),
    )
    config_entry.runtime_data = SimpleNamespace(  # type: ignore[assignment]
        coordinator=SimpleNamespace(data=SimpleNamespace(modules={2: renamed}))
    )
    switch(gateway, 2, 1, user="installer")
    gateway.call(lambda gw: gw.site.set_output(2, 1, on=True, user="installer"))
    # A record for an output the module does not list: its number, but no name.
    unknown = len(module.outputs)

    def stray(gw: VirtualGateway) -> None:
        gw.site.ring(2).append(
            module_id=2,
            timestamp=1_700_000_000.0,
            kind=EventKind.COMMAND,
            output=unknown,
            user="automation",
            is_on=True,
        )

    gateway.call(stray)
    seen.clear()
    assert await importer.async_sync([2]) == 3
    await hass.async_block_till_done(wait_background_tasks=True)
    assert [(e.data["output"], e.data["output_name"]) for e in seen] == [
        (1, "Hot water"),
        (2, module.outputs[1].name),
        (unknown + 1, None),
    ]
    await importer.async_stop()


async def test_import_window_limits_backlog(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """A module seen for the first time imports only its last ``event_import_window`` records."""
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(config_entry, options={CONF_EVENT_IMPORT_WINDOW: 3})
    switch(gateway, 2, 10)
    seen = capture(hass)
    importer = await new_importer(hass, config_entry, client)
    assert await importer.async_sync([2]) == 3
    await hass.async_block_till_done(wait_background_tasks=True)
    assert [e.data["seq"] for e in seen] == [9, 10, 11]
    await importer.async_stop()


async def test_exactly_once_across_restart(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    hass_storage: dict[str, Any],
) -> None:
    """Cursors survive in HA storage: a new importer imports only what came after."""
    config_entry.add_to_hass(hass)
    seen = capture(hass)
    importer = await new_importer(hass, config_entry, client)
    await importer.async_sync()
    await importer.async_stop()
    key = f"{DOMAIN}.{config_entry.entry_id}.events"
    stored = hass_storage[key]["data"]["modules"]
    assert stored["1"]["seq"] == 1
    assert stored["1"]["serial"] == gateway.call(lambda gw: gw.site.module(1).serial)

    # Events while "Home Assistant was down".
    switch(gateway, 1, 4)
    switch(gateway, 5, 2)
    importer = await new_importer(hass, config_entry, client)
    assert importer.cursors[1] == 1
    assert await importer.async_sync() == 6
    await hass.async_block_till_done(wait_background_tasks=True)
    seqs = [(e.data["module_id"], e.data["seq"]) for e in seen]
    assert len(seqs) == len(set(seqs)) == MODULES + 6
    await importer.async_stop()

    await importer.async_remove()
    assert key not in hass_storage


async def test_cursor_written_before_each_chunk_without_recorder(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    hass_storage: dict[str, Any],
) -> None:
    """Without a recorder, each chunk's cursor is written (awaited) before the chunk is fired."""
    config_entry.add_to_hass(hass)
    key = f"{DOMAIN}.{config_entry.entry_id}.events"
    importer = await new_importer(hass, config_entry, client)
    assert await importer.async_sync() == MODULES
    assert {
        int(m): c["seq"] for m, c in stored_modules(hass_storage, key).items()
    } == dict.fromkeys(range(1, MODULES + 1), 1)

    # What is stored at the moment each record is fired: its own chunk already. Both modules
    # are pulled into one group, fired in chunks of FIRE_CHUNK records across them.
    switch(gateway, 1, 2)
    flood(gateway, 2, FIRE_CHUNK + 3)
    at_fire: list[tuple[int, int, dict[int, int]]] = []

    @callback
    def on_event(event: HaEvent[dict[str, Any]]) -> None:
        stored = {int(m): c["seq"] for m, c in stored_modules(hass_storage, key).items()}
        at_fire.append((event.data["module_id"], event.data["seq"], stored))

    hass.bus.async_listen(EVENT_RAYZIG, on_event)
    assert await importer.async_sync([1, 2]) == FIRE_CHUNK + 5
    fired = [(module, seq) for module, seq, _ in at_fire]
    assert fired == [(1, 2), (1, 3)] + [(2, seq) for seq in range(2, FIRE_CHUNK + 5)]
    # The first chunk ends with module 2's record FIRE_CHUNK - 1: two of module 1's came first.
    for module, seq, stored in at_fire:
        if module == 1:
            chunk_end = 3
        else:
            chunk_end = FIRE_CHUNK - 1 if seq <= FIRE_CHUNK - 1 else FIRE_CHUNK + 4
        assert stored[module] == chunk_end, (module, seq, stored[module])
    assert stored_modules(hass_storage, key)["2"]["seq"] == FIRE_CHUNK + 4

    # Nothing new: nothing is written.
    with patch.object(importer._store._store, "async_save") as save:
        assert await importer.async_sync() == 0
        save.assert_not_called()
    await importer.async_stop()


class Crash(BaseException):
    """Home Assistant dying (power cut) at a chosen moment."""


@pytest.mark.parametrize("crash_at", ["cursor_write", "after_firing"])
async def test_crash_without_recorder_fires_nothing_twice(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    crash_at: str,
) -> None:
    """Without a recorder: a chunk whose cursor write was cut short fires at the next start;
    one that was fired is never fired again."""
    config_entry.add_to_hass(hass)
    importer = await new_importer(hass, config_entry, client)
    await importer.async_sync()
    switch(gateway, 1, 2)
    switch(gateway, 2, 3)
    seen = capture(hass)
    records = [(1, 2), (1, 3), (2, 2), (2, 3), (2, 4)]

    async def crash(*_: Any) -> None:
        raise Crash

    target = (
        patch.object(importer._store._store, "async_save", crash)
        if crash_at == "cursor_write"
        else patch.object(importer, "_async_confirm", crash)
    )
    with target, pytest.raises(Crash):
        await importer.async_sync([1, 2])
    fired = [(e.data["module_id"], e.data["seq"]) for e in seen]
    assert fired == ([] if crash_at == "cursor_write" else records)

    # The next start (a new importer on what was stored) fires what had not been fired, once.
    seen.clear()
    importer = await new_importer(hass, config_entry, client)
    await importer.async_sync([1, 2])
    again = [(e.data["module_id"], e.data["seq"]) for e in seen]
    assert again == ([] if crash_at == "after_firing" else records)
    await importer.async_stop()


def stored_modules(hass_storage: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """The cursors in Home Assistant storage (empty if nothing is written yet)."""
    if key not in hass_storage:
        return {}
    modules: dict[str, dict[str, Any]] = hass_storage[key]["data"]["modules"]
    return modules


async def test_overrun_reports_one_gap(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """Records overwritten before they were read arrive as one gap event with the exact count."""
    config_entry.add_to_hass(hass)
    seen = capture(hass)
    importer = await new_importer(hass, config_entry, client)
    await importer.async_sync([4])
    flood(gateway, 4, MAX_EVENTS_PER_MODULE + 312)
    imported = await importer.async_sync([4])
    await hass.async_block_till_done(wait_background_tasks=True)
    assert imported == MAX_EVENTS_PER_MODULE + 1
    gaps = [e for e in seen if e.data["kind"] == "gap"]
    assert len(gaps) == 1
    assert gaps[0].data["lost"] == 312
    assert gaps[0].data["output"] is None
    # The gap sits just before the oldest record still held and carries its time.
    after = seen[seen.index(gaps[0]) + 1]
    assert after.data["seq"] == gaps[0].data["seq"] + 1
    assert gaps[0].time_fired_timestamp == after.time_fired_timestamp
    assert importer.cursors[4] == MAX_EVENTS_PER_MODULE + 313
    await importer.async_stop()


async def test_schedule_coalesces(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """Many schedule requests make one background task; no record is imported twice."""
    config_entry.add_to_hass(hass)
    seen = capture(hass)
    importer = await new_importer(hass, config_entry, client)
    await importer.async_sync()
    switch(gateway, 1, 3)
    switch(gateway, 2, 3)
    for _ in range(5):
        importer.async_schedule_sync(1)
        importer.async_schedule_sync(2)
    task = importer._task
    importer.async_schedule_sync(1)
    assert importer._task is task
    # A direct sync while the scheduled one runs waits for it (one lock): no duplicates.
    direct = asyncio.create_task(importer.async_sync([1, 2]))
    await hass.async_block_till_done(wait_background_tasks=True)
    await direct
    assert task is not None
    assert task.done()
    seqs = [(e.data["module_id"], e.data["seq"]) for e in seen]
    assert len(seqs) == len(set(seqs)) == MODULES + 6
    # A full sync (None) after a per-module request.
    switch(gateway, 3, 1)
    importer.async_schedule_sync(2)
    importer.async_schedule_sync()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(seen) == MODULES + 7
    await importer.async_stop()
    # Stopped: schedule requests are ignored.
    importer.async_schedule_sync()
    assert importer._task is None


async def test_sync_after_reconnect(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """Across a gateway outage every missed record is imported once when the link returns."""
    config_entry.add_to_hass(hass)
    seen = capture(hass)
    importer = await new_importer(hass, config_entry, client)
    await importer.async_sync()
    gateway.stop()
    # While the gateway is down a scheduled sync fails quietly and is retried later.
    importer.async_schedule_sync()
    await hass.async_block_till_done(wait_background_tasks=True)
    gateway.start()
    switch(gateway, 6, 2)
    switch(gateway, 7, 1)
    for _ in range(200):
        await asyncio.sleep(0.05)
        await hass.async_block_till_done(wait_background_tasks=True)
        if len(seen) >= MODULES + 3:
            break
    await asyncio.sleep(0.2)
    await hass.async_block_till_done(wait_background_tasks=True)
    seqs = [(e.data["module_id"], e.data["seq"]) for e in seen]
    assert len(seqs) == len(set(seqs)) == MODULES + 3
    await importer.async_stop()


async def test_replaced_and_removed_modules(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    hass_storage: dict[str, Any],
) -> None:
    """A module id now behind another serial starts afresh; a vanished module loses its cursor."""
    config_entry.add_to_hass(hass)
    seen = capture(hass)
    importer = await new_importer(hass, config_entry, client)
    switch(gateway, 8, 20)
    await importer.async_sync([8])
    assert importer.cursors[8] == 21

    # Module ids are never reused (PROTOCOL.md §4.1), but a gateway reset to factory state
    # starts again at 1: when the serial behind an id changes, the old cursor is meaningless.
    module = gateway.call(lambda gw: gw.site.module(8))
    stranger = replace(module, serial="RZ9999999", name="Workshop")
    config_entry.runtime_data = SimpleNamespace(  # type: ignore[assignment]
        coordinator=SimpleNamespace(data=SimpleNamespace(modules={8: stranger}))
    )
    seen.clear()
    assert await importer.async_sync([8]) == 21
    await hass.async_block_till_done(wait_background_tasks=True)
    assert seen[0].data["seq"] == 1
    assert {e.data["module_name"] for e in seen} == {"Workshop"}
    assert not [e for e in seen if e.data["kind"] == "gap"]
    await importer.async_stop()
    stored = hass_storage[f"{DOMAIN}.{config_entry.entry_id}.events"]["data"]["modules"]
    assert stored["8"]["seq"] == 21
    assert stored["8"]["serial"] == "RZ9999999"
    assert stored["8"]["fired"] is None  # no recorder: nothing is pending
    importer = await new_importer(hass, config_entry, client)

    # The coordinator still lists a module the gateway no longer knows: its cursor goes.
    stale = gateway.call(lambda gw: gw.site.module(9))
    gateway.call(lambda gw: gw.site.remove_module(9))
    config_entry.runtime_data = SimpleNamespace(  # type: ignore[assignment]
        coordinator=SimpleNamespace(data=SimpleNamespace(modules={9: stale}))
    )
    await importer.async_sync([9])
    assert 9 not in importer.cursors
    # Unknown ids are skipped (the coordinator and the gateway do not know them).
    assert await importer.async_sync([99]) == 0
    await importer.async_stop()
    assert "9" not in hass_storage[f"{DOMAIN}.{config_entry.entry_id}.events"]["data"]["modules"]


async def test_damaged_store(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config_entry.add_to_hass(hass)
    hass_storage[f"{DOMAIN}.{config_entry.entry_id}.events"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{config_entry.entry_id}.events",
        "data": {"modules": {"1": {"seq": 5, "serial": "X"}, "two": {"seq": 1}, "3": {}}},
    }
    with caplog.at_level(logging.WARNING):
        importer = await new_importer(hass, config_entry, client)
    assert importer.cursors == {1: 5}
    assert "damaged event-log cursor" in caplog.text
    await importer.async_stop()


async def test_stop_cancels_running_sync(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """Unloading cancels a sync in flight without importing anything twice later."""
    config_entry.add_to_hass(hass)
    importer = await new_importer(hass, config_entry, client)
    gateway.stop()
    importer.async_schedule_sync()
    await asyncio.sleep(0)
    task = importer._task
    assert task is not None
    assert not task.done()
    await importer.async_stop()
    assert task.cancelled()
    gateway.start()


# --- the whole integration: restart and outage ----------------------------------------------------


def newest_seqs(gateway: GatewayThread) -> dict[int, int]:
    """Newest sequence number of every module's log on the gateway."""
    return gateway.call(lambda gw: {m.module_id: m.event_seq for m in gw.site.modules()})


def assert_each_once(seen: list[HaEvent[dict[str, Any]]], gateway: GatewayThread) -> None:
    """Every record the gateway holds was fired exactly once (all logs are small here)."""
    keys = [(e.data["module_id"], e.data["seq"]) for e in seen]
    assert len(keys) == len(set(keys))
    expected = {
        (module_id, seq)
        for module_id, newest in newest_seqs(gateway).items()
        for seq in range(1, newest + 1)
    }
    assert set(keys) == expected


async def test_entry_restart_imports_each_event_once(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unload and set up again (same storage): what happened meanwhile arrives once."""
    seen = capture(hass)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: len(seen) == MODULES)
        switch(gateway, 1, 3, user="installer")
        await wait_for(hass, lambda: importer.cursors.get(1) == 4)

        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        switch(gateway, 1, 2)
        switch(gateway, 2, 5)
        assert len(seen) == MODULES + 3

        assert await hass.config_entries.async_setup(entry.entry_id)
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: importer.cursors.get(2) == 6)
        await hass.async_block_till_done(wait_background_tasks=True)
        assert len(seen) == MODULES + 10
        assert_each_once(seen, gateway)


async def test_entry_gateway_outage_imports_each_event_once(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway goes away and comes back with new records: each is imported once."""
    seen = capture(hass)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        client = entry.runtime_data.client
        await wait_for(hass, lambda: len(seen) == MODULES)
        gateway.stop()
        await wait_for(hass, lambda: client.state is not ConnectionState.CONNECTED)
        gateway.start()
        # Records logged right after the gateway restarts, before Home Assistant reconnects.
        switch(gateway, 3, 4)
        gateway.call(lambda gw: gw.site.power_outage([5]))
        gateway.call(lambda gw: gw.site.power_restore([5]))
        await wait_for(hass, lambda: client.state is ConnectionState.CONNECTED)
        newest = newest_seqs(gateway)
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: importer.cursors.get(3) == newest[3])
        await wait_for(hass, lambda: importer.cursors.get(5) == newest[5])
        await hass.async_block_till_done(wait_background_tasks=True)
        assert_each_once(seen, gateway)
        assert sum(e.data["kind"] == "repower" for e in seen) == 1


async def test_module_leaving_fires_left(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A module leaving the mesh is reported once as "left"; its cursor is forgotten."""
    seen = capture(hass)
    module = gateway.call(lambda gw: gw.site.module(4))
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: 4 in importer.cursors)
        device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, module.serial)})
        assert device is not None
        gateway.call(lambda gw: gw.site.remove_module(4))
        await wait_for(hass, lambda: any(e.data["kind"] == "left" for e in seen))
        left = [e for e in seen if e.data["kind"] == "left"]
        assert len(left) == 1
        assert left[0].data["module_id"] == 4
        assert left[0].data["module_name"] == module.name
        assert left[0].data["device_id"] in (device.id, None)
        assert left[0].data["seq"] == 1
        assert 4 not in importer.cursors
        # A notice for a module the importer never synced only drops what it may hold.
        importer._async_module_left(4242)
        await hass.async_block_till_done()
        assert len([e for e in seen if e.data["kind"] == "left"]) == 1


def test_unstored_drops_what_the_database_holds() -> None:
    """In a range a crash left fired, only records never stored remain; gaps are recounted."""

    def record(seq: int, kind: EventKind = EventKind.COMMAND, lost: int = 0) -> Event:
        return Event(1, seq, 1_700_000_000.0 + seq, kind, 0, "automation", True, lost=lost)

    cursor = ModuleCursor(5, "RZ1", fired=12, oldest=0.0, newest=1.0)
    # Records 6..10 were overwritten since; 6 and 7 had been stored, 11 too.
    pulled = [record(10, EventKind.GAP, lost=5), record(11), record(12), record(13)]
    kept = unstored(pulled, cursor, {6, 7, 11})
    assert [(e.seq, e.kind, e.lost) for e in kept] == [
        (10, EventKind.GAP, 3),
        (12, EventKind.COMMAND, 0),
        (13, EventKind.COMMAND, 0),
    ]
    # A gap whose records were all stored is no gap at all.
    assert unstored(pulled[:2], cursor, {6, 7, 8, 9, 10, 11}) == []


async def test_fired_range_left_without_recorder_counts_as_fired(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    hass_storage: dict[str, Any],
) -> None:
    """A range left fired by a run with a recorder, now without one: nothing is repeated."""
    config_entry.add_to_hass(hass)
    serial = gateway.call(lambda gw: gw.site.module(1).serial)
    key = f"{DOMAIN}.{config_entry.entry_id}.events"
    hass_storage[key] = {
        "version": 1,
        "minor_version": 1,
        "key": key,
        "data": {
            "modules": {"1": {"seq": 0, "serial": serial, "fired": 1, "oldest": 1.0, "newest": 1.0}}
        },
    }
    seen = capture(hass)
    importer = await new_importer(hass, config_entry, client)
    switch(gateway, 1, 1)
    assert await importer.async_sync([1]) == 1
    assert [e.data["seq"] for e in seen] == [2]
    assert importer._store.cursors[1] == ModuleCursor(2, serial)
    await importer.async_stop()


async def test_unload_during_a_cursor_write(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    hass_storage: dict[str, Any],
) -> None:
    """Unloading while a chunk's cursor is written: the write finishes first, the chunk fires."""
    config_entry.add_to_hass(hass)
    importer = await new_importer(hass, config_entry, client)
    await importer.async_sync([1])
    switch(gateway, 1, 2)
    seen = capture(hass)
    store = importer._store._store
    write = store._async_write_data
    writes: list[int] = []
    started = asyncio.Event()
    gate = asyncio.Event()

    async def slow_write(path: str, data: dict[str, Any]) -> None:
        writes.append(data["data"]["modules"]["1"]["seq"])
        if len(writes) == 1:
            started.set()
            await gate.wait()  # the disk is slow
        await write(path, data)

    with patch.object(store, "_async_write_data", slow_write):
        importer.async_schedule_sync(1)
        sync = importer._task
        assert sync is not None
        await started.wait()
        stop = asyncio.create_task(importer.async_stop())
        for _ in range(50):
            await asyncio.sleep(0)
        # The sync was cancelled, its chunk fired; the final write waits for the first.
        assert sync.done()
        assert [e.data["seq"] for e in seen] == [2, 3]
        assert writes == [3]
        assert not stop.done()
        gate.set()
        await stop
    assert (
        hass_storage[f"{DOMAIN}.{config_entry.entry_id}.events"]["data"]["modules"]["1"]["seq"] == 3
    )
    seen.clear()
    importer = await new_importer(hass, config_entry, client)
    assert await importer.async_sync([1]) == 0
    await importer.async_stop()
