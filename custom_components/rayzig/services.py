"""Actions of the Rayzig integration: gateway users and their limitations, event sync, presets.

Registered once in ``async_setup`` (they name their config entry or device when called). Bad input
raises ServiceValidationError, a refusal by the gateway a HomeAssistantError; both translated.

``add_user`` never takes a password: Home Assistant records every action call with its data (the
``call_service`` event), so a password given there would end up in its database. It generates a
random initial password instead and returns it only in the action's response, which is not
recorded.

A User's limitation (PROTOCOL.md §7.4) is chosen as Rayzig module devices (whole modules) and
output switches (single outputs); read-only alone limits the whole site to reading, and nothing
chosen in ``set_user_limitation`` lifts the limitation.
"""

from __future__ import annotations

from typing import Any, Final

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.translation import async_get_translations

from rayzig_core import (
    LIMITABLE_LEVELS,
    Module,
    OutputRef,
    PasswordRejectedError,
    Permission,
    PolicyViolation,
    RayzigError,
    RestorePreset,
    UserLevel,
    UserLimitation,
    allowed,
    permission_to_manage,
)

from .const import DOMAIN
from .data import RayzigConfigEntry
from .passwords import generate_password

SERVICE_ADD_USER: Final = "add_user"
SERVICE_DELETE_USER: Final = "delete_user"
SERVICE_SYNC_EVENTS: Final = "sync_events"
SERVICE_SET_MODULE_PRESETS: Final = "set_module_presets"
SERVICE_SET_USER_LIMITATION: Final = "set_user_limitation"

ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_DEVICE_ID: Final = "device_id"
ATTR_NAME: Final = "name"
ATTR_LEVEL: Final = "level"
ATTR_PASSWORD: Final = "password"  # noqa: S105 - a response key
ATTR_MESSAGE: Final = "message"
ATTR_PRESET: Final = "preset"
ATTR_MODULES: Final = "modules"
ATTR_OUTPUTS: Final = "outputs"
ATTR_READ_ONLY: Final = "read_only"
ATTR_LIMITED: Final = "limited"

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
LIMITATION_FIELDS: Final[dict[Any, Any]] = {
    vol.Optional(ATTR_MODULES, default=list): vol.All(cv.ensure_list, [cv.string]),
    vol.Optional(ATTR_OUTPUTS, default=list): cv.entity_ids,
    vol.Optional(ATTR_READ_ONLY, default=False): cv.boolean,
}
"""A User's limitation: module devices, output switches, read-only (PROTOCOL.md §7.4)."""

ADD_USER_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_NAME): USER_NAME,
        vol.Required(ATTR_LEVEL): vol.In(list(LEVELS)),
        **LIMITATION_FIELDS,
    }
)
SET_USER_LIMITATION_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_NAME): USER_NAME,
        **LIMITATION_FIELDS,
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


def _output_of_entity(hass: HomeAssistant, entity_id: str, entry: RayzigConfigEntry) -> OutputRef:
    """The output a Rayzig output switch of ``entry`` stands for (else ServiceValidationError)."""
    found = er.async_get(hass).async_get(entity_id)
    if (
        found is not None
        and found.platform == DOMAIN
        and found.domain == "switch"
        and found.device_id is not None
    ):
        _, module = _module_of_device(hass, found.device_id, entry)
        index = found.unique_id.removeprefix(f"{module.serial}_output_")
        if index.isdigit() and module.output(int(index)) is not None:
            return OutputRef(module.module_id, int(index))
    raise _validation_error("not_an_output", entity=entity_id)


def _limitation(call: ServiceCall, entry: RayzigConfigEntry) -> UserLimitation | None:
    """The limitation an action asks for (None: none); read-only alone means the whole site."""
    hass = call.hass
    modules = tuple(
        sorted({_module_of_device(hass, d, entry)[1].module_id for d in call.data[ATTR_MODULES]})
    )
    outputs = tuple(
        dict.fromkeys(_output_of_entity(hass, e, entry) for e in call.data[ATTR_OUTPUTS])
    )
    read_only: bool = call.data[ATTR_READ_ONLY]
    if not (modules or outputs or read_only):
        return None
    return UserLimitation(
        modules, outputs, read_only=read_only, all_modules=not (modules or outputs)
    )


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


