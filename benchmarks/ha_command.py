"""Home Assistant benchmark: switch command latency and state writes, Rayzig vs HA's own entities.

For each site size (12 generated modules; 250 modules × 4 outputs) one Home Assistant runs the
Rayzig integration against the virtual gateway (a child process, TCP on loopback) next to two
entities of Home Assistant's own: a ``DemoSwitch`` (the demo integration's switch) and an
``input_boolean``. Commands are interleaved, one of each kind in turn, for several rounds: each
is a ``turn_on``/``turn_off`` service call timed until the new state is on the bus, followed by a
50 ms pause once Home Assistant has nothing queued. Our commands go to a different output each
time, spread over the site. No instrument is attached while latency is measured.

The gateway is another process, so each of our commands pays a round trip to it that HA's own
entities do not. That floor is measured in the same rounds: the integration's own client switches
an output that no timed switch uses (``set_output`` awaited directly, no service call, no state
write). Our side's overhead is our p50 minus that round trip's p50, set against the demo switch.

State writes are counted in a pass of their own (the counting wrapper costs about 5 % of a
write): after each command Home Assistant is left until no entity has written its state for
50 ms, and the writes of that window are the command's: every ``Entity._async_write_ha_state``
call (changed or not), the distinct entities that wrote, and the entities whose state changed (a
``state_changed`` event). HA's own entities write one state per command.

RATIO = our switch's p50 / the demo switch's p50 at the largest site (target ≤ 1.5).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from benchmarks.common import BenchResult, Row, Summary
from benchmarks.ha import cli
from benchmarks.ha.gateway_process import GatewayProcess, SiteShape
from benchmarks.ha.hass import entities_of, home_assistant, rayzig_entry
from benchmarks.ha.hass import run as run_hass
from benchmarks.ha.probes import StateWrites, toggle

NAME = "ha_command"
TITLE = "Home Assistant: switch command latency and state writes (Rayzig vs HA's own)"
KINDS = ("rayzig", "demo", "input_boolean")
LABELS = {"rayzig": "Rayzig switch", "demo": "demo switch", "input_boolean": "input_boolean"}
TARGET_VS_DEMO = 1.5
TARGET_SIZE_GROWTH = 1.2
PAUSE = 0.05
"""Seconds left between two timed commands (after Home Assistant has nothing queued)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """Site sizes (the first is the reference) and commands per kind: rounds × per round."""

    sizes: tuple[SiteShape, ...]
    rounds: int
    per_round: int
    write_samples: int
    """Commands per kind whose state writes are counted (a pass of its own)."""


FULL = Workload((SiteShape(12), SiteShape(250, outputs=4)), rounds=3, per_round=20, write_samples=5)
QUICK = Workload((SiteShape(12), SiteShape(50, outputs=4)), rounds=3, per_round=10, write_samples=3)
SMOKE = Workload((SiteShape(2), SiteShape(3, outputs=2)), rounds=1, per_round=2, write_samples=1)
WORKLOADS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


@dataclass(slots=True)
class KindRun:
    """The commands of one kind at one size."""

    latencies: list[float] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    """State writes in each command's window."""
    written: list[int] = field(default_factory=list)
    """Distinct entities that wrote in each command's window."""
    changed: list[int] = field(default_factory=list)
    """Distinct entities whose state changed in each command's window."""


async def _client_round_trip(entry: ConfigEntry) -> float:
    """Switch the last module's first output with the integration's client; seconds it took."""
    client = entry.runtime_data.coordinator.client
    module = max(entry.runtime_data.coordinator.data.modules.values(), key=lambda m: m.module_id)
    output = module.outputs[0]
    state = _CLIENT_STATE.get((module.module_id, output.index), output.is_on)
    started = time.perf_counter()
    acknowledged = await client.set_output(module.module_id, output.index, not state)
    elapsed = time.perf_counter() - started
    _CLIENT_STATE[module.module_id, output.index] = acknowledged.is_on
    return elapsed


