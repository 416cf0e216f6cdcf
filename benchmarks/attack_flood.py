"""Benchmark 5: a paired client's service while someone on the LAN floods pairing (§6.5).

Three processes over loopback TCP, as on a site: the virtual gateway (its own process, the real
scrypt cost 2^15 and its state file on disk, so every failure's fsync is real), the attacker (one
process, ``flooders`` tasks that pair again and again with fresh unknown user names and wrong
passwords through the public client API, ignoring ``retry_after``) and this one, which holds
``idle`` TCP sockets open without a handshake, drives a paired client (a command every
``COMMAND_GAP`` s, GetInfo and SetOutput in turn) and a new client's first contact (``identify``)
every ``IDENTIFY_GAP`` s.

Phase A (``duration`` s): the paired client's command latency before the flood (baseline) and
during it, failed commands, first-contact times, and the password checks the gateway evaluated
(an INVALID_CREDENTIALS answer; THROTTLED answers are refusals without a check).
Phase B (``guess_window`` s, no flood, two fresh gateways side by side): one task guesses the
password of the real account ``installer`` against one gateway, another guesses with fresh names
against the other, both at full speed, and each gateway restarts at mid-window; the guesses each
gateway evaluated in that window show the per-account throttle and the gateway's budget hold
across a restart.

Targets (issue: no unauthenticated client can slow or lock out a paired one): command p99 ≤
100 ms and no failure during the flood; first contact within 1 s; ≤ 10 evaluated guesses per
minute for one account and ≤ 100 per minute for the whole gateway, across a restart.
RATIO = the paired client's command p99 under the flood / 100 ms (≤ 1: met).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.common import BenchResult, Row, Summary
from rayzig_core.client import ClientCredentials, GatewayIdentity, RayzigClient
from rayzig_core.errors import (
    ConnectionFailedError,
    InvalidCredentialsError,
    RayzigError,
    ThrottledError,
)
from rayzig_core.transport.tcp import TcpConnector

NAME = "attack_flood"
TITLE = "Pairing flood from the LAN vs a paired client (TCP)"
HOST = "127.0.0.1"
OWNER = "installer"
OWNER_PASSWORD = "violet tangerine submarine orchestra"
GUESS = "a wrong password guess"
SCRYPT_N = 2**15
"""The virtual gateway's default cost: what an attacker makes it pay per check."""
TARGET_P99 = 0.100
TARGET_IDENTIFY = 1.0
TARGET_PER_ACCOUNT = 10
TARGET_GATEWAY = 100
COMMAND_GAP = 0.02
IDENTIFY_GAP = 1.0
WINDOW = 60.0
"""The guessing targets are per minute."""


# --- the gateway's process ---------------------------------------------------------------------


def _gateway_process(state: str, scrypt_n: int, control: Connection) -> None:
    """Run the virtual gateway until told to stop; ``restart`` power-cycles it on the same port."""
    from rayzig_core.testing.gateway import GatewayThread  # noqa: PLC0415 - in the child only

    gateway = GatewayThread(Path(state), scrypt_n=scrypt_n).start()
    gateway.setup_owner(OWNER_PASSWORD, user=OWNER)
    control.send(gateway.port)
    try:
        while (command := control.recv()) != "stop":
            if command == "restart":
                gateway.restart()
            control.send("ok")
    finally:
        gateway.stop()
        control.send("stopped")


@contextlib.contextmanager
def gateway_process(scrypt_n: int) -> Iterator[tuple[int, Connection]]:
    """The gateway in a process of its own, its state on disk; yields its port and control pipe."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="rayzig-flood-") as tmp:
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_gateway_process, args=(str(Path(tmp) / "gw.json"), scrypt_n, theirs)
        )
        process.start()
        try:
            if not ours.poll(60):
                raise RuntimeError("the gateway process did not start")
            yield ours.recv(), ours
        finally:
            with contextlib.suppress(OSError, EOFError):
                ours.send("stop")
                ours.poll(30)
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()


def _control(pipe: Connection, command: str) -> None:
    pipe.send(command)
    if not pipe.poll(60) or pipe.recv() != "ok":
        raise RuntimeError(f"the gateway did not {command}")


# --- attackers ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """What an attacker's pairing attempts got back, with the times of the evaluated ones."""

    evaluated: list[float] = field(default_factory=list)
    """``time.time()`` of each INVALID_CREDENTIALS answer: a password the gateway checked."""
    throttled: int = 0
    failed: int = 0

    def merge(self, other: Tally) -> None:
        """Add another tally's counts."""
        self.evaluated += other.evaluated
        self.throttled += other.throttled
        self.failed += other.failed


