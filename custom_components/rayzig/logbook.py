"""Describe the logbook rows of imported module events in words (``rayzig_logbook_entry``).

One row per physical action (``logbook_entries`` decides which records get one): a command is
shown on its output's switch, "Hot water switched on by alice", like Home Assistant's own rows;
a module event on the module, "Garage repowered after an outage". Rows carry the module's own
time. ``rayzig_event`` itself has no row: Home Assistant's own commands are told by the switch's
state change, which carries the action's context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.const import ATTR_FRIENDLY_NAME, Platform
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
)
from .event_data import ATTR_MODULE_NAME, ATTR_OUTPUT_NAME
from .logbook_entries import EVENT_RAYZIG_LOGBOOK

_MODULE_MESSAGES = {
    "power_on": "powered on",
    "repower": "repowered after an outage (outputs set by their power-restore presets)",
    "battery_low": "reported a low battery",
    "joined": "joined the mesh",
    "left": "left the mesh",
}


def describe_message(data: Mapping[str, Any]) -> str:
    """Say what a record reports, after the row's name: "switched on by alice", "left the mesh"."""
    kind = data.get(ATTR_KIND)
    is_on = data.get(ATTR_IS_ON)
    state = "" if is_on is None else (" on" if is_on else " off")
    if kind == "command":
        user = data.get(ATTR_USER)
        return f"switched{state} by {user}" if user else f"switched{state}"
    if kind == "preset_applied":
        return f"set{state} by its power-restore preset"
    if kind == "gap":
        lost = int(data.get(ATTR_LOST) or 0)
        events = "1 event" if lost == 1 else f"{lost} events"
        return f"lost {events} (event log overrun)"
    return _MODULE_MESSAGES.get(str(kind), f"logged the event {kind}")


def describe_name(data: Mapping[str, Any]) -> str:
    """Name a row: the output ("Hot water", else "Garage output 2") or the module ("Garage").

    The output is named by the gateway's name for it, or by its number when that is not known
    (an output the module no longer lists); a module whose name is not known by its number.
    """
    module = data.get(ATTR_MODULE_NAME) or f"Module {data.get(ATTR_MODULE_ID)}"
    if (output := data.get(ATTR_OUTPUT)) is None:
        return str(module)
    return str(data.get(ATTR_OUTPUT_NAME) or f"{module} output {output}")


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Any], dict[str, Any]]], None],
) -> None:
    """Teach the logbook how to show Rayzig module events."""

    @callback
    def async_describe_rayzig_event(event: Any) -> dict[str, Any]:
        """Describe one row (a core Event or the logbook's lazy row; both carry ``data``)."""
        data: Mapping[str, Any] = event.data
        described: dict[str, Any] = {
            LOGBOOK_ENTRY_NAME: describe_name(data),
            LOGBOOK_ENTRY_MESSAGE: describe_message(data),
        }
        switch = _switch_entity_id(hass, data.get(ATTR_DEVICE_ID), data.get(ATTR_OUTPUT))
        if switch is not None:
            described[LOGBOOK_ENTRY_ENTITY_ID] = switch
            if (state := hass.states.get(switch)) and (
                name := state.attributes.get(ATTR_FRIENDLY_NAME)
            ):
                described[LOGBOOK_ENTRY_NAME] = name  # as the switch's own rows name it
        return described

    async_describe_event(DOMAIN, EVENT_RAYZIG_LOGBOOK, async_describe_rayzig_event)


@callback
def _switch_entity_id(hass: HomeAssistant, device_id: object, output: object) -> str | None:
    """The switch of an output (numbered from 1) of a module device, so the row links to it."""
    if not isinstance(device_id, str) or not isinstance(output, int):
        return None
    if dr.async_get(hass).async_get(device_id) is None:
        return None
    suffix = f"_output_{output - 1}"
    for entry in er.async_entries_for_device(er.async_get(hass), device_id):
        if (
            entry.platform == DOMAIN
            and entry.domain == Platform.SWITCH
            and entry.unique_id.endswith(suffix)
        ):
            return entry.entity_id
    return None
