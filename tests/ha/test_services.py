"""Actions: gateway users (generated passwords), event sync and module presets; refusals."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
import voluptuous as vol
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig import passwords, services
from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.services import _reasons
from rayzig_core.client import RayzigClient
from rayzig_core.errors import RayzigInternalError
from rayzig_core.models import RestorePreset, UserLevel
from rayzig_core.password_policy import check_password
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector

from .runtime_helpers import entry_for, loaded_entry, pair_user, site_modules

GOOD_PASSWORD = "amber-falcon-weaves-61-ropes"


async def _call(hass: HomeAssistant, service: str, data: dict[str, object]) -> object:
    return await hass.services.async_call(DOMAIN, service, data, blocking=True)


def _users(gateway: GatewayThread) -> dict[str, UserLevel]:
    return gateway.call(lambda gw: {name: user.level for name, user in gw.users.items()})


async def _add_user(hass: HomeAssistant, data: dict[str, object]) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, "add_user", data, blocking=True, return_response=True
    )
    assert response is not None
    return dict(response)


async def test_add_and_delete_user(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A System pairing adds a user with a generated password (in the response) and deletes it."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        response = await _add_user(
            hass, {"config_entry_id": entry.entry_id, "name": " guest ", "level": "administrator"}
        )
        assert _users(gateway)["guest"] is UserLevel.ADMINISTRATOR
        password = response.pop("password")
        assert response == {
            "name": "guest",
            "level": "administrator",
            "limited": False,
            "message": (
                "Give this initial password to guest in person or over another secure channel, "
                "and have them change it at once with `rayzig passwd --user guest`. Home "
                "Assistant does not keep it and cannot show it again."
            ),
        }
        serial = entry.runtime_data.coordinator.data.info.serial
        assert check_password(password, user_name="guest", serial=serial) == ()
        # The password is the account's: the new user can pair with it.
        client = RayzigClient(TcpConnector("127.0.0.1", gateway.port), client_name="guest's tool")
        try:
            paired = await client.pair(await client.identify(), "guest", password)
        finally:
            await client.close()
        assert paired.level is UserLevel.ADMINISTRATOR
        await _call(hass, "delete_user", {"config_entry_id": entry.entry_id, "name": "guest"})
        assert "guest" not in _users(gateway)


async def test_add_user_takes_no_password_and_needs_the_response(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A password in the action data is refused (it would be recorded); the response is required."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        base = {"config_entry_id": entry.entry_id, "name": "guest", "level": "user"}
        with pytest.raises(vol.Invalid):
            await _add_user(hass, {**base, "password": GOOD_PASSWORD})
        with pytest.raises(ServiceValidationError):
            await _call(hass, "add_user", base)  # without return_response
        assert "guest" not in _users(gateway)


async def test_add_user_message_in_german(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hand-over message follows Home Assistant's language."""
    hass.config.language = "de"
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        response = await _add_user(
            hass, {"config_entry_id": entry.entry_id, "name": "gast", "level": "user"}
        )
    assert response["message"].startswith("Gib dieses Anfangspasswort")
    assert "`rayzig passwd --user gast`" in response["message"]


async def test_add_user_message_fallback(hass: HomeAssistant) -> None:
    """Without a translation the hand-over message is English."""

    async def no_translations(*args: object) -> dict[str, str]:
        return {}

    with patch.object(services, "async_get_translations", no_translations):
        message = await services._handover_message(hass, "{x}")
    assert message.startswith("Give this initial password to {x} in person")


def test_generated_passwords_pass_the_policy() -> None:
    """Random, 29 characters in five groups, accepted by the policy for that user and serial."""
    drawn = {passwords.generate_password("guest", "RG1-0D8F4956") for _ in range(50)}
    assert len(drawn) == 50
    for password in drawn:
        groups = password.split("-")
        assert [len(group) for group in groups] == [5] * 5
        assert set("".join(groups)) <= set(passwords.PASSWORD_ALPHABET)
        assert check_password(password, user_name="guest", serial="RG1-0D8F4956") == ()


def test_generated_password_drawn_again_until_it_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A draw the policy refuses (here: it holds the user name) is replaced by a fresh one."""
    draws = iter("guest" * 5 + "k7m2q" + "x9p4r" + "h3t8w" + "c6v2n" + "y5b9s")
    monkeypatch.setattr(passwords.secrets, "choice", lambda alphabet: next(draws))
    assert passwords.generate_password("guest", "") == "k7m2q-x9p4r-h3t8w-c6v2n-y5b9s"


def test_generated_password_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy no draw can pass is a bug, not a user error."""
    monkeypatch.setattr(passwords.secrets, "choice", lambda alphabet: "a")
    with pytest.raises(RayzigInternalError):
        passwords.generate_password("guest", "")


async def test_add_user_generated_password_refused_by_gateway(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rule only the gateway knows (its label's default password) refuses the password."""
    assert gateway.factory is not None
    default = gateway.factory.default_password
    monkeypatch.setattr(services, "generate_password", lambda name, serial: default)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        with pytest.raises(HomeAssistantError) as raised:
            await _add_user(
                hass, {"config_entry_id": entry.entry_id, "name": "guest", "level": "user"}
            )
        assert raised.value.translation_key == "password_rejected"
        assert "default password printed on the gateway's label" in str(raised.value)
        assert default not in str(raised.value)
        assert "guest" not in _users(gateway)


async def test_add_user_refusals(
    hass: HomeAssistant, gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A User-level pairing may not manage users: a translated permission error."""
    credentials = await pair_user(gateway, "guest", UserLevel.USER, "plum-harbor-sings-83-lanterns")
    async with loaded_entry(hass, entry_for(gateway, credentials), monkeypatch) as entry:
        with pytest.raises(HomeAssistantError) as raised:
            await _add_user(
                hass, {"config_entry_id": entry.entry_id, "name": "other", "level": "administrator"}
            )
        assert raised.value.translation_key == "permission_needs_system"
        assert "deliberately holds no System rights" in str(raised.value)
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
        base = {"config_entry_id": entry.entry_id}
        with pytest.raises(vol.Invalid):
            await _add_user(hass, {**base, "name": "x", "level": "emperor"})
        with pytest.raises(vol.Invalid):
            await _add_user(hass, {**base, "name": "x" * 33, "level": "user"})
        with pytest.raises(HomeAssistantError) as raised:
            await _add_user(hass, {**base, "name": "installer", "level": "user"})
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
