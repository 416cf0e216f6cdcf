"""Event import at the recorder's pace: chunks wait while its queue is long.

The real recorder cannot be made slow on purpose, so a stand-in takes its place in
``hass.data``: its queue grows by one per ``rayzig_event`` (as the recorder's does) and drains only
when the test says so. Time is Home Assistant's test clock (``async_fire_time_changed``); the test
waits for the importer to look at the queue, never for time to pass.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant.core import Event as HaEvent
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.recorder import DATA_INSTANCE
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.rayzig.const import DOMAIN, EVENT_RAYZIG
from custom_components.rayzig.event_pull import GROUP_RECORDS
from custom_components.rayzig.event_recorder import BACKLOG_BOUND, PACE_INTERVAL
from custom_components.rayzig.events import CONFIRM_AT_END, FIRE_CHUNK, RayzigEventImporter
from rayzig_core import EventsAvailable, Notification
from rayzig_core.client import RayzigClient
from rayzig_core.testing.gateway import GatewayThread

from .test_events import capture, flood

LIMIT = 60.0
"""Only a safety net against a hanging test: every wait below ends on an event."""


class SlowRecorder:
    """Stands in for the recorder: a queue that grows with each event and drains on request."""

    recording = True
    exclude_event_types: frozenset[str] = frozenset()

    def __init__(self, hass: HomeAssistant) -> None:
        self.queue = 0
        self.commits = 0
        self.looked = asyncio.Event()
        """Set whenever the importer reads the queue's length while it is above the bound."""
        self.async_db_ready: asyncio.Future[bool] = hass.loop.create_future()
        self.async_db_ready.set_result(True)
        hass.bus.async_listen(EVENT_RAYZIG, self._on_event)

    @callback
    def _on_event(self, event: HaEvent[dict[str, Any]]) -> None:
        self.queue += 1

    @property
    def backlog(self) -> int:
        if self.queue > BACKLOG_BOUND:
            self.looked.set()
        return self.queue

    async def async_block_till_done(self) -> None:
        """Everything given so far is written and committed."""
        self.queue = 0
        self.commits += 1


async def looked_again(hass: HomeAssistant, recorder: SlowRecorder) -> None:
    """Let Home Assistant's clock pass one pacing interval; wait until the queue was read."""
    recorder.looked.clear()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=PACE_INTERVAL * 2))
    async with asyncio.timeout(LIMIT):
        await recorder.looked.wait()


async def test_chunks_wait_while_the_recorder_queue_is_long(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    hass_storage: dict[str, Any],
) -> None:
    config_entry.add_to_hass(hass)
    recorder = SlowRecorder(hass)
    hass.data[DATA_INSTANCE] = recorder  # type: ignore[assignment]
    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    await importer.async_sync([1])
    recorder.queue = 0
    records = 2 * BACKLOG_BOUND  # the queue passes the bound part way through
    flood(gateway, 1, records)
    seen = capture(hass)

    sync = asyncio.create_task(importer.async_sync([1]))
    async with asyncio.timeout(LIMIT):
        await recorder.looked.wait()
    # Chunks went out while the queue held at most the bound; the next one waits.
    fired = (BACKLOG_BOUND // FIRE_CHUNK + 1) * FIRE_CHUNK
    assert len(seen) == fired
    assert recorder.queue == fired
    # The whole pull may be fired from here on: that range is on disk before any was fired
    # (with the first sync's record, which the recorder has not been asked to commit yet).
    stored = hass_storage[f"{DOMAIN}.{config_entry.entry_id}.events"]["data"]["modules"]["1"]
    assert (stored["seq"], stored["fired"]) == (0, 1 + records)

    # Time passes, the queue stays long: still nothing.
    await looked_again(hass, recorder)
    await looked_again(hass, recorder)
    assert len(seen) == fired
    assert not sync.done()

    # The recorder catches up: the rest follows, each record once.
    recorder.queue = 0
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=PACE_INTERVAL * 2))
    async with asyncio.timeout(LIMIT):
        assert await sync == records
    assert [e.data["seq"] for e in seen] == list(range(2, 2 + records))
    # Once the sync is done, the recorder is asked to commit what it holds: the cursor says
    # they are stored.
    assert records >= CONFIRM_AT_END
    assert recorder.commits == 1
    assert importer._store.cursors[1].fired is None
    assert importer._store.cursors[1].seq == 1 + records
    assert importer._pace.held == 1
    await importer.async_stop()


async def released(hass: HomeAssistant, recorder: SlowRecorder) -> None:
    """The recorder catches up; wait until the import is held again by its queue."""
    recorder.looked.clear()
    recorder.queue = 0
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=PACE_INTERVAL * 2))
    async with asyncio.timeout(LIMIT):
        await recorder.looked.wait()


