"""Event-log sync and persistence against the real virtual gateway on loopback (PROTOCOL.md §8.2).

Cursors persisted by the caller import nothing twice across new syncs, reconnections and gateway
restarts; an overrun of the 8192-record ring is reported as one GAP record with the exact number
lost; a restart of the gateway loses no events, outputs, users or enrolled clients.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rayzig_core.client import RayzigClient
from rayzig_core.eventlog import EventLogSync
from rayzig_core.models import (
    MAX_EVENTS_PER_MODULE,
    ConnectionState,
    Event,
    EventKind,
    RestorePreset,
    UserLevel,
)
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import Site, VirtualGateway
from rayzig_core.virtual_gateway.device.answers import MAX_PLAINTEXT
from rayzig_core.virtual_gateway.device.handlers import MAX_EVENTS_PER_BATCH, event_batch
from tests.core.conftest import (
    OWNER,
    PASSWORDS,
    connected,
    connector,
    pair,
    switchable_output,
    wait_for,
)


def generate(gw: GatewayThread, module_id: int, index: int, count: int) -> int:
    """Append ``count`` COMMAND events on the gateway's thread; returns the newest seq."""

    def run(g: VirtualGateway) -> int:
        for i in range(count):
            g.site.set_output(module_id, index, i % 2 == 0, user="simulator")
        return g.site.ring(module_id).newest_seq

    return gw.call(run)


def newest(gw: GatewayThread, module_id: int) -> int:
    return gw.call(lambda g: g.site.ring(module_id).newest_seq)


def assert_contiguous(events: list[Event], after: int, until: int) -> None:
    """Records (GAPs included) cover after+1..until exactly once, in order."""
    expected = after
    for event in events:
        if event.kind is EventKind.GAP:
            assert event.lost > 0
            assert event.seq == expected + event.lost
        else:
            assert event.seq == expected + 1, (event.seq, expected)
        expected = event.seq
    assert expected == until


async def test_cursors_import_nothing_twice_across_syncs_reconnections_and_restarts(
    owned: GatewayThread,
) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    client = await connected(owned, credentials)
    sync = EventLogSync(client)
    assert await sync.pull(module_id) == []  # no backlog wanted: start at the newest record
    start = sync.cursors[module_id]
    assert start == newest(owned, module_id)

    for i in range(5):
        await client.set_output(module_id, index, i % 2 == 0)
    first = await sync.pull(module_id)
    assert [(e.kind, e.user, e.output) for e in first] == [(EventKind.COMMAND, OWNER, index)] * 5
    assert [e.is_on for e in first] == [True, False, True, False, True]
    assert_contiguous(first, start, newest(owned, module_id))
    saved = sync.cursors
    await client.close()

    # A new client and a new sync from the saved cursors: nothing again.
    client = await connected(owned, credentials)
    sync = EventLogSync(client, saved)
    assert await sync.pull(module_id) == []
    generate(owned, module_id, index, 3)
    owned.restart()
    await wait_for(lambda: client.state is ConnectionState.CONNECTED and client.stats.connects == 2)
    second = await sync.pull(module_id)
    assert len(second) == 3
    assert_contiguous(first + second, start, newest(owned, module_id))
    assert await sync.pull(module_id) == []
    await client.close()


