"""A gateway MCU on the fake I2C bus (PROTOCOL.md §11.13): an I2CSlaveLink plus a frame handler."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from rayzig_core.protocol.link import MAX_CHUNK, I2CSlaveLink


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
        if not self._events:  # most transactions complete nothing (appended by this thread)
            return
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
