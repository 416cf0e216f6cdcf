"""The network bridge (issue 3 §4): TCP clients on the network ⇄ one gateway on the I2C bus.

Runs on the single-board computer wired to the gateway. Every TCP client gets a **link channel** of
its own (1..15, PROTOCOL.md §11.2; channel 0 stays free for a client on the SBC itself, such as Home
Assistant using I2C directly) and its own transport on that channel, made by a
``connector_for(channel)`` factory (an :class:`~rayzig_core.transport.i2c.I2CConnector` in the
field). Frames go both ways unchanged: each length-prefixed TCP frame (§2.2) becomes one link frame
(§11) and back. Every I2C transport takes the bus's fair (first come, first served) lock for each
transaction, so busy clients take turns on the one bus.

**The bridge can read nothing.** The Noise session runs end to end between each client and the
gateway; the bridge holds no key and this module imports no session, Noise or message code (only
frames, errors and transports): it checks a frame's length, never its content. A compromised bridge
can delay, drop or cut sessions, but cannot read, alter or forge one (the AEAD would fail and the
session close). The one exception is :func:`identify_gateway`, run once at start on a spare
channel: a first-contact (XX) handshake that enrols nothing, to learn the gateway's serial and
static-key fingerprint for the zeroconf advertisement (:class:`ZeroconfAdvertiser`, service
``_rayzig._tcp.local.``, TXT ``serial``, ``fingerprint``, ``version``). It imports the client
lazily, inside the function.

Failures stay local: a client that vanishes (even in the middle of a frame: the partial frame is
dropped, never forwarded), sends a bad length or stops reading loses only its own link and channel;
a gateway link error closes only the affected client. :meth:`Bridge.stop` cancels every client and
joins every transport (and so every I2C worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rayzig_core.errors import FrameError, RayzigError, TransportError
from rayzig_core.protocol.frames import StreamDeframer, length_prefixed
from rayzig_core.transport.base import Connector, Transport

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_rayzig._tcp.local."
"""The zeroconf service type of a bridge (the Home Assistant integration browses for it)."""
DEFAULT_PORT = 7780
CLIENT_CHANNELS = tuple(range(1, 16))
"""Link channels the bridge gives its TCP clients; channel 0 is left for a direct local client."""
IDENTIFY_CHANNEL = CLIENT_CHANNELS[-1]
"""Channel of the one identification session at start, before any client is accepted."""
DEFAULT_MAX_CLIENTS = 8
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
IDENTIFY_TIMEOUT = 15.0
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names of "every address"


# --- configuration helpers ----------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[IPv6]:PORT``, ``:PORT`` for every address); ValueError if bad."""
    match = re.fullmatch(r"\[([^\]]*)\]:(\d+)|([^:\[\]]*):(\d+)", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 0.0.0.0:7780 or [::]:7780)")
    host = match[1] if match[1] is not None else match[3]
    port = int(match[2] or match[4])
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return host or "0.0.0.0", port  # noqa: S104 - a bridge serves the network by design


def advertised_addresses(listen_host: str, interfaces: Sequence[str] | None = None) -> list[str]:
    """Return the addresses to announce for a bridge listening on ``listen_host``.

    A specific listen address is announced alone. For a wildcard, the addresses of the chosen
    zeroconf interfaces (IP addresses), else every IPv4 address of the host but loopback (loopback
    only if there is nothing else).
    """
    if listen_host not in WILDCARD_HOSTS:
        return [listen_host]
    if interfaces:
        chosen = [name for name in interfaces if _is_ip(name)]
        if chosen:
            return chosen
    import ifaddr  # noqa: PLC0415 - zeroconf's own interface lister, only when advertising

    found = [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and _is_ip(str(ip.ip))
    ]
    outside = [a for a in found if not ipaddress.ip_address(a).is_loopback]
    return outside or found or ["127.0.0.1"]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- the gateway's identity ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayAdvert:
    """What the bridge announces about its gateway (all of it public)."""

    serial: str
    fingerprint: str
    protocol_version: int

    def txt(self) -> dict[str, str]:
        """Return the zeroconf TXT record (the keys the Home Assistant integration reads)."""
        return {
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "version": str(self.protocol_version),
        }


async def identify_gateway(
    connector: Connector, *, request_timeout: float = IDENTIFY_TIMEOUT
) -> GatewayAdvert:
    """First contact (an XX handshake that enrols nothing): the gateway's serial and fingerprint.

    The only place the bridge runs a session of its own; its keys are ephemeral and it never sees
    another session's. Raises the client's errors (TransportError and kin, RequestTimeoutError).
    """
    from rayzig_core.client import RayzigClient  # noqa: PLC0415 - forwarding loads no session code

    client = RayzigClient(connector, client_name="rayzig-bridge", request_timeout=request_timeout)
    try:
        identity = await client.identify()
    finally:
        await client.close()
    return GatewayAdvert(identity.serial, identity.fingerprint, identity.protocol_version)


