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
background task (created on the config entry, so it ends on unload). Modules named while a sync
runs (new records) are pulled by it between two groups: never held until a back-fill has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    Module,
    ModuleLeft,
    Notification,
    RayzigClient,
    RayzigError,
)

from .const import (
    ATTR_IS_ON,
    ATTR_KIND,
    ATTR_LOST,
    ATTR_OUTPUT,
    ATTR_SEQ,
    ATTR_USER,
    CONF_EVENT_IMPORT_WINDOW,
    DEFAULT_EVENT_IMPORT_WINDOW,
    DOMAIN,
)
from .devices import async_module_device_id
from .event_cursors import CursorStore
from .event_data import (
    ATTR_OUTPUT_NAME,
    KIND_NAMES,
    bus_data_of,
    signal_new_event,
)
from .event_pull import LogPuller, Pulled
from .event_recorder import RecorderPace
from .logbook_entries import OwnCommands, async_fire_imported
from .runtime_history import RuntimeHistory
from .runtime_statistics import RuntimeStatistics

_LOGGER = logging.getLogger(__name__)

FIRE_CHUNK = 100
"""Records fired in one go (a few ms of loop time); the loop gets a turn after each chunk, and
the next waits while the recorder's queue is long."""
CONFIRM_AT = 20_000
"""Fired records not yet known to be stored after which a back-fill waits, between two groups,
for the recorder to commit them (this bounds what a start after a crash looks up)."""
CONFIRM_AT_END = 1_000
"""The same once a sync is done (each wait makes the recorder commit: live records are not
confirmed one by one)."""


