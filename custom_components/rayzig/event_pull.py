"""Pulling modules' new event-log records, ahead of the firing, in groups.

:class:`LogPuller` reads each module's records after its cursor (:class:`rayzig_core.EventLogSync`,
PROTOCOL.md §8.2). A range the last run left fired but not known to be stored is read again from
its start, and the records the recorder's database already holds are dropped (:func:`unstored`).
Modules are pulled into groups of about :data:`GROUP_RECORDS` records, so that one cursor write
covers many small modules, and the importer pulls the next group while it fires the current one.
Modules that notices name while a sync runs are pulled between two groups (:meth:`LogPuller.named`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Final

from rayzig_core import (
    Event,
    EventKind,
    EventLogSync,
    Module,
    NotFoundError,
    OutsideLimitationError,
    RayzigClient,
)

from .event_cursors import CursorStore, ModuleCursor
from .event_recorder import RecorderPace

GROUP_RECORDS: Final = 1_000
"""Records pulled (from as many modules as it takes) before the group is fired."""


@dataclass(frozen=True, slots=True)
class Pulled:
    """One module's new records and the cursor they follow."""

    module: Module
    cursor: ModuleCursor | None
    """Where the records follow (None: the module is gone from the gateway)."""
    events: list[Event]


def position_before(events: list[Event], position: int) -> int:
    """The cursor a pull started from: before its first record (and the records a gap lost)."""
    if not events:
        return position
    first = events[0]
    return first.seq - first.lost if first.kind is EventKind.GAP else first.seq - 1


def unstored(events: list[Event], cursor: ModuleCursor, stored: set[int]) -> list[Event]:
    """``events`` without the records of ``cursor``'s fired range that the database holds.

    A gap inside that range counts only the records lost that were never stored (none: dropped).
    """
    fired = cursor.fired if cursor.fired is not None else cursor.seq
    kept: list[Event] = []
    for event in events:
        if event.seq <= fired:
            if event.kind is EventKind.GAP:
                first = event.seq - event.lost + 1
                lost = sum(seq not in stored for seq in range(first, event.seq + 1))
                if lost == 0:
                    continue
                event = replace(event, lost=lost)  # noqa: PLW2901 - the gap, recounted
            elif event.seq in stored:
                continue
        kept.append(event)
    return kept


_NOT_LOOKED_UP: Final = object()


class LogPuller:
    """Reads modules' new records after the cursors of a :class:`CursorStore`."""

    def __init__(
        self, client: RayzigClient, store: CursorStore, pace: RecorderPace, window: int
    ) -> None:
        """Pull with ``client``; a module seen for the first time brings ``window`` records."""
        self.client = client
        self.store = store
        self.pace = pace
        self.window = window
        self._left_fired = {m for m, c in store.cursors.items() if c.fired is not None}
        """Modules whose cursor the last run left with records fired but not known stored."""
        self._found_at_start: object = _NOT_LOOKED_UP

    async def group(self, modules: Iterator[Module]) -> list[Pulled]:
        """Pull modules from ``modules`` until about :data:`GROUP_RECORDS` records are in."""
        pulled: list[Pulled] = []
        records = 0
        for module in modules:
            pulled.append(found := await self.pull(module))
            records += len(found.events)
            if records >= GROUP_RECORDS:
                break
        return pulled

    async def named(
        self, named: set[int], modules: dict[int, Module], ahead: list[Pulled]
    ) -> list[Pulled]:
        """Pull (and take out of ``named``) the modules of ``named`` among ``modules``.

        A module of the group pulled ``ahead`` and not fired yet stays named: pulled again now,
        its records would be read twice; its newer records are pulled after that group.
        """
        busy = {pulled.module.module_id for pulled in ahead}
        wanted = [modules[m] for m in sorted(named) if m in modules and m not in busy]
        named.difference_update(module.module_id for module in wanted)
        return [await self.pull(module) for module in wanted]

    async def pull(self, module: Module) -> Pulled:
        """One module's records after its cursor, with the cursor they follow."""
        module_id = module.module_id
        cursor = self.store.cursors.get(module_id)
        if cursor is not None and cursor.serial != module.serial:
            # Another module took this id: its log has nothing to do with the old cursor.
            cursor = None
        stored: set[int] = set()
        resolving = (
            cursor is not None and cursor.fired is not None and module_id in self._left_fired
        )
        if resolving and cursor is not None:
            # Fired (or about to be) when the last run ended: the database says what it holds.
            found = await self._stored_at_start()
            if found is None:
                cursor = cursor.stored()  # nothing records events: fired is as far as it goes
                resolving = False
            else:
                stored = found.get(module_id, set())
        start = None if cursor is None else cursor.seq if resolving else cursor.imported
        sync = EventLogSync(
            self.client, {} if start is None else {module_id: start}, initial_backlog=self.window
        )
        try:
            events = await sync.pull(module_id)
        except (NotFoundError, OutsideLimitationError):  # gone, or no longer ours to read
            return Pulled(module, None, [])
        self._left_fired.discard(module_id)
        position = sync.cursors[module_id]
        before = position_before(events, position)
        if cursor is None or start is None or before < start:
            cursor = ModuleCursor(before, module.serial)  # new, or its log began again
        elif resolving:
            events = unstored(events, cursor, stored)
            if not events:
                cursor = cursor.stored()  # everything of the range is in the database
        if not events and cursor.fired is None:
            cursor = replace(cursor, seq=max(cursor.seq, position))
        return Pulled(module, cursor, events)

    async def _stored_at_start(self) -> dict[int, set[int]] | None:
        """What the database holds of the ranges the last run left fired (looked up once)."""
        if self._found_at_start is _NOT_LOOKED_UP:
            left = {m: c for m, c in self.store.cursors.items() if m in self._left_fired}
            self._found_at_start = await self.pace.async_stored_seqs(left)
        found = self._found_at_start
        return found if isinstance(found, dict) else None
