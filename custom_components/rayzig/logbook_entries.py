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

from collections import Counter, deque
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
        self._sent: deque[OwnCommand] = deque()
        self._keys: Counter[tuple[int, int | None, bool | None, str | None]] = Counter()
        """How many noted commands each (module, output, state, user) has: a record that
        matches none (nearly every record of a back-fill) is told apart without a scan."""

    def add(self, command: OwnCommand) -> None:
        """Note an acknowledged command; its record follows in the module's event log."""
        if len(self._sent) >= OWN_COMMANDS_KEPT:
            self._forget(self._sent.popleft())
        self._sent.append(command)
        self._keys[_key(command)] += 1

    def claim(self, event: Event) -> OwnCommand | None:
        """Return (and forget) the oldest noted command that ``event`` records, if any."""
        if event.kind is not EventKind.COMMAND:
            return None
        key = (event.module_id, event.output, event.is_on, event.user)
        if key not in self._keys:
            return None
        for command in self._sent:
            if _key(command) == key:
                self._sent.remove(command)
                self._forget(command)
                return command
        return None  # pragma: no cover - the counter names only commands in the deque

    def _forget(self, command: OwnCommand) -> None:
        key = _key(command)
        self._keys[key] -= 1
        if self._keys[key] <= 0:
            del self._keys[key]


def _key(command: OwnCommand) -> tuple[int, int | None, bool | None, str | None]:
    """What a record of ``command`` has in common with it."""
    return (command.module_id, command.output, command.is_on, command.user)


def has_logbook_row(event: Event, *, own: bool) -> bool:
    """Whether a record gets a worded row (see the module's docstring)."""
    if event.kind is EventKind.PRESET_APPLIED:
        return False
    return not (own and event.kind is EventKind.COMMAND)


@callback
def async_fire_imported(
    hass: HomeAssistant, data: dict[str, Any], event: Event, own: OwnCommand | None
) -> None:
    """Fire ``rayzig_event`` with ``data`` for ``event``, and its logbook row where it has one.

    ``data`` becomes the ``rayzig_event``'s own (the caller builds it for this record); the row
    gets a copy.

    Both carry the module's time and one context (the command's for Home Assistant's own), so an
    automation that a record triggers shows in the logbook as triggered by that record's row.
    """
    context = own.context if own is not None else Context()
    bus = hass.bus
    bus.async_fire(EVENT_RAYZIG, data, time_fired=event.timestamp, context=context)
    if has_logbook_row(event, own=own is not None):
        bus.async_fire(
            EVENT_RAYZIG_LOGBOOK, dict(data), time_fired=event.timestamp, context=context
        )
