"""Home Assistant benchmark: config-entry setup time and memory, by site size; leak check.

Each site size runs in a fresh Python process (freed memory of an earlier size would otherwise
be reused and hide growth): Home Assistant starts, the virtual gateway (another child process)
serves the site, a client key is paired, and then the config entry is added and set up
(``config_entries.async_add``) and timed until Home Assistant has nothing left queued, with the
RSS of the process before and after, and after unloading the entry again. At the largest size
the entry is then set up and unloaded again for several cycles (registry entries exist, as after
a restart): the RSS after each unload shows whether something is kept each time.

RATIO = setup time at the largest size / 1 s (the target).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from homeassistant.config_entries import ConfigEntryState

from benchmarks.common import BenchResult, Row
from benchmarks.ha import cli
from benchmarks.ha.gateway_process import REPOSITORY, GatewayProcess, SiteShape
from benchmarks.ha.hass import entities_of, home_assistant, rayzig_entry
from benchmarks.ha.hass import run as run_hass
from benchmarks.ha.probes import rss

NAME = "ha_setup"
TITLE = "Home Assistant: config-entry setup time and memory by site size"
TARGET_SETUP = 1.0
TARGET_GROWTH = 40 * 2**20
TARGET_LEAK = 2 * 2**20
MB = 2**20
CHILD_TIMEOUT = 900.0


@dataclass(frozen=True, slots=True)
class Workload:
    """Site sizes (in order) and the load/unload cycles of the last one (the first included)."""

    sizes: tuple[SiteShape, ...]
    cycles: int


FULL = Workload(
    (SiteShape(12), SiteShape(50), SiteShape(125), SiteShape(250), SiteShape(250, outputs=4)),
    cycles=5,
)
QUICK = Workload((SiteShape(12), SiteShape(50, outputs=4)), cycles=3)
SMOKE = Workload((SiteShape(3, outputs=2),), cycles=2)
WORKLOADS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


@dataclass(slots=True)
class Cycle:
    """One setup of the entry and its unload."""

    setup: float
    """Seconds from ``async_add``/``async_setup`` until it returned."""
    settled: float
    """Seconds until Home Assistant had nothing left queued."""
    rss_loaded: int
    rss_unloaded: int


@dataclass(slots=True)
class SetupRun:
    """One site size, measured in its own process."""

    shape: SiteShape
    modules: int
    outputs: int
    entities: int
    rss_started: int
    """RSS with Home Assistant started, before the entry is added."""
    cycles: list[Cycle] = field(default_factory=list)
    """The first is the entry's first setup (``async_add``), then setups again."""

    @property
    def first(self) -> Cycle:
        """The entry's first setup."""
        return self.cycles[0]


async def _measure(shape: SiteShape, cycles: int) -> SetupRun:
    gateway = await GatewayProcess.start(shape)
    try:
        async with home_assistant(comparison=False) as home:
            hass = home.hass
            entry = rayzig_entry(gateway.port, await gateway.pair())
            await hass.async_block_till_done()
            rss_started = rss()
            started = time.perf_counter()
            await hass.config_entries.async_add(entry)
            setup = time.perf_counter() - started
            await hass.async_block_till_done()
            settled = time.perf_counter() - started
            if entry.state is not ConfigEntryState.LOADED:
                raise RuntimeError(f"the entry did not load: {entry.state}")
            entities = len(entities_of(hass, entry))
            rss_loaded = rss()
            await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()
            run = SetupRun(
                shape,
                gateway.site.modules,
                gateway.site.outputs,
                entities,
                rss_started,
                [Cycle(setup, settled, rss_loaded, rss())],
            )
            for _ in range(cycles - 1):
                started = time.perf_counter()
                await hass.config_entries.async_setup(entry.entry_id)
                setup = time.perf_counter() - started
                await hass.async_block_till_done()
                settled = time.perf_counter() - started
                rss_loaded = rss()
                await hass.config_entries.async_unload(entry.entry_id)
                await hass.async_block_till_done()
                run.cycles.append(Cycle(setup, settled, rss_loaded, rss()))
            return run
    finally:
        await gateway.close()


def _child(options: str) -> None:
    """In the fresh process: measure one size and print the run as JSON on the last line."""
    request = json.loads(options)
    run = run_hass(_measure(SiteShape(**request["shape"]), int(request["cycles"])))
    print(json.dumps(asdict(run)), flush=True)


