"""The bridge's TCP server: admits clients, gives each a link channel (PROTOCOL.md §11.2).

Connection hygiene (PROTOCOL.md §2.2, §3.2; :mod:`rayzig_core.admission`): a new connection is
*pending* until its frames show an authenticated session (:mod:`.guard`). At most ``max_pending``
are pending at once, and a newcomer pushes out the oldest of them, so silent sockets cannot lock
real clients out; a pending connection must authenticate within the login grace, a half-sent
frame must be finished within the frame timeout, and an authenticated client that sends nothing
for the idle timeout is dropped. At most ``max_clients`` authenticated clients at once; each is
served by :func:`.channel.serve_client` over the
transport of its channel. Every I2C transport takes the bus's fair (first come, first served) lock
for each transaction, so busy clients take turns on the one bus. :meth:`Bridge.stop` cancels every
client and joins every transport (and so every I2C worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from rayzig_core.admission import (
    BRIDGE_MAX_PENDING,
    SWEEP_INTERVAL,
    AdmissionPolicy,
    Gatekeeper,
)
from rayzig_core.bridge.channel import (
    CLOSE_TIMEOUT,
    BridgeClient,
    keepalive,
    peer_name,
    serve_client,
)
from rayzig_core.bridge.guard import ClientGuard
from rayzig_core.transport.base import Connector

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT = 7780
CLIENT_CHANNELS = tuple(range(1, 16))
"""Link channels the bridge gives its TCP clients; channel 0 is left for a direct local client."""
DEFAULT_MAX_CLIENTS = 8
DEFAULT_MAX_PENDING = BRIDGE_MAX_PENDING
"""Connections not yet authenticated, at once (with 8 clients, 12 of the 15 link channels)."""


class Bridge:
    """Accepts TCP clients and forwards their frames, each over a link channel of its own.

    ``connector_for(channel)`` makes the connector of one channel (a fresh transport per client).
    At most ``max_clients`` authenticated clients and ``admission.max_pending`` pending ones
    (together at most 15, one link channel each); a newcomer while ``max_clients`` are
    authenticated is closed at once, with a log line. ``clock`` runs the deadlines; a test with a
    fake one passes ``sweep_every=None`` and calls :meth:`sweep` itself.
    With ``release_channels`` (default) a channel a client left is reset before it is given out
    again, so the gateway drops that client's session at once (see
    :func:`~rayzig_core.bridge.channel.release_channel`).
    """

    def __init__(
        self,
        connector_for: Callable[[int], Connector],
        *,
        host: str = "0.0.0.0",  # noqa: S104 - a bridge serves the network by design
        port: int = DEFAULT_PORT,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        release_channels: bool = True,
        admission: AdmissionPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: float | None = SWEEP_INTERVAL,
    ) -> None:
        policy = admission or AdmissionPolicy(max_pending=DEFAULT_MAX_PENDING)
        if not 1 <= max_clients <= len(CLIENT_CHANNELS):
            raise ValueError(f"max_clients must be 1..{len(CLIENT_CHANNELS)}, not {max_clients}")
        if max_clients + policy.max_pending > len(CLIENT_CHANNELS):
            raise ValueError(
                f"max_clients + max_pending must be at most {len(CLIENT_CHANNELS)} (one link "
                f"channel each), not {max_clients} + {policy.max_pending}"
            )
        self.gatekeeper = Gatekeeper(policy, clock)
        self.sweep_every = sweep_every
        """Seconds between the bridge's own sweeps; None: the caller sweeps (a fake clock)."""
        self._connector_for = connector_for
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.release_channels = release_channels
        self.accepted = 0
        self.refused = 0
        self._free = list(CLIENT_CHANNELS)
        self._channel_freed = asyncio.Event()
        self._clients: dict[asyncio.Task[None], BridgeClient] = {}
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def clients(self) -> tuple[BridgeClient, ...]:
        """The clients connected now, pending and authenticated."""
        return tuple(self._clients.values())

    @property
    def max_pending(self) -> int:
        """How many connections may wait to authenticate at once."""
        return self.gatekeeper.policy.max_pending

    def sweep(self) -> int:
        """Drop the connections past a deadline now (the bridge does so about once a second)."""
        return self.gatekeeper.sweep()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Bound (host, port) pairs, once started."""
        if self._server is None:
            return []
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    async def start(self) -> None:
        """Listen; OSError (with the address in the message) if that is impossible."""
        self._closing = False
        try:
            self._server = await asyncio.start_server(
                self._accept, self.host or None, self.port, reuse_address=True
            )
        except OSError as err:
            raise OSError(
                err.errno,
                f"Cannot listen on {self.host}:{self.port} ({err.strerror or err}); choose "
                "another address or port with --listen, or stop the program using it.",
            ) from err
        if self._server.sockets:
            self.port = self._server.sockets[0].getsockname()[1]
        if self.sweep_every is not None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.create_task(self._sweep_every(self.sweep_every))
        _LOGGER.info(
            "Bridge listening on %s:%d (at most %d clients, %d more authenticating)",
            self.host,
            self.port,
            self.max_clients,
            self.max_pending,
        )

    async def _sweep_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.gatekeeper.sweep()

    async def stop(self) -> None:
        """Stop listening, disconnect every client and join every transport."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._clients.items())
        for task, client in tasks:
            if not client.closing:  # a closing client finishes its clean-up undisturbed
                task.cancel()
        await asyncio.gather(*(task for task, _ in tasks), return_exceptions=True)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT)

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Admit a new TCP connection as pending (pushing out the oldest pending), or close it."""
        peer = peer_name(writer)
        if self._closing:
            writer.transport.abort()
            return
        if self.gatekeeper.sessions >= self.max_clients:
            self.refused += 1
            _LOGGER.warning(
                "Refusing the connection from %s: %d clients connected already (--max-clients %d)",
                peer,
                self.gatekeeper.sessions,
                self.max_clients,
            )
            writer.close()
            return
        keepalive(writer)
        client = BridgeClient(peer)

        def drop(reason: str) -> None:
            client.dropped = reason
            writer.transport.abort()

        def authenticated() -> None:
            client.authenticated = True

        ticket = self.gatekeeper.admit(peer, drop)
        guard = ClientGuard(
            self.gatekeeper,
            ticket,
            promote=lambda: self.gatekeeper.sessions < self.max_clients,
            on_authenticated=authenticated,
        )
        self.accepted += 1
        serving = serve_client(
            client,
            reader,
            writer,
            self._connector_for,
            guard=guard,
            take_channel=self._take_channel,
            should_release=lambda: self.release_channels,
            on_free=self._give_channel,
        )
        task = asyncio.get_running_loop().create_task(serving, name=f"rayzig-bridge-{peer}")
        self._clients[task] = client

        def ended(task: asyncio.Task[None]) -> None:
            self._clients.pop(task, None)
            self.gatekeeper.release(ticket)

        task.add_done_callback(ended)

    async def _take_channel(self) -> int:
        """The lowest free link channel, waiting for one that is being reset if need be."""
        while not self._free:
            self._channel_freed.clear()
            await self._channel_freed.wait()
        self._free.sort()
        return self._free.pop(0)

    def _give_channel(self, channel: int) -> None:
        self._free.append(channel)
        self._channel_freed.set()
