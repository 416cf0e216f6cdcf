"""Runtime statistics from a module's whole log, while the logbook gets only the import window.

A module's log holds 1,201 records (about 8 days): a power-on, then output 0 on for 10 minutes
every 20 minutes. The import window (100) goes to the bus; the statistics are read from the whole
log in the background, batch by batch. Hand-computed: every hour holds three on-intervals of 600 s
(1,800 s and three cycles per hour), 600 intervals in all (100 h, 600 cycles). Real Home Assistant
with its recorder, the real virtual gateway over loopback.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.core import Event as HassEvent
from homeassistant.core import HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import EVENT_RAYZIG
from custom_components.rayzig.events import RayzigEventImporter
from custom_components.rayzig.runtime_history import RuntimeHistory
from custom_components.rayzig.runtime_statistics import statistic_id
from rayzig_core import ErrorCode, Event, EventKind, Module, NotFoundError, RayzigError
from rayzig_core.client import RayzigClient
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, loaded_entry, wait_for
from .test_runtime_statistics import H0, HOUR, hourly, log

pytestmark = pytest.mark.usefixtures("runtime_sensors_enabled")

PERIOD = 1200
INTERVALS = 600
HISTORY = [
    Event(0, 0, H0 + 10, EventKind.POWER_ON, None, None, None),
    *(
        Event(0, 0, H0 + PERIOD * k + offset, EventKind.COMMAND, 0, "installer", on)
        for k in range(INTERVALS)
        for offset, on in ((100, True), (700, False))
    ),
]
"""A power-on, then output 0 on from 100 s to 700 s of every 20 minutes."""
LAST_HOUR = (PERIOD * INTERVALS) // HOUR - 1
"""The hour of the last record (199): hours 0 to 198 are complete."""
EXPECTED_ON_TIME = [(h, 0.5 * (h + 1), 0.5 * (h + 1)) for h in range(LAST_HOUR)]
EXPECTED_CYCLES = [(h, 3 * (h + 1), 3 * (h + 1)) for h in range(LAST_HOUR)]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder must come before custom integrations are enabled."""


def bus_events(hass: HomeAssistant, module: Module) -> list[int]:
    """The sequence numbers of the module's records fired on the bus (filled as they come)."""
    seqs: list[int] = []

    @callback
    def listen(event: HassEvent) -> None:
        if event.data["module_id"] == module.module_id:
            seqs.append(event.data["seq"])

    hass.bus.async_listen(EVENT_RAYZIG, listen)
    return seqs


def sensor(hass: HomeAssistant, module: Module, key: str, index: int) -> float:
    state = hass.states.get(entity_id(hass, "sensor", f"{module.serial}_{key}_{index}"))
    assert state is not None
    return float(state.state)


async def assert_whole_history(hass: HomeAssistant, module: Module) -> None:
    """The sensors and the hourly statistics of output 0 count every record of the log once."""
    assert sensor(hass, module, "on_time", 0) == pytest.approx(100, abs=1e-6)
    assert sensor(hass, module, "switching_cycles", 0) == INTERVALS
    on_time = await hourly(hass, statistic_id(module.serial, 0, "on_time"))
    assert on_time[:LAST_HOUR] == pytest.approx(EXPECTED_ON_TIME)
    cycles = await hourly(hass, statistic_id(module.serial, 0, "switching_cycles"))
    assert cycles[:LAST_HOUR] == EXPECTED_CYCLES


