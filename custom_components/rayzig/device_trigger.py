"""Device triggers on Rayzig module events: a whole module, or one of its outputs.

Each module device offers a trigger per event kind for the whole module. The kinds whose records
name an output (a command, a power-restore preset applied) are offered once more per output, Home
Assistant's way: ``subtype`` is what the automation editor shows (the output's name, or
``any_output`` for the whole module) and ``output`` (numbered from 1, as in ``rayzig_event``) is
what the trigger matches, so a trigger keeps working when the output is renamed. Triggers saved
before outputs could be named have no ``subtype`` and stay module-wide.
"""

from __future__ import annotations

from typing import Any, Final

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_EVENT_DATA,
    CONF_PLATFORM,
    CONF_TYPE,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from rayzig_core import EventKind, Module

from .const import ATTR_DEVICE_ID, ATTR_KIND, ATTR_OUTPUT, DOMAIN, EVENT_RAYZIG
from .data import RayzigConfigEntry
from .event_data import EVENT_KINDS, kind_name

CONF_SUBTYPE: Final = "subtype"
CONF_OUTPUT: Final = "output"
"""The output a trigger is for, numbered from 1; absent for the whole module."""
SUBTYPE_ANY_OUTPUT: Final = "any_output"

TRIGGER_TYPES: Final = EVENT_KINDS
OUTPUT_TRIGGER_TYPES: Final = (kind_name(EventKind.COMMAND), kind_name(EventKind.PRESET_APPLIED))
"""Kinds whose records name an output: these triggers can be for one output."""

TRIGGER_SCHEMA: Final = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {
        vol.Required(CONF_TYPE): vol.In(TRIGGER_TYPES),
        vol.Optional(CONF_SUBTYPE): str,
        vol.Optional(CONF_OUTPUT): vol.All(int, vol.Range(min=1)),
    }
)


@callback
def _module_entries(
    hass: HomeAssistant, device_id: str
) -> tuple[set[str], list[RayzigConfigEntry]] | None:
    """A module device's serials and Rayzig entries; None for a gateway or another device."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return None
    # HA 2026.8+ keeps one config entry per device (``config_entries`` is deprecated there).
    entry_id_of_device = getattr(device, "config_entry_id", None)
    entry_ids = (
        {entry_id_of_device} if isinstance(entry_id_of_device, str) else device.config_entries
    )
    entries: list[RayzigConfigEntry] = [
        entry
        for entry_id in entry_ids
        if (entry := hass.config_entries.async_get_entry(entry_id)) is not None
        and entry.domain == DOMAIN
    ]
    gateway_serials = {entry.unique_id for entry in entries}
    serials = {
        serial
        for domain, serial in device.identifiers
        if domain == DOMAIN and serial not in gateway_serials
    }
    return (serials, entries) if serials else None


@callback
def _module_of(serials: set[str], entries: list[RayzigConfigEntry]) -> Module | None:
    """The module's current snapshot, from the coordinator of a loaded entry (None if unknown)."""
    for entry in entries:
        if entry.state is not ConfigEntryState.LOADED:
            continue
        for module in entry.runtime_data.coordinator.data.modules.values():
            if module.serial in serials:
                return module
    return None


def _trigger(device_id: str, trigger_type: str, **extra: Any) -> dict[str, Any]:
    return {
        CONF_PLATFORM: "device",
        CONF_DOMAIN: DOMAIN,
        CONF_DEVICE_ID: device_id,
        CONF_TYPE: trigger_type,
        **extra,
    }


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """List a module's triggers: each kind for the whole module, output kinds per output too."""
    found = _module_entries(hass, device_id)
    if found is None:
        return []
    triggers = [
        _trigger(device_id, trigger_type, subtype=SUBTYPE_ANY_OUTPUT)
        if trigger_type in OUTPUT_TRIGGER_TYPES
        else _trigger(device_id, trigger_type)
        for trigger_type in TRIGGER_TYPES
    ]
    module = _module_of(*found)
    if module is not None:
        triggers.extend(
            _trigger(
                device_id,
                trigger_type,
                subtype=output.name or f"Output {output.index + 1}",
                output=output.index + 1,
            )
            for output in module.outputs
            for trigger_type in OUTPUT_TRIGGER_TYPES
        )
    return triggers


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Fire ``action`` on each ``rayzig_event`` of this module and kind (and output, if given)."""
    event_data: dict[str, Any] = {
        ATTR_DEVICE_ID: config[CONF_DEVICE_ID],
        ATTR_KIND: config[CONF_TYPE],
    }
    if CONF_OUTPUT in config:
        event_data[ATTR_OUTPUT] = config[CONF_OUTPUT]
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: EVENT_RAYZIG,
            CONF_EVENT_DATA: event_data,
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
