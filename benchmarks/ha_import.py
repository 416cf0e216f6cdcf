"""Home Assistant benchmark: event-log back-fill onto the bus and into the recorder.

Each back-fill runs in a Home Assistant of its own with the recorder on a file SQLite database
(default commit interval, 5 s). The virtual gateway (a child process) holds a site whose event
logs are pre-filled; the Rayzig entry is added with the back-fill's import window (how many past
records per module the first sync imports), and its importer fires one ``rayzig_event`` per
record, and writes the state of the module's event entity once per record. Measured:

* **onto the bus**: back-fill records / seconds from the end of setup until the last was fired
  (paced: at most what the recorder takes);
* **the bus-side cost**, unpaced: the time the importer's firing holds the event loop (its
  ``_fire_records`` is wrapped and timed; nothing else), per record in the median chunk (a full
  garbage collection stops the chunk it falls into: that is reported apart), and the rate that
  makes without waits; its first and last tenth of the chunks apart, to show whether it is flat;
* **loop-blocking spans** during the import: callbacks that held the event loop over 5 ms;
* **stored**: back-fill records / seconds from the end of setup until the recorder's queue was
  empty again after the last one (its rows are then in its session; a commit follows);
* **the recorder's ceiling**: the same events (same data, new sequence numbers: each record's
  ``rayzig_event`` and its logbook row, fired by the integration's own function) fired directly
  on the bus, never more than 1,000 queued, for as many records as the import (at most the
  workload's count): the rate the recorder sustains when fed as fast as it takes them. Again with
  each record's event-entity state write (through the integration's dispatcher signal, as the
  importer sends it): what the same records cost the recorder the way the import hands them over;
* the recorder's peak queue, and the time it spent above 65,000 (past that its 5-minute check stops
  recording when less than 256 MB of memory is free);
* once the commands' own records (one per command below) have all been fired, and after a forced
  commit: records fired but **missing** from the database, and records fired (or stored) **more
  than once**; and how long after the last command its records were all fired (the importer takes
  new records after the back-fill it is busy with);
* **command latency** of one Rayzig switch during the import (back to back, 20 ms apart), while the
  recorder drains its queue (1 s apart, at most 60: each adds to the queue) and when idle after.

RATIO = stored rate / the recorder's ceiling for the first back-fill (target ≥ 0.9).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.recorder import get_instance

from benchmarks.common import BenchResult, Row, Summary
from benchmarks.ha import cli
from benchmarks.ha.gateway_process import GatewayProcess, SiteShape
from benchmarks.ha.hass import home_assistant, rayzig_entry
from benchmarks.ha.hass import run as run_hass
from benchmarks.ha.probes import LoopSpans, toggle
from benchmarks.ha.recorder import BacklogWatch, database_bytes, flush, stored_events
from custom_components.rayzig.const import (
    ATTR_DEVICE_ID,
    ATTR_IS_ON,
    ATTR_KIND,
    ATTR_MODULE_ID,
    ATTR_OUTPUT,
    ATTR_SEQ,
    ATTR_USER,
    CONF_EVENT_IMPORT_WINDOW,
    DEFAULT_EVENT_IMPORT_WINDOW,
    EVENT_RAYZIG,
)
from custom_components.rayzig.event_data import signal_new_event
from custom_components.rayzig.events import RayzigEventImporter
from custom_components.rayzig.logbook_entries import async_fire_imported
from rayzig_core.models import Event as LogRecord
from rayzig_core.models import EventKind, Module

NAME = "ha_import"
TITLE = "Home Assistant: event-log back-fill onto the bus and into the recorder"
TARGET_BUS_RATE = 40_000.0
TARGET_STORED_VS_CEILING = 0.9
TARGET_LATENCY_GROWTH = 2.0
IMPORT_PAUSE = 0.02
DRAIN_PAUSE = 1.0
IDLE_PAUSE = 0.05
CEILING_QUEUE = 1_000
CEILING_CHUNK = 100
CEILING_SEQ = 10_000_000
"""Sequence numbers of the records fired directly start here (no module has logged as many)."""
DRAIN_COMMANDS = 60
"""Most commands sent while the recorder drains (each adds work to its queue)."""
QUIET_BACKLOG = 1_000
"""Below this many queued items the drain phase stops sending commands (so the queue empties)."""
LIMIT = 3_600.0
"""Longest wait for the import or the drain (a safety net: the drain took 21 minutes once)."""


@dataclass(frozen=True, slots=True)
class Backfill:
    """A site with pre-filled logs and the import window of the entry (None: the default)."""

    shape: SiteShape
    window: int | None = None

    @property
    def label(self) -> str:
        """``12 modules × 8192 records`` and the like."""
        window = self.window or DEFAULT_EVENT_IMPORT_WINDOW
        suffix = "" if self.window else " (default)"
        return f"{self.shape.modules} modules, window {window}{suffix}"


@dataclass(frozen=True, slots=True)
class Workload:
    """The back-fills, the sizes of the two ceiling runs and the idle commands."""

    backfills: tuple[Backfill, ...]
    ceiling_events: int
    state_ceiling_events: int
    idle_commands: int


FULL = Workload(
    (Backfill(SiteShape(12, events=8192), 8192), Backfill(SiteShape(250, events=200))),
    ceiling_events=20_000,
    state_ceiling_events=2_000,
    idle_commands=30,
)
QUICK = Workload(
    (Backfill(SiteShape(12, events=512), 512), Backfill(SiteShape(50, events=200))),
    ceiling_events=5_000,
    state_ceiling_events=500,
    idle_commands=20,
)
SMOKE = Workload(
    (Backfill(SiteShape(2, events=40), 30),),
    ceiling_events=200,
    state_ceiling_events=20,
    idle_commands=3,
)
WORKLOADS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


@dataclass(slots=True)
class ImportRun:
    """What one back-fill measured."""

    backfill: Backfill
    records: int
    """Back-fill records the window covers (what the import must fire)."""
    setup: float
    bus_seconds: float = 0.0
    """From the end of setup until the last back-fill record was fired."""
    stored_seconds: float = 0.0
    """From the end of setup until the recorder's queue was empty after it."""
    peak_backlog: int = 0
    above_limit: float = 0.0
    state_changes: int = 0
    """``state_changed`` events from the end of setup until the last back-fill record."""
    fired: int = 0
    """Distinct records fired (the commands' own records included)."""
    commands_caught_up: float = 0.0
    """Seconds from the last command until every command's record had been fired."""
    stored: int = 0
    missing: int = 0
    repeated_bus: int = 0
    repeated_db: int = 0
    bytes_per_event: float = 0.0
    ceiling_events: int = 0
    ceiling_seconds: float = 0.0
    ceiling_peak: int = 0
    state_ceiling_events: int = 0
    """Records fired directly with their event entity's state write."""
    state_ceiling_seconds: float = 0.0
    firing: list[tuple[int, float]] = field(default_factory=list)
    """(records, seconds) of each time the importer fired a chunk."""
    long_spans: str = ""
    """The loop-blocking spans during the import, summarised."""
    during_import: list[float] = field(default_factory=list)
    during_drain: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)

    @property
    def bus_rate(self) -> float:
        """Records per second onto the bus."""
        return self.records / self.bus_seconds

    @property
    def firing_rate(self) -> float:
        """Records per second of loop time spent firing them (no waits), by the median chunk.

        The median leaves out the chunk that a full garbage collection (which stops every
        thread, whoever triggered it) happens to fall into; those are reported apart.
        """
        return 1 / self.firing_cost(slice(None))

    def firing_cost(self, part: slice) -> float:
        """Seconds of loop time per record in the median chunk of ``part`` of the chunks."""
        chunks = self.firing[part] or self.firing
        return statistics.median(t / n for n, t in chunks if n)

    @property
    def firing_total(self) -> float:
        """Loop time per record over all chunks, garbage collections included."""
        return sum(t for _, t in self.firing) / max(sum(n for n, _ in self.firing), 1)

    @property
    def stored_rate(self) -> float:
        """Records per second through the recorder, fed by the import."""
        return self.records / self.stored_seconds

    @property
    def ceiling_rate(self) -> float:
        """Records per second through the recorder, fed directly."""
        return self.ceiling_events / self.ceiling_seconds

    @property
    def state_ceiling_rate(self) -> float:
        """Records per second through the recorder, fed directly with their entity's state."""
        return self.state_ceiling_events / self.state_ceiling_seconds


