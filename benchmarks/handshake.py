"""Benchmark 3: handshake CPU time, Noise_IK and Noise_XX, client and gateway side (no bus).

Both ends run sans-I/O in one thread (:class:`InitiatorHandshake`, :class:`ResponderHandshake`:
X25519, ChaCha20-Poly1305 and SHA-256 through ``cryptography``, the Noise state machine and the
CBOR handshake payloads in Python), from a fresh ``InitiatorHandshake`` to both
:class:`SecureChannel` objects. Each side's time is measured apart, as wall time
(``perf_counter``) and as thread CPU time (``thread_time``).

Target: ≤ 5 ms of CPU time per handshake, both sides together (so each side is well within it),
mean and p99 of thread CPU time (robust to a shared CPU); wall-clock figures are reported too.
Sessions per second = 1 / mean CPU time; the gateway-side rate is what one core could accept.
The RATIO compares the CPU time with the bus: mean handshake time (both sides) / modelled 400 kHz
bus time of the handshake's frames on a fresh link (HELLO, PUTs, STATUS, GETs). Below 1, a session
set-up over I2C is bounded by the bus, not by the CPU.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from benchmarks.common import CLOCK_HZ, BenchResult, Row, Summary, exchange_bus_time
from rayzig_core.protocol import messages
from rayzig_core.protocol.noise import generate_keypair, public_key_of
from rayzig_core.protocol.session import InitiatorHandshake, ResponderHandshake, SecureChannel

NAME = "handshake"
TITLE = "Handshake CPU time (Noise IK and XX, both sides, no bus)"
TARGET = 0.005
PATTERNS = ("IK", "XX")


@dataclass(slots=True)
class Timer:
    """Accumulates wall and thread-CPU time of the code it wraps."""

    wall: float = 0.0
    cpu: float = 0.0
    _wall: float = 0.0
    _cpu: float = 0.0

    def __enter__(self) -> Timer:
        self._wall = time.perf_counter()
        self._cpu = time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.thread_time() - self._cpu
        self.wall += time.perf_counter() - self._wall


@dataclass(frozen=True, slots=True)
class Handshake:
    """One complete handshake: the time of each side and the frames exchanged."""

    client: Timer
    gateway: Timer
    frames: tuple[tuple[bool, bytes], ...]


def _hello(client_key: bytes | None) -> messages.GatewayHello:
    return messages.GatewayHello(
        protocol_version=messages.PROTOCOL_VERSION,
        serial="RZ1234567",
        model="RZ-GW1",
        factory_state=False,
        client_enrolled=client_key is not None,
        max_frame=4096,
    )


def handshake(pattern: str, client_private: bytes, gateway_private: bytes) -> Handshake:
    """Run one handshake of ``pattern`` ("IK" or "XX") in process and time each side."""
    client, gateway = Timer(), Timer()
    frames: list[tuple[bool, bytes]] = []
    pinned = public_key_of(gateway_private) if pattern == "IK" else None  # stored by the client
    with client:
        initiator = InitiatorHandshake(
            static_private=client_private, client_name="benchmark", gateway_key=pinned
        )
        outgoing: bytes | None = initiator.start()
    responder = ResponderHandshake(static_private=gateway_private, hello_for=_hello)
    while outgoing is not None:
        frames.append((True, outgoing))
        with gateway:
            reply = responder.receive(outgoing)
        outgoing = None
        if reply is not None:
            frames.append((False, reply))
            with client:
                outgoing = initiator.receive(reply)
    with gateway:
        gateway_channel = responder.channel()
    with client:
        client_channel = initiator.channel()
    _check(client_channel, gateway_channel)
    return Handshake(client, gateway, tuple(frames))


def _check(client: SecureChannel, gateway: SecureChannel) -> None:
    if client.handshake_hash != gateway.handshake_hash:
        raise RuntimeError("the two ends disagree on the handshake hash")


def run(*, iterations: int = 1000, warmup: int = 50, clock_hz: int = CLOCK_HZ) -> BenchResult:
    """Run the benchmark and return its result."""
    started = time.perf_counter()
    client_private, _ = generate_keypair()
    gateway_private, _ = generate_keypair()
    rows: list[Row] = []
    details: list[str] = []
    ratios: list[float] = []
    for pattern in PATTERNS:
        for _ in range(warmup):
            handshake(pattern, client_private, gateway_private)
        runs = [handshake(pattern, client_private, gateway_private) for _ in range(iterations)]
        cpu = Summary.of([r.client.cpu + r.gateway.cpu for r in runs])
        wall = Summary.of([r.client.wall + r.gateway.wall for r in runs])
        client = Summary.of([r.client.cpu for r in runs])
        gateway = Summary.of([r.gateway.cpu for r in runs])
        frames = runs[0].frames
        bus_time, transactions = exchange_bus_time(frames, clock_hz)
        ratio = cpu.mean / bus_time
        ratios.append(ratio)
        sizes = " + ".join(f"{len(frame)}" for _, frame in frames)
        details += [
            f"{pattern}: CPU, both sides {cpu.ms()}",
            f"{pattern}:   client  {client.ms()}",
            f"{pattern}:   gateway {gateway.ms()}",
            f"{pattern}: wall clock, both sides {wall.ms()}",
            f"{pattern}: frames {sizes} bytes; on a fresh I2C link at {clock_hz // 1000} kHz "
            f"{transactions} transactions, {bus_time * 1e3:.2f} ms of bus time "
            f"(CPU/bus {ratio:.2f})",
        ]
        rows += [
            Row(
                f"{pattern} handshake CPU time, both sides: mean / p99",
                f"{cpu.mean * 1e3:.2f} / {cpu.p99 * 1e3:.2f} ms "
                f"(client {client.mean * 1e3:.2f}, gateway {gateway.mean * 1e3:.2f})",
                f"≤ {TARGET * 1e3:.0f} ms",
                cpu.p99 <= TARGET,
            ),
            Row(
                f"{pattern} handshake wall clock, both sides: mean / p99",
                f"{wall.mean * 1e3:.2f} / {wall.p99 * 1e3:.2f} ms",
            ),
            Row(
                f"{pattern} sessions per second (one core: both sides / gateway side)",
                f"{1 / cpu.mean:,.0f} / {1 / gateway.mean:,.0f}",
            ),
            Row(
                f"{pattern} handshake on the bus at {clock_hz // 1000} kHz",
                f"{bus_time * 1e3:.2f} ms ({transactions} transactions)",
            ),
        ]
    return BenchResult(
        NAME,
        TITLE,
        max(ratios),
        "handshake CPU time (both sides, mean, worst pattern) / its bus time at 400 kHz "
        "(< 1: the bus, not the CPU, bounds session set-up)",
        rows,
        details,
        time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.handshake [--iterations N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args(argv)
    run(iterations=args.iterations).print()


if __name__ == "__main__":
    main()
