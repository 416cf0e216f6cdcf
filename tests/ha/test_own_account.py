"""Home Assistant's own gateway account: least privilege, against the real virtual gateway.

A System user's sign-in creates an Administrator account for Home Assistant alone; its stored key
cannot add an Administrator or install firmware; those need a System user's password typed in at
the time (the options flow), which leaves nothing behind; an entry paired as the installer moves by
a repair; removing the entry deletes the account. No generated password is ever logged or stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.repairs import DOMAIN as REPAIRS_DOMAIN
from homeassistant.components.repairs.issue_handler import async_process_repairs_platforms
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig import account, config_flow_credentials, passwords, repair_own_account
from custom_components.rayzig.account import CONF_DEDICATED_ACCOUNT
from custom_components.rayzig.const import CONF_CREDENTIALS, DOMAIN
from custom_components.rayzig.diagnostics import async_get_config_entry_diagnostics
from custom_components.rayzig.repair_own_account import own_account_issue_id
from custom_components.rayzig.repairs import async_create_fix_flow
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import ConnectionFailedError, GatewayKeyChangedError, PermissionDeniedError
from rayzig_core.models import UserLevel
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector

from .conftest import OWNER, OWNER_PASSWORD
from .runtime_helpers import entry_for, loaded_entry, pair_user

PREFIX = "home-assistant-"


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password Home Assistant generates in the test, to look for it where it must not be."""
    drawn: list[str] = []
    original = passwords.generate_password

    def record(user_name: str, serial: str) -> str:
        password = original(user_name, serial)
        drawn.append(password)
        return password

    monkeypatch.setattr(account, "generate_password", record)
    return drawn


def accounts(gateway: GatewayThread) -> dict[str, UserLevel]:
    return gateway.call(lambda g: {name: user.level for name, user in g.users.items()})


def keys_of(gateway: GatewayThread, user: str) -> list[int]:
    return gateway.call(lambda g: [i for i, c in g.clients.items() if c.user == user])


def installer_verifier(gateway: GatewayThread) -> Any:
    return gateway.call(lambda g: g.users[OWNER].verifier)


async def flow_entry(hass: HomeAssistant, gateway: GatewayThread, password: str) -> Any:
    """The user flow to its end, signing in as ``OWNER``."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "bridge"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": gateway.port}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"username": OWNER, "password": password}
    )


async def own_entry(gateway: GatewayThread, installer: ClientCredentials) -> MockConfigEntry:
    """An entry as the config flow makes it now: Home Assistant's own Administrator account."""
    entry = entry_for(gateway, installer)
    connection = {k: v for k, v in entry.data.items() if k != CONF_CREDENTIALS}

    class _Hass:  # the executor job of generate_password, run inline
        async def async_add_executor_job(self, target: Any, *args: Any) -> Any:
            return target(*args)

    key = await account.async_take_own_account(
        _Hass(),  # type: ignore[arg-type]
        connection,
        account.identity_of(installer),
        installer,
    )
    await account.async_revoke_key(connection, installer)
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=entry.unique_id,
        data={
            **connection,
            CONF_CREDENTIALS: key.credentials.to_dict(),
            CONF_DEDICATED_ACCOUNT: True,
        },
    )


# --- the config flow ------------------------------------------------------------------------------