class FiredEvents:
    """Counts every ``rayzig_event`` by (module, seq); tells back-fill records from new ones."""

    def __init__(self, hass: HomeAssistant, newest: dict[int, int]) -> None:
        self.counts: Counter[tuple[int, int]] = Counter()
        self.template: dict[str, Any] = {}
        self.backfill = 0
        """Distinct back-fill records fired (seq at most the module's newest at the start)."""
        self.last_backfill = 0.0
        self.first = asyncio.Event()
        self.state_changes = 0
        """``state_changed`` events so far (of any entity)."""
        self._newest = newest
        self._fired = asyncio.Event()
        self._unsubscribe = [
            hass.bus.async_listen(EVENT_RAYZIG, self._on_event),
            hass.bus.async_listen(EVENT_STATE_CHANGED, self._on_state_changed),
        ]

    @callback
    def _on_state_changed(self, event: Event[EventStateChangedData]) -> None:
        self.state_changes += 1

    @callback
    def _on_event(self, event: Event[dict[str, Any]]) -> None:
        module_id, seq = int(event.data[ATTR_MODULE_ID]), int(event.data[ATTR_SEQ])
        self.counts[module_id, seq] += 1
        if self.counts[module_id, seq] == 1 and seq <= self._newest.get(module_id, 0):
            self.backfill += 1
            self.last_backfill = time.perf_counter()
        if not self.first.is_set():
            self.template = dict(event.data)
            self.first.set()
        self._fired.set()

    async def commands(self, module_id: int, count: int) -> None:
        """Wait until the records of ``count`` commands to ``module_id`` have all been fired.

        Each command logs one record after the module's newest at the start; the importer fires
        them once it is done with what it was importing when they came.
        """
        first = self._newest.get(module_id, 0) + 1
        wanted = {(module_id, seq) for seq in range(first, first + count)}
        while not wanted <= self.counts.keys():
            self._fired.clear()
            await self._fired.wait()

    def close(self) -> None:
        """Stop counting (before the final commit: every record counted is then in it)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()


class FiringCost:
    """Times the importer's firing of each chunk (a context; synchronous: loop time, no waits)."""

    def __init__(self, into: list[tuple[int, float]]) -> None:
        self._into = into
        self._original: Any = None

    def __enter__(self) -> FiringCost:
        original = RayzigEventImporter._fire_records
        into = self._into

        def timed(
            importer: RayzigEventImporter,
            records: list[tuple[Module, LogRecord]],
            devices: dict[int, str | None],
        ) -> None:
            started = time.perf_counter()
            original(importer, records, devices)
            into.append((len(records), time.perf_counter() - started))

        self._original = original
        RayzigEventImporter._fire_records = timed  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        RayzigEventImporter._fire_records = self._original  # type: ignore[method-assign]


