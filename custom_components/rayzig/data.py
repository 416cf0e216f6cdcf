"""Runtime data of a loaded Rayzig config entry (``entry.runtime_data``) and the entry's type.

The parts it holds take a plain ``ConfigEntry`` and never import this module, so the
integration's imports run one way (data → coordinator, events, firmware) and form no circle.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from rayzig_core import RayzigClient

from .coordinator import RayzigCoordinator
from .events import RayzigEventImporter
from .firmware import RayzigFirmwareCoordinator


@dataclass
class RayzigData:
    """Everything a loaded entry owns; Home Assistant drops it on unload."""

    client: RayzigClient
    coordinator: RayzigCoordinator
    events: RayzigEventImporter
    firmware: RayzigFirmwareCoordinator | None


type RayzigConfigEntry = ConfigEntry[RayzigData]
