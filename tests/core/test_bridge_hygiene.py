"""Connection hygiene of the network bridge (PROTOCOL.md §2.2, §3.2), on a fake clock.

Sockets that never speak, stall half-way through a frame or idle after authenticating cannot hold
the bridge: pending connections share a small pool whose oldest member a newcomer pushes out, and
deadlines (checked by calling the bridge's sweep after moving a fake clock) drop the rest. The
bridge judges "authenticated" from frame kinds alone (see rayzig_core/bridge/guard.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rayzig_core.admission import (
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOGIN_GRACE,
    AdmissionPolicy,
)
from rayzig_core.bridge import DEFAULT_MAX_CLIENTS, DEFAULT_MAX_PENDING, Bridge, SessionWatch
from rayzig_core.models import ConnectionState
from rayzig_core.protocol.frames import FrameKind
from rayzig_core.testing.gateway import GatewayThread
from tests.core.conftest import HOST, wait_for
from tests.core.test_bridge import (
    client_for,
    gateway_on_bus,
    i2c_connector_for,
    i2c_threads,
    paired_client,
)
from tests.core.test_connection_hygiene import FakeClock, closed_by_peer

Socket = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def i2c_gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    """The owned virtual gateway on the fake bus (full speed: no timing model)."""
    with gateway_on_bus(tmp_path) as gw:
        yield gw


@pytest.fixture
async def bridge(i2c_gateway: GatewayThread, clock: FakeClock) -> AsyncIterator[Bridge]:
    started = Bridge(i2c_connector_for, host=HOST, port=0, clock=clock, sweep_every=None)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
    assert not i2c_threads(), "the bridge left I2C worker threads behind"


async def silent_sockets(bridge: Bridge, count: int) -> list[Socket]:
    return [await asyncio.open_connection(HOST, bridge.port) for _ in range(count)]


def close_all(sockets: list[Socket]) -> None:
    for _, writer in sockets:
        writer.close()


def test_only_an_answered_ik_session_counts_as_authenticated() -> None:
    hello_ik, hello_xx = bytes([FrameKind.HELLO_IK, 0]), bytes([FrameKind.HELLO_XX, 0])
    handshake, transport = bytes([FrameKind.HANDSHAKE, 0]), bytes([FrameKind.TRANSPORT, 0])
    keyed = SessionWatch()
    for direction, frame in (("up", hello_ik), ("down", handshake), ("up", transport)):
        getattr(keyed, direction)(frame)
        assert not keyed.authenticated
    keyed.down(transport)
    assert keyed.authenticated
    # First contact or pairing (XX): one request and its answer, never authenticated.
    pairing = SessionWatch()
    steps = [("up", hello_xx), ("down", handshake), ("up", handshake)]
    steps += [("up", transport), ("down", transport)] * 3
    for direction, frame in steps:
        getattr(pairing, direction)(frame)
    assert not pairing.authenticated
    # A client that speaks out of turn (no handshake answer yet) is not either.
    eager = SessionWatch()
    for direction, frame in (("up", hello_ik), ("up", transport), ("down", transport)):
        getattr(eager, direction)(frame)
    assert not eager.authenticated


def test_channels_cover_every_client_the_bridge_admits() -> None:
    with pytest.raises(ValueError, match="at most 15"):
        Bridge(i2c_connector_for, max_clients=12, admission=AdmissionPolicy(max_pending=4))
    assert DEFAULT_MAX_CLIENTS + DEFAULT_MAX_PENDING <= 15


async def test_silent_sockets_cannot_lock_out_the_bridge(
    bridge: Bridge, i2c_gateway: GatewayThread
) -> None:
    silent = await silent_sockets(bridge, DEFAULT_MAX_CLIENTS + 4)
    try:
        # Only the pool's newest silent sockets stay; every older one is closed by the bridge.
        for reader, _ in silent[: len(silent) - DEFAULT_MAX_PENDING]:
            assert await closed_by_peer(reader)
        # A real client gets in: first contact, pairing and its keyed session.
        client = await paired_client(bridge)
        try:
            assert client.state is ConnectionState.CONNECTED
            await wait_for(lambda: bridge.gatekeeper.sessions == 1, what="its keyed session")
            await client.list_modules()
        finally:
            await client.close()
        assert bridge.refused == 0
        assert bridge.gatekeeper.counts.evicted >= DEFAULT_MAX_CLIENTS
    finally:
        close_all(silent)


async def test_a_silent_connection_is_dropped_after_the_login_grace(
    bridge: Bridge, clock: FakeClock
) -> None:
    reader, writer = await asyncio.open_connection(HOST, bridge.port)
    try:
        await wait_for(lambda: bridge.gatekeeper.pending == 1, what="the connection")
        clock.advance(DEFAULT_LOGIN_GRACE - 1)
        assert bridge.sweep() == 0
        clock.advance(1)
        assert bridge.sweep() == 1
        assert await closed_by_peer(reader)
        await wait_for(lambda: not bridge.clients, what="the bridge to forget it")
        assert bridge.gatekeeper.counts.login_timeouts == 1
    finally:
        writer.close()


async def test_a_stalled_half_frame_is_dropped(bridge: Bridge, clock: FakeClock) -> None:
    reader, writer = await asyncio.open_connection(HOST, bridge.port)
    try:
        writer.write(b"\x00\x21" + b"\x01" * 10)  # a 33-byte HELLO_XX announced, 10 bytes sent
        await writer.drain()
        await wait_for(
            lambda: any(t.frame_started is not None for t in bridge.gatekeeper.tickets),
            what="the half frame",
        )
        clock.advance(DEFAULT_FRAME_TIMEOUT - 1)
        assert bridge.sweep() == 0
        clock.advance(1)
        assert bridge.sweep() == 1
        assert await closed_by_peer(reader)
        assert bridge.gatekeeper.counts.stalled_frames == 1
    finally:
        writer.close()


async def test_an_idle_keyed_client_is_dropped_and_comes_back(
    bridge: Bridge, clock: FakeClock
) -> None:
    client = await paired_client(bridge)
    try:
        await wait_for(lambda: bridge.gatekeeper.sessions == 1, what="the keyed session")
        await wait_for(lambda: bridge.gatekeeper.pending == 0, what="the pairing links gone")
        clock.advance(DEFAULT_IDLE_TIMEOUT - 1)
        await client.get_info()  # a request keeps it alive
        clock.advance(DEFAULT_IDLE_TIMEOUT - 1)
        assert bridge.sweep() == 0
        clock.advance(1)
        assert bridge.sweep() == 1
        assert bridge.gatekeeper.counts.idle_timeouts == 1
        await wait_for(lambda: client.stats.disconnects == 1, what="the client to see the drop")
        await client.get_info()  # it reconnects through the bridge on its own
        assert client.stats.connects == 2
    finally:
        await client.close()


async def test_a_pairing_session_stays_pending_and_ends_in_time(
    bridge: Bridge, i2c_gateway: GatewayThread
) -> None:
    client = client_for(bridge.port)
    identity = await client.identify()
    assert identity.serial == i2c_gateway.call(lambda g: g.serial)
    assert bridge.gatekeeper.counts.authenticated == 0  # first contact is XX: never counted
    await client.close()