async def _a_switch(hass: HomeAssistant, device_id: str) -> str:
    """A switch of the module whose records came first (its back-fill is complete)."""
    entries = er.async_entries_for_device(er.async_get(hass), device_id)
    return sorted(entry.entity_id for entry in entries if entry.domain == "switch")[0]


async def _ceiling(
    hass: HomeAssistant, entry_id: str, template: dict[str, Any], count: int, *, state: bool
) -> tuple[float, int]:
    """Fire ``count`` records like ``template`` as fast as the recorder takes them.

    Each record is fired as the importer fires it (its ``rayzig_event`` and, where it has one, its
    logbook row) and, with ``state``, also the state write of its module's event entity (through
    the integration's own dispatcher signal, as the importer sends it). At most
    :data:`CEILING_QUEUE` items wait in the recorder's queue. Returns the seconds until the queue
    was empty after the last one, and the queue's peak.
    """
    await flush(hass)
    watch = BacklogWatch(hass).start()
    module_id = int(template[ATTR_MODULE_ID])
    signal = signal_new_event(entry_id, module_id)
    first_seq = CEILING_SEQ * (2 if state else 1)
    kind = EventKind[str(template[ATTR_KIND]).upper()]
    output = template[ATTR_OUTPUT]
    timestamp = time.time() - count
    try:
        started = time.perf_counter()
        fired = 0
        while fired < count:
            if watch.backlog < CEILING_QUEUE:
                for _ in range(min(CEILING_CHUNK, count - fired)):
                    seq, when = first_seq + fired, timestamp + fired
                    data = {**template, ATTR_SEQ: seq}
                    record = LogRecord(
                        module_id,
                        seq,
                        when,
                        kind,
                        None if output is None else int(output) - 1,
                        template[ATTR_USER],
                        template[ATTR_IS_ON],
                    )
                    async_fire_imported(hass, data, record, None)
                    if state:
                        async_dispatcher_send(hass, signal, record)
                    fired += 1
            await asyncio.sleep(0.005)
        done = await watch.drained(time.perf_counter(), LIMIT)
        return done - started, watch.peak
    finally:
        await watch.stop()


