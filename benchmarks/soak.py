"""End-to-end soak: thousands of commands through faults act exactly once; the event log is whole.

Two legs, each the real stack end to end, each with a fresh gateway:

* **tcp**: RayzigClient → Noise session → TCP → the virtual gateway's server, which drops the
  connection before a received frame with probability 0.1 % (``TcpFaults``);
* **bridge**: RayzigClient → Noise session → TCP (cut by the client side with probability 0.1 % per
  frame sent, half before and half right after the frame, so answers are lost too) → the network
  bridge → the fake I2C bus with 1 % bit flips and 1 % NACKs (``FaultPlan``, smbus2's real path)
  → the virtual gateway on its I2C link.

The client switches outputs of the reachable modules round-robin, each command the opposite of
the output's state, and pulls the event logs with :class:`~rayzig_core.EventLogSync` every
``SYNC_EVERY`` commands and at the end (through the same faults). Afterwards it checks:

* against the gateway's own records (its event rings and output states, read on its thread): every
  command applied exactly once — the COMMAND records of each output, in order, are exactly the
  states the client sent — and every output ends in the last state sent;
* against what the client imported: every event-log record of the soak imported once, or counted
  in a GAP record (an overrun), so continuity = (records imported + records lost in gaps) / records
  written, target 100 %.

RATIO = commands applied exactly once / commands sent, over both legs (target 1.000). The full
run is 10,000 commands per leg (``python -m benchmarks.soak``, and ``run_all.py``, whose
``--soak-commands N`` runs fewer); the program exits 1 if any command was not applied exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import BenchResult, Row
from rayzig_core.bridge import Bridge
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.eventlog import EventLogSync
from rayzig_core.models import Event, EventKind
from rayzig_core.testing.fake_i2c import FakeI2CBus, FaultPlan
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.i2c import I2CConnector
from rayzig_core.transport.tcp import TcpConnector, TcpTransport
from rayzig_core.virtual_gateway import TcpFaults, VirtualGateway

NAME = "soak"
TITLE = "End-to-end soak: commands through faults (exactly once, event-log continuity)"
FULL_COMMANDS = 10_000
"""Per leg; about a minute for both on the development machine."""
BIT_FLIPS = 0.01
NACKS = 0.01
DISCONNECTS = 0.001
SYNC_EVERY = 250
MODULES = 12
TARGETS = 8
"""Reachable modules whose outputs the soak switches (spread: no ring overruns)."""
BUS = 9
ADDRESS = 0x42
OWNER = "installer"
PASSWORD = "violet tangerine submarine orchestra"
SCRYPT_N = 2**12
BACKOFF_INITIAL, BACKOFF_MAX = 0.01, 0.1


# --- what one leg found ---------------------------------------------------------------------


@dataclass(slots=True)
class Imported:
    """What the client imported of one module's event log during the soak."""

    start: int
    seqs: list[int] = field(default_factory=list)
    gap_lost: int = 0
    commands: list[tuple[int | None, bool | None]] = field(default_factory=list)


@dataclass(slots=True)
class LegResult:
    """The figures of one leg."""

    name: str
    sent: int = 0
    lost: int = 0
    doubled: int = 0
    """Commands applied more than once (counted once per extra application)."""
    misordered: int = 0
    """Outputs whose applied states differ from the sent ones in order (not just in count)."""
    wrong_final: int = 0
    records: int = 0
    imported: int = 0
    imported_twice: int = 0
    gap_lost: int = 0
    client_view_mismatch: int = 0
    """Outputs whose COMMAND records as imported by the client differ from what it sent."""
    faults: str = ""
    reconnects: int = 0
    retries: int = 0
    seconds: float = 0.0

    @property
    def exactly_once(self) -> int:
        return self.sent - self.lost - self.doubled

    @property
    def continuity(self) -> float:
        return (self.imported + self.gap_lost) / self.records if self.records else 1.0


# --- faults on the client's side of a TCP connection --------------------------------------------


class DroppingConnector:
    """A TCP connector whose connections the client side cuts at random (seeded).

    Per frame sent: with probability ``rate / 2`` the socket is aborted before the frame (it never
    leaves), with ``rate / 2`` right after it (its answer is lost).
    """

    def __init__(self, host: str, port: int, *, rate: float, seed: int) -> None:
        self._inner = TcpConnector(host, port)
        self._rng = random.Random(seed)
        self.rate = rate
        self.drops = 0

    @property
    def description(self) -> str:
        return self._inner.description

    async def connect(self) -> TcpTransport:
        transport = await self._inner.connect()
        send = transport.send
        socket = transport._writer.transport

        async def dropping_send(frame: bytes) -> None:
            draw = self._rng.random()
            if draw < self.rate / 2:
                self.drops += 1
                socket.abort()
            await send(frame)
            if self.rate / 2 <= draw < self.rate:
                self.drops += 1
                socket.abort()

        transport.send = dropping_send  # type: ignore[method-assign]
        return transport


# --- the soak -----------------------------------------------------------------------------------