async def _guess(port: int, names: Iterator[str], until: float, tally: Tally) -> None:
    """Pair with each name in turn and a wrong password until ``until`` (``time.time()``)."""
    client = RayzigClient(TcpConnector(HOST, port, timeout=5.0), request_timeout=5.0)
    identity: GatewayIdentity | None = None
    for name in names:
        if time.time() >= until:
            return
        try:
            identity = identity or await client.identify()
            await client.pair(identity, name, GUESS)
        except InvalidCredentialsError:
            tally.evaluated.append(time.time())
        except ThrottledError:
            tally.throttled += 1
        except (ConnectionFailedError, RayzigError):
            tally.failed += 1
            await asyncio.sleep(0.05)  # the gateway is restarting: try again shortly


def _fresh_names(prefix: str) -> Iterator[str]:
    number = 0
    while True:
        number += 1
        yield f"{prefix}{number}"


def _flood_process(port: int, flooders: int, until: float, results: Connection) -> None:
    """The attacker: ``flooders`` tasks pairing with fresh names until ``until``."""

    async def flood() -> Tally:
        tallies = [Tally() for _ in range(flooders)]
        await asyncio.gather(
            *(
                _guess(port, _fresh_names(f"f{task}x"), until, tally)
                for task, tally in enumerate(tallies)
            )
        )
        total = Tally()
        for tally in tallies:
            total.merge(tally)
        return total

    tally = asyncio.run(flood())
    results.send((tally.evaluated, tally.throttled, tally.failed))


# --- the paired client and first contact -----------------------------------------------------


async def _pair(port: int) -> ClientCredentials:
    client = RayzigClient(TcpConnector(HOST, port, timeout=10.0))
    try:
        return await client.pair(await client.identify(), OWNER, OWNER_PASSWORD)
    finally:
        await client.close()


async def _commands(client: RayzigClient, seconds: float) -> tuple[list[float], int]:
    """Latencies of commands sent every COMMAND_GAP for ``seconds``, and how many failed."""
    module = next(m for m in await client.list_modules() if m.outputs)
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    on = False
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            if len(latencies) % 2:
                on = not on
                await client.set_output(module.module_id, module.outputs[0].index, on)
            else:
                await client.get_info()
            latencies.append(time.perf_counter() - started)
        except RayzigError:
            failures += 1
        await asyncio.sleep(COMMAND_GAP)
    return latencies, failures


async def _first_contacts(port: int, seconds: float) -> tuple[list[float], int]:
    """Times of a new client's ``identify`` every IDENTIFY_GAP for ``seconds``, and failures."""
    times: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            await RayzigClient(TcpConnector(HOST, port, timeout=5.0)).identify()
            times.append(time.perf_counter() - started)
        except RayzigError:
            failures += 1
        await asyncio.sleep(IDENTIFY_GAP)
    return times, failures


