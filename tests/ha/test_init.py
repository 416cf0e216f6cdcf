"""Setup, unload, reauth, key change, outages and removal against the real virtual gateway."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig import async_remove_config_entry_device
from custom_components.rayzig.const import (
    CONF_CONNECTION,
    CONF_CREDENTIALS,
    CONF_HOST,
    CONF_I2C_ADDRESS,
    CONF_I2C_BUS,
    CONF_PORT,
    CONNECTION_I2C,
    DOMAIN,
)
from custom_components.rayzig.repairs import issue_id
from custom_components.rayzig.site_data import gateway_device_identifier
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import ConnectionState
from rayzig_core.protocol.noise import generate_keypair, public_key_of
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector

from .conftest import I2C_TRANSPORT, OWNER, OWNER_PASSWORD
from .runtime_helpers import entity_id, loaded_entry, site_modules, wait_for


def _flows(hass: HomeAssistant, source: str) -> list[dict[str, Any]]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress()
        if flow["handler"] == DOMAIN and flow["context"]["source"] == source
    ]


def _with_credentials(entry: MockConfigEntry, **changes: Any) -> MockConfigEntry:
    data = dict(entry.data)
    data[CONF_CREDENTIALS] = {**data[CONF_CREDENTIALS], **changes}
    return MockConfigEntry(
        domain=DOMAIN, title=entry.title, unique_id=entry.unique_id, data=data, options={}
    )


async def test_setup_and_unload(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Setup creates the gateway and module devices; unload closes the client and the entities."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        assert entry.state is ConfigEntryState.LOADED
        runtime = entry.runtime_data
        assert runtime.client.state is ConnectionState.CONNECTED
        registry = dr.async_get(hass)
        gateway_device = registry.async_get(runtime.coordinator.gateway_device_id or "")
        assert gateway_device is not None
        assert gateway_device.identifiers == {
            gateway_device_identifier(runtime.coordinator.data.info.serial)
        }
        assert gateway_device.sw_version
        modules = site_modules(gateway)
        devices = dr.async_entries_for_config_entry(registry, entry.entry_id)
        assert len(devices) == len(modules) + 1
        module_devices = [d for d in devices if d.id != gateway_device.id]
        assert all(d.via_device_id == gateway_device.id for d in module_devices)
        switch = entity_id(hass, "switch", f"{modules[0].serial}_output_0")
        assert hass.states.get(switch) is not None
        client = runtime.client

        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.NOT_LOADED
        assert client.state is ConnectionState.CLOSED
        assert hass.states.get(switch).state == STATE_UNAVAILABLE


async def test_not_ready_when_gateway_down(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unreachable gateway leaves the entry retrying in the background (HA start not blocked)."""
    gateway.stop()
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert "Cannot reach the Rayzig gateway" in (entry.reason or "")


