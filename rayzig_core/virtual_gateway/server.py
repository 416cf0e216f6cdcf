"""Serving the virtual gateway over TCP, with its state persisted to a file (PROTOCOL.md §2.2, §12).

One asyncio server; each TCP connection is a link attached to the :class:`VirtualGateway`. A client
that sends garbage loses only its own link. A :class:`~rayzig_core.admission.Gatekeeper` keeps the
connections honest (PROTOCOL.md §2.2, §3.2): a link must authenticate (its session's key enrolled)
within the login grace, at most ``max_pending`` links may be waiting to (the oldest is dropped for a
newcomer), a frame may not stop half-way, and an authenticated session that sends nothing for the
idle timeout is dropped. State is saved through :mod:`rayzig_core.storage`,
atomically and durably (fsync of the file and its directory, 0600): before the answer for a
security-relevant change, else within SAVE_DELAY of a change, and on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayzig_core.admission import SWEEP_INTERVAL, AdmissionPolicy, Gatekeeper, Ticket
from rayzig_core.errors import FrameError
from rayzig_core.protocol.frames import StreamDeframer, length_prefixed
from rayzig_core.storage import JsonStore, StorageError
from rayzig_core.virtual_gateway.device.connection import GatewayConnection
from rayzig_core.virtual_gateway.device.gateway import FactorySecrets, VirtualGateway
from rayzig_core.virtual_gateway.device.state import STATE_FORMAT, GatewayState
from rayzig_core.virtual_gateway.site.site import Site
from rayzig_core.virtual_gateway.state_writer import StateWriter

_LOGGER = logging.getLogger(__name__)

MAX_BACKLOG = 64 * 1024
"""Bytes a link may have waiting beyond the transport's high-water mark before it is dropped.

A peer that stops reading (hung, or hostile) would otherwise make the gateway buffer every
notification for it without limit, and asyncio's write path slows down with the buffer's length,
stalling the gateway for every other session. A dropped client reconnects and catches up from its
event-log cursors."""
SAVE_DELAY = 0.2
"""Seconds to gather changes before one state write."""
DAMAGED_HINT = (
    "restore it from a backup, or move it away to start a factory-new gateway (a new identity "
    "key: every client must pair again)"
)
"""What to do about a state file that cannot be loaded."""


class GatewayStateError(StorageError, ValueError):
    """The state file cannot be loaded; the message names it and what to do, never a secret.

    Also a ValueError, which :func:`load_state` has always raised for a damaged file.
    """


def state_store(path: Path) -> JsonStore[GatewayState]:
    """The gateway's state file: private (0600, it holds keys), written atomically (§12)."""
    return JsonStore(
        path,
        GatewayState,
        format=STATE_FORMAT,
        damaged_hint=DAMAGED_HINT,
    )


def load_state(path: Path) -> VirtualGateway | None:
    """Load a saved gateway, or None when the file does not exist yet (factory state)."""
    try:
        state = state_store(path).load()
    except StorageError as err:
        raise GatewayStateError(str(err)) from None
    return None if state is None else VirtualGateway.restore(state)


def save_state(gateway: VirtualGateway, path: Path) -> None:
    """Write the gateway's state atomically and durably, readable by its owner only (secrets).

    The new file is flushed to disk (fsync) before it replaces the old one, and the directory
    after the rename, so that once this returns a power loss can lose nothing of it (§12).
    """
    state_store(path).save(gateway.state())


def open_gateway(
    state_path: Path | None,
    *,
    module_count: int = 12,
    scrypt_n: int = 2**15,
    seed: int = 1,
    trusted_update_keys: tuple[bytes, ...] = (),
    outputs_per_module: int | None = None,
    prefill_events: int = 0,
) -> tuple[VirtualGateway, FactorySecrets | None]:
    """Load the gateway from its state file, or make a factory-new one (and save it).

    A new one's site is ``Site.generate(module_count=..., seed=..., outputs_per_module=...,
    prefill_events=...)``.
    """
    if state_path is not None:
        loaded = load_state(state_path)
        if loaded is not None:
            return loaded, None
    gateway, factory = VirtualGateway.factory_new(
        site=Site.generate(
            module_count=module_count,
            seed=seed,
            outputs_per_module=outputs_per_module,
            prefill_events=prefill_events,
        ),
        scrypt_n=scrypt_n,
        trusted_update_keys=trusted_update_keys,
    )
    if state_path is not None:
        save_state(gateway, state_path)
    return gateway, factory