async def _idle_sockets(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` TCP connections that never start a handshake."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection(HOST, port)
        writers.append(writer)
    return writers


def busiest_window(times: list[float], window: float = WINDOW) -> int:
    """The most of ``times`` that fall in any ``window`` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- the phases --------------------------------------------------------------------------------


@dataclass(slots=True)
class FloodFigures:
    """Phase A's measurements."""

    baseline: list[float]
    latencies: list[float]
    failures: int
    identify: list[float]
    identify_failures: int
    attack: Tally
    idle: int


def _flood_phase(
    port: int, *, flooders: int, idle: int, duration: float, baseline: float
) -> FloodFigures:
    async def measure() -> FloodFigures:
        credentials = await _pair(port)
        client = RayzigClient(TcpConnector(HOST, port, timeout=5.0), credentials)
        await client.connect()
        writers: list[asyncio.StreamWriter] = []
        try:
            calm, _ = await _commands(client, baseline)
            writers = await _idle_sockets(port, idle)
            context = multiprocessing.get_context("spawn")
            ours, theirs = context.Pipe()
            until = time.time() + duration
            attacker = context.Process(target=_flood_process, args=(port, flooders, until, theirs))
            attacker.start()
            try:
                (latencies, failures), (identify, identify_failures) = await asyncio.gather(
                    _commands(client, duration), _first_contacts(port, duration)
                )
                received = await asyncio.to_thread(ours.poll, duration + 60)
                evaluated, throttled, failed = ours.recv() if received else ([], 0, 0)
            finally:
                attacker.join(60)
                if attacker.is_alive():
                    attacker.kill()
                    attacker.join()
            return FloodFigures(
                calm,
                latencies,
                failures,
                identify,
                identify_failures,
                Tally(evaluated, throttled, failed),
                len(writers),
            )
        finally:
            for writer in writers:
                writer.close()
            await client.close()

    return asyncio.run(measure())


def _guess_phase(scrypt_n: int, window: float) -> tuple[Tally, Tally]:
    """Guessing one account, and fresh names, for ``window`` s each against a gateway of its
    own (so neither budget is spent by the other), each gateway restarted midway."""
    with (
        gateway_process(scrypt_n) as (one, one_control),
        gateway_process(scrypt_n) as (
            other,
            other_control,
        ),
    ):

        async def guess(port: int, control: Connection, names: Iterator[str]) -> Tally:
            tally = Tally()
            task = asyncio.create_task(_guess(port, names, time.time() + window, tally))
            await asyncio.sleep(window / 2)
            await asyncio.to_thread(_control, control, "restart")
            await task
            return tally

        async def both() -> tuple[Tally, Tally]:
            account, names = await asyncio.gather(
                guess(one, one_control, iter(lambda: OWNER, None)),
                guess(other, other_control, _fresh_names("g")),
            )
            return account, names

        return asyncio.run(both())


def run(
    *,
    flooders: int = 24,
    idle: int = 50,
    duration: float = 30.0,
    baseline: float = 3.0,
    guess_window: float = WINDOW,
    scrypt_n: int = SCRYPT_N,
) -> BenchResult:
    """Run both phases against a fresh gateway process and return the result."""
    started = time.perf_counter()
    with gateway_process(scrypt_n) as (port, _):
        flood = _flood_phase(
            port, flooders=flooders, idle=idle, duration=duration, baseline=baseline
        )
    account, names = _guess_phase(scrypt_n, guess_window)
    calm = Summary.of(flood.baseline or [0.0])
    busy = Summary.of(flood.latencies or [float("inf")])
    identify = Summary.of(flood.identify or [float("inf")])
    attack = flood.attack
    flood_checks = busiest_window(attack.evaluated)
    per_account = busiest_window(account.evaluated)
    gateway_wide = busiest_window(names.evaluated)
    rows = [
        Row(
            "paired client's commands, no flood: p50 / p99",
            f"{calm.p50 * 1e3:.1f} / {calm.p99 * 1e3:.1f} ms",
        ),
        Row(
            f"paired client's commands under {flooders} flooders + {flood.idle} idle sockets: "
            "p50 / p99 / max",
            f"{busy.p50 * 1e3:.1f} / {busy.p99 * 1e3:.1f} / {busy.maximum * 1e3:.1f} ms",
            f"p99 ≤ {TARGET_P99 * 1e3:.0f} ms",
            busy.p99 <= TARGET_P99,
        ),
        Row(
            "paired client's commands that failed under the flood",
            f"{flood.failures} of {len(flood.latencies) + flood.failures}",
            "0",
            flood.failures == 0,
        ),
        Row(
            "a new client's first contact (identify) under the flood: p50 / max",
            f"{identify.p50 * 1e3:.0f} / {identify.maximum * 1e3:.0f} ms "
            f"({flood.identify_failures} failed)",
            f"≤ {TARGET_IDENTIFY:.0f} s",
            identify.maximum <= TARGET_IDENTIFY and flood.identify_failures == 0,
        ),
        Row(
            "passwords the gateway checked for the flood, most in any minute",
            f"{flood_checks} ({attack.throttled} attempts refused without a check, "
            f"{attack.failed} failed)",
            f"≤ {TARGET_GATEWAY}",
            flood_checks <= TARGET_GATEWAY,
        ),
        Row(
            f"guesses checked for one account in {guess_window:.0f} s across a restart",
            str(per_account),
            f"≤ {TARGET_PER_ACCOUNT} per minute",
            per_account <= TARGET_PER_ACCOUNT,
        ),
        Row(
            f"guesses checked for the whole gateway in {guess_window:.0f} s across a restart",
            str(gateway_wide),
            f"≤ {TARGET_GATEWAY} per minute",
            gateway_wide <= TARGET_GATEWAY,
        ),
    ]
    details = [
        f"gateway: its own process, scrypt n = {scrypt_n}, state file on disk; attacker: one "
        f"process, {flooders} tasks pairing with fresh names; {flood.idle} idle TCP sockets",
        f"no flood ({baseline:.0f} s): {calm.ms()}",
        f"flood ({duration:.0f} s): {busy.ms()}",
        f"flood: {flood.failures} commands failed; first contact {identify.ms()}",
        f"flood: the attacker got {len(attack.evaluated)} INVALID_CREDENTIALS (checked), "
        f"{attack.throttled} THROTTLED (refused unchecked), {attack.failed} failures",
        f"guessing ({guess_window:.0f} s, restarts at {guess_window / 2:.0f} s): account "
        f"{len(account.evaluated)} checked / {account.throttled} throttled; fresh names "
        f"{len(names.evaluated)} checked / {names.throttled} throttled; "
        f"{account.failed + names.failed} attempts failed during the restart",
    ]
    return BenchResult(
        NAME,
        TITLE,
        busy.p99 / TARGET_P99,
        "paired client's command p99 under the flood / 100 ms (≤ 1: met)",
        rows,
        details,
        time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.attack_flood [--flooders N] [--duration S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flooders", type=int, default=24)
    parser.add_argument("--idle", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--guess-window", type=float, default=WINDOW)
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "flooders": args.flooders,
        "idle": args.idle,
        "duration": args.duration,
        "guess_window": args.guess_window,
    }
    run(**options).print()


if __name__ == "__main__":
    main()
