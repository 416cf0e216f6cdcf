"""What Home Assistant's recorder takes: an import paced to its backlog, and what it has stored.

The recorder writes events on its own thread from a queue, and commits every few seconds. An
import that fires faster than it writes only grows that queue, and past 65,000 queued items with
little free memory the recorder stops recording for the rest of the run. So the importer waits,
before each chunk, until the queue holds at most :data:`BACKLOG_BOUND` items; and it asks the
recorder's database which records a crash may have left fired but not stored. Without a recorder
(or one that excludes ``rayzig_event``) nothing is paced and nothing can be looked up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.recorder import DATA_INSTANCE, session_scope

from .const import ATTR_MODULE_ID, ATTR_SEQ, EVENT_RAYZIG
from .event_cursors import ModuleCursor

if TYPE_CHECKING:
    from homeassistant.components.recorder.core import Recorder

_LOGGER = logging.getLogger(__package__)

BACKLOG_BOUND: Final = 1_000
"""Items the recorder's queue may hold before the next chunk waits (about a second of work)."""
PACE_INTERVAL: Final = 0.1
"""Seconds between looks at the recorder's queue while it is above the bound."""
TIME_MARGIN: Final = 0.001
"""Seconds added around a looked-up time range (timestamps are stored as floating point)."""

_STORED_EVENTS: Final = (
    "SELECT event_data.shared_data FROM events "
    "JOIN event_types ON events.event_type_id = event_types.event_type_id "
    "LEFT JOIN event_data ON events.data_id = event_data.data_id "
    "WHERE event_types.event_type = :event_type "
    "AND events.time_fired_ts BETWEEN :oldest AND :newest"
)
"""The recorder's schema (events, event_types, event_data), the same in 2025.4 and 2026.11."""


class RecorderPace:
    """Paces an import to Home Assistant's recorder and asks it what it has stored."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Follow ``hass``'s recorder, if it has one."""
        self.hass = hass
        self.held = 0
        """How often a chunk waited for the recorder's queue (diagnostics)."""

    @property
    def recorder(self) -> Recorder | None:
        """The recorder, if one runs and stores ``rayzig_event``."""
        instance = self.hass.data.get(DATA_INSTANCE)
        if (
            instance is None
            or not instance.recording
            or EVENT_RAYZIG in instance.exclude_event_types
        ):
            return None
        return instance

    async def async_room(self) -> None:
        """Wait while the recorder's queue holds more than :data:`BACKLOG_BOUND` items.

        Gives the loop a turn even when there is room, so that a back-fill never holds it for
        more than one chunk (a command or a state write waits for one chunk at most).
        """
        await asyncio.sleep(0)
        waited = False
        while (recorder := self.recorder) is not None and recorder.backlog > BACKLOG_BOUND:
            if not waited:
                waited = True
                self.held += 1
                _LOGGER.debug("Event import waits for the recorder (%d queued)", recorder.backlog)
            await self._async_tick()

    async def async_stored(self) -> bool:
        """Wait until the recorder has committed everything fired so far; False without one."""
        recorder = self.recorder
        if recorder is None or not await recorder.async_db_ready:
            return False
        await recorder.async_block_till_done()
        return True

    async def async_stored_seqs(
        self, cursors: dict[int, ModuleCursor]
    ) -> dict[int, set[int]] | None:
        """Per module: the records of its fired range (after ``seq``, up to ``fired``) stored.

        One look at the database for every module with such a range, once the recorder has
        committed what it was given (a reload's predecessor may have fired them a moment ago).
        None when no recorder can tell (then nothing was stored, and nothing can be looked up).
        """
        ranges = {
            module_id: cursor for module_id, cursor in cursors.items() if cursor.fired is not None
        }
        if not await self.async_stored():
            return None
        if not ranges:
            return {}
        recorder = self.recorder
        assert recorder is not None
        oldest = min(c.oldest for c in ranges.values() if c.oldest is not None) - TIME_MARGIN
        newest = max(c.newest for c in ranges.values() if c.newest is not None) + TIME_MARGIN
        seqs = {module_id: (c.seq, c.fired or c.seq) for module_id, c in ranges.items()}
        found = await recorder.async_add_executor_job(
            _stored_seqs, self.hass, seqs, (oldest, newest)
        )
        if found is None:
            # Better fired twice than lost: the import must not stall on an unreadable database.
            _LOGGER.warning(
                "Could not look up which imported events the recorder's database holds; "
                "events that may have been fired before Home Assistant stopped are fired again"
            )
            return {module_id: set() for module_id in seqs}
        return found

    async def _async_tick(self) -> None:
        """Let :data:`PACE_INTERVAL` pass (on Home Assistant's clock)."""
        future = self.hass.loop.create_future()

        @callback
        def elapsed(_now: datetime) -> None:
            if not future.done():
                future.set_result(None)

        cancel = async_call_later(self.hass, PACE_INTERVAL, elapsed)
        try:
            await future
        finally:
            cancel()


def _stored_seqs(
    hass: HomeAssistant, seqs: dict[int, tuple[int, int]], times: tuple[float, float]
) -> dict[int, set[int]] | None:
    """Read (on the recorder's thread pool) which records of the ranges the database holds.

    None if the database cannot be read (another schema, a damaged file).
    """
    # Only here, with a recorder running (which has loaded sqlalchemy already).
    from sqlalchemy import text  # noqa: PLC0415
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    found: dict[int, set[int]] = {module_id: set() for module_id in seqs}
    try:
        with session_scope(hass=hass, read_only=True) as session:
            rows = session.execute(
                text(_STORED_EVENTS),
                {"event_type": EVENT_RAYZIG, "oldest": times[0], "newest": times[1]},
            ).all()
    except SQLAlchemyError:
        return None
    for (shared,) in rows:
        data = json.loads(shared) if shared else {}
        module_id, seq = data.get(ATTR_MODULE_ID), data.get(ATTR_SEQ)
        if module_id in seqs and isinstance(seq, int):
            after, through = seqs[module_id]
            if after < seq <= through:
                found[module_id].add(seq)
    return found
