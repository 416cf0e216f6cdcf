"""Runtime sensors of each output: total on-time and switching cycles, from its event log.

Each sensor listens to its own output's signal (:func:`.runtime_statistics.signal_runtime`): a
back-fill of one output writes that output's two sensors and no other entity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfTime
from homeassistant.core import callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.typing import StateType

from rayzig_core import HOUR_SECONDS, Module, OutputRuntime

from .coordinator import RayzigCoordinator
from .entity import RayzigModuleEntity, is_module_output, output_label
from .runtime_statistics import (
    ON_TIME,
    SWITCHING_CYCLES,
    RuntimeStatistics,
    signal_runtime,
)


@dataclass(frozen=True, kw_only=True)
class RayzigRuntimeSensorEntityDescription(SensorEntityDescription):
    """An output's runtime total: how to read it from the folded totals."""

    value_fn: Callable[[OutputRuntime], StateType]


RUNTIME_SENSORS: tuple[RayzigRuntimeSensorEntityDescription, ...] = (
    RayzigRuntimeSensorEntityDescription(
        key=ON_TIME,
        translation_key=ON_TIME,
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfTime.HOURS,
        suggested_unit_of_measurement=UnitOfTime.HOURS,
        suggested_display_precision=1,
        entity_registry_enabled_default=False,
        value_fn=lambda output: round(output.on_seconds / HOUR_SECONDS, 6),
    ),
    RayzigRuntimeSensorEntityDescription(
        key=SWITCHING_CYCLES,
        translation_key=SWITCHING_CYCLES,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_registry_enabled_default=False,
        value_fn=lambda output: output.cycles,
    ),
)


def runtime_sensors(
    coordinator: RayzigCoordinator, module: Module, statistics: RuntimeStatistics
) -> Iterable[RayzigRuntimeSensor]:
    """The runtime sensors of every output of ``module``."""
    return (
        RayzigRuntimeSensor(coordinator, module, output.index, description, statistics)
        for output in module.outputs
        for description in RUNTIME_SENSORS
    )


class RayzigRuntimeSensor(RayzigModuleEntity, SensorEntity):
    """An output's total on-time or switching cycles, counted from its module's event log."""

    entity_description: RayzigRuntimeSensorEntityDescription

    def __init__(
        self,
        coordinator: RayzigCoordinator,
        module: Module,
        index: int,
        description: RayzigRuntimeSensorEntityDescription,
        statistics: RuntimeStatistics,
    ) -> None:
        """Bind ``description`` to output ``index`` (0-based) of ``module``."""
        super().__init__(coordinator, module, description.key, index)
        self.entity_description = description
        self._statistics = statistics
        output = module.output(index)  # by index: a limited user sees only some outputs
        assert output is not None  # built from the module's outputs
        label = output_label(module, output)
        key = description.key
        if is_module_output(module, output):
            self._attr_translation_key = f"{key}_module"
        elif label is None:
            self._attr_translation_placeholders = {"number": str(index + 1)}
        else:
            self._attr_translation_key = f"{key}_named"
            self._attr_translation_placeholders = {"output": label}

    @property
    def native_value(self) -> StateType:
        """The total; 0 until a record of the output was counted."""
        index = self.output_index
        assert index is not None
        totals = self._statistics.output(self.module_id, self.serial, index)
        return self.entity_description.value_fn(totals if totals is not None else OutputRuntime())

    @property
    def shown_value(self) -> object:
        """The total."""
        return self.native_value

    async def async_added_to_hass(self) -> None:
        """Also follow this output's runtime totals."""
        await super().async_added_to_hass()
        assert self.output_index is not None
        signal = signal_runtime(self._statistics.entry_id, self.module_id, self.output_index)
        self.async_on_remove(async_dispatcher_connect(self.hass, signal, self._on_totals))

    @callback
    def _on_totals(self) -> None:
        """The totals changed: write the state if what it shows did."""
        self._handle_coordinator_update()
