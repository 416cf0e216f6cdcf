"""Benchmark 1: command round trip (SetOutput → acknowledged OutputResponse) over the I2C path.

The real client switches one output again and again through I2CConnector (library defaults:
poll interval 2 ms) on a fake bus at 400 kHz whose BusTiming sleeps every transaction's modelled
duration. For each round trip the bus ledger gives the transactions it needed (PUT of the request,
the STATUS polls that found data, the GETs of the response and of the OutputChanged and
EventsAvailable notifications the gateway sends right after it, which back to back are often
fetched during the next round trip) and their modelled time; IDLE polls are waiting, not work, and
are reported apart.

* RATIO = mean measured round trip / mean modelled bus time of the needed transactions
  (target ≤ 1.2×);
* software overhead = measured − modelled, p50 and p99 (target p99 ≤ 3 ms).

Mesh hop latency is mesh time, not bus time: the main run uses ``hop_latency = 0``. A second,
shorter run sets the default 8 ms per hop and reports, per hop count, how long the response waits
for a poll once the gateway has queued it (the idle back-off, PROTOCOL.md §11.10, §11.13). A third
run repeats the main one with a 0.5 ms poll interval (not the default) to show how much of the
overhead is polling policy. Each round trip is also cut into phases on the bus timeline (client
send path, PUT, gateway turnaround, poll wait, fetching the frames, client receive path).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from benchmarks.common import (
    BenchResult,
    Ledger,
    ObservedBus,
    Row,
    Summary,
    gateway_on_bus,
    i2c_client,
    pair,
)
from rayzig_core.client import RayzigClient
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import DEFAULT_HOP_LATENCY, MAX_HOPS, VirtualGateway, hop_count

NAME = "command_roundtrip"
TITLE = "Command round trip (SetOutput → OutputResponse), 400 kHz"
TARGET_RATIO = 1.2
TARGET_OVERHEAD_P99 = 0.003
BLOCKS = 5
"""The main run is also reported in this many consecutive blocks (drift, a busy CPU)."""
COMPARE_POLL = 0.0005
"""A shorter poll interval than the default, run for comparison (how much is policy)."""


PHASES = (
    ("send", "client: seal the request, hand it to the transport worker"),
    ("put", "PUT of the request (bus time + fake kernel)"),
    ("gateway", "gateway: from the request's last chunk to its first answer frame queued"),
    ("poll", "poll wait: from the first answer frame queued to the poll that finds it"),
    ("fetch", "fetching the frames: STATUS + GET per frame, with the gaps between them"),
    ("receive", "client: decrypt, decode and resolve the request after the last GET"),
)
"""Consecutive phases of one round trip (their sum is the measured time)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One round trip: wall time, what crossed the bus meanwhile and its timeline phases."""

    wall: float
    ledger: Ledger
    phases: dict[str, float]
    response_wait: float
    """From the last answer frame queued (the response) to the poll that found it."""

    @property
    def needed(self) -> float:
        return self.ledger.needed_seconds

    @property
    def overhead(self) -> float:
        return self.wall - self.needed


def _phases(bus: ObservedBus, started: float, ended: float) -> tuple[dict[str, float], float]:
    """Cut one round trip's timeline into :data:`PHASES` (seconds) and the response wait."""
    spans = [span for span in bus.spans_since(started) if span.start < ended]
    pushes = [t for t in bus.pushes_since(started) if t < ended]
    puts = [span for span in spans if span.kind == "put"]
    fetches = [span for span in spans if span.kind in ("status_ready", "get")]
    if not puts or not pushes or not fetches:
        return {}, 0.0
    put = puts[0]
    first, last = pushes[0], pushes[-1]
    found = next((s for s in fetches if s.start >= first), fetches[0])
    found_response = next((s for s in fetches if s.start >= last), fetches[-1])
    last_get = max((s for s in spans if s.kind == "get"), key=lambda s: s.end)
    phases = {
        "send": put.start - started,
        "put": put.end - put.start,
        "gateway": first - put.end,
        "poll": found.start - first,
        "fetch": last_get.end - found.start,
        "receive": ended - last_get.end,
    }
    return phases, found_response.start - last


def _outputs_by_hops(gw: GatewayThread) -> dict[int, tuple[int, int]]:
    """One reachable (module id, output index) per hop count 1..4."""

    def find(g: VirtualGateway) -> dict[int, tuple[int, int]]:
        found: dict[int, tuple[int, int]] = {}
        for module in g.site.modules():
            if module.telemetry.reachable and module.outputs:
                found.setdefault(hop_count(module.module_id), (module.module_id, 0))
        return found

    return gw.call(find)


