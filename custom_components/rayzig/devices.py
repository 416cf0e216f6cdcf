"""The device registry as a mirror of the site: module devices follow names, firmware, membership.

Looks only at the modules that changed (:func:`.site_data.site_changes`), and finds a device by
its identifier, so that a change costs the same on a large site as on a small one.
"""

from __future__ import annotations

import logging

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from rayzig_core import Module

from .const import MANUFACTURER
from .site_data import (
    RayzigSiteData,
    gateway_device_identifier,
    module_device_identifier,
    rayzig_firmware,
    site_changes,
)

_LOGGER = logging.getLogger(__package__)


@callback
def async_find_device(
    hass: HomeAssistant, entry: ConfigEntry, identifier: tuple[str, str]
) -> dr.DeviceEntry | None:
    """The entry's device with ``identifier`` (a module's or the gateway's), if registered."""
    registry = dr.async_get(hass)
    by_identifier = getattr(registry, "async_get_device_by_identifier", None)
    if by_identifier is not None:  # pragma: no cover - HA 2026.8+ (async_get_device deprecated)
        found: dr.DeviceEntry | None = by_identifier(identifier, entry.entry_id)
        return found
    device = registry.async_get_device(identifiers={identifier})
    if device is None or entry.entry_id not in device.config_entries:
        return None
    return device


@callback
def async_module_device_id(
    hass: HomeAssistant, entry: ConfigEntry, module: Module, *, create: bool = False
) -> str | None:
    """Registry id of a module's device; with ``create``, made early if entities are not up yet."""
    identifier = module_device_identifier(module.serial)
    device = async_find_device(hass, entry, identifier)
    if device is None and create:
        device = dr.async_get(hass).async_get_or_create(
            config_entry_id=entry.entry_id,
            identifiers={identifier},
            manufacturer=MANUFACTURER,
            model=module.model,
            name=module.name,
            serial_number=module.serial,
        )
    return None if device is None else device.id


@callback
def async_mirror_changes(
    hass: HomeAssistant,
    entry: ConfigEntry,
    gateway_device_id: str | None,
    old: RayzigSiteData,
    new: RayzigSiteData,
) -> None:
    """Update the gateway's firmware and the devices of modules that changed or left."""
    registry = dr.async_get(hass)
    if old.info.firmware != new.info.firmware and gateway_device_id is not None:
        registry.async_update_device(gateway_device_id, sw_version=rayzig_firmware(new.info))
    changes = site_changes(old, new)
    # A module id may now hold another serial; a serial may (after a reset) have another id.
    new_serials = {module.serial for module in new.modules.values()} if changes.site else set()
    for module_id in changes.modules:
        module = old.modules.get(module_id)
        current = new.modules.get(module_id)
        if module is None:
            continue  # joined: its entities create its device
        if current is None or current.serial != module.serial:
            if module.serial not in new_serials:
                _LOGGER.info(
                    "Module %s is gone (it left the mesh, or a user limitation hides it); "
                    "removing its device",
                    module.name,
                )
                _async_remove_module_device(hass, entry, module.serial)
        elif (current.name, current.model, current.firmware) != (
            module.name,
            module.model,
            module.firmware,
        ):
            _async_update_module_device(hass, entry, current)


@callback
def _async_remove_module_device(hass: HomeAssistant, entry: ConfigEntry, serial: str) -> None:
    device = async_find_device(hass, entry, module_device_identifier(serial))
    if device is not None:
        dr.async_get(hass).async_remove_device(device.id)


@callback
def _async_update_module_device(hass: HomeAssistant, entry: ConfigEntry, module: Module) -> None:
    device = async_find_device(hass, entry, module_device_identifier(module.serial))
    if device is not None:
        dr.async_get(hass).async_update_device(
            device.id, name=module.name, model=module.model, sw_version=module.firmware
        )


@callback
def async_remove_stale_devices(
    hass: HomeAssistant, entry: ConfigEntry, data: RayzigSiteData
) -> None:
    """Remove devices of modules that left the mesh while Home Assistant was not looking."""
    registry = dr.async_get(hass)
    wanted = {gateway_device_identifier(data.info.serial)} | {
        module_device_identifier(module.serial) for module in data.modules.values()
    }
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if not device.identifiers & wanted:
            registry.async_remove_device(device.id)
