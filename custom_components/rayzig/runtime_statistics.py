"""Outputs' on-time and switching cycles from the imported event logs, as sensors and statistics.

The event importer hands the records it pulled to :meth:`RuntimeStatistics.fold` before it writes
the cursors that cover them, and the folded totals (:class:`rayzig_core.ModuleRuntime`,
PROTOCOL.md §8.3) are written in the same atomic write as those cursors (:mod:`.event_cursors`):
after a crash, a restart or a reload the totals and the cursors agree, and records fired again
(their sequence numbers already folded) are not counted again.

The import window bounds only what goes to the bus and the logbook: a module whose first pull
starts after older records gets its totals from its whole log, read in the background
(:mod:`.runtime_history`); until that read has caught up, the pulled records are left to it.

Each completed clock hour becomes one long-term statistics row per output (on-time in hours and
switching cycles, ``sum`` and ``state`` both the total at the hour's end) at the module's own time,
imported as **external statistics** (``rayzig:<serial>_output_<n>_on_time``): hours before
Home Assistant knew the module, or while it was down, get their rows too. A row is forgotten only
once the recorder has committed it; a row imported twice replaces itself (the recorder keys rows by
hour), so a crash between the two repeats the row, never its runtime. Without a recorder the rows
are dropped as they complete; the sensors still count.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any, Final, cast

from homeassistant.const import UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.recorder import DATA_INSTANCE
from homeassistant.util import slugify

from rayzig_core import (
    HOUR_SECONDS,
    Event,
    EventKind,
    HourRow,
    Module,
    ModuleRuntime,
    OutputRuntime,
)

from .const import DOMAIN
from .event_cursors import CursorStore, ModuleCursor
from .event_pull import position_before

if TYPE_CHECKING:
    from homeassistant.components.recorder.core import Recorder
    from homeassistant.components.recorder.models import StatisticData, StatisticMetaData

    from .event_pull import Pulled

_LOGGER = logging.getLogger(__package__)

ON_TIME: Final = "on_time"
SWITCHING_CYCLES: Final = "switching_cycles"
DURATION_UNIT_CLASS: Final = "duration"
"""Home Assistant's unit class of hours (its DurationConverter), named in metadata since 2025.11."""


def signal_runtime(entry_id: str, module_id: int, output: int) -> str:
    """Dispatcher signal sent when one output's runtime totals changed."""
    return f"{DOMAIN}_{entry_id}_runtime_{module_id}_{output}"


def statistic_id(serial: str, output: int, key: str) -> str:
    """The external statistic of ``key`` of output ``output`` (0-based) of module ``serial``."""
    return f"{DOMAIN}:{slugify(serial)}_output_{output + 1}_{key}"


def _title(module: Module, index: int) -> str:
    """The output's name for the statistic (the module's name in front unless it has it)."""
    output = module.output(index)
    name = output.name.strip() if output is not None and output.name.strip() else ""
    name = name or f"Output {index + 1}"
    if name.casefold().startswith(module.name.strip().casefold()):
        return name
    return f"{module.name} {name}"


