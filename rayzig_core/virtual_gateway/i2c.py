"""The virtual gateway answering on a fake I2C bus (PROTOCOL.md §11.13), one session per channel.

:func:`serve_on_fake_bus` joins a :class:`~rayzig_core.virtual_gateway.VirtualGateway` to an
:class:`I2CSlaveDevice` (the fake kernel's ``FakeI2CDevice`` in ``rayzig_core.testing`` is one),
doing what the gateway firmware does with its I2C slave link:

* a HELLO on link channel ``c`` (a new host session, or the first one after a reboot) ends the
  channel's old :class:`~rayzig_core.virtual_gateway.device.connection.GatewayConnection` and
  attaches a fresh one, so every link starts with a fresh handshake and no key or nonce outlives it
  (§11.4, §11.9);
* host→gateway frames are handed to the channel's connection **on the gateway's event loop** (the
  device schedules them with ``call_soon_threadsafe``), in bus order;
* the connection's frames go back with ``device.push_frame(c, ...)``, flagged as notifications
  unless the connection sends them as answers (to a handshake message or a request, also one
  answered later, once its password check is done, §6.5), PROTOCOL.md §11.3; when the gateway closes
  the connection, the channel's link ends once its last frames are read (``close_channel``, §11.9);
* :meth:`I2CGatewayAdapter.reboot` is a gateway reset: ``device.reboot()``, every connection lost.

**Mesh hop latency.** A command that must reach a module (SetOutput, SetRestorePreset, GetTelemetry)
waits for the mesh: module ``m`` is :func:`~rayzig_core.virtual_gateway.site.mesh.hop_count`
``(m)`` hops away (1..4, fixed by its id) and each hop costs ``hop_latency`` seconds, by which the
adapter holds the response frame back (frames queued on the channel after it wait too, so the
session's frames keep their order). ``hop_latency`` is 0 unless asked for; the test harness and the
CLI use :data:`~rayzig_core.virtual_gateway.site.mesh.DEFAULT_HOP_LATENCY` when the bus has a
sleeping bus-timing model. Refused requests and retries answered from the replay cache do not reach
a module and are not delayed. The hops are counted in :attr:`I2CGatewayStats.mesh_hops` either way,
so the modelled mesh time of a run is ``mesh_hops * per-hop latency`` for any latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rayzig_core.protocol import messages as m
from rayzig_core.virtual_gateway.device.connection import GatewayConnection
from rayzig_core.virtual_gateway.device.gateway import VirtualGateway
from rayzig_core.virtual_gateway.site.mesh import hop_count

_LOGGER = logging.getLogger(__name__)

HANDSHAKE_LOG = 64
"""How many handshake starts :attr:`I2CGatewayAdapter.handshakes` keeps (most recent)."""

_MESH_REQUESTS = (m.SetOutput, m.SetRestorePreset, m.GetTelemetry)


class I2CSlaveDevice(Protocol):
    """The gateway MCU's I2C slave side, as the adapter drives it (PROTOCOL.md §11.13).

    Frames and link starts arrive per link channel (0..15, §11.2) through the callbacks given to
    :meth:`attach`; the adapter answers with :meth:`push_frame` and ends a channel's session with
    :meth:`close_channel`.
    """

    def attach(
        self,
        on_frame: Callable[[int, bytes], None],
        *,
        on_connect: Callable[[int], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Route host→gateway frames to ``on_frame`` and link starts (HELLO) to ``on_connect``."""

    def detach(self) -> None:
        """Stop routing frames to the adapter."""

    def push_frame(self, channel: int, frame: bytes, *, notify: bool = False) -> None:
        """Queue a gateway→host frame on ``channel`` (``notify``: unsolicited)."""

    def close_channel(self, channel: int) -> None:
        """End ``channel``'s link once its queued frames are read."""

    def reboot(self) -> None:
        """Reset the MCU: new link epoch, every channel down (§11.9)."""


@dataclass(slots=True)
class I2CGatewayStats:
    """What the adapter did (for tests, diagnostics and benchmarks)."""

    connections: int = 0
    """GatewayConnections attached: one per accepted HELLO."""
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    """Host frames for a channel without a connection (e.g. a stale frame after a reboot)."""
    closed_by_gateway: int = 0
    reboots: int = 0
    mesh_requests: int = 0
    mesh_hops: int = 0
    mesh_delay: float = 0.0
    """Seconds by which responses were actually held back (0 when ``hop_latency`` is 0)."""


