"""Actions of the Rayzig integration: gateway users, event sync and module presets.

Registered once in ``async_setup`` (they name their config entry or device when called). Bad input
raises ServiceValidationError, a refusal by the gateway a HomeAssistantError; both translated.
"""

from __future__ import annotations

from typing import Final

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.translation import async_get_translations

from rayzig_core.errors import PasswordRejectedError, RayzigError
from rayzig_core.models import Module, RestorePreset, UserLevel
from rayzig_core.password_policy import PolicyViolation, check_password
from rayzig_core.permissions import Permission, permission_to_manage

from .const import DOMAIN
from .data import RayzigConfigEntry

SERVICE_ADD_USER: Final = "add_user"
SERVICE_DELETE_USER: Final = "delete_user"
SERVICE_SYNC_EVENTS: Final = "sync_events"
SERVICE_SET_MODULE_PRESETS: Final = "set_module_presets"

ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_DEVICE_ID: Final = "device_id"
ATTR_NAME: Final = "name"
ATTR_LEVEL: Final = "level"
ATTR_PASSWORD: Final = "password"  # noqa: S105 - a field name
ATTR_PRESET: Final = "preset"

LEVELS: Final[dict[str, UserLevel]] = {
    "user": UserLevel.USER,
    "administrator": UserLevel.ADMINISTRATOR,
    "system": UserLevel.SYSTEM,
    "utility": UserLevel.UTILITY,
}
PRESETS: Final[dict[str, RestorePreset]] = {
    "off": RestorePreset.OFF,
    "on": RestorePreset.ON,
    "last": RestorePreset.LAST,
}
USER_NAME = vol.All(cv.string, vol.Strip, vol.Length(min=1, max=32))

ADD_USER_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_NAME): USER_NAME,
        vol.Required(ATTR_LEVEL): vol.In(list(LEVELS)),
        vol.Required(ATTR_PASSWORD): cv.string,
    }
)
DELETE_USER_SCHEMA = vol.Schema(
    {vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string, vol.Required(ATTR_NAME): USER_NAME}
)
SYNC_EVENTS_SCHEMA = vol.Schema(
    {vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string, vol.Optional(ATTR_DEVICE_ID): cv.string}
)
SET_MODULE_PRESETS_SCHEMA = vol.Schema(
    {vol.Required(ATTR_DEVICE_ID): cv.string, vol.Required(ATTR_PRESET): vol.In(list(PRESETS))}
)


def _validation_error(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders or None,
    )


def _loaded_entry(hass: HomeAssistant, entry_id: str) -> RayzigConfigEntry:
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise _validation_error("entry_not_found", entry_id=entry_id)
    if entry.state is not ConfigEntryState.LOADED:
        raise _validation_error("entry_not_loaded", title=entry.title)
    loaded: RayzigConfigEntry = entry
    return loaded


def _module_of_device(
    hass: HomeAssistant, device_id: str, entry: RayzigConfigEntry | None = None
) -> tuple[RayzigConfigEntry, Module]:
    """Find the loaded entry and module a device stands for (ServiceValidationError if none)."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        raise _validation_error("device_not_found", device_id=device_id)
    entry_ids = [entry.entry_id] if entry is not None else sorted(device.config_entries)
    for entry_id in entry_ids:
        if entry_id not in device.config_entries:
            continue
        candidate = hass.config_entries.async_get_entry(entry_id)
        if candidate is None or candidate.domain != DOMAIN:
            continue
        loaded = _loaded_entry(hass, entry_id)
        for module in loaded.runtime_data.coordinator.data.modules.values():
            if (DOMAIN, module.serial) in device.identifiers:
                return loaded, module
    raise _validation_error("not_a_module", device=device.name_by_user or device.name or "")


async def _reasons(hass: HomeAssistant, codes: tuple[str, ...]) -> str:
    """Why a password is refused, in the user's language (policy's English text as fallback)."""
    texts = await async_get_translations(hass, hass.config.language, "exceptions", [DOMAIN])
    reasons = []
    for code in codes:
        try:
            violation = PolicyViolation(code)
        except ValueError:
            reasons.append(code)
            continue
        key = f"component.{DOMAIN}.exceptions.password_{violation.value}.message"
        reasons.append(texts.get(key) or violation.message)
    return " ".join(reasons)


async def _async_add_user(call: ServiceCall) -> None:
    entry = _loaded_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    coordinator = entry.runtime_data.coordinator
    name: str = call.data[ATTR_NAME]
    level = LEVELS[call.data[ATTR_LEVEL]]
    password: str = call.data[ATTR_PASSWORD]
    violations = check_password(password, user_name=name, serial=coordinator.data.info.serial)
    if violations:
        reasons = await _reasons(call.hass, tuple(v.value for v in violations))
        raise _validation_error("password_rejected", reasons=reasons)
    try:
        await coordinator.client.add_user(name, level, password)
    except PasswordRejectedError as err:
        reasons = await _reasons(call.hass, err.reasons)
        raise _validation_error("password_rejected", reasons=reasons) from err
    except RayzigError as err:
        raise coordinator.translate_error(err, permission=permission_to_manage(level)) from err


async def _async_delete_user(call: ServiceCall) -> None:
    entry = _loaded_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    coordinator = entry.runtime_data.coordinator
    name: str = call.data[ATTR_NAME]
    if name == coordinator.data.info.user:
        raise _validation_error("cannot_delete_own_user", user=name)
    await coordinator.async_command(
        coordinator.client.delete_user(name), permission=Permission.MANAGE_USERS
    )


async def _async_sync_events(call: ServiceCall) -> ServiceResponse:
    entry = _loaded_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    runtime = entry.runtime_data
    module_ids: list[int] | None = None
    if device_id := call.data.get(ATTR_DEVICE_ID):
        _, module = _module_of_device(call.hass, device_id, entry)
        module_ids = [module.module_id]
    imported = await runtime.coordinator.async_command(
        runtime.events.async_sync(module_ids), permission=Permission.READ_EVENTS
    )
    return {"imported": imported}


async def _async_set_module_presets(call: ServiceCall) -> None:
    entry, module = _module_of_device(call.hass, call.data[ATTR_DEVICE_ID])
    coordinator = entry.runtime_data.coordinator
    preset = PRESETS[call.data[ATTR_PRESET]]
    for output in module.outputs:
        result = await coordinator.async_command(
            coordinator.client.set_restore_preset(module.module_id, output.index, preset),
            permission=Permission.SET_PRESET,
            module_id=module.module_id,
        )
        coordinator.async_apply_output(module.module_id, result)


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    hass.services.async_register(DOMAIN, SERVICE_ADD_USER, _async_add_user, ADD_USER_SCHEMA)
    hass.services.async_register(
        DOMAIN, SERVICE_DELETE_USER, _async_delete_user, DELETE_USER_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_SYNC_EVENTS,
        _async_sync_events,
        SYNC_EVENTS_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_SET_MODULE_PRESETS, _async_set_module_presets, SET_MODULE_PRESETS_SCHEMA
    )
