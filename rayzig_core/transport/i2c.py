"""I2C transport (PROTOCOL.md §11): the SBC as I2C master of the gateway MCU, through smbus2.

Every blocking smbus2 call runs on one dedicated worker thread per transport (never on the event
loop), behind one fair (first come, first served) lock per bus number shared by every transport on
that bus, so transports on one bus take turns transaction by transaction. Each transport uses one
link channel (0..15, §11.2) of its gateway: several independent sessions (the bridge's TCP clients)
can share one gateway, a direct client uses channel 0. The worker drives an
:class:`~rayzig_core.protocol.link.I2CHostLink`: it sends queued frames, polls the gateway's
status (at ``poll_interval``, backing off to ~50 ms while idle; §11.10) and hands received frames
(responses and notifications) to :meth:`I2CTransport.receive`. After it sends a frame it expects an
answer: it polls every :data:`PROMPT_POLL` (0.2 ms), without back-off, until an answer (a frame not
flagged ``NOTIFY``, §11.3) has arrived for each frame sent or :data:`PROMPT_WINDOW` (50 ms) has
passed, then paces as before; notifications meanwhile do not end it. This is host policy only; the
link protocol is unchanged.

Each link transaction is one ``I2C_RDWR`` call: a write message, a repeated start and a read message
(§11.2). Bus errors (errno 121 NACK, 5 I/O, 16 busy, 110 timeout) are retried with exponential
back-off, resending identical bytes; after ``max_retries`` failures in a row the transport fails
with :class:`~rayzig_core.errors.TransportError`, as it does when the gateway reboots (§11.9).

smbus2 is imported only when a transport opens its bus (on the worker thread), so importing this
module, or building an :class:`I2CConnector`, stays cheap; the bus side (smbus2, its messages, the
fair per-bus lock) is in :mod:`.i2c_bus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rayzig_core.errors import (
    DeviceNotFoundError,
    DevicePermissionError,
    FrameError,
    TransportError,
)
from rayzig_core.protocol.frames import MAX_FRAME
from rayzig_core.protocol.link import (
    MAX_CHUNK,
    HostLinkStats,
    I2CHostLink,
    I2CLinkError,
    Op,
    Outcome,
    Transaction,
    check_channel,
)
from rayzig_core.transport.i2c_bus import (
    SMBusLike,
    SMBusMessages,
    bus_lock,
    import_smbus2,
)

RETRYABLE_ERRNOS = frozenset({121, errno.EIO, errno.EBUSY, 110})
"""EREMOTEIO (no ACK), EIO, EBUSY (bus busy / arbitration lost), ETIMEDOUT: retried."""
NACK_ERRNO = 121
MAX_IDLE_POLL = 0.05
"""Longest wait between status polls while nothing happens (seconds)."""
PROMPT_POLL = 0.0002
"""Wait between status polls while an answer is expected: after a frame was sent (seconds)."""
PROMPT_WINDOW = 0.05
"""How long after sending a frame the transport polls at :data:`PROMPT_POLL`, unless a frame
arrives first; then the usual ``poll_interval`` and idle back-off resume (seconds)."""
BACKOFF_BASE = 0.001
"""First back-off after a bus error; doubles with every further error in a row (seconds)."""
BACKOFF_MAX = 0.1
BUSY_TIMEOUT = 10.0
"""How long the gateway may answer BUSY without a break before the transport gives up (seconds)."""
HELLO_BUSY_TIMEOUT = 5.0
"""How long HELLO may be answered only by BUSY (or 0xFF) before connect gives up (seconds)."""
CLOSE_TIMEOUT = 5.0
MIN_ADDRESS = 0x08
MAX_ADDRESS = 0x77


class WorkerClock:
    """The worker thread's time: the monotonic clock and a wait that a notify ends early.

    Every pacing decision of the worker (prompt window, back-off, BUSY deadlines) reads this clock,
    so a test can run the worker on a fake one and check the pacing without measuring real time.
    """

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        return time.monotonic()

    def wait(self, condition: threading.Condition, seconds: float) -> None:
        """Wait on ``condition`` (held by the caller) for at most ``seconds``."""
        condition.wait(seconds)


def describe(bus: int, address: int, channel: int = 0) -> str:
    """``i2c://<bus>/0x<address>``, with ``#<channel>`` for a channel other than 0."""
    suffix = f"#{channel}" if channel else ""
    return f"i2c://{bus}/0x{address:02x}{suffix}"