async def test_new_entry_gets_its_own_administrator_account(
    hass: HomeAssistant,
    gateway: GatewayThread,
    generated: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier = installer_verifier(gateway)
    installer_keys = keys_of(gateway, OWNER)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("custom_components.rayzig.async_setup_entry", _no_setup)
        result = await flow_entry(hass, gateway, OWNER_PASSWORD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    credentials = ClientCredentials.from_dict(result["result"].data[CONF_CREDENTIALS])
    assert credentials.user.startswith(PREFIX)
    assert 1 <= len(credentials.user) <= 32
    assert credentials.level is UserLevel.ADMINISTRATOR
    assert result["result"].data[CONF_DEDICATED_ACCOUNT] is True
    assert accounts(gateway) == {OWNER: UserLevel.SYSTEM, credentials.user: UserLevel.ADMINISTRATOR}
    # The installer's account is untouched, and the key its sign-in enrolled is revoked again.
    assert installer_verifier(gateway) == verifier
    assert keys_of(gateway, OWNER) == installer_keys
    assert keys_of(gateway, credentials.user) == [credentials.client_id]
    # The generated password was used and is nowhere.
    assert len(generated) == 1
    assert generated[0] not in str(result["result"].data)
    assert generated[0] not in caplog.text
    assert OWNER_PASSWORD not in caplog.text


async def _no_setup(hass: HomeAssistant, entry: Any) -> bool:
    return True


async def test_an_administrator_sign_in_pairs_under_that_account(
    hass: HomeAssistant, gateway: GatewayThread
) -> None:
    """An Administrator holds no System right already: no account of Home Assistant's own."""
    await pair_user(gateway, "adam", UserLevel.ADMINISTRATOR, "copper-lantern-whistles-71-rain")
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "bridge"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": gateway.port}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("custom_components.rayzig.async_setup_entry", _no_setup)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"username": "adam", "password": "copper-lantern-whistles-71-rain"}
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].data[CONF_DEDICATED_ACCOUNT] is False
    assert ClientCredentials.from_dict(result["result"].data[CONF_CREDENTIALS]).user == "adam"
    assert not [name for name in accounts(gateway) if name.startswith(PREFIX)]


async def test_a_full_gateway_says_what_to_do(hass: HomeAssistant, gateway: GatewayThread) -> None:
    def fill(g: Any) -> None:
        template = g.users[OWNER]
        for number in range(account.MAX_USERS - len(g.users)):
            g.users[f"filler-{number}"] = type(template)(
                f"filler-{number}", UserLevel.USER, template.verifier
            )

    gateway.call(fill)
    keys = keys_of(gateway, OWNER)
    result = await flow_entry(hass, gateway, OWNER_PASSWORD)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "too_many_users"}
    assert keys_of(gateway, OWNER) == keys  # the sign-in's key is revoked again
    assert len(accounts(gateway)) == account.MAX_USERS


async def test_reauth_replaces_the_old_account(
    hass: HomeAssistant, gateway: GatewayThread, credentials: ClientCredentials
) -> None:
    """Nobody knows the old account's password: a System user signs in, a new one replaces it."""
    entry = await own_entry(gateway, credentials)
    entry.add_to_hass(hass)
    old = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS]).user
    gateway.call(lambda g: g.clients.clear())  # every key revoked on the gateway
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    assert result["data_schema"]({"password": "x"})["username"] == OWNER
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("custom_components.rayzig.async_setup_entry", _no_setup)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"username": OWNER, "password": OWNER_PASSWORD}
        )
        await hass.async_block_till_done()
    assert result["reason"] == "reauth_successful"
    new = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS]).user
    assert new != old
    assert accounts(gateway) == {OWNER: UserLevel.SYSTEM, new: UserLevel.ADMINISTRATOR}


# --- what Home Assistant's key may not do ---------------------------------------------------------


async def test_the_stored_key_cannot_add_an_administrator_or_install_firmware(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = await own_entry(gateway, credentials)
    stored = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS])
    # The gateway itself refuses the key (not only Home Assistant's checks).
    async with RayzigClient(TcpConnector("127.0.0.1", gateway.port), stored) as client:
        await client.connect()
        with pytest.raises(PermissionDeniedError, match="manage_admins"):
            await client.add_user(
                "mallory", UserLevel.ADMINISTRATOR, "amber-kettle-sings-44-nights"
            )
        with pytest.raises(PermissionDeniedError, match="firmware"):
            await client._call(m.FirmwareBegin(b"{}", b"\0" * 64), m.Ok)
    async with loaded_entry(hass, entry, monkeypatch):
        with pytest.raises(HomeAssistantError) as raised:
            await hass.services.async_call(
                DOMAIN,
                "add_user",
                {"config_entry_id": entry.entry_id, "name": "mallory", "level": "administrator"},
                blocking=True,
                return_response=True,
            )
        assert raised.value.translation_key == "permission_needs_system"
        assert "no System rights" in str(raised.value)
    assert "mallory" not in accounts(gateway)


async def test_removing_the_entry_deletes_its_account(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = await own_entry(gateway, credentials)
    own = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS]).user
    async with loaded_entry(hass, entry, monkeypatch):
        assert await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()
    assert accounts(gateway) == {OWNER: UserLevel.SYSTEM}
    assert not keys_of(gateway, own)


# --- the repair for entries paired as the installer -----------------------------------------------


