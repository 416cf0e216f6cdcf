"""Home Assistant benchmark: runtime statistics back-filled from pre-filled event logs.

Each back-fill runs in a Home Assistant of its own with the recorder on a file SQLite database.
The virtual gateway (a child process) holds a site whose event logs are pre-filled with generated
histories (commands, repowers with their presets); the Rayzig entry imports every record (its
import window is the log's size), folds each into its outputs' runtime totals and imports the
completed hours as long-term statistics. Measured, from the end of setup:

* **folded**: records per second of the time spent folding them (on the event loop);
* **hourly rows**: rows imported per second of the recorder's own time importing them (on its
  thread; one job, and transaction, per statistic and import), and the loop's time building them;
* **loop cost per record**: folding plus building rows, in microseconds per record;
* **back-fill**: records per second until the last statistics row was committed (the event
  import, paced by the recorder, is most of it);
* **rows in the database** (two statistics per output and hour) against the rows handed over
  (nothing lost, nothing twice), and that every completed hour was imported.

RATIO = loop cost per record of the largest back-fill / that of the smallest (flat: ≤ 1.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeassistant.components.recorder import statistics
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import get_instance

from benchmarks.common import BenchResult, Row
from benchmarks.ha import cli
from benchmarks.ha.gateway_process import GatewayProcess, SiteShape
from benchmarks.ha.hass import home_assistant, rayzig_entry
from benchmarks.ha.hass import run as run_hass
from benchmarks.ha.recorder import flush
from custom_components.rayzig.const import CONF_EVENT_IMPORT_WINDOW, DOMAIN
from custom_components.rayzig.events import RayzigEventImporter
from custom_components.rayzig.runtime_statistics import RuntimeStatistics
from rayzig_core import HOUR_SECONDS

NAME = "ha_statistics"
TITLE = "Home Assistant: runtime statistics back-filled from the event logs"
TARGET_FLATNESS = 1.5
LIMIT = 3_600.0
"""Longest wait for a back-fill (a safety net)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """The sites back-filled, smallest first (the ratio compares the last with the first)."""

    shapes: tuple[SiteShape, ...]


FULL = Workload((SiteShape(12, events=1024), SiteShape(12, events=8192)))
QUICK = Workload((SiteShape(12, events=128), SiteShape(12, events=1024)))
SMOKE = Workload((SiteShape(2, events=20), SiteShape(2, events=60)))
WORKLOADS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


@dataclass(slots=True)
class Timers:
    """Seconds spent in the runtime statistics' steps (measured around the real methods)."""

    fold: float = 0.0
    build: float = 0.0
    """Building and handing over rows (``_import``), on the loop."""
    imports: float = 0.0
    """Whole imports: rows handed over until the recorder had them (its queue included)."""
    last_import: float = 0.0
    recorder: float = 0.0
    """The recorder's own time importing the rows (its thread; one transaction per call)."""
    calls: int = 0
    """Import jobs the recorder ran (one per statistic and import)."""