_CLIENT_STATE: dict[tuple[int, int], bool | None] = {}
"""The output state the client last had acknowledged (the switch's entity is not told)."""


@dataclass(slots=True)
class SizeRun:
    """One site size: its entities and the commands of each kind."""

    shape: SiteShape
    entities: int
    switches: int
    setup_seconds: float
    kinds: dict[str, KindRun] = field(default_factory=lambda: {kind: KindRun() for kind in KINDS})
    round_trips: list[float] = field(default_factory=list)
    """The client's own round trips to the gateway (no Home Assistant in between)."""


async def _pause(hass: HomeAssistant) -> None:
    """Let a command's consequences (notifications, event import) finish before the next."""
    await hass.async_block_till_done()
    await asyncio.sleep(PAUSE)
    await hass.async_block_till_done()


async def _measure(shape: SiteShape, workload: Workload) -> SizeRun:
    gateway = await GatewayProcess.start(shape, save_changes=False)
    try:
        async with home_assistant() as home:
            hass = home.hass
            entry = rayzig_entry(gateway.port, await gateway.pair())
            started = time.perf_counter()
            await hass.config_entries.async_add(entry)
            await hass.async_block_till_done()
            setup = time.perf_counter() - started
            switches = [
                entity_id
                for entity_id in entities_of(hass, entry, "switch")
                if (state := hass.states.get(entity_id)) is not None
                and state.state in ("on", "off")
            ]
            count = workload.rounds * workload.per_round
            step = max(1, len(switches) // count)
            ours = [switches[(n * step) % len(switches)] for n in range(count)]
            run = SizeRun(shape, len(entities_of(hass, entry)), len(switches), setup)
            subjects = {"demo": home.demo_switch, "input_boolean": home.input_boolean}
            for kind in KINDS:  # warm-up, not counted
                await toggle(hass, ours[-1] if kind == "rayzig" else subjects[kind])
                await _pause(hass)
            await _client_round_trip(entry)  # warm-up, not counted
            await _pause(hass)
            for n in range(count):  # latency, no instrument attached
                for kind in KINDS:
                    entity_id = ours[n] if kind == "rayzig" else subjects[kind]
                    run.kinds[kind].latencies.append(await toggle(hass, entity_id))
                    await _pause(hass)
                run.round_trips.append(await _client_round_trip(entry))
                await _pause(hass)
            with StateWrites(hass) as probe:  # state writes, apart
                await probe.settle()
                for n in range(workload.write_samples):
                    for kind in KINDS:
                        entity_id = ours[n] if kind == "rayzig" else subjects[kind]
                        writes_before, changes_before = probe.snapshot()
                        await toggle(hass, entity_id)
                        await probe.settle()
                        writes_after, changes_after = probe.snapshot()
                        record = run.kinds[kind]
                        written = writes_after - writes_before
                        record.writes.append(sum(written.values()))
                        record.written.append(len(written))
                        record.changed.append(len(changes_after - changes_before))
            return run
    finally:
        await gateway.close()


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)


def _ms(summary: Summary) -> str:
    return (
        f"p50 {summary.p50 * 1e3:.2f} / p99 {summary.p99 * 1e3:.2f} / worst "
        f"{summary.maximum * 1e3:.2f} ms"
    )


