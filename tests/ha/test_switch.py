"""Output switches: commands acknowledged by the gateway, push updates, names and refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_FRIENDLY_NAME,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.switch import RayzigOutputSwitch
from rayzig_core.models import ModuleKind, UserLevel
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import (
    entity_id,
    entry_for,
    loaded_entry,
    pair_user,
    site_modules,
    wait_for,
)


def _entity(hass: HomeAssistant, switch_id: str) -> RayzigOutputSwitch:
    entity = hass.data["entity_components"][SWITCH_DOMAIN].get_entity(switch_id)
    assert isinstance(entity, RayzigOutputSwitch)
    return entity


def _output_on(gateway: GatewayThread, module_id: int, index: int) -> bool:
    return gateway.call(lambda gw: gw.site.module(module_id).outputs[index].is_on)


async def test_switch_from_service_call(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """turn_on/turn_off change the gateway's output; the state follows the acknowledgement."""
    module = site_modules(gateway)[0]
    gateway.call(lambda gw: gw.site.set_output(module.module_id, 0, on=False, user="installer"))
    async with loaded_entry(hass, config_entry, monkeypatch):
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        assert hass.states.get(switch).state == STATE_OFF

        await hass.services.async_call(
            SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: switch}, blocking=True
        )
        assert _output_on(gateway, module.module_id, 0)
        # The acknowledgement alone is enough: the state is on when the call returns.
        assert hass.states.get(switch).state == STATE_ON

        await hass.services.async_call(
            SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: switch}, blocking=True
        )
        assert not _output_on(gateway, module.module_id, 0)
        assert hass.states.get(switch).state == STATE_OFF


async def test_push_update_from_gateway(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change made on the gateway side (another client, the display) shows up at once."""
    module = site_modules(gateway)[0]
    gateway.call(lambda gw: gw.site.set_output(module.module_id, 0, on=False, user="installer"))
    async with loaded_entry(hass, config_entry, monkeypatch):
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        gateway.call(lambda gw: gw.site.set_output(module.module_id, 0, on=True, user="installer"))
        await wait_for(hass, lambda: hass.states.get(switch).state == STATE_ON)


async def test_names(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outputs with their own name use it; generic ones are "Output N" (translated).

    Names that start with the module's name: tests/ha/test_entity_names.py.
    """
    porch = gateway.call(
        lambda gw: gw.site.add_module(kind=ModuleKind.MAINS, name="Porch", outputs=2)
    )
    named = next(module for module in site_modules(gateway) if module.name == "Utility room")
    async with loaded_entry(hass, config_entry, monkeypatch):
        second = hass.states.get(entity_id(hass, "switch", f"{porch.serial}_output_1"))
        assert second.attributes[ATTR_FRIENDLY_NAME] == "Porch Output 2"
        first = hass.states.get(entity_id(hass, "switch", f"{named.serial}_output_0"))
        assert first.attributes[ATTR_FRIENDLY_NAME] == "Utility room Hot water"


async def test_unreachable_module(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Out of reach: the switch is unavailable, and a command that races it says why."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        entity = _entity(hass, switch)
        gateway.call(lambda gw: gw.site.set_link_quality(module.module_id, 0))
        await wait_for(hass, lambda: hass.states.get(switch).state == STATE_UNAVAILABLE)
        with pytest.raises(HomeAssistantError) as raised:
            await entity.async_turn_on()
        assert raised.value.translation_domain == DOMAIN
        assert raised.value.translation_key == "module_unreachable"
        assert module.name in str(raised.value)
        assert (
            entry.runtime_data.coordinator.data.modules[module.module_id].telemetry.reachable
            is False
        )

        gateway.call(lambda gw: gw.site.set_link_quality(module.module_id, 200))
        await wait_for(hass, lambda: hass.states.get(switch).state != STATE_UNAVAILABLE)


async def test_refused_for_utility_user(
    hass: HomeAssistant, gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Utility user may switch only outputs marked utility-controllable."""
    credentials = await pair_user(
        gateway, "grid", UserLevel.UTILITY, "cobalt-meadow-drifts-29-owls"
    )
    module = next(m for m in site_modules(gateway) if not m.outputs[0].utility_controllable)
    async with loaded_entry(hass, entry_for(gateway, credentials), monkeypatch):
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        before = hass.states.get(switch).state
        with pytest.raises(HomeAssistantError) as raised:
            await hass.services.async_call(
                SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: switch}, blocking=True
            )
        assert raised.value.translation_key == "permission_denied"
        assert raised.value.translation_placeholders == {
            "user": "grid",
            "level": "Utility",
            "required": "User",
            "module": module.name,
        }
        assert hass.states.get(switch).state == before


async def test_not_connected(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A command while the gateway is away fails with a clear, translated reason."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch):
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        entity = _entity(hass, switch)
        gateway.stop()
        await wait_for(hass, lambda: hass.states.get(switch).state == STATE_UNAVAILABLE)
        with pytest.raises(HomeAssistantError) as raised:
            await entity.async_turn_off()
        assert raised.value.translation_key == "not_connected"


async def test_output_no_longer_reported(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A switch whose output the module no longer reports is unavailable."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        coordinator = entry.runtime_data.coordinator
        coordinator.async_apply_module(
            replace(coordinator.data.modules[module.module_id], outputs=())
        )
        await hass.async_block_till_done()
        assert hass.states.get(switch).state == STATE_UNAVAILABLE
        assert _entity(hass, switch).is_on is None
