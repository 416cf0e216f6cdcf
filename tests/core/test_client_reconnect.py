"""Cutting a reconnection back-off short: ``reconnect_now`` and the cheap ``probe``.

The back-off here is an hour, so a reconnection within the test can only come from the nudge:
the tests wait for connection states (events), never for time to pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from rayzig_core.client import RayzigClient
from rayzig_core.models import ConnectionState
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpTransport
from tests.core.conftest import CountingConnector, connected, pair

HOUR = 3600.0
LIMIT = 30.0
"""Only a safety net against a hanging test: every wait below ends on an event."""


class States:
    """The connection states a client went through, with a way to wait for one."""

    def __init__(self, client: RayzigClient) -> None:
        self.seen: list[ConnectionState] = []
        self._changed = asyncio.Event()
        self.unsubscribe = client.subscribe_state(self._on_state)

    def _on_state(self, state: ConnectionState) -> None:
        self.seen.append(state)
        self._changed.set()

    async def reach(self, predicate: Callable[[list[ConnectionState]], bool]) -> None:
        """Wait until ``predicate(seen)`` holds."""
        async with asyncio.timeout(LIMIT):
            while not predicate(self.seen):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def slow(owned: GatewayThread) -> AsyncIterator[tuple[RayzigClient, CountingConnector]]:
    """A connected client whose back-off waits an hour, on a connector that counts attempts."""
    _, credentials = await pair(owned)
    counting = CountingConnector(owned.port)
    client = RayzigClient(
        counting, credentials, backoff_initial=HOUR, backoff_max=HOUR, request_timeout=5.0
    )
    await client.connect()
    try:
        yield client, counting
    finally:
        await client.close()


async def test_reconnect_now_ends_the_back_off_wait(
    owned: GatewayThread, slow: tuple[RayzigClient, CountingConnector]
) -> None:
    client, counting = slow
    states = States(client)
    client.reconnect_now()  # connected: nothing to do
    assert states.seen == []

    owned.stop()
    await states.reach(lambda seen: ConnectionState.BACKOFF in seen)
    attempts = counting.attempts
    # Still away: the nudged attempt fails and the client waits out its back-off again.
    client.reconnect_now()
    await states.reach(lambda seen: seen.count(ConnectionState.BACKOFF) == 2)
    assert counting.attempts > attempts
    assert ConnectionState.CONNECTED not in states.seen

    owned.start()
    client.reconnect_now()
    await states.reach(lambda seen: seen[-1] is ConnectionState.CONNECTED)
    assert (await client.get_info()).serial
    states.unsubscribe()


async def test_reconnect_now_from_a_state_listener(
    owned: GatewayThread, slow: tuple[RayzigClient, CountingConnector]
) -> None:
    """A nudge given while the client announces BACKOFF is not lost."""
    client, counting = slow
    states = States(client)
    nudges: list[int] = []

    def nudge_once(state: ConnectionState) -> None:
        if state is ConnectionState.BACKOFF and not nudges:
            nudges.append(counting.attempts)
            client.reconnect_now()

    unsubscribe = client.subscribe_state(nudge_once)
    owned.stop()
    # The nudge given in the first BACKOFF announcement makes an attempt at once (it fails).
    await states.reach(lambda seen: seen.count(ConnectionState.BACKOFF) == 2)
    assert counting.attempts > nudges[0]
    unsubscribe()
    states.unsubscribe()


async def test_reconnect_now_when_closed_does_nothing(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    client = await connected(owned, credentials)
    await client.close()
    client.reconnect_now()
    assert client.state is ConnectionState.CLOSED


async def test_probe_opens_and_closes_a_transport(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    counting = CountingConnector(owned.port)
    client = RayzigClient(counting, credentials)
    assert await client.probe()
    assert counting.attempts == 1
    assert client.state is ConnectionState.DISCONNECTED  # no session was opened
    owned.stop()
    assert not await client.probe()
    await client.close()


class Silent:
    """A connector whose connections never complete (a host that drops every packet)."""

    description = "tcp://silent"

    async def connect(self) -> TcpTransport:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_probe_gives_up_after_its_timeout() -> None:
    client = RayzigClient(Silent())
    assert not await client.probe(timeout=0)
    await client.close()
