"""Sensors: battery level, link quality and event-log fill of each module; outputs' runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from rayzig_core import MAX_EVENTS_PER_MODULE, Module

from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry
from .entity import RayzigModuleEntity, async_add_module_entities
from .sensor_runtime import runtime_sensors

PARALLEL_UPDATES = 0
"""Read-only: values come from the coordinator."""


@dataclass(frozen=True, kw_only=True)
class RayzigSensorEntityDescription(SensorEntityDescription):
    """A module sensor: how to read it and whether a module has it."""

    value_fn: Callable[[Module], StateType]
    exists_fn: Callable[[Module], bool] = lambda _: True


SENSORS: tuple[RayzigSensorEntityDescription, ...] = (
    RayzigSensorEntityDescription(
        key="battery",
        device_class=SensorDeviceClass.BATTERY,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda module: module.telemetry.battery_percent,
        exists_fn=lambda module: module.telemetry.battery_percent is not None,
    ),
    RayzigSensorEntityDescription(
        key="link_quality",
        translation_key="link_quality",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda module: module.telemetry.link_quality,
    ),
    RayzigSensorEntityDescription(
        key="event_log_fill",
        translation_key="event_log_fill",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda module: round(100 * module.event_count / MAX_EVENTS_PER_MODULE, 2),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RayzigConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors every module (and output) has, now and when modules join."""
    statistics = entry.runtime_data.events.runtime

    def entities(coordinator: RayzigCoordinator, module: Module) -> Iterable[SensorEntity]:
        yield from (
            RayzigSensor(coordinator, module, description)
            for description in SENSORS
            if description.exists_fn(module)
        )
        yield from runtime_sensors(coordinator, module, statistics)

    async_add_module_entities(entry, async_add_entities, entities)


class RayzigSensor(RayzigModuleEntity, SensorEntity):
    """A telemetry value of a module."""

    entity_description: RayzigSensorEntityDescription

    def __init__(
        self,
        coordinator: RayzigCoordinator,
        module: Module,
        description: RayzigSensorEntityDescription,
    ) -> None:
        """Bind ``description`` to ``module``."""
        super().__init__(coordinator, module, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> StateType:
        """The current value."""
        module = self.module
        return None if module is None else self.entity_description.value_fn(module)

    @property
    def shown_value(self) -> object:
        """The value."""
        return self.native_value
