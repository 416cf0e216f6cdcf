"""Which imported event-log records get a logbook row, so that each physical action shows once.

Home Assistant always writes a logbook row for a switch's state change. So the importer adds a
worded row (a ``rayzig_logbook_entry`` event, described by ``logbook.py``) only for what no such
row tells:

* a **command Home Assistant sent** gets none: the switch writes its state change with the
  command's context, so that row names the Home Assistant user, automation or script. The switch
  notes each acknowledged command in :class:`OwnCommands`; the importer claims the record that
  matches it and fires its ``rayzig_event`` with the same context;
* an output **restored by its power-restore preset** gets none: the module's ``repower`` row says
  that the presets were applied, and each switch's own row shows the state it came back in;
* everything else gets one: a command by another gateway user ("switched on by alice"), power
  on, repower, battery low, joined, left, lost events.

``rayzig_event`` itself (automations, device triggers) is fired for every record, as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.core import Context, HomeAssistant, callback

from rayzig_core import Event, EventKind

from .const import EVENT_RAYZIG

EVENT_RAYZIG_LOGBOOK: Final = "rayzig_logbook_entry"
"""One per logbook row of an imported record; same data and time as its ``rayzig_event``."""

OWN_COMMANDS_KEPT: Final = 64
"""Acknowledged commands remembered until their records are imported (oldest dropped first)."""


@dataclass(frozen=True, slots=True)
class OwnCommand:
    """A command Home Assistant sent and the gateway acknowledged."""

    module_id: int
    output: int
    """0-based, as in the event log."""
    is_on: bool
    user: str
    """The gateway user Home Assistant is paired as (the record names it)."""
    context: Context
    """The action's context: the Home Assistant user, automation or script behind it."""


class OwnCommands:
    """Commands Home Assistant sent, until the importer claims their event-log records.

    Kept in memory only: a record imported after a restart of Home Assistant is not recognised
    and gets a worded row naming the gateway user.
    """

    def __init__(self) -> None:
        """Start with no command sent."""
        self._sent: deque[OwnCommand] = deque(maxlen=OWN_COMMANDS_KEPT)

    def add(self, command: OwnCommand) -> None:
        """Note an acknowledged command; its record follows in the module's event log."""
        self._sent.append(command)

    def claim(self, event: Event) -> OwnCommand | None:
        """Return (and forget) the oldest noted command that ``event`` records, if any."""
        if event.kind is not EventKind.COMMAND:
            return None
        for command in self._sent:
            if (command.module_id, command.output, command.is_on, command.user) == (
                event.module_id,
                event.output,
                event.is_on,
                event.user,
            ):
                self._sent.remove(command)
                return command
        return None


def has_logbook_row(event: Event, *, own: bool) -> bool:
    """Whether a record gets a worded row (see the module's docstring)."""
    if event.kind is EventKind.PRESET_APPLIED:
        return False
    return not (own and event.kind is EventKind.COMMAND)


@callback
def async_fire_imported(
    hass: HomeAssistant, data: Mapping[str, Any], event: Event, own: OwnCommand | None
) -> None:
    """Fire ``rayzig_event`` with ``data`` for ``event``, and its logbook row where it has one.

    Both carry the module's time and one context (the command's for Home Assistant's own), so an
    automation that a record triggers shows in the logbook as triggered by that record's row.
    """
    context = own.context if own is not None else Context()
    hass.bus.async_fire(EVENT_RAYZIG, dict(data), time_fired=event.timestamp, context=context)
    if has_logbook_row(event, own=own is not None):
        hass.bus.async_fire(
            EVENT_RAYZIG_LOGBOOK, dict(data), time_fired=event.timestamp, context=context
        )
