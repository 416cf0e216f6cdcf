"""Shared pieces of the benchmarks: the observed fake bus, the gateway harness, statistics, output.

Everything measured runs the real stack: RayzigClient → Noise session → I2CTransport (its worker
thread) → smbus2's real ``SMBus.i2c_rdwr`` → the fake kernel ioctl → I2CSlaveLink → the virtual
gateway's event loop and back. Only the kernel boundary is faked, and :class:`ObservedBus` adds a
ledger of what crossed it: every ``I2C_RDWR`` transaction, classified by command and reply, with
its modelled duration (:meth:`BusTiming.transaction_time`) and its bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import math
import os
import platform
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.protocol.link import (
    CHUNK_HEADER_LEN,
    Command,
    I2CHostLink,
    I2CSlaveLink,
    Reply,
)
from rayzig_core.testing.fake_i2c import I2C_M_RD, BusTiming, FakeI2CBus, FakeI2CDevice
from rayzig_core.testing.gateway import DEFAULT_I2C_ADDRESS, GatewayThread
from rayzig_core.transport.i2c import I2CConnector
from rayzig_core.transport.tcp import TcpConnector

BUS_NUMBER = 7
"""The fake ``/dev/i2c-N`` the benchmarks use."""
ADDRESS = DEFAULT_I2C_ADDRESS
CLOCK_HZ = 400_000
OWNER = "installer"
OWNER_PASSWORD = "violet tangerine submarine orchestra"
SCRYPT_N = 2**12
"""Pairing cost is not what is measured: a cheap scrypt keeps set-up short."""

KINDS = ("hello", "put", "get", "status_ready", "status_idle", "busy")
"""Transaction classes of the ledger. ``status_idle`` (a STATUS poll answered IDLE) and ``busy``
(answered BUSY) move nothing: they are waiting, not work."""
WASTED = frozenset({"status_idle", "busy"})


# --- the observed bus ------------------------------------------------------------------------


@dataclass(slots=True)
class KindTotals:
    """Totals of one transaction class."""

    count: int = 0
    seconds: float = 0.0
    """Modelled bus time (sum of ``BusTiming.transaction_time``)."""
    wire_bytes: int = 0
    """Data bytes of every message plus one address byte per message."""
    payload: int = 0
    """Frame bytes carried in chunks (PUT and GET only)."""


@dataclass(slots=True)
class Ledger:
    """A copy of the bus ledger, or the difference of two copies."""

    kinds: dict[str, KindTotals] = field(
        default_factory=lambda: {kind: KindTotals() for kind in KINDS}
    )

    def copy(self) -> Ledger:
        """An independent copy."""
        return Ledger(
            {
                k: KindTotals(t.count, t.seconds, t.wire_bytes, t.payload)
                for k, t in self.kinds.items()
            }
        )

    def __sub__(self, other: Ledger) -> Ledger:
        return Ledger(
            {
                k: KindTotals(
                    t.count - other.kinds[k].count,
                    t.seconds - other.kinds[k].seconds,
                    t.wire_bytes - other.kinds[k].wire_bytes,
                    t.payload - other.kinds[k].payload,
                )
                for k, t in self.kinds.items()
            }
        )

    def count(self, *kinds: str) -> int:
        """Transactions of these classes (all when none is named)."""
        return sum(self.kinds[k].count for k in kinds or KINDS)

    @property
    def transactions(self) -> int:
        """Every transaction."""
        return self.count()

    @property
    def seconds(self) -> float:
        """Modelled bus time of every transaction."""
        return sum(t.seconds for t in self.kinds.values())

    @property
    def needed_seconds(self) -> float:
        """Modelled bus time of the transactions that did work (no IDLE polls, no BUSY)."""
        return sum(t.seconds for k, t in self.kinds.items() if k not in WASTED)

    @property
    def wire_bytes(self) -> int:
        """Every byte on the wire (data and address bytes)."""
        return sum(t.wire_bytes for t in self.kinds.values())

    @property
    def data_bytes(self) -> int:
        """Data bytes (no address bytes): two messages per transaction."""
        return self.wire_bytes - 2 * self.transactions


def _first_byte(message: Any) -> int:
    return int.from_bytes(ctypes.string_at(message.buf, 1), "big") if int(message.len) else -1


@dataclass(frozen=True, slots=True)
class Span:
    """One transaction on the timeline: ``perf_counter`` at its start and end, and its class."""

    start: float
    end: float
    kind: str


TIMELINE = 20_000
"""Most recent transactions (and gateway frame pushes) kept on the timelines."""


class ObservedBus(FakeI2CBus):
    """A :class:`FakeI2CBus` that also keeps a :class:`Ledger` of every transaction.

    Classification reads the first byte of the write (the command) and of the read (the reply
    code) once the bytes have moved, under the bus lock and inside the transaction's modelled
    time (before the timing model sleeps the rest of it), so it adds nothing to the wall time. The
    latest transactions are also kept in :attr:`timeline`, and :attr:`pushes` holds the times at
    which an :class:`ObservedDevice` on this bus had a gateway→host frame queued.
    """

    def __init__(self, number: int, *, timing: BusTiming) -> None:
        super().__init__(number, timing=timing)
        self.bus_timing = timing
        self._ledger = Ledger()
        self._ledger_lock = threading.Lock()
        self.timeline: deque[Span] = deque(maxlen=TIMELINE)
        self.pushes: deque[float] = deque(maxlen=TIMELINE)
        self._kind = "busy"
        """Class of the transaction in progress (set under the bus lock)."""

    def spans_since(self, since: float) -> list[Span]:
        """Transactions that started at or after ``since`` (``perf_counter``), oldest first."""
        with self._ledger_lock:
            spans = [span for span in reversed(self.timeline) if span.start >= since]
        spans.reverse()
        return spans

    def pushes_since(self, since: float) -> list[float]:
        """Times at which the gateway queued a frame, at or after ``since``."""
        with self._ledger_lock:
            return sorted(t for t in self.pushes if t >= since)

    def ledger(self) -> Ledger:
        """A copy of the running totals."""
        with self._ledger_lock:
            return self._ledger.copy()

    def note_push(self) -> None:
        """The gateway queued a frame now."""
        with self._ledger_lock:
            self.pushes.append(time.perf_counter())

    def _transfer(self, messages: list[Any], touched: list[FakeI2CDevice]) -> None:
        start = time.perf_counter()
        super()._transfer(messages, touched)
        span = Span(start, time.perf_counter(), self._kind)
        with self._ledger_lock:
            self.timeline.append(span)

    def _exchange(self, messages: list[Any], touched: list[FakeI2CDevice]) -> None:
        """Move the bytes, then classify the transaction while its modelled time runs."""
        super()._exchange(messages, touched)
        self._classify(messages)

    def _classify(self, messages: list[Any]) -> None:
        lengths = [int(message.len) for message in messages]
        writes = [msg for msg in messages if not int(msg.flags) & I2C_M_RD]
        reads = [msg for msg in messages if int(msg.flags) & I2C_M_RD]
        command = _first_byte(writes[0]) & 0x0F if writes else -1
        reply = _first_byte(reads[0]) if reads else -1
        payload = 0
        if reply in (Reply.BUSY, 0xFF):
            kind = "busy"
        elif command == Command.HELLO:
            kind = "hello"
        elif command == Command.PUT:
            kind = "put"
            payload = lengths[0] - CHUNK_HEADER_LEN - 2
        elif command == Command.GET:
            kind = "get"
            if reply == Reply.CHUNK:
                payload = ctypes.string_at(reads[0].buf, CHUNK_HEADER_LEN)[5]
        elif reply == Reply.IDLE:
            kind = "status_idle"
        else:
            kind = "status_ready"
        self._kind = kind
        seconds = self.bus_timing.transaction_time(lengths)
        with self._ledger_lock:
            totals = self._ledger.kinds[kind]
            totals.count += 1
            totals.seconds += seconds
            totals.wire_bytes += sum(lengths) + len(lengths)
            totals.payload += payload


class ObservedDevice(FakeI2CDevice):
    """The gateway MCU of :func:`gateway_on_bus`: notes when each gateway→host frame is queued."""

    def __init__(self, address: int, bus: ObservedBus) -> None:
        super().__init__(address)
        self._bus = bus

    def push_frame(self, channel: int, frame: bytes, *, notify: bool = False) -> None:
        """Queue a frame (see :meth:`FakeI2CDevice.push_frame`) and note the time."""
        self._bus.note_push()
        super().push_frame(channel, frame, notify=notify)


def exchange_bus_time(
    exchange: Sequence[tuple[bool, bytes]], clock_hz: int = CLOCK_HZ
) -> tuple[float, int]:
    """Modelled bus time and transactions of a frame exchange on a fresh link (HELLO included).

    ``exchange`` lists ``(to_gateway, frame)`` in order. Runs the real sans-I/O link ends
    (:class:`I2CHostLink` and :class:`I2CSlaveLink`, no threads, no sleeping) and adds up
    :meth:`BusTiming.transaction_time` of every transaction they need; the gateway queues each of
    its frames once the host's previous frame is in, so each answer costs one STATUS poll that
    finds it (no IDLE polls).
    """
    timing = BusTiming(clock_hz)
    host = I2CHostLink()
    slave = I2CSlaveLink(epoch=1)

    def transact() -> None:
        tx = host.next_transaction()
        slave.handle_write(tx.write)
        reply = slave.handle_read(tx.read_len)
        timing.record([len(tx.write), tx.read_len])
        host.handle_reply(tx, reply)

    while not host.linked:
        transact()
    for to_gateway, frame in exchange:
        if to_gateway:
            host.send(frame)
            while host.pending_frames:
                transact()
            if slave.frames_received(0) != [frame]:
                raise RuntimeError("the link lost a frame")
        else:
            slave.push_frame(0, frame)
            received: list[bytes] = []
            while not received:
                transact()
                received = host.take_frames()
            if received != [frame]:
                raise RuntimeError("the link lost a frame")
    return timing.seconds, timing.transactions


# --- the gateway harness -----------------------------------------------------------------------


def _state_dir() -> str | None:
    """tmpfs when there is one: the virtual gateway's JSON state saves (with fsync) are not the
    MCU flash writes a real gateway does, and must not stand in for them in the timings."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextlib.contextmanager
