"""Notifications caused by a request follow that request's response (gateway frame order).

The requester gets its acknowledgement first and then the OutputChanged and EventsAvailable
notifications of its own command; every other session allowed to read still gets them.
"""

from __future__ import annotations

import asyncio

from rayzig_core.models import EventKind
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from tests.core.conftest import RawSession, pair, switchable_output


async def _next(session: RawSession, within: float = 5.0) -> m.Envelope:
    """The next frame of any kind, in the order the gateway sent it."""
    raw = await asyncio.wait_for(session.transport.receive(), within)
    return session.channel.open(raw)


async def test_response_comes_before_the_notifications_it_caused(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    want = not owned.call(lambda g: g.site.module(module_id).outputs[index].is_on)
    requester = await RawSession.keyed(owned.port, credentials)
    other = await RawSession.keyed(owned.port, credentials)
    try:
        await requester.send(5, m.SetOutput(module_id, index, want))

        first = await _next(requester)
        assert first.request_id == 5
        assert isinstance(first.message, m.OutputResponse)
        assert first.message.output.is_on is want

        second = await _next(requester)
        assert second.request_id == 0
        assert isinstance(second.message, m.OutputChanged)
        assert second.message.module_id == module_id
        assert second.message.output.index == index
        assert second.message.output.is_on is want
        assert second.message.cause is EventKind.COMMAND

        third = await _next(requester)
        assert isinstance(third.message, m.EventsAvailable)
        assert third.message.module_id == module_id

        # The other session gets the same notifications, in the same order.
        seen = [(await _next(other)).message for _ in range(2)]
        assert isinstance(seen[0], m.OutputChanged)
        assert seen[0] == second.message
        assert seen[1] == third.message
    finally:
        await requester.close()
        await other.close()


async def test_notifications_outside_requests_are_not_held_back(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    session = await RawSession.keyed(owned.port, credentials)
    try:
        # A change that no request caused (the site itself) goes out at once.
        was = owned.call(lambda g: g.site.module(module_id).outputs[index].is_on)
        owned.call(lambda g: g.site.set_output(module_id, index, not was, user="site"))
        envelope = await _next(session)
        assert isinstance(envelope.message, m.OutputChanged)
        # And a request after it still answers first.
        await session.send(1, m.SetOutput(module_id, index, was))
        frames = [await _next(session) for _ in range(3)]
        kinds = [type(f.message) for f in frames]
        assert kinds[0] is m.EventsAvailable  # of the site change above
        assert kinds[1:] == [m.OutputResponse, m.OutputChanged]
    finally:
        await session.close()