async def _measure(backfill: Backfill, workload: Workload) -> ImportRun:
    gateway = await GatewayProcess.start(backfill.shape, save_changes=False)
    try:
        async with home_assistant(recorder=True, comparison=False) as home:
            hass = home.hass
            assert home.database is not None
            await get_instance(hass).async_db_ready
            await flush(hass)
            window = backfill.window or DEFAULT_EVENT_IMPORT_WINDOW
            newest = gateway.site.newest_seqs
            records = sum(min(window, seq) for seq in newest.values())
            fired = FiredEvents(hass, newest)
            watch = BacklogWatch(hass).start()
            database_before = database_bytes(home.database)
            options = {} if backfill.window is None else {CONF_EVENT_IMPORT_WINDOW: window}
            entry = rayzig_entry(gateway.port, await gateway.pair(), options)
            started = time.perf_counter()
            await hass.config_entries.async_add(entry)
            imported_from = time.perf_counter()
            changes_from = fired.state_changes
            run = ImportRun(backfill, records, imported_from - started)
            try:
                with FiringCost(run.firing), LoopSpans() as spans:
                    async with asyncio.timeout(LIMIT):
                        await fired.first.wait()
                        switch = await _a_switch(hass, str(fired.template[ATTR_DEVICE_ID]))
                        while fired.backfill < records:
                            run.during_import.append(await toggle(hass, switch))
                            await asyncio.sleep(IMPORT_PAUSE)
                run.long_spans = spans.summary()
                run.bus_seconds = fired.last_backfill - imported_from
                run.state_changes = fired.state_changes - changes_from
                while watch.backlog > QUIET_BACKLOG and len(run.during_drain) < DRAIN_COMMANDS:
                    run.during_drain.append(await toggle(hass, switch))
                    await asyncio.sleep(DRAIN_PAUSE)
                drained = await watch.drained(fired.last_backfill, LIMIT)
                run.stored_seconds = drained - imported_from
            finally:
                await watch.stop()
            run.peak_backlog, run.above_limit = watch.peak, watch.above_limit
            for _ in range(workload.idle_commands):
                await hass.async_block_till_done()
                await asyncio.sleep(IDLE_PAUSE)
                run.idle.append(await toggle(hass, switch))
            # The commands' records follow the back-fill and its final commit (which may take
            # seconds): wait for them, stop counting, and only then have the recorder commit.
            commands = len(run.during_import) + len(run.during_drain) + len(run.idle)
            last_command = time.perf_counter()
            async with asyncio.timeout(LIMIT):
                await fired.commands(int(fired.template[ATTR_MODULE_ID]), commands)
            run.commands_caught_up = time.perf_counter() - last_command
            fired.close()
            await flush(hass)
            stored = await stored_events(hass, home.database, EVENT_RAYZIG)
            run.fired = len(fired.counts)
            run.stored = sum(stored.values())
            run.missing = len(fired.counts.keys() - stored.keys())
            run.repeated_bus = sum(n - 1 for n in fired.counts.values())
            run.repeated_db = sum(n - 1 for n in stored.values())
            run.bytes_per_event = (database_bytes(home.database) - database_before) / max(
                run.stored, 1
            )
            run.ceiling_events = min(workload.ceiling_events, records)
            run.ceiling_seconds, run.ceiling_peak = await _ceiling(
                hass, entry.entry_id, fired.template, run.ceiling_events, state=False
            )
            run.state_ceiling_events = min(workload.state_ceiling_events, records)
            run.state_ceiling_seconds, _ = await _ceiling(
                hass, entry.entry_id, fired.template, run.state_ceiling_events, state=True
            )
            return run
    finally:
        await gateway.close()


