"""User limitations (PROTOCOL.md §7.4) in Home Assistant.

The actions: ``add_user`` takes a limitation (module devices, output switches, read-only) and
``set_user_limitation`` sets or lifts one; bad choices are translated validation errors. And Home
Assistant paired as a limited user: no device for a module it does not see, no entity for an
output it does not see (unavailable when the limitation narrowed while it ran), and switching
refused by a read-only limitation is a translated error that names the limitation.
"""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import DOMAIN
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import OutputRef, UserLevel, UserLimitation
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector

from .conftest import OWNER, OWNER_PASSWORD
from .runtime_helpers import entity_id, entry_for, loaded_entry, pair_user, site_modules, wait_for

PARTIAL, WHOLE, OTHER = 2, 3, 5
"""Modules of the generated site: 2 (3 outputs), 3 (1 output), 5 (2 outputs)."""
LIMITATION = UserLimitation(modules=(WHOLE,), outputs=(OutputRef(PARTIAL, 1),))
GUEST_PASSWORD = "plum-harbor-sings-83-lanterns"


def serial(gateway: GatewayThread, module_id: int) -> str:
    return next(m.serial for m in site_modules(gateway) if m.module_id == module_id)


def device_id(hass: HomeAssistant, gateway: GatewayThread, module_id: int) -> str | None:
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, serial(gateway, module_id))})
    return None if device is None else device.id


def switch_unique_id(gateway: GatewayThread, module_id: int, index: int) -> str:
    return f"{serial(gateway, module_id)}_output_{index}"


def stored(gateway: GatewayThread, name: str) -> UserLimitation | None:
    return gateway.call(lambda gw: gw.users[name].limitation)


async def limit(gateway: GatewayThread, name: str, limitation: UserLimitation | None) -> None:
    """Set a user's limitation from another client, as an Administrator would."""
    admin = RayzigClient(TcpConnector("127.0.0.1", gateway.port), client_name="admin tool")
    await admin.pair(await admin.identify(), OWNER, OWNER_PASSWORD)
    await admin.connect()
    try:
        await admin.set_user_limitation(name, limitation)
    finally:
        await admin.close()


async def limited_guest(gateway: GatewayThread, limitation: UserLimitation) -> ClientCredentials:
    credentials = await pair_user(gateway, "guest", UserLevel.USER, GUEST_PASSWORD)
    await limit(gateway, "guest", limitation)
    return credentials


async def _call(hass: HomeAssistant, service: str, data: dict[str, object]) -> Any:
    response = service == "add_user"
    return await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=response
    )


# --- the actions -------------------------------------------------------------------------------


async def test_add_user_with_a_limitation(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Module devices and output switches chosen in the UI become the user's limitation."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        response = await _call(
            hass,
            "add_user",
            {
                "config_entry_id": entry.entry_id,
                "name": "guest",
                "level": "user",
                "modules": [device_id(hass, gateway, WHOLE)],
                "outputs": [entity_id(hass, "switch", switch_unique_id(gateway, PARTIAL, 1))],
                "read_only": True,
            },
        )
    assert response["limited"] is True
    assert stored(gateway, "guest") == UserLimitation((WHOLE,), (OutputRef(PARTIAL, 1),), True)


