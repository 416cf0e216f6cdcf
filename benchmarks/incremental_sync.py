"""Benchmark 4: incremental event-log sync costs what the new events cost (250 modules).

A site of 250 modules; the client holds a cursor for every module (a first full pass, not
measured). Then, for k = 0, 10, 100 and 1000 new events in total, spread over a few modules
(commands through the site, so the gateway also pushes its OutputChanged and EventsAvailable
notifications), one full :class:`~rayzig_core.eventlog.EventLogSync` pass asks every module and
is measured: bytes on the bus, modelled bus time and wall time, split into the modules that had
news and the modules that had none (the per-module constant cost of asking). The modules named by
``EventsAvailable`` notifications are exactly the ones with news: a client that pulls only those
pays the "with news" part alone.

The RATIO is the pass's wall time over the modelled bus time of its transactions (1.0 would be a
pass limited only by the bus); the curve and its slope (bytes per new event) are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from benchmarks.common import (
    CLOCK_HZ,
    BenchResult,
    Ledger,
    ObservedBus,
    Row,
    gateway_on_bus,
    i2c_client,
    pair,
    settle,
)
from benchmarks.eventlog_read import record_bytes
from rayzig_core.client import RayzigClient
from rayzig_core.eventlog import EventLogSync
from rayzig_core.models import Event
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway

NAME = "incremental_sync"
TITLE = "Incremental EventLogSync pass over 250 modules"
MODULES = 250
NEWS = (0, 10, 100, 1000)
BUSY_MODULES = 5
"""How many modules the new events are spread over."""


@dataclass(slots=True)
class Pass:
    """One measured full pass."""

    new_events: int
    events: list[Event]
    wall: float
    ledger: Ledger
    news_ledger: Ledger
    """Part of the ledger spent on the modules that had new events."""
    news_wall: float
    notified: set[int]
    """Modules named by EventsAvailable notifications since the previous pass."""
    notify_ledger: Ledger
    """Bus traffic while the events were logged (the notifications), before the pass."""


def _add_events(gw: GatewayThread, modules: list[int], count: int) -> None:
    """Log ``count`` COMMAND events spread over ``modules`` through the site (notifies)."""

    def add(g: VirtualGateway) -> None:
        for n in range(count):
            module_id = modules[n % len(modules)]
            output = g.site.module(module_id).outputs[0]
            g.site.set_output(module_id, 0, not output.is_on, user="automation")

    gw.call(add)


async def _pass(
    client: RayzigClient, sync: EventLogSync, bus: ObservedBus, modules: list[int], news: set[int]
) -> tuple[list[Event], float, Ledger, Ledger, float]:
    events: list[Event] = []
    news_ledger = Ledger()
    news_wall = 0.0
    before = bus.ledger()
    started = time.perf_counter()
    for module_id in modules:
        module_before = bus.ledger()
        module_started = time.perf_counter()
        pulled = await sync.pull(module_id)
        if module_id in news:
            news_wall += time.perf_counter() - module_started
            delta = bus.ledger() - module_before
            for kind, totals in delta.kinds.items():
                mine = news_ledger.kinds[kind]
                mine.count += totals.count
                mine.seconds += totals.seconds
                mine.wire_bytes += totals.wire_bytes
                mine.payload += totals.payload
        events.extend(pulled)
    wall = time.perf_counter() - started
    return events, wall, bus.ledger() - before, news_ledger, news_wall


async def _run(modules_count: int, news: tuple[int, ...], clock_hz: int) -> BenchResult:
    started = time.perf_counter()
    passes: list[Pass] = []
    with gateway_on_bus(clock_hz=clock_hz, module_count=modules_count) as (gw, bus):
        credentials = await pair(gw)
        client = await i2c_client(credentials, clock_hz=clock_hz)
        notified: set[int] = set()

        def on_notice(notice: m.Notification) -> None:
            if isinstance(notice, m.EventsAvailable):
                notified.add(notice.module_id)

        client.subscribe(on_notice)
        try:
            modules = [module.module_id for module in await client.list_modules()]
            reachable = gw.call(
                lambda g: [x.module_id for x in g.site.modules() if x.telemetry.reachable]
            )
            busy = reachable[:: max(1, len(reachable) // BUSY_MODULES)][:BUSY_MODULES]
            sync = EventLogSync(client, dict.fromkeys(modules, 0))
            await _pass(client, sync, bus, modules, set())  # every module gets a cursor
            for count in news:
                await settle(bus)
                notified.clear()
                before = bus.ledger()
                _add_events(gw, busy, count)
                await settle(bus)
                notify_ledger = bus.ledger() - before
                had_news = set(busy) if count else set()
                events, wall, ledger, news_ledger, news_wall = await _pass(
                    client, sync, bus, modules, had_news
                )
                if len(events) != count:
                    raise RuntimeError(f"pass returned {len(events)} events, {count} were added")
                passes.append(
                    Pass(
                        count,
                        events,
                        wall,
                        ledger,
                        news_ledger,
                        news_wall,
                        set(notified),
                        notify_ledger,
                    )
                )
        finally:
            await client.close()
    return _report(passes, modules_count, time.perf_counter() - started)


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def _report(passes: list[Pass], modules: int, seconds: float) -> BenchResult:
    details = [
        f"{modules} modules, new events spread over {BUSY_MODULES} of them; full pass = one "
        "EventLogSync.pull per module",
        "   new |  pass wire B | bus ms (model) |  wall ms | with news: B, wall ms | "
        "asking the rest: B/module | notifications while logging: B",
    ]
    rows: list[Row] = []
    for p in passes:
        rest_modules = modules - len({e.module_id for e in p.events})
        rest_bytes = p.ledger.wire_bytes - p.news_ledger.wire_bytes
        payload = sum(record_bytes(event) for event in p.events)
        details.append(
            f"  {p.new_events:5d} | {p.ledger.wire_bytes:12,d} | {p.ledger.seconds * 1e3:14.1f} | "
            f"{p.wall * 1e3:8.1f} | {p.news_ledger.wire_bytes:9,d} B {p.news_wall * 1e3:8.1f} | "
            f"{rest_bytes / max(rest_modules, 1):25.1f} | {p.notify_ledger.wire_bytes:,d}"
        )
        rows.append(
            Row(
                f"pass with {p.new_events} new events",
                f"{p.ledger.wire_bytes:,d} B, {p.ledger.seconds * 1e3:.0f} ms bus, "
                f"{p.wall * 1e3:.0f} ms wall; modules with news {p.news_ledger.wire_bytes:,d} B "
                f"(records {payload:,d} B)",
            )
        )
        if p.new_events and p.notified != {e.module_id for e in p.events}:
            details.append(
                f"  note: EventsAvailable named {sorted(p.notified)}, events came from "
                f"{sorted({e.module_id for e in p.events})}"
            )
    xs = [float(p.new_events) for p in passes]
    slope_bytes = _slope(xs, [float(p.ledger.wire_bytes) for p in passes]) if len(xs) > 1 else 0
    slope_wall = _slope(xs, [p.wall for p in passes]) if len(xs) > 1 else 0.0
    slope_bus = _slope(xs, [p.ledger.seconds for p in passes]) if len(xs) > 1 else 0.0
    base = passes[0]
    per_module = base.ledger.wire_bytes / modules
    per_module_time = base.ledger.seconds / modules
    record_mean = sum(record_bytes(e) for p in passes for e in p.events) / max(
        1, sum(len(p.events) for p in passes)
    )
    ratio = sum(p.wall for p in passes) / sum(p.ledger.seconds for p in passes)
    details += [
        f"slope: {slope_bytes:.1f} wire bytes, {slope_bus * 1e3:.3f} ms bus, "
        f"{slope_wall * 1e3:.3f} ms wall per new event (a record is {record_mean:.1f} B)",
        f"constant: asking a module with nothing new costs {per_module:.0f} wire bytes, "
        f"{per_module_time * 1e3:.2f} ms of bus time; a pass with nothing new "
        f"{base.ledger.wire_bytes:,d} B, {base.ledger.seconds * 1e3:.0f} ms bus, "
        f"{base.wall * 1e3:.0f} ms wall",
        "pulling only the modules named by EventsAvailable skips that constant entirely (the "
        "'with news' column); the notifications themselves cost the last column, paid while "
        "the events happen",
    ]
    rows += [
        Row(
            "slope: cost per new event",
            f"{slope_bytes:.1f} B, {slope_bus * 1e3:.3f} ms bus, {slope_wall * 1e3:.3f} ms wall "
            f"(record {record_mean:.1f} B)",
        ),
        Row(
            "constant: asking one module with nothing new",
            f"{per_module:.0f} B, {per_module_time * 1e3:.2f} ms bus "
            f"(pass over {modules}: {base.wall:.2f} s wall)",
        ),
    ]
    return BenchResult(
        NAME,
        TITLE,
        ratio,
        "wall time / modelled bus time of the sync passes (1.0 = bus-bound)",
        rows,
        details,
        seconds,
    )


def run(
    *, modules: int = MODULES, news: tuple[int, ...] = NEWS, clock_hz: int = CLOCK_HZ
) -> BenchResult:
    """Run the benchmark and return its result."""
    return asyncio.run(_run(modules, news, clock_hz))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.incremental_sync [--modules N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=MODULES)
    args = parser.parse_args(argv)
    run(modules=args.modules).print()


if __name__ == "__main__":
    main()
