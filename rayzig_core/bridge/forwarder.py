"""The bridge's TCP server: accepts clients, gives each a link channel (PROTOCOL.md §11.2).

At most ``max_clients`` clients at once; each is served by :func:`.channel.serve_client` over the
transport of its channel. Every I2C transport takes the bus's fair (first come, first served) lock
for each transaction, so busy clients take turns on the one bus. :meth:`Bridge.stop` cancels every
client and joins every transport (and so every I2C worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from rayzig_core.bridge.channel import (
    CLOSE_TIMEOUT,
    BridgeClient,
    keepalive,
    peer_name,
    serve_client,
)
from rayzig_core.transport.base import Connector

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT = 7780
CLIENT_CHANNELS = tuple(range(1, 16))
"""Link channels the bridge gives its TCP clients; channel 0 is left for a direct local client."""
DEFAULT_MAX_CLIENTS = 8


class Bridge:
    """Accepts TCP clients and forwards their frames, each over a link channel of its own.

    ``connector_for(channel)`` makes the connector of one channel (a fresh transport per client).
    At most ``max_clients`` (1..15) clients at once; more are closed at once, with a log line.
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
    ) -> None:
        if not 1 <= max_clients <= len(CLIENT_CHANNELS):
            raise ValueError(f"max_clients must be 1..{len(CLIENT_CHANNELS)}, not {max_clients}")
        self._connector_for = connector_for
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.release_channels = release_channels
        self.accepted = 0
        self.refused = 0
        self._free = list(CLIENT_CHANNELS)
        self._clients: dict[asyncio.Task[None], BridgeClient] = {}
        self._server: asyncio.Server | None = None
        self._closing = False

    @property
    def clients(self) -> tuple[BridgeClient, ...]:
        """The clients connected now."""
        return tuple(self._clients.values())

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
        _LOGGER.info(
            "Bridge listening on %s:%d (at most %d clients)", self.host, self.port, self.max_clients
        )

    async def stop(self) -> None:
        """Stop listening, disconnect every client and join every transport."""
        self._closing = True
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
        """Give a new TCP connection a channel and a forwarding task, or close it."""
        peer = peer_name(writer)
        if self._closing:
            writer.transport.abort()
            return
        if len(self._clients) >= self.max_clients or not self._free:
            self.refused += 1
            _LOGGER.warning(
                "Refusing the connection from %s: %d clients connected already (--max-clients %d)",
                peer,
                len(self._clients),
                self.max_clients,
            )
            writer.close()
            return
        keepalive(writer)
        self._free.sort()
        client = BridgeClient(peer, self._free.pop(0))
        self.accepted += 1
        serving = serve_client(
            client,
            reader,
            writer,
            self._connector_for,
            should_release=lambda: self.release_channels,
            on_free=self._free.append,
        )
        task = asyncio.get_running_loop().create_task(serving, name=f"rayzig-bridge-{peer}")
        self._clients[task] = client
        task.add_done_callback(self._clients.pop)
