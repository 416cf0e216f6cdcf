"""Exactly once with Home Assistant's recorder: a crash at any point stores each record once.

Home Assistant's real recorder (SQLite) records the ``rayzig_event``s. A crash is an exception
raised at a chosen point of a sync (the importer is then abandoned, as a dead process would
leave it); records that were still in the recorder's queue when Home Assistant died are taken
out of the database again. A new importer on what was stored then imports the rest, and the
database must hold every record exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import ExitStack
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.recorder import Recorder, get_instance
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import session_scope
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from custom_components.rayzig.const import EVENT_RAYZIG
from custom_components.rayzig.events import CONFIRM_AT_END, FIRE_CHUNK, RayzigEventImporter
from rayzig_core.client import RayzigClient
from rayzig_core.testing.gateway import GatewayThread

from .test_events import capture, flood

MODULE = 3
RECORDS = max(5 * FIRE_CHUNK, CONFIRM_AT_END)
"""Records flooded into the module's log before the crashing sync: several chunks, and enough
that the end of the sync has the recorder commit them (the cursor is then confirmed)."""


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder must come before custom integrations are enabled."""


class Crash(BaseException):
    """Home Assistant dying (power cut) at a chosen moment."""


def _rows(hass: HomeAssistant) -> list[tuple[int, dict[str, Any]]]:
    with session_scope(hass=hass, read_only=True) as session:
        rows = session.execute(
            text(
                "SELECT events.event_id, event_data.shared_data FROM events "
                "JOIN event_types ON events.event_type_id = event_types.event_type_id "
                "LEFT JOIN event_data ON events.data_id = event_data.data_id "
                "WHERE event_types.event_type = :event_type"
            ),
            {"event_type": EVENT_RAYZIG},
        )
        return [(event_id, json.loads(shared)) for event_id, shared in rows]


def _delete(hass: HomeAssistant, event_ids: list[int]) -> None:
    with session_scope(hass=hass) as session:
        for event_id in event_ids:
            session.execute(text("DELETE FROM events WHERE event_id = :id"), {"id": event_id})


async def stored(hass: HomeAssistant) -> Counter[int]:
    """How often each sequence number of the module is in the database."""
    await async_wait_recording_done(hass)
    rows = await get_instance(hass).async_add_executor_job(_rows, hass)
    return Counter(data["seq"] for _, data in rows if data["module_id"] == MODULE)


async def forget_after(hass: HomeAssistant, seq: int) -> None:
    """Take the module's records after ``seq`` out of the database: still queued at the crash."""
    await async_wait_recording_done(hass)
    rows = await get_instance(hass).async_add_executor_job(_rows, hass)
    doomed = [i for i, data in rows if data["module_id"] == MODULE and data["seq"] > seq]
    await get_instance(hass).async_add_executor_job(_delete, hass, doomed)


async def started(
    hass: HomeAssistant, entry: MockConfigEntry, client: RayzigClient
) -> RayzigEventImporter:
    importer = RayzigEventImporter(hass, entry, client)
    await importer.async_load()
    return importer


def abandon(importer: RayzigEventImporter) -> None:
    """What a dead process leaves: no unload, no final write; only its subscriptions end."""
    while importer._unsubscribe:
        importer._unsubscribe.pop()()


CRASH_POINTS = ("intent", "first_chunk", "mid", "all_fired", "confirmed")


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_crash_at_any_point_stores_each_record_once(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    point: str,
) -> None:
    config_entry.add_to_hass(hass)
    importer = await started(hass, config_entry, client)
    await importer.async_sync([MODULE])
    flood(gateway, MODULE, RECORDS)
    newest = 1 + RECORDS
    seen = capture(hass)
    saves = importer._store._store.async_save
    rooms = importer._pace.async_room
    calls: Counter[str] = Counter()
    lost_from = newest  # records after this were still queued when Home Assistant died

    async def save(data: dict[str, Any]) -> None:
        calls["save"] += 1
        # Save 1 is the range about to be fired, save 2 the confirmed cursor.
        if (point, calls["save"]) in (("intent", 1), ("confirmed", 2)):
            raise Crash
        await saves(data)

    async def room() -> None:
        calls["room"] += 1
        if (point, calls["room"]) in (("first_chunk", 1), ("mid", 3)):
            raise Crash
        await rooms()

    async def confirm(threshold: int) -> None:
        raise Crash

    with ExitStack() as patches:
        patches.enter_context(patch.object(importer._store._store, "async_save", save))
        patches.enter_context(patch.object(importer._pace, "async_room", room))
        if point == "all_fired":
            patches.enter_context(patch.object(importer, "_async_confirm", confirm))
        with pytest.raises(Crash):
            await importer.async_sync([MODULE])
    abandon(importer)
    fired = [e.data["seq"] for e in seen]
    if point == "mid":
        assert fired == list(range(2, 2 + 2 * FIRE_CHUNK))
        lost_from = 1 + FIRE_CHUNK  # the second chunk never reached the database
    elif point == "all_fired":
        assert fired == list(range(2, newest + 1))
        lost_from = newest - FIRE_CHUNK
    elif point == "confirmed":
        assert fired == list(range(2, newest + 1))
    else:
        assert fired == []
        lost_from = 1
    await forget_after(hass, lost_from)

    seen.clear()
    importer = await started(hass, config_entry, client)
    await importer.async_sync([MODULE])
    counts = await stored(hass)
    assert counts == Counter(range(1, newest + 1)), point
    # Fired again: exactly what the database did not hold.
    assert [e.data["seq"] for e in seen] == list(range(lost_from + 1, newest + 1))
    await importer.async_stop()


async def test_reload_with_records_not_yet_confirmed(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
) -> None:
    """A clean stop leaves fired records pending; the next start finds them stored."""
    config_entry.add_to_hass(hass)
    importer = await started(hass, config_entry, client)
    await importer.async_sync([MODULE])
    flood(gateway, MODULE, FIRE_CHUNK)
    assert await importer.async_sync([MODULE]) == FIRE_CHUNK
    assert importer._store.cursors[MODULE].fired == 1 + FIRE_CHUNK  # not confirmed yet
    await importer.async_stop()

    seen = capture(hass)
    importer = await started(hass, config_entry, client)
    assert await importer.async_sync([MODULE]) == 0
    flood(gateway, MODULE, 2)
    assert await importer.async_sync([MODULE]) == 2
    assert [e.data["seq"] for e in seen] == [2 + FIRE_CHUNK, 3 + FIRE_CHUNK]
    assert await stored(hass) == Counter(range(1, 4 + FIRE_CHUNK))
    await importer.async_stop()


async def test_unreadable_database_fires_again_rather_than_lose(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    client: RayzigClient,
    gateway: GatewayThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If the lookup after a stop fails, the records left pending are fired again (not lost)."""
    config_entry.add_to_hass(hass)
    importer = await started(hass, config_entry, client)
    await importer.async_sync([MODULE])
    flood(gateway, MODULE, 3)
    await importer.async_sync([MODULE])
    await importer.async_stop()  # records 1..4 left pending (below the confirmation threshold)

    seen = capture(hass)

    def unreadable(**_: Any) -> Any:
        raise SQLAlchemyError("no such table: events")

    importer = await started(hass, config_entry, client)
    with patch("custom_components.rayzig.event_recorder.session_scope", unreadable):
        assert await importer.async_sync([MODULE]) == 4
    assert [e.data["seq"] for e in seen] == [1, 2, 3, 4]
    assert "Could not look up which imported events" in caplog.text
    await importer.async_stop()
