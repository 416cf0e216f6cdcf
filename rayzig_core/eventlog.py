"""Incremental event-log sync from a cursor the caller persists (PROTOCOL.md §8.2).

The cursor of a module is the sequence number of the last record the caller has imported. A pull
returns everything newer, oldest first; when the ring overwrote records the caller never read, the
pull starts with one GAP record stating exactly how many were lost. The caller stores
:attr:`EventLogSync.cursors` after handling a pull, so nothing is imported twice across reconnects
or restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rayzig_core.client import RayzigClient
from rayzig_core.models import MAX_EVENTS_PER_MODULE, Event, EventKind

if TYPE_CHECKING:
    from rayzig_core.protocol.messages import EventBatch

BATCH_SIZE = 512


class EventLogSync:
    """Pulls new event-log records per module and keeps the cursors."""

    def __init__(
        self,
        client: RayzigClient,
        cursors: Mapping[int, int] | None = None,
        *,
        initial_backlog: int = 0,
    ) -> None:
        """Start from saved ``cursors``; a module without one imports ``initial_backlog`` events."""
        self._client = client
        self._cursors = dict(cursors or {})
        self.initial_backlog = max(0, min(initial_backlog, MAX_EVENTS_PER_MODULE))

    @property
    def cursors(self) -> dict[int, int]:
        """Module id → last imported sequence number (persist this)."""
        return dict(self._cursors)

    def forget(self, module_id: int) -> None:
        """Drop the cursor of a module that left the mesh."""
        self._cursors.pop(module_id, None)

    async def pull(self, module_id: int, *, batches: int | None = None) -> list[Event]:
        """Return every record after the module's cursor (with a leading GAP if any were lost).

        With ``batches``, stop after that many batches (a caller that reads a whole log in pages,
        letting other requests in between); an empty result then also means "caught up".
        """
        cursor = self._cursors.get(module_id)
        events: list[Event] = []
        first = await self._client.read_events(module_id, cursor or 0, BATCH_SIZE)
        if cursor is None:
            cursor = max(first.newest_seq - self.initial_backlog, 0)
            if cursor > 0:
                first = await self._client.read_events(module_id, cursor, BATCH_SIZE)
        elif first.newest_seq < cursor:
            # The module's log restarted (replaced or reset): its sequence began again.
            cursor = 0
            first = await self._client.read_events(module_id, 0, BATCH_SIZE)
        batch = first
        reads = 1
        while True:
            # Checked on every batch: records can also be overwritten while a pull is under way.
            # A cursor of 0 is a cursor too (nothing imported yet, e.g. the log was empty). The
            # loss is counted from the ring's oldest record, not the first one returned: a
            # limited account is not sent records about outputs it does not see (§7.4).
            if gap := gap_before(module_id, batch, cursor):
                events.append(gap)
            events.extend(batch.events)
            if batch.events:
                cursor = batch.events[-1].seq
            elif batch.oldest_seq <= cursor + 1:
                # Nothing this account sees follows the cursor, and nothing was lost: move on.
                cursor = max(cursor, batch.newest_seq)
            if not batch.events or cursor >= batch.newest_seq:
                break
            if batches is not None and reads >= batches:
                break
            reads += 1
            batch = await self._client.read_events(module_id, cursor, BATCH_SIZE)
        self._cursors[module_id] = cursor
        return events


def gap_before(module_id: int, batch: EventBatch, cursor: int) -> Event | None:
    """The GAP record for what ``batch`` lost after ``cursor`` (PROTOCOL.md §8.2), or None.

    The loss is counted from the ring's oldest record, not the first one returned: a limited
    account is not sent records about outputs it does not see (§7.4).
    """
    if not batch.events or batch.oldest_seq <= cursor + 1:
        return None
    return Event(
        module_id,
        batch.oldest_seq - 1,
        batch.events[0].timestamp,
        EventKind.GAP,
        None,
        None,
        None,
        lost=batch.oldest_seq - 1 - cursor,
    )