async def test_repair_moves_an_installer_entry(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    *,
    generated: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier = installer_verifier(gateway)
    old = ClientCredentials.from_dict(config_entry.data[CONF_CREDENTIALS])
    assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
    async with loaded_entry(hass, config_entry, monkeypatch):
        issue = ir.async_get(hass).async_get_issue(
            DOMAIN, own_account_issue_id(config_entry.entry_id)
        )
        assert issue is not None
        assert issue.is_fixable
        await async_process_repairs_platforms(hass)
        flow = await async_create_fix_flow(hass, issue.issue_id, issue.data)
        flow.hass = hass
        result = await flow.async_step_init()
        assert result["step_id"] == "confirm"
        assert result["description_placeholders"]["user"] == OWNER
        result = await flow.async_step_confirm({})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        new = ClientCredentials.from_dict(config_entry.data[CONF_CREDENTIALS])
        assert new.user.startswith(PREFIX)
        assert new.level is UserLevel.ADMINISTRATOR
        assert config_entry.data[CONF_DEDICATED_ACCOUNT] is True
        assert config_entry.runtime_data.client.info is not None
        assert config_entry.runtime_data.client.info.user == new.user
        # The old key is revoked; the installer's account is as it was; the offer is gone.
        assert old.client_id not in keys_of(gateway, OWNER)
        assert installer_verifier(gateway) == verifier
        assert accounts(gateway)[OWNER] is UserLevel.SYSTEM
        assert ir.async_get(hass).async_get_issue(DOMAIN, issue.issue_id) is None
        diagnostics = await async_get_config_entry_diagnostics(hass, config_entry)
    for secret in generated:
        assert secret not in caplog.text
        assert secret not in str(diagnostics)
        assert secret not in str(config_entry.data)


async def test_repair_on_a_full_gateway_and_after_removal(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with loaded_entry(hass, config_entry, monkeypatch):
        flow = await async_create_fix_flow(
            hass, own_account_issue_id(config_entry.entry_id), {"entry_id": config_entry.entry_id}
        )
        flow.hass = hass

        def fill(g: Any) -> None:
            template = g.users[OWNER]
            for number in range(account.MAX_USERS - len(g.users)):
                g.users[f"filler-{number}"] = type(template)(
                    f"filler-{number}", UserLevel.USER, template.verifier
                )

        gateway.call(fill)
        result = await flow.async_step_confirm({})
        assert result["errors"] == {"base": "too_many_users"}
        gateway.stop()
        result = await flow.async_step_confirm({})
        assert result["errors"] == {"base": "cannot_connect"}
        assert result["description_placeholders"]["error"]
    await hass.config_entries.async_remove(config_entry.entry_id)
    result = await flow.async_step_confirm({})
    assert result["reason"] == "entry_removed"


def test_own_account_names_are_fresh() -> None:
    taken = {f"{PREFIX}{n:06x}" for n in range(3)}
    name = account._free_name(taken)
    assert name.startswith(PREFIX)
    assert name not in taken
    assert len(name) == len(PREFIX) + 6


def test_strings_name_the_new_steps() -> None:
    component = Path(__file__).resolve().parents[2] / "custom_components" / DOMAIN
    strings = (component / "strings.json").read_text(encoding="utf-8")
    for key in ("own_account", "install_firmware", "too_many_users", "firmware_needs_system"):
        assert key in strings


# --- failures on the way ----------------------------------------------------------------------


async def test_a_failed_pairing_deletes_the_new_account_again(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pairing under the new account fails (the link drops): no orphan account is left."""

    class DroppingClient(RayzigClient):
        async def pair(self, gateway: Any, user: str, password: str) -> ClientCredentials:
            if user.startswith(PREFIX):
                raise ConnectionFailedError("link lost")
            return await super().pair(gateway, user, password)

    monkeypatch.setattr(account, "RayzigClient", DroppingClient)
    entry = entry_for(gateway, credentials)
    connection = {k: v for k, v in entry.data.items() if k != CONF_CREDENTIALS}
    with pytest.raises(ConnectionFailedError):
        await account.async_take_own_account(
            hass, connection, account.identity_of(credentials), credentials
        )
    assert accounts(gateway) == {OWNER: UserLevel.SYSTEM}


async def test_a_key_that_cannot_be_revoked_is_reported(
    gateway: GatewayThread, credentials: ClientCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    entry = entry_for(gateway, credentials)
    connection = {k: v for k, v in entry.data.items() if k != CONF_CREDENTIALS}
    gateway.stop()
    assert not await account.async_revoke_key(connection, credentials)
    assert f"rayzig clients revoke {credentials.client_id}" in caplog.text


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (GatewayKeyChangedError("AAAA", "BBBB"), {"reason": "fingerprint_changed"}),
        (ConnectionFailedError("link lost"), {"errors": {"base": "cannot_connect"}}),
    ],
)
async def test_flow_failures_while_taking_the_account(
    hass: HomeAssistant,
    gateway: GatewayThread,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    expected: dict[str, Any],
) -> None:
    """The gateway key changes or the link drops after the sign-in: the flow says so."""

    async def fail(*args: Any) -> Any:
        raise error

    monkeypatch.setattr(config_flow_credentials, "async_take_own_account", fail)
    keys = keys_of(gateway, OWNER)
    result = await flow_entry(hass, gateway, OWNER_PASSWORD)
    for key, value in expected.items():
        assert result[key] == value
    assert keys_of(gateway, OWNER) == keys  # the sign-in's key is revoked all the same


async def test_repair_refuses_a_changed_gateway_key(
    hass: HomeAssistant, gateway: GatewayThread, config_entry: MockConfigEntry
) -> None:
    config_entry.add_to_hass(hass)

    async def fail(*args: Any) -> Any:
        raise GatewayKeyChangedError("AAAA", "BBBB")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(repair_own_account, "async_take_own_account", fail)
        flow = await async_create_fix_flow(
            hass, own_account_issue_id(config_entry.entry_id), {"entry_id": config_entry.entry_id}
        )
        flow.hass = hass
        result = await flow.async_step_confirm({})
    assert result["reason"] == "gateway_key_changed"


async def test_removal_on_a_revision_1_gateway_revokes_the_key_and_says_so(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gateway that will not let an account delete itself: the key goes, the log says the rest."""
    entry = await own_entry(gateway, credentials)
    own = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS])

    async def refused(self: RayzigClient, name: str) -> None:
        raise PermissionDeniedError(6, "The Administrator level cannot delete users")

    async with loaded_entry(hass, entry, monkeypatch):
        monkeypatch.setattr(RayzigClient, "delete_user", refused)
        assert await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()
    assert not keys_of(gateway, own.user)
    assert own.user in accounts(gateway)
    assert f"rayzig users delete {own.user}" in caplog.text


# --- an Administrator account with a System user's password ---------------------------------------


async def open_add_administrator(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "add_administrator"}
    )


