"""Runtime statistics in Home Assistant: sensors and back-filled hourly statistics, counted once.

A module's log is replaced by the hand-computed history of tests/core/test_runtime_stats.py (a
repower with presets, a clock step, hour boundaries), split in two by a real gap (records lost
when the ring is erased) and by a restart of the entry or a crash of the importer. The sensors
and the statistics in Home Assistant's real recorder (SQLite) must show exactly the hand-computed
totals: nothing counted twice, nothing invented across the gap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.recorder import Recorder, get_instance
from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.events import RayzigEventImporter
from custom_components.rayzig.runtime_statistics import statistic_id
from rayzig_core import Event, EventKind, Module
from rayzig_core.client import RayzigClient
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, loaded_entry, wait_for

pytestmark = pytest.mark.usefixtures("runtime_sensors_enabled")

HOUR = 3600
H0 = 1_699_999_200
"""A whole UTC hour; the history's times are offsets from it."""


def record(
    offset: float, kind: EventKind, output: int | None = None, on: bool | None = None
) -> Event:
    """A record of the history (the ring gives it its sequence number)."""
    user = "installer" if kind is EventKind.COMMAND else None
    return Event(0, 0, H0 + offset, kind, output, user, on)


COMMAND, PRESET = EventKind.COMMAND, EventKind.PRESET_APPLIED
BEFORE_GAP = [
    record(100, EventKind.POWER_ON),
    record(600, COMMAND, 0, True),
    record(1200, COMMAND, 1, True),
    record(3000, COMMAND, 0, False),
    record(4200, COMMAND, 0, True),
    record(7000, EventKind.REPOWER),
    record(7001, PRESET, 0, True),
    record(7002, PRESET, 1, False),
    record(9000, COMMAND, 1, True),
    record(8000, COMMAND, 1, False),  # the module's clock stepped back
    record(9500, COMMAND, 1, True),
]
"""The hand-computed history of tests/core/test_runtime_stats.py up to its gap."""
LOST = [
    Event(0, 0, H0 + 10_000 + 60 * n, EventKind.COMMAND, 0, "installer", n % 2 == 0)
    for n in range(8)
]
"""Records logged and then erased unread: their runtime must not be counted."""
AFTER_GAP = [
    record(14500, COMMAND, 0, False),
    record(15000, COMMAND, 1, True),
    record(18100, COMMAND, 0, True),
]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder must come before custom integrations are enabled."""


def log(gateway: GatewayThread, module: Module, events: list[Event]) -> int:
    """Log ``events`` (kind, output, time, state) into the module's ring; its newest seq."""

    def run(gw: Any) -> int:
        ring = gw.site.ring(module.module_id)
        for event in events:
            ring.append(
                module_id=module.module_id,
                timestamp=event.timestamp,
                kind=event.kind,
                output=event.output,
                user=event.user,
                is_on=event.is_on,
            )
        return int(ring.newest_seq)

    return int(gateway.call(run))


def lose(gateway: GatewayThread, module: Module) -> None:
    """Log records and erase them unread: the next pull reports a gap."""
    log(gateway, module, LOST)
    gateway.call(lambda gw: gw.site.ring(module.module_id).clear())