# --- forwarding ---------------------------------------------------------------------------------


@dataclass(slots=True)
class BridgeClient:
    """One connected TCP client and its link channel (counters for logs and tests)."""

    peer: str
    channel: int
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


@dataclass(frozen=True, slots=True)
class _Ended:
    """Why one direction of a client's forwarding stopped."""

    reason: str
    level: int = logging.INFO


class Bridge:
    """Accepts TCP clients and forwards their frames, each over a link channel of its own.

    ``connector_for(channel)`` makes the connector of one channel (a fresh transport per client).
    At most ``max_clients`` (1..15) clients at once; more are closed at once, with a log line.
    With ``release_channels`` (default) a channel a client left is reset before it is given out
    again, so the gateway drops that client's session at once (see :func:`release_channel`).
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

    # --- per client ----------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Give a new TCP connection a channel and a forwarding task, or close it."""
        peer = _peer(writer)
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
        _keepalive(writer)
        self._free.sort()
        client = BridgeClient(peer, self._free.pop(0))
        self.accepted += 1
        task = asyncio.get_running_loop().create_task(
            self._serve(client, reader, writer), name=f"rayzig-bridge-{peer}"
        )
        self._clients[task] = client
        task.add_done_callback(self._clients.pop)

    async def _serve(
        self, client: BridgeClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        ended = _Ended("bridge stopped")
        upstream: Transport | None = None
        pumps: list[asyncio.Task[_Ended]] = []
        try:
            try:
                upstream = await self._connector_for(client.channel).connect()
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
                loop.create_task(_client_to_gateway(client, reader, upstream)),
                loop.create_task(_gateway_to_client(client, upstream, writer)),
            ]
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            ended = _outcome(next(task for task in pumps if task in done))
        finally:
            # From here on stop() leaves this task alone, so that even during a shutdown the
            # transport is closed and its worker thread joined before the channel is freed.
            client.closing = True
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            if upstream is not None:
                with contextlib.suppress(Exception):
                    await upstream.close()  # joins an I2C transport's worker thread
            await _close_writer(writer)
            if upstream is not None and self.release_channels:
                await self._release(client.channel)
            self._free.append(client.channel)
            _LOGGER.log(
                ended.level,
                "Client %s left link channel %d: %s (%d frames up, %d down)",
                client.peer,
                client.channel,
                ended.reason,
                client.frames_up,
                client.frames_down,
            )

    async def _release(self, channel: int) -> None:
        await release_channel(self._connector_for(channel))


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


def _keepalive(writer: asyncio.StreamWriter) -> None:
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


def _outcome(task: asyncio.Task[_Ended]) -> _Ended:
    if task.cancelled():
        return _Ended("bridge stopped")
    error = task.exception()
    if error is not None:
        return _Ended(f"unexpected failure: {error!r}", logging.ERROR)
    return task.result()


async def _client_to_gateway(
    client: BridgeClient, reader: asyncio.StreamReader, upstream: Transport
) -> _Ended:
    """TCP → link: whole frames only; what a vanished client leaves half-sent is dropped."""
    deframer = StreamDeframer()
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
        for frame in frames:
            try:
                await upstream.send(frame)
            except TransportError as err:
                return _Ended(f"gateway link failed ({err})", logging.WARNING)
            client.frames_up += 1
            client.bytes_up += len(frame)


async def _gateway_to_client(
    client: BridgeClient, upstream: Transport, writer: asyncio.StreamWriter
) -> _Ended:
    """Link → TCP, waiting for the client to take each frame (at most DRAIN_TIMEOUT)."""
    while True:
        try:
            frame = await upstream.receive()
        except TransportError as err:
            return _Ended(f"gateway link ended ({err})", logging.WARNING)
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


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a client socket; abort it if it will not finish closing (a stalled peer)."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except TimeoutError:
        writer.transport.abort()
    except (ConnectionError, OSError):
        pass


# --- zeroconf -----------------------------------------------------------------------------------