async def test_reauth_when_key_revoked_before_setup(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client key deleted on the gateway makes setup fail with reauthentication."""
    gateway.call(lambda gw: gw.clients.pop(credentials.client_id))
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        assert entry.state is ConfigEntryState.SETUP_ERROR
        assert _flows(hass, SOURCE_REAUTH)


async def test_reauth_when_key_revoked_while_running(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Revoking the key from a second client: entities go unavailable and reauth starts.

    The log says at once that the key was refused and reauthentication is needed; it never
    claims to be reconnecting.
    """
    caplog.set_level(logging.INFO, logger="custom_components.rayzig")
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        own_id = entry.runtime_data.client.credentials.client_id  # type: ignore[union-attr]
        admin = RayzigClient(TcpConnector("127.0.0.1", gateway.port), client_name="admin tool")
        identity = await admin.identify()
        await admin.pair(identity, OWNER, OWNER_PASSWORD)
        await admin.connect()
        try:
            await admin.revoke_client(own_id)
        finally:
            await admin.close()
        client = entry.runtime_data.client
        await wait_for(hass, lambda: client.state is ConnectionState.AUTH_FAILED)
        await wait_for(hass, lambda: bool(_flows(hass, SOURCE_REAUTH)))
        module = site_modules(gateway)[0]
        state = hass.states.get(entity_id(hass, "switch", f"{module.serial}_output_0"))
        assert state is not None
        assert state.state == STATE_UNAVAILABLE
    warnings = [r.message for r in _rayzig_records(caplog) if r.levelno >= logging.WARNING]
    assert warnings == [
        f"{config_entry.title} no longer accepts Home Assistant's key (it was revoked, or its "
        "user was deleted); Home Assistant does not reconnect: re-authenticate the integration"
    ]
    assert "reconnecting" not in caplog.text


def _rayzig_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The integration's log records; none names the brand twice ("Rayzig gateway Rayzig …")."""
    records = [r for r in caplog.records if r.name.startswith("custom_components.rayzig")]
    assert not [r for r in records if "Rayzig gateway Rayzig" in r.getMessage()]
    return records


async def test_gateway_key_changed(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another gateway key than the pinned one: setup error and a repair naming both prints."""
    stranger = public_key_of(generate_keypair()[0])
    entry = _with_credentials(config_entry, gateway_public_key=stranger.hex())
    async with loaded_entry(hass, entry, monkeypatch):
        assert entry.state is ConfigEntryState.SETUP_ERROR
        issue = ir.async_get(hass).async_get_issue(
            DOMAIN, issue_id("gateway_key_changed", entry.entry_id)
        )
        assert issue is not None
        assert issue.translation_placeholders is not None
        pinned = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS]).gateway_fingerprint
        assert issue.translation_placeholders["pinned"] == pinned
        actual = gateway.call(lambda gw: gw.fingerprint)
        assert issue.translation_placeholders["presented"] == actual


async def test_damaged_credentials_start_reauth(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unreadable stored credentials ask the user to authenticate again."""
    entry = _with_credentials(config_entry, client_private_key="zz")
    async with loaded_entry(hass, entry, monkeypatch):
        assert entry.state is ConfigEntryState.SETUP_ERROR
        assert "damaged" in (entry.reason or "")


async def test_outage_logged_once_and_recovered(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Entities go unavailable while the gateway is away and come back when it is back.

    The loss is logged once the first reconnect attempt failed (so a refused key is never
    reported as an outage), once per outage however many attempts fail.
    """
    caplog.set_level(logging.INFO, logger="custom_components.rayzig")
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        module = site_modules(gateway)[0]
        switch = entity_id(hass, "switch", f"{module.serial}_output_0")
        client = entry.runtime_data.client
        for outage in (1, 2):
            failures = client.stats.connect_failures
            gateway.stop()
            await wait_for(hass, lambda: hass.states.get(switch).state == STATE_UNAVAILABLE)
            # Several reconnect attempts fail while it is away: still one warning.
            await wait_for(hass, lambda f=failures: client.stats.connect_failures >= f + 3)
            gateway.start()
            await wait_for(hass, lambda o=outage: client.stats.connects >= 1 + o)
            await wait_for(hass, lambda: hass.states.get(switch).state != STATE_UNAVAILABLE)

    title = config_entry.title
    messages = [(r.levelno, r.getMessage()) for r in _rayzig_records(caplog)]
    lost = (
        logging.WARNING,
        f"Lost connection to {title}; its entities are unavailable until it is back "
        "(reconnecting in the background)",
    )
    back = (logging.INFO, f"Connection to {title} restored")
    assert [m for m in messages if m in (lost, back)] == [lost, back, lost, back]


async def test_remove_entry_revokes_key(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Removing the entry revokes its client key (and says so) and deletes its cursors."""
    caplog.set_level(logging.INFO, logger="custom_components.rayzig")
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        client_id = entry.runtime_data.client.credentials.client_id  # type: ignore[union-attr]
        store = f"{DOMAIN}.{entry.entry_id}.events"
        assert gateway.call(lambda gw: len(gw.clients)) == 1
        await entry.runtime_data.events.async_sync()
        await hass.config_entries.async_unload(entry.entry_id)
        assert store in hass_storage
        assert await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()
    assert gateway.call(lambda gw: list(gw.clients)) == []
    assert store not in hass_storage
    assert not ir.async_get(hass).issues
    assert (
        f"Revoked Home Assistant's client key (client {client_id}) on {config_entry.title}: it "
        "no longer opens a session"
    ) in [r.getMessage() for r in _rayzig_records(caplog)]


async def test_remove_entry_already_revoked(
    hass: HomeAssistant,
    *,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key the gateway no longer knows needs no reminder; the log says it was revoked."""
    caplog.set_level(logging.INFO, logger="custom_components.rayzig")
    gateway.call(lambda gw: gw.clients.pop(credentials.client_id))
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        assert await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()
    assert not ir.async_get(hass).issues
    assert (
        f"Home Assistant's client key (client {credentials.client_id}) was already revoked on "
        f"{config_entry.title}"
    ) in [r.getMessage() for r in _rayzig_records(caplog)]


async def test_remove_entry_gateway_down_raises_reminder(
    hass: HomeAssistant,
    *,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unreachable at removal: a repair tells how to revoke the key, naming the client id."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        caplog.clear()
        gateway.stop()
        assert await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id("revoke_client", entry.entry_id))
    assert issue is not None
    assert issue.is_persistent
    placeholders = issue.translation_placeholders or {}
    assert placeholders["client_id"] == str(credentials.client_id)
    assert credentials.client_private_key.hex() not in str(placeholders)
    warnings = [r.getMessage() for r in _rayzig_records(caplog) if r.levelno == logging.WARNING]
    assert [w for w in warnings if "revoke" in w] == [
        f"Could not revoke Home Assistant's client key (client {credentials.client_id}) on "
        f"{config_entry.title}: {warnings[-1].split(': ', 1)[1]}"
    ]
    assert warnings[-1].endswith("; see Repairs to revoke it on the gateway")
    assert credentials.client_private_key.hex() not in caplog.text


async def test_remove_entry_with_damaged_credentials(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stored key cannot be read, so it cannot be revoked: removal works, the log says how."""
    entry = _with_credentials(config_entry, client_private_key="zz")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not ir.async_get(hass).issues
    assert "cannot revoke its client key: revoke it on the gateway" in caplog.text


async def test_remove_module_device_only_when_gone(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Users may delete a device only if its module is no longer in the mesh."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        registry = dr.async_get(hass)
        module = site_modules(gateway)[0]
        device = registry.async_get_device(identifiers={(DOMAIN, module.serial)})
        assert device is not None
        assert not await async_remove_config_entry_device(hass, entry, device)
        orphan = registry.async_get_or_create(
            config_entry_id=entry.entry_id, identifiers={(DOMAIN, "RZ-GONE")}
        )
        assert await async_remove_config_entry_device(hass, entry, orphan)
        await hass.config_entries.async_unload(entry.entry_id)
        assert await async_remove_config_entry_device(hass, entry, device)


async def test_stale_devices_removed_at_setup(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A module device whose module left while Home Assistant was off is removed at setup."""
    config_entry.add_to_hass(hass)
    registry = dr.async_get(hass)
    registry.async_get_or_create(
        config_entry_id=config_entry.entry_id, identifiers={(DOMAIN, "RZ-LEFT")}
    )
    async with loaded_entry(hass, config_entry, monkeypatch):
        assert registry.async_get_device(identifiers={(DOMAIN, "RZ-LEFT")}) is None


async def test_home_assistant_stop_closes_client(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopping Home Assistant closes the gateway session; a later unload is still clean."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        client = entry.runtime_data.client
        hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
        await hass.async_block_till_done()
        assert client.state is ConnectionState.CLOSED


async def test_config_schema_rejects_yaml(hass: HomeAssistant) -> None:
    """The integration is set up from the UI only; YAML under its key is refused with a log."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert hass.services.has_service(DOMAIN, "add_user")


def _with_connection(entry: MockConfigEntry, **connection: Any) -> MockConfigEntry:
    data = {
        key: value
        for key, value in entry.data.items()
        if key not in (CONF_HOST, CONF_PORT, CONF_I2C_BUS, CONF_I2C_ADDRESS)
    }
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=entry.unique_id,
        data={**data, **connection},
        options={},
    )


I2C_CONNECTION: dict[str, Any] = {
    CONF_CONNECTION: CONNECTION_I2C,
    CONF_I2C_BUS: 1,
    CONF_I2C_ADDRESS: 0x42,
}


async def test_i2c_unavailable_is_a_setup_error(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An I2C entry on a rayzig_core without I2C support: a clear error, no retry, no reauth."""
    monkeypatch.setitem(sys.modules, I2C_TRANSPORT, None)
    entry = _with_connection(config_entry, **I2C_CONNECTION)
    async with loaded_entry(hass, entry, monkeypatch):
        assert entry.state is ConfigEntryState.SETUP_ERROR
        assert "has no I2C support" in (entry.reason or "")
        assert not _flows(hass, SOURCE_REAUTH)


@pytest.mark.parametrize(
    ("connection", "error"),
    [
        ({CONF_CONNECTION: CONNECTION_I2C, CONF_I2C_BUS: 1, CONF_I2C_ADDRESS: 0x05}, "0x05"),
        ({CONF_PORT: 7780}, "'host'"),
    ],
    ids=["i2c-address-out-of-range", "bridge-without-host"],
)
async def test_invalid_connection_is_a_setup_error(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    connection: dict[str, Any],
    error: str,
) -> None:
    """Damaged connection fields ask for a reconfiguration, not for a new password."""
    entry = _with_connection(config_entry, **connection)
    async with loaded_entry(hass, entry, monkeypatch):
        assert entry.state is ConfigEntryState.SETUP_ERROR
        assert "stored connection of this entry is invalid" in (entry.reason or "")
        assert error in (entry.reason or "")
        assert not _flows(hass, SOURCE_REAUTH)


async def test_remove_i2c_entry_without_i2c_support_raises_reminder(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key cannot be revoked without a connection: the repair tells how to do it."""
    monkeypatch.setitem(sys.modules, I2C_TRANSPORT, None)
    entry = _with_connection(config_entry, **I2C_CONNECTION)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id("revoke_client", entry.entry_id))
    assert issue is not None
    assert (issue.translation_placeholders or {})["client_id"] == str(credentials.client_id)
    assert gateway.call(lambda gw: len(gw.clients)) == 1  # still enrolled: nothing reached it


async def test_gateway_key_changed_while_running(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gateway coming back with another key is not re-pinned: a repair, no reauth."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        client = entry.runtime_data.client
        gateway.stop()
        await wait_for(hass, lambda: client.state is not ConnectionState.CONNECTED)
        gateway.edit_state(lambda data: data.update(static_private=generate_keypair()[0].hex()))
        gateway.start()
        await wait_for(hass, lambda: client.state is ConnectionState.AUTH_FAILED)
        issue = ir.async_get(hass).async_get_issue(
            DOMAIN, issue_id("gateway_key_changed", entry.entry_id)
        )
        assert issue is not None
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["presented"] == gateway.call(
            lambda gw: gw.fingerprint
        )
        assert not _flows(hass, SOURCE_REAUTH)
