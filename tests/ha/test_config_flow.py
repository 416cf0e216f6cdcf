"""Config flow against the real virtual gateway on loopback (no mocks of rayzig_core)."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.config_entries import SOURCE_USER, SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig import connection
from custom_components.rayzig.config_flow_connection import parse_i2c_address
from custom_components.rayzig.const import (
    CONF_CONNECTION,
    CONF_CREDENTIALS,
    CONF_EVENT_IMPORT_WINDOW,
    CONF_HOST,
    CONF_I2C_ADDRESS,
    CONF_I2C_BUS,
    CONF_LOW_BATTERY_THRESHOLD,
    CONF_POLL_INTERVAL,
    CONF_PORT,
    CONF_UPDATE_SERVER_URL,
    CONF_UPDATE_SIGNING_KEY,
    CONNECTION_I2C,
    CONNECTION_TCP,
    DOMAIN,
)
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import ConnectionState, UserLevel
from rayzig_core.password_policy import PolicyViolation
from rayzig_core.testing.fake_i2c import FakeI2CBus, FakeI2CDevice
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.i2c import I2CConnector
from rayzig_core.transport.tcp import TcpConnector
from rayzig_core.virtual_gateway import VirtualGateway

from .conftest import I2C_TRANSPORT, OWNER, OWNER_PASSWORD
from .runtime_helpers import loaded_entry

NEW_PASSWORD = "tangerine-walrus-orbits-93-lanterns"
OTHER_PASSWORD = "correct-sloth-whistles-18-maps"
COMPONENT = Path(__file__).parents[2] / "custom_components" / DOMAIN


@pytest.fixture
def real_integration() -> None:
    """Request it to set entries up with the whole integration (see ``no_integration_setup``)."""


@pytest.fixture(autouse=True)
def no_integration_setup(request: pytest.FixtureRequest) -> Iterator[None]:
    """Flow tests: creating or reloading an entry must not start the whole integration."""
    if "real_integration" in request.fixturenames:
        yield
        return
    with (
        patch("custom_components.rayzig.async_setup_entry", AsyncMock(return_value=True)),
        patch("custom_components.rayzig.async_unload_entry", AsyncMock(return_value=True)),
    ):
        yield


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def gateway_fact(gateway: GatewayThread, name: str) -> Any:
    return gateway.call(lambda g: getattr(g, name))


def other_gateway(tmp_path: Path, port: int = 0) -> GatewayThread:
    """A different gateway (own key and serial), started on ``port``."""
    other = GatewayThread(tmp_path / "other.json", port=port).start()
    other.setup_owner(OWNER_PASSWORD)
    return other


async def start_bridge(hass: HomeAssistant, port: int) -> Any:
    """User flow: menu → bridge form → submit 127.0.0.1:port."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["bridge", "i2c"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "bridge"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "bridge"
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: port}
    )


def defaults(result: Any, data: dict[str, Any]) -> dict[str, Any]:
    """What a form submits for ``data`` once its defaults are filled in."""
    schema = result["data_schema"]
    assert schema is not None
    filled: dict[str, Any] = schema(data)
    return filled


async def configure(hass: HomeAssistant, result: Any, data: dict[str, Any]) -> Any:
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


async def to_credentials(hass: HomeAssistant, port: int) -> Any:
    result = await start_bridge(hass, port)
    assert result["step_id"] == "confirm_fingerprint"
    result = await configure(hass, result, {})
    assert result["step_id"] == "credentials"
    return result


async def sign_in(hass: HomeAssistant, result: Any, password: str) -> Any:
    return await configure(hass, result, {"username": OWNER, "password": password})


async def set_password(
    hass: HomeAssistant, result: Any, new: str, confirm: str | None = None
) -> Any:
    return await configure(
        hass, result, {"new_password": new, "confirm_password": new if confirm is None else confirm}
    )


async def assert_credentials_work(port: int, data: dict[str, Any], user: str | None = None) -> None:
    """The stored keys open a keyed session as ``user`` (default: Home Assistant's own account)."""
    client = RayzigClient(
        TcpConnector("127.0.0.1", port), ClientCredentials.from_dict(data[CONF_CREDENTIALS])
    )
    try:
        info = await client.connect()
        if user is not None:
            assert info.user == user
            return
        assert info.user.startswith("home-assistant-")
        assert info.level is UserLevel.ADMINISTRATOR
    finally:
        await client.close()


# --- user flow ----------------------------------------------------------------------------