class ZeroconfAdvertiser:
    """Announces a bridge as ``_rayzig._tcp.local.`` with its gateway's serial and fingerprint.

    ``interfaces``: IP addresses of the interfaces to use (None: all, as a real SBC would).
    """

    def __init__(
        self,
        advert: GatewayAdvert,
        *,
        port: int,
        addresses: Sequence[str],
        interfaces: Sequence[str] | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("a zeroconf advertisement needs at least one address")
        self.advert = advert
        self.port = port
        self.addresses = list(addresses)
        self.interfaces = list(interfaces) if interfaces else None
        label = _dns_label(advert.serial)
        self.name = f"Rayzig {advert.serial}.{SERVICE_TYPE}"
        self.server = f"rayzig-{label}.local."
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def start(self) -> None:
        """Register the service (probing for a free name first)."""
        from zeroconf import InterfaceChoice, IPVersion  # noqa: PLC0415
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf  # noqa: PLC0415

        v6 = any(ipaddress.ip_address(a).version == 6 for a in self.addresses)
        interfaces: Any = self.interfaces if self.interfaces is not None else InterfaceChoice.All
        ip_version = IPVersion.All if v6 else IPVersion.V4Only
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            self.name,
            parsed_addresses=self.addresses,
            port=self.port,
            properties=self.advert.txt(),
            server=self.server,
        )
        zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=ip_version)
        try:
            await zeroconf.async_register_service(info, allow_name_change=True)
        except BaseException:
            await zeroconf.async_close()
            raise
        self._zeroconf, self._info = zeroconf, info
        self.name = info.name
        _LOGGER.info(
            "Announcing %s on %s port %d over zeroconf",
            self.name,
            ", ".join(self.addresses),
            self.port,
        )

    async def stop(self) -> None:
        """Withdraw the service (goodbye packets) and close zeroconf."""
        zeroconf, info = self._zeroconf, self._info
        self._zeroconf = self._info = None
        if zeroconf is None:
            return
        try:
            if info is not None:
                with contextlib.suppress(Exception):
                    await zeroconf.async_unregister_service(info)
        finally:
            await zeroconf.async_close()


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:50] or "gateway"


# --- running a bridge ---------------------------------------------------------------------------


@dataclass(slots=True)
class BridgeConfig:
    """Everything ``rayzig bridge`` needs (see :func:`run_bridge`)."""

    connector_for: Callable[[int], Connector]
    host: str = "0.0.0.0"  # noqa: S104 - a bridge serves the network by design
    port: int = DEFAULT_PORT
    max_clients: int = DEFAULT_MAX_CLIENTS
    zeroconf: bool = True
    zeroconf_interfaces: Sequence[str] | None = None
    identify_timeout: float = IDENTIFY_TIMEOUT


class IdentifyError(RayzigError):
    """The gateway could not be identified at start (nothing answers, or not a gateway)."""


async def run_bridge(
    config: BridgeConfig,
    *,
    wait: Callable[[], Awaitable[object]],
    on_ready: Callable[[Bridge, GatewayAdvert, ZeroconfAdvertiser | None], None] | None = None,
) -> Bridge:
    """Identify the gateway, listen, advertise, run until ``wait()`` returns, then stop cleanly.

    Raises :class:`IdentifyError` if the gateway cannot be identified, OSError if the address
    cannot be listened on. Returns the stopped bridge (its counters).
    """
    identify_connector = config.connector_for(IDENTIFY_CHANNEL)
    try:
        async with asyncio.timeout(config.identify_timeout):
            advert = await identify_gateway(
                identify_connector, request_timeout=config.identify_timeout
            )
    except TimeoutError as err:
        raise IdentifyError(
            f"The gateway at {identify_connector.description} did not complete a handshake "
            f"within {config.identify_timeout:.0f} s."
        ) from err
    except RayzigError as err:
        raise IdentifyError(
            f"Cannot identify the gateway at {identify_connector.description}: {err}"
        ) from err
    await release_channel(identify_connector)
    _LOGGER.info(
        "Gateway %s, fingerprint %s, protocol version %d",
        advert.serial,
        advert.fingerprint,
        advert.protocol_version,
    )
    bridge = Bridge(
        config.connector_for, host=config.host, port=config.port, max_clients=config.max_clients
    )
    await bridge.start()
    advertiser: ZeroconfAdvertiser | None = None
    try:
        if config.zeroconf:
            advertiser = ZeroconfAdvertiser(
                advert,
                port=bridge.port,
                addresses=advertised_addresses(config.host, config.zeroconf_interfaces),
                interfaces=config.zeroconf_interfaces,
            )
            try:
                await advertiser.start()
            except (OSError, ValueError) as err:
                # The bridge works without it: clients can still be given the address by hand.
                _LOGGER.warning("Zeroconf advertisement failed (%s); serving without it", err)
                advertiser = None
        if on_ready is not None:
            on_ready(bridge, advert, advertiser)
        await wait()
    finally:
        if advertiser is not None:
            await advertiser.stop()
        await bridge.stop()
    return bridge