@dataclass(frozen=True, slots=True)
class TcpFaults:
    """Faults the TCP server injects, to prove that clients recover (PROTOCOL.md §3.5, §5.3)."""

    disconnect_rate: float = 0.0
    """Probability, per frame received, that the gateway drops the connection before handling it."""
    reboot_interval: float | None = None
    """Seconds between simulated gateway reboots (every session ends; state survives)."""
    seed: int | None = None

    def __post_init__(self) -> None:
        """Refuse rates outside 0..1 and non-positive intervals."""
        if not 0.0 <= self.disconnect_rate <= 1.0:
            raise ValueError("disconnect rate must be between 0 and 1")
        if self.reboot_interval is not None and self.reboot_interval <= 0:
            raise ValueError("reboot interval must be positive")


@dataclass(slots=True)
class TcpFaultCounts:
    """How many faults the server injected."""

    disconnects: int = 0
    reboots: int = 0


class _LinkProtocol(asyncio.Protocol):
    """One TCP connection: length-prefixed frames in and out of a gateway link."""

    def __init__(self, server: GatewayServer) -> None:
        self._server = server
        self._deframer = StreamDeframer()
        self._transport: asyncio.Transport | None = None
        self._link: GatewayConnection | None = None
        self._ticket: Ticket | None = None
        self._paused = False
        self._backlog = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.transports.add(transport)
        peer = transport.get_extra_info("peername")
        name = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._ticket = self._server.gatekeeper.admit(name, lambda reason: transport.abort())
        self._link = self._server.gateway.attach(self._send, transport.close)

    def _send(self, frame: bytes, *, answer: bool) -> None:  # TCP needs no answer flag
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        data = length_prefixed(frame)
        if self._paused:
            self._backlog += len(data)
            if self._backlog > MAX_BACKLOG:
                _LOGGER.info("Dropping a link that does not read what it is sent")
                transport.abort()  # discard the backlog; connection_lost() detaches the link
                return
        transport.write(data)
        self._check_authenticated()  # e.g. the answer to Pair: the key is enrolled now

    def pause_writing(self) -> None:
        self._paused = True
        self._backlog = 0

    def resume_writing(self) -> None:
        self._paused = False
        self._backlog = 0

    def data_received(self, data: bytes) -> None:
        assert self._link is not None
        assert self._ticket is not None
        gatekeeper = self._server.gatekeeper
        try:
            frames = self._deframer.feed(data)
            if frames:
                gatekeeper.heard(self._ticket)
            for frame in frames:
                if self._server.inject_disconnect():
                    assert self._transport is not None
                    self._transport.abort()
                    return
                self._link.frame_received(frame)
            gatekeeper.partial(self._ticket, bool(self._deframer.pending))
            self._check_authenticated()
        except FrameError as err:
            _LOGGER.debug("Dropping link with bad framing: %s", err)
            self._link.close()
        except Exception:
            _LOGGER.exception("Unexpected error on a gateway link; closing it")
            self._link.close()

    def _check_authenticated(self) -> None:
        """A link is authenticated once its session's client key is enrolled (§3.3)."""
        link, ticket = self._link, self._ticket
        if (
            link is not None
            and ticket is not None
            and not ticket.authenticated
            and link.client is not None
            and not link.closed
        ):
            self._server.gatekeeper.authenticate(ticket)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ticket is not None:
            self._server.gatekeeper.release(self._ticket)
        if self._link is not None:
            self._link.connection_lost()
        if self._transport is not None:
            self._server.transports.discard(self._transport)


