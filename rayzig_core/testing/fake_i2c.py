"""A fake Linux I2C kernel boundary for tests and demos (PROTOCOL.md §11).

smbus2's real ``SMBus`` / ``i2c_rdwr`` code runs unchanged; only the two names it takes from the
kernel are replaced while :func:`install_fake_i2c` (or :meth:`FakeI2CBus.installed`) is active:

* ``smbus2.smbus2.os`` becomes a shim whose ``open``/``close`` serve ``/dev/i2c-N`` from the
  installed :class:`FakeI2CBus` objects (every other path and attribute goes to the real ``os``);
* ``smbus2.smbus2.ioctl`` serves ``I2C_FUNCS``, ``I2C_SLAVE(_FORCE)``, ``I2C_PEC`` and
  ``I2C_RDWR`` on fake descriptors (real descriptors go to the real ``fcntl.ioctl``).

Nothing global outside smbus2 is touched. A :class:`FakeI2CBus` dispatches each ``I2C_RDWR``
message to the :class:`FakeI2CDevice` at its address (no device: ``OSError(121)``), models the wire
time (:class:`BusTiming`) and injects faults (:class:`FaultPlan`) at this boundary, where real
faults happen: flipped bits in transit, NACKs (errno 121), timeouts (errno 110) and a busy gateway.

Typical use (an echo gateway)::

    bus = FakeI2CBus(1, faults=FaultPlan(bit_flip_rate=0.01, nack_rate=0.01, seed=7))
    device = bus.add_device(FakeI2CDevice(0x42))
    device.attach(device.push_frame)            # every host frame comes straight back
    with bus.installed():
        transport = await I2CConnector(1, 0x42).connect()

A virtual gateway plugs in through :meth:`FakeI2CDevice.attach` (host→gateway frames, per link
channel) and :meth:`FakeI2CDevice.push_frame` (gateway→host frames, from any thread); see
:func:`rayzig_core.virtual_gateway.i2c.serve_on_fake_bus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import importlib
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rayzig_core.protocol.link import MAX_CHUNK, I2CSlaveLink

I2C_SLAVE = 0x0703
I2C_SLAVE_FORCE = 0x0706
I2C_FUNCS = 0x0705
I2C_RDWR = 0x0707
I2C_PEC = 0x0708
I2C_M_RD = 0x0001
I2C_FUNC_I2C = 0x00000001
I2C_RDWR_IOCTL_MAX_MSGS = 42
EREMOTEIO = 121
ETIMEDOUT = 110
FIRST_FAKE_FD = 10_000

OpenError = Literal["missing", "permission"]
"""Open faults of a bus: ``missing`` (FileNotFoundError) or ``permission`` (PermissionError)."""

_DEV_PATH = re.compile(r"/dev/i2c-(\d+)")


# --- timing ----------------------------------------------------------------------------------


class BusTiming:
    """Wire-time model of an I2C bus at ``clock_hz`` (see shared i2c.md).

    One transaction of messages with ``n_i`` data bytes costs
    ``(9 * sum(1 + n_i) + len(messages) + 1) / clock_hz + t_BUF`` seconds: 9 clocks per byte
    (8 bits + ACK), one address byte per message, about one clock for each (repeated) START and
    for the STOP, and the bus-free time t_BUF of the speed class (4.7 µs standard mode, 1.3 µs fast
    mode, 0.5 µs fast-mode plus). With ``sleep=True`` every transaction also takes that long in
    real time (oversleep is carried over and paid back, so long runs match the model).
    Totals accumulate in :attr:`transactions`, :attr:`bytes` (data bytes), :attr:`wire_bytes`
    (data + address bytes) and :attr:`seconds` (modelled).
    """

    MAX_CARRY = 0.005

    def __init__(self, clock_hz: int = 400_000, *, sleep: bool = False) -> None:
        if clock_hz <= 0:
            raise ValueError("clock_hz must be > 0")
        self.clock_hz = clock_hz
        self.sleep = sleep
        self._lock = threading.Lock()
        self._carry = 0.0
        self.transactions = 0
        self.bytes = 0
        self.wire_bytes = 0
        self.seconds = 0.0

    @property
    def bus_free_time(self) -> float:
        """Minimum idle time between a STOP and the next START (t_BUF), seconds."""
        if self.clock_hz <= 100_000:
            return 4.7e-6
        if self.clock_hz <= 400_000:
            return 1.3e-6
        return 0.5e-6

    def transaction_time(self, message_lengths: Sequence[int]) -> float:
        """Modelled seconds of one transaction with messages of these data lengths."""
        clocks = sum(9 * (1 + n) for n in message_lengths) + len(message_lengths) + 1
        return clocks / self.clock_hz + self.bus_free_time

    def record(self, message_lengths: Sequence[int]) -> float:
        """Account one transaction (and sleep its duration if asked); return its modelled time."""
        duration = self.transaction_time(message_lengths)
        with self._lock:
            self.transactions += 1
            self.bytes += sum(message_lengths)
            self.wire_bytes += sum(message_lengths) + len(message_lengths)
            self.seconds += duration
            if not self.sleep:
                return duration
            wanted = duration - self._carry
            if wanted <= 0:
                self._carry = -wanted
                return duration
        started = time.perf_counter()
        time.sleep(wanted)
        overslept = time.perf_counter() - started - wanted
        with self._lock:
            self._carry = min(max(overslept, 0.0), self.MAX_CARRY)
        return duration

    def reset(self) -> None:
        """Zero the totals."""
        with self._lock:
            self.transactions = self.bytes = self.wire_bytes = 0
            self.seconds = self._carry = 0.0


# --- faults ----------------------------------------------------------------------------------


@dataclass(slots=True)
class FaultCounts:
    """Faults a :class:`FaultPlan` actually injected."""

    transactions: int = 0
    bit_flips: int = 0
    nacks: int = 0
    timeouts: int = 0
    busy: int = 0

    @property
    def total(self) -> int:
        """All injected faults."""
        return self.bit_flips + self.nacks + self.timeouts + self.busy


class FaultPlan:
    """Random faults applied per ``I2C_RDWR`` transaction at the fake kernel boundary.

    Each rate is a per-transaction probability; at most one fault hits a transaction (so the
    rates must add up to at most 1). Seeded, hence reproducible for a given sequence of calls.

    * ``bit_flip_rate`` — one random bit of one message is flipped in transit (the link's CRC
      must catch it);
    * ``nack_rate`` — the transfer stops at a random message with ``OSError(121)``: earlier
      messages were delivered, a write cut short delivers a random prefix;
    * ``timeout_rate`` — the slave sees the whole transaction but the host gets
      ``OSError(110)`` (its reply is lost);
    * ``busy_rate`` — the slave is busy: it ignores the write and answers BUSY.

    Rates are attributes and may be changed while running. :attr:`injected` counts what was done.
    """

    def __init__(
        self,
        bit_flip_rate: float = 0.0,
        nack_rate: float = 0.0,
        busy_rate: float = 0.0,
        timeout_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.bit_flip_rate = bit_flip_rate
        self.nack_rate = nack_rate
        self.busy_rate = busy_rate
        self.timeout_rate = timeout_rate
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self.injected = FaultCounts()
        self._check()

    def _check(self) -> None:
        rates = (self.bit_flip_rate, self.nack_rate, self.busy_rate, self.timeout_rate)
        if any(rate < 0 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")

    def draw(self) -> Literal["flip", "nack", "busy", "timeout"] | None:
        """Pick the fault (if any) for the next transaction."""
        self._check()
        self.injected.transactions += 1
        roll = self.rng.random()
        for kind, rate in (
            ("nack", self.nack_rate),
            ("timeout", self.timeout_rate),
            ("busy", self.busy_rate),
            ("flip", self.bit_flip_rate),
        ):
            if roll < rate:
                return kind  # type: ignore[return-value]
            roll -= rate
        return None


# --- device ----------------------------------------------------------------------------------


class FakeI2CDevice:
    """A gateway MCU on the fake bus: an :class:`I2CSlaveLink` plus a frame handler.

    Every callback and method takes the link channel (0..15, PROTOCOL.md §11.2) it concerns:

    * :meth:`attach` — ``on_frame(channel, frame)`` receives every complete host→gateway frame;
      ``on_connect(channel)`` is called when a host (re)starts that channel's link with HELLO
      (drop the channel's session: frames queued for its previous link were discarded). Both run
      in the thread that performed the I2C transaction (a host transport's worker), after the
      transaction, outside every lock, in bus order; pass ``loop`` to have them scheduled on that
      event loop instead (in the same order). Never block in them.
    * :meth:`push_frame` — queue a gateway→host frame; thread-safe, callable from ``on_frame``.
    * :meth:`close_channel` — the gateway ended a channel's session; its host reconnects once it
      has read what was queued.
    * :meth:`reboot` — what a real MCU reset does: every channel's link state, queues and partial
      frames are lost and the link epoch (boot counter) goes up, so every host sees a
      TransportError.

    Without a handler attached, received frames collect for :meth:`frames_received`.
    """

    def __init__(self, address: int, *, max_chunk: int = MAX_CHUNK, epoch: int = 1) -> None:
        self._address = address
        self._max_chunk = max_chunk
        self._lock = threading.RLock()
        self._deliver_lock = threading.Lock()
        self._events: list[tuple[int, bytes | None]] = []  # (channel, frame); None = HELLO
        self._unclaimed: dict[int, list[bytes]] = {}
        self._on_frame: Callable[[int, bytes], None] | None = None
        self._on_connect: Callable[[int], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reboots = 0
        self.connects = 0
        self.busy = False
        """While true the MCU answers every transaction BUSY (survives :meth:`reboot`)."""
        self._link = self._new_link(epoch)

    def _new_link(self, epoch: int) -> I2CSlaveLink:
        return I2CSlaveLink(
            max_chunk=self._max_chunk,
            epoch=epoch,
            on_frame=self._received,
            on_connect=self._connected,
        )

    def _received(self, channel: int, frame: bytes) -> None:
        self._events.append((channel, frame))

    def _connected(self, channel: int) -> None:
        self.connects += 1
        self._events.append((channel, None))

    @property
    def address(self) -> int:
        """7-bit I2C address."""
        return self._address

    @property
    def link(self) -> I2CSlaveLink:
        """The current slave link (replaced by :meth:`reboot`); for inspection."""
        return self._link

    @property
    def epoch(self) -> int:
        """The current link epoch."""
        return self._link.epoch

    def attach(
        self,
        on_frame: Callable[[int, bytes], None],
        *,
        on_connect: Callable[[int], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Route host→gateway frames to ``on_frame`` (and link restarts to ``on_connect``)."""
        with self._lock:
            self._on_frame = on_frame
            self._on_connect = on_connect
            self._loop = loop

    def detach(self) -> None:
        """Stop routing; later frames collect for :meth:`frames_received`."""
        with self._lock:
            self._on_frame = self._on_connect = None
            self._loop = None

    def push_frame(self, channel: int, frame: bytes, *, notify: bool = False) -> None:
        """Queue a gateway→host frame on ``channel`` (``notify``: unsolicited); thread-safe.

        Dropped when the channel has no live link (see :meth:`I2CSlaveLink.push_frame`).
        """
        with self._lock:
            self._link.push_frame(channel, frame, notify=notify)

    def close_channel(self, channel: int) -> None:
        """End ``channel``'s link once its queued frames are read; thread-safe."""
        with self._lock:
            self._link.close_channel(channel)

    def frames_received(self, channel: int = 0) -> list[bytes]:
        """Return (and forget) frames of ``channel`` that arrived while no handler was attached."""
        with self._lock:
            return self._unclaimed.pop(channel, [])

    def reboot(self) -> None:
        """Reset the MCU: new link epoch, every channel down, every queued or partial frame lost."""
        with self._lock:
            self._link = self._new_link(self._link.epoch + 1)
            self._events.clear()
            self.reboots += 1

    # --- called by FakeI2CBus -------------------------------------------------------------

    def _write(self, data: bytes, *, busy: bool) -> None:
        with self._lock:
            self._link.busy = busy or self.busy
            try:
                self._link.handle_write(data)
            finally:
                self._link.busy = False

    def _read(self, length: int, *, busy: bool) -> bytes:
        with self._lock:
            self._link.busy = busy or self.busy
            try:
                return self._link.handle_read(length)
            finally:
                self._link.busy = False

    def _deliver(self) -> None:
        """Hand what the last transaction completed to the application, outside the lock."""
        with self._deliver_lock:
            with self._lock:
                events, self._events[:] = list(self._events), []
                on_frame, on_connect, loop = self._on_frame, self._on_connect, self._loop
            for channel, frame in events:
                if frame is None:
                    if on_connect is not None:
                        _call(loop, on_connect, channel)
                elif on_frame is not None:
                    _call(loop, on_frame, channel, frame)
                else:
                    with self._lock:
                        self._unclaimed.setdefault(channel, []).append(frame)


def _call(loop: asyncio.AbstractEventLoop | None, func: Callable[..., None], *args: Any) -> None:
    if loop is None:
        func(*args)
    else:
        with contextlib.suppress(RuntimeError):  # loop closed
            loop.call_soon_threadsafe(func, *args)


# --- bus -------------------------------------------------------------------------------------


class FakeI2CBus:
    """``/dev/i2c-<number>`` as the fake kernel serves it.

    ``open_error`` (attribute, may change at any time) makes opening fail: ``"missing"`` raises
    FileNotFoundError (no such bus), ``"permission"`` PermissionError. ``timing`` and ``faults``
    are optional :class:`BusTiming` / :class:`FaultPlan` objects applied to every ``I2C_RDWR``.
    """

    def __init__(
        self,
        number: int = 1,
        *,
        timing: BusTiming | None = None,
        faults: FaultPlan | None = None,
        open_error: OpenError | None = None,
    ) -> None:
        self.number = number
        self.timing = timing
        self.faults = faults
        self.open_error: OpenError | None = open_error
        self.transactions = 0
        self.opens = 0
        self._lock = threading.Lock()
        self._devices: dict[int, FakeI2CDevice] = {}

    def add_device(self, device: FakeI2CDevice) -> FakeI2CDevice:
        """Put a device on the bus at its address; return it."""
        with self._lock:
            if device.address in self._devices:
                raise ValueError(
                    f"address 0x{device.address:02x} already used on bus {self.number}"
                )
            self._devices[device.address] = device
        return device

    def remove_device(self, address: int) -> None:
        """Take the device at ``address`` off the bus (it then NACKs, errno 121)."""
        with self._lock:
            self._devices.pop(address, None)

    def device(self, address: int) -> FakeI2CDevice:
        """Return the device at ``address``."""
        return self._devices[address]

    @contextlib.contextmanager
    def installed(self) -> Iterator[FakeI2CBus]:
        """Serve this bus to smbus2 for the duration of the ``with`` block."""
        with install_fake_i2c(self):
            yield self

    # --- kernel side ----------------------------------------------------------------------

    def _ioctl(self, request: int, arg: Any) -> int:
        if request == I2C_FUNCS:
            arg.value = I2C_FUNC_I2C
            return 0
        if request in (I2C_SLAVE, I2C_SLAVE_FORCE, I2C_PEC):
            return 0
        if request == I2C_RDWR:
            self._rdwr(arg)
            return 0
        raise OSError(errno.EOPNOTSUPP, f"fake I2C kernel: ioctl 0x{request:04x} not modelled")

    def _rdwr(self, arg: Any) -> None:
        count = int(arg.nmsgs)
        if not 0 < count <= I2C_RDWR_IOCTL_MAX_MSGS:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        messages = [arg.msgs[i] for i in range(count)]
        touched: list[FakeI2CDevice] = []
        try:
            with self._lock:
                self._transfer(messages, touched)
        finally:
            for device in touched:
                device._deliver()

    def _transfer(self, messages: list[Any], touched: list[FakeI2CDevice]) -> None:
        self.transactions += 1
        if self.timing is not None:
            self.timing.record([int(message.len) for message in messages])
        plan = self.faults
        fault = plan.draw() if plan is not None else None
        rng = plan.rng if plan is not None else random
        nack_at = rng.randrange(len(messages)) if fault == "nack" else -1
        flip_at = rng.randrange(len(messages)) if fault == "flip" else -1
        busy = fault == "busy"
        for index, message in enumerate(messages):
            device = self._devices.get(int(message.addr))
            if device is None:
                raise OSError(EREMOTEIO, os.strerror(EREMOTEIO))
            if device not in touched:
                touched.append(device)
            length = int(message.len)
            reading = bool(message.flags & I2C_M_RD)
            if index == nack_at:
                assert plan is not None
                plan.injected.nacks += 1
                if not reading and length > 1:
                    cut = rng.randrange(length)
                    if cut:
                        device._write(ctypes.string_at(message.buf, cut), busy=False)
                raise OSError(EREMOTEIO, os.strerror(EREMOTEIO))
            if reading:
                data = bytearray(device._read(length, busy=busy))
            else:
                data = bytearray(ctypes.string_at(message.buf, length))
            if index == flip_at and length:
                assert plan is not None
                bit = rng.randrange(8 * length)
                data[bit // 8] ^= 1 << (bit % 8)
                plan.injected.bit_flips += 1
            if reading:
                ctypes.memmove(message.buf, bytes(data), length)
            else:
                device._write(bytes(data), busy=busy)
        if busy:
            assert plan is not None
            plan.injected.busy += 1
        if fault == "timeout":
            assert plan is not None
            plan.injected.timeouts += 1
            raise OSError(ETIMEDOUT, os.strerror(ETIMEDOUT))


# --- the patched kernel boundary -------------------------------------------------------------


class _OsShim:
    """Stands in for the ``os`` module inside smbus2: fake ``/dev/i2c-N``, real everything else."""

    def __init__(self, kernel: _FakeKernel) -> None:
        self._kernel = kernel

    def open(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        return self._kernel.open(path, flags, mode, dir_fd=dir_fd)

    def close(self, fd: int) -> None:
        self._kernel.close(fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


class _FakeKernel:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buses: dict[int, FakeI2CBus] = {}
        self._fds: dict[int, FakeI2CBus] = {}
        self._next_fd = FIRST_FAKE_FD
        self._depth = 0
        self._saved: tuple[Any, Any] | None = None

    def install(self, buses: Sequence[FakeI2CBus]) -> None:
        with self._lock:
            for bus in buses:
                other = self._buses.get(bus.number)
                if other is not None and other is not bus:
                    raise ValueError(f"another fake bus {bus.number} is already installed")
            for bus in buses:
                self._buses[bus.number] = bus
            self._depth += 1
            if self._depth == 1:
                module = importlib.import_module("smbus2.smbus2")
                namespace = vars(module)
                self._saved = (namespace["os"], namespace["ioctl"])
                namespace["os"] = _OsShim(self)
                namespace["ioctl"] = self.ioctl

    def uninstall(self, buses: Sequence[FakeI2CBus]) -> None:
        with self._lock:
            for bus in buses:
                if self._buses.get(bus.number) is bus:
                    del self._buses[bus.number]
            self._depth -= 1
            if self._depth == 0 and self._saved is not None:
                namespace = vars(importlib.import_module("smbus2.smbus2"))
                namespace["os"], namespace["ioctl"] = self._saved
                self._saved = None
                self._fds.clear()

    def open(self, path: Any, flags: int, mode: int, *, dir_fd: int | None) -> int:
        match = _DEV_PATH.fullmatch(os.fsdecode(path)) if isinstance(path, str | bytes) else None
        if match is None:
            return os.open(path, flags, mode, dir_fd=dir_fd)
        with self._lock:
            bus = self._buses.get(int(match[1]))
            if bus is None or bus.open_error == "missing":
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            if bus.open_error == "permission":
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            fd = self._next_fd
            self._next_fd += 1
            self._fds[fd] = bus
            bus.opens += 1
            return fd

    def close(self, fd: int) -> None:
        with self._lock:
            bus = self._fds.pop(fd, None)
        if bus is None:
            os.close(fd)

    def ioctl(self, fd: int, request: int, arg: Any = 0, mutate_flag: bool = True) -> Any:
        with self._lock:
            bus = self._fds.get(fd)
        if bus is None:
            return fcntl.ioctl(fd, request, arg, mutate_flag)
        return bus._ioctl(request, arg)

    @property
    def open_fds(self) -> int:
        with self._lock:
            return len(self._fds)


_KERNEL = _FakeKernel()


@contextlib.contextmanager
def install_fake_i2c(*buses: FakeI2CBus) -> Iterator[None]:
    """Serve these fake buses to smbus2 (``/dev/i2c-<number>``) inside the ``with`` block.

    While installed, opening any other ``/dev/i2c-N`` raises FileNotFoundError. Installs nest;
    the smbus2 names are restored when the outermost one ends. Close every transport first.
    """
    _KERNEL.install(buses)
    try:
        yield
    finally:
        _KERNEL.uninstall(buses)


def fake_open_descriptors() -> int:
    """Fake ``/dev/i2c-N`` descriptors currently open (0 once every SMBus was closed)."""
    return _KERNEL.open_fds
