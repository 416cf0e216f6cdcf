"""Firmware installs with a System user's password typed in at the time (options flow).

Home Assistant's own key is an Administrator's: the update entity refuses and points here; this
step pairs a temporary System key for the one install, revokes it afterwards and stores nothing.
Real update server, real virtual gateway.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.firmware import RayzigFirmwareCoordinator
from rayzig_core.client import ClientCredentials
from rayzig_core.firmware import generate_signing_key
from rayzig_core.models import FirmwarePart, FirmwareVersion, UserLevel
from rayzig_core.testing.gateway import GatewayThread

from .conftest import OWNER, OWNER_PASSWORD
from .runtime_helpers import loaded_entry, pair_user
from .test_own_account import keys_of, own_entry
from .test_update import (
    UpdateServer,
    entry_with_options,
    gateway_factory,  # noqa: F401 - fixture: the gateway trusts the test publisher
    install,
    installed_on_gateway,
    publish,
    signing_key,  # noqa: F401 - fixture: the publisher's key pair
    update_entity,
    update_server,  # noqa: F401 - fixture: a real update server on loopback
)

ADAM_PASSWORD = "copper-lantern-whistles-71-rain"


async def open_install(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "install_firmware"}
    )


async def submit(hass: HomeAssistant, result: Any, user: str, password: str) -> Any:
    """Submit the install form, wait for the install, and return what the flow shows then."""
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"part": "RAYZIG", "username": user, "password": password}
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "install_firmware"
    await hass.async_block_till_done()
    return await hass.config_entries.options.async_configure(result["flow_id"])


async def own_entry_with_server(
    gateway: GatewayThread, credentials: ClientCredentials, server: UpdateServer, public: bytes
) -> MockConfigEntry:
    return entry_with_options(await own_entry(gateway, credentials), server.url, public)


async def test_install_with_system_credentials_stores_nothing(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
    *,
    update_server: UpdateServer,  # noqa: F811 - the fixture imported above
    caplog: pytest.LogCaptureFixture,
) -> None:
    publish(gateway, update_server.directory, update_server.private, version="2.5.0")
    await pair_user(gateway, "adam", UserLevel.ADMINISTRATOR, ADAM_PASSWORD)
    entry = await own_entry_with_server(gateway, credentials, update_server, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch):
        # The update entity refuses and says where to go instead.
        entity_id = update_entity(hass, FirmwarePart.RAYZIG).entity_id
        with pytest.raises(HomeAssistantError) as caught:
            await install(hass, entity_id)
        assert caught.value.translation_key == "firmware_needs_system"
        data, options = dict(entry.data), dict(entry.options)
        installer_keys = keys_of(gateway, OWNER)

        result = await open_install(hass, entry)
        assert result["step_id"] == "install_firmware"
        assert result["data_schema"]({"password": "x"})["username"] == OWNER
        result = await submit(hass, result, OWNER, "not-the-password-at-all")
        assert result["errors"] == {"base": "invalid_auth"}
        result = await submit(hass, result, "adam", ADAM_PASSWORD)
        assert result["errors"] == {"base": "not_system_user"}
        assert not keys_of(gateway, "adam")[1:]  # the Administrator's sign-in key is revoked
        result = await submit(hass, result, OWNER, OWNER_PASSWORD)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "firmware_installed"
        assert result["description_placeholders"] == {"part": "Rayzig", "version": "2.5.0"}
        assert installed_on_gateway(gateway, FirmwarePart.RAYZIG) == FirmwareVersion(
            FirmwarePart.RAYZIG, "2.5.0", 3
        )
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.attributes["installed_version"] == "2.5.0"
        # Nothing stayed: no new data or options, no System key left on the gateway.
        assert dict(entry.data) == data
        assert dict(entry.options) == options
        assert keys_of(gateway, OWNER) == installer_keys
        assert OWNER_PASSWORD not in caplog.text
        assert ADAM_PASSWORD not in caplog.text

        result = await open_install(hass, entry)
        assert result["reason"] == "firmware_up_to_date"


async def test_install_refused_by_the_gateway(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,  # noqa: F811 - the fixture imported above
) -> None:
    """A catalogue the gateway does not trust: the form says so; the firmware stays."""
    untrusted_private, untrusted_public = generate_signing_key()
    publish(gateway, update_server.directory, untrusted_private, version="9.0.0")
    before = installed_on_gateway(gateway, FirmwarePart.RAYZIG)
    entry = await own_entry_with_server(gateway, credentials, update_server, untrusted_public)
    async with loaded_entry(hass, entry, monkeypatch):
        result = await submit(hass, await open_install(hass, entry), OWNER, OWNER_PASSWORD)
        assert result["errors"] == {"base": "firmware_refused"}
        assert installed_on_gateway(gateway, FirmwarePart.RAYZIG) == before


async def test_install_needs_an_update_server_and_a_loaded_entry(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = await own_entry(gateway, credentials)
    async with loaded_entry(hass, entry, monkeypatch):
        result = await open_install(hass, entry)
        assert result["reason"] == "no_update_server"
    result = await open_install(hass, entry)  # unloaded
    assert result["reason"] == "no_update_server"


async def test_the_flow_shows_progress_while_the_install_runs(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,  # noqa: F811 - the fixture imported above
) -> None:
    """Asked again before the install ends (a page reload), the flow still shows its progress."""
    publish(gateway, update_server.directory, update_server.private, version="2.5.0")
    gate = asyncio.Event()
    real_install = RayzigFirmwareCoordinator.async_install

    async def held(self: RayzigFirmwareCoordinator, *args: Any) -> None:
        await gate.wait()
        await real_install(self, *args)

    monkeypatch.setattr(RayzigFirmwareCoordinator, "async_install", held)
    entry = await own_entry_with_server(gateway, credentials, update_server, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch):
        result = await open_install(hass, entry)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"part": "RAYZIG", "username": OWNER, "password": OWNER_PASSWORD}
        )
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        again = await hass.config_entries.options.async_configure(result["flow_id"])
        assert again["type"] is FlowResultType.SHOW_PROGRESS
        assert again["description_placeholders"] == {"part": "Rayzig"}
        gate.set()
        await hass.async_block_till_done()
        result = await hass.config_entries.options.async_configure(result["flow_id"])
        assert result["reason"] == "firmware_installed"
