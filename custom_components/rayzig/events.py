"""Import module event logs into Home Assistant exactly once (bus events, logbook, event entities).

Each module keeps its own event log (a ring of records with sequence numbers). The importer pulls
the records after a persisted cursor with :class:`rayzig_core.EventLogSync`, fires one
``rayzig_event`` per record **with the module's own timestamp** as ``time_fired``, tells the
module's event entity through the dispatcher, and then stores the cursors in Home Assistant
storage. A restart or an outage therefore imports each missed record once; records overwritten
before they could be read arrive as a single ``gap`` event stating how many were lost.

Exactly once across crashes: the cursors are written (atomically, flushed to disk) right after
each module's batch has been fired, and that write is awaited before the next module is pulled.
Only a crash between firing a batch and the end of its write can fire that one batch again at
the next start.

Syncs never overlap: every pull runs under one lock, and schedule requests are coalesced into one
background task (created on the config entry, so it ends on unload).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.storage import Store

from rayzig_core import (
    ConnectionState,
    Event,
    EventKind,
    EventLogSync,
    Module,
    ModuleLeft,
    NotFoundError,
    Notification,
    OutsideLimitationError,
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
    MANUFACTURER,
    STORAGE_VERSION,
)
from .logbook_entries import OwnCommands, async_fire_imported

_LOGGER = logging.getLogger(__name__)

ATTR_MODULE_NAME = "module_name"
ATTR_OUTPUT_NAME = "output_name"
SAVE_DELAY = 1.0
"""Seconds the store waits before dropping the cursor of a module that left (nothing is fired
again if that write is lost); imported batches are written at once."""

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
    """Dispatcher signal sent with each imported :class:`rayzig_core.Event`."""
    return f"{DOMAIN}_{entry_id}_event_{module_id}"


class RayzigEventImporter:
    """Pulls module event logs into Home Assistant, one record exactly once."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: RayzigClient) -> None:
        """Prepare the importer of ``entry``'s gateway; call :meth:`async_load` before syncing."""
        self.hass = hass
        self.entry = entry
        self.client = client
        # Atomic writes are flushed to disk (fsync): a cursor written after a batch survives a
        # power cut, not only a crash of Home Assistant.
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.events", atomic_writes=True
        )
        self._saved: dict[str, Any] | None = None
        """The cursors as last written by :meth:`_async_save` (None: not known to be stored)."""
        self._sync = EventLogSync(client, initial_backlog=self._import_window())
        self._serials: dict[int, str] = {}
        """Serial of the module each cursor belongs to (a replaced module starts afresh)."""
        self._lock = asyncio.Lock()
        self._pending: set[int] = set()
        self._pending_all = False
        self._task: asyncio.Task[None] | None = None
        self._unsub_state: CALLBACK_TYPE | None = None
        self._unsub_notice: CALLBACK_TYPE | None = None
        self._known: dict[int, Module] = {}
        """Modules as last synced, to name one that leaves the mesh."""
        self._loaded = False
        self._stopped = False
        self.imported = 0
        """Records imported since setup (diagnostics)."""
        self.own_commands = OwnCommands()
        """Commands Home Assistant sent (the switches note them), recognised in the log."""

    def _import_window(self) -> int:
        return int(self.entry.options.get(CONF_EVENT_IMPORT_WINDOW, DEFAULT_EVENT_IMPORT_WINDOW))

    @property
    def cursors(self) -> dict[int, int]:
        """Module id → sequence number of the last imported record."""
        return self._sync.cursors

    # --- life cycle ------------------------------------------------------------------------------

    async def async_load(self) -> None:
        """Load the cursors from storage and sync again whenever the gateway link comes back."""
        stored = await self._store.async_load() or {}
        cursors: dict[int, int] = {}
        for key, value in dict(stored.get("modules", {})).items():
            try:
                module_id = int(key)
                cursors[module_id] = int(value["seq"])
                self._serials[module_id] = str(value["serial"])
            except (KeyError, TypeError, ValueError):
                _LOGGER.warning("Ignoring a damaged event-log cursor for module %s", key)
        self._sync = EventLogSync(self.client, cursors, initial_backlog=self._import_window())
        self._saved = stored
        self._loaded = True
        self._unsub_state = self.client.subscribe_state(self._on_connection_state)
        self._unsub_notice = self.client.subscribe(self._on_notification)

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
        seq = self._sync.cursors.get(module_id, 0)
        self._sync.forget(module_id)
        self._serials.pop(module_id, None)
        self._schedule_save()
        if module is None:
            return
        # No log record tells when: the gateway's notification is the moment it left.
        event = Event(module_id, seq, time.time(), EventKind.LEFT, None, None, None)
        self._fire(module, self._device_id(module, create=False), event)

    async def async_stop(self) -> None:
        """Cancel the sync task and flush the cursors (called on unload)."""
        self._stopped = True
        for unsub in (self._unsub_state, self._unsub_notice):
            if unsub is not None:
                unsub()
        self._unsub_state = self._unsub_notice = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) is not None and current.cancelling():
                    raise
        if self._loaded:
            await self._store.async_save(self._data())

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
        module_id = module.module_id
        self._known[module_id] = module
        if self._serials.get(module_id, module.serial) != module.serial:
            # Another module took this id: its log has nothing to do with the old cursor.
            self._sync.forget(module_id)
        self._serials[module_id] = module.serial
        try:
            events = await self._sync.pull(module_id)
        except (NotFoundError, OutsideLimitationError):  # gone, or no longer ours to read
            self._sync.forget(module_id)
            self._serials.pop(module_id, None)
            self._known.pop(module_id, None)
            await self._async_save()
            return 0
        device_id = self._device_id(module)
        for event in events:
            self._fire(module, device_id, event)
        # Store the cursor before anything else is pulled: from here on a restart does not
        # fire this batch again. A crash before this write completes does (the one window).
        await self._async_save()
        return len(events)

    @callback
    def _device_id(self, module: Module, *, create: bool = True) -> str | None:
        """Device-registry id of the module's device (created early if entities are not up yet)."""
        registry = dr.async_get(self.hass)
        identifier = (DOMAIN, module.serial)
        identifiers = {identifier}
        by_identifier = getattr(registry, "async_get_device_by_identifier", None)
        if by_identifier is not None:  # pragma: no cover - HA 2026.8+ (async_get_device deprecated)
            device: dr.DeviceEntry | None = by_identifier(identifier, self.entry.entry_id)
        else:
            device = registry.async_get_device(identifiers=identifiers)
        if device is None:
            if not create:
                return None
            device = registry.async_get_or_create(
                config_entry_id=self.entry.entry_id,
                identifiers=identifiers,
                manufacturer=MANUFACTURER,
                model=module.model,
                name=module.name,
                serial_number=module.serial,
            )
        return device.id

    @callback
    def _fire(self, module: Module, device_id: str | None, event: Event) -> None:
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
        # The logbook row (if any) goes with it; Home Assistant's own commands keep their context.
        async_fire_imported(self.hass, data, event, self.own_commands.claim(event))
        async_dispatcher_send(
            self.hass, signal_new_event(self.entry.entry_id, module.module_id), event
        )

    # --- storage ---------------------------------------------------------------------------------

    async def _async_save(self) -> None:
        """Write the cursors now and wait for the write, unless they are stored as they are."""
        data = self._data()
        if data == self._saved:
            return
        await self._store.async_save(data)
        self._saved = data

    @callback
    def _schedule_save(self) -> None:
        self._saved = None  # the next _async_save writes whatever is stored by then
        self._store.async_delay_save(self._data, SAVE_DELAY)

    @callback
    def _data(self) -> dict[str, Any]:
        return {
            "modules": {
                str(module_id): {"seq": seq, "serial": self._serials.get(module_id, "")}
                for module_id, seq in sorted(self._sync.cursors.items())
            }
        }