async def test_add_user_limitation_checks(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only User accounts are limited; outputs are output switches of this gateway."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        base = {"config_entry_id": entry.entry_id, "name": "guest"}
        with pytest.raises(ServiceValidationError) as raised:
            await _call(hass, "add_user", {**base, "level": "administrator", "read_only": True})
        assert raised.value.translation_key == "limitation_needs_user_level"
        assert raised.value.translation_placeholders == {"level": "administrator"}
        sensor = next(
            e.entity_id
            for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
            if e.domain == "sensor"
        )
        for not_an_output in (sensor, "switch.kitchen_lamp"):
            with pytest.raises(ServiceValidationError) as raised:
                await _call(hass, "add_user", {**base, "level": "user", "outputs": [not_an_output]})
            assert raised.value.translation_key == "not_an_output"
            assert raised.value.translation_placeholders == {"entity": not_an_output}
    assert "guest" not in gateway.call(lambda gw: set(gw.users))


async def test_set_and_lift_a_limitation(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read-only alone limits the whole site; nothing chosen lifts the limitation."""
    await pair_user(gateway, "guest", UserLevel.USER, GUEST_PASSWORD)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        base = {"config_entry_id": entry.entry_id, "name": "guest"}
        await _call(
            hass,
            "set_user_limitation",
            {**base, "outputs": [entity_id(hass, "switch", switch_unique_id(gateway, OTHER, 1))]},
        )
        assert stored(gateway, "guest") == UserLimitation(outputs=(OutputRef(OTHER, 1),))
        await _call(hass, "set_user_limitation", {**base, "read_only": True})
        assert stored(gateway, "guest") == UserLimitation(read_only=True, all_modules=True)
        await _call(hass, "set_user_limitation", base)
        assert stored(gateway, "guest") is None
        with pytest.raises(HomeAssistantError) as raised:
            await _call(
                hass, "set_user_limitation", {**base, "name": "installer", "read_only": True}
            )
        assert raised.value.translation_key == "request_failed"
        assert "Only User accounts can be limited" in str(raised.value)


async def test_a_limited_user_cannot_lift_its_own_limitation(
    hass: HomeAssistant, gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = await limited_guest(gateway, LIMITATION)
    async with loaded_entry(hass, entry_for(gateway, credentials), monkeypatch) as entry:
        with pytest.raises(HomeAssistantError) as raised:
            await _call(
                hass, "set_user_limitation", {"config_entry_id": entry.entry_id, "name": "guest"}
            )
        assert raised.value.translation_key == "permission_denied"
    assert stored(gateway, "guest") == LIMITATION


# --- Home Assistant paired as a limited user ------------------------------------------------------


async def test_paired_as_a_limited_user_only_what_it_sees_becomes_entities(
    hass: HomeAssistant, gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = await limited_guest(gateway, LIMITATION)
    async with loaded_entry(hass, entry_for(gateway, credentials), monkeypatch) as entry:
        registry = er.async_get(hass)
        switches = {
            e.unique_id
            for e in er.async_entries_for_config_entry(registry, entry.entry_id)
            if e.domain == "switch"
        }
        assert switches == {
            switch_unique_id(gateway, PARTIAL, 1),
            switch_unique_id(gateway, WHOLE, 0),
        }
        assert device_id(hass, gateway, OTHER) is None
        assert device_id(hass, gateway, PARTIAL) is not None
        visible = entity_id(hass, "switch", switch_unique_id(gateway, PARTIAL, 1))
        await hass.services.async_call(
            SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: visible}, blocking=True
        )
        assert hass.states.get(visible).state == "on"
        assert gateway.call(lambda gw: gw.site.module(PARTIAL).outputs[1].is_on) is True


async def test_a_limitation_set_while_running_narrows_what_home_assistant_shows(
    hass: HomeAssistant, gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway restarts the session; the refresh drops what it no longer sees."""
    credentials = await pair_user(gateway, "guest", UserLevel.USER, GUEST_PASSWORD)
    async with loaded_entry(hass, entry_for(gateway, credentials), monkeypatch):
        hidden = entity_id(hass, "switch", switch_unique_id(gateway, PARTIAL, 0))
        visible = entity_id(hass, "switch", switch_unique_id(gateway, PARTIAL, 1))
        assert device_id(hass, gateway, OTHER) is not None
        await limit(gateway, "guest", LIMITATION)
        await wait_for(hass, lambda: device_id(hass, gateway, OTHER) is None)
        await wait_for(hass, lambda: hass.states.get(hidden).state == STATE_UNAVAILABLE)
        assert hass.states.get(visible).state != STATE_UNAVAILABLE

        # Read-only: the switch shows its state, and switching it is refused, translated.
        await limit(gateway, "guest", UserLimitation(read_only=True, all_modules=True))
        await wait_for(hass, lambda: device_id(hass, gateway, OTHER) is not None)
        await wait_for(hass, lambda: hass.states.get(hidden).state != STATE_UNAVAILABLE)
        before = gateway.call(lambda gw: gw.site.module(PARTIAL).outputs[0].is_on)
        with pytest.raises(HomeAssistantError) as raised:
            await hass.services.async_call(
                SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: hidden}, blocking=True
            )
        assert raised.value.translation_key == "outside_limitation"
        placeholders = raised.value.translation_placeholders or {}
        assert placeholders["user"] == "guest"
        assert "'guest' is limited to reading" in placeholders["error"]
        assert "An Administrator can change the limitation" in str(raised.value)
        assert gateway.call(lambda gw: gw.site.module(PARTIAL).outputs[0].is_on) is before
