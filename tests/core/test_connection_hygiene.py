"""Connection hygiene of the virtual gateway's TCP server (PROTOCOL.md §2.2, §3.2), on a fake clock.

A neighbour on the LAN must not be able to hold the gateway's connections: a connection that does
not authenticate in time, a frame that stops half-way and a silent authenticated session are
dropped; the pool of connections that have not authenticated yet is small, and a newcomer pushes
out the oldest of them, so a real client always gets in. Time is a fake clock moved by the test,
and the deadlines are checked by calling the server's sweep directly: no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from rayzig_core.admission import (
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOGIN_GRACE,
    AdmissionPolicy,
    Gatekeeper,
)
from rayzig_core.client import RayzigClient
from rayzig_core.errors import ConnectionFailedError
from rayzig_core.models import ConnectionState
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from tests.core.conftest import (
    HOST,
    OWNER_PASSWORD,
    SCRYPT_N,
    MitmProxy,
    RawSession,
    connected,
    connector,
    pair,
    wait_for,
)

ProxyFactory = Callable[[int], Awaitable[MitmProxy]]
EOF_WITHIN = 60.0
"""Generous: how long a dropped socket may take to read as closed on a loaded machine."""


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hygienic(tmp_path: Path, clock: FakeClock) -> Iterator[GatewayThread]:
    """An owned gateway whose deadlines run on ``clock``, with a pending pool of 3."""
    gw = GatewayThread(
        tmp_path / "gw.json",
        scrypt_n=SCRYPT_N,
        admission=AdmissionPolicy(max_pending=3),
        clock=clock,
    ).start()
    try:
        gw.setup_owner(OWNER_PASSWORD)
        yield gw
    finally:
        gw.stop()


def counts(gw: GatewayThread) -> tuple[int, int]:
    """(pending, authenticated) connections as the gateway's gatekeeper sees them."""
    return gw.call(lambda g: (gw.server.gatekeeper.pending, gw.server.gatekeeper.sessions))


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Whether the other end closed the connection (EOF or reset), waiting for it if need be."""
    try:
        data = await asyncio.wait_for(reader.read(65536), EOF_WITHIN)
    except ConnectionError:
        return True
    return data == b""


def test_the_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="login_grace must be positive"):
        AdmissionPolicy(login_grace=0)
    with pytest.raises(ValueError, match="max_pending must be at least 1"):
        AdmissionPolicy(max_pending=0)
    assert AdmissionPolicy(idle_timeout=None).idle_timeout is None


def test_the_gatekeeper_drops_the_oldest_pending_connection_first() -> None:
    clock = FakeClock()
    gatekeeper = Gatekeeper(AdmissionPolicy(max_pending=2), clock)
    dropped: list[str] = []
    first = gatekeeper.admit("a", lambda reason: dropped.append("a"))
    gatekeeper.admit("b", lambda reason: dropped.append("b"))
    gatekeeper.authenticate(first)  # an authenticated one is not in the pool any more
    gatekeeper.admit("c", lambda reason: dropped.append("c"))
    assert dropped == []
    gatekeeper.admit("d", lambda reason: dropped.append("d"))
    assert dropped == ["b"]
    assert (gatekeeper.pending, gatekeeper.sessions, gatekeeper.counts.evicted) == (2, 1, 1)


async def test_a_silent_connection_is_dropped_after_the_login_grace(
    hygienic: GatewayThread, clock: FakeClock
) -> None:
    reader, writer = await asyncio.open_connection(HOST, hygienic.port)
    try:
        await wait_for(lambda: counts(hygienic) == (1, 0), what="the connection to be admitted")
        clock.advance(DEFAULT_LOGIN_GRACE - 1)
        assert hygienic.sweep() == 0  # within the grace: kept
        clock.advance(1)
        assert hygienic.sweep() == 1
        assert await closed_by_peer(reader)
        assert hygienic.call(lambda g: hygienic.server.gatekeeper.counts.login_timeouts) == 1
        await wait_for(lambda: counts(hygienic) == (0, 0), what="the connection to be forgotten")
    finally:
        writer.close()


async def test_a_handshake_that_stops_half_way_is_dropped_at_the_grace(
    hygienic: GatewayThread, clock: FakeClock
) -> None:
    # An XX session that completes its handshake but never pairs: not authenticated.
    session = await RawSession.open(hygienic.port)
    try:
        assert isinstance(await session.request(1, m.Ping()), m.Ok)
        assert counts(hygienic) == (1, 0)
        clock.advance(DEFAULT_LOGIN_GRACE)
        assert hygienic.sweep() == 1
        with pytest.raises(ConnectionFailedError):
            await session.request(2, m.Ping())
    finally:
        await session.close()


async def test_a_frame_that_stalls_half_way_is_dropped(
    hygienic: GatewayThread, clock: FakeClock
) -> None:
    reader, writer = await asyncio.open_connection(HOST, hygienic.port)
    try:
        writer.write(b"\x00\x21" + b"\x01" * 10)  # a 33-byte HELLO_XX announced, 10 bytes sent
        await writer.drain()
        await wait_for(
            lambda: hygienic.call(
                lambda g: any(
                    t.frame_started is not None for t in hygienic.server.gatekeeper._pending
                )
            ),
            what="the half frame to arrive",
        )
        clock.advance(DEFAULT_FRAME_TIMEOUT)
        assert hygienic.sweep() == 1
        assert await closed_by_peer(reader)
        assert hygienic.call(lambda g: hygienic.server.gatekeeper.counts.stalled_frames) == 1
    finally:
        writer.close()


async def test_a_full_pending_pool_drops_the_oldest_and_admits_a_real_client(
    hygienic: GatewayThread,
) -> None:
    silent = [await asyncio.open_connection(HOST, hygienic.port) for _ in range(10)]
    try:
        # Only the pool's three newest silent sockets are left open ...
        for reader, _ in silent[:7]:
            assert await closed_by_peer(reader)
        await wait_for(lambda: counts(hygienic) == (3, 0), what="a full pool of three")
        # ... and a real client still identifies, pairs and connects, pushing out more of them.
        _, credentials = await pair(hygienic)
        client = await connected(hygienic, credentials)
        try:
            assert client.state is ConnectionState.CONNECTED
            assert counts(hygienic)[1] == 1
            # The 7 oldest, then more as the client's connections came (how many depends on
            # whether the gateway had seen its previous connection close yet).
            assert hygienic.call(lambda g: hygienic.server.gatekeeper.counts.evicted) >= 8
        finally:
            await client.close()
    finally:
        for _, writer in silent:
            writer.close()


async def test_an_idle_authenticated_session_is_dropped_and_the_client_comes_back(
    hygienic: GatewayThread, clock: FakeClock
) -> None:
    _, credentials = await pair(hygienic)
    client = await connected(hygienic, credentials)
    try:
        await wait_for(lambda: counts(hygienic) == (0, 1), what="the pairing links to be gone")
        clock.advance(DEFAULT_IDLE_TIMEOUT - 1)
        await client.get_info()  # a request keeps the session alive
        clock.advance(DEFAULT_IDLE_TIMEOUT - 1)
        assert hygienic.sweep() == 0
        clock.advance(1)
        assert hygienic.sweep() == 1
        assert hygienic.call(lambda g: hygienic.server.gatekeeper.counts.idle_timeouts) == 1
        await wait_for(lambda: client.stats.disconnects == 1, what="the client to see the drop")
        await client.get_info()  # it reconnects on its own
        assert client.stats.connects == 2
    finally:
        await client.close()


async def test_the_client_pings_when_it_has_nothing_to_say(
    hygienic: GatewayThread, proxy_factory: ProxyFactory
) -> None:
    _, credentials = await pair(hygienic)
    proxy = await proxy_factory(hygienic.port)
    client = RayzigClient(connector(proxy.port), credentials, keepalive_interval=0.01)
    await client.connect()
    try:
        (link,) = proxy.links
        after_connect = len(link.from_client)  # the handshake and GetInfo
        # With nothing asked of it, the client still sends frames: keep-alive pings, answered.
        await wait_for(
            lambda: len(link.from_client) >= after_connect + 2, what="two keep-alive pings"
        )
        await wait_for(lambda: len(link.from_gateway) >= after_connect + 1, what="an answer")
        assert client.stats.requests == 0  # keep-alives are not the caller's requests
        assert client.stats.disconnects == 0
    finally:
        await client.close()
