"""Shared fixtures for the loopback tests of the virtual gateway.

Everything here talks to the real :class:`~rayzig_core.testing.gateway.GatewayThread` over real
127.0.0.1 sockets: clients, a raw Noise session built from the sans-I/O pieces, and a small
frame-aware man-in-the-middle proxy that records, replays, tampers with, truncates or cuts links.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rayzig_core.client import ClientCredentials, GatewayIdentity, RayzigClient
from rayzig_core.firmware import CHUNK_SIZE, generate_signing_key
from rayzig_core.models import EventKind, UserLevel
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import StreamDeframer, length_prefixed
from rayzig_core.protocol.noise import generate_keypair
from rayzig_core.protocol.session import InitiatorHandshake, SecureChannel
from rayzig_core.storage import JsonCodec
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector, TcpTransport
from rayzig_core.virtual_gateway import VirtualGateway

HOST = "127.0.0.1"
OWNER = "installer"
OWNER_PASSWORD = "violet tangerine submarine orchestra"
PASSWORDS = {
    "ursula": "marble pelican drifts over quiet harbours",
    "adam": "copper lantern whistles beneath autumn rain",
    "sybil": "seven frozen comets orbit a velvet moon",
    "utility": "gridline operator checks the feeder panels",
}
LEVELS = {
    "ursula": UserLevel.USER,
    "adam": UserLevel.ADMINISTRATOR,
    "sybil": UserLevel.SYSTEM,
    "utility": UserLevel.UTILITY,
}
SCRYPT_N = 2**12
"""Cheaper than the harness default: the tests check behaviour, not the cost of scrypt."""
FAST: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.2, "request_timeout": 5.0}
"""Client options for tests: short back-off so reconnections happen within the test."""
_T = TypeVar("_T")


# --- stored state (PROTOCOL.md §12) --------------------------------------------------------------


@functools.cache
def _codec(shape: type[Any]) -> JsonCodec[Any]:
    return JsonCodec(shape)


def stored(value: Any) -> Any:
    """A stored dataclass (``g.state()``, ``site.state()``, ``ring.state()``) as its JSON."""
    return json.loads(json.dumps(_codec(type(value)).encode(value)))


def restored(shape: type[_T], data: Any) -> _T:
    """The stored dataclass of type ``shape`` that ``data`` describes; ValueError if damaged."""
    value: _T = _codec(shape).decode(data)
    return value


# --- gateways ------------------------------------------------------------------------------


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    """A factory-fresh virtual gateway on a loopback port (stopped afterwards)."""
    gw = GatewayThread(tmp_path / "gw.json", scrypt_n=SCRYPT_N).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def owned(gateway: GatewayThread) -> GatewayThread:
    """A gateway out of factory state: the installer has OWNER_PASSWORD."""
    gateway.setup_owner(OWNER_PASSWORD)
    return gateway


def connector(gw: GatewayThread | int) -> TcpConnector:
    """A TCP connector to a gateway (or a port, e.g. a proxy's)."""
    port = gw if isinstance(gw, int) else gw.port
    return TcpConnector(HOST, port, timeout=5.0)


class CountingConnector:
    """A TCP connector that counts connection attempts (to see reconnections, or their absence)."""

    def __init__(self, port: int) -> None:
        self._inner = TcpConnector(HOST, port, timeout=5.0)
        self.attempts = 0

    @property
    def description(self) -> str:
        return self._inner.description

    async def connect(self) -> TcpTransport:
        self.attempts += 1
        return await self._inner.connect()


async def pair(
    gw: GatewayThread | int, user: str = OWNER, password: str = OWNER_PASSWORD
) -> tuple[GatewayIdentity, ClientCredentials]:
    """First contact and pairing; returns the identity and the credentials."""
    client = RayzigClient(connector(gw), **FAST)
    identity = await client.identify()
    credentials = await client.pair(identity, user, password)
    await client.close()
    return identity, credentials


async def connected(
    gw: GatewayThread | int, credentials: ClientCredentials, **options: float
) -> RayzigClient:
    """A connected key-only client."""
    client = RayzigClient(connector(gw), credentials, **{**FAST, **options})
    await client.connect()
    return client


def pair_sync(gw: GatewayThread, user: str, password: str) -> ClientCredentials:
    """Pair from synchronous (module-scoped) fixtures."""
    return asyncio.run(pair(gw, user, password))[1]


def add_users_sync(gw: GatewayThread, names: list[str]) -> None:
    """Create users through an owner client (the gateway's AddUser path, not a shortcut)."""

    async def run() -> None:
        _, owner = await pair(gw)
        client = await connected(gw, owner)
        try:
            for name in names:
                await client.add_user(name, LEVELS[name], PASSWORDS[name])
        finally:
            await client.close()

    asyncio.run(run())


HANG_TIMEOUT = 60.0
"""Seconds after which a wait for an event fails the test: it turns a hang into a failure and is
never an assertion about speed (generous: one busy core shared with others suffices)."""


async def wait_for(
    predicate: Callable[[], bool], within: float = HANG_TIMEOUT, what: str = "condition"
) -> None:
    """Poll until ``predicate()`` is true, or fail the test (generous: one busy core suffices)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def commands(gw: GatewayThread, module_id: int) -> list[tuple[int, int | None, bool | None]]:
    """COMMAND events of a module as (seq, output, is_on), read on the gateway's thread."""

    def read(g: VirtualGateway) -> list[tuple[int, int | None, bool | None]]:
        return [
            (e.seq, e.output, e.is_on)
            for e in g.site.ring(module_id)
            if e.kind is EventKind.COMMAND
        ]

    return gw.call(read)


def output_state(gw: GatewayThread, module_id: int, index: int) -> bool:
    """Whether an output is on, read on the gateway's thread."""
    return gw.call(lambda g: g.site.module(module_id).outputs[index].is_on)


def switchable_output(gw: GatewayThread) -> tuple[int, int]:
    """A mains module and output index that is not utility-controllable."""

    def find(g: VirtualGateway) -> tuple[int, int]:
        for module in g.site.modules():
            if module.kind.name == "MAINS":
                for output in module.outputs:
                    if not output.utility_controllable:
                        return module.module_id, output.index
        raise AssertionError("no mains output")

    return gw.call(find)


# --- a raw session from the sans-I/O pieces ------------------------------------------------------


class RawSession:
    """A Noise session driven by hand: InitiatorHandshake + TcpTransport + SecureChannel."""

    def __init__(self, transport: TcpTransport, channel: SecureChannel, hello: m.GatewayHello):
        self.transport = transport
        self.channel = channel
        self.hello = hello
        self.notifications: list[m.Notification] = []

    @classmethod
    async def open(
        cls,
        port: int,
        *,
        static_private: bytes | None = None,
        gateway_key: bytes | None = None,
    ) -> RawSession:
        """Open a session: IK when ``gateway_key`` is given, else XX with a fresh key."""
        handshake = InitiatorHandshake(
            static_private=static_private or generate_keypair()[0],
            client_name="raw",
            gateway_key=gateway_key,
        )
        transport = await TcpConnector(HOST, port, timeout=5.0).connect()
        await transport.send(handshake.start())
        while not handshake.complete:
            reply = handshake.receive(await asyncio.wait_for(transport.receive(), 5))
            if reply is not None:
                await transport.send(reply)
        assert handshake.gateway_hello is not None
        return cls(transport, handshake.channel(), handshake.gateway_hello)

    @classmethod
    async def keyed(cls, port: int, credentials: ClientCredentials) -> RawSession:
        """An IK session with a paired client's keys."""
        return await cls.open(
            port,
            static_private=credentials.client_private_key,
            gateway_key=credentials.gateway_public_key,
        )

    async def send(self, request_id: int, request: m.Request) -> None:
        await self.transport.send(self.channel.seal(request_id, request))

    async def receive(self, within: float = 5.0) -> m.Envelope:
        """Next response (notifications are collected on the side)."""
        while True:
            envelope = self.channel.open(await asyncio.wait_for(self.transport.receive(), within))
            if isinstance(envelope.message, m.Notification):
                self.notifications.append(envelope.message)
                continue
            return envelope

    async def request(self, request_id: int, request: m.Request) -> m.Response:
        await self.send(request_id, request)
        envelope = await self.receive()
        assert envelope.request_id == request_id
        assert isinstance(envelope.message, m.Response)
        return envelope.message

    async def close(self) -> None:
        await self.transport.close()


# --- a man-in-the-middle proxy -------------------------------------------------------------------

Hook = Callable[["MitmLink", bytes], bytes | None]
"""Sees each frame of one direction; returns the frame to forward (maybe altered), None drops it."""


class MitmLink:
    """One proxied TCP connection: frames seen each way, and ways to meddle with them."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        gateway: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client_reader, self.client_writer = client
        self.gateway_reader, self.gateway_writer = gateway
        self.from_client: list[bytes] = []
        self.from_gateway: list[bytes] = []
        self.gateway_closed = asyncio.Event()
        """Set when the gateway closed its side (EOF or reset)."""
        self.client_closed = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def to_gateway(self, raw: bytes) -> None:
        """Write raw bytes (not framed) towards the gateway."""
        self.gateway_writer.write(raw)

    def frame_to_gateway(self, frame: bytes) -> None:
        self.gateway_writer.write(length_prefixed(frame))

    def frame_to_client(self, frame: bytes) -> None:
        self.client_writer.write(length_prefixed(frame))

    def kill(self) -> None:
        """Cut both TCP connections at once."""
        self.client_writer.transport.abort()
        self.gateway_writer.transport.abort()


class MitmProxy:
    """Listens on 127.0.0.1 and forwards length-prefixed frames to the gateway, through hooks."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.links: list[MitmLink] = []
        self.client_hook: Hook | None = None
        self.gateway_hook: Hook | None = None
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> MitmProxy:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            writer.close()
            return
        link = MitmLink((reader, writer), upstream)
        self.links.append(link)
        link.tasks = [
            asyncio.create_task(self._pump(link, toward_gateway=True)),
            asyncio.create_task(self._pump(link, toward_gateway=False)),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)

    async def _pump(self, link: MitmLink, *, toward_gateway: bool) -> None:
        if toward_gateway:
            reader, writer = link.client_reader, link.gateway_writer
            seen, done = link.from_client, link.client_closed
        else:
            reader, writer = link.gateway_reader, link.client_writer
            seen, done = link.from_gateway, link.gateway_closed
        deframer = StreamDeframer()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for frame in deframer.feed(data):
                    seen.append(frame)
                    hook = self.client_hook if toward_gateway else self.gateway_hook
                    out = frame if hook is None else hook(link, frame)
                    if out is not None and not writer.is_closing():
                        writer.write(length_prefixed(out))
        except (ConnectionError, OSError):
            pass
        finally:
            done.set()
            writer.close()

    async def close(self) -> None:
        for link in self.links:
            with contextlib.suppress(Exception):
                link.kill()
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def proxy_factory() -> Callable[[int], Awaitable[MitmProxy]]:  # type: ignore[misc]
    """Start MITM proxies in front of ports; all are closed after the test."""
    proxies: list[MitmProxy] = []

    async def make(port: int) -> MitmProxy:
        proxy = await MitmProxy(port).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.close()


# --- firmware ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    """A firmware signing key pair (private, public), one per test module."""
    return generate_signing_key()


@pytest.fixture
def image() -> bytes:
    """A random firmware image of five chunks and a bit."""
    return os.urandom(5 * CHUNK_SIZE + 123)
