"""The event importer's cursors in Home Assistant storage: what is stored, and what may be fired.

Per module: ``seq``, the last record known to be stored (in the recorder's database, or fired
when nothing records events), and, while some are not known to be stored yet, ``fired``: the
last record that may have been fired, with the time range of those in between. ``fired`` is
written *before* the records are fired, so after a crash the importer knows exactly which
records to look up in the database instead of firing them again blindly.

The outputs' runtime statistics (:mod:`.runtime_statistics`) are stored in the same file and
written with the same atomic write, so that they never disagree with the cursors after a crash.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store

from rayzig_core import JsonCodec, ModuleRuntime

from .const import DOMAIN, STORAGE_VERSION

_LOGGER = logging.getLogger(__package__)

DROP_DELAY = 1.0
"""Seconds the store waits before dropping the cursor of a module that left (nothing is fired
again if that write is lost); every other change is written at once."""


@dataclass(frozen=True, slots=True)
class ModuleCursor:
    """Where the import of one module's event log stands (sequence numbers, PROTOCOL.md §8.2)."""

    seq: int
    """The last record known to be stored."""
    serial: str
    """The module the log belongs to (another module under the same id starts afresh)."""
    fired: int | None = None
    """The last record that may have been fired; records after ``seq`` up to it may or may not
    be in the database (None: nothing is pending)."""
    oldest: float | None = None
    """Module time of the oldest record that may have been fired after ``seq``."""
    newest: float | None = None
    """Module time of the newest record that may have been fired after ``seq``."""

    @property
    def imported(self) -> int:
        """The last record handed to Home Assistant (fired), stored or not."""
        return self.seq if self.fired is None else self.fired

    @property
    def pending(self) -> int:
        """How many sequence numbers are fired but not known to be stored."""
        return 0 if self.fired is None else self.fired - self.seq

    def firing(self, through: int, oldest: float, newest: float) -> ModuleCursor:
        """The cursor once records up to ``through`` (times ``oldest``..``newest``) may be fired."""
        if self.fired is not None and self.oldest is not None and self.newest is not None:
            oldest, newest = min(oldest, self.oldest), max(newest, self.newest)
        return replace(self, fired=through, oldest=oldest, newest=newest)

    def stored(self) -> ModuleCursor:
        """The cursor once every fired record is known to be stored."""
        return replace(self, seq=self.imported, fired=None, oldest=None, newest=None)


_CODEC = JsonCodec(ModuleCursor)
_RUNTIME_CODEC = JsonCodec(ModuleRuntime)


class CursorStore:
    """The cursors of one config entry, written atomically and flushed to disk."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Prepare the store ``rayzig.<entry_id>.events``; :meth:`async_load` reads it."""
        # Atomic writes are flushed to disk (fsync): a cursor survives a power cut.
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.events", atomic_writes=True
        )
        self.cursors: dict[int, ModuleCursor] = {}
        self._saved: dict[str, Any] | None = None
        """The data as last written (None: not known to be stored)."""
        self._encoded: dict[int, tuple[ModuleCursor, Any]] = {}
        """Each module's cursor as last encoded: a save encodes only the cursors that changed."""
        self.runtime: dict[int, ModuleRuntime] = {}
        """Module id → its outputs' runtime statistics (saved with the cursors)."""
        self.runtime_changed: set[int] = set()
        """Modules whose runtime statistics changed since they were last encoded."""
        self._runtime_encoded: dict[int, Any] = {}

    async def async_load(self) -> None:
        """Read the cursors; a damaged one is dropped with a warning (its module starts afresh)."""
        stored = await self._store.async_load() or {}
        for key, value in dict(stored.get("modules", {})).items():
            try:
                self.cursors[int(key)] = _CODEC.decode(value)
            except (TypeError, ValueError):
                _LOGGER.warning("Ignoring a damaged event-log cursor for module %s", key)
        for key, value in dict(stored.get("runtime", {})).items():
            try:
                self.runtime[int(key)] = _RUNTIME_CODEC.decode(value)
            except (TypeError, ValueError):
                _LOGGER.warning("Ignoring damaged runtime statistics for module %s", key)
        self._saved = stored

    async def async_save(self) -> None:
        """Write the cursors now and wait for the write, unless they are stored as they are."""
        data = self._data()
        if data == self._saved:
            return
        # A write cut short by unload would still finish on its thread, possibly after the
        # final one: shielded, it completes (holding the store's lock) before any later write.
        await asyncio.shield(self._store.async_save(data))
        self._saved = data

    @callback
    def async_drop(self, module_id: int) -> None:
        """Forget a module's cursor and runtime statistics; written shortly after."""
        self._encoded.pop(module_id, None)
        self._runtime_encoded.pop(module_id, None)
        had_runtime = self.runtime.pop(module_id, None) is not None
        if self.cursors.pop(module_id, None) is None and not had_runtime:
            return
        self._saved = None  # the next async_save writes whatever is current by then
        self._store.async_delay_save(self._data, DROP_DELAY)

    async def async_remove(self) -> None:
        """Delete the stored cursors (the config entry was removed)."""
        await self._store.async_remove()

    @callback
    def _data(self) -> dict[str, Any]:
        modules: dict[str, Any] = {}
        for module_id, cursor in sorted(self.cursors.items()):
            cached = self._encoded.get(module_id)
            if cached is None or cached[0] is not cursor:
                cached = self._encoded[module_id] = (cursor, _CODEC.encode(cursor))
            modules[str(module_id)] = cached[1]
        runtime: dict[str, Any] = {}
        for module_id, state in sorted(self.runtime.items()):
            if module_id in self.runtime_changed or module_id not in self._runtime_encoded:
                self._runtime_encoded[module_id] = _RUNTIME_CODEC.encode(state)
            runtime[str(module_id)] = self._runtime_encoded[module_id]
        self.runtime_changed.clear()
        return {"modules": modules, "runtime": runtime}