def _in_fresh_process(shape: SiteShape, cycles: int) -> SetupRun:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPOSITORY), env.get("PYTHONPATH", "")) if part
    )
    request = json.dumps({"shape": asdict(shape), "cycles": cycles})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ha_setup", "--child", request],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=True,
    )
    data = json.loads(done.stdout.splitlines()[-1])
    data["shape"] = SiteShape(**data["shape"])
    data["cycles"] = [Cycle(**cycle) for cycle in data["cycles"]]
    return SetupRun(**data)


def _mb(value: float) -> str:
    return f"{value / MB:.1f} MB"


def _report(runs: list[SetupRun], seconds: float) -> BenchResult:
    rows: list[Row] = []
    details = [
        "each size in a fresh process; setup = config_entries.async_add until it returned; "
        "settled = until Home Assistant had nothing queued; RSS after a full collection; "
        "entities = enabled ones (the link-quality sensors are disabled by default)",
        "     site | modules | outputs | entities | setup s | settled s | ms/entity | "
        "RSS started | growth | kept after unload",
    ]
    for run in runs:
        first = run.first
        details.append(
            f"  {run.shape.label:>7s} | {run.modules:7d} | {run.outputs:7d} | {run.entities:8d} | "
            f"{first.setup:7.3f} | {first.settled:9.3f} | "
            f"{first.settled / max(run.entities, 1) * 1e3:9.3f} | {_mb(run.rss_started):>11s} | "
            f"{_mb(first.rss_loaded - run.rss_started):>6s} | "
            f"{_mb(first.rss_unloaded - run.rss_started)}"
        )
        rows.append(
            Row(
                f"{run.shape.label}: setup (until settled); RSS growth; kept after unload",
                f"{first.setup:.2f} s ({first.settled:.2f} s), {run.entities:,d} entities; "
                f"+{_mb(first.rss_loaded - run.rss_started)}; "
                f"+{_mb(first.rss_unloaded - run.rss_started)}",
            )
        )
    largest = runs[-1]
    label = largest.shape.label
    growth = largest.first.rss_loaded - largest.rss_started
    rows += [
        Row(
            f"{label}: first setup, until settled",
            f"{largest.first.settled:.2f} s",
            f"≤ {TARGET_SETUP:.0f} s",
            largest.first.settled <= TARGET_SETUP,
        ),
        Row(
            f"{label}: RSS growth",
            _mb(growth),
            f"≤ {_mb(TARGET_GROWTH)}",
            growth <= TARGET_GROWTH,
        ),
    ]
    if len(largest.cycles) > 1:
        details.append(f"  {label}: {len(largest.cycles)} load/unload cycles:")
        details += [
            f"    cycle {n}: setup {cycle.setup:.3f} s (settled {cycle.settled:.3f} s), RSS "
            f"loaded {_mb(cycle.rss_loaded)}, after unload {_mb(cycle.rss_unloaded)}"
            for n, cycle in enumerate(largest.cycles, start=1)
        ]
        again = sorted(cycle.settled for cycle in largest.cycles[1:])[
            (len(largest.cycles) - 1) // 2
        ]
        leak = largest.cycles[-1].rss_unloaded - largest.cycles[0].rss_unloaded
        rows += [
            Row(
                f"{label}: setup again (registry entries exist), median until settled",
                f"{again:.2f} s",
                f"≤ {TARGET_SETUP:.0f} s",
                again <= TARGET_SETUP,
            ),
            Row(
                f"{label}: RSS after unload, cycle {len(largest.cycles)} − cycle 1",
                f"{leak / MB:+.1f} MB ({', '.join(_mb(c.rss_unloaded) for c in largest.cycles)})",
                f"≤ {_mb(TARGET_LEAK)}",
                leak <= TARGET_LEAK,
            ),
        ]
    return BenchResult(
        NAME,
        TITLE,
        largest.first.settled / TARGET_SETUP,
        f"first setup at {label} until settled / {TARGET_SETUP:.0f} s (target ≤ 1)",
        rows,
        details,
        seconds,
    )


def run(workload: Workload = FULL) -> BenchResult:
    """Run the benchmark (each size in a fresh process) and return its result."""
    started = time.perf_counter()
    last = len(workload.sizes) - 1
    runs = [
        _in_fresh_process(shape, workload.cycles if n == last else 1)
        for n, shape in enumerate(workload.sizes)
    ]
    return _report(runs, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.ha_setup [--workload full|quick|smoke]``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--child")
    known, rest = parser.parse_known_args(argv)
    if known.child is not None:
        _child(known.child)
        return
    cli.main(__doc__.splitlines()[0], run, WORKLOADS, rest)


if __name__ == "__main__":
    main(sys.argv[1:])
