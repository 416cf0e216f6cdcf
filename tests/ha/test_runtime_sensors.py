"""Runtime sensors without a recorder: counted from the log, kept with the cursors, or started anew.

The real virtual gateway over loopback; Home Assistant without a recorder (nothing is paced, no
statistics are written, completed hours are dropped). Also: a damaged stored total, a module whose
id now has another serial, a log that began again, and a module leaving the mesh.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.events import RayzigEventImporter
from rayzig_core import EventKind, JsonCodec, Module, ModuleRuntime, OutputRuntime
from rayzig_core.client import RayzigClient
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, loaded_entry, wait_for

pytestmark = pytest.mark.usefixtures("runtime_sensors_enabled")

H0 = 1_699_999_200
HOUR = 3600


def log_on_off(gateway: GatewayThread, module: Module, *offsets: float) -> int:
    """Output 0 switched on and off in turn at ``H0 + offsets``; the ring's newest seq."""

    def run(gw: Any) -> int:
        ring = gw.site.ring(module.module_id)
        for n, offset in enumerate(offsets):
            ring.append(
                module_id=module.module_id,
                timestamp=H0 + offset,
                kind=EventKind.COMMAND,
                output=0,
                user="installer",
                is_on=n % 2 == 0,
            )
        return int(ring.newest_seq)

    return int(gateway.call(run))


def key(entry: MockConfigEntry) -> str:
    return f"{DOMAIN}.{entry.entry_id}.events"


async def test_sensors_count_without_a_recorder(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    module: Module,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On 0..1.5 h and 2..5 h: 4.5 hours and two cycles; nothing waits for statistics."""
    newest = log_on_off(gateway, module, 0, 1.5 * HOUR, 2 * HOUR, 5 * HOUR)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: importer.cursors.get(module.module_id) == newest)
        await hass.async_block_till_done(wait_background_tasks=True)
        on_time = hass.states.get(entity_id(hass, "sensor", f"{module.serial}_on_time_0"))
        cycles = hass.states.get(entity_id(hass, "sensor", f"{module.serial}_switching_cycles_0"))
        assert on_time is not None
        assert cycles is not None
        assert float(on_time.state) == 4.5
        assert on_time.attributes["unit_of_measurement"] == "h"
        assert on_time.attributes["state_class"] == "total_increasing"
        assert on_time.attributes["device_class"] == "duration"
        assert cycles.state == "1"  # the first record set an unknown state: no cycle
        # An output without a record shows no runtime.
        other = hass.states.get(entity_id(hass, "sensor", f"{module.serial}_on_time_1"))
        assert other is not None
        assert float(other.state) == 0
        # Without a recorder the completed hours are not kept for statistics.
        state = importer.runtime.modules[module.module_id]
        assert state.completed() == {}
        assert importer.runtime.rows_imported == 0


async def test_stored_totals_start_afresh_when_they_cannot_be_trusted(
    hass: HomeAssistant,
    *,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    module: Module,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A damaged total is dropped; another serial under the id starts afresh; a log that
    began again continues the totals from its first record."""
    config_entry.add_to_hass(hass)
    codec = JsonCodec(ModuleRuntime)
    kept = ModuleRuntime(
        module.serial, seq=10_000, time=H0, outputs=[OutputRuntime(False, H0, 7200)]
    )
    hass_storage[key(config_entry)] = {
        "version": 1,
        "minor_version": 1,
        "key": key(config_entry),
        "data": {
            # The cursor lies beyond the module's log: the log began again (PROTOCOL.md §8.2).
            "modules": {str(module.module_id): {"seq": 10_000, "serial": module.serial}},
            "runtime": {
                str(module.module_id): codec.encode(kept),
                "2000": {"serial": 5},
                "2001": codec.encode(ModuleRuntime("RZ0000001", seq=3)),
            },
        },
    }
    with caplog.at_level(logging.WARNING):
        importer = RayzigEventImporter(hass, config_entry, client)
        await importer.async_load()
    assert "damaged runtime statistics for module 2000" in caplog.text
    assert set(importer.runtime.modules) == {module.module_id, 2001}
    log_on_off(gateway, module, 3 * HOUR, 4 * HOUR)
    await importer.async_sync([module.module_id])
    totals = importer.runtime.output(module.module_id, module.serial, 0)
    assert totals is not None
    assert (totals.on_seconds, totals.cycles) == (7200 + 3600, 0)
    assert importer.runtime.output(module.module_id, "RZ0000001", 0) is None
    assert importer.runtime.output(module.module_id, module.serial, 5) is None

    # The id now belongs to another module: its totals start afresh, from its whole log.
    importer.runtime.modules[module.module_id].serial = "RZ0000002"
    log_on_off(gateway, module, 5 * HOUR)
    await importer.async_sync([module.module_id])
    assert importer.runtime.modules[module.module_id].serial == module.serial
    assert importer.runtime.modules[module.module_id].backfill
    assert importer.runtime.output(module.module_id, module.serial, 0) is None
    await hass.async_block_till_done(wait_background_tasks=True)
    fresh = importer.runtime.output(module.module_id, module.serial, 0)
    assert fresh is not None
    # On at 3 h (a state not known before: no cycle), off at 4 h, on again at 5 h.
    assert (fresh.on_seconds, fresh.cycles) == (3600, 1)
    assert not importer.runtime.modules[module.module_id].backfill
    await importer.async_stop()


async def test_a_module_that_leaves_takes_its_totals(
    hass: HomeAssistant,
    *,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    module: Module,
    monkeypatch: pytest.MonkeyPatch,
    hass_storage: dict[str, Any],
) -> None:
    newest = log_on_off(gateway, module, 0, HOUR)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: importer.cursors.get(module.module_id) == newest)
        assert module.module_id in importer.runtime.modules
        gateway.call(lambda gw: gw.site.remove_module(module.module_id))
        await wait_for(hass, lambda: module.module_id not in importer.runtime.modules)
    assert str(module.module_id) not in hass_storage[key(config_entry)]["data"]["runtime"]
