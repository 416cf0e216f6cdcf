"""The I2C bus side of the transport (PROTOCOL.md §11.12): smbus2, its messages, the fair bus lock.

smbus2 is imported only when a transport opens its bus (:func:`import_smbus2`, on the transport's
worker thread), so importing the transport or building a connector stays cheap. Every transaction
is two smbus2 messages made once (:class:`SMBusMessages`), and holds the one :class:`FairLock` of
its bus (:func:`bus_lock`), shared by every transport on that bus.
"""

from __future__ import annotations

import threading
from collections import deque
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from rayzig_core.errors import RayzigInternalError, TransportError
from rayzig_core.protocol.link import MAX_CHUNK

if TYPE_CHECKING:
    import smbus2


class SMBusLike(Protocol):
    """What the transport needs of an ``smbus2.SMBus``."""

    def i2c_rdwr(self, *i2c_msgs: Any) -> None:
        """Perform one combined transaction."""
        ...

    def close(self) -> None:
        """Close the bus file descriptor."""
        ...


class FairLock:
    """A first-come-first-served lock: waiting threads get it in the order they asked.

    ``threading.Lock`` makes no promise of order: a worker that releases it and asks again at once
    usually gets it back, starving the other transports on the bus. Here a release hands the lock
    straight to the longest waiter (each waits on a lock of its own), so nobody can barge in; an
    uncontended acquire or release is one short critical section. Not reentrant, no timeout.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        """Take the lock, or queue and wait until it is handed over."""
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder that hands the lock to this thread

    def release(self) -> None:
        """Hand the lock to the longest waiter, or free it."""
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of an unlocked FairLock")
            if self._waiters:
                self._waiters.popleft().release()  # still held: it now belongs to that waiter
            else:
                self._held = False

    def locked(self) -> bool:
        """Whether a thread holds the lock."""
        return self._held

    @property
    def waiting(self) -> int:
        """Threads queued for the lock."""
        return len(self._waiters)

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_REGISTRY_LOCK = threading.Lock()
_BUS_LOCKS: dict[int, FairLock] = {}


def bus_lock(bus: int) -> FairLock:
    """Return the one fair lock every transport on I2C bus ``bus`` holds around each transaction."""
    with _REGISTRY_LOCK:
        lock = _BUS_LOCKS.get(bus)
        if lock is None:
            lock = _BUS_LOCKS[bus] = FairLock()
        return lock


class SMBusMessages:
    """The write and the read message of every transaction, made once with smbus2 (§11.2).

    Each message keeps a buffer of the largest chunk; a transaction copies its write into the
    write buffer and sets both lengths, then smbus2's ``SMBus.i2c_rdwr`` runs as ever. This saves
    making two messages and their buffers for every transaction, the hot path of a bulk read. The
    bytes move through memoryviews: ``ctypes.memmove`` would release and retake the GIL each time.
    """

    __slots__ = ("_read_view", "_write_view", "read", "write")

    def __init__(self, smbus: ModuleType, address: int) -> None:
        import ctypes  # noqa: PLC0415 - loaded with smbus2 (which needs it), when a bus opens

        write_buffer = ctypes.create_string_buffer(MAX_CHUNK)
        read_buffer = ctypes.create_string_buffer(MAX_CHUNK)
        read_flags = smbus.i2c_msg.read(address, 1).flags  # smbus2 knows the read flag (I2C_M_RD)
        self.write: smbus2.i2c_msg = smbus.i2c_msg(addr=address, flags=0, len=0, buf=write_buffer)
        self.read: smbus2.i2c_msg = smbus.i2c_msg(
            addr=address, flags=read_flags, len=0, buf=read_buffer
        )
        self._write_view = memoryview(write_buffer).cast("B")
        self._read_view = memoryview(read_buffer).cast("B")

    def load(self, write: bytes, read_len: int) -> None:
        """Set up the next transaction: ``write``, then a read of ``read_len`` bytes."""
        if len(write) > MAX_CHUNK or read_len > MAX_CHUNK:  # the link never makes one
            raise RayzigInternalError("I2C transaction larger than the largest chunk")
        self._write_view[: len(write)] = write
        self.write.len = len(write)
        self.read.len = read_len

    def reply(self, read_len: int) -> bytes:
        """The bytes the last transaction read."""
        return self._read_view[:read_len].tobytes()


def import_smbus2() -> ModuleType:
    """smbus2, imported by the first transport that opens a bus (never at module import)."""
    try:
        import smbus2  # noqa: PLC0415 - loaded only where an I2C bus is actually opened
    except ImportError as err:
        raise TransportError(
            "The I2C transport needs the smbus2 package: install it (pip install smbus2)."
        ) from err
    return smbus2
