"""Base entity of the Rayzig integration: one device per module, linked to the gateway device.

An entity listens to its own module only (the coordinator's listener context is the module id)
and writes its state only when what it shows changed: an output's switch is written by that
output's acknowledgement, not by its neighbour's or by telemetry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, cast

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from rayzig_core import Module, Output

from .const import MANUFACTURER
from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry
from .site_data import gateway_device_identifier, module_device_identifier

VIA_DEVICE_ID_SUPPORTED: Final = "via_device_id" in getattr(
    DeviceInfo, "__optional_keys__", frozenset()
)
"""HA 2026.8+ links devices by registry id; ``via_device`` (identifiers) is deprecated there.

``__optional_keys__`` lists DeviceInfo's keys both as a TypedDict (HA 2025) and as the
dataclass with a mapping layer it became in 2026.
"""


def module_device_info(coordinator: RayzigCoordinator, module: Module) -> DeviceInfo:
    """Device of a module, linked to the gateway device."""
    info = DeviceInfo(
        identifiers={module_device_identifier(module.serial)},
        manufacturer=MANUFACTURER,
        model=module.model,
        name=module.name,
        serial_number=module.serial,
        sw_version=module.firmware,
    )
    if VIA_DEVICE_ID_SUPPORTED:
        if coordinator.gateway_device_id is not None:  # pragma: no cover - HA 2026.8+
            info.update(cast("DeviceInfo", {"via_device_id": coordinator.gateway_device_id}))
    else:
        info["via_device"] = gateway_device_identifier(coordinator.data.info.serial)
    return info


NAME_SEPARATORS: Final = " \t-\u2013\u2014:/_,."
"""What may stand between a module's name and the rest of an output's name ("Caravan - lights")."""


def _same_name(first: str, second: str) -> bool:
    return first.strip().casefold() == second.strip().casefold()


def is_module_output(module: Module, output: Output) -> bool:
    """Whether ``output`` stands for the module itself: its one output named like the module.

    Such an output's entities take the device's name only ("Caravan", not "Caravan Caravan").
    """
    alike = [other.index for other in module.outputs if _same_name(other.name, module.name)]
    return alike == [output.index]


def output_label(module: Module, output: Output) -> str | None:
    """Return the output's own name without its module's name in front, for an entity name.

    Entity names follow the device's name, so "Caravan lights" on the module "Caravan" becomes
    "Lights" (compared ignoring case, and only up to a word boundary: "Caravanserai lamp" stays).
    None while the output has the generic "Output N" name, or a name that is only the module's.
    """
    name = output.name.strip()
    if not name or name == f"Output {output.index + 1}":
        return None
    prefix = module.name.strip()
    head, rest = name[: len(prefix)], name[len(prefix) :]
    if prefix and _same_name(head, prefix) and (not rest or not rest[0].isalnum()):
        rest = rest.lstrip(NAME_SEPARATORS)
        return rest[:1].upper() + rest[1:] if rest else None
    return name


_NOT_WRITTEN: Final = object()


class RayzigModuleEntity(CoordinatorEntity[RayzigCoordinator]):
    """An entity of one module (and one of its outputs, where ``output`` is given)."""

    _attr_has_entity_name = True
    _requires_reachable = False
    """Commands need the module in reach: such entities are unavailable while it is not."""

    def __init__(
        self, coordinator: RayzigCoordinator, module: Module, key: str, output: int | None = None
    ) -> None:
        """Bind the entity to ``module`` (and ``output``); ``key`` names what it shows."""
        super().__init__(coordinator, context=module.module_id)
        self._written: object = _NOT_WRITTEN
        """What the state machine holds from this entity (see :meth:`_shown`)."""
        self.module_id = module.module_id
        self.serial = module.serial
        self.output_index = output
        suffix = "" if output is None else f"_{output}"
        self._attr_unique_id = f"{module.serial}_{key}{suffix}"
        self._attr_device_info = module_device_info(coordinator, module)

    @property
    def module(self) -> Module | None:
        """The module's current snapshot (None once it left the mesh)."""
        module = self.coordinator.data.modules.get(self.module_id)
        if module is None or module.serial != self.serial:
            return None
        return module

    @property
    def output(self) -> Output | None:
        """The output this entity stands for, if any."""
        module = self.module
        index = self.output_index
        if module is None or index is None:
            return None
        return module.output(index)  # by index: a limited user sees only some outputs

    @property
    def available(self) -> bool:
        """Available while the gateway is connected and the module (if needed) in reach."""
        module = self.module
        if module is None or not super().available or not self.coordinator.connected:
            return False
        if self.output_index is not None and self.output is None:
            return False
        return module.telemetry.reachable or not self._requires_reachable

    @property
    def shown_value(self) -> object:
        """The value this entity's state shows (each platform names its own)."""
        return None

    def _shown(self) -> tuple[bool, object]:
        """What a state write would show: availability and the value."""
        return (self.available, self.shown_value)

    async def async_added_to_hass(self) -> None:
        """Listen to the module; Home Assistant writes the first state right after this."""
        await super().async_added_to_hass()
        self._written = self._shown()

    @callback
    def _handle_coordinator_update(self) -> None:
        """Write the state only if what it shows changed."""
        shown = self._shown()
        if shown != self._written:
            self._written = shown
            self.async_write_ha_state()


@callback
def async_add_module_entities(
    entry: RayzigConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    factory: Callable[[RayzigCoordinator, Module], Iterable[Entity]],
) -> None:
    """Add ``factory``'s entities for every module now and for each module that joins later."""
    coordinator = entry.runtime_data.coordinator
    known: set[tuple[int, str]] = set()

    @callback
    def add_new_modules() -> None:
        current = {
            (module.module_id, module.serial): module
            for module in coordinator.data.modules.values()
        }
        known.intersection_update(current)
        new = [module for key, module in current.items() if key not in known]
        if not new:
            return
        known.update((module.module_id, module.serial) for module in new)
        async_add_entities([entity for module in new for entity in factory(coordinator, module)])

    add_new_modules()
    entry.async_on_unload(coordinator.async_add_listener(add_new_modules))