async def test_records_logged_during_a_back_fill_are_fired_before_it_ends(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """Modules that notices name while a back-fill runs are pulled between two of its groups.

    Here, the test routes the gateway's notices to the importer as the coordinator does. The
    back-fill waits for the recorder; a user switches an output of a module the back-fill does
    not read and one of the module it is firing: both records are fired right after the group in
    hand, before the rest of the back-fill, each once.
    """
    config_entry.add_to_hass(hass)
    recorder = SlowRecorder(hass)
    hass.data[DATA_INSTANCE] = recorder  # type: ignore[assignment]
    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    await importer.async_sync([1, 2, 3])
    recorder.queue = 0
    noticed: set[int] = set()
    both = asyncio.Event()

    @callback
    def on_notice(notice: Notification) -> None:
        if isinstance(notice, EventsAvailable):
            importer.async_schedule_sync(notice.module_id)  # what the coordinator does
            noticed.add(notice.module_id)
            if noticed >= {1, 3}:
                both.set()

    unsubscribe = client.subscribe(on_notice)
    # Two groups: module 1 alone (past the recorder's bound), then module 2.
    flood(gateway, 1, 2 * BACKLOG_BOUND)
    flood(gateway, 2, GROUP_RECORDS)
    before = dict(importer.cursors)
    seen = capture(hass)
    sync = asyncio.create_task(importer.async_sync([1, 2]))
    async with asyncio.timeout(LIMIT):
        await recorder.looked.wait()  # module 1's group waits for the recorder

    for module_id in (3, 1):
        gateway.call(lambda gw, m=module_id: gw.site.set_output(m, 0, on=True, user="alice"))
    async with asyncio.timeout(LIMIT):
        await both.wait()
    await released(hass, recorder)  # module 2's group waits now, after its first chunk

    live = [e for e in seen if e.data["user"] == "alice"]
    assert [(e.data["module_id"], e.data["seq"]) for e in live] == [
        (1, before[1] + 2 * BACKLOG_BOUND + 1),
        (3, before[3] + 1),
    ]
    back_fill_of_2 = [e for e in seen if e.data["module_id"] == 2]
    assert len(back_fill_of_2) == FIRE_CHUNK
    assert seen.index(live[-1]) < seen.index(back_fill_of_2[0])
    assert not sync.done()

    recorder.queue = 0
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=PACE_INTERVAL * 2))
    async with asyncio.timeout(LIMIT):
        assert await sync == 2 * BACKLOG_BOUND + GROUP_RECORDS + 2
    # The sync the notices scheduled finds nothing left to do; every record was fired once.
    await hass.async_block_till_done(wait_background_tasks=True)
    unsubscribe()
    for module_id, count in ((1, 2 * BACKLOG_BOUND + 1), (2, GROUP_RECORDS), (3, 1)):
        seqs = [e.data["seq"] for e in seen if e.data["module_id"] == module_id]
        assert seqs == list(range(before[module_id] + 1, before[module_id] + 1 + count))
    assert importer.cursors == {
        **before,
        1: before[1] + 2 * BACKLOG_BOUND + 1,
        2: before[2] + GROUP_RECORDS,
        3: before[3] + 1,
    }
    await importer.async_stop()


async def test_no_pacing_for_a_recorder_that_excludes_rayzig_events(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    config_entry.add_to_hass(hass)
    recorder = SlowRecorder(hass)
    recorder.exclude_event_types = frozenset({EVENT_RAYZIG})
    recorder.queue = 10 * BACKLOG_BOUND
    hass.data[DATA_INSTANCE] = recorder  # type: ignore[assignment]
    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    await importer.async_sync([2])
    flood(gateway, 2, 3 * FIRE_CHUNK)
    assert await importer.async_sync([2]) == 3 * FIRE_CHUNK
    assert importer._pace.held == 0
    assert importer._store.cursors[2].fired is None
    await importer.async_stop()


async def test_a_recorder_without_database_cannot_confirm(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """A recorder whose database failed to start stores nothing: fired ranges stay fired."""
    config_entry.add_to_hass(hass)
    recorder = SlowRecorder(hass)
    recorder.async_db_ready = hass.loop.create_future()
    recorder.async_db_ready.set_result(False)
    hass.data[DATA_INSTANCE] = recorder  # type: ignore[assignment]
    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    flood(gateway, 4, CONFIRM_AT_END)
    await importer.async_sync([4])
    assert importer._store.cursors[4].fired == importer.cursors[4]
    assert recorder.commits == 0
    await importer.async_stop()

    # The next start cannot look anything up: the range counts as fired, nothing is repeated.
    seen = capture(hass)
    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    assert await importer.async_sync([4]) == 0
    assert seen == []
    assert importer._store.cursors[4].fired is None
    await importer.async_stop()


def test_options_state_the_database_cost() -> None:
    """The import window's description says what a large window costs, in every language."""
    component = Path(__file__).resolve().parents[2] / "custom_components" / "rayzig"
    for name in ("strings.json", "translations/en.json", "translations/de.json"):
        strings = json.loads((component / name).read_text(encoding="utf-8"))
        text = strings["options"]["step"]["settings"]["data_description"]["event_import_window"]
        assert "700" in text, name
        assert "5,7 MB" in text or "5.7 MB" in text, name


async def test_the_loop_gets_a_turn_after_every_chunk(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """With room in the recorder's queue, a back-fill still holds the loop for one chunk at most.

    Whatever is scheduled while a chunk is fired (a command's answer, a state write) runs
    before the next chunk.
    """
    config_entry.add_to_hass(hass)
    recorder = SlowRecorder(hass)
    hass.data[DATA_INSTANCE] = recorder  # type: ignore[assignment]
    importer = RayzigEventImporter(hass, config_entry, client)
    await importer.async_load()
    await importer.async_sync([3])
    records = 3 * FIRE_CHUNK
    assert records < BACKLOG_BOUND  # never held for the recorder: only the chunking yields
    flood(gateway, 3, records)
    seen = capture(hass)
    fired_before_turns: list[int] = []

    @callback
    def on_event(event: HaEvent[dict[str, Any]]) -> None:
        if len(seen) % FIRE_CHUNK == 1:  # a chunk's first record: ask for a turn of the loop
            hass.loop.call_soon(lambda: fired_before_turns.append(len(seen)))

    unsubscribe = hass.bus.async_listen(EVENT_RAYZIG, on_event)
    try:
        assert await importer.async_sync([3]) == records
    finally:
        unsubscribe()
    await hass.async_block_till_done()
    assert fired_before_turns == [FIRE_CHUNK, 2 * FIRE_CHUNK, 3 * FIRE_CHUNK]
    assert importer._pace.held == 0
    await importer.async_stop()
