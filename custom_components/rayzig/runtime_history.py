"""Reading a module's whole event log for its runtime statistics, in the background (§8.3).

The event import fires only the import window's records on the bus, but the statistics count the
module's whole log: a module whose totals start after older records (``ModuleRuntime.backfill``,
set by :meth:`.runtime_statistics.RuntimeStatistics.begin`) has its log read from the start, after
the import, one module at a time and one batch (a :class:`rayzig_core.EventLogSync` read of up to
512 records) at a time. Each batch is read and folded under the importer's lock, so it never
overlaps a sync, and the client is free for commands between two batches. The totals, with the
sequence number they were folded to, are written every :data:`SAVE_RECORDS` records, when a
module is done and whenever the importer writes its cursors (the same file): a restart or a crash
resumes the read after the last records written, never counting one twice. Once a read finds
nothing newer, the importer's pulls fold the records again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback

from rayzig_core import (
    EventLogSync,
    NotFoundError,
    OutsideLimitationError,
    RayzigClient,
    RayzigError,
)

from .const import DOMAIN
from .event_cursors import CursorStore
from .runtime_statistics import RuntimeStatistics

_LOGGER = logging.getLogger(__package__)

SAVE_RECORDS: Final = 2_000
"""Records folded between two writes of the totals (and imports of the completed hours): a
batch is often only a hundred records or so (one frame), and each write is flushed to disk."""


class RuntimeHistory:
    """Folds the older records of modules' logs into their runtime totals, batch by batch."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: RayzigClient,
        runtime: RuntimeStatistics,
        lock: asyncio.Lock,
    ) -> None:
        """Read with ``client``, under ``lock`` (the importer's: never during a sync)."""
        self.hass = hass
        self.entry = entry
        self.client = client
        self.runtime = runtime
        self._store: CursorStore = runtime.store
        self._lock = lock
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.batches = 0
        """Batches read and folded since setup (diagnostics, tests)."""
        self._unsaved = 0
        """Records folded since the totals were last written."""

    @callback
    def async_schedule(self) -> None:
        """Start reading if some module's totals wait for the older part of its log."""
        if self._stopped or self._next() is None:
            return
        if self._task is None or self._task.done():
            self._task = self.entry.async_create_background_task(
                self.hass, self._run(), f"{DOMAIN} runtime history {self.entry.entry_id}"
            )

    async def async_stop(self) -> None:
        """Cancel the read (it resumes after the last batch written at the next start)."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _next(self) -> int | None:
        """The first module whose totals wait for its log (and that was pulled since setup)."""
        waiting = (
            module_id
            for module_id, state in self._store.runtime.items()
            if state.backfill and self.runtime.pulled(module_id)
        )
        return min(waiting, default=None)

    async def _run(self) -> None:
        """Read batch after batch until no module waits; a lost link ends it until a sync."""
        while (module_id := self._next()) is not None:
            try:
                await self.async_batch(module_id)
            except RayzigError as err:
                _LOGGER.debug("Reading the event logs for runtime statistics postponed: %s", err)
                return

    async def async_batch(self, module_id: int) -> None:
        """Read and fold the next batch of one module's log; write the totals and the hours."""
        async with self._lock:
            state = self._store.runtime.get(module_id)
            if state is None or not state.backfill:
                return
            sync = EventLogSync(self.client, {module_id: state.seq})
            try:
                events = await sync.pull(module_id, batches=1)
            except (NotFoundError, OutsideLimitationError):  # gone, or no longer ours to read
                events = []
            if self._store.runtime.get(module_id) is not state:
                return  # the module left while the batch was read
            if events:
                self.runtime.fold_module(module_id, state, events)
                self._unsaved += len(events)
            else:
                state.backfill = False  # caught up: the importer's pulls fold from here on
                self._store.runtime_changed.add(module_id)
            self.batches += 1
            self.runtime.async_dispatch()
            if not state.backfill or self._unsaved >= SAVE_RECORDS:
                # The totals and their seq are written together, whenever it is: a restart
                # folds again only what came after (never a record twice, none skipped).
                self._unsaved = 0
                await self.runtime.async_import()
                await self._store.async_save()
