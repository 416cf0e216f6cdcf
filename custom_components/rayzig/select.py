"""Selects: the power-restore preset of each output (off / on / last state)."""

from __future__ import annotations

from collections.abc import Iterable

from homeassistant.components.select import SelectEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from rayzig_core import Module, Permission, RestorePreset

from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry
from .entity import (
    RayzigModuleEntity,
    async_add_module_entities,
    is_module_output,
    output_label,
)

PARALLEL_UPDATES = 0
"""Commands go through one gateway session that serialises them itself."""

PRESET_OPTIONS: dict[str, RestorePreset] = {
    "off": RestorePreset.OFF,
    "on": RestorePreset.ON,
    "last": RestorePreset.LAST,
}
"""Option (translation state key) → preset."""


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RayzigConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a preset select per output of every module, now and when modules join."""

    def entities(coordinator: RayzigCoordinator, module: Module) -> Iterable[RayzigPresetSelect]:
        return (RayzigPresetSelect(coordinator, module, output.index) for output in module.outputs)

    async_add_module_entities(entry, async_add_entities, entities)


class RayzigPresetSelect(RayzigModuleEntity, SelectEntity):
    """What an output does when power returns after an outage."""

    _attr_entity_category = EntityCategory.CONFIG
    _attr_options = list(PRESET_OPTIONS)
    _requires_reachable = True

    def __init__(self, coordinator: RayzigCoordinator, module: Module, index: int) -> None:
        """Bind to output ``index`` (0-based) of ``module``."""
        super().__init__(coordinator, module, "restore_preset", index)
        output = module.output(index)  # by index: a limited user sees only some outputs
        assert output is not None  # built from the module's outputs
        label = output_label(module, output)
        if is_module_output(module, output):
            self._attr_translation_key = "restore_preset_module"
        elif label is None:
            self._attr_translation_key = "restore_preset"
            self._attr_translation_placeholders = {"number": str(index + 1)}
        else:
            self._attr_translation_key = "restore_preset_named"
            self._attr_translation_placeholders = {"output": label}

    @property
    def current_option(self) -> str | None:
        """The preset the gateway reports."""
        output = self.output
        return None if output is None else output.preset.name.lower()

    @property
    def shown_value(self) -> object:
        """The preset."""
        return self.current_option

    async def async_select_option(self, option: str) -> None:
        """Store a new preset on the module; the state follows the gateway's answer."""
        preset = PRESET_OPTIONS[option]
        assert self.output_index is not None
        index = self.output_index
        output = await self.coordinator.async_command(
            self.coordinator.client.set_restore_preset(self.module_id, index, preset),
            permission=Permission.SET_PRESET,
            module_id=self.module_id,
        )
        self.coordinator.async_apply_output(self.module_id, output)
