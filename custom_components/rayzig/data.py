"""Runtime data of a loaded Rayzig config entry (``entry.runtime_data``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

from rayzig_core.client import RayzigClient

if TYPE_CHECKING:
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
