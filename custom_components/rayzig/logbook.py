"""Describe ``rayzig_event`` bus events in the logbook in words."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from .const import (
    ATTR_DEVICE_ID,
    ATTR_IS_ON,
    ATTR_KIND,
    ATTR_LOST,
    ATTR_MODULE_ID,
    ATTR_OUTPUT,
    ATTR_USER,
    DOMAIN,
    EVENT_RAYZIG,
)
from .events import ATTR_MODULE_NAME, ATTR_OUTPUT_NAME


def describe_message(data: Mapping[str, Any]) -> str:
    """Say in words what a ``rayzig_event`` reports, e.g. "Hot water switched on by installer".

    The output is named by its own name, or by its number ("Output 2 …") when the name is not
    known (events recorded before names were part of the data, or an output the module no longer
    lists).
    """
    kind = data.get(ATTR_KIND)
    output = data.get(ATTR_OUTPUT)
    is_on = data.get(ATTR_IS_ON)
    state = "on" if is_on else "off"
    if name := data.get(ATTR_OUTPUT_NAME):
        subject = str(name)
    else:
        subject = f"Output {output}" if output is not None else "Output"
    if kind == "command":
        user = data.get(ATTR_USER)
        message = f"{subject} switched" if is_on is None else f"{subject} switched {state}"
        return f"{message} by {user}" if user else message
    if kind == "preset_applied":
        if is_on is None:
            return f"{subject} restored (preset applied)"
        return f"{subject} restored {state} (preset applied)"
    if kind == "gap":
        lost = int(data.get(ATTR_LOST) or 0)
        if lost == 1:
            return "1 event was lost (event log overrun)"
        return f"{lost} events were lost (event log overrun)"
    return _FIXED.get(str(kind), f"Event {kind}")


_FIXED = {
    "power_on": "Power on",
    "repower": "Repowered after outage",
    "battery_low": "Battery low",
    "joined": "Joined the mesh",
    "left": "Left the mesh",
}


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Any], dict[str, Any]]], None],
) -> None:
    """Teach the logbook how to show Rayzig module events."""

    @callback
    def async_describe_rayzig_event(event: Any) -> dict[str, Any]:
        """Describe one event (a core Event or the logbook's lazy row; both carry ``data``)."""
        data: Mapping[str, Any] = event.data
        name = data.get(ATTR_MODULE_NAME) or f"Module {data.get(ATTR_MODULE_ID)}"
        described: dict[str, Any] = {
            LOGBOOK_ENTRY_NAME: name,
            LOGBOOK_ENTRY_MESSAGE: describe_message(data),
        }
        if (entity_id := _event_entity_id(hass, data.get(ATTR_DEVICE_ID))) is not None:
            described[LOGBOOK_ENTRY_ENTITY_ID] = entity_id
        return described

    async_describe_event(DOMAIN, EVENT_RAYZIG, async_describe_rayzig_event)


@callback
def _event_entity_id(hass: HomeAssistant, device_id: object) -> str | None:
    """Return the module's event entity, so the logbook entry links to it."""
    if not isinstance(device_id, str) or dr.async_get(hass).async_get(device_id) is None:
        return None
    for entry in er.async_entries_for_device(er.async_get(hass), device_id):
        if entry.platform == DOMAIN and entry.domain == Platform.EVENT:
            return entry.entity_id
    return None