async def _round_trips(
    client: RayzigClient,
    gw: GatewayThread,
    bus: ObservedBus,
    target: tuple[int, int],
    count: int,
) -> list[Sample]:
    module_id, index = target
    state = gw.call(lambda g: g.site.module(module_id).outputs[index].is_on)
    samples: list[Sample] = []
    for _ in range(count):
        want = not state
        before = bus.ledger()
        started = time.perf_counter()
        output = await client.set_output(module_id, index, want)
        ended = time.perf_counter()
        phases, response_wait = _phases(bus, started, ended)
        samples.append(Sample(ended - started, bus.ledger() - before, phases, response_wait))
        if output.is_on is not want:
            raise RuntimeError("the gateway did not switch the output")
        state = want
    return samples


async def _run(
    iterations: int,
    warmup: int,
    mesh_samples: int,
    poll_interval: float,
    compare_iterations: int,
) -> BenchResult:
    started = time.perf_counter()
    with gateway_on_bus(hop_latency=0.0) as (gw, bus):
        credentials = await pair(gw)
        client = await i2c_client(credentials, poll_interval=poll_interval)
        try:
            targets = _outputs_by_hops(gw)
            main_target = targets[min(targets)]
            await _round_trips(client, gw, bus, main_target, warmup)
            samples = await _round_trips(client, gw, bus, main_target, iterations)
            mesh: dict[int, list[Sample]] = {}
            other: list[Sample] = []
            if mesh_samples:
                gw.call(lambda g: setattr(gw.i2c_adapter, "hop_latency", DEFAULT_HOP_LATENCY))
                for hops in range(1, MAX_HOPS + 1):
                    if hops in targets:
                        target = targets[hops]
                        mesh[hops] = await _round_trips(client, gw, bus, target, mesh_samples)
                gw.call(lambda g: setattr(gw.i2c_adapter, "hop_latency", 0.0))
        finally:
            await client.close()
        if compare_iterations:
            client = await i2c_client(credentials, poll_interval=COMPARE_POLL)
            try:
                await _round_trips(client, gw, bus, main_target, warmup)
                other = await _round_trips(client, gw, bus, main_target, compare_iterations)
            finally:
                await client.close()
    result = _report(samples, mesh, poll_interval, time.perf_counter() - started)
    if other:
        _compare(result, other)
    return result


def _compare(result: BenchResult, samples: list[Sample]) -> None:
    """Add the figures of the run with the shorter (non-default) poll interval."""
    wall = Summary.of([s.wall for s in samples])
    needed = Summary.of([s.needed for s in samples])
    overhead = Summary.of([s.overhead for s in samples])
    idle = sum(s.ledger.count("status_idle") for s in samples) / len(samples)
    poll = Summary.of([s.phases["poll"] for s in samples if s.phases])
    result.details.append(
        f"same with poll_interval={COMPARE_POLL * 1e3:g} ms (not the default), "
        f"{len(samples)} round trips: ratio {wall.mean / needed.mean:.3f}, overhead p50 "
        f"{overhead.p50 * 1e3:.2f} / p99 {overhead.p99 * 1e3:.2f} ms, poll wait mean "
        f"{poll.mean * 1e3:.2f} ms, {idle:.2f} IDLE polls per round trip"
    )
    result.rows.append(
        Row(
            f"for comparison, poll_interval={COMPARE_POLL * 1e3:g} ms (not the default): "
            "ratio; overhead p50 / p99",
            f"{wall.mean / needed.mean:.3f}×; {overhead.p50 * 1e3:.2f} / "
            f"{overhead.p99 * 1e3:.2f} ms",
        )
    )