class _Link:
    """One channel's session: its connection and its outbound frames in order."""

    __slots__ = ("channel", "closing", "connection", "delay", "frames", "outbox", "timer")

    def __init__(self, channel: int) -> None:
        self.channel = channel
        self.frames = 0
        self.connection: GatewayConnection | None = None
        self.outbox: deque[tuple[float, bytes, bool]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.delay = 0.0
        """Seconds the next answer waits for the mesh (set when its request is observed)."""
        self.closing = False

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.outbox.clear()


class I2CGatewayAdapter:
    """The virtual gateway's I2C slave side on a fake device (see the module docstring).

    Create it with :func:`serve_on_fake_bus`. Every method runs on the gateway's event loop.
    """

    def __init__(
        self,
        gateway: VirtualGateway,
        device: I2CSlaveDevice,
        loop: asyncio.AbstractEventLoop,
        *,
        hop_latency: float = 0.0,
    ) -> None:
        if hop_latency < 0:
            raise ValueError("hop_latency must be >= 0")
        self.gateway = gateway
        self.device = device
        self.hop_latency = hop_latency
        self.stats = I2CGatewayStats()
        self.handshakes: deque[tuple[int, bytes]] = deque(maxlen=HANDSHAKE_LOG)
        """(channel, first frame) of the latest connections: the handshake's first message,
        which carries the client's ephemeral key (§3.2)."""
        self._loop = loop
        self._links: dict[int, _Link] = {}
        self._started = False

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Attach to the device and the gateway."""
        if self._started:
            return
        self._started = True
        self.gateway.request_observers.append(self._observe)
        self.device.attach(self._frame, on_connect=self._connect, loop=self._loop)

    def close(self) -> None:
        """Stop serving: every channel's session ends (its host reconnects), the device detaches."""
        if not self._started:
            return
        for link in list(self._links.values()):
            if link.connection is not None:
                link.connection.close()
        self.device.detach()
        if self._observe in self.gateway.request_observers:
            self.gateway.request_observers.remove(self._observe)
        self._started = False

    def reboot(self) -> None:
        """Simulate a gateway reset: the MCU reboots (new epoch) and every session is lost."""
        self.device.reboot()
        for link in self._links.values():
            link.cancel()
            if link.connection is not None:
                link.connection.connection_lost()
        self._links.clear()
        self.stats.reboots += 1

    @property
    def connections(self) -> dict[int, GatewayConnection]:
        """Channel → the connection currently serving it."""
        return {
            channel: link.connection
            for channel, link in self._links.items()
            if link.connection is not None
        }

    # --- device events (on the loop) -------------------------------------------------------

    def _connect(self, channel: int) -> None:
        old = self._links.pop(channel, None)
        if old is not None:
            old.cancel()
            if old.connection is not None:
                # The HELLO already reset the channel: drop the session without ending the new link.
                old.connection.connection_lost()
        link = _Link(channel)
        self._links[channel] = link
        link.connection = self.gateway.attach(
            lambda frame, *, answer: self._send(link, frame, answer=answer),
            lambda: self._closed_by_gateway(link),
        )
        self.stats.connections += 1

    def _frame(self, channel: int, frame: bytes) -> None:
        link = self._links.get(channel)
        if link is None or link.connection is None:
            self.stats.frames_dropped += 1
            return
        self.stats.frames_in += 1
        link.frames += 1
        if link.frames == 1 and frame[:1] in (b"\x01", b"\x02"):  # HELLO_XX / HELLO_IK (§2.1)
            self.handshakes.append((channel, frame))
        connection = link.connection
        try:
            connection.frame_received(frame)
        except Exception:
            _LOGGER.exception("Unexpected error on I2C channel %d; closing its session", channel)
            connection.close()

    def _observe(
        self, connection: GatewayConnection, request: m.Request, response: m.Response
    ) -> None:
        """Note the mesh hops of an answered request (replay-cache answers never come here)."""
        if not isinstance(request, _MESH_REQUESTS) or isinstance(response, m.ErrorResponse):
            return
        link = next((k for k in self._links.values() if k.connection is connection), None)
        if link is None:
            return  # another transport's connection (TCP)
        hops = hop_count(request.module_id)
        self.stats.mesh_requests += 1
        self.stats.mesh_hops += hops
        link.delay = hops * self.hop_latency

    # --- gateway → host --------------------------------------------------------------------

    def _send(self, link: _Link, frame: bytes, *, answer: bool) -> None:
        if self._links.get(link.channel) is not link or link.closing:
            return  # a session that was replaced or ended: its frames must not reach a new link
        delay = 0.0
        if answer:  # the notifications it caused follow it (device.connection)
            delay, link.delay = link.delay, 0.0  # only the response; later frames queue behind it
        if delay:
            self.stats.mesh_delay += delay
        link.outbox.append((self._loop.time() + delay, frame, not answer))
        if link.timer is None:  # else the head is waiting for the mesh: this frame waits behind it
            self._pump(link)

    def _pump(self, link: _Link) -> None:
        link.timer = None
        if self._links.get(link.channel) is not link:
            return
        now = self._loop.time()
        while link.outbox:
            due, frame, notify = link.outbox[0]
            if due > now:
                link.timer = self._loop.call_at(due, self._pump, link)
                return
            link.outbox.popleft()
            self.device.push_frame(link.channel, frame, notify=notify)
            self.stats.frames_out += 1
        if link.closing:
            self.device.close_channel(link.channel)

    def _closed_by_gateway(self, link: _Link) -> None:
        """End the channel's link once its frames are out: the gateway closed the session."""
        if self._links.get(link.channel) is not link or link.closing:
            return
        self.stats.closed_by_gateway += 1
        link.closing = True
        if link.timer is None:
            self._pump(link)


def serve_on_fake_bus(
    gateway: VirtualGateway,
    device: I2CSlaveDevice,
    *,
    hop_latency: float = 0.0,
    loop: asyncio.AbstractEventLoop | None = None,
) -> I2CGatewayAdapter:
    """Make ``gateway`` answer on ``device``, one session per link channel; returns the adapter.

    Call it on the gateway's event loop (``loop`` defaults to the running one); the adapter's
    callbacks run there. ``hop_latency`` (seconds per mesh hop) holds back responses to commands
    that reach a module; 0 serves at full speed. Stop with :meth:`I2CGatewayAdapter.close`.
    """
    adapter = I2CGatewayAdapter(
        gateway, device, loop or asyncio.get_running_loop(), hop_latency=hop_latency
    )
    adapter.start()
    return adapter