async def _handover_message(hass: HomeAssistant, name: str) -> str:
    """What to do with the initial password, in Home Assistant's language (English fallback).

    Kept with the exception texts: Home Assistant has no translation category for responses.
    """
    texts = await async_get_translations(hass, hass.config.language, "exceptions", [DOMAIN])
    template = texts.get(f"component.{DOMAIN}.exceptions.user_created.message") or (
        "Give this initial password to {name} in person or over another secure channel, and "
        "have them change it at once with `rayzig passwd --user {name}`. Home Assistant does not "
        "keep it and cannot show it again."
    )
    return template.replace("{name}", name)


async def _async_add_user(call: ServiceCall) -> ServiceResponse:
    """Create the user with a generated password, returned only in the (unrecorded) response."""
    entry = _loaded_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    coordinator = entry.runtime_data.coordinator
    name: str = call.data[ATTR_NAME]
    level = LEVELS[call.data[ATTR_LEVEL]]
    limitation = _limitation(call, entry)
    if limitation is not None and level not in LIMITABLE_LEVELS:
        raise _validation_error("limitation_needs_user_level", level=call.data[ATTR_LEVEL])
    password = await call.hass.async_add_executor_job(
        generate_password, name, coordinator.data.info.serial
    )
    try:
        if limitation is None:
            await coordinator.client.add_user(name, level, password)
        else:  # deleted again if the gateway refuses the limitation
            await coordinator.client.add_limited_user(name, password, limitation)
    except PasswordRejectedError as err:
        # The gateway knows rules Home Assistant does not (its default password, say).
        reasons = await _reasons(call.hass, err.reasons)
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="password_rejected",
            translation_placeholders={"reasons": reasons},
        ) from err
    except RayzigError as err:
        raise coordinator.translate_error(err, permission=permission_to_manage(level)) from err
    return {
        ATTR_NAME: name,
        ATTR_LEVEL: call.data[ATTR_LEVEL],
        ATTR_LIMITED: limitation is not None,
        ATTR_PASSWORD: password,
        ATTR_MESSAGE: await _handover_message(call.hass, name),
    }


async def _async_delete_user(call: ServiceCall) -> None:
    """Delete a gateway account; a refusal names the level it needs (System for Administrators)."""
    entry = _loaded_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    coordinator = entry.runtime_data.coordinator
    name: str = call.data[ATTR_NAME]
    if name == coordinator.data.info.user:
        raise _validation_error("cannot_delete_own_user", user=name)
    permission = Permission.MANAGE_USERS
    if allowed(coordinator.data.info.level, Permission.MANAGE_USERS):
        # The account's level decides the permission (PROTOCOL.md §7.3): look it up to say so.
        try:
            users = await coordinator.client.list_users()
        except RayzigError as err:
            raise coordinator.translate_error(err, permission=permission) from err
        levels = {user.name: user.level for user in users}
        if name in levels:
            permission = permission_to_manage(levels[name])
    await coordinator.async_command(coordinator.client.delete_user(name), permission=permission)


async def _async_set_user_limitation(call: ServiceCall) -> None:
    """Limit a User to module devices and output switches, or to reading; nothing lifts it."""
    entry = _loaded_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    coordinator = entry.runtime_data.coordinator
    limitation = _limitation(call, entry)
    await coordinator.async_command(
        coordinator.client.set_user_limitation(call.data[ATTR_NAME], limitation),
        permission=Permission.MANAGE_USERS,
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
    hass.services.async_register(
        DOMAIN,
        SERVICE_ADD_USER,
        _async_add_user,
        ADD_USER_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_DELETE_USER, _async_delete_user, DELETE_USER_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_SET_USER_LIMITATION,
        _async_set_user_limitation,
        SET_USER_LIMITATION_SCHEMA,
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
