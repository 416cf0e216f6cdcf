"""One bridge client on its own link channel (PROTOCOL.md §11.2): open, forward, close, reset.

Frames go both ways unchanged: each length-prefixed TCP frame (§2.2) becomes one link frame (§11)
and back. A client gets its link channel only with its first whole frame, so a socket that says
nothing costs the bus nothing. Failures stay local: a client that vanishes (even in the middle of a
frame: the partial frame is dropped, never forwarded), sends a bad length or stops reading loses
only its own link and channel; a gateway link error closes only this client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from rayzig_core.bridge.guard import ClientGuard
from rayzig_core.errors import FrameError, RayzigError, TransportError
from rayzig_core.protocol.frames import StreamDeframer, length_prefixed
from rayzig_core.transport.base import Connector, Transport

_LOGGER = logging.getLogger(__name__)

READ_SIZE = 65536
DRAIN_TIMEOUT = 30.0
"""A client that reads nothing for this long (its socket buffer full) is disconnected."""
CLOSE_TIMEOUT = 5.0
RELEASE_TIMEOUT = 3.0
"""How long the bridge tries to reset a channel a client left (see :func:`release_channel`)."""
KEEPALIVE_IDLE = 60
KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT = 4
"""TCP keepalive (seconds, seconds, probes): a silent dead client frees its channel in ~2 min."""


@dataclass(slots=True)
class BridgeClient:
    """One connected TCP client and its link channel (counters for logs and tests)."""

    peer: str
    channel: int = 0
    """Its link channel, given with its first whole frame (0: none yet)."""
    connected_at: float = field(default_factory=time.monotonic)
    frames_up: int = 0
    """Frames forwarded client → gateway."""
    frames_down: int = 0
    """Frames forwarded gateway → client."""
    bytes_up: int = 0
    bytes_down: int = 0
    gateway: str = ""
    """The gateway link's description (e.g. ``i2c://1/0x42#3``) once open."""
    closing: bool = False
    """Set once the client's links are being closed (the bridge then waits, never cancels)."""
    authenticated: bool = False
    """Its frames show an authenticated session (see :mod:`.guard`)."""
    dropped: str | None = None
    """Why the bridge dropped it (a deadline, the pending pool full), for the log line."""


@dataclass(frozen=True, slots=True)
class _Ended:
    """Why one direction of a client's forwarding stopped."""

    reason: str
    level: int = logging.INFO


async def serve_client(
    client: BridgeClient,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connector_for: Callable[[int], Connector],
    *,
    guard: ClientGuard,
    take_channel: Callable[[], Awaitable[int]],
    should_release: Callable[[], bool],
    on_free: Callable[[int], None],
) -> None:
    """Forward ``client``'s frames over a link channel until either side ends, then clean up.

    The channel comes from ``take_channel()`` once the client's first whole frame has arrived.
    The clean-up closes the transport (joining an I2C worker thread) and the socket, resets the
    channel if ``should_release()`` says so then (see :func:`release_channel`), and at last calls
    ``on_free(channel)``: the channel may be given out again.
    """
    ended = _Ended("bridge stopped")
    upstream: Transport | None = None
    pumps: list[asyncio.Task[_Ended]] = []
    deframer = StreamDeframer()
    try:
        first = await _read_frames(reader, deframer, guard)
        if isinstance(first, _Ended):
            ended = first
            return
        client.channel = await take_channel()
        try:
            upstream = await connector_for(client.channel).connect()
        except RayzigError as err:
            ended = _Ended(f"cannot open link channel {client.channel}: {err}", logging.WARNING)
            return
        client.gateway = upstream.description
        _LOGGER.info(
            "Client %s connected: link channel %d (%s)",
            client.peer,
            client.channel,
            upstream.description,
        )
        loop = asyncio.get_running_loop()
        pumps = [
            loop.create_task(_client_to_gateway(client, reader, upstream, deframer, guard, first)),
            loop.create_task(_gateway_to_client(client, upstream, writer, guard)),
        ]
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        ended = _outcome(next(task for task in pumps if task in done))
    finally:
        # From here on Bridge.stop() leaves this task alone, so that even during a shutdown the
        # transport is closed and its worker thread joined before the channel is freed.
        client.closing = True
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        if upstream is not None:
            with contextlib.suppress(Exception):
                await upstream.close()  # joins an I2C transport's worker thread
        await _close_writer(writer)
        if upstream is not None and should_release():
            await release_channel(connector_for(client.channel))
        if client.channel:
            on_free(client.channel)
        if client.dropped is not None:
            ended = _Ended(f"dropped: {client.dropped}")
        _LOGGER.log(
            ended.level,
            "Client %s left link channel %d: %s (%d frames up, %d down)",
            client.peer,
            client.channel,
            ended.reason,
            client.frames_up,
            client.frames_down,
        )


