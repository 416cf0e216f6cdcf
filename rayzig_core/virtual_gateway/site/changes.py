"""What a simulated site tells its listeners after its state changed (the gateway's notifications).

The gateway turns each one into the notification of PROTOCOL.md §5.4 that reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from rayzig_core.models import EventKind, Module, Output, Telemetry


@dataclass(frozen=True, slots=True)
class Change:
    """Base of everything a site reports to its listeners after its state changed."""


@dataclass(frozen=True, slots=True)
class OutputChanged(Change):
    """An output's state, preset or utility flag changed; ``cause`` says by command or preset."""

    module_id: int
    output: Output
    cause: EventKind


@dataclass(frozen=True, slots=True)
class EventsAppended(Change):
    """A module's event log gained records up to ``newest_seq``, so readers can fetch them."""

    module_id: int
    newest_seq: int


@dataclass(frozen=True, slots=True)
class TelemetryChanged(Change):
    """A module's telemetry (battery, link quality, reachability) changed."""

    module_id: int
    telemetry: Telemetry


@dataclass(frozen=True, slots=True)
class ModuleJoined(Change):
    """A module joined the mesh; carries its full snapshot."""

    module: Module


@dataclass(frozen=True, slots=True)
class ModuleLeft(Change):
    """A module left the mesh; its id is never given to another module."""

    module_id: int


SiteChange: TypeAlias = (
    OutputChanged | EventsAppended | TelemetryChanged | ModuleJoined | ModuleLeft
)
"""Any change a site listener can receive."""
