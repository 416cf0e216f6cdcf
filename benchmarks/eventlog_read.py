"""Benchmark 2: full event-log read of a module holding 8192 events, at 400 kHz.

One module's ring is filled with 8192 records (a realistic mix: automation and user commands,
repowers with their presets applied) and read completely with
:class:`~rayzig_core.eventlog.EventLogSync` through the real client, I2CConnector, smbus2 and the
fake kernel, with a BusTiming that sleeps each transaction's modelled duration.

The payload is the event records as the protocol encodes them (each record's CBOR array, as it
appears inside the EventBatch); everything else is overhead: the batch and envelope headers, the
Noise tag and frame kind, chunk headers and CRCs, GET/STATUS commands and status blocks, the
ReadEvents requests, address bytes and START/STOP/bus-free time. Two ratios against the ceiling
of clock/9 bytes per second:

* wire efficiency = payload bytes / wire bytes (the timing model's byte totals), what the bus
  could do with zero software time;
* wall-clock ratio = (payload bytes / measured seconds) / (clock / 9): the headline RATIO.

Target: ≥ 0.88 (framing, AEAD and software time together ≤ 12 %). A shorter read at 100 kHz and
at 1 MHz shows how the software share grows with the clock.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass

from benchmarks.common import (
    CLOCK_HZ,
    BenchResult,
    Ledger,
    ObservedBus,
    Row,
    ceiling,
    gateway_on_bus,
    i2c_client,
    pair,
)
from rayzig_core.client import RayzigClient
from rayzig_core.eventlog import EventLogSync
from rayzig_core.models import Event, EventKind, ModuleKind
from rayzig_core.protocol import codec
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.link import CHUNK_OVERHEAD, CONTROL_LEN, STATUS_LEN
from rayzig_core.protocol.noise import TAG_LEN
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway

NAME = "eventlog_read"
TITLE = "Full event-log read, 8192 events, 400 kHz"
TARGET = 0.88
EVENTS = 8192
OTHER_CLOCKS = (100_000, 1_000_000)
"""Also read at these clocks (once, :data:`OTHER_CLOCK_EVENTS` records) to see the trend."""
OTHER_CLOCK_EVENTS = 2048
_EVENT_ENCODER = codec.encoder_for(Event)
_REQUEST_ID = 2**47
"""Stands in for a client request id when re-encoding a batch (same CBOR size class)."""


def record_bytes(event: Event) -> int:
    """Bytes of one record as the protocol encodes it inside an EventBatch."""
    return len(codec.dumps(_EVENT_ENCODER(event)))


def fill_ring(gw: GatewayThread, count: int, *, seed: int = 8192) -> int:
    """Make a mains module's ring hold ``count`` realistic records (logged directly); its id.

    Mostly commands by the automation or the installer; now and then a repower followed by the
    presets applied to each output.
    """

    def fill(g: VirtualGateway) -> int:
        module = next(x for x in g.site.modules() if x.kind is ModuleKind.MAINS)
        ring = g.site.ring(module.module_id)
        rng = random.Random(seed)
        outputs = len(module.outputs)
        timestamp = 1_735_000_000.0
        states = [False] * outputs
        logged = ring.count  # its POWER_ON record
        while logged < count:
            timestamp += rng.uniform(1.0, 900.0)
            roll = rng.random()
            mid = module.module_id
            if roll < 0.95 or count - logged < 1 + outputs:
                index = rng.randrange(outputs)
                states[index] = not states[index]
                user = "automation" if rng.random() < 0.7 else "installer"
                ring.append(
                    module_id=mid,
                    timestamp=timestamp,
                    kind=EventKind.COMMAND,
                    output=index,
                    user=user,
                    is_on=states[index],
                )
                logged += 1
            else:
                ring.append(module_id=mid, timestamp=timestamp, kind=EventKind.REPOWER)
                for index in range(outputs):
                    ring.append(
                        module_id=mid,
                        timestamp=timestamp + 0.05 * (index + 1),
                        kind=EventKind.PRESET_APPLIED,
                        output=index,
                        is_on=states[index],
                    )
                logged += 1 + outputs
        return module.module_id

    return gw.call(fill)


@dataclass(slots=True)
class ReadRun:
    """One complete read."""

    wall: float
    ledger: Ledger
    events: int
    payload: int
    batches: int
    plaintext: int
    """Bytes of every EventBatch envelope (CBOR plaintext of the frames)."""


async def _read_all(client: RayzigClient, bus: ObservedBus, module_id: int, after: int) -> ReadRun:
    batches: list[m.EventBatch] = []
    original = client.read_events

    async def counting(module: int, after_seq: int, max_count: int = 512) -> m.EventBatch:
        batch = await original(module, after_seq, max_count)
        batches.append(batch)
        return batch

    client.read_events = counting  # type: ignore[method-assign,assignment]
    try:
        sync = EventLogSync(client, {module_id: after})
        before = bus.ledger()
        started = time.perf_counter()
        events = await sync.pull(module_id)
        wall = time.perf_counter() - started
        ledger = bus.ledger() - before
    finally:
        del client.read_events
    if any(event.kind is EventKind.GAP for event in events):
        raise RuntimeError("unexpected GAP: the read did not start at the oldest record")
    return ReadRun(
        wall,
        ledger,
        len(events),
        sum(record_bytes(event) for event in events),
        len(batches),
        sum(len(m.encode(_REQUEST_ID, batch)) for batch in batches),
    )


async def _read_runs(events: int, repeats: int, clock_hz: int, sleep: bool) -> list[ReadRun]:
    with gateway_on_bus(clock_hz=clock_hz, sleep=sleep) as (gw, bus):
        module_id = fill_ring(gw, events)
        oldest = gw.call(lambda g: g.site.ring(module_id).oldest_seq)
        credentials = await pair(gw)
        client = await i2c_client(credentials, clock_hz=clock_hz)
        try:
            return [await _read_all(client, bus, module_id, oldest - 1) for _ in range(repeats)]
        finally:
            await client.close()


async def _run(
    events: int, repeats: int, clock_hz: int, sleep: bool, other_clocks: tuple[int, ...]
) -> BenchResult:
    started = time.perf_counter()
    runs = await _read_runs(events, repeats, clock_hz, sleep)
    others = {
        clock: (await _read_runs(OTHER_CLOCK_EVENTS, 1, clock, sleep))[0] for clock in other_clocks
    }
    result = _report(runs, clock_hz, time.perf_counter() - started)
    for clock, other in others.items():
        limit = ceiling(clock)
        ratio = other.payload / other.wall / limit
        result.details.append(
            f"at {clock / 1000:g} kHz ({other.events} records, one run): wall-clock ratio "
            f"{ratio:.3f}, wire efficiency {other.payload / other.ledger.wire_bytes:.3f}, "
            f"{other.payload / other.wall / 1000:.1f} kB/s of {limit / 1000:.1f}"
        )
        result.rows.append(
            Row(
                f"same at {clock / 1000:g} kHz ({other.events} records): wall-clock ratio",
                f"{ratio:.3f} ({other.payload / other.wall / 1000:.1f} kB/s of {limit / 1000:.1f})",
            )
        )
    result.seconds = time.perf_counter() - started
    return result


def _report(runs: list[ReadRun], clock_hz: int, seconds: float) -> BenchResult:
    limit = ceiling(clock_hz)
    walls = sorted(run.wall for run in runs)
    median = runs[[run.wall for run in runs].index(walls[len(walls) // 2])]
    led = median.ledger
    wire = led.wire_bytes
    wire_ratio = median.payload / wire
    modelled_ratio = median.payload / led.seconds / limit
    wall_ratios = [run.payload / run.wall / limit for run in runs]
    wall_ratio = median.payload / median.wall / limit
    gets = led.kinds["get"]
    puts = led.kinds["put"]
    statuses = led.count("status_ready", "status_idle", "busy")
    frames_g2h = gets.payload
    chunks = gets.count + puts.count
    clock_bytes = led.seconds * clock_hz / 9 - wire  # START/STOP and bus-free time, in bytes
    get_reads = gets.wire_bytes - gets.count * (CONTROL_LEN + 2)
    padding = get_reads - gets.count * CHUNK_OVERHEAD - frames_g2h
    overhead = {
        "chunk headers + CRC (8 B per chunk)": CHUNK_OVERHEAD * chunks,
        "GET commands (4 B each)": CONTROL_LEN * gets.count,
        "address bytes (1 per message)": 2 * led.transactions,
        "STATUS polls (4 + 11 B)": (CONTROL_LEN + STATUS_LEN) * statuses,
        "status blocks answering PUTs (11 B)": STATUS_LEN * puts.count,
        "ReadEvents request frames": puts.payload,
        "Noise tag + frame kind (17 B per frame)": (TAG_LEN + 1) * median.batches,
        "envelope + batch header": median.plaintext - median.payload,
        "read padding of short chunks": padding,
        "START/STOP/bus-free time (as bytes)": round(clock_bytes),
    }
    accounted = median.payload + sum(overhead.values())
    total_time_bytes = led.seconds * clock_hz / 9
    details = [
        f"{median.events} records in {median.batches} batches, {median.payload} payload bytes "
        f"(mean {median.payload / median.events:.1f} B per record), {led.transactions} "
        f"transactions, {wire} wire bytes",
        f"ceiling clock/9 = {limit:,.0f} B/s; modelled bus time {led.seconds:.3f} s; measured "
        + ", ".join(f"{run.wall:.3f}" for run in runs)
        + " s",
        f"throughput: {median.payload / median.wall:,.0f} B/s measured "
        f"({median.events / median.wall:,.0f} records/s), "
        f"{median.payload / led.seconds:,.0f} B/s at modelled bus time",
        f"wall-clock ratios of the {len(runs)} runs: "
        + ", ".join(f"{ratio:.3f}" for ratio in wall_ratios),
        "where the bus time goes (bytes, share of modelled bus time):",
        f"    payload (event records)                    {median.payload:8d}  "
        f"{median.payload / total_time_bytes:6.1%}",
    ]
    for label, amount in overhead.items():
        details.append(f"    {label:42s} {amount:8d}  {amount / total_time_bytes:6.1%}")
    if abs(accounted - total_time_bytes) > 0.01 * total_time_bytes:
        details.append(f"    (unaccounted: {total_time_bytes - accounted:.0f} bytes)")
    idle = led.kinds["status_idle"]
    details.append(
        f"software time (measured - modelled) {median.wall - led.seconds:.3f} s "
        f"({(median.wall - led.seconds) / median.wall:.1%} of the read); "
        f"IDLE polls {idle.count}, {led.transactions / median.batches:.1f} transactions "
        "per batch"
    )
    rows = [
        Row(
            "payload throughput / (clock/9), wall clock",
            f"{wall_ratio:.3f} ({median.payload / median.wall / 1000:.1f} kB/s of "
            f"{limit / 1000:.1f}; runs {min(wall_ratios):.3f}..{max(wall_ratios):.3f})",
            f"≥ {TARGET}",
            wall_ratio >= TARGET,
        ),
        Row(
            "wire efficiency: payload bytes / wire bytes",
            f"{wire_ratio:.3f} ({median.payload} / {wire})",
            f"≥ {TARGET}",
            wire_ratio >= TARGET,
        ),
        Row(
            "payload throughput / (clock/9), modelled bus time",
            f"{modelled_ratio:.3f}",
        ),
        Row(
            "full read of 8192 records",
            f"{median.wall:.2f} s ({median.events / median.wall:,.0f} records/s, "
            f"{median.payload / median.events:.1f} B/record)",
        ),
    ]
    return BenchResult(
        NAME,
        TITLE,
        wall_ratio,
        f"event-record bytes per second / (clock/9), wall clock (target ≥ {TARGET})",
        rows,
        details,
        seconds,
    )


def run(
    *,
    events: int = EVENTS,
    repeats: int = 3,
    clock_hz: int = CLOCK_HZ,
    sleep: bool = True,
    other_clocks: tuple[int, ...] = OTHER_CLOCKS,
) -> BenchResult:
    """Run the benchmark (and a shorter read at each of ``other_clocks``); return its result."""
    return asyncio.run(_run(events, repeats, clock_hz, sleep, other_clocks))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.eventlog_read [--repeats N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", type=int, default=CLOCK_HZ)
    parser.add_argument(
        "--other-clocks", type=int, nargs="*", default=list(OTHER_CLOCKS), metavar="HZ"
    )
    args = parser.parse_args(argv)
    run(
        events=args.events,
        repeats=args.repeats,
        clock_hz=args.clock,
        other_clocks=tuple(args.other_clocks),
    ).print()


if __name__ == "__main__":
    main()
