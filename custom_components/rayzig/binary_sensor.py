"""Binary sensors: whether each module is in reach, and whether its battery is low."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from rayzig_core import Module

from .const import CONF_LOW_BATTERY_THRESHOLD, DEFAULT_LOW_BATTERY_THRESHOLD
from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry
from .entity import RayzigModuleEntity, async_add_module_entities

PARALLEL_UPDATES = 0
"""Read-only: values come from the coordinator."""


def battery_low(module: Module, threshold: int) -> bool | None:
    """At or below ``threshold`` percent, or the module's own minimum when ``threshold`` is 0."""
    telemetry = module.telemetry
    if threshold <= 0 or telemetry.battery_percent is None:
        return telemetry.battery_low
    return telemetry.battery_percent <= threshold


@dataclass(frozen=True, kw_only=True)
class RayzigBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A module binary sensor: how to read it (given the low-battery threshold option)."""

    value_fn: Callable[[Module, int], bool | None]
    exists_fn: Callable[[Module], bool] = lambda _: True


BINARY_SENSORS: tuple[RayzigBinarySensorEntityDescription, ...] = (
    RayzigBinarySensorEntityDescription(
        key="reachable",
        translation_key="reachable",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda module, _: module.telemetry.reachable,
    ),
    RayzigBinarySensorEntityDescription(
        key="battery_low",
        translation_key="battery_low",
        device_class=BinarySensorDeviceClass.BATTERY,
        value_fn=battery_low,
        exists_fn=lambda module: module.telemetry.battery_percent is not None,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RayzigConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors every module has, now and when modules join."""

    def entities(coordinator: RayzigCoordinator, module: Module) -> Iterable[RayzigBinarySensor]:
        return (
            RayzigBinarySensor(coordinator, module, description)
            for description in BINARY_SENSORS
            if description.exists_fn(module)
        )

    async_add_module_entities(entry, async_add_entities, entities)


class RayzigBinarySensor(RayzigModuleEntity, BinarySensorEntity):
    """A yes/no state of a module."""

    entity_description: RayzigBinarySensorEntityDescription

    def __init__(
        self,
        coordinator: RayzigCoordinator,
        module: Module,
        description: RayzigBinarySensorEntityDescription,
    ) -> None:
        """Bind ``description`` to ``module``."""
        super().__init__(coordinator, module, description.key)
        self.entity_description = description

    @property
    def is_on(self) -> bool | None:
        """The current state."""
        module = self.module
        if module is None:
            return None
        threshold = int(
            self.coordinator.config_entry.options.get(
                CONF_LOW_BATTERY_THRESHOLD, DEFAULT_LOW_BATTERY_THRESHOLD
            )
        )
        return self.entity_description.value_fn(module, threshold)

    @property
    def shown_value(self) -> object:
        """On or off."""
        return self.is_on