async def test_factory_gateway_happy_path(
    hass: HomeAssistant, gateway_factory: GatewayThread
) -> None:
    """Fingerprint shown, default password refused until a policy-compliant password is set."""
    gateway_factory.start()
    assert gateway_factory.factory is not None
    default = gateway_factory.factory.default_password
    serial = gateway_fact(gateway_factory, "serial")

    result = await start_bridge(hass, gateway_factory.port)
    assert result["step_id"] == "confirm_fingerprint"
    placeholders = result["description_placeholders"]
    assert placeholders["fingerprint"] == gateway_fact(gateway_factory, "fingerprint")
    assert placeholders["serial"] == serial
    assert placeholders["model"]

    result = await configure(hass, result, {})
    assert result["step_id"] == "credentials"
    assert defaults(result, {"password": "x"})["username"] == "installer"

    # The default password works only to set a new one: the flow moves to new_password.
    result = await sign_in(hass, result, default)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "new_password"
    assert result["errors"] == {}

    result = await set_password(hass, result, "short")
    assert result["errors"] == {"new_password": "too_short"}
    reasons = result["description_placeholders"]["reasons"]
    assert "at least 15 characters" in reasons
    assert "easy to guess" in reasons

    result = await set_password(hass, result, "rayzig rayzig rayzig")
    assert result["errors"] == {"new_password": "contains_product_name"}

    # The list of every reason follows Home Assistant's language.
    hass.config.language = "de"
    result = await set_password(hass, result, "password1234567890")
    assert result["errors"] == {"new_password": "common"}
    reasons = result["description_placeholders"]["reasons"]
    assert "leicht zu erraten" in reasons
    assert "123456" in reasons
    hass.config.language = "en"

    result = await set_password(hass, result, "iloveyouiloveyou")
    assert result["errors"] == {"new_password": "common"}
    assert result["description_placeholders"]["reasons"] == ""

    result = await set_password(hass, result, default)
    assert result["errors"] == {"new_password": "default_password"}

    result = await set_password(hass, result, NEW_PASSWORD, NEW_PASSWORD + "!")
    assert result["errors"] == {"confirm_password": "passwords_mismatch"}

    result = await set_password(hass, result, NEW_PASSWORD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"Rayzig {serial}"
    entry = result["result"]
    assert entry.unique_id == serial
    data = dict(entry.data)
    assert data[CONF_CONNECTION] == CONNECTION_TCP
    assert data[CONF_HOST] == "127.0.0.1"
    assert data[CONF_PORT] == gateway_factory.port
    credentials = ClientCredentials.from_dict(data[CONF_CREDENTIALS])
    assert credentials.gateway_fingerprint == placeholders["fingerprint"]
    assert credentials.user.startswith("home-assistant-")
    assert credentials.level is UserLevel.ADMINISTRATOR
    assert data["dedicated_account"] is True
    for secret in (NEW_PASSWORD, default):
        assert secret not in str(entry.data)
        assert secret not in str(entry.options)
        assert secret not in entry.title
    assert not gateway_fact(gateway_factory, "factory_state")
    await assert_credentials_work(gateway_factory.port, data)


async def test_owner_password_pairs_directly(hass: HomeAssistant, gateway: GatewayThread) -> None:
    result = await to_credentials(hass, gateway.port)
    result = await sign_in(hass, result, "not-the-password-at-all")
    assert result["errors"] == {"base": "invalid_auth"}
    assert result["step_id"] == "credentials"
    result = await sign_in(hass, result, OWNER_PASSWORD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert OWNER_PASSWORD not in str(result["result"].data)
    await assert_credentials_work(gateway.port, dict(result["result"].data))


async def test_second_setup_aborts(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry
) -> None:
    config_entry.add_to_hass(hass)
    result = await start_bridge(hass, gateway.port)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_cannot_connect(hass: HomeAssistant, socket_enabled: None) -> None:
    result = await start_bridge(hass, closed_port())
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "bridge"
    assert result["errors"] == {"base": "cannot_connect"}


async def test_throttled(hass: HomeAssistant, gateway: GatewayThread) -> None:
    result = await to_credentials(hass, gateway.port)

    def block(g: VirtualGateway) -> None:
        g.users[OWNER].throttle.failures = 10
        g.users[OWNER].throttle.blocked_until = g.clock() + 60

    gateway.call(block)
    result = await sign_in(hass, result, OWNER_PASSWORD)
    assert result["errors"] == {"base": "throttled"}
    assert 50 <= int(result["description_placeholders"]["seconds"]) <= 60


async def test_gateway_replaced_after_fingerprint(
    hass: HomeAssistant, gateway: GatewayThread, tmp_path: Path
) -> None:
    """The confirmed key is pinned: another gateway on the same port aborts the flow."""
    result = await to_credentials(hass, gateway.port)
    port = gateway.port
    gateway.stop()
    impostor = other_gateway(tmp_path, port)
    try:
        result = await sign_in(hass, result, OWNER_PASSWORD)
    finally:
        impostor.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "fingerprint_changed"


async def test_password_changed_by_someone_else_meanwhile(
    hass: HomeAssistant, gateway_factory: GatewayThread
) -> None:
    """The old password stops working before the change: ask again, still demand a new one."""
    gateway_factory.start()
    assert gateway_factory.factory is not None
    result = await to_credentials(hass, gateway_factory.port)
    result = await sign_in(hass, result, gateway_factory.factory.default_password)
    assert result["step_id"] == "new_password"

    gateway_factory.setup_owner(OTHER_PASSWORD)
    result = await set_password(hass, result, NEW_PASSWORD)
    assert result["step_id"] == "credentials"
    assert result["errors"] == {"base": "invalid_auth"}

    # The gateway said "factory state" at first contact: pairing works now, but the flow
    # still refuses to finish until a new password is set.
    result = await sign_in(hass, result, OTHER_PASSWORD)
    assert result["step_id"] == "new_password"
    result = await set_password(hass, result, OTHER_PASSWORD)
    assert result["errors"] == {"new_password": "default_password"}
    result = await set_password(hass, result, NEW_PASSWORD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await assert_credentials_work(gateway_factory.port, dict(result["result"].data))
    assert NEW_PASSWORD not in str(result["result"].data)


async def test_new_password_connection_lost(
    hass: HomeAssistant, gateway_factory: GatewayThread, tmp_path: Path
) -> None:
    gateway_factory.start()
    assert gateway_factory.factory is not None
    port = gateway_factory.port
    result = await to_credentials(hass, port)
    result = await sign_in(hass, result, gateway_factory.factory.default_password)
    gateway_factory.stop()
    result = await set_password(hass, result, NEW_PASSWORD)
    assert result["step_id"] == "new_password"
    assert result["errors"] == {"base": "cannot_connect"}

    impostor = other_gateway(tmp_path, port)
    try:
        result = await set_password(hass, result, NEW_PASSWORD)
    finally:
        impostor.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "fingerprint_changed"


# --- I2C ------------------------------------------------------------------------------------
# Through rayzig_core's real I2CConnector and smbus2's real calls, with only the kernel faked
# (rayzig_core.testing.fake_i2c); the virtual gateway serves on the fake bus.

I2C_BUS = 3


@pytest.fixture
def i2c_gateway(tmp_path: Path, socket_enabled: None) -> Iterator[GatewayThread]:
    """A virtual gateway at 0x42 on fake I2C bus 3 (the fake kernel installed), owner set up."""
    bus = FakeI2CBus(I2C_BUS)
    gateway = GatewayThread(tmp_path / "i2c-gateway.json", i2c=bus)
    with bus.installed():
        gateway.start()
        try:
            gateway.setup_owner(OWNER_PASSWORD)
            yield gateway
        finally:
            gateway.stop()


async def start_i2c(hass: HomeAssistant, bus: int, address: str) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await configure(hass, result, {"next_step_id": "i2c"})
    assert result["step_id"] == "i2c"
    schema = defaults(result, {})
    assert schema == {CONF_I2C_BUS: 1, CONF_I2C_ADDRESS: "0x42"}
    return await configure(hass, result, {CONF_I2C_BUS: bus, CONF_I2C_ADDRESS: address})


@pytest.mark.parametrize("address", ["0x07", "0x78", "120", "forty-two", ""])
async def test_i2c_address_validated(hass: HomeAssistant, address: str) -> None:
    result = await start_i2c(hass, 1, address)
    assert result["step_id"] == "i2c"
    assert result["errors"] == {CONF_I2C_ADDRESS: "invalid_i2c_address"}


@pytest.mark.parametrize(
    ("bus", "address"),
    [(5, "0x42"), (1, "0x43")],
    ids=["no-such-bus", "nothing-at-address"],
)
async def test_i2c_device_not_found(hass: HomeAssistant, bus: int, address: str) -> None:
    """The real I2C connector and smbus2 on the fake kernel: tell the user to enable I2C."""
    fake_bus = FakeI2CBus(1)
    fake_bus.add_device(FakeI2CDevice(0x42))
    with fake_bus.installed():
        result = await start_i2c(hass, bus, address)
    assert result["errors"] == {"base": "device_not_found"}


async def test_i2c_permission(hass: HomeAssistant) -> None:
    """The real I2C connector when the OS refuses /dev/i2c-1."""
    with FakeI2CBus(1, open_error="permission").installed():
        result = await start_i2c(hass, 1, "0x42")
    assert result["errors"] == {"base": "permission"}


async def test_i2c_transport_missing(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, I2C_TRANSPORT, None)
    result = await start_i2c(hass, 1, "0x42")
    assert result["errors"] == {"base": "i2c_unavailable"}


async def test_i2c_unexpected_error(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        description = "i2c://broken"

        async def connect(self) -> Any:
            raise RuntimeError("bug")

    monkeypatch.setattr(connection, "_i2c_connector", lambda bus, address: Broken())
    result = await start_i2c(hass, 1, "0x42")
    assert result["errors"] == {"base": "unknown"}
    assert "Unexpected error" in caplog.text


async def test_i2c_happy_path(hass: HomeAssistant, i2c_gateway: GatewayThread) -> None:
    """The I2C path end to end over the fake bus: first contact, pairing, the stored keys work."""
    result = await start_i2c(hass, I2C_BUS, "66")
    assert result["step_id"] == "confirm_fingerprint"
    assert result["description_placeholders"]["fingerprint"] == gateway_fact(
        i2c_gateway, "fingerprint"
    )
    result = await configure(hass, result, {})
    result = await sign_in(hass, result, OWNER_PASSWORD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = result["result"].data
    assert data[CONF_CONNECTION] == CONNECTION_I2C
    assert data[CONF_I2C_BUS] == I2C_BUS
    assert data[CONF_I2C_ADDRESS] == 0x42
    assert CONF_HOST not in data
    await assert_credentials_work_over_i2c(dict(data))


async def assert_credentials_work_over_i2c(data: dict[str, Any], user: str | None = None) -> None:
    """The entry's own connector (a real I2CConnector on the fake bus) opens a keyed session."""
    connector = connection.create_connector(data)
    assert isinstance(connector, I2CConnector)
    client = RayzigClient(connector, ClientCredentials.from_dict(data[CONF_CREDENTIALS]))
    try:
        info = await client.connect()
        assert info.user == user if user else info.user.startswith("home-assistant-")
    finally:
        await client.close()


def test_parse_i2c_address() -> None:
    assert parse_i2c_address("0x42") == 0x42
    assert parse_i2c_address(" 0X08 ") == 0x08
    assert parse_i2c_address("119") == 0x77
    assert parse_i2c_address(0x42) == 0x42
    assert parse_i2c_address("0x7") is None


# --- zeroconf ---------------------------------------------------------------------------------


def discovery(port: int, serial: str, fingerprint: str | None) -> ZeroconfServiceInfo:
    properties = {"serial": serial, "version": "1"}
    if fingerprint is not None:
        properties["fingerprint"] = fingerprint
    return ZeroconfServiceInfo(
        ip_address=ip_address("127.0.0.1"),
        ip_addresses=[ip_address("127.0.0.1")],
        port=port,
        hostname="rayzig-bridge.local.",
        type="_rayzig._tcp.local.",
        name=f"Rayzig {serial}._rayzig._tcp.local.",
        properties=properties,
    )


async def start_zeroconf(hass: HomeAssistant, info: ZeroconfServiceInfo) -> Any:
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=info
    )


async def test_zeroconf_new_gateway(hass: HomeAssistant, gateway: GatewayThread) -> None:
    serial = gateway_fact(gateway, "serial")
    fingerprint = gateway_fact(gateway, "fingerprint")
    # The TXT record may spell the fingerprint in lower case without separators.
    result = await start_zeroconf(
        hass, discovery(gateway.port, serial, fingerprint.replace("-", "").lower())
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"] == {
        "serial": serial,
        "host": f"127.0.0.1:{gateway.port}",
    }
    flows = hass.config_entries.flow.async_progress()
    assert flows[0]["context"]["title_placeholders"] == {"name": f"Rayzig {serial}"}
    result = await configure(hass, result, {})
    assert result["step_id"] == "confirm_fingerprint"
    assert result["description_placeholders"]["fingerprint"] == fingerprint
    result = await configure(hass, result, {})
    result = await sign_in(hass, result, OWNER_PASSWORD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == serial
    assert result["result"].data[CONF_PORT] == gateway.port


async def test_manual_setup_while_the_gateway_waits_under_discovered(
    hass: HomeAssistant, gateway: GatewayThread
) -> None:
    """Adding a discovered gateway by hand works; the discovered flow then goes away."""
    serial = gateway_fact(gateway, "serial")
    fingerprint = gateway_fact(gateway, "fingerprint")
    discovered = await start_zeroconf(hass, discovery(gateway.port, serial, fingerprint))
    assert discovered["step_id"] == "zeroconf_confirm"

    result = await start_bridge(hass, gateway.port)
    assert result["step_id"] == "confirm_fingerprint"  # not "already_in_progress"
    result = await configure(hass, result, {})
    result = await sign_in(hass, result, OWNER_PASSWORD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == serial
    assert hass.config_entries.flow.async_progress() == []


async def test_zeroconf_updates_existing_entry(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry
) -> None:
    config_entry.add_to_hass(hass)
    credentials = dict(config_entry.data[CONF_CREDENTIALS])
    info = discovery(4242, config_entry.unique_id or "", "00")
    info.ip_address = ip_address("192.0.2.7")
    result = await start_zeroconf(hass, info)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert config_entry.data[CONF_HOST] == "192.0.2.7"
    assert config_entry.data[CONF_PORT] == 4242
    assert config_entry.data[CONF_CREDENTIALS] == credentials


async def test_zeroconf_leaves_i2c_entry_alone(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="RZ-I2C",
        data={CONF_CONNECTION: CONNECTION_I2C, CONF_I2C_BUS: 1, CONF_I2C_ADDRESS: 0x42},
    )
    entry.add_to_hass(hass)
    result = await start_zeroconf(hass, discovery(7780, "RZ-I2C", "00"))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert CONF_HOST not in entry.data


async def test_zeroconf_fingerprint_mismatch(hass: HomeAssistant, gateway: GatewayThread) -> None:
    serial = gateway_fact(gateway, "serial")
    result = await start_zeroconf(hass, discovery(gateway.port, serial, "0000-1111"))
    result = await configure(hass, result, {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "fingerprint_mismatch"


async def test_zeroconf_serial_mismatch(hass: HomeAssistant, gateway: GatewayThread) -> None:
    fingerprint = gateway_fact(gateway, "fingerprint")
    result = await start_zeroconf(hass, discovery(gateway.port, "RZ-SOMEONE-ELSE", fingerprint))
    result = await configure(hass, result, {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "serial_mismatch"


async def test_zeroconf_without_fingerprint(hass: HomeAssistant) -> None:
    result = await start_zeroconf(hass, discovery(7780, "RZ-1", None))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


async def test_zeroconf_bridge_gone(hass: HomeAssistant, socket_enabled: None) -> None:
    result = await start_zeroconf(hass, discovery(closed_port(), "RZ-1", "00"))
    result = await configure(hass, result, {})
    assert result["step_id"] == "zeroconf_confirm"
    assert result["errors"] == {"base": "cannot_connect"}


# --- reauth -----------------------------------------------------------------------------------


async def revoke(gateway: GatewayThread, data: dict[str, Any]) -> None:
    """The client key is revoked on the gateway (as from the gateway's own tools)."""
    client_id = ClientCredentials.from_dict(data[CONF_CREDENTIALS]).client_id
    gateway.call(lambda g: g.clients.pop(client_id))


async def test_reauth_after_revocation(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry
) -> None:
    config_entry.add_to_hass(hass)
    old = dict(config_entry.data[CONF_CREDENTIALS])
    await revoke(gateway, dict(config_entry.data))

    result = await config_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    assert defaults(result, {"password": "x"})["username"] == OWNER
    result = await sign_in(hass, result, "wrong-password-for-sure")
    assert result["step_id"] == "reauth_confirm"
    assert result["errors"] == {"base": "invalid_auth"}
    result = await sign_in(hass, result, OWNER_PASSWORD)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"

    new = config_entry.data[CONF_CREDENTIALS]
    assert new["client_private_key"] != old["client_private_key"]
    assert new["gateway_public_key"] == old["gateway_public_key"]
    assert OWNER_PASSWORD not in str(config_entry.data)
    await assert_credentials_work(gateway.port, dict(config_entry.data))


async def test_reauth_password_reset_to_factory(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry
) -> None:
    """A gateway back on a must-change password gets a new one inside the reauth flow."""
    config_entry.add_to_hass(hass)
    await revoke(gateway, dict(config_entry.data))

    def must_change(g: VirtualGateway) -> None:
        g.users[OWNER].must_change = True

    gateway.call(must_change)
    assert gateway.factory is not None
    result = await config_entry.start_reauth_flow(hass)
    result = await sign_in(hass, result, OWNER_PASSWORD)
    assert result["step_id"] == "new_password"
    # Only the gateway knows its label password: its own policy check refuses it.
    result = await set_password(hass, result, gateway.factory.default_password)
    assert result["errors"] == {"new_password": "default_password"}
    result = await set_password(hass, result, NEW_PASSWORD)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await assert_credentials_work(gateway.port, dict(config_entry.data))


async def test_reauth_gateway_key_changed(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry, tmp_path: Path
) -> None:
    config_entry.add_to_hass(hass)
    result = await config_entry.start_reauth_flow(hass)
    port = gateway.port
    gateway.stop()
    result = await sign_in(hass, result, OWNER_PASSWORD)
    assert result["step_id"] == "reauth_confirm"
    assert result["errors"] == {"base": "cannot_connect"}

    impostor = other_gateway(tmp_path, port)
    try:
        result = await sign_in(hass, result, OWNER_PASSWORD)
    finally:
        impostor.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "gateway_key_changed"


async def test_reauth_key_changes_between_identify_and_pair(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pairing itself refuses another key (the race the identify check cannot close)."""
    config_entry.add_to_hass(hass)
    port = gateway.port
    real_pair = RayzigClient.pair
    swapped: list[GatewayThread] = []

    async def pair_after_swap(self: RayzigClient, *args: Any) -> ClientCredentials:
        gateway.stop()
        swapped.append(other_gateway(tmp_path, port))
        return await real_pair(self, *args)

    monkeypatch.setattr(RayzigClient, "pair", pair_after_swap)
    result = await config_entry.start_reauth_flow(hass)
    try:
        result = await sign_in(hass, result, OWNER_PASSWORD)
    finally:
        for thread in swapped:
            thread.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "gateway_key_changed"


def damaged_entry(hass: HomeAssistant) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="RZ-DAMAGED",
        data={
            CONF_CONNECTION: CONNECTION_TCP,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: 7780,
            CONF_CREDENTIALS: {"client_private_key": "zz"},
        },
    )
    entry.add_to_hass(hass)
    return entry


async def test_reauth_damaged_credentials(hass: HomeAssistant) -> None:
    result = await damaged_entry(hass).start_reauth_flow(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "credentials_damaged"


# --- reconfigure ------------------------------------------------------------------------------


async def test_reconfigure_to_new_port(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry
) -> None:
    config_entry.add_to_hass(hass)
    credentials = dict(config_entry.data[CONF_CREDENTIALS])
    old_port = gateway.port
    gateway.stop()
    gateway.port = 0
    gateway.start()
    assert gateway.port != old_port

    result = await config_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "reconfigure"
    result = await configure(hass, result, {"next_step_id": "bridge"})
    assert defaults(result, {}) == {CONF_HOST: "127.0.0.1", CONF_PORT: old_port}
    result = await configure(hass, result, {CONF_HOST: "127.0.0.1", CONF_PORT: gateway.port})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert config_entry.data[CONF_PORT] == gateway.port
    assert config_entry.data[CONF_CREDENTIALS] == credentials
    await assert_credentials_work(gateway.port, dict(config_entry.data), OWNER)


async def test_reconfigure_to_i2c_prefills(hass: HomeAssistant, i2c_gateway: GatewayThread) -> None:
    """An I2C entry shows its bus and address; the same gateway at a new address is accepted."""
    serial = gateway_fact(i2c_gateway, "serial")
    client = RayzigClient(TcpConnector("127.0.0.1", i2c_gateway.port))
    credentials = await client.pair(await client.identify(), OWNER, OWNER_PASSWORD)
    await client.close()
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=serial,
        data={
            CONF_CONNECTION: CONNECTION_I2C,
            CONF_I2C_BUS: 2,
            CONF_I2C_ADDRESS: 0x21,
            CONF_CREDENTIALS: credentials.to_dict(),
        },
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await configure(hass, result, {"next_step_id": "i2c"})
    assert defaults(result, {}) == {CONF_I2C_BUS: 2, CONF_I2C_ADDRESS: "0x21"}
    result = await configure(hass, result, {CONF_I2C_BUS: I2C_BUS, CONF_I2C_ADDRESS: "0x42"})
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_I2C_BUS] == I2C_BUS
    assert entry.data[CONF_I2C_ADDRESS] == 0x42
    await assert_credentials_work_over_i2c(dict(entry.data), OWNER)


async def test_reconfigure_bridge_to_i2c(hass: HomeAssistant, i2c_gateway: GatewayThread) -> None:
    """Moving to I2C keeps the keys and drops the bridge's host and port."""
    client = RayzigClient(TcpConnector("127.0.0.1", i2c_gateway.port))
    paired = await client.pair(await client.identify(), OWNER, OWNER_PASSWORD)
    await client.close()
    credentials = paired.to_dict()
    config_entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=paired.serial,
        data={
            CONF_CONNECTION: CONNECTION_TCP,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: i2c_gateway.port,
            CONF_CREDENTIALS: credentials,
        },
    )
    config_entry.add_to_hass(hass)
    result = await config_entry.start_reconfigure_flow(hass)
    result = await configure(hass, result, {"next_step_id": "i2c"})
    assert defaults(result, {}) == {CONF_I2C_BUS: 1, CONF_I2C_ADDRESS: "0x42"}
    result = await configure(hass, result, {CONF_I2C_BUS: I2C_BUS, CONF_I2C_ADDRESS: "0x42"})
    assert result["reason"] == "reconfigure_successful"
    assert dict(config_entry.data) == {
        CONF_CONNECTION: CONNECTION_I2C,
        CONF_I2C_BUS: I2C_BUS,
        CONF_I2C_ADDRESS: 0x42,
        CONF_CREDENTIALS: credentials,
    }
    await assert_credentials_work_over_i2c(dict(config_entry.data), OWNER)


async def test_reconfigure_other_gateway_aborts(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry, tmp_path: Path
) -> None:
    config_entry.add_to_hass(hass)
    other = other_gateway(tmp_path)
    try:
        result = await config_entry.start_reconfigure_flow(hass)
        result = await configure(hass, result, {"next_step_id": "bridge"})
        result = await configure(hass, result, {CONF_HOST: "127.0.0.1", CONF_PORT: other.port})
    finally:
        other.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    assert config_entry.data[CONF_PORT] == gateway.port


async def test_reconfigure_same_serial_other_key_aborts(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """A gateway claiming the serial but holding another key is not accepted."""
    config_entry.add_to_hass(hass)
    fake = GatewayThread(tmp_path / "fake.json").start()
    fake.stop()
    fake.edit_state(lambda state: state.update(serial=config_entry.unique_id))
    fake.port = 0
    fake.start()
    try:
        result = await config_entry.start_reconfigure_flow(hass)
        result = await configure(hass, result, {"next_step_id": "bridge"})
        result = await configure(hass, result, {CONF_HOST: "127.0.0.1", CONF_PORT: fake.port})
    finally:
        fake.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "gateway_key_changed"


async def test_reconfigure_same_gateway_from_state_copy(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """A second gateway process from a copy of the state file is the same gateway (same key)."""
    config_entry.add_to_hass(hass)
    gateway.stop()
    shutil.copy(gateway.state_path, tmp_path / "copy.json")
    copy = GatewayThread(tmp_path / "copy.json").start()
    try:
        result = await config_entry.start_reconfigure_flow(hass)
        result = await configure(hass, result, {"next_step_id": "bridge"})
        result = await configure(hass, result, {CONF_HOST: "127.0.0.1", CONF_PORT: copy.port})
        assert result["reason"] == "reconfigure_successful"
        await assert_credentials_work(copy.port, dict(config_entry.data), OWNER)
    finally:
        copy.stop()


async def test_reconfigure_damaged_credentials(hass: HomeAssistant) -> None:
    result = await damaged_entry(hass).start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "credentials_damaged"


# --- options ----------------------------------------------------------------------------------

KEY = "ab" * 32


async def open_settings(hass: HomeAssistant, entry_id: str) -> Any:
    """Options: the menu, then its settings form."""
    result = await hass.config_entries.options.async_init(entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["settings", "install_firmware", "add_administrator"]
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "settings"}
    )


async def test_options_defaults_and_save(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="RZ-OPT", data={})
    entry.add_to_hass(hass)
    result = await open_settings(hass, entry.entry_id)
    assert result["step_id"] == "settings"
    assert defaults(result, {}) == {
        CONF_EVENT_IMPORT_WINDOW: 100,
        CONF_LOW_BATTERY_THRESHOLD: 0,
        CONF_POLL_INTERVAL: 300,
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_EVENT_IMPORT_WINDOW: 8192,
            CONF_LOW_BATTERY_THRESHOLD: 15,
            CONF_POLL_INTERVAL: 30,
            CONF_UPDATE_SERVER_URL: " https://updates.example.org/rayzig ",
            CONF_UPDATE_SIGNING_KEY: KEY.upper(),
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_EVENT_IMPORT_WINDOW: 8192,
        CONF_LOW_BATTERY_THRESHOLD: 15,
        CONF_POLL_INTERVAL: 30,
        CONF_UPDATE_SERVER_URL: "https://updates.example.org/rayzig",
        CONF_UPDATE_SIGNING_KEY: KEY,
    }

    # The form shows the saved values; clearing the update server removes it.
    result = await open_settings(hass, entry.entry_id)
    assert defaults(result, {})[CONF_POLL_INTERVAL] == 30
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_EVENT_IMPORT_WINDOW: 0, CONF_LOW_BATTERY_THRESHOLD: 0, CONF_POLL_INTERVAL: 3600},
    )
    assert entry.options == {
        CONF_EVENT_IMPORT_WINDOW: 0,
        CONF_LOW_BATTERY_THRESHOLD: 0,
        CONF_POLL_INTERVAL: 3600,
    }


async def test_options_take_effect_at_once(
    hass: HomeAssistant,
    real_integration: None,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Saving changed options reloads a set-up entry: the new poll interval applies at once."""
    options = {CONF_EVENT_IMPORT_WINDOW: 100, CONF_LOW_BATTERY_THRESHOLD: 0}
    reloads = patch.object(
        hass.config_entries,
        "async_schedule_reload",
        wraps=hass.config_entries.async_schedule_reload,
    )
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        assert entry.state is ConfigEntryState.LOADED
        before = entry.runtime_data
        assert before.coordinator.update_interval == timedelta(seconds=300)

        result = await open_settings(hass, entry.entry_id)
        with reloads as schedule_reload:
            result = await hass.config_entries.options.async_configure(
                result["flow_id"], {**options, CONF_POLL_INTERVAL: 45}
            )
            await hass.async_block_till_done()
        assert result["type"] is FlowResultType.CREATE_ENTRY
        schedule_reload.assert_called_once_with(entry.entry_id)
        assert entry.options == {**options, CONF_POLL_INTERVAL: 45}
        assert entry.state is ConfigEntryState.LOADED
        after = entry.runtime_data
        assert after is not before
        assert after.coordinator.update_interval == timedelta(seconds=45)
        assert after.client.state is ConnectionState.CONNECTED
        assert before.client.state is ConnectionState.CLOSED

        # The same options again: nothing to apply, no reload.
        result = await open_settings(hass, entry.entry_id)
        assert defaults(result, {})[CONF_POLL_INTERVAL] == 45
        with reloads as schedule_reload:
            result = await hass.config_entries.options.async_configure(
                result["flow_id"], {**options, CONF_POLL_INTERVAL: 45}
            )
            await hass.async_block_till_done()
        assert result["type"] is FlowResultType.CREATE_ENTRY
        schedule_reload.assert_not_called()
        assert entry.runtime_data is after
        assert after.coordinator.update_interval == timedelta(seconds=45)


async def test_options_stored_when_entry_cannot_reload(hass: HomeAssistant) -> None:
    """An entry that failed to unload cannot be reloaded: the options wait for a restart."""
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id="RZ-OPT", data={}, state=ConfigEntryState.FAILED_UNLOAD
    )
    entry.add_to_hass(hass)
    result = await open_settings(hass, entry.entry_id)
    with patch.object(hass.config_entries, "async_schedule_reload") as schedule_reload:
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            {CONF_EVENT_IMPORT_WINDOW: 5, CONF_LOW_BATTERY_THRESHOLD: 0, CONF_POLL_INTERVAL: 60},
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_POLL_INTERVAL] == 60
    schedule_reload.assert_not_called()


@pytest.mark.parametrize(
    ("update", "errors"),
    [
        (
            {CONF_UPDATE_SERVER_URL: "ftp://example.org", CONF_UPDATE_SIGNING_KEY: KEY},
            {CONF_UPDATE_SERVER_URL: "invalid_url"},
        ),
        (
            {CONF_UPDATE_SERVER_URL: "https://", CONF_UPDATE_SIGNING_KEY: KEY},
            {CONF_UPDATE_SERVER_URL: "invalid_url"},
        ),
        (
            {CONF_UPDATE_SERVER_URL: "https://example.org", CONF_UPDATE_SIGNING_KEY: "ab" * 31},
            {CONF_UPDATE_SIGNING_KEY: "invalid_signing_key"},
        ),
        (
            {CONF_UPDATE_SERVER_URL: "https://example.org", CONF_UPDATE_SIGNING_KEY: "zz" * 32},
            {CONF_UPDATE_SIGNING_KEY: "invalid_signing_key"},
        ),
        (
            {CONF_UPDATE_SERVER_URL: "https://example.org"},
            {CONF_UPDATE_SIGNING_KEY: "signing_key_required"},
        ),
    ],
)
async def test_options_update_server_validated(
    hass: HomeAssistant, update: dict[str, str], errors: dict[str, str]
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="RZ-OPT", data={})
    entry.add_to_hass(hass)
    result = await open_settings(hass, entry.entry_id)
    base = {CONF_EVENT_IMPORT_WINDOW: 10, CONF_LOW_BATTERY_THRESHOLD: 5, CONF_POLL_INTERVAL: 60}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**base, **update}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    # What the user typed stays in the form.
    assert defaults(result, {})[CONF_POLL_INTERVAL] == 60
    assert entry.options == {}


@pytest.mark.parametrize(
    "bad",
    [
        {CONF_EVENT_IMPORT_WINDOW: 8193},
        {CONF_LOW_BATTERY_THRESHOLD: 101},
        {CONF_POLL_INTERVAL: 29},
        {CONF_POLL_INTERVAL: 3601},
    ],
)
async def test_options_ranges(hass: HomeAssistant, bad: dict[str, int]) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="RZ-OPT", data={})
    entry.add_to_hass(hass)
    result = await open_settings(hass, entry.entry_id)
    base = {CONF_EVENT_IMPORT_WINDOW: 10, CONF_LOW_BATTERY_THRESHOLD: 5, CONF_POLL_INTERVAL: 60}
    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(result["flow_id"], {**base, **bad})


# --- strings ----------------------------------------------------------------------------------


def test_strings_cover_the_flow() -> None:
    """strings.json == en.json for the flow's keys; German has the same keys; every code named."""
    strings = json.loads((COMPONENT / "strings.json").read_text(encoding="utf-8"))
    english = json.loads((COMPONENT / "translations" / "en.json").read_text(encoding="utf-8"))
    german = json.loads((COMPONENT / "translations" / "de.json").read_text(encoding="utf-8"))

    def keys(tree: Any, prefix: str = "") -> set[str]:
        if not isinstance(tree, dict):
            return {prefix}
        return {k for key, value in tree.items() for k in keys(value, f"{prefix}.{key}")}

    for section in ("config", "options"):
        assert strings[section] == english[section]
        assert keys(german[section]) == keys(english[section])
    errors = strings["config"]["error"]
    for violation in PolicyViolation:
        assert violation.value in errors
    # The flow's steps live in config_flow.py and the config_flow_*.py modules it is built from.
    source = "\n".join(
        path.read_text(encoding="utf-8") for path in sorted(COMPONENT.glob("config_flow*.py"))
    )
    for reason in strings["config"]["abort"]:
        assert reason in source or reason in (
            "already_in_progress",
            "reauth_successful",
            "reconfigure_successful",
            "unique_id_mismatch",
        )
    for step in (
        "user",
        "reconfigure",
        "bridge",
        "i2c",
        "confirm_fingerprint",
        "credentials",
        "new_password",
        "zeroconf_confirm",
        "reauth_confirm",
    ):
        assert f'"{step}"' in source or f"async_step_{step}" in source
        assert strings["config"]["step"][step]["title"]
        assert german["config"]["step"][step]["title"] != strings["config"]["step"][step]["title"]