@contextlib.contextmanager
def _timed(timers: Timers) -> Iterator[None]:
    """Time :class:`RuntimeStatistics`' fold, row building and imports while inside."""
    originals = {
        name: getattr(RuntimeStatistics, name) for name in ("fold", "_import", "async_import")
    }

    def timing(name: str, attribute: str) -> Callable[..., Any]:
        original = originals[name]

        def wrapper(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args)
            finally:
                setattr(
                    timers, attribute, getattr(timers, attribute) + time.perf_counter() - started
                )

        return wrapper

    async def async_import(self: RuntimeStatistics) -> int:
        started = time.perf_counter()
        count: int = await originals["async_import"](self)
        if count:
            timers.last_import = time.perf_counter()
            timers.imports += timers.last_import - started
        return count

    recorder_import = statistics.import_statistics

    def import_statistics(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return recorder_import(*args)
        finally:
            timers.recorder += time.perf_counter() - started
            timers.calls += 1

    statistics.import_statistics = import_statistics  # type: ignore[assignment]
    RuntimeStatistics.fold = timing("fold", "fold")  # type: ignore[method-assign]
    RuntimeStatistics._import = timing("_import", "build")  # type: ignore[method-assign]
    RuntimeStatistics.async_import = async_import  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(RuntimeStatistics, name, original)
        statistics.import_statistics = recorder_import


@dataclass(slots=True)
class Backfill:
    """What one back-fill measured."""

    shape: SiteShape
    records: int
    timers: Timers
    seconds: float
    """From the end of setup until the last statistics row was committed."""
    rows: int
    """Hourly rows handed over (each holds both statistics of an output)."""
    stored: int
    """Statistics rows of the integration in the database."""
    all_hours: bool
    """Every completed hour was imported (only the current one is pending)."""

    @property
    def per_record(self) -> float:
        """Loop seconds per record: folding and building rows."""
        return (self.timers.fold + self.timers.build) / self.records


def _rows_in_database(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM statistics JOIN statistics_meta "
            "ON statistics.metadata_id = statistics_meta.id WHERE statistics_meta.source = ?",
            (DOMAIN,),
        ).fetchone()
    return int(count)


def _all_hours_imported(importer: RayzigEventImporter) -> bool:
    """Nothing is left pending but the hour each module's latest time lies in."""
    for state in importer.runtime.modules.values():
        for output in state.outputs:
            pending = output.rows
            # What is still pending is the hour the module's latest time lies in, at most.
            if len(pending) > 1 or (
                pending
                and state.time is not None
                and (pending[0].start + HOUR_SECONDS <= state.time)
            ):
                return False
    return True


async def _measure(shape: SiteShape) -> Backfill:
    gateway = await GatewayProcess.start(shape, save_changes=False)
    timers = Timers()
    try:
        async with home_assistant(recorder=True, comparison=False) as home:
            hass: HomeAssistant = home.hass
            assert home.database is not None
            await get_instance(hass).async_db_ready
            await flush(hass)
            newest = gateway.site.newest_seqs
            records = sum(min(shape.events, seq) for seq in newest.values())
            options = {CONF_EVENT_IMPORT_WINDOW: shape.events}
            entry = rayzig_entry(gateway.port, await gateway.pair(), options)
            with _timed(timers):
                await hass.config_entries.async_add(entry)
                started = time.perf_counter()
                importer: RayzigEventImporter = entry.runtime_data.events
                async with asyncio.timeout(LIMIT):
                    # The first sync (a background task of the entry) imports every record.
                    await hass.async_block_till_done(wait_background_tasks=True)
            behind = [
                module_id
                for module_id, seq in newest.items()
                if (state := importer.runtime.modules.get(module_id)) is None or state.seq < seq
            ]
            if behind:
                raise RuntimeError(f"modules {behind} were not back-filled")
            seconds = max(timers.last_import, started) - started
            await flush(hass)
            stored = await hass.async_add_executor_job(_rows_in_database, home.database)
            return Backfill(
                shape,
                records,
                timers,
                seconds,
                importer.runtime.rows_imported,
                stored,
                _all_hours_imported(importer),
            )
    finally:
        await gateway.close()


def _report(runs: list[Backfill], seconds: float) -> BenchResult:
    details = ["recorder on a file SQLite database; every record of the pre-filled logs imported"]
    rows: list[Row] = []
    for run in runs:
        label = f"{run.shape.modules} modules × {run.shape.events:,d} records"
        timers = run.timers
        fold_rate = run.records / timers.fold if timers.fold else float("inf")
        row_rate = run.rows / timers.recorder if timers.recorder else float("inf")
        details += [
            f"{label}: {run.records:,d} records folded in {timers.fold:.3f} s "
            f"({fold_rate:,.0f} records/s); {run.rows:,d} hourly rows handed over in "
            f"{timers.build:.3f} s; the recorder imported them in {timers.recorder:.2f} s "
            f"({row_rate:,.0f} rows/s, {timers.calls:,d} jobs: one transaction per statistic "
            f"and import), {timers.imports:.2f} s from the first hand-over to the last "
            f"import's end (its queue included); back-fill complete after {run.seconds:.1f} s "
            f"({run.records / max(run.seconds, 1e-9):,.0f} records/s, the event import included)",
            f"  {run.stored:,d} statistics rows in the database (two per hourly row)",
        ]
        rows += [
            Row(f"{label}: folded", f"{fold_rate:,.0f} records/s"),
            Row(
                f"{label}: hourly rows imported by the recorder",
                f"{row_rate:,.0f} rows/s ({run.rows:,d} in {timers.calls:,d} jobs)",
            ),
            Row(f"{label}: loop cost", f"{run.per_record * 1e6:.1f} µs per record"),
            Row(
                f"{label}: rows in the database",
                f"{run.stored:,d} of {2 * run.rows:,d}",
                "all, none twice",
                run.stored == 2 * run.rows,
            ),
            Row(
                f"{label}: every completed hour imported",
                "yes" if run.all_hours else "no",
                "yes",
                run.all_hours,
            ),
        ]
    flatness = runs[-1].per_record / runs[0].per_record
    rows.append(
        Row(
            "loop cost per record, largest / smallest back-fill",
            f"{flatness:.2f}",
            f"≤ {TARGET_FLATNESS}",
            flatness <= TARGET_FLATNESS,
        )
    )
    return BenchResult(
        NAME,
        TITLE,
        flatness,
        f"loop cost per record, {runs[-1].shape.events:,d} / {runs[0].shape.events:,d} records "
        f"per module (flat: ≤ {TARGET_FLATNESS})",
        rows,
        details,
        seconds,
    )


def run(workload: Workload = FULL) -> BenchResult:
    """Run the benchmark (one Home Assistant per back-fill) and return its result."""
    started = time.perf_counter()
    runs = [run_hass(_measure(shape)) for shape in workload.shapes]
    return _report(runs, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.ha_statistics [--workload full|quick|smoke]``."""
    cli.main(__doc__.splitlines()[0], run, WORKLOADS, argv)


if __name__ == "__main__":
    main()
