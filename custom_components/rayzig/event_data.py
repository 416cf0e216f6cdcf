"""What an imported record carries onto Home Assistant's bus: kind and output names, the signal.

Shared by the importer (:mod:`.events`), the event entity, device triggers and the logbook.
"""

from __future__ import annotations

from rayzig_core import EventKind, Module

from .const import ATTR_DEVICE_ID, ATTR_MODULE_ID, DOMAIN

ATTR_MODULE_NAME = "module_name"
ATTR_OUTPUT_NAME = "output_name"

EVENT_KINDS: tuple[str, ...] = tuple(kind.name.lower() for kind in EventKind)
"""Event kinds as they appear in bus events, triggers and the event entity."""


def kind_name(kind: EventKind) -> str:
    """Name of an event kind as used in bus events and triggers (``EventKind.GAP`` → ``gap``)."""
    return kind.name.lower()


def signal_new_event(entry_id: str, module_id: int) -> str:
    """Dispatcher signal sent with the newest :class:`rayzig_core.Event` of each pull."""
    return f"{DOMAIN}_{entry_id}_event_{module_id}"


KIND_NAMES: dict[EventKind, str] = {kind: kind_name(kind) for kind in EventKind}


def bus_data_of(
    module: Module, device_id: str | None
) -> tuple[dict[str, object], dict[int, str | None]]:
    """What every record of ``module`` carries (first in its data), and its outputs' names."""
    common: dict[str, object] = {
        ATTR_DEVICE_ID: device_id,
        ATTR_MODULE_ID: module.module_id,
        ATTR_MODULE_NAME: module.name,
    }
    return common, {output.index: output.name or None for output in module.outputs}