async def test_the_whole_log_counts_and_the_logbook_gets_the_window(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    module: Module,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Statistics for all 200 hours of the log; bus (and logbook) events for the window only."""
    newest = log(gateway, module, HISTORY)
    fired = bus_events(hass, module)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: importer.cursors.get(module.module_id) == newest)
        await hass.async_block_till_done(wait_background_tasks=True)
        assert fired == list(range(newest - 99, newest + 1))
        assert not importer.runtime.modules[module.module_id].backfill
        assert importer.history.batches >= 3  # 1,201 records in batches of at most 512
        await assert_whole_history(hass, module)
        assert importer.runtime.rows_imported == LAST_HOUR  # output 0's hours, each once


async def test_a_restart_mid_read_counts_nothing_twice_and_commands_go_on(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    module: Module,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopped after its first batch, the read resumes after it: every record counts once."""
    newest = log(gateway, module, HISTORY)
    paused, go = asyncio.Event(), asyncio.Event()
    original = RuntimeHistory.async_batch

    async def batch(self: RuntimeHistory, module_id: int) -> None:
        if self.batches >= 1 and not go.is_set():
            paused.set()
            await go.wait()
        await original(self, module_id)

    monkeypatch.setattr(RuntimeHistory, "async_batch", batch)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, paused.is_set)
        state = importer.runtime.modules[module.module_id]
        assert state.backfill
        first_batch = state.seq
        assert newest - len(HISTORY) < first_batch < newest  # part of the log is folded
        part = sensor(hass, module, "on_time", 0)
        assert 0 < part < 100

        # Commands go through while the log is being read (between two batches).
        switch = entity_id(hass, "switch", f"{module.serial}_output_1")
        await hass.services.async_call("switch", "turn_on", {"entity_id": switch}, blocking=True)
        assert hass.states.get(switch).state == "on"  # type: ignore[union-attr]
        await wait_for(hass, lambda: importer.cursors.get(module.module_id) == newest + 1)
        assert state.seq == first_batch  # the command's record is left to the read

        # A restart in the middle of the read: it goes on after the last batch written.
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        stored = importer.runtime.modules[module.module_id]
        assert (stored.seq, stored.backfill) == (first_batch, True)
        go.set()
        assert await hass.config_entries.async_setup(entry.entry_id)
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: importer.history.batches >= 2)
        await hass.async_block_till_done(wait_background_tasks=True)
        state = importer.runtime.modules[module.module_id]
        assert not state.backfill
        assert state.seq == newest + 1
        await assert_whole_history(hass, module)
        # The command's record was folded once too: output 1 switched on once (off after power-on).
        assert sensor(hass, module, "switching_cycles", 1) == 1


async def test_a_lost_link_postpones_the_read_and_a_module_that_leaves_ends_it(
    hass: HomeAssistant,
    *,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    module: Module,
    client: RayzigClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed read leaves the totals where they were; a module gone stops its read."""
    config_entry.add_to_hass(hass)
    monkeypatch.setattr(RuntimeHistory, "async_schedule", lambda self: None)  # driven by hand
    log(gateway, module, HISTORY)
    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    await importer.async_sync()
    state = importer.runtime.modules[module.module_id]
    assert state.backfill
    read_events = client.read_events

    async def unreachable(*args: Any) -> Any:
        raise RayzigError("the gateway cannot be reached")

    monkeypatch.setattr(client, "read_events", unreachable)
    await importer.history._run()  # postponed until the next sync
    assert (state.seq, state.backfill, importer.history.batches) == (0, True, 0)

    async def leaves_meanwhile(*args: Any) -> Any:
        batch = await read_events(*args)
        importer._async_module_left(module.module_id)  # its ModuleLeft arrives during the read
        return batch

    monkeypatch.setattr(client, "read_events", leaves_meanwhile)
    await importer.history.async_batch(module.module_id)
    assert module.module_id not in importer.runtime.modules  # its totals went with it
    await importer.history.async_batch(module.module_id)  # nothing left to read

    # Read again from the start (new totals under the id); then the gateway no longer has it.
    monkeypatch.setattr(client, "read_events", read_events)
    await importer.async_sync([module.module_id])
    state = importer.runtime.modules[module.module_id]
    assert state.backfill

    async def not_found(*args: Any) -> Any:
        raise NotFoundError(ErrorCode.NOT_FOUND, "unknown module")

    monkeypatch.setattr(client, "read_events", not_found)
    await importer.history.async_batch(module.module_id)
    assert not state.backfill
    assert state.seq == 0
    await importer.async_stop()
