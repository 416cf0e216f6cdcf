"""Device triggers for Rayzig module events (the same kinds the logbook shows)."""

from __future__ import annotations

from typing import Any, Final

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.homeassistant.triggers import event as event_trigger
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

from .const import ATTR_DEVICE_ID, ATTR_KIND, DOMAIN, EVENT_RAYZIG
from .events import EVENT_KINDS

TRIGGER_TYPES: Final = EVENT_KINDS

TRIGGER_SCHEMA: Final = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {vol.Required(CONF_TYPE): vol.In(TRIGGER_TYPES)}
)


@callback
def _is_module_device(hass: HomeAssistant, device_id: str) -> bool:
    """Whether ``device_id`` is a Rayzig module (not the gateway, not another integration's)."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return False
    # HA 2026.8+ keeps one config entry per device (``config_entries`` is deprecated there).
    entry_id_of_device = getattr(device, "config_entry_id", None)
    entry_ids = (
        {entry_id_of_device} if isinstance(entry_id_of_device, str) else device.config_entries
    )
    gateway_serials = {
        entry.unique_id
        for entry_id in entry_ids
        if (entry := hass.config_entries.async_get_entry(entry_id)) is not None
        and entry.domain == DOMAIN
    }
    return any(
        domain == DOMAIN and serial not in gateway_serials for domain, serial in device.identifiers
    )


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """List a module's triggers: one per event kind."""
    if not _is_module_device(hass, device_id):
        return []
    return [
        {
            CONF_PLATFORM: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: trigger_type,
        }
        for trigger_type in TRIGGER_TYPES
    ]


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Fire ``action`` on each ``rayzig_event`` of this module and kind."""
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: EVENT_RAYZIG,
            CONF_EVENT_DATA: {
                ATTR_DEVICE_ID: config[CONF_DEVICE_ID],
                ATTR_KIND: config[CONF_TYPE],
            },
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
