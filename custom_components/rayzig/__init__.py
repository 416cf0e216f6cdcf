"""The Rayzig integration: power outputs, telemetry and event logs of a Rayzig mesh.

Setup opens one keyed session to the gateway (failing fast with a clear reason), then hands
reconnection to the client, with a back-off capped for Home Assistant and nudged when the gateway
answers again (:mod:`.recovery`): entities follow its connection state, and Home Assistant start
is never blocked by an absent gateway (ConfigEntryNotReady retries in the background).
"""

from __future__ import annotations

import asyncio
import logging

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from rayzig_core import (
    AuthenticationError,
    ClientCredentials,
    ClientRevokedError,
    GatewayKeyChangedError,
    PermissionDeniedError,
    RayzigClient,
    RayzigError,
)

from .account import CONF_DEDICATED_ACCOUNT
from .connection import I2CUnavailableError, create_connector
from .const import (
    CONF_CREDENTIALS,
    CONF_UPDATE_SERVER_URL,
    CONF_UPDATE_SIGNING_KEY,
    CONNECT_TIMEOUT,
    DOMAIN,
    MANUFACTURER,
)
from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry, RayzigData
from .events import RayzigEventImporter
from .firmware import RayzigFirmwareCoordinator
from .recovery import RECONNECT_BACKOFF_INITIAL, RECONNECT_BACKOFF_MAX, ReconnectProbe
from .repair_own_account import async_update_own_account_issue
from .repairs import (
    async_clear_gateway_key_changed,
    async_delete_entry_issues,
    async_raise_gateway_key_changed,
    async_raise_revoke_client,
)
from .services import async_setup_services
from .site_data import gateway_device_identifier, module_device_identifier, rayzig_firmware

_LOGGER = logging.getLogger(__name__)

