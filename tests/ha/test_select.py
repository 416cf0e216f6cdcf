"""Power-restore preset selects: stored on the module, pushed back, refused below Administrator."""

from __future__ import annotations

import pytest
from homeassistant.components.select import ATTR_OPTION, ATTR_OPTIONS, SERVICE_SELECT_OPTION
from homeassistant.components.select import DOMAIN as SELECT_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, ATTR_FRIENDLY_NAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from rayzig_core.models import ModuleKind, RestorePreset, UserLevel
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, entry_for, loaded_entry, pair_user, site_modules, wait_for


def _preset(gateway: GatewayThread, module_id: int, index: int) -> RestorePreset:
    return gateway.call(lambda gw: gw.site.module(module_id).outputs[index].preset)


async def test_select_preset(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Choosing a preset stores it on the module; the state follows the gateway's answer."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch):
        select = entity_id(hass, "select", f"{module.serial}_restore_preset_0")
        state = hass.states.get(select)
        assert state.attributes[ATTR_OPTIONS] == ["off", "on", "last"]
        assert state.state == module.outputs[0].preset.name.lower()
        assert er.async_get(hass).async_get(select).entity_category == "config"
        for option, preset in (("on", RestorePreset.ON), ("last", RestorePreset.LAST)):
            await hass.services.async_call(
                SELECT_DOMAIN,
                SERVICE_SELECT_OPTION,
                {ATTR_ENTITY_ID: select, ATTR_OPTION: option},
                blocking=True,
            )
            assert _preset(gateway, module.module_id, 0) is preset
            assert hass.states.get(select).state == option


async def test_preset_pushed_and_named(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A preset set elsewhere shows up; names follow the output's own or generic name."""
    porch = gateway.call(
        lambda gw: gw.site.add_module(kind=ModuleKind.MAINS, name="Porch", outputs=1)
    )
    named = next(module for module in site_modules(gateway) if module.name == "Utility room")
    async with loaded_entry(hass, config_entry, monkeypatch):
        select = entity_id(hass, "select", f"{porch.serial}_restore_preset_0")
        assert (
            hass.states.get(select).attributes[ATTR_FRIENDLY_NAME]
            == "Porch Output 1 power-restore preset"
        )
        other = hass.states.get(entity_id(hass, "select", f"{named.serial}_restore_preset_0"))
        assert other.attributes[ATTR_FRIENDLY_NAME] == "Utility room Hot water power-restore preset"
        gateway.call(
            lambda gw: gw.site.set_preset(porch.module_id, 0, RestorePreset.ON, user="installer")
        )
        await wait_for(hass, lambda: hass.states.get(select).state == "on")


async def test_preset_needs_administrator(
    hass: HomeAssistant, gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A User-level pairing may switch but not change presets: a translated refusal."""
    credentials = await pair_user(gateway, "guest", UserLevel.USER, "plum-harbor-sings-83-lanterns")
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, entry_for(gateway, credentials), monkeypatch):
        select = entity_id(hass, "select", f"{module.serial}_restore_preset_0")
        before = hass.states.get(select).state
        option = "on" if before != "on" else "off"
        with pytest.raises(HomeAssistantError) as raised:
            await hass.services.async_call(
                SELECT_DOMAIN,
                SERVICE_SELECT_OPTION,
                {ATTR_ENTITY_ID: select, ATTR_OPTION: option},
                blocking=True,
            )
        assert raised.value.translation_key == "permission_denied"
        assert raised.value.translation_placeholders is not None
        assert raised.value.translation_placeholders["required"] == "Administrator"
        assert "needs the Administrator level" in str(raised.value)
        assert hass.states.get(select).state == before