@dataclass(slots=True)
class I2CTransportStats:
    """Bus-level counters of one transport (link-level counters are in ``link_stats``)."""

    transactions: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    bus_errors: int = 0
    wire_seconds: float = 0.0
    """Estimated time on the wire at the configured clock: 9 clocks per byte incl. addresses."""


class I2CTransport:
    """One I2C link to a gateway, carrying frames (implements the Transport protocol)."""

    def __init__(
        self,
        *,
        bus: int,
        address: int,
        channel: int = 0,
        clock_hz: int,
        poll_interval: float,
        max_retries: int,
        smbus_factory: Callable[[int], SMBusLike] | None,
        loop: asyncio.AbstractEventLoop,
        clock: WorkerClock | None = None,
    ) -> None:
        self._bus_number = bus
        self._time = clock or WorkerClock()
        self._address = address
        self._clock_hz = clock_hz
        self._poll_interval = poll_interval
        self._max_retries = max_retries
        self._factory = smbus_factory
        self._messages: SMBusMessages | None = None
        """The transaction's two smbus2 messages, made when the worker opens the bus."""
        self._loop = loop
        self._channel = check_channel(channel)
        self._description = describe(bus, address, channel)
        self._where = f"I2C bus {bus}, address 0x{address:02x}" + (
            f", channel {channel}" if channel else ""
        )
        self._lock = bus_lock(bus)
        self._link = I2CHostLink(channel=channel, max_chunk=MAX_CHUNK, max_retries=max_retries)
        self.stats = I2CTransportStats()
        # Shared between the loop and the worker, guarded by _cond.
        self._cond = threading.Condition()
        self._outbox: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self._stopping = False
        self._dead = False
        # Written by the worker, read by the loop (single assignments).
        self._error: TransportError | None = None
        # Loop side only.
        self._inbox: asyncio.Queue[bytes | TransportError] = asyncio.Queue()
        self._ready: asyncio.Future[None] = loop.create_future()
        self._stopped: asyncio.Future[None] = loop.create_future()
        self._closed = False
        # Worker side only.
        self._waiters: deque[asyncio.Future[None]] = deque()
        thread_name = f"rayzig-i2c-{bus}-0x{address:02x}" + (f"#{channel}" if channel else "")
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    # --- Transport protocol ---------------------------------------------------------------

    @property
    def description(self) -> str:
        """``i2c://<bus>/0x<address>`` (``#<channel>`` appended for a channel other than 0)."""
        return self._description

    @property
    def channel(self) -> int:
        """The link channel this transport uses (§11.2)."""
        return self._channel

    @property
    def link_stats(self) -> HostLinkStats:
        """Counters of the link layer (retransmissions, busy answers, duplicates...)."""
        return self._link.stats

    @property
    def chunk_size(self) -> int | None:
        """The negotiated chunk size (§11.4)."""
        return self._link.chunk_size

    async def send(self, frame: bytes) -> None:
        """Queue a frame and wait until the gateway has accepted all of its chunks."""
        if not 0 < len(frame) <= MAX_FRAME:
            raise FrameError(f"frame length {len(frame)} outside 1..{MAX_FRAME}")
        done: asyncio.Future[None] = self._loop.create_future()
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._closed or self._dead:
                raise TransportError(f"{self._where} ({self._description}): transport is closed")
            self._outbox.append((bytes(frame), done))
            self._cond.notify()
        await done

    async def receive(self) -> bytes:
        """Return the next frame from the gateway; TransportError when the link has ended."""
        item = await self._inbox.get()
        if isinstance(item, TransportError):
            self._inbox.put_nowait(item)  # every later call fails the same way
            raise item
        return item

    async def close(self) -> None:
        """Stop the worker, close the bus and join the thread."""
        if not self._closed:
            self._closed = True
            with self._cond:
                self._stopping = True
                self._cond.notify()
        if self._thread.ident is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stopped), CLOSE_TIMEOUT)
            self._thread.join(CLOSE_TIMEOUT)
        if self._error is None:
            self._inbox.put_nowait(
                TransportError(f"{self._where} ({self._description}): transport is closed")
            )

    # --- start-up (loop side) -------------------------------------------------------------

    async def _start(self) -> None:
        self._thread.start()
        try:
            await self._ready
        except BaseException:
            await self.close()
            raise

    # --- worker thread --------------------------------------------------------------------

    def _post(self, callback: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        bus: SMBusLike | None = None
        started = False
        try:
            bus = self._open()
            self._handshake(bus)
            started = True
            self._post(_resolve, self._ready, None)
            self._serve(bus)
        except TransportError as err:
            self._finish(err, started=started)
        except Exception as err:  # noqa: BLE001 - anything else still ends the link cleanly
            wrapped = TransportError(f"{self._where}: unexpected failure: {err!r}")
            wrapped.__cause__ = err
            self._finish(wrapped, started=started)
        else:
            self._finish(None, started=started)
        finally:
            if bus is not None:
                with contextlib.suppress(OSError):
                    bus.close()
            self._post(_resolve, self._stopped, None)

    def _finish(self, error: TransportError | None, *, started: bool) -> None:
        """Fail everything still waiting (with ``error``, or 'closed')."""
        if error is not None:
            self._error = error
            if not started:
                self._post(_resolve, self._ready, error)
            self._post(self._inbox.put_nowait, error)
        failure = error or TransportError(f"{self._where} ({self._description}): closed")
        with self._cond:
            self._dead = True
            pending = [done for _, done in self._outbox]
            self._outbox.clear()
        for done in [*self._waiters, *pending]:
            self._post(_resolve, done, failure)
        self._waiters.clear()
        if not started and error is None:
            self._post(_resolve, self._ready, failure)

    def _open(self) -> SMBusLike:
        path = f"/dev/i2c-{self._bus_number}"
        smbus = import_smbus2()
        self._messages = SMBusMessages(smbus, self._address)
        factory = self._factory if self._factory is not None else smbus.SMBus
        try:
            return factory(self._bus_number)
        except FileNotFoundError as err:
            raise DeviceNotFoundError(
                f"I2C bus {self._bus_number} not found ({path} does not exist) while opening the "
                f"gateway at address 0x{self._address:02x}: enable I2C (sudo raspi-config -> "
                "Interface Options -> I2C, or dtparam=i2c_arm=on in config.txt, then reboot) and "
                "check the bus number (ls /dev/i2c-*)."
            ) from err
        except PermissionError as err:
            raise DevicePermissionError(
                f"Permission denied opening {path} for the gateway at address "
                f"0x{self._address:02x} on I2C bus {self._bus_number}: add the user to the i2c "
                "group (sudo usermod -aG i2c $USER, then log in again), or on Home Assistant OS / "
                f"in a container expose {path} to the container."
            ) from err
        except OSError as err:
            raise TransportError(f"Cannot open {path} for {self._where}: {err}") from err

    def _execute(self, bus: SMBusLike, tx: Transaction) -> bytes:
        """Run one transaction: write, repeated start, read (§11.2)."""
        messages = self._messages
        assert messages is not None, "the bus is opened first"
        written = len(tx.write)
        read_len = tx.read_len
        messages.load(tx.write, read_len)
        stats = self.stats
        stats.transactions += 1
        stats.wire_seconds += 9 * (written + read_len + 2) / self._clock_hz
        with self._lock:
            bus.i2c_rdwr(messages.write, messages.read)
        stats.bytes_written += written
        stats.bytes_read += read_len
        return messages.reply(read_len)

    def _attempt(self, bus: SMBusLike, tx: Transaction) -> bytes | None:
        """Perform ``tx``; None after a retryable bus error (already reported to the link)."""
        try:
            return self._execute(bus, tx)
        except OSError as err:
            if err.errno not in RETRYABLE_ERRNOS:
                raise TransportError(f"I2C transfer failed on {self._where}: {err}") from err
            self.stats.bus_errors += 1
            self._link.handle_failure(tx, f"errno {err.errno} ({err.strerror or err})")
            failures = self._link.consecutive_failures
            self._wait(min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_MAX))
            return None

    def _wait(self, seconds: float, *, wake_on_send: bool = False) -> None:
        """Sleep, waking early on close (and on a new frame to send if asked)."""
        clock = self._time
        deadline = clock.now() + seconds
        with self._cond:
            while not self._stopping and not (wake_on_send and self._outbox):
                remaining = deadline - clock.now()
                if remaining <= 0:
                    break
                clock.wait(self._cond, remaining)

    def _handshake(self, bus: SMBusLike) -> None:
        """HELLO until the link is up (§11.4); the first probe tells whether anything answers."""
        last_errno: int | None = None
        busy_since: float | None = None
        while not self._link.linked:
            if self._stopping:
                raise TransportError(f"{self._where}: closed while connecting")
            tx = self._link.next_transaction()
            try:
                try:
                    reply = self._execute(bus, tx)
                except OSError as err:
                    if err.errno not in RETRYABLE_ERRNOS:
                        raise TransportError(
                            f"I2C transfer failed on {self._where}: {err}"
                        ) from err
                    last_errno = err.errno
                    self._link.handle_failure(tx, f"errno {err.errno}")
                    self._wait(BACKOFF_BASE * 2 ** (self._link.consecutive_failures - 1))
                    continue
                last_errno = None
                if self._link.handle_reply(tx, reply) is Outcome.BUSY:
                    now = self._time.now()
                    busy_since = busy_since if busy_since is not None else now
                    if now - busy_since > HELLO_BUSY_TIMEOUT:
                        raise TransportError(
                            f"The device at address 0x{self._address:02x} on I2C bus "
                            f"{self._bus_number} only answers BUSY: the gateway may still be "
                            "starting, or this is not a Rayzig gateway."
                        )
                    self._wait(self._poll_interval)
                else:
                    busy_since = None
            except I2CLinkError as err:
                if last_errno == NACK_ERRNO:
                    raise DeviceNotFoundError(
                        f"No I2C device answers at address 0x{self._address:02x} on bus "
                        f"{self._bus_number} (/dev/i2c-{self._bus_number}): check the wiring, "
                        f"power and address; `i2cdetect -y {self._bus_number}` lists the "
                        "addresses that answer."
                    ) from err
                raise TransportError(
                    f"The device at address 0x{self._address:02x} on I2C bus "
                    f"{self._bus_number} does not answer as a Rayzig gateway: {err}"
                ) from err

    def _serve(self, bus: SMBusLike) -> None:
        """Send, poll and receive until closed or failed."""
        link = self._link
        delay = self._poll_interval
        busy_since: float | None = None
        sent = link.frames_sent
        answered = link.answers_received
        # Prompt polling (PROMPT_POLL) until this time, while frames sent outnumber answers seen.
        prompt_until = 0.0
        awaiting = 0
        try:
            while True:
                # Unlocked reads of a flag and a deque's length are atomic; the loop side sets
                # them under the lock, and a frame queued just after this look waits one turn.
                if self._stopping:
                    return
                if self._outbox:
                    with self._cond:
                        while self._outbox:
                            frame, done = self._outbox.popleft()
                            link.send(frame)
                            self._waiters.append(done)
                tx = link.next_transaction()
                if tx.poll:
                    idle_poll = tx.op is Op.STATUS
                    prompt = idle_poll and awaiting > 0 and self._time.now() < prompt_until
                    prompt_wait = min(PROMPT_POLL, self._poll_interval)
                    wait = prompt_wait if prompt else delay if idle_poll else self._poll_interval
                    self._wait(wait, wake_on_send=idle_poll)
                    if self._stopping:
                        return
                    if idle_poll and self._outbox:
                        continue  # something to send: do that instead of polling
                reply = self._attempt(bus, tx)
                if reply is None:
                    continue
                outcome = link.handle_reply(tx, reply)
                for frame in link.take_frames():
                    self._post(self._inbox.put_nowait, frame)
                if answered != link.answers_received:  # notifications do not answer anything
                    awaiting = max(0, awaiting - (link.answers_received - answered))
                    answered = link.answers_received
                while sent < link.frames_sent:
                    sent += 1
                    awaiting += 1
                    prompt_until = self._time.now() + PROMPT_WINDOW
                    self._post(_resolve, self._waiters.popleft(), None)
                if outcome is Outcome.BUSY:
                    now = self._time.now()
                    busy_since = busy_since if busy_since is not None else now
                    if now - busy_since > BUSY_TIMEOUT:
                        raise TransportError(
                            f"The gateway at {self._where} stayed busy for more than "
                            f"{BUSY_TIMEOUT:.0f} s"
                        )
                    continue
                busy_since = None
                if outcome is Outcome.IDLE:
                    if awaiting and self._time.now() < prompt_until:
                        delay = self._poll_interval  # back-off starts when the window ends
                    else:
                        awaiting = 0
                        delay = min(delay * 2, MAX_IDLE_POLL)
                elif outcome is Outcome.PROGRESS:
                    delay = self._poll_interval
        except I2CLinkError as err:
            raise type(err)(f"{self._where} ({self._description}): {err}") from err


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class I2CConnector:
    """Opens I2C transports to a gateway at ``address`` on ``/dev/i2c-<bus>`` (PROTOCOL.md §11).

    ``channel`` (0..15) is the link channel (§11.2): every transport of one connector uses it, and
    two transports open at the same time on the same gateway need different channels (a HELLO on a
    channel ends the session that used it). A direct client uses 0; the network bridge gives each
    TCP client its own. ``clock_hz`` is the bus clock the kernel was configured with
    (``dtparam=i2c_arm_baudrate``; user space cannot set it); it only feeds the wire-time estimate
    in the transport's stats. ``smbus_factory`` opens a bus number (default ``smbus2.SMBus``,
    imported when the first transport opens its bus). ``clock`` is the worker's time (tests give
    a fake :class:`WorkerClock`).
    """

    def __init__(
        self,
        bus: int,
        address: int,
        *,
        channel: int = 0,
        clock_hz: int = 400_000,
        poll_interval: float = 0.002,
        max_retries: int = 5,
        smbus_factory: Callable[[int], SMBusLike] | None = None,
        clock: WorkerClock | None = None,
    ) -> None:
        if bus < 0:
            raise ValueError(f"I2C bus number must be >= 0, not {bus}")
        if not MIN_ADDRESS <= address <= MAX_ADDRESS:
            raise ValueError(
                f"I2C address 0x{address:02x} outside the usable 7-bit range "
                f"0x{MIN_ADDRESS:02x}..0x{MAX_ADDRESS:02x}"
            )
        if clock_hz <= 0 or poll_interval <= 0 or max_retries < 0:
            raise ValueError("clock_hz and poll_interval must be > 0 and max_retries >= 0")
        self.bus = bus
        self.address = address
        self.channel = check_channel(channel)
        self.clock_hz = clock_hz
        self.poll_interval = poll_interval
        self.max_retries = max_retries
        self.smbus_factory = smbus_factory
        self.clock = clock

    @property
    def description(self) -> str:
        """``i2c://<bus>/0x<address>``, or ``i2c://<bus>/0x<address>#<channel>`` (channel ≠ 0)."""
        return describe(self.bus, self.address, self.channel)

    async def connect(self) -> I2CTransport:
        """Open the bus, negotiate the link (HELLO) and start the worker thread.

        Raises DeviceNotFoundError (no /dev/i2c-N, or nothing answers at the address),
        DevicePermissionError (no access to /dev/i2c-N) or TransportError.
        """
        transport = I2CTransport(
            bus=self.bus,
            address=self.address,
            channel=self.channel,
            clock_hz=self.clock_hz,
            poll_interval=self.poll_interval,
            max_retries=self.max_retries,
            smbus_factory=self.smbus_factory,
            loop=asyncio.get_running_loop(),
            clock=self.clock,
        )
        await transport._start()
        return transport