async def release_channel(connector: Connector) -> None:
    """Reset a link channel so that the gateway ends the session of the client that used it.

    I2C has no connection to close: the gateway would keep that session (and queue its
    notifications) until the channel's next HELLO (PROTOCOL.md §11.4). Opening and closing a
    transport on the channel is that HELLO: the gateway drops the old session and any partial
    frame. Failures are only logged (the next client's HELLO does the same).
    """
    try:
        async with asyncio.timeout(RELEASE_TIMEOUT):
            transport = await connector.connect()
            await transport.close()
    except (RayzigError, TimeoutError) as err:
        _LOGGER.debug("Could not reset %s: %s", connector.description, err)


def keepalive(writer: asyncio.StreamWriter) -> None:
    """Notice a client that vanished without a word (power cut, Wi-Fi gone) within ~2 minutes."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (
            ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
            ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
            ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def peer_name(writer: asyncio.StreamWriter) -> str:
    """The client's address as ``host:port`` (``[host]:port`` for IPv6), for log lines."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer)


def _outcome(task: asyncio.Task[_Ended]) -> _Ended:
    if task.cancelled():
        return _Ended("bridge stopped")
    error = task.exception()
    if error is not None:
        return _Ended(f"unexpected failure: {error!r}", logging.ERROR)
    return task.result()


async def _read_frames(
    reader: asyncio.StreamReader, deframer: StreamDeframer, guard: ClientGuard
) -> list[bytes] | _Ended:
    """Read until whole frames arrive; what a vanished client leaves half-sent is dropped."""
    while True:
        try:
            data = await reader.read(READ_SIZE)
        except (ConnectionError, OSError) as err:
            return _Ended(_partial(deframer, f"connection lost ({err})"))
        if not data:
            return _Ended(_partial(deframer, "closed the connection"))
        try:
            frames = deframer.feed(data)
        except FrameError as err:
            return _Ended(f"bad framing from the client ({err})", logging.WARNING)
        if frames:
            guard.up(frames)
            return frames
        guard.partial(bool(deframer.pending))


async def _client_to_gateway(  # noqa: PLR0917 - one client's whole forwarding state
    client: BridgeClient,
    reader: asyncio.StreamReader,
    upstream: Transport,
    deframer: StreamDeframer,
    guard: ClientGuard,
    frames: list[bytes],
) -> _Ended:
    """TCP → link, starting with ``frames`` (already read): whole frames only.

    A half-sent frame's deadline runs only while the bridge waits for the client, not while it
    forwards what came before it over a slow bus.
    """
    while True:
        for frame in frames:
            try:
                await upstream.send(frame)
            except TransportError as err:
                return _Ended(f"gateway link failed ({err})", logging.WARNING)
            client.frames_up += 1
            client.bytes_up += len(frame)
        guard.partial(bool(deframer.pending))
        read = await _read_frames(reader, deframer, guard)
        if isinstance(read, _Ended):
            return read
        frames = read


async def _gateway_to_client(
    client: BridgeClient, upstream: Transport, writer: asyncio.StreamWriter, guard: ClientGuard
) -> _Ended:
    """Link → TCP, waiting for the client to take each frame (at most DRAIN_TIMEOUT)."""
    while True:
        try:
            frame = await upstream.receive()
        except TransportError as err:
            return _Ended(f"gateway link ended ({err})", logging.WARNING)
        if not guard.down(frame):  # seen before the client can answer it
            return _Ended("authenticated, but --max-clients are connected already", logging.WARNING)
        try:
            writer.write(length_prefixed(frame))
            await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT)
        except TimeoutError:
            return _Ended(f"client read nothing for {DRAIN_TIMEOUT:.0f} s", logging.WARNING)
        except (ConnectionError, OSError) as err:
            return _Ended(f"connection lost ({err})")
        client.frames_down += 1
        client.bytes_down += len(frame)


def _partial(deframer: StreamDeframer, reason: str) -> str:
    if deframer.pending:
        return f"{reason} in the middle of a frame; dropped its {deframer.pending} bytes"
    return reason


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a client socket; abort it if it will not finish closing (a stalled peer)."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except TimeoutError:
        writer.transport.abort()
    except (ConnectionError, OSError):
        pass
