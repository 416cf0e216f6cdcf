"""Actions: gateway users, event sync and module presets, with validation and refusals."""

from __future__ import annotations

import pytest
import voluptuous as vol
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.services import _reasons
from rayzig_core.models import RestorePreset, UserLevel
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entry_for, loaded_entry, pair_user, site_modules

GOOD_PASSWORD = "amber-falcon-weaves-61-ropes"


async def _call(hass: HomeAssistant, service: str, data: dict[str, object]) -> object:
    return await hass.services.async_call(DOMAIN, service, data, blocking=True)


def _users(gateway: GatewayThread) -> dict[str, UserLevel]:
    return gateway.call(lambda gw: {name: user.level for name, user in gw.users.items()})


async def test_add_and_delete_user(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A System pairing adds and deletes users on the gateway."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        await _call(
            hass,
            "add_user",
            {
                "config_entry_id": entry.entry_id,
                "name": " guest ",
                "level": "administrator",
                "password": GOOD_PASSWORD,
            },
        )
        assert _users(gateway)["guest"] is UserLevel.ADMINISTRATOR
        await _call(hass, "delete_user", {"config_entry_id": entry.entry_id, "name": "guest"})
        assert "guest" not in _users(gateway)


async def test_add_user_weak_password(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A password failing the policy is refused before anything is sent, listing every reason."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        with pytest.raises(ServiceValidationError) as raised:
            await _call(
                hass,
                "add_user",
                {
                    "config_entry_id": entry.entry_id,
                    "name": "guest",
                    "level": "user",
                    "password": "rayzig123",
                },
            )
        assert raised.value.translation_key == "password_rejected"
        message = str(raised.value)
        assert "Use at least 15 characters." in message
        assert 'Do not use product names such as "Rayzig"' in message
        assert "guest" not in _users(gateway)


async def test_add_user_default_password_refused_by_gateway(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The label's default password passes the local rules but the gateway refuses it."""
    assert gateway.factory is not None
    default = gateway.factory.default_password
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        with pytest.raises(ServiceValidationError) as raised:
            await _call(
                hass,
                "add_user",
                {
                    "config_entry_id": entry.entry_id,
                    "name": "guest",
                    "level": "user",
                    "password": default,
                },
            )
        assert raised.value.translation_key == "password_rejected"
        assert "default password printed on the gateway's label" in str(raised.value)
        assert default not in str(raised.value)


async def test_add_user_refusals(
    hass: HomeAssistant, gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A User-level pairing may not manage users: a translated permission error."""
    credentials = await pair_user(gateway, "guest", UserLevel.USER, "plum-harbor-sings-83-lanterns")
    async with loaded_entry(hass, entry_for(gateway, credentials), monkeypatch) as entry:
        with pytest.raises(HomeAssistantError) as raised:
            await _call(
                hass,
                "add_user",
                {
                    "config_entry_id": entry.entry_id,
                    "name": "other",
                    "level": "administrator",
                    "password": GOOD_PASSWORD,
                },
            )
        assert raised.value.translation_key == "permission_denied"
        assert "needs the System level" in str(raised.value)
        with pytest.raises(HomeAssistantError) as raised:
            await _call(
                hass, "delete_user", {"config_entry_id": entry.entry_id, "name": "installer"}
            )
        assert raised.value.translation_key == "permission_denied"


async def test_user_errors(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bad input, duplicates, unknown users and deleting Home Assistant's own user."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        base = {"config_entry_id": entry.entry_id, "password": GOOD_PASSWORD}
        with pytest.raises(vol.Invalid):
            await _call(hass, "add_user", {**base, "name": "x", "level": "emperor"})
        with pytest.raises(vol.Invalid):
            await _call(hass, "add_user", {**base, "name": "x" * 33, "level": "user"})
        with pytest.raises(HomeAssistantError) as raised:
            await _call(hass, "add_user", {**base, "name": "installer", "level": "user"})
        assert raised.value.translation_key == "request_failed"
        assert "already exists" in str(raised.value)
        with pytest.raises(HomeAssistantError) as raised:
            await _call(hass, "delete_user", {"config_entry_id": entry.entry_id, "name": "nobody"})
        assert raised.value.translation_key == "not_found"
        with pytest.raises(ServiceValidationError) as raised:
            await _call(
                hass, "delete_user", {"config_entry_id": entry.entry_id, "name": "installer"}
            )
        assert raised.value.translation_key == "cannot_delete_own_user"
        assert "installer" in _users(gateway)


async def test_entry_checks(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Actions name a loaded Rayzig entry; anything else is a validation error."""
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        for entry_id in ("nope", other.entry_id):
            with pytest.raises(ServiceValidationError) as raised:
                await _call(hass, "sync_events", {"config_entry_id": entry_id})
            assert raised.value.translation_key == "entry_not_found"
        await hass.config_entries.async_unload(entry.entry_id)
        with pytest.raises(ServiceValidationError) as raised:
            await _call(hass, "sync_events", {"config_entry_id": entry.entry_id})
        assert raised.value.translation_key == "entry_not_loaded"


async def test_sync_events(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sync imports new records now and says how many; a device limits it to its module."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        await entry.runtime_data.events.async_sync()
        gateway.call(
            lambda gw: [
                gw.site.set_output(module.module_id, 0, on=bool(n % 2), user="installer")
                for n in range(3)
            ]
        )
        device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, module.serial)})
        assert device is not None
        response = await hass.services.async_call(
            DOMAIN,
            "sync_events",
            {"config_entry_id": entry.entry_id, "device_id": device.id},
            blocking=True,
            return_response=True,
        )
        assert response is not None
        assert 0 <= int(response["imported"]) <= 3  # type: ignore[call-overload]
        response = await hass.services.async_call(
            DOMAIN,
            "sync_events",
            {"config_entry_id": entry.entry_id},
            blocking=True,
            return_response=True,
        )
        assert response == {"imported": 0}


async def test_set_module_presets(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every output of the module gets the preset; the selects follow."""
    module = max(site_modules(gateway), key=lambda m: len(m.outputs))
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, module.serial)})
        assert device is not None
        await _call(hass, "set_module_presets", {"device_id": device.id, "preset": "on"})
        presets = gateway.call(
            lambda gw: [o.preset for o in gw.site.module(module.module_id).outputs]
        )
        assert presets == [RestorePreset.ON] * len(module.outputs)
        data = entry.runtime_data.coordinator.data.modules[module.module_id]
        assert [o.preset for o in data.outputs] == presets


async def test_device_checks(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unknown devices and devices that are not modules are refused clearly."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        with pytest.raises(ServiceValidationError) as raised:
            await _call(hass, "set_module_presets", {"device_id": "nope", "preset": "on"})
        assert raised.value.translation_key == "device_not_found"
        gateway_device = entry.runtime_data.coordinator.gateway_device_id
        with pytest.raises(ServiceValidationError) as raised:
            await _call(hass, "set_module_presets", {"device_id": gateway_device, "preset": "off"})
        assert raised.value.translation_key == "not_a_module"
        other = MockConfigEntry(domain="other")
        other.add_to_hass(hass)
        foreign = dr.async_get(hass).async_get_or_create(
            config_entry_id=other.entry_id, identifiers={("other", "x")}, name="Lamp"
        )
        with pytest.raises(ServiceValidationError) as raised:
            await _call(hass, "set_module_presets", {"device_id": foreign.id, "preset": "off"})
        assert raised.value.translation_key == "not_a_module"
        with pytest.raises(ServiceValidationError) as raised:
            await _call(
                hass,
                "sync_events",
                {"config_entry_id": entry.entry_id, "device_id": foreign.id},
            )
        assert raised.value.translation_key == "not_a_module"


async def test_unknown_policy_reason_shown_as_is(hass: HomeAssistant) -> None:
    """A refusal reason newer than this integration is shown by its code."""
    assert await _reasons(hass, ("too_short", "new_rule")) == "Use at least 15 characters. new_rule"


async def test_set_module_presets_needs_administrator(
    hass: HomeAssistant, gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A User-level pairing cannot change presets."""
    credentials = await pair_user(gateway, "guest", UserLevel.USER, "plum-harbor-sings-83-lanterns")
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, entry_for(gateway, credentials), monkeypatch):
        device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, module.serial)})
        assert device is not None
        with pytest.raises(HomeAssistantError) as raised:
            await _call(hass, "set_module_presets", {"device_id": device.id, "preset": "on"})
        assert raised.value.translation_key == "permission_denied"
        assert raised.value.translation_placeholders is not None
        assert raised.value.translation_placeholders["required"] == "Administrator"