async def test_add_an_administrator_with_system_credentials_stores_nothing(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await pair_user(gateway, "adam", UserLevel.ADMINISTRATOR, "copper-lantern-whistles-71-rain")
    entry = await own_entry(gateway, credentials)
    async with loaded_entry(hass, entry, monkeypatch):
        data, options = dict(entry.data), dict(entry.options)
        installer_keys = keys_of(gateway, OWNER)
        result = await open_add_administrator(hass, entry)
        assert result["step_id"] == "add_administrator"

        def submit(name: str, user: str, password: str) -> Any:
            return hass.config_entries.options.async_configure(
                result["flow_id"], {"name": name, "username": user, "password": password}
            )

        result = await submit("alice", OWNER, "not-the-password-at-all")
        assert result["errors"] == {"base": "invalid_auth"}
        result = await submit("alice", "adam", "copper-lantern-whistles-71-rain")
        assert result["errors"] == {"base": "not_system_user"}
        result = await submit(OWNER, OWNER, OWNER_PASSWORD)
        assert result["errors"] == {"name": "name_refused"}
        assert "alice" not in accounts(gateway)
        result = await submit(" alice ", OWNER, OWNER_PASSWORD)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "administrator_added"
        initial = result["description_placeholders"]["password"]
        assert result["description_placeholders"]["name"] == "alice"
        assert accounts(gateway)["alice"] is UserLevel.ADMINISTRATOR
        # The initial password works; nothing stayed in Home Assistant or on the gateway.
        client = RayzigClient(TcpConnector("127.0.0.1", gateway.port))
        try:
            paired = await client.pair(await client.identify(), "alice", initial)
        finally:
            await client.close()
        assert paired.level is UserLevel.ADMINISTRATOR
        assert dict(entry.data) == data
        assert dict(entry.options) == options
        assert keys_of(gateway, OWNER) == installer_keys
    for secret in (OWNER_PASSWORD, initial):
        assert secret not in caplog.text


async def test_deleting_an_administrator_from_home_assistant_needs_system(
    hass: HomeAssistant,
    gateway: GatewayThread,
    credentials: ClientCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await pair_user(gateway, "adam", UserLevel.ADMINISTRATOR, "copper-lantern-whistles-71-rain")
    entry = await own_entry(gateway, credentials)
    async with loaded_entry(hass, entry, monkeypatch):
        with pytest.raises(HomeAssistantError) as raised:
            await hass.services.async_call(
                DOMAIN,
                "delete_user",
                {"config_entry_id": entry.entry_id, "name": "adam"},
                blocking=True,
            )
        assert raised.value.translation_key == "permission_needs_system"
        assert "adam" in accounts(gateway)
        gateway.stop()
        with pytest.raises(HomeAssistantError) as raised:
            await hass.services.async_call(
                DOMAIN,
                "delete_user",
                {"config_entry_id": entry.entry_id, "name": "adam"},
                blocking=True,
            )
        assert raised.value.translation_key == "not_connected"