def gateway_on_bus(
    *,
    clock_hz: int = CLOCK_HZ,
    sleep: bool = True,
    module_count: int = 12,
    hop_latency: float = 0.0,
    save_changes: bool = False,
) -> Iterator[tuple[GatewayThread, ObservedBus]]:
    """The virtual gateway on an observed fake bus (fake kernel installed), stopped afterwards.

    ``hop_latency`` is 0 by default: mesh time is not bus time (commands that set it measure it
    apart). ``save_changes`` is off by default: the simulator writes its whole state as JSON on
    its event loop some 0.2 s after each change (4 to 30 ms that stall every session), which is not
    how a gateway's flash writes behave; security-relevant saves (pairing) and the save at stop
    still happen.
    """
    with tempfile.TemporaryDirectory(prefix="rayzig-bench-", dir=_state_dir()) as tmp:
        bus = ObservedBus(BUS_NUMBER, timing=BusTiming(clock_hz, sleep=sleep))
        gw = GatewayThread(
            Path(tmp) / "gw.json",
            module_count=module_count,
            scrypt_n=SCRYPT_N,
            i2c=bus,
            i2c_address=ADDRESS,
            hop_latency=hop_latency,
        )
        gw.i2c_device = ObservedDevice(ADDRESS, bus)
        with bus.installed():
            gw.start()
            if not save_changes:
                gw.call(lambda gateway: setattr(gateway, "on_dirty", _no_save))
            try:
                yield gw, bus
            finally:
                gw.stop()