def _report(
    samples: list[Sample], mesh: dict[int, list[Sample]], poll_interval: float, seconds: float
) -> BenchResult:
    wall = Summary.of([s.wall for s in samples])
    needed = Summary.of([s.needed for s in samples])
    overhead = Summary.of([s.overhead for s in samples])
    total = Ledger()
    for sample in samples:
        for kind, totals in sample.ledger.kinds.items():
            mine = total.kinds[kind]
            mine.count += totals.count
            mine.seconds += totals.seconds
            mine.wire_bytes += totals.wire_bytes
    n = len(samples)
    ratio = wall.mean / needed.mean
    ratios = Summary.of([s.wall / s.needed for s in samples])
    size = max(1, n // BLOCKS)
    blocks = [samples[i : i + size] for i in range(0, n - size + 1, size)]
    block_ratios = [sum(s.wall for s in b) / sum(s.needed for s in b) for b in blocks]
    per = {kind: t.count / n for kind, t in total.kinds.items()}
    idle_seconds = total.kinds["status_idle"].seconds / n
    details = [
        f"library defaults (poll interval {poll_interval * 1e3:g} ms), hop latency 0, "
        f"{n} round trips",
        f"measured       {wall.ms()}",
        f"modelled (bus) {needed.ms()}",
        f"overhead       {overhead.ms()}",
        f"per-trip ratio p50 {ratios.p50:.3f}  p90 {ratios.p90:.3f}  p99 {ratios.p99:.3f}; "
        f"ratio of {len(blocks)} consecutive blocks of {size}: "
        + ", ".join(f"{r:.3f}" for r in block_ratios),
        "transactions per round trip: "
        + ", ".join(f"{kind} {count:.2f}" for kind, count in per.items() if count)
        + f"; wire bytes {total.wire_bytes / n:.0f}",
        f"IDLE polls per round trip cost {idle_seconds * 1e3:.3f} ms of bus time (not counted "
        "as needed)",
        "where the time goes (mean, p99 ms):",
    ]
    timed = [s for s in samples if s.phases]
    for key, label in PHASES:
        values = Summary.of([s.phases[key] for s in timed]) if timed else None
        if values is not None:
            details.append(f"    {values.mean * 1e3:6.2f} {values.p99 * 1e3:6.2f}  {label}")
    rows = [
        Row(
            "measured / modelled bus time (mean)",
            f"{ratio:.3f}× ({wall.mean * 1e3:.2f} ms / {needed.mean * 1e3:.2f} ms; blocks "
            f"{min(block_ratios):.3f}..{max(block_ratios):.3f})",
            f"≤ {TARGET_RATIO}×",
            ratio <= TARGET_RATIO,
        ),
        Row(
            "software overhead p50 / p99",
            f"{overhead.p50 * 1e3:.2f} / {overhead.p99 * 1e3:.2f} ms",
            f"p99 ≤ {TARGET_OVERHEAD_P99 * 1e3:.0f} ms",
            overhead.p99 <= TARGET_OVERHEAD_P99,
        ),
        Row("round trip p50 / p99", f"{wall.p50 * 1e3:.2f} / {wall.p99 * 1e3:.2f} ms"),
    ]
    for hops, hop_samples in sorted(mesh.items()):
        mesh_time = hops * DEFAULT_HOP_LATENCY
        hop_wall = Summary.of([s.wall for s in hop_samples])
        wait = Summary.of([s.response_wait for s in hop_samples])
        details.append(
            f"with mesh, {hops} hop(s) ({mesh_time * 1e3:.0f} ms): round trip mean "
            f"{hop_wall.mean * 1e3:.1f} ms; response queued → found by a poll: mean "
            f"{wait.mean * 1e3:.1f} ms, max {wait.maximum * 1e3:.1f} ms (idle back-off)"
        )
        rows.append(
            Row(
                f"{hops}-hop module ({mesh_time * 1e3:.0f} ms mesh delay): round trip mean; "
                "response waiting for a poll, mean / max",
                f"{hop_wall.mean * 1e3:.1f} ms; {wait.mean * 1e3:.1f} / "
                f"{wait.maximum * 1e3:.1f} ms",
            )
        )
    return BenchResult(
        NAME,
        TITLE,
        ratio,
        f"measured / modelled bus time of the needed transactions (target ≤ {TARGET_RATIO})",
        rows,
        details,
        seconds,
    )


def run(
    *,
    iterations: int = 500,
    warmup: int = 20,
    mesh_samples: int = 10,
    poll_interval: float = 0.002,
    compare_iterations: int = 200,
) -> BenchResult:
    """Run the benchmark and return its result."""
    return asyncio.run(_run(iterations, warmup, mesh_samples, poll_interval, compare_iterations))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.command_roundtrip [--iterations N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--mesh-samples", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=0.002)
    parser.add_argument("--compare-iterations", type=int, default=200)
    args = parser.parse_args(argv)
    run(
        iterations=args.iterations,
        mesh_samples=args.mesh_samples,
        poll_interval=args.poll_interval,
        compare_iterations=args.compare_iterations,
    ).print()


if __name__ == "__main__":
    main()