def _ms(values: list[float]) -> str:
    if not values:
        return "no command"
    summary = Summary.of(values)
    return (
        f"p50 {summary.p50 * 1e3:.1f} / p99 {summary.p99 * 1e3:.1f} / worst "
        f"{summary.maximum * 1e3:.1f} ms (n={summary.n})"
    )


def _report(runs: list[ImportRun], seconds: float) -> BenchResult:
    details = [
        "recorder on a file SQLite database, commit interval 5 s; rates over seconds from the "
        "end of setup; ceiling = the same events fired directly, at most 1,000 queued",
    ]
    rows: list[Row] = []
    for run in runs:
        label = run.backfill.label
        shape = run.backfill.shape
        vs_ceiling = run.stored_rate / run.ceiling_rate
        idle_p99 = Summary.of(run.idle).p99 if run.idle else float("nan")
        details += [
            f"{label}: {shape.modules} modules holding {shape.events} records each; "
            f"{run.records:,d} back-fill records; entry set up in {run.setup:.2f} s",
            f"  onto the bus: {run.bus_rate:,.0f} records/s ({run.bus_seconds:.2f} s), paced",
            f"  bus-side cost (loop time firing, no waits; median chunk): "
            f"{1e6 / run.firing_rate:.1f} µs per record = {run.firing_rate:,.0f} records/s "
            f"unpaced ({run.firing_total * 1e6:.1f} µs over all chunks, garbage collections "
            "included); first tenth "
            f"{run.firing_cost(slice(None, max(len(run.firing) // 10, 1))) * 1e6:.1f} µs, last "
            f"tenth {run.firing_cost(slice(-max(len(run.firing) // 10, 1), None)) * 1e6:.1f} µs; "
            f"{len(run.firing):,d} chunks, the largest {max(n for n, _ in run.firing):,d} "
            f"records in {max(t for _, t in run.firing) * 1e3:.1f} ms",
            f"  loop-blocking spans during the import: {run.long_spans}",
            f"  stored: {run.stored_rate:,.0f} records/s ({run.stored_seconds:.1f} s); the "
            f"recorder's ceiling {run.ceiling_rate:,.0f} records/s ({run.ceiling_events:,d} in "
            f"{run.ceiling_seconds:.1f} s, queue peak {run.ceiling_peak:,d}); with each "
            f"record's event-entity state write too: {run.state_ceiling_rate:,.0f} records/s "
            f"({run.state_ceiling_events:,d} in {run.state_ceiling_seconds:.1f} s)",
            f"  recorder queue peak {run.peak_backlog:,d}; {run.above_limit:.1f} s above 65,000",
            f"  state changes while importing: {run.state_changes:,d} "
            f"({run.state_changes / run.records:.2f} per record: the module's event entity "
            "writes one per record, and the recorder stores it as a state row besides the event)",
            f"  fired {run.fired:,d} distinct records (the commands' own included), stored "
            f"{run.stored:,d}; missing {run.missing:,d}; repeated on the bus "
            f"{run.repeated_bus:,d}, in the database {run.repeated_db:,d}; "
            f"{run.bytes_per_event:.0f} database bytes per stored record (its event and its "
            "event entity's state)",
            f"  command latency: during the import {_ms(run.during_import)}; while the recorder "
            f"drains {_ms(run.during_drain)}; idle {_ms(run.idle)}; the commands' records all "
            f"fired {run.commands_caught_up:.2f} s after the last",
        ]
        rows += [
            Row(
                f"{label}: onto the bus, paced to the recorder",
                f"{run.bus_rate:,.0f} records/s ({run.records:,d} in {run.bus_seconds:.1f} s)",
            ),
            Row(
                f"{label}: bus-side cost, unpaced (loop time firing)",
                f"{run.firing_rate:,.0f} records/s ({1e6 / run.firing_rate:.1f} µs per record)",
                f"≥ {TARGET_BUS_RATE:,.0f}/s",
                run.firing_rate >= TARGET_BUS_RATE,
            ),
            Row(f"{label}: loop-blocking spans during the import", run.long_spans),
            Row(
                f"{label}: stored / the recorder's ceiling",
                f"{vs_ceiling:.2f} ({run.stored_rate:,.0f} of {run.ceiling_rate:,.0f} records/s; "
                f"queue peak {run.peak_backlog:,d})",
                f"≥ {TARGET_STORED_VS_CEILING}",
                vs_ceiling >= TARGET_STORED_VS_CEILING,
            ),
            Row(
                f"{label}: missing from the database",
                f"{run.missing:,d} of {run.fired:,d}",
                "0",
                run.missing == 0,
            ),
            Row(
                f"{label}: repeated (bus, database)",
                f"{run.repeated_bus:,d}, {run.repeated_db:,d}",
                "0",
                run.repeated_bus == 0 and run.repeated_db == 0,
            ),
        ]
        for phase, values in (
            ("during the import", run.during_import),
            ("while the recorder drains", run.during_drain),
        ):
            if values:
                growth = Summary.of(values).p99 / idle_p99
                rows.append(
                    Row(
                        f"{label}: command p99 {phase} / idle",
                        f"{growth:.1f}× ({_ms(values)}; idle {_ms(run.idle)})",
                        f"≤ {TARGET_LATENCY_GROWTH:g}×",
                        growth <= TARGET_LATENCY_GROWTH,
                    )
                )
    first = runs[0]
    return BenchResult(
        NAME,
        TITLE,
        first.stored_rate / first.ceiling_rate,
        f"stored rate / the recorder's ceiling, {first.backfill.label} "
        f"(target ≥ {TARGET_STORED_VS_CEILING})",
        rows,
        details,
        seconds,
    )


def run(workload: Workload = FULL) -> BenchResult:
    """Run the benchmark (one Home Assistant per back-fill) and return its result."""
    started = time.perf_counter()
    runs = [run_hass(_measure(backfill, workload)) for backfill in workload.backfills]
    return _report(runs, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.ha_import [--workload full|quick|smoke]``."""
    cli.main(__doc__.splitlines()[0], run, WORKLOADS, argv)


if __name__ == "__main__":
    main()