async def hourly(hass: HomeAssistant, statistic: str) -> list[tuple[int, float, float]]:
    """The statistic's hourly rows: (hour offset from H0, state, sum)."""
    rows = await get_instance(hass).async_add_executor_job(
        statistics_during_period,
        hass,
        datetime.fromtimestamp(H0 - HOUR, UTC),
        None,
        {statistic},
        "hour",
        None,
        {"state", "sum"},
    )
    return [
        (int(row["start"] - H0) // HOUR, row["state"] or 0.0, row["sum"] or 0.0)
        for row in rows.get(statistic, [])
    ]


def hours(seconds: float) -> float:
    return seconds / HOUR


EXPECTED_ON_TIME = {
    0: [
        (0, hours(2400), hours(2400)),
        (1, hours(2599), hours(2599)),
        (2, hours(4899), hours(4899)),
    ],
    1: [
        (0, hours(2400), hours(2400)),
        (1, hours(3000), hours(3000)),
        (2, hours(3000), hours(3000)),
        (4, hours(6000), hours(6000)),
    ],
}
"""Hours 0 to 4 are complete (the module's latest time lies in hour 5)."""
EXPECTED_CYCLES = {
    0: [(0, 1, 1), (1, 3, 3), (2, 3, 3)],
    1: [(0, 1, 1), (1, 1, 1), (2, 3, 3), (4, 3, 3)],
}
"""Rows for the same hours as the on-time's: each hour in which either total changed."""


async def assert_statistics(hass: HomeAssistant, module: Module) -> None:
    await hass.async_block_till_done(wait_background_tasks=True)
    for index in (0, 1):
        on_time = await hourly(hass, statistic_id(module.serial, index, "on_time"))
        assert on_time == pytest.approx(EXPECTED_ON_TIME[index]), index
        cycles = await hourly(hass, statistic_id(module.serial, index, "switching_cycles"))
        assert cycles == EXPECTED_CYCLES[index], index


def sensor(hass: HomeAssistant, module: Module, key: str, index: int) -> float:
    state = hass.states.get(entity_id(hass, "sensor", f"{module.serial}_{key}_{index}"))
    assert state is not None
    return float(state.state)


async def test_back_fill_across_a_gap_and_an_entry_restart(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    module: Module,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sensors and the hourly statistics equal the hand-computed history's, once."""
    first = log(gateway, module, BEFORE_GAP)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: importer.cursors.get(module.module_id) == first)
        await hass.async_block_till_done(wait_background_tasks=True)
        # Until the clock step: output 0 on 600..3000 and 7001..9500, output 1 on 1200..4200.
        assert sensor(hass, module, "on_time", 0) == pytest.approx(hours(4899), abs=1e-6)
        assert sensor(hass, module, "switching_cycles", 0) == 3
        assert sensor(hass, module, "on_time", 1) == pytest.approx(hours(3000), abs=1e-6)
        assert sensor(hass, module, "switching_cycles", 1) == 3
        assert await hourly(hass, statistic_id(module.serial, 0, "on_time")) == pytest.approx(
            EXPECTED_ON_TIME[0][:2]
        )

        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        lose(gateway, module)
        newest = log(gateway, module, AFTER_GAP)
        assert await hass.config_entries.async_setup(entry.entry_id)
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: importer.cursors.get(module.module_id) == newest)
        await assert_statistics(hass, module)
        assert sensor(hass, module, "on_time", 0) == pytest.approx(hours(4899), abs=1e-6)
        assert sensor(hass, module, "switching_cycles", 0) == 4
        assert sensor(hass, module, "on_time", 1) == pytest.approx(hours(6100), abs=1e-6)
        assert sensor(hass, module, "switching_cycles", 1) == 3
        # Sum-only statistics under the integration's own source, named after the output.
        metadata = await get_instance(hass).async_add_executor_job(
            _metadata, hass, statistic_id(module.serial, 0, "on_time")
        )
        assert metadata["source"] == DOMAIN
        assert metadata["unit_of_measurement"] == "h"
        assert metadata["has_sum"]

    # Removing the entry deletes its statistics with its stored totals.
    assert await hass.config_entries.async_remove(config_entry.entry_id)
    await async_wait_recording_done(hass)
    assert await hourly(hass, statistic_id(module.serial, 0, "on_time")) == []


def _metadata(hass: HomeAssistant, statistic: str) -> dict[str, Any]:
    from homeassistant.components.recorder.statistics import get_metadata  # noqa: PLC0415

    return dict(get_metadata(hass, statistic_ids={statistic})[statistic][1])


class Crash(BaseException):
    """Home Assistant dying at a chosen moment."""


@pytest.mark.parametrize("point", ["before_the_write", "after_the_write"])
async def test_a_crash_mid_import_counts_nothing_twice(
    hass: HomeAssistant,
    *,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    module: Module,
    point: str,
) -> None:
    """Killed while the records are folded and about to be fired: the next start counts once."""
    config_entry.add_to_hass(hass)
    first = log(gateway, module, BEFORE_GAP)
    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    await importer.async_sync([module.module_id])
    assert importer.runtime.rows_imported == 4  # hours 0 and 1 of both outputs
    lose(gateway, module)
    newest = log(gateway, module, AFTER_GAP)
    saves = importer._store._store.async_save

    async def save(data: dict[str, Any]) -> None:
        if point == "after_the_write":
            await saves(data)
        raise Crash

    with patch.object(importer._store._store, "async_save", save), pytest.raises(Crash):
        await importer.async_sync([module.module_id])
    while importer._unsubscribe:  # what a dead process leaves: no unload, no final write
        importer._unsubscribe.pop()()

    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    stored = importer._store.runtime.get(module.module_id)
    if point == "after_the_write":
        assert stored is not None
        assert stored.seq == newest  # folded and written with the range about to be fired
    else:
        assert stored is not None
        assert stored.seq == first
    await importer.async_sync([module.module_id])
    totals = importer.runtime.output(module.module_id, module.serial, 0)
    assert totals is not None
    assert (totals.on_seconds, totals.cycles) == (4899, 4)
    assert importer.runtime.rows_imported == 3  # hour 2 of both outputs, hour 4 of output 1
    await assert_statistics(hass, module)
    # Nothing left to import: a further sync adds no row and changes no total.
    await importer.async_sync([module.module_id])
    assert importer.runtime.rows_imported == 3
    await importer.async_stop()