def _targets(gw: GatewayThread) -> list[tuple[int, int]]:
    """(module id, output index) of every output of the first TARGETS reachable modules."""

    def find(g: VirtualGateway) -> list[tuple[int, int]]:
        modules = [m for m in g.site.modules() if m.telemetry.reachable and m.outputs][:TARGETS]
        return [(m.module_id, o.index) for m in modules for o in m.outputs]

    return gw.call(find)


async def _pair(port: int) -> ClientCredentials:
    client = RayzigClient(TcpConnector("127.0.0.1", port))
    try:
        identity = await client.identify()
        return await client.pair(identity, OWNER, PASSWORD)
    finally:
        await client.close()


async def _pull(sync: EventLogSync, imported: dict[int, Imported]) -> None:
    for module_id, record in imported.items():
        for event in await sync.pull(module_id):
            _note(record, event)


def _note(record: Imported, event: Event) -> None:
    if event.kind is EventKind.GAP:
        record.gap_lost += event.lost
        return
    record.seqs.append(event.seq)
    if event.kind is EventKind.COMMAND and event.user == OWNER:
        record.commands.append((event.output, event.is_on))


async def _drive(
    client: RayzigClient, gw: GatewayThread, commands: int, leg: LegResult
) -> tuple[dict[tuple[int, int], list[bool]], dict[int, Imported]]:
    """Send ``commands`` commands round-robin and pull the event logs as it goes."""
    targets = _targets(gw)
    modules = sorted({module_id for module_id, _ in targets})
    state = gw.call(lambda g: {(m, i): g.site.module(m).outputs[i].is_on for m, i in targets})
    starts = gw.call(lambda g: {m: g.site.ring(m).newest_seq for m in modules})
    sync = EventLogSync(client, dict(starts))
    imported = {m: Imported(starts[m]) for m in modules}
    sent: dict[tuple[int, int], list[bool]] = {target: [] for target in targets}
    for n in range(commands):
        target = targets[n % len(targets)]
        want = not state[target]
        output = await client.set_output(*target, want)
        if output.is_on is not want:
            raise RuntimeError(f"output {target} answered {output.is_on}, not {want}")
        state[target] = want
        sent[target].append(want)
        leg.sent += 1
        if (n + 1) % SYNC_EVERY == 0:
            await _pull(sync, imported)
    await _pull(sync, imported)
    return sent, imported


def _check(
    gw: GatewayThread,
    sent: dict[tuple[int, int], list[bool]],
    imported: dict[int, Imported],
    leg: LegResult,
) -> None:
    """Compare what the client sent with the gateway's records and what the client imported."""

    def read(g: VirtualGateway) -> tuple[dict[int, list[Event]], dict[tuple[int, int], bool]]:
        rings = {m: [e for e in g.site.ring(m) if e.seq > imported[m].start] for m in imported}
        finals = {(m, i): g.site.module(m).outputs[i].is_on for m, i in sent}
        return rings, finals

    rings, finals = gw.call(read)
    for (module_id, index), states in sent.items():
        applied = [
            e.is_on
            for e in rings[module_id]
            if e.kind is EventKind.COMMAND and e.user == OWNER and e.output == index
        ]
        leg.lost += max(0, len(states) - len(applied))
        leg.doubled += max(0, len(applied) - len(states))
        leg.misordered += applied != states
        leg.wrong_final += bool(states) and finals[(module_id, index)] is not states[-1]
        seen = [on for output, on in imported[module_id].commands if output == index]
        leg.client_view_mismatch += seen != states
    for module_id, record in imported.items():
        newest = max((e.seq for e in rings[module_id]), default=record.start)
        leg.records += newest - record.start
        leg.imported += len(set(record.seqs))
        leg.imported_twice += len(record.seqs) - len(set(record.seqs))
        leg.gap_lost += record.gap_lost


async def _tcp_leg(commands: int, seed: int) -> LegResult:
    leg = LegResult("tcp")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rayzig-soak-") as tmp:
        gw = GatewayThread(Path(tmp) / "gw.json", module_count=MODULES, scrypt_n=SCRYPT_N).start()
        try:
            gw.setup_owner(PASSWORD, user=OWNER)
            credentials = await _pair(gw.port)
            client = RayzigClient(
                TcpConnector("127.0.0.1", gw.port),
                credentials,
                backoff_initial=BACKOFF_INITIAL,
                backoff_max=BACKOFF_MAX,
            )
            await client.connect()
            faults = TcpFaults(disconnect_rate=DISCONNECTS, seed=seed)
            gw.call(lambda g: gw.server.set_faults(faults))
            try:
                sent, imported = await _drive(client, gw, commands, leg)
            finally:
                await client.close()
            gw.call(lambda g: gw.server.set_faults(TcpFaults()))
            _check(gw, sent, imported, leg)
            counts = gw.call(lambda g: gw.server.fault_counts)
            leg.faults = f"{counts.disconnects} disconnects (gateway side, per frame received)"
            leg.reconnects, leg.retries = client.stats.connects - 1, client.stats.retries
        finally:
            gw.stop()
    leg.seconds = time.perf_counter() - started
    return leg