def _report(runs: list[SizeRun], workload: Workload, seconds: float) -> BenchResult:
    rows: list[Row] = []
    details = [
        f"{workload.rounds} rounds × {workload.per_round} commands per kind, interleaved "
        f"({', '.join(LABELS[kind] for kind in KINDS)}); latency = service call until the new "
        "state is on the bus; a command's window ends after 50 ms without a state write",
    ]
    summaries: dict[str, dict[str, Summary]] = {}
    for run in runs:
        label = run.shape.label
        summaries[label] = {k: Summary.of(r.latencies) for k, r in run.kinds.items()}
        details.append(
            f"site {label}: {run.shape.modules} modules, {run.switches} switches, "
            f"{run.entities} enabled Rayzig entities; entry set up in {run.setup_seconds:.2f} s"
        )
        for kind in KINDS:
            record = run.kinds[kind]
            per_round = [
                Summary.of(record.latencies[n : n + workload.per_round]).p50 * 1e3
                for n in range(0, len(record.latencies), workload.per_round)
            ]
            details.append(f"  {LABELS[kind]:14s} {summaries[label][kind].ms()}")
            details.append(
                f"  {'':14s} p50 of each round: {', '.join(f'{p:.2f}' for p in per_round)} ms"
            )
            details.append(
                f"  {'':14s} per command: {_mean(record.writes):,.1f} state writes by "
                f"{_mean(record.written):,.1f} entities, {_mean(record.changed):.1f} changed "
                f"(max {max(record.writes):,d} writes)"
            )
        floor = Summary.of(run.round_trips)
        details.append(f"  {'client only':14s} {floor.ms()}  (the round trip to the gateway)")
        ours = summaries[label]["rayzig"]
        rows.append(
            Row(
                f"{label}: command latency p50 / p99 / worst",
                f"Rayzig {_ms(ours)}; demo switch {_ms(summaries[label]['demo'])}; "
                f"input_boolean {_ms(summaries[label]['input_boolean'])}",
            )
        )
        vs_demo = ours.p50 / summaries[label]["demo"].p50
        rows.append(
            Row(
                f"{label}: Rayzig p50 / demo switch p50",
                f"{vs_demo:.2f}×",
                f"≤ {TARGET_VS_DEMO}×",
                vs_demo <= TARGET_VS_DEMO,
            )
        )
        overhead = ours.p50 - floor.p50
        own_vs_demo = overhead / summaries[label]["demo"].p50
        rows.append(
            Row(
                f"{label}: Home Assistant side of a Rayzig command (p50 − client round trip "
                "p50) / demo switch p50",
                f"{own_vs_demo:.2f}× ({ours.p50 * 1e3:.2f} − {floor.p50 * 1e3:.2f} = "
                f"{overhead * 1e3:.2f} ms vs {summaries[label]['demo'].p50 * 1e3:.2f} ms)",
                f"≤ {TARGET_VS_DEMO}×",
                own_vs_demo <= TARGET_VS_DEMO,
            )
        )
        record = run.kinds["rayzig"]
        writes, changed = _mean(record.writes), _mean(record.changed)
        rows.append(
            Row(
                f"{label}: state writes per Rayzig command",
                f"{writes:,.1f} writes by {_mean(record.written):,.1f} entities; "
                f"{changed:.1f} entities changed ({sum(record.writes):,d} writes for "
                f"{len(record.writes)} commands)",
                "= entities that changed",
                writes <= changed,
            )
        )
    reference, largest = runs[0].shape.label, runs[-1].shape.label
    if len(runs) > 1:
        for name in ("p50", "p99"):
            growth = getattr(summaries[largest]["rayzig"], name) / getattr(
                summaries[reference]["rayzig"], name
            )
            rows.append(
                Row(
                    f"Rayzig {name} at {largest} / at {reference}",
                    f"{growth:.2f}×",
                    f"≤ {TARGET_SIZE_GROWTH}×",
                    growth <= TARGET_SIZE_GROWTH,
                )
            )
    ratio = summaries[largest]["rayzig"].p50 / summaries[largest]["demo"].p50
    return BenchResult(
        NAME,
        TITLE,
        ratio,
        f"Rayzig switch p50 / demo switch p50 at {largest} (target ≤ {TARGET_VS_DEMO})",
        rows,
        details,
        seconds,
    )


def run(workload: Workload = FULL) -> BenchResult:
    """Run the benchmark and return its result."""
    started = time.perf_counter()
    runs = [run_hass(_measure(shape, workload)) for shape in workload.sizes]  # one HA each
    return _report(runs, workload, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.ha_command [--workload full|quick|smoke]``."""
    cli.main(__doc__.splitlines()[0], run, WORKLOADS, argv)


if __name__ == "__main__":
    main()
