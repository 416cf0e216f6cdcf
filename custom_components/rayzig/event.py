"""Event entity per module: the newest record of its event log (power-on, command, repower, …)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from rayzig_core import Event, Module

from .const import ATTR_IS_ON, ATTR_LOST, ATTR_OUTPUT, ATTR_SEQ, ATTR_USER
from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry
from .entity import RayzigModuleEntity, async_add_module_entities
from .events import EVENT_KINDS, kind_name, signal_new_event

PARALLEL_UPDATES = 0
ATTR_MODULE_TIME = "module_time"
"""When the module logged the event (its own clock), ISO 8601 in UTC."""


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RayzigConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add one event entity per module, now and for modules joining later."""

    def factory(coordinator: RayzigCoordinator, module: Module) -> list[RayzigModuleEvent]:
        return [RayzigModuleEvent(coordinator, module)]

    async_add_module_entities(entry, async_add_entities, factory)


class RayzigModuleEvent(RayzigModuleEntity, EventEntity):
    """Fires for each record the importer takes from the module's event log."""

    _attr_translation_key = "module_event"
    _attr_event_types = list(EVENT_KINDS)
    _attr_entity_registry_enabled_default = False
    """Each of its events would be a logbook row "detected an event" beside the worded row."""

    def __init__(self, coordinator: RayzigCoordinator, module: Module) -> None:
        """Create the event entity of ``module``."""
        super().__init__(coordinator, module, "event")

    async def async_added_to_hass(self) -> None:
        """Listen for the records the importer dispatches for this module."""
        await super().async_added_to_hass()
        signal = signal_new_event(self.coordinator.config_entry.entry_id, self.module_id)
        self.async_on_remove(async_dispatcher_connect(self.hass, signal, self._async_handle_event))

    @callback
    def _async_handle_event(self, event: Event) -> None:
        if self.module is None:
            return  # another module took this id; this entity is about to go
        attributes: dict[str, Any] = {
            ATTR_OUTPUT: None if event.output is None else event.output + 1,
            ATTR_USER: event.user,
            ATTR_IS_ON: event.is_on,
            ATTR_SEQ: event.seq,
            ATTR_LOST: event.lost,
            ATTR_MODULE_TIME: datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
        }
        self._trigger_event(kind_name(event.kind), attributes)
        self.async_write_ha_state()