def _no_save() -> None:
    """The gateway's on_dirty hook when changes are not saved as they happen."""


async def pair(gw: GatewayThread) -> ClientCredentials:
    """Leave factory state and pair a client key (over loopback TCP: set-up, not measured)."""
    gw.setup_owner(OWNER_PASSWORD, user=OWNER)
    client = RayzigClient(TcpConnector("127.0.0.1", gw.port))
    try:
        identity = await client.identify()
        return await client.pair(identity, OWNER, OWNER_PASSWORD)
    finally:
        await client.close()


async def i2c_client(
    credentials: ClientCredentials, *, clock_hz: int = CLOCK_HZ, **options: Any
) -> RayzigClient:
    """A connected client on the benchmark bus through I2CConnector (library defaults)."""
    connector = I2CConnector(BUS_NUMBER, ADDRESS, clock_hz=clock_hz, **options)
    client = RayzigClient(connector, credentials)
    await client.connect()
    return client


async def settle(bus: ObservedBus, *, quiet: float = 0.3, timeout: float = 30.0) -> None:
    """Wait until only IDLE polls cross the bus for ``quiet`` seconds (notifications drained)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = bus.ledger()
    since = loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        now = bus.ledger()
        if (now - last).count("put", "get", "status_ready", "hello"):
            since = loop.time()
        last = now
        if loop.time() - since >= quiet:
            return


# --- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution of a sample."""

    n: int
    mean: float
    stdev: float
    minimum: float
    p50: float
    p90: float
    p99: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Summarise ``values`` (at least one)."""
        return cls(
            len(values),
            statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else 0.0,
            min(values),
            percentile(values, 50),
            percentile(values, 90),
            percentile(values, 99),
            max(values),
        )

    def ms(self) -> str:
        """One line in milliseconds."""
        return (
            f"mean {self.mean * 1e3:.2f} ± {self.stdev * 1e3:.2f}  p50 {self.p50 * 1e3:.2f}  "
            f"p90 {self.p90 * 1e3:.2f}  p99 {self.p99 * 1e3:.2f}  "
            f"[{self.minimum * 1e3:.2f} .. {self.maximum * 1e3:.2f}] ms  (n={self.n})"
        )


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table."""

    metric: str
    value: str
    target: str = "—"
    met: bool | None = None

    @property
    def verdict(self) -> str:
        """``met``, ``**missed**`` or ``—``."""
        if self.met is None:
            return "—"
        return "met" if self.met else "**missed**"


@dataclass(slots=True)
class BenchResult:
    """What one benchmark reports: its headline ratio, table rows and detail lines."""

    name: str
    title: str
    ratio: float
    ratio_text: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0
    """Wall-clock duration of the benchmark run (set-up included)."""

    def print(self) -> None:
        """Print the figures and the RATIO line."""
        print(f"== {self.title} ({self.name}) ==")
        for line in self.details:
            print(f"  {line}")
        for row in self.rows:
            target = f"  target {row.target}: {row.verdict}" if row.met is not None else ""
            print(f"  {row.metric}: {row.value}{target}")
        print(f"  RATIO {self.ratio:.3f}  {self.ratio_text}")
        print(f"  (ran {self.seconds:.1f} s)")


def machine_info() -> dict[str, str]:
    """The machine a run came from: CPU model, cores, Python, date, load."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "cpu": model,
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": load,
    }


def ceiling(clock_hz: int = CLOCK_HZ) -> float:
    """The payload ceiling of the bus: clock/9 bytes per second."""
    return clock_hz / 9
