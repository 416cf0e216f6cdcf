"""Switches: one per power output, the primary entities of a Rayzig module.

Not optimistic: a switch changes state only when the gateway acknowledges the command (its
``OutputResponse``) or pushes an ``OutputChanged`` notification.

Who switched it, in the logbook: the state change a Home Assistant action caused is written with
the action's context (its user, automation or script), and no other change is: Home Assistant would
otherwise lend that context to any change within five seconds, another user's command included.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from homeassistant.components.switch import SwitchDeviceClass, SwitchEntity
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from rayzig_core import Module, Permission

from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry
from .entity import (
    RayzigModuleEntity,
    async_add_module_entities,
    is_module_output,
    output_label,
)
from .logbook_entries import OwnCommand

PARALLEL_UPDATES = 0
"""Commands go through one gateway session that serialises them itself."""


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RayzigConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a switch per output of every module, now and when modules join."""

    def entities(coordinator: RayzigCoordinator, module: Module) -> Iterable[RayzigOutputSwitch]:
        return (RayzigOutputSwitch(coordinator, module, output.index) for output in module.outputs)

    async_add_module_entities(entry, async_add_entities, entities)


class RayzigOutputSwitch(RayzigModuleEntity, SwitchEntity):
    """A power output."""

    _attr_device_class = SwitchDeviceClass.OUTLET
    _attr_translation_key = "output"
    _requires_reachable = True

    def __init__(self, coordinator: RayzigCoordinator, module: Module, index: int) -> None:
        """Bind to output ``index`` (0-based) of ``module``."""
        super().__init__(coordinator, module, "output", index)
        output = module.output(index)  # by index: a limited user sees only some outputs
        assert output is not None  # built from the module's outputs
        label = output_label(module, output)
        if is_module_output(module, output):
            self._attr_name = None  # the device's name: "Caravan", not "Caravan Caravan"
        elif label is not None:
            self._attr_name = label
        else:
            self._attr_translation_placeholders = {"number": str(index + 1)}

    @property
    def is_on(self) -> bool | None:
        """Output state as last acknowledged or pushed by the gateway."""
        output = self.output
        return None if output is None else output.is_on

    @property
    def shown_value(self) -> object:
        """On or off."""
        return self.is_on

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch the output on; the state follows the gateway's acknowledgement."""
        await self._async_set(on=True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch the output off; the state follows the gateway's acknowledgement."""
        await self._async_set(on=False)

    async def _async_set(self, *, on: bool) -> None:
        assert self.output_index is not None
        index = self.output_index
        context = self._context or Context()  # the action's: Home Assistant sets it before calling
        try:
            output = await self.coordinator.async_command(
                self.coordinator.client.set_output(self.module_id, index, on),
                permission=Permission.SWITCH,
                module_id=self.module_id,
            )
            self.async_set_context(context)
            # The module's listeners write this switch now, while the action's context is set.
            self.coordinator.async_apply_output(self.module_id, output)
            if (events := self.coordinator.events) is not None:
                user = self.coordinator.data.info.user
                events.own_commands.add(
                    OwnCommand(self.module_id, index, output.is_on, user, context)
                )
        finally:
            self._context = self._context_set = None  # later changes are not this action's