async def test_initial_backlog_imports_the_last_records(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    top = generate(owned, module_id, index, 30)
    async with await connected(owned, credentials) as client:
        events = await EventLogSync(client, initial_backlog=10).pull(module_id)
        assert [e.seq for e in events] == list(range(top - 9, top + 1))
        everything = await EventLogSync(client, initial_backlog=100_000).pull(module_id)
        assert [e.seq for e in everything] == list(range(1, top + 1))
        assert everything[0].kind is EventKind.POWER_ON


async def test_a_pull_of_one_batch_at_a_time_reads_the_whole_log(owned: GatewayThread) -> None:
    """``batches=1``: one read per pull, each where the last one ended, until nothing is new."""
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    top = generate(owned, module_id, index, 1200)
    async with await connected(owned, credentials) as client:
        sync = EventLogSync(client, {module_id: 0})
        pages: list[list[Event]] = []
        while page := await sync.pull(module_id, batches=1):
            assert len(page) <= MAX_EVENTS_PER_BATCH
            pages.append(page)
        assert len(pages) >= 3
        assert_contiguous([event for page in pages for event in page], 0, top)
        assert sync.cursors[module_id] == top


@pytest.mark.parametrize("new_events", [MAX_EVENTS_PER_MODULE, MAX_EVENTS_PER_MODULE + 1, 8292])
async def test_overrun_is_reported_as_one_gap_with_the_exact_number_lost(
    owned: GatewayThread, new_events: int
) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    generate(owned, module_id, index, 7)
    async with await connected(owned, credentials) as client:
        sync = EventLogSync(client, initial_backlog=3)
        assert len(await sync.pull(module_id)) == 3
        saved = sync.cursors
    cursor = saved[module_id]
    top = generate(owned, module_id, index, new_events)  # while the client is away
    async with await connected(owned, credentials) as client:
        sync = EventLogSync(client, saved)
        events = await sync.pull(module_id)
        assert sync.cursors[module_id] == top
        assert await sync.pull(module_id) == []
    lost = new_events - MAX_EVENTS_PER_MODULE
    gaps = [e for e in events if e.kind is EventKind.GAP]
    if lost == 0:
        assert gaps == []
        assert events[0].seq == cursor + 1
    else:
        assert gaps == [events[0]]
        assert events[0].lost == lost
        assert events[0].seq == cursor + lost
        assert events[0].module_id == module_id
        assert events[0].timestamp == events[1].timestamp
        assert (events[0].output, events[0].user, events[0].is_on) == (None, None, None)
    assert len(events) - len(gaps) == MAX_EVENTS_PER_MODULE
    assert_contiguous(events, cursor, top)


async def test_overrun_since_a_saved_cursor_of_zero_is_reported(owned: GatewayThread) -> None:
    """A cursor of 0 (nothing imported yet, e.g. the log was empty) is a cursor like any other."""
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    top = generate(owned, module_id, index, MAX_EVENTS_PER_MODULE + 50)
    async with await connected(owned, credentials) as client:
        events = await EventLogSync(client, {module_id: 0}).pull(module_id)
    oldest = top - MAX_EVENTS_PER_MODULE + 1
    assert events[0].kind is EventKind.GAP
    assert events[0].lost == oldest - 1
    assert_contiguous(events, 0, top)


class SlowReader(RayzigClient):
    """A client during whose pull the module keeps logging (as a busy site would)."""

    gw: GatewayThread
    burst: tuple[int, int, int] | None = None

    async def read_events(
        self, module_id: int, after_seq: int, max_count: int = 512
    ) -> m.EventBatch:
        batch = await super().read_events(module_id, after_seq, max_count)
        if self.burst is not None:
            burst, self.burst = self.burst, None
            generate(self.gw, *burst)
        return batch


async def test_records_overwritten_during_a_pull_are_reported(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    cursor = newest(owned, module_id)
    generate(owned, module_id, index, MAX_EVENTS_PER_MODULE)  # a full ring: nothing lost yet
    client = SlowReader(connector(owned), credentials)
    client.gw = owned
    client.burst = (module_id, index, 600)  # after the first batch, 600 more records arrive
    await client.connect()
    try:
        sync = EventLogSync(client, {module_id: cursor})
        events = await sync.pull(module_id)
    finally:
        await client.close()
    top = newest(owned, module_id)
    assert_contiguous(events, cursor, top)
    gaps = [e for e in events if e.kind is EventKind.GAP]
    imported = len(events) - len(gaps)
    assert len(gaps) == 1
    assert 0 < gaps[0].lost < 600
    assert imported + gaps[0].lost == top - cursor


async def test_log_that_restarted_is_read_from_its_start(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    module_id, _ = switchable_output(owned)
    async with await connected(owned, credentials) as client:
        top = newest(owned, module_id)
        sync = EventLogSync(client, {module_id: top + 1000})  # a cursor from a replaced module
        events = await sync.pull(module_id)
        assert [e.seq for e in events] == list(range(1, top + 1))
        assert sync.cursors[module_id] == top
        sync.forget(module_id)
        assert module_id not in sync.cursors


async def test_restart_loses_no_events_outputs_users_or_clients(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    client = await connected(owned, credentials)
    try:
        await client.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
        _, ursula = await pair(owned, "ursula", PASSWORDS["ursula"])
        module_id, index = switchable_output(owned)
        for on in itertools.islice(itertools.cycle((True, False)), 7):
            await client.set_output(module_id, index, on)
        await client.set_restore_preset(module_id, index, RestorePreset.ON)
        await client.set_utility_output(module_id, index, controllable=True)
        before = (
            await client.list_modules(),
            await client.list_users(),
            await client.list_clients(),
            [await client.read_events(mod, 0, 10_000) for mod in (module_id, 1, 12)],
        )

        owned.restart()  # at once: within the gateway's save delay
        await wait_for(
            lambda: client.state is ConnectionState.CONNECTED and client.stats.connects == 2
        )
        after = (
            await client.list_modules(),
            await client.list_users(),
            await client.list_clients(),
            [await client.read_events(mod, 0, 10_000) for mod in (module_id, 1, 12)],
        )
        assert after == before
        assert {u.name for u in after[1]} == {OWNER, "ursula"}
        async with await connected(owned, ursula) as other:  # its enrolment survived too
            assert (await other.get_info()).user == "ursula"
    finally:
        await client.close()


# --- batches fill one frame (sans I/O) ------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    users=st.lists(st.text(min_size=1, max_size=32), min_size=1, max_size=4),
    count=st.integers(1, 700),
    after=st.integers(-3, 700),
    max_count=st.integers(-1, 600),
)
def test_event_batch_is_the_largest_prefix_that_fits_one_frame(
    users: list[str], count: int, after: int, max_count: int
) -> None:
    gateway, _ = VirtualGateway.factory_new(site=Site.generate(module_count=1), scrypt_n=2**4)
    ring = gateway.site.ring(1)
    for n in range(count):
        ring.append(
            module_id=1,
            timestamp=1_735_000_000.123 + 37.1 * n,
            kind=EventKind.COMMAND if n % 5 else EventKind.REPOWER,
            output=n % 4 if n % 5 else None,
            user=users[n % len(users)] if n % 5 else None,
            is_on=bool(n % 2) if n % 5 else None,
        )
    wanted = max(1, min(max_count, MAX_EVENTS_PER_BATCH))
    expected = ring.read(max(after, 0), wanted)
    batch = event_batch(gateway.site, m.ReadEvents(1, after, max_count))
    assert len(m.encode(2**63 - 1, batch)) <= MAX_PLAINTEXT
    assert (batch.oldest_seq, batch.newest_seq) == (ring.oldest_seq, ring.newest_seq)
    assert list(batch.events) == expected[: len(batch.events)]
    if expected:
        assert batch.events
    if len(batch.events) < len(expected):  # cut for size: one more record would not fit
        bigger = replace(batch, events=tuple(expected[: len(batch.events) + 1]))
        assert len(m.encode(2**62, bigger)) > MAX_PLAINTEXT


@pytest.mark.parametrize("name", ["u" * n for n in range(1, 33)] + ["é" * n for n in range(1, 33)])
def test_event_batch_fills_the_frame_to_the_byte(name: str) -> None:
    """Records of one size: whatever the slack left at the cut, the batch fits and is maximal."""
    gateway, _ = VirtualGateway.factory_new(site=Site.generate(module_count=1), scrypt_n=2**4)
    ring = gateway.site.ring(1)
    for n in range(MAX_EVENTS_PER_BATCH):
        ring.append(
            module_id=1, timestamp=1.5, kind=EventKind.COMMAND, output=1, user=name, is_on=n > 0
        )
    batch = event_batch(gateway.site, m.ReadEvents(1, 0, MAX_EVENTS_PER_BATCH))
    expected = ring.read(0, MAX_EVENTS_PER_BATCH)
    assert len(m.encode(2**63 - 1, batch)) <= MAX_PLAINTEXT
    bigger = replace(batch, events=tuple(expected[: len(batch.events) + 1]))
    assert len(m.encode(2**62, bigger)) > MAX_PLAINTEXT
