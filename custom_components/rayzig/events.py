"""Import module event logs into Home Assistant exactly once (bus events, logbook, event entities).

Each module keeps its own event log (a ring of records with sequence numbers). The importer pulls
the records after a persisted cursor with :class:`rayzig_core.EventLogSync` and fires one
``rayzig_event`` per record **with the module's own timestamp** as ``time_fired``; records
overwritten before they could be read arrive as a single ``gap`` event stating how many were
lost. The module's event entity is told only the newest record of each pull: a back-fill of
thousands of records writes its state once.

At the pace Home Assistant keeps: records are fired in chunks, each held until the recorder's
queue is short again (:mod:`.event_recorder`); without a recorder nothing is paced, but the loop
runs other work between chunks.

Exactly once, across restarts, outages, reloads and crashes (:mod:`.event_cursors`): with a
recorder, the range about to be fired is written *before* it is fired, and advanced to "stored"
once the recorder has committed it. A start that finds such a range asks the recorder's database
which of its records it holds and fires only the others (records never stored are fired again;
nothing stored is repeated). Without a recorder the cursor is written before each chunk is
fired, so nothing is fired twice.

Syncs never overlap: every pull runs under one lock, and schedule requests are coalesced into one
background task (created on the config entry, so it ends on unload).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import replace

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send

from rayzig_core import (
    ConnectionState,
    Event,
    EventKind,
    EventLogSync,
    Module,
    ModuleLeft,
    NotFoundError,
    Notification,
    RayzigClient,
    RayzigError,
)

from .const import (
    ATTR_DEVICE_ID,
    ATTR_IS_ON,
    ATTR_KIND,
    ATTR_LOST,
    ATTR_MODULE_ID,
    ATTR_OUTPUT,
    ATTR_SEQ,
    ATTR_USER,
    CONF_EVENT_IMPORT_WINDOW,
    DEFAULT_EVENT_IMPORT_WINDOW,
    DOMAIN,
    EVENT_RAYZIG,
)
from .devices import async_module_device_id
from .event_cursors import CursorStore, ModuleCursor
from .event_recorder import RecorderPace

_LOGGER = logging.getLogger(__name__)

ATTR_MODULE_NAME = "module_name"
ATTR_OUTPUT_NAME = "output_name"
FIRE_CHUNK = 200
"""Records fired in one go; the recorder's queue (or, without one, the loop) gets a turn after."""
CONFIRM_AT = 1_000
"""Fired records not yet known to be stored after which the importer waits for the recorder to
commit them (each wait makes it commit, so live records are not confirmed one by one)."""

_NOT_LOOKED_UP = object()

EVENT_KINDS: tuple[str, ...] = tuple(kind.name.lower() for kind in EventKind)
"""Event kinds as they appear in bus events, triggers and the event entity."""


def kind_name(kind: EventKind) -> str:
    """Name of an event kind as used in bus events and triggers (``EventKind.GAP`` → ``gap``)."""
    return kind.name.lower()


def output_name(module: Module, output: int | None) -> str | None:
    """Name of output index ``output`` of ``module``; None if module-wide or not known."""
    if output is None:
        return None
    for candidate in module.outputs:
        if candidate.index == output:
            return candidate.name or None
    return None


def signal_new_event(entry_id: str, module_id: int) -> str:
    """Dispatcher signal sent with the newest :class:`rayzig_core.Event` of each pull."""
    return f"{DOMAIN}_{entry_id}_event_{module_id}"


def _position_before(events: list[Event], position: int) -> int:
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