class RuntimeStatistics:
    """The runtime totals of a config entry's modules, their sensors' signals and statistics."""

    def __init__(self, hass: HomeAssistant, entry_id: str, store: CursorStore) -> None:
        """Keep the totals in ``store`` (saved with the event-log cursors)."""
        self.hass = hass
        self.entry_id = entry_id
        self._store = store
        self._changed: dict[int, set[int]] = {}
        """Module id → outputs whose totals changed since the last :meth:`async_dispatch`."""
        self._modules: dict[int, Module] = {}
        """Modules as last pulled (their names title the statistics)."""
        self.rows_imported = 0
        """Hourly statistics rows handed to the recorder since setup (diagnostics)."""

    @property
    def store(self) -> CursorStore:
        """Where the totals are kept (with the event-log cursors)."""
        return self._store

    @property
    def modules(self) -> dict[int, ModuleRuntime]:
        """Module id → its runtime totals (as stored)."""
        return self._store.runtime

    def output(self, module_id: int, serial: str, index: int) -> OutputRuntime | None:
        """Output ``index`` of module ``module_id`` (if it is still ``serial``): its totals."""
        state = self._store.runtime.get(module_id)
        if state is None or state.serial != serial or index >= len(state.outputs):
            return None
        return state.outputs[index]

    @callback
    def begin(self, pulled: Pulled, previous: ModuleCursor | None) -> None:
        """Get ready for a pull's records: a module under a new serial or log starts afresh.

        ``previous`` is the module's cursor before this pull: a pull that starts afresh before
        what was handed over follows a log that began again (PROTOCOL.md §8.2).
        """
        module, cursor = pulled.module, pulled.cursor
        if cursor is None:
            return
        module_id = module.module_id
        self._modules[module_id] = module
        state = self._store.runtime.get(module_id)
        if state is None or state.serial != module.serial:
            # The pull starts after older records (the import window, or a cursor from before
            # these totals): the whole log is read for them, in the background (§8.3).
            start = position_before(pulled.events, cursor.seq)
            covers_log = start == 0 or (pulled.events and pulled.events[0].kind is EventKind.GAP)
            self._store.runtime[module_id] = ModuleRuntime(module.serial, backfill=not covers_log)
            self._store.runtime_changed.add(module_id)
        elif previous is not None and cursor.fired is None and cursor.seq < previous.imported:
            state.restart_log(cursor.seq)
            self._store.runtime_changed.add(module_id)

    @callback
    def fold(self, records: list[tuple[Module, Event]]) -> None:
        """Fold records (grouped by module, each module's in sequence order) into the totals.

        Called before the cursors that cover them are written: the same write stores both.
        """
        for module_id, group in groupby(records, key=lambda record: record[0].module_id):
            state = self._store.runtime.get(module_id)
            if state is None:  # pragma: no cover - begin() made one for every pulled module
                continue
            if state.backfill:
                continue  # the read of the whole log folds these records in their turn
            self.fold_module(module_id, state, [event for _, event in group])

    @callback
    def fold_module(self, module_id: int, state: ModuleRuntime, events: list[Event]) -> None:
        """Fold one module's records (in sequence order) into ``state``, its totals."""
        changed = state.fold(events)
        self._store.runtime_changed.add(module_id)
        if changed:
            self._changed.setdefault(module_id, set()).update(changed)

    def pulled(self, module_id: int) -> bool:
        """Whether the module was pulled since setup (its statistics can be named)."""
        return module_id in self._modules

    @callback
    def async_dispatch(self) -> None:
        """Tell the sensors of each output whose totals changed (only those)."""
        changed, self._changed = self._changed, {}
        for module_id, outputs in changed.items():
            for index in sorted(outputs):
                async_dispatcher_send(self.hass, signal_runtime(self.entry_id, module_id, index))

    @callback
    def async_drop(self, module_id: int) -> None:
        """Forget a module that left (its totals go with the store's entry for it)."""
        self._modules.pop(module_id, None)
        self._changed.pop(module_id, None)

    async def async_import(self) -> int:
        """Import every completed hour's rows into the recorder; how many rows.

        Rows are forgotten (and the store written) once the recorder has committed them.
        """
        done = {
            module_id: completed
            for module_id, state in self._store.runtime.items()
            # A module not pulled since setup waits for its next pull (to name its statistics).
            if module_id in self._modules and (completed := state.completed())
        }
        if not done:
            return 0
        recorder = await self._async_recorder()
        count = 0
        if recorder is not None:
            for module_id, outputs in done.items():
                module = self._modules[module_id]
                for index, rows in outputs.items():
                    self._import(module, index, rows)
                    count += len(rows)
            await recorder.async_block_till_done()
        for module_id, outputs in done.items():
            self._store.runtime[module_id].release(
                {index: rows[-1].start + HOUR_SECONDS for index, rows in outputs.items()}
            )
            self._store.runtime_changed.add(module_id)
        await self._store.async_save()
        self.rows_imported += count
        return count

    async def async_clear(self) -> None:
        """Delete the outputs' long-term statistics (the config entry was removed)."""
        statistics = [
            statistic_id(state.serial, index, key)
            for state in self._store.runtime.values()
            for index in range(len(state.outputs))
            for key in (ON_TIME, SWITCHING_CYCLES)
        ]
        recorder = await self._async_recorder()
        if statistics and recorder is not None:
            recorder.async_clear_statistics(statistics)

    async def _async_recorder(self) -> Recorder | None:
        """The recorder, once its database is ready; None without one."""
        recorder: Recorder | None = self.hass.data.get(DATA_INSTANCE)
        if recorder is None or not await recorder.async_db_ready:
            return None
        return recorder

    def _import(self, module: Module, index: int, rows: list[HourRow]) -> None:
        """Hand one output's rows (on-time in hours, cycles) to the recorder's queue."""
        # Loaded only with a recorder (the recorder's models load sqlalchemy).
        from homeassistant.components.recorder.statistics import (  # noqa: PLC0415
            async_add_external_statistics,
        )

        title = _title(module, index)
        on_time: list[StatisticData] = []
        cycles: list[StatisticData] = []
        for row in rows:
            start = datetime.fromtimestamp(row.start, UTC)
            hours = row.on_seconds / HOUR_SECONDS
            on_time.append({"start": start, "state": hours, "sum": hours})
            cycles.append({"start": start, "state": row.cycles, "sum": row.cycles})
        for key, unit, unit_class, data, suffix in (
            (ON_TIME, UnitOfTime.HOURS, DURATION_UNIT_CLASS, on_time, "on time"),
            (SWITCHING_CYCLES, None, None, cycles, "switching cycles"),
        ):
            name = f"{title} {suffix}"
            metadata = _metadata(statistic_id(module.serial, index, key), name, unit, unit_class)
            async_add_external_statistics(self.hass, metadata, data)


def _metadata(
    statistic: str, name: str, unit: str | None, unit_class: str | None
) -> StatisticMetaData:
    """Metadata of a sum-only external statistic, for HA 2025.4 and for 2025.11+ (unit_class)."""
    from homeassistant.components.recorder.models import (  # noqa: PLC0415
        StatisticMeanType,
        StatisticMetaData,
    )

    metadata: dict[str, Any] = {
        "has_sum": True,
        "mean_type": StatisticMeanType.NONE,
        "name": name,
        "source": DOMAIN,
        "statistic_id": statistic,
        "unit_of_measurement": unit,
    }
    if "unit_class" in StatisticMetaData.__annotations__:  # pragma: no cover - HA 2025.11+
        metadata["unit_class"] = unit_class
    return cast("StatisticMetaData", metadata)