class GatewayServer:
    """The virtual gateway on a TCP port, with persistence and optional simulated activity."""

    def __init__(
        self,
        gateway: VirtualGateway,
        *,
        host: str = "127.0.0.1",
        port: int = 7780,
        state_path: Path | None = None,
        simulate_interval: float | None = None,
        faults: TcpFaults | None = None,
        admission: AdmissionPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: float | None = SWEEP_INTERVAL,
    ) -> None:
        self.gateway = gateway
        self.gatekeeper = Gatekeeper(admission or AdmissionPolicy(), clock)
        """Deadlines and the pending pool (``clock``: a fake one in tests, then call sweep())."""
        self.sweep_every = sweep_every
        """Seconds between the server's own sweeps; None: the caller sweeps (a fake clock)."""
        self._sweeper: asyncio.Task[None] | None = None
        self.faults = faults or TcpFaults()
        self.fault_counts = TcpFaultCounts()
        self._fault_rng = random.Random(self.faults.seed)  # noqa: S311 - fault timing only
        self._reboots: asyncio.Task[None] | None = None
        self.host = host
        self.port = port
        self.state_path = state_path
        self.simulate_interval = simulate_interval
        self.transports: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None
        self._save_handle: asyncio.TimerHandle | None = None
        self._simulation: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: StateWriter | None = None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) of every socket listening now (empty before start and after stop).

        By default the gateway listens on 127.0.0.1 only (EN 303 645 5.6-1).
        """
        if self._server is None:
            return []
        return [
            (str(name[0]), int(name[1]))
            for name in (sock.getsockname() for sock in self._server.sockets)
        ]

    async def start(self) -> None:
        """Listen; a port in use raises OSError with a message naming it."""
        self._loop = asyncio.get_running_loop()
        self.gateway.on_dirty = self._schedule_save
        self.gateway.on_save_now = self._save_durably
        if self.state_path is not None:
            self._writer = StateWriter(self.gateway, state_store(self.state_path))
            self.gateway.on_save_in_background = self._writer.save_in_background
        try:
            self._server = await self._loop.create_server(
                lambda: _LinkProtocol(self), self.host, self.port
            )
        except OSError as err:
            raise OSError(
                err.errno,
                f"Cannot listen on {self.host}:{self.port} ({err.strerror}); choose another "
                "port with --port or stop the program using it.",
            ) from err
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        if self.sweep_every is not None:
            self._sweeper = self._loop.create_task(self._sweep_every(self.sweep_every))
        if self.simulate_interval:
            self._simulation = self._loop.create_task(self._simulate(self.simulate_interval))
        if self.faults.reboot_interval:
            self._reboots = self._loop.create_task(self._reboot_every(self.faults.reboot_interval))

    def set_faults(self, faults: TcpFaults) -> None:
        """Inject these faults from now on (a test turns them on once its client is set up)."""
        self.faults = faults
        self._fault_rng = random.Random(faults.seed)  # noqa: S311 - fault timing only

    def inject_disconnect(self) -> bool:
        """Decide whether to drop a connection before handling its next frame (fault injection)."""
        if self.faults.disconnect_rate and self._fault_rng.random() < self.faults.disconnect_rate:
            self.fault_counts.disconnects += 1
            return True
        return False

    def reboot(self) -> None:
        """Simulate a gateway reboot: every session ends at once; persisted state survives."""
        self.fault_counts.reboots += 1
        self._save_durably()
        self.gateway.close_all()
        for transport in list(self.transports):
            transport.abort()

    async def _sweep_every(self, interval: float) -> None:
        """Drop the links past a deadline (PROTOCOL.md §3.2), about once per ``interval``."""
        while True:
            await asyncio.sleep(interval)
            self.gatekeeper.sweep()

    async def _reboot_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reboot()

    async def _simulate(self, interval: float) -> None:
        rng = random.Random()  # noqa: S311 - simulation timing, not security
        while True:
            await asyncio.sleep(interval * rng.uniform(0.5, 1.5))
            self.gateway.site.simulate_step()

    def _schedule_save(self) -> None:
        if self.state_path is None or self._loop is None or self._save_handle is not None:
            return
        self._save_handle = self._loop.call_later(SAVE_DELAY, self._save_now)

    def _save_now(self) -> None:
        """Write the gathered changes on the writer's thread: the loop never waits for them."""
        self._save_handle = None
        if self._writer is not None:
            self._writer.save_in_background(self._saved)

    @staticmethod
    def _saved(error: BaseException | None) -> None:
        if error is not None:
            _LOGGER.error("Could not store the gateway state: %s", error)

    def _save_durably(self) -> None:
        """Write now, before the answer reporting a security-relevant change leaves (§12)."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self._writer is not None:
            self._writer.save_now()

    async def stop(self) -> None:
        """Close every link, stop listening and flush state to disk."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._reboots is not None:
            self._reboots.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reboots
            self._reboots = None
        if self._simulation is not None:
            self._simulation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._simulation
            self._simulation = None
        self.gateway.close_all()
        for transport in list(self.transports):
            transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self._writer is not None:
            self._writer.save_now()
            self._writer.close()
            self._writer = None
        self.gateway.on_dirty = lambda: None
        self.gateway.on_save_now = lambda: None
        self.gateway.on_save_in_background = None

    def call(self, function: Callable[[VirtualGateway], Any]) -> Any:
        """Run ``function(gateway)`` on the server's loop thread (simulation hooks, tests)."""
        return function(self.gateway)
