"""Targeted updates: which listeners of the coordinator hear about which change of the site data.

Like Home Assistant's hub integrations that update only the entities of the device that changed
(``shelly`` runs one coordinator per device, ``knx`` one callback per device), a listener names
what it shows through the coordinator's listener ``context``: a module id (the entities of that
module) or None (the site as a whole: membership, the gateway's info). A change of one module
then costs the same at 1,000 outputs as at 20.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.core import CALLBACK_TYPE, callback

from .site_data import SiteChanges


class SiteListeners:
    """The coordinator's listeners, indexed by the module they show (None: the whole site)."""

    def __init__(self) -> None:
        """Start with no listener."""
        self._by_module: dict[int, dict[int, CALLBACK_TYPE]] = {}
        self._site: dict[int, CALLBACK_TYPE] = {}
        self._last_key = 0

    @callback
    def add(self, update_callback: CALLBACK_TYPE, context: Any) -> Callable[[], None]:
        """Index ``update_callback`` by ``context`` (an int: a module id); returns its removal."""
        self._last_key += 1
        key = self._last_key
        if isinstance(context, int) and not isinstance(context, bool):
            bucket = self._by_module.setdefault(context, {})
        else:
            bucket = self._site
        bucket[key] = update_callback

        @callback
        def remove() -> None:
            bucket.pop(key, None)
            # Drop an emptied module's entry (only if it still is this bucket).
            if not bucket and isinstance(context, int) and self._by_module.get(context) is bucket:
                del self._by_module[context]

        return remove

    @callback
    def notify(self, changes: SiteChanges) -> None:
        """Call the listeners of the modules that changed, and the site's if the site did."""
        if changes.site:
            for update_callback in list(self._site.values()):
                update_callback()
        for module_id in changes.modules:
            for update_callback in list(self._by_module.get(module_id, {}).values()):
                update_callback()