class RayzigEventImporter:
    """Pulls module event logs into Home Assistant, one record exactly once."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: RayzigClient) -> None:
        """Prepare the importer of ``entry``'s gateway; call :meth:`async_load` before syncing."""
        self.hass = hass
        self.entry = entry
        self.client = client
        self._store = CursorStore(hass, entry.entry_id)
        self._pace = RecorderPace(hass)
        window = int(entry.options.get(CONF_EVENT_IMPORT_WINDOW, DEFAULT_EVENT_IMPORT_WINDOW))
        self._puller = LogPuller(client, self._store, self._pace, window)
        self.runtime = RuntimeStatistics(hass, entry.entry_id, self._store)
        """The outputs' on-time and switching cycles, folded from the same records."""
        self._lock = asyncio.Lock()
        self.history = RuntimeHistory(hass, entry, client, self.runtime, self._lock)
        """Reads the rest of a module's log for its runtime totals, after the import."""
        self._pending: set[int] = set()
        self._pending_all = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._known: dict[int, Module] = {}
        """Modules as last synced, to name one that leaves the mesh."""
        self._loaded = False
        self._stopped = False
        self.imported = 0
        """Records fired since setup (diagnostics)."""
        self.own_commands = OwnCommands()
        """Commands Home Assistant sent (the switches note them), recognised in the log."""

    @property
    def cursors(self) -> dict[int, int]:
        """Module id → sequence number of the last record fired."""
        return {module_id: cursor.imported for module_id, cursor in self._store.cursors.items()}

    # --- life cycle ------------------------------------------------------------------------------

    async def async_load(self) -> None:
        """Load the cursors from storage and sync again whenever the gateway link comes back."""
        await self._store.async_load()
        self._puller = LogPuller(self.client, self._store, self._pace, self._puller.window)
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
        self.runtime.async_drop(module_id)
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
        await self.history.async_stop()
        if self._loaded:
            await self._store.async_save()

    async def async_remove(self) -> None:
        """Delete the stored cursors and the outputs' statistics (the config entry was removed)."""
        await self._store.async_load()
        await self.runtime.async_clear()
        await self._store.async_remove()

    # --- syncing ---------------------------------------------------------------------------------

    @callback
    def async_schedule_sync(self, module_id: int | None = None) -> None:
        """Sync ``module_id`` (every module if None) soon; coalesced, or taken by a running sync."""
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
            if self._lock.locked():  # the running sync takes named modules between its groups
                async with self._lock:
                    pass
                continue
            module_ids: list[int] | None = None if self._pending_all else sorted(self._pending)
            self._pending_all = False
            self._pending.clear()
            try:
                await self.async_sync(module_ids)
            except RayzigError as err:
                _LOGGER.debug("Event-log sync postponed: %s", err)

    async def async_sync(self, module_ids: Iterable[int] | None = None) -> int:
        """Import new records of ``module_ids`` (every module if None); returns how many.

        Modules named meanwhile (:meth:`async_schedule_sync`) are pulled between two groups.
        Raises RayzigError if the gateway cannot be reached; records imported before the error
        stay imported and their cursors are saved.
        """
        async with self._lock:
            wanted_ids = None if module_ids is None else set(module_ids)
            modules = await self._modules(wanted_ids)
            wanted = sorted(modules) if wanted_ids is None else sorted(wanted_ids)
            remaining = iter([modules[m] for m in wanted if m in modules])
            total = 0
            # The next group is pulled from the gateway while the current one is fired.
            ahead = asyncio.ensure_future(self._puller.group(remaining))
            try:
                while group := await ahead:
                    ahead = asyncio.ensure_future(self._puller.group(remaining))
                    total += await self._take(group)
                    if self._pending:  # modules named meanwhile, once the group ahead is in
                        named = await self._puller.named(self._pending, modules, await ahead)
                        total += await self._take(named) if named else 0
                    await self._async_confirm(CONFIRM_AT)
            finally:
                if not ahead.done():
                    ahead.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ahead
                self.imported += total
            await self._async_confirm(CONFIRM_AT_END)
            await self.runtime.async_import()
            self.history.async_schedule()
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

    async def _take(self, group: list[Pulled]) -> int:
        """Fire a group's records in paced chunks, their cursors written first; how many."""
        recorder = self._pace.recorder is not None
        devices: dict[int, str | None] = {}
        for pulled in group:
            module = pulled.module
            module_id = module.module_id
            if pulled.cursor is None:
                self._known.pop(module_id, None)
                self._store.cursors.pop(module_id, None)
                continue
            self._known[module_id] = module
            self.runtime.begin(pulled, self._store.cursors.get(module_id))
            cursor = pulled.cursor
            if pulled.events:
                devices[module_id] = async_module_device_id(
                    self.hass, self.entry, module, create=True
                )
                if recorder:
                    times = [event.timestamp for event in pulled.events]
                    cursor = cursor.firing(pulled.events[-1].seq, min(times), max(times))
            self._store.cursors[module_id] = cursor
        records = [(p.module, event) for p in group for event in p.events]
        if recorder:
            # Runtime totals are folded before the cursors that cover the records are written.
            self.runtime.fold(records)
        # With a recorder: the intent, everything of the group may be fired from here on.
        await self._store.async_save()
        for start in range(0, len(records), FIRE_CHUNK):
            chunk = records[start : start + FIRE_CHUNK]
            await self._pace.async_room()
            if self._pace.recorder is None:
                await self._async_count_before_firing(chunk, devices)
            self._fire_records(chunk, devices)
        for pulled in group:
            if pulled.events:
                signal = signal_new_event(self.entry.entry_id, pulled.module.module_id)
                async_dispatcher_send(self.hass, signal, pulled.events[-1])
        self.runtime.async_dispatch()
        return len(records)

    async def _async_count_before_firing(
        self, chunk: list[tuple[Module, Event]], devices: dict[int, str | None]
    ) -> None:
        """Without a recorder nothing tells afterwards what was fired: write the chunk's cursors."""
        for module, event in chunk:
            cursor = self._store.cursors[module.module_id]
            self._store.cursors[module.module_id] = replace(
                cursor, seq=event.seq, fired=None, oldest=None, newest=None
            )
        self.runtime.fold(chunk)
        try:
            await self._store.async_save()
        except asyncio.CancelledError:
            # Unloading: the write goes on (shielded), so the chunk goes out with it.
            self._fire_records(chunk, devices)
            raise

    @callback
    def _fire_records(
        self, records: list[tuple[Module, Event]], devices: dict[int, str | None]
    ) -> None:
        """Fire a chunk's records; each module's constant data is prepared once per chunk."""
        prepared: dict[int, tuple[dict[str, object], dict[int, str | None]]] = {}
        for module, event in records:
            if (module_data := prepared.get(module.module_id)) is None:
                module_data = prepared[module.module_id] = bus_data_of(
                    module, devices.get(module.module_id)
                )
            self._fire_one(module_data, event)

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
        module_data = bus_data_of(module, device_id)
        for event in events:
            self._fire_one(module_data, event)

    @callback
    def _fire_one(
        self, module_data: tuple[dict[str, object], dict[int, str | None]], event: Event
    ) -> None:
        """Fire one record (its module's data prepared by :func:`.event_data.bus_data_of`)."""
        common, output_names = module_data
        output = event.output
        data = {
            **common,
            ATTR_OUTPUT: None if output is None else output + 1,
            ATTR_OUTPUT_NAME: None if output is None else output_names.get(output),
            ATTR_KIND: KIND_NAMES[event.kind],
            ATTR_USER: event.user,
            ATTR_IS_ON: event.is_on,
            ATTR_SEQ: event.seq,
            ATTR_LOST: event.lost,
        }
        # The logbook row (if any) goes with it; Home Assistant's own commands keep their context.
        async_fire_imported(self.hass, data, event, self.own_commands.claim(event))