CLIENT_NAME = "Home Assistant"
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.UPDATE,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions (they check the config entry when called)."""
    async_setup_services(hass)
    return True


async def _async_build_client(hass: HomeAssistant, entry: RayzigConfigEntry) -> RayzigClient:
    """Build the entry's client (not connected), or raise what Home Assistant should do.

    Damaged credentials need a new pairing (reauthentication); a connection that cannot be built
    (no I2C support in rayzig_core, damaged connection fields) does not get better by retrying.
    """
    try:
        credentials = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS])
    except (KeyError, ValueError) as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="credentials_damaged"
        ) from err
    try:
        # Importing the I2C transport reads files: not in the event loop.
        connector = await hass.async_add_executor_job(create_connector, dict(entry.data))
    except I2CUnavailableError as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN, translation_key="i2c_unavailable"
        ) from err
    except (KeyError, ValueError) as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="connection_invalid",
            translation_placeholders={"error": str(err)},
        ) from err
    return RayzigClient(
        connector,
        credentials,
        client_name=CLIENT_NAME,
        backoff_initial=RECONNECT_BACKOFF_INITIAL,
        backoff_max=RECONNECT_BACKOFF_MAX,
    )


async def _async_connect(hass: HomeAssistant, entry: RayzigConfigEntry) -> RayzigClient:
    """Open the keyed session, or raise what Home Assistant should do about the failure."""
    client = await _async_build_client(hass, entry)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT.total_seconds()):
            await client.connect()
    except BaseException as err:
        await client.close()
        if isinstance(err, RayzigError | TimeoutError):
            raise _setup_exception(hass, entry, err) from err
        raise
    async_clear_gateway_key_changed(hass, entry)
    assert client.credentials is not None
    async_update_own_account_issue(hass, entry, client.credentials)
    return client


def _setup_exception(
    hass: HomeAssistant, entry: RayzigConfigEntry, err: RayzigError | TimeoutError
) -> Exception:
    """Return the exception that tells Home Assistant what to do about a failed connection."""
    if isinstance(err, GatewayKeyChangedError):
        async_raise_gateway_key_changed(
            hass, entry, err.pinned_fingerprint, err.presented_fingerprint
        )
        return ConfigEntryError(translation_domain=DOMAIN, translation_key="gateway_key_changed")
    if isinstance(err, AuthenticationError):
        return ConfigEntryAuthFailed(translation_domain=DOMAIN, translation_key="auth_failed")
    return ConfigEntryNotReady(
        translation_domain=DOMAIN,
        translation_key="cannot_connect",
        translation_placeholders={"error": str(err) or "timeout"},
    )


async def async_setup_entry(hass: HomeAssistant, entry: RayzigConfigEntry) -> bool:
    """Connect to the gateway, load the site and set up the platforms."""
    client = await _async_connect(hass, entry)
    events = RayzigEventImporter(hass, entry, client)
    coordinator = RayzigCoordinator(hass, entry, client)
    try:
        # Listeners run in subscription order: the importer first, so that on ModuleLeft it
        # still finds the module's device (for its "left" event) before the coordinator
        # removes it. The coordinator subscribes before its first read: what changes
        # meanwhile is replayed on top of it.
        await events.async_load()
        coordinator.async_start_push()
        await coordinator.async_config_entry_first_refresh()
    except BaseException:
        await events.async_stop()
        await client.close()
        raise
    coordinator.events = events
    ReconnectProbe(hass, entry, client).async_start()
    firmware: RayzigFirmwareCoordinator | None = None
    if url := entry.options.get(CONF_UPDATE_SERVER_URL):
        firmware = RayzigFirmwareCoordinator(
            hass,
            entry,
            client,
            str(url),
            bytes.fromhex(str(entry.options.get(CONF_UPDATE_SIGNING_KEY, ""))),
        )
    entry.runtime_data = RayzigData(client, coordinator, events, firmware)

    async def _async_close() -> None:
        await events.async_stop()
        await client.close()

    async def _async_on_stop(_: Event) -> None:
        unsub_stop.clear()  # fired listeners are gone: nothing to remove on unload
        await _async_close()

    unsub_stop = [hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _async_on_stop)]

    @callback
    def _async_remove_stop_listener() -> None:
        while unsub_stop:
            unsub_stop.pop()()

    # On unload these run last-registered first: the client closes after everything else.
    entry.async_on_unload(_async_close)
    entry.async_on_unload(_async_remove_stop_listener)

    info = coordinator.data.info
    gateway = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={gateway_device_identifier(info.serial)},
        manufacturer=MANUFACTURER,
        model=info.model,
        name=entry.title,
        serial_number=info.serial,
        sw_version=rayzig_firmware(info),
    )
    coordinator.gateway_device_id = gateway.id
    coordinator.async_remove_stale_devices()

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if firmware is not None:
        # The update server may be slow or away (up to 30 s per fetch): never hold up setup for
        # it. The update entities become available when the catalogue arrives; the task ends
        # with the entry.
        entry.async_create_background_task(
            hass, firmware.async_refresh(), f"{DOMAIN} firmware catalogue {entry.entry_id}"
        )
    events.async_schedule_sync()
    return True


async def async_unload_entry(hass: HomeAssistant, entry: RayzigConfigEntry) -> bool:
    """Unload the platforms; the importer and the client stop through ``async_on_unload``."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def _async_delete_own_account(client: RayzigClient, user: str) -> bool:
    """Delete the client's own account (its keys go with it); False if the gateway refuses."""
    try:
        await client.delete_user(user)
    except PermissionDeniedError:
        _LOGGER.warning(
            "The gateway does not let %s delete itself (a revision-1 gateway): delete it there "
            "as a System user (`rayzig users delete %s`)",
            user,
            user,
        )
        return False
    return True


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: RayzigConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete a module device only once the module has left the mesh.

    While the entry is not loaded nothing is known about the mesh: the deletion is allowed, and a
    module that is still there gets its device back at the next setup.
    """
    if entry.state is not ConfigEntryState.LOADED:
        return True
    data = entry.runtime_data.coordinator.data
    in_use = {gateway_device_identifier(data.info.serial)} | {
        module_device_identifier(module.serial) for module in data.modules.values()
    }
    return not device.identifiers & in_use


async def async_remove_entry(hass: HomeAssistant, entry: RayzigConfigEntry) -> None:
    """Revoke this installation's client key on the gateway, and delete the event cursors.

    Personal-data deletion (ETSI EN 303 645, provision 5.11): when the gateway cannot be reached,
    a repair issue tells the user how to revoke the key on the gateway itself.
    """
    async_delete_entry_issues(hass, entry)
    try:
        client = await _async_build_client(hass, entry)
    except ConfigEntryAuthFailed:
        _LOGGER.warning(
            "The stored credentials of %s are damaged, so Home Assistant cannot revoke its "
            "client key: revoke it on the gateway (`rayzig clients list`, `rayzig clients revoke`)",
            entry.title,
        )
        return
    except ConfigEntryError as err:
        _LOGGER.warning(
            "Could not revoke Home Assistant's client key on %s: %s; see Repairs to revoke it on "
            "the gateway",
            entry.title,
            err,
        )
        stored = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS])
        async_raise_revoke_client(hass, entry, stored.client_id, stored.user)
        return
    credentials = client.credentials
    assert credentials is not None
    try:
        if not await _async_revoke(client, entry):
            async_raise_revoke_client(hass, entry, credentials.client_id, credentials.user)
    finally:
        await client.close()
    await RayzigEventImporter(hass, entry, client).async_remove()


async def _async_revoke(client: RayzigClient, entry: RayzigConfigEntry) -> bool:
    """Delete Home Assistant's own account with its key, or revoke the key of another account.

    Says so in the log; False if the gateway was not reached. A gateway of revision 1 refuses an
    Administrator's deletion of its own account (PROTOCOL.md §7.3): the key is revoked instead.
    """
    credentials = client.credentials
    assert credentials is not None
    title = entry.title
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT.total_seconds()):
            await client.connect()
            if not entry.data.get(CONF_DEDICATED_ACCOUNT):
                await client.revoke_client(0)
            elif await _async_delete_own_account(client, credentials.user):
                _LOGGER.info("Deleted Home Assistant's account %s on %s", credentials.user, title)
                return True
            else:
                await client.revoke_client(0)
    except ClientRevokedError:
        _LOGGER.info(
            "Home Assistant's client key (client %s) was already revoked on %s",
            credentials.client_id,
            title,
        )
        return True
    except (RayzigError, TimeoutError) as err:
        _LOGGER.warning(
            "Could not revoke Home Assistant's client key (client %s) on %s: %s; see Repairs to "
            "revoke it on the gateway",
            credentials.client_id,
            title,
            err,
        )
        return False
    _LOGGER.info(
        "Revoked Home Assistant's client key (client %s) on %s: it no longer opens a session",
        credentials.client_id,
        title,
    )
    return True