class RayzigEventImporter:
    """Pulls module event logs into Home Assistant, one record exactly once."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: RayzigClient) -> None:
        """Prepare the importer of ``entry``'s gateway; call :meth:`async_load` before syncing."""
        self.hass = hass
        self.entry = entry
        self.client = client
        self._store = CursorStore(hass, entry.entry_id)
        self._pace = RecorderPace(hass)
        self._lock = asyncio.Lock()
        self._pending: set[int] = set()
        self._pending_all = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._known: dict[int, Module] = {}
        """Modules as last synced, to name one that leaves the mesh."""
        self._left_fired: set[int] = set()
        """Modules whose cursor the last run left with records fired but not known stored."""
        self._found_at_start: object = _NOT_LOOKED_UP
        """Per module, the records the database holds of the range the last run left fired."""
        self._loaded = False
        self._stopped = False
        self.imported = 0
        """Records fired since setup (diagnostics)."""

    @property
    def cursors(self) -> dict[int, int]:
        """Module id → sequence number of the last record fired."""
        return {module_id: cursor.imported for module_id, cursor in self._store.cursors.items()}

    # --- life cycle ------------------------------------------------------------------------------

    async def async_load(self) -> None:
        """Load the cursors from storage and sync again whenever the gateway link comes back."""
        await self._store.async_load()
        self._left_fired = {m for m, c in self._store.cursors.items() if c.fired is not None}
        self._loaded = True
        self._unsubscribe = [
            self.client.subscribe_state(self._on_connection_state),
            self.client.subscribe(self._on_notification),
        ]

    @callback
    def _on_connection_state(self, state: ConnectionState) -> None:
        """After a reconnect, fetch whatever the modules logged while the link was down."""
        if state is ConnectionState.CONNECTED:
            self.async_schedule_sync()

    @callback
    def _on_notification(self, notice: Notification) -> None:
        """Fire a ``left`` event when a module leaves the mesh (its log went with it)."""
        if isinstance(notice, ModuleLeft):
            self._async_module_left(notice.module_id)

    @callback
    def _async_module_left(self, module_id: int) -> None:
        module = self._known.pop(module_id, None)
        cursor = self._store.cursors.get(module_id)
        self._store.async_drop(module_id)
        if module is None:
            return
        # No log record tells when: the gateway's notification is the moment it left.
        seq = cursor.imported if cursor is not None else 0
        event = Event(module_id, seq, time.time(), EventKind.LEFT, None, None, None)
        self._fire(module, async_module_device_id(self.hass, self.entry, module), [event])
        async_dispatcher_send(self.hass, signal_new_event(self.entry.entry_id, module_id), event)

    async def async_stop(self) -> None:
        """Cancel the sync task and flush the cursors (called on unload)."""
        self._stopped = True
        while self._unsubscribe:
            self._unsubscribe.pop()()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) is not None and current.cancelling():
                    raise
        if self._loaded:
            await self._store.async_save()

    async def async_remove(self) -> None:
        """Delete the stored cursors (the config entry was removed)."""
        await self._store.async_remove()

    # --- syncing ---------------------------------------------------------------------------------

    @callback
    def async_schedule_sync(self, module_id: int | None = None) -> None:
        """Sync ``module_id`` (every module if None) soon; requests are coalesced."""
        if self._stopped:
            return
        if module_id is None:
            self._pending_all = True
        else:
            self._pending.add(module_id)
        if self._task is None or self._task.done():
            self._task = self.entry.async_create_background_task(
                self.hass, self._run_pending(), f"{DOMAIN} event-log sync {self.entry.entry_id}"
            )

    async def _run_pending(self) -> None:
        """Work through scheduled syncs until none are left; errors are retried on the next one."""
        while self._pending_all or self._pending:
            module_ids: list[int] | None = None if self._pending_all else sorted(self._pending)
            self._pending_all = False
            self._pending.clear()
            try:
                await self.async_sync(module_ids)
            except RayzigError as err:
                _LOGGER.debug("Event-log sync postponed: %s", err)

    async def async_sync(self, module_ids: Iterable[int] | None = None) -> int:
        """Import new records of ``module_ids`` (every module if None); returns how many.

        Raises RayzigError if the gateway cannot be reached; records imported before the error
        stay imported and their cursors are saved.
        """
        async with self._lock:
            wanted_ids = None if module_ids is None else set(module_ids)
            modules = await self._modules(wanted_ids)
            wanted = sorted(modules) if wanted_ids is None else sorted(wanted_ids)
            total = 0
            for module_id in wanted:
                module = modules.get(module_id)
                if module is None:
                    continue
                total += await self._sync_module(module)
                await self._async_confirm(CONFIRM_AT)
            self.imported += total
            return total

    async def _modules(self, wanted: set[int] | None) -> dict[int, Module]:
        """Modules by id: the coordinator's view if it knows them all, else ask the gateway."""
        runtime = getattr(self.entry, "runtime_data", None)
        coordinator = getattr(runtime, "coordinator", None)
        data = getattr(coordinator, "data", None)
        if data is not None:
            modules: dict[int, Module] = data.modules
            if wanted is None or wanted <= modules.keys():
                return modules
        return {module.module_id: module for module in await self.client.list_modules()}

    async def _sync_module(self, module: Module) -> int:
        """Pull one module's new records and fire them; returns how many were fired."""
        module_id = module.module_id
        self._known[module_id] = module
        cursor = self._store.cursors.get(module_id)
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
        options = self.entry.options
        window = int(options.get(CONF_EVENT_IMPORT_WINDOW, DEFAULT_EVENT_IMPORT_WINDOW))
        sync = EventLogSync(
            self.client, {} if start is None else {module_id: start}, initial_backlog=window
        )
        try:
            events = await sync.pull(module_id)
        except NotFoundError:
            self._known.pop(module_id, None)
            self._store.cursors.pop(module_id, None)
            await self._store.async_save()
            return 0
        self._left_fired.discard(module_id)
        position = sync.cursors[module_id]
        before = _position_before(events, position)
        if cursor is None or start is None or before < start:
            cursor = ModuleCursor(before, module.serial)  # new, or its log began again
        elif resolving:
            events = unstored(events, cursor, stored)
            if not events:
                cursor = cursor.stored()  # everything of the range is in the database
        if not events:
            if cursor.fired is None:
                cursor = replace(cursor, seq=max(cursor.seq, position))
            self._store.cursors[module_id] = cursor
            await self._store.async_save()
            return 0
        await self._fire_paced(module, cursor, events)
        return len(events)

    async def _stored_at_start(self) -> dict[int, set[int]] | None:
        """What the database holds of the ranges the last run left fired (looked up once)."""
        if self._found_at_start is _NOT_LOOKED_UP:
            left = {m: c for m, c in self._store.cursors.items() if m in self._left_fired}
            self._found_at_start = await self._pace.async_stored_seqs(left)
        found = self._found_at_start
        return None if not isinstance(found, dict) else found

    async def _fire_paced(self, module: Module, cursor: ModuleCursor, events: list[Event]) -> None:
        """Fire ``events`` in chunks at the recorder's pace, each chunk's cursor written first."""
        module_id = module.module_id
        device_id = async_module_device_id(self.hass, self.entry, module, create=True)
        if self._pace.recorder is not None:
            times = [event.timestamp for event in events]
            cursor = cursor.firing(events[-1].seq, min(times), max(times))
            self._store.cursors[module_id] = cursor
            await self._store.async_save()  # the intent: everything up to here may be fired
        for start in range(0, len(events), FIRE_CHUNK):
            chunk = events[start : start + FIRE_CHUNK]
            await self._pace.async_room()
            if self._pace.recorder is None:
                # Nothing can tell afterwards whether a chunk was fired: count it before.
                cursor = replace(cursor, seq=chunk[-1].seq, fired=None, oldest=None, newest=None)
                self._store.cursors[module_id] = cursor
                await self._store.async_save()
            self._fire(module, device_id, chunk)
        async_dispatcher_send(
            self.hass, signal_new_event(self.entry.entry_id, module_id), events[-1]
        )

    async def _async_confirm(self, threshold: int) -> None:
        """Once ``threshold`` fired records wait, let the recorder commit; then they are stored."""
        waiting = sum(cursor.pending for cursor in self._store.cursors.values())
        if waiting == 0 or waiting < threshold:
            return
        before = dict(self._store.cursors)
        if await self._pace.async_stored():
            for module_id, cursor in before.items():
                if self._store.cursors.get(module_id) is cursor:
                    self._store.cursors[module_id] = cursor.stored()
            await self._store.async_save()

    @callback
    def _fire(self, module: Module, device_id: str | None, events: list[Event]) -> None:
        """Fire each record on the bus at its module time."""
        fire = self.hass.bus.async_fire
        for event in events:
            data = {
                ATTR_DEVICE_ID: device_id,
                ATTR_MODULE_ID: module.module_id,
                ATTR_MODULE_NAME: module.name,
                ATTR_OUTPUT: None if event.output is None else event.output + 1,
                ATTR_OUTPUT_NAME: output_name(module, event.output),
                ATTR_KIND: kind_name(event.kind),
                ATTR_USER: event.user,
                ATTR_IS_ON: event.is_on,
                ATTR_SEQ: event.seq,
                ATTR_LOST: event.lost,
            }
            fire(EVENT_RAYZIG, data, time_fired=event.timestamp)
