"""Idle sockets: a neighbour holds 50 silent TCP connections; how soon does a real client get in?

Against each server with its default connection hygiene (PROTOCOL.md §2.2, §3.2): the network
bridge (in front of the virtual gateway on a fake I2C bus, no timing model) and the virtual
gateway's own TCP server. ``SOCKETS`` connections are opened and left silent; then a real client
identifies (a first-contact XX handshake), and the time from its connect to the answer is measured.
Before the hygiene the bridge refused every client once 8 silent sockets were open (lock-out), and
the gateway held every silent socket open for ever.

RATIO = the worse of (bridge identify time / 5 s, gateway identify time / 1 s); ≤ 1 meets both
targets. Also reported: how many of the silent sockets each server still holds afterwards (its
pending pool) and how many it pushed out.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchResult, Row
from rayzig_core.bridge import Bridge
from rayzig_core.client import RayzigClient
from rayzig_core.testing.fake_i2c import FakeI2CBus
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.i2c import I2CConnector
from rayzig_core.transport.tcp import TcpConnector

NAME = "idle_sockets"
TITLE = "Idle sockets: a new client identifies past 50 silent connections"
SOCKETS = 50
BRIDGE_TARGET = 5.0
GATEWAY_TARGET = 1.0
BUS = 10
ADDRESS = 0x42
SCRYPT_N = 2**12
HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Trial:
    """One server: identify time past the silent sockets, and what it held afterwards."""

    seconds: float
    still_open: int
    evicted: int


async def _still_open(readers: list[asyncio.StreamReader]) -> int:
    """How many silent sockets the server has not closed (EOF within a short look)."""
    open_count = 0
    for reader in readers:
        try:
            data = await asyncio.wait_for(reader.read(1), 0.01)
        except TimeoutError:
            open_count += 1
            continue
        except ConnectionError:
            continue
        open_count += data != b""
    return open_count


async def _trial(port: int, sockets: int) -> tuple[float, list[asyncio.StreamReader], list[object]]:
    """Open ``sockets`` silent connections, then time a real client's first contact."""
    opened = [await asyncio.open_connection(HOST, port) for _ in range(sockets)]
    await asyncio.sleep(0.2)  # let the server admit (and push out) every one of them
    client = RayzigClient(TcpConnector(HOST, port, timeout=30.0), request_timeout=30.0)
    started = time.perf_counter()
    try:
        await client.identify()
    finally:
        await client.close()
    seconds = time.perf_counter() - started
    return seconds, [reader for reader, _ in opened], [writer for _, writer in opened]


def _close(writers: list[object]) -> None:
    for writer in writers:
        assert isinstance(writer, asyncio.StreamWriter)
        writer.close()


async def _against_gateway(sockets: int) -> Trial:
    with tempfile.TemporaryDirectory(prefix="rayzig-idle-") as tmp:
        gw = GatewayThread(Path(tmp) / "gw.json", scrypt_n=SCRYPT_N).start()
        try:
            seconds, readers, writers = await _trial(gw.port, sockets)
            still_open = await _still_open(readers)
            evicted = gw.call(lambda g: gw.server.gatekeeper.counts.evicted)
            _close(writers)
        finally:
            gw.stop()
    return Trial(seconds, still_open, evicted)


async def _against_bridge(sockets: int) -> Trial:
    with tempfile.TemporaryDirectory(prefix="rayzig-idle-") as tmp:
        bus = FakeI2CBus(BUS)
        gw = GatewayThread(
            Path(tmp) / "gw.json", scrypt_n=SCRYPT_N, i2c=bus, i2c_address=ADDRESS, hop_latency=0.0
        )
        with bus.installed():
            gw.start()
            try:

                def connector_for(channel: int) -> I2CConnector:
                    return I2CConnector(BUS, ADDRESS, channel=channel)

                async with Bridge(connector_for, host=HOST, port=0) as bridge:
                    seconds, readers, writers = await _trial(bridge.port, sockets)
                    still_open = await _still_open(readers)
                    evicted = bridge.gatekeeper.counts.evicted
                    _close(writers)
            finally:
                gw.stop()
    return Trial(seconds, still_open, evicted)


async def _run(sockets: int) -> BenchResult:
    started = time.perf_counter()
    bridge = await _against_bridge(sockets)
    gateway = await _against_gateway(sockets)
    ratio = max(bridge.seconds / BRIDGE_TARGET, gateway.seconds / GATEWAY_TARGET)
    result = BenchResult(
        NAME,
        TITLE,
        ratio,
        f"worse of identify time / target (bridge {BRIDGE_TARGET:g} s, gateway "
        f"{GATEWAY_TARGET:g} s); ≤ 1 meets both",
        seconds=time.perf_counter() - started,
    )
    for name, trial, target in (
        ("bridge", bridge, BRIDGE_TARGET),
        ("virtual gateway", gateway, GATEWAY_TARGET),
    ):
        result.rows += [
            Row(
                f"{name}: first contact past {sockets} silent sockets",
                f"{trial.seconds * 1e3:.1f} ms",
                f"≤ {target:g} s",
                trial.seconds <= target,
            ),
            Row(
                f"{name}: silent sockets still held afterwards / pushed out",
                f"{trial.still_open} / {trial.evicted}",
            ),
        ]
        result.details.append(
            f"{name}: identify {trial.seconds * 1e3:.1f} ms after {sockets} silent sockets; "
            f"{trial.still_open} of them still open, {trial.evicted} pushed out of the pending pool"
        )
    return result


def run(sockets: int = SOCKETS) -> BenchResult:
    """Both servers, ``sockets`` silent connections each."""
    return asyncio.run(_run(sockets))


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.idle_sockets [--sockets N]``: print the figures and RATIO."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=SOCKETS)
    args = parser.parse_args(argv)
    result = run(args.sockets)
    result.print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
