"""Benchmark 1: command round trip (SetOutput → acknowledged OutputResponse) over the I2C path.

The real client switches one output again and again through I2CConnector (library defaults:
poll interval 2 ms) on a fake bus at 400 kHz whose BusTiming sleeps every transaction's modelled
duration. For each round trip the bus ledger gives the transactions it needed (PUT of the request,
the STATUS polls that found data, the GETs of the OutputChanged and EventsAvailable notifications
the gateway pushes first and of the response) and their modelled time; IDLE polls are waiting,
not work, and are reported apart.

* RATIO = mean measured round trip / mean modelled bus time of the needed transactions
  (target ≤ 1.25×);
* software overhead = measured − modelled, p50 and p99 (target p99 ≤ 3 ms).

Mesh hop latency is mesh time, not bus time: the main run uses ``hop_latency = 0``. A second,
shorter run sets the default 8 ms per hop and reports, per hop count, how much the host's polling
adds on top of the mesh delay (PROTOCOL.md §11.10, §11.13).
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
from rayzig_core.gateway.gateway import VirtualGateway
from rayzig_core.gateway.i2c import DEFAULT_HOP_LATENCY, MAX_HOPS, hop_count
from rayzig_core.testing.gateway import GatewayThread

NAME = "command_roundtrip"
TITLE = "Command round trip (SetOutput → OutputResponse), 400 kHz"
TARGET_RATIO = 1.25
TARGET_OVERHEAD_P99 = 0.003


@dataclass(frozen=True, slots=True)
class Sample:
    """One round trip: wall time and what crossed the bus meanwhile."""

    wall: float
    ledger: Ledger

    @property
    def needed(self) -> float:
        return self.ledger.needed_seconds

    @property
    def overhead(self) -> float:
        return self.wall - self.needed


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
        wall = time.perf_counter() - started
        samples.append(Sample(wall, bus.ledger() - before))
        if output.is_on is not want:
            raise RuntimeError("the gateway did not switch the output")
        state = want
    return samples


async def _run(
    iterations: int, warmup: int, mesh_samples: int, poll_interval: float
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
            if mesh_samples:
                gw.call(lambda g: setattr(gw.i2c_adapter, "hop_latency", DEFAULT_HOP_LATENCY))
                for hops in range(1, MAX_HOPS + 1):
                    if hops in targets:
                        target = targets[hops]
                        mesh[hops] = await _round_trips(client, gw, bus, target, mesh_samples)
                gw.call(lambda g: setattr(gw.i2c_adapter, "hop_latency", 0.0))
        finally:
            await client.close()
    return _report(samples, mesh, poll_interval, time.perf_counter() - started)


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
    per = {kind: t.count / n for kind, t in total.kinds.items()}
    idle_seconds = total.kinds["status_idle"].seconds / n
    details = [
        f"library defaults (poll interval {poll_interval * 1e3:g} ms), hop latency 0, "
        f"{n} round trips",
        f"measured       {wall.ms()}",
        f"modelled (bus) {needed.ms()}",
        f"overhead       {overhead.ms()}",
        f"per-trip ratio p50 {ratios.p50:.3f}  p90 {ratios.p90:.3f}  p99 {ratios.p99:.3f}",
        "transactions per round trip: "
        + ", ".join(f"{kind} {count:.2f}" for kind, count in per.items() if count)
        + f"; wire bytes {total.wire_bytes / n:.0f}",
        f"IDLE polls per round trip cost {idle_seconds * 1e3:.3f} ms of bus time (not counted "
        "as needed)",
    ]
    rows = [
        Row(
            "measured / modelled bus time (mean)",
            f"{ratio:.3f}× ({wall.mean * 1e3:.2f} ms / {needed.mean * 1e3:.2f} ms)",
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
        extra = Summary.of([s.wall - s.needed - mesh_time for s in hop_samples])
        details.append(
            f"with mesh, {hops} hop(s) ({mesh_time * 1e3:.0f} ms): round trip mean "
            f"{hop_wall.mean * 1e3:.1f} ms, beyond bus + mesh time mean {extra.mean * 1e3:.1f} "
            f"ms (max {extra.maximum * 1e3:.1f})"
        )
        rows.append(
            Row(
                f"with {hops}-hop mesh delay ({mesh_time * 1e3:.0f} ms): round trip mean, "
                "of which polling wait",
                f"{hop_wall.mean * 1e3:.1f} ms, {extra.mean * 1e3:.1f} ms",
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
) -> BenchResult:
    """Run the benchmark and return its result."""
    return asyncio.run(_run(iterations, warmup, mesh_samples, poll_interval))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.command_roundtrip [--iterations N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--mesh-samples", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=0.002)
    args = parser.parse_args(argv)
    run(
        iterations=args.iterations,
        mesh_samples=args.mesh_samples,
        poll_interval=args.poll_interval,
    ).print()


if __name__ == "__main__":
    main()
