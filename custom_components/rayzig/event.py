"""Event entity per module: the newest record of its event log (power-on, command, repower, …).

The importer tells it only the newest record of each pull, so a back-fill writes its state once.
It comes back with its last event after a reload or restart, even if its state was unavailable
(the gateway away) when Home Assistant stored it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from homeassistant.components.event import EventEntity, EventExtraStoredData
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from rayzig_core import Event, Module

from .const import ATTR_IS_ON, ATTR_LOST, ATTR_OUTPUT, ATTR_SEQ, ATTR_USER
from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry
from .entity import RayzigModuleEntity, async_add_module_entities
from .event_data import EVENT_KINDS, kind_name, signal_new_event

PARALLEL_UPDATES = 0
ATTR_MODULE_TIME = "module_time"
"""When the module logged the event (its own clock), ISO 8601 in UTC."""
LAST_TRIGGERED: Final = "_EventEntity__last_event_triggered"
"""EventEntity's private time of its last event, which it restores only from an available state
(the same in HA 2025.4 and 2026.11); tests/ha/test_event.py shows the restore working."""


@dataclass
class RayzigEventStoredData(EventExtraStoredData):
    """The event platform's restore data, with the time of the last event."""

    last_event_triggered: str | None = None


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

    @property
    def extra_restore_state_data(self) -> RayzigEventStoredData:
        """What the event platform restores, and when the last event was seen."""
        stored = super().extra_restore_state_data
        return RayzigEventStoredData(
            stored.last_event_type, stored.last_event_attributes, self.state
        )

    async def async_added_to_hass(self) -> None:
        """Restore the last event's time if needed; listen for the importer's records."""
        await super().async_added_to_hass()
        if self.state is None and (extra := await self.async_get_last_extra_data()) is not None:
            # The platform restored the event's type and attributes but not its time: the
            # state it had stored was "unavailable".
            triggered = extra.as_dict().get("last_event_triggered")
            when = dt_util.parse_datetime(triggered) if isinstance(triggered, str) else None
            if when is not None:
                setattr(self, LAST_TRIGGERED, when)
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