@contextmanager
def _gateway_on_faulty_bus(tmp: Path, plan: FaultPlan) -> Iterator[GatewayThread]:
    bus = FakeI2CBus(BUS, faults=plan)
    gw = GatewayThread(
        tmp / "gw.json",
        module_count=MODULES,
        scrypt_n=SCRYPT_N,
        i2c=bus,
        i2c_address=ADDRESS,
        hop_latency=0.0,
    )
    with bus.installed():
        gw.start()
        try:
            yield gw
        finally:
            gw.stop()


async def _bridge_leg(commands: int, seed: int) -> LegResult:
    leg = LegResult("bridge")
    started = time.perf_counter()
    plan = FaultPlan(seed=seed)  # no faults during set-up
    with (
        tempfile.TemporaryDirectory(prefix="rayzig-soak-") as tmp,
        _gateway_on_faulty_bus(Path(tmp), plan) as gw,
    ):
        gw.setup_owner(PASSWORD, user=OWNER)
        credentials = await _pair(gw.port)

        def connector_for(channel: int) -> I2CConnector:
            return I2CConnector(BUS, ADDRESS, channel=channel)

        async with Bridge(connector_for, host="127.0.0.1", port=0) as bridge:
            connector = DroppingConnector("127.0.0.1", bridge.port, rate=0.0, seed=seed)
            client = RayzigClient(
                connector, credentials, backoff_initial=BACKOFF_INITIAL, backoff_max=BACKOFF_MAX
            )
            await client.connect()
            connector.rate = DISCONNECTS
            plan.bit_flip_rate, plan.nack_rate = BIT_FLIPS, NACKS
            try:
                sent, imported = await _drive(client, gw, commands, leg)
            finally:
                plan.bit_flip_rate = plan.nack_rate = 0.0
                connector.rate = 0.0
                await client.close()
        _check(gw, sent, imported, leg)
        injected = plan.injected
        leg.faults = (
            f"{injected.bit_flips} bit flips, {injected.nacks} NACKs (I2C), {connector.drops} "
            "disconnects (client side, per frame sent)"
        )
        leg.reconnects, leg.retries = client.stats.connects - 1, client.stats.retries
    leg.seconds = time.perf_counter() - started
    return leg


def _report(legs: list[LegResult], seconds: float) -> BenchResult:
    sent = sum(leg.sent for leg in legs)
    once = sum(leg.exactly_once for leg in legs)
    result = BenchResult(
        NAME,
        TITLE,
        once / sent if sent else 0.0,
        "commands applied exactly once / commands sent, both legs (target 1.000)",
        seconds=seconds,
    )
    for leg in legs:
        whole = leg.lost == leg.doubled == leg.misordered == leg.wrong_final == 0
        result.rows += [
            Row(
                f"{leg.name}: commands sent / lost / applied twice",
                f"{leg.sent} / {leg.lost} / {leg.doubled}",
                "0 lost, 0 twice",
                whole and leg.client_view_mismatch == 0,
            ),
            Row(
                f"{leg.name}: event-log continuity (imported + lost in gaps / written)",
                f"{leg.continuity * 100:.2f} % ({leg.imported} + {leg.gap_lost} / "
                f"{leg.records}; {leg.imported_twice} imported twice)",
                "100 %",
                leg.continuity == 1.0 and leg.imported_twice == 0,
            ),
            Row(
                f"{leg.name}: faults injected; reconnections, retried commands",
                f"{leg.faults}; {leg.reconnects} reconnections, {leg.retries} retries",
            ),
            Row(
                f"{leg.name}: throughput",
                f"{leg.sent / leg.seconds:.0f} commands/s ({leg.seconds:.1f} s with set-up)",
            ),
        ]
        result.details.append(
            f"{leg.name}: {leg.sent} commands, {leg.exactly_once} applied exactly once, "
            f"{leg.lost} lost, {leg.doubled} applied twice, {leg.misordered} outputs out of "
            f"order, {leg.wrong_final} in a wrong final state, {leg.client_view_mismatch} "
            f"differing as the client imported them; {leg.records} event records written, "
            f"{leg.imported} imported, {leg.gap_lost} in gaps; {leg.faults}"
        )
    return result


async def _run(commands: int, seed: int) -> BenchResult:
    started = time.perf_counter()
    legs = [await _tcp_leg(commands, seed), await _bridge_leg(commands, seed)]
    return _report(legs, time.perf_counter() - started)


def run(commands: int = FULL_COMMANDS, seed: int = 1) -> BenchResult:
    """Run both legs of ``commands`` commands each."""
    return asyncio.run(_run(commands, seed))


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.soak [--commands N] [--seed N]``: print the figures and RATIO."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=FULL_COMMANDS, help="per leg")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args.commands, args.seed)
    result.print()
    return 0 if result.ratio == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
