"""The push-first coordinator: dynamic and stale devices, poll safety net, firmware, repairs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import STATE_ON
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import CONF_POLL_INTERVAL, DOMAIN, MIN_POLL_INTERVAL
from custom_components.rayzig.coordinator import RayzigCoordinator, required_level
from custom_components.rayzig.repairs import issue_id
from custom_components.rayzig.site_data import RayzigSiteData, apply_notice, rayzig_firmware
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import (
    ClientRevokedError,
    GatewayBusyError,
    PermissionDeniedError,
    RequestTimeoutError,
)
from rayzig_core.models import (
    ConnectionState,
    EventKind,
    FirmwarePart,
    FirmwareVersion,
    GatewayInfo,
    Module,
    ModuleKind,
    RestorePreset,
    UserLevel,
)
from rayzig_core.permissions import Permission
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, entry_for, loaded_entry, site_modules, wait_for


def _device(hass: HomeAssistant, serial: str) -> dr.DeviceEntry | None:
    return dr.async_get(hass).async_get_device(identifiers={(DOMAIN, serial)})


async def test_module_joined_and_left(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A joining module gets a device and entities without reload; a leaving one is removed."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        module = gateway.call(
            lambda gw: gw.site.add_module(kind=ModuleKind.BATTERY, name="Shed door", outputs=1)
        )
        await wait_for(hass, lambda: _device(hass, module.serial) is not None)
        device = _device(hass, module.serial)
        assert device is not None
        assert device.name == "Shed door"
        assert device.via_device_id == entry.runtime_data.coordinator.gateway_device_id
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        battery = entity_id(hass, "sensor", f"{module.serial}_battery")
        await wait_for(hass, lambda: hass.states.get(switch) is not None)
        await wait_for(hass, lambda: hass.states.get(battery).state == "100")

        left: list[str | None] = []

        @callback
        def on_event(event: Event[dict[str, Any]]) -> None:
            if event.data["kind"] == "left":
                left.append(event.data["device_id"])

        hass.bus.async_listen("rayzig_event", on_event)
        # Once its log is imported, the importer knows the module by name and device.
        importer = entry.runtime_data.events
        await wait_for(hass, lambda: module.module_id in importer.cursors, seconds=60)
        gateway.call(lambda gw: gw.site.remove_module(module.module_id))
        await wait_for(hass, lambda: _device(hass, module.serial) is None)
        # The importer named the device in its "left" event before the device was removed.
        await wait_for(hass, lambda: bool(left))
        assert left == [device.id]
        await wait_for(hass, lambda: hass.states.get(switch) is None)
        assert er.async_get(hass).async_get(switch) is None

        # The same module joining again comes back (the id may be reused).
        again = gateway.call(
            lambda gw: gw.site.add_module(kind=ModuleKind.MAINS, name="Porch", outputs=1)
        )
        await wait_for(
            hass,
            lambda: (
                er.async_get(hass).async_get_entity_id("switch", DOMAIN, f"{again.serial}_output_0")
                is not None
            ),
        )


async def test_poll_catches_changes_made_while_away(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After an outage the catch-up poll removes modules that left and renames changed ones."""
    modules = site_modules(gateway)
    gone, renamed = modules[-1], modules[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        client = entry.runtime_data.client
        gateway.stop()
        await wait_for(hass, lambda: not entry.runtime_data.coordinator.connected)

        def edit(state: dict[str, Any]) -> None:
            site = state["site"]
            site["modules"] = [raw for raw in site["modules"] if raw["serial"] != gone.serial]
            for raw in site["modules"]:
                if raw["serial"] == renamed.serial:
                    raw["name"] = "Kitchen island"
                    raw["firmware"] = "3.6.0"

        gateway.edit_state(edit)
        gateway.start()
        await wait_for(hass, lambda: client.state.name == "CONNECTED")
        await wait_for(hass, lambda: _device(hass, gone.serial) is None)
        device = _device(hass, renamed.serial)
        assert device is not None
        assert device.name == "Kitchen island"
        assert device.sw_version == "3.6.0"


async def test_push_outputs_and_telemetry_of_unknown_modules_ignored(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Notifications about modules the coordinator does not know change nothing."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        coordinator = entry.runtime_data.coordinator
        before = coordinator.data
        output = module.outputs[0]
        coordinator._handle_notification(m.OutputChanged(999, output, EventKind.COMMAND))
        coordinator._handle_notification(m.TelemetryChanged(999, module.telemetry))
        coordinator._handle_notification(m.EventsAvailable(999, 5))
        coordinator.async_apply_module(replace(module, module_id=999))
        assert coordinator.data == before
        # An output index the module does not have is ignored too.
        coordinator.async_apply_output(module.module_id, replace(output, index=7))
        assert coordinator.data == before


async def test_firmware_changed_updates_gateway_device(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A FirmwareChanged notification updates the gateway device's software version."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        coordinator = entry.runtime_data.coordinator
        versions = tuple(
            FirmwareVersion(v.part, "9.9.9", v.security_version + 1)
            if v.part is FirmwarePart.RAYZIG
            else v
            for v in coordinator.data.info.firmware
        )
        coordinator._handle_notification(m.FirmwareChanged(versions))
        await hass.async_block_till_done()
        device = dr.async_get(hass).async_get(coordinator.gateway_device_id or "")
        assert device is not None
        assert device.sw_version == "9.9.9"


async def test_weak_password_issue(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway reporting a weak password raises a repair; fixing it clears it."""
    gateway.call(lambda gw: setattr(gw.users["installer"], "policy_version", 0))
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        issues = ir.async_get(hass)
        identifier = issue_id("weak_password", entry.entry_id)
        issue = issues.async_get_issue(DOMAIN, identifier)
        assert issue is not None
        assert issue.translation_placeholders == {"title": entry.title, "user": "installer"}
        gateway.call(lambda gw: setattr(gw.users["installer"], "policy_version", 1))
        await entry.runtime_data.coordinator.async_refresh()
        assert issues.async_get_issue(DOMAIN, identifier) is None


async def test_poll_interval_option(
    hass: HomeAssistant, gateway: GatewayThread, credentials: ClientCredentials
) -> None:
    """The poll interval comes from the options, never below the minimum."""
    entry = entry_for(gateway, credentials, {CONF_POLL_INTERVAL: 5})
    entry.add_to_hass(hass)
    coordinator = RayzigCoordinator(hass, entry, None)  # type: ignore[arg-type]
    assert coordinator.update_interval is not None
    assert coordinator.update_interval.total_seconds() == MIN_POLL_INTERVAL


async def test_poll_failures(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed poll marks the data stale; a refused key at poll time starts reauth."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        coordinator = entry.runtime_data.coordinator
        client = entry.runtime_data.client
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")

        async def timeout() -> None:
            raise RequestTimeoutError("gateway did not answer")

        monkeypatch.setattr(client, "get_info", timeout)
        await coordinator.async_refresh()
        assert not coordinator.last_update_success
        assert hass.states.get(switch).state == "unavailable"

        async def revoked() -> None:
            raise ClientRevokedError("revoked")

        monkeypatch.setattr(client, "get_info", revoked)
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert any(flow["context"]["source"] == SOURCE_REAUTH for flow in flows)


async def test_gateway_side_switching_follows(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Repowering after an outage applies presets; the switches follow the pushed states."""
    module = next(m for m in site_modules(gateway) if m.kind is ModuleKind.MAINS)
    gateway.call(
        lambda gw: gw.site.set_preset(module.module_id, 0, RestorePreset.ON, user="installer")
    )
    async with loaded_entry(hass, config_entry, monkeypatch):
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        gateway.call(lambda gw: gw.site.power_outage([module.module_id]))
        gateway.call(lambda gw: gw.site.power_restore([module.module_id]))
        await wait_for(hass, lambda: hass.states.get(switch).state == STATE_ON)


def test_required_level() -> None:
    """The lowest hierarchy level holding a permission is named in refusals."""
    assert required_level(Permission.SWITCH) is UserLevel.USER
    assert required_level(Permission.SET_PRESET) is UserLevel.ADMINISTRATOR
    assert required_level(Permission.FIRMWARE) is UserLevel.SYSTEM


async def test_poll_while_disconnected_keeps_data(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the link is down the poll keeps the last data; availability shows the outage."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        coordinator = entry.runtime_data.coordinator
        before = coordinator.data
        gateway.stop()
        await wait_for(hass, lambda: not coordinator.connected)
        await coordinator.async_refresh()
        assert coordinator.last_update_success
        assert coordinator.data is before


async def test_error_translation(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gateway refusals become translated errors; a reachable module is not blamed."""
    module = site_modules(gateway)[0]
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        coordinator = entry.runtime_data.coordinator
        client = entry.runtime_data.client
        for module_id in (module.module_id, 999):
            with pytest.raises(HomeAssistantError) as raised:
                await coordinator.async_command(
                    client.add_user("installer", UserLevel.USER, "amber-falcon-weaves-61-ropes"),
                    permission=Permission.MANAGE_USERS,
                    module_id=module_id,
                )
            assert raised.value.translation_key == "request_failed"
        assert coordinator.translate_error(ClientRevokedError("x")).translation_key == "auth_failed"
        busy = coordinator.translate_error(GatewayBusyError(5, "installing"))
        assert busy.translation_key == "gateway_busy"
        denied = coordinator.translate_error(PermissionDeniedError(3, "no"))
        assert denied.translation_placeholders is not None
        assert denied.translation_placeholders["required"] == "higher"


async def test_first_refresh_failure_closes_client(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If loading the site fails after connecting, setup retries and the session is closed."""
    closed: list[RayzigClient] = []
    original_close = RayzigClient.close

    async def list_modules(self: RayzigClient) -> None:
        raise RequestTimeoutError("no answer")

    async def close(self: RayzigClient) -> None:
        closed.append(self)
        await original_close(self)

    monkeypatch.setattr(RayzigClient, "list_modules", list_modules)
    monkeypatch.setattr(RayzigClient, "close", close)
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert closed
        assert all(client.state is ConnectionState.CLOSED for client in closed)


async def test_notification_before_first_refresh(
    hass: HomeAssistant, gateway: GatewayThread, credentials: ClientCredentials
) -> None:
    """Notifications that race the first refresh are dropped (the refresh reads everything)."""
    entry = entry_for(gateway, credentials)
    entry.add_to_hass(hass)
    coordinator = RayzigCoordinator(hass, entry, None)  # type: ignore[arg-type]
    coordinator._handle_notification(m.ModuleLeft(1))
    assert coordinator.data is None


def test_rayzig_firmware_unknown() -> None:
    """A gateway that lists no Rayzig firmware part has no software version."""
    info = GatewayInfo(
        serial="RG1-1",
        model="RG-1",
        protocol_version=1,
        fingerprint="ab",
        firmware=(),
        user="installer",
        level=UserLevel.SYSTEM,
        weak_password=False,
    )
    assert rayzig_firmware(info) is None


async def test_push_during_poll_not_lost(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change pushed while a poll reads the site survives the (older) snapshot."""
    module = site_modules(gateway)[0]
    gateway.call(lambda gw: gw.site.set_output(module.module_id, 0, on=False, user="installer"))
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        coordinator = entry.runtime_data.coordinator
        client = entry.runtime_data.client
        real_list_modules = client.list_modules
        notices = client.stats.notifications

        async def list_modules_then_change() -> list[Module]:
            snapshot = await real_list_modules()  # output 0 is off in this snapshot
            gateway.call(
                lambda gw: gw.site.set_output(module.module_id, 0, on=True, user="installer")
            )
            await wait_for(hass, lambda: client.stats.notifications > notices)
            return snapshot

        monkeypatch.setattr(client, "list_modules", list_modules_then_change)
        await coordinator.async_refresh()
        assert coordinator.data.modules[module.module_id].outputs[0].is_on
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        assert hass.states.get(switch).state == STATE_ON


def test_apply_notice_ignores_unknown_modules() -> None:
    """Notices about modules the data does not hold leave it untouched."""
    info = GatewayInfo(
        serial="RG1-1",
        model="RG-1",
        protocol_version=1,
        fingerprint="ab",
        firmware=(),
        user="installer",
        level=UserLevel.SYSTEM,
        weak_password=False,
    )
    data = RayzigSiteData(info, {})
    assert apply_notice(data, m.ModuleLeft(3)) is data
    assert apply_notice(data, m.EventsAvailable(3, 9)) is data
