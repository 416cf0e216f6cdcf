"""Config flow for Rayzig: tested connection, pinned gateway key, never a stored password.

Steps (user source): ``user`` (menu: network bridge or local I2C) → ``bridge`` / ``i2c`` (identify
the gateway there) → ``confirm_fingerprint`` (the user compares the key fingerprint with the
gateway's label or display; the key is pinned from here on) → ``credentials`` (pair) →
``new_password`` while the gateway still has its factory password → entry with the client key.

Zeroconf discovery (``_rayzig._tcp``) joins at ``zeroconf_confirm``; reauthentication pairs again
against the pinned key; reconfigure moves the entry to a new connection of the same gateway.
Passwords live in the flow only while they are needed and are never stored, logged or raised.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import voluptuous as vol
from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.helpers.translation import async_get_translations

from rayzig_core.client import ClientCredentials, GatewayIdentity, RayzigClient
from rayzig_core.errors import (
    ConnectionFailedError,
    DeviceNotFoundError,
    DevicePermissionError,
    GatewayKeyChangedError,
    InvalidCredentialsError,
    PasswordChangeRequiredError,
    PasswordRejectedError,
    ProtocolError,
    ThrottledError,
)
from rayzig_core.password_policy import PolicyViolation, check_password

from .connection import I2CUnavailableError, create_connector
from .const import (
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
    DEFAULT_EVENT_IMPORT_WINDOW,
    DEFAULT_I2C_ADDRESS,
    DEFAULT_I2C_BUS,
    DEFAULT_LOW_BATTERY_THRESHOLD,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_PORT,
    DOMAIN,
    MIN_POLL_INTERVAL,
)

_LOGGER = logging.getLogger(__name__)

CONF_USERNAME = "username"
CONF_PASSWORD = "password"  # noqa: S105 - a form field name, not a password
CONF_NEW_PASSWORD = "new_password"  # noqa: S105 - a form field name, not a password
CONF_CONFIRM_PASSWORD = "confirm_password"  # noqa: S105 - a form field name, not a password

CLIENT_NAME = "Home Assistant"
DEFAULT_USER = "installer"
I2C_ADDRESS_MIN = 0x08
I2C_ADDRESS_MAX = 0x77
MAX_EVENT_IMPORT_WINDOW = 8192
MAX_POLL_INTERVAL = 3600
SIGNING_KEY_HEX_LENGTH = 64

_PASSWORD_SELECTOR = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="new-password")
)
_CURRENT_PASSWORD_SELECTOR = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)
_TEXT_SELECTOR = TextSelector()


_POLICY_CODES: Final = frozenset(str(violation) for violation in PolicyViolation)


_CONNECTION_KEYS: Final = frozenset(
    {CONF_CONNECTION, CONF_HOST, CONF_PORT, CONF_I2C_BUS, CONF_I2C_ADDRESS}
)


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why the new-password form is shown again."""

    errors: dict[str, str]
    placeholders: dict[str, str]
    codes: list[str]


def parse_i2c_address(text: str | int) -> int | None:
    """Parse ``0x42``/``0X42`` (hex) or ``66`` (decimal); None unless in 0x08..0x77."""
    try:
        address = text if isinstance(text, int) else int(str(text).strip(), 0)
    except ValueError:
        return None
    return address if I2C_ADDRESS_MIN <= address <= I2C_ADDRESS_MAX else None


def normalize_fingerprint(text: str) -> str:
    """Compare fingerprints ignoring case and separators."""
    return "".join(char for char in text if char.isalnum()).upper()


def _error_key(err: Exception, connection: str) -> str:
    """Map a rayzig_core error to the form error key the user sees."""
    if isinstance(err, I2CUnavailableError):
        return "i2c_unavailable"
    if isinstance(err, DevicePermissionError):
        return "permission"
    if isinstance(err, DeviceNotFoundError) and connection == CONNECTION_I2C:
        return "device_not_found"
    if isinstance(err, ThrottledError):
        return "throttled"
    if isinstance(err, InvalidCredentialsError):
        return "invalid_auth"
    if isinstance(err, ConnectionFailedError | ProtocolError):
        return "cannot_connect"
    _LOGGER.error("Unexpected error talking to the Rayzig gateway", exc_info=err)
    return "unknown"


def _pinned_key(entry: ConfigEntry) -> bytes | None:
    """Return the gateway key pinned in an entry, or None if its credentials are damaged."""
    try:
        return ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS]).gateway_public_key
    except (KeyError, ValueError):
        return None


def _number(minimum: int, maximum: int, unit: str | None = None) -> NumberSelector:
    config = NumberSelectorConfig(min=minimum, max=maximum, step=1, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


class RayzigConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a Rayzig gateway from the UI."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing known."""
        self._connection: dict[str, Any] = {}
        self._identity: GatewayIdentity | None = None
        self._discovered_fingerprint: str | None = None
        self._user = DEFAULT_USER
        self._password: str | None = None
        self._paired: ClientCredentials | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Options: event import window, battery threshold, poll interval, update server."""
        return RayzigOptionsFlow()

    # --- connection ---------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose how Home Assistant reaches the gateway."""
        return self.async_show_menu(step_id="user", menu_options=["bridge", "i2c"])

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the entry to another connection of the same gateway."""
        if _pinned_key(self._get_reconfigure_entry()) is None:
            return self.async_abort(reason="credentials_damaged")
        return self.async_show_menu(step_id="reconfigure", menu_options=["bridge", "i2c"])

    def _current(self, key: str, default: Any) -> Any:
        """Prefill with the entry's value when reconfiguring."""
        if self.source == SOURCE_RECONFIGURE:
            return self._get_reconfigure_entry().data.get(key, default)
        return default

    async def async_step_bridge(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Network bridge (or virtual gateway): host and port."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                CONF_CONNECTION: CONNECTION_TCP,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
            }
            identity = await self._async_identify(data, errors)
            if identity is not None:
                return await self._async_connection_tested(data, identity)
        else:
            user_input = {
                CONF_HOST: self._current(CONF_HOST, ""),
                CONF_PORT: self._current(CONF_PORT, DEFAULT_PORT),
            }
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST, default=user_input[CONF_HOST]): _TEXT_SELECTOR,
                vol.Required(CONF_PORT, default=user_input[CONF_PORT]): _number(1, 65535),
            }
        )
        return self.async_show_form(step_id="bridge", data_schema=schema, errors=errors)

    async def async_step_i2c(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Local I2C on the computer Home Assistant runs on: bus and address."""
        errors: dict[str, str] = {}
        if user_input is not None:
            address = parse_i2c_address(user_input[CONF_I2C_ADDRESS])
            if address is None:
                errors[CONF_I2C_ADDRESS] = "invalid_i2c_address"
            else:
                data = {
                    CONF_CONNECTION: CONNECTION_I2C,
                    CONF_I2C_BUS: int(user_input[CONF_I2C_BUS]),
                    CONF_I2C_ADDRESS: address,
                }
                identity = await self._async_identify(data, errors)
                if identity is not None:
                    return await self._async_connection_tested(data, identity)
        else:
            user_input = {
                CONF_I2C_BUS: self._current(CONF_I2C_BUS, DEFAULT_I2C_BUS),
                CONF_I2C_ADDRESS: f"0x{self._current(CONF_I2C_ADDRESS, DEFAULT_I2C_ADDRESS):02x}",
            }
        schema = vol.Schema(
            {
                vol.Required(CONF_I2C_BUS, default=user_input[CONF_I2C_BUS]): _number(0, 255),
                vol.Required(
                    CONF_I2C_ADDRESS, default=str(user_input[CONF_I2C_ADDRESS])
                ): _TEXT_SELECTOR,
            }
        )
        return self.async_show_form(step_id="i2c", data_schema=schema, errors=errors)

    async def _async_identify(
        self, data: Mapping[str, Any], errors: dict[str, str]
    ) -> GatewayIdentity | None:
        """First contact at a connection; fills ``errors`` and returns None on failure."""
        try:
            async with RayzigClient(create_connector(data), client_name=CLIENT_NAME) as client:
                return await client.identify()
        except Exception as err:  # noqa: BLE001 - every failure becomes a form error
            errors["base"] = _error_key(err, str(data[CONF_CONNECTION]))
            return None

    async def _async_connection_tested(
        self, data: dict[str, Any], identity: GatewayIdentity
    ) -> ConfigFlowResult:
        """Reconfigure the entry, or go on to the fingerprint, once a gateway answered."""
        await self.async_set_unique_id(identity.serial)
        if self.source == SOURCE_RECONFIGURE:
            self._abort_if_unique_id_mismatch()
            entry = self._get_reconfigure_entry()
            if identity.public_key != _pinned_key(entry):
                return self.async_abort(reason="gateway_key_changed")
            # Keep the keys; replace the connection fields (no stale host/port after a move to I2C).
            kept = {key: value for key, value in entry.data.items() if key not in _CONNECTION_KEYS}
            return self.async_update_reload_and_abort(entry, data={**kept, **data})
        self._abort_if_unique_id_configured()
        self._connection = data
        self._identity = identity
        return await self.async_step_confirm_fingerprint()

    # --- discovery ------------------------------------------------------------------------

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """Handle a bridge that announced itself; its TXT record has serial and fingerprint."""
        serial = str(discovery_info.properties.get("serial") or "").strip()
        fingerprint = str(discovery_info.properties.get("fingerprint") or "").strip()
        if not serial or not fingerprint:
            return self.async_abort(reason="invalid_discovery_info")
        host = discovery_info.host
        port = discovery_info.port or DEFAULT_PORT
        existing = await self.async_set_unique_id(serial)
        if existing is not None and existing.data.get(CONF_CONNECTION) == CONNECTION_I2C:
            return self.async_abort(reason="already_configured")
        self._abort_if_unique_id_configured(updates={CONF_HOST: host, CONF_PORT: port})
        self._connection = {CONF_CONNECTION: CONNECTION_TCP, CONF_HOST: host, CONF_PORT: port}
        self._discovered_fingerprint = fingerprint
        self.context["title_placeholders"] = {"name": f"Rayzig {serial}"}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before contacting a discovered bridge; then check it is the announced gateway."""
        errors: dict[str, str] = {}
        if user_input is not None:
            identity = await self._async_identify(self._connection, errors)
            if identity is not None:
                if identity.serial != self.unique_id:
                    return self.async_abort(reason="serial_mismatch")
                assert self._discovered_fingerprint is not None
                if normalize_fingerprint(identity.fingerprint) != normalize_fingerprint(
                    self._discovered_fingerprint
                ):
                    return self.async_abort(reason="fingerprint_mismatch")
                self._identity = identity
                return await self.async_step_confirm_fingerprint()
        return self.async_show_form(
            step_id="zeroconf_confirm",
            errors=errors,
            description_placeholders={
                "serial": str(self.unique_id),
                "host": f"{self._connection[CONF_HOST]}:{self._connection[CONF_PORT]}",
            },
        )

    # --- fingerprint and credentials -------------------------------------------------------

    async def async_step_confirm_fingerprint(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the key fingerprint; submitting confirms it matches the label or display."""
        identity = self._identity
        assert identity is not None
        if user_input is not None:
            return await self.async_step_credentials()
        return self.async_show_form(
            step_id="confirm_fingerprint",
            data_schema=vol.Schema({}),
            description_placeholders={
                "fingerprint": identity.fingerprint,
                "serial": identity.serial,
                "model": identity.model,
            },
        )

    async def async_step_credentials(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """User name and password of a gateway user; pairs a new client key."""
        if user_input is None:
            return self._show_credentials_form("credentials", {})
        return await self._async_pair(
            "credentials", str(user_input[CONF_USERNAME]).strip(), user_input[CONF_PASSWORD]
        )

    def _show_credentials_form(
        self, step_id: str, errors: dict[str, str], placeholders: dict[str, str] | None = None
    ) -> ConfigFlowResult:
        identity = self._identity
        schema = vol.Schema(
            {
                vol.Required(CONF_USERNAME, default=self._user): _TEXT_SELECTOR,
                vol.Required(CONF_PASSWORD): _CURRENT_PASSWORD_SELECTOR,
            }
        )
        return self.async_show_form(
            step_id=step_id,
            data_schema=schema,
            errors=errors,
            description_placeholders={
                "serial": identity.serial if identity else "",
                "seconds": "0",
                **(placeholders or {}),
            },
        )

    def _abort_key_changed(self) -> ConfigFlowResult:
        reason = "gateway_key_changed" if self.source == SOURCE_REAUTH else "fingerprint_changed"
        return self.async_abort(reason=reason)

    async def _async_pair(self, step_id: str, user: str, password: str) -> ConfigFlowResult:
        """Pair with the pinned gateway key; route factory passwords to ``new_password``."""
        identity = self._identity
        assert identity is not None
        self._user = user
        try:
            async with RayzigClient(
                create_connector(self._connection), client_name=CLIENT_NAME
            ) as client:
                credentials = await client.pair(identity, user, password)
        except PasswordChangeRequiredError:
            self._password = password
            return await self.async_step_new_password()
        except GatewayKeyChangedError:
            return self._abort_key_changed()
        except Exception as err:  # noqa: BLE001 - every other failure becomes a form error
            return self._show_credentials_form(step_id, *self._form_error(err))
        if identity.factory_state:
            # The gateway still reports factory state: refuse to finish without a new password.
            self._password = password
            self._paired = credentials
            return await self.async_step_new_password()
        return self._async_finish(credentials)

    def _form_error(self, err: Exception) -> tuple[dict[str, str], dict[str, str]]:
        key = _error_key(err, str(self._connection[CONF_CONNECTION]))
        placeholders = {}
        if isinstance(err, ThrottledError):
            placeholders["seconds"] = str(math.ceil(err.retry_after))
        return {"base": key}, placeholders

    # --- new password --------------------------------------------------------------------

    async def _async_reasons(self, codes: list[str]) -> str:
        """Return the refusal reasons in words, in Home Assistant's language (a list)."""
        strings = await async_get_translations(
            self.hass, self.hass.config.language, "config", [DOMAIN]
        )
        lines = []
        for code in codes:
            text = strings.get(f"component.{DOMAIN}.config.error.{code}")
            lines.append(f"- {text or PolicyViolation(code).message}")
        return "\n".join(lines)

    async def async_step_new_password(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Set a password that passes the policy; the flow cannot finish without it."""
        identity = self._identity
        assert identity is not None
        assert self._password is not None
        errors: dict[str, str] = {}
        reasons = ""
        placeholders: dict[str, str] = {}
        if user_input is not None:
            new = user_input[CONF_NEW_PASSWORD]
            codes = [
                str(violation)
                for violation in check_password(
                    new,
                    user_name=self._user,
                    serial=identity.serial,
                    default_password=self._password,
                )
            ]
            if codes:
                errors[CONF_NEW_PASSWORD] = codes[0]
            elif new != user_input[CONF_CONFIRM_PASSWORD]:
                errors[CONF_CONFIRM_PASSWORD] = "passwords_mismatch"
            else:
                result = await self._async_change_password(new)
                if not isinstance(result, _Refusal):
                    return result
                errors, placeholders, codes = result.errors, result.placeholders, result.codes
            if len(codes) > 1:
                reasons = await self._async_reasons(codes)
        schema = vol.Schema(
            {
                vol.Required(CONF_NEW_PASSWORD): _PASSWORD_SELECTOR,
                vol.Required(CONF_CONFIRM_PASSWORD): _PASSWORD_SELECTOR,
            }
        )
        return self.async_show_form(
            step_id="new_password",
            data_schema=schema,
            errors=errors,
            description_placeholders={
                "user": self._user,
                "serial": identity.serial,
                "reasons": reasons,
                "seconds": "0",
                **placeholders,
            },
        )

    async def _async_change_password(self, new: str) -> ConfigFlowResult | _Refusal:
        """Change the password on the gateway, then pair with it (or say why not)."""
        identity = self._identity
        assert identity is not None
        assert self._password is not None
        try:
            async with RayzigClient(
                create_connector(self._connection), client_name=CLIENT_NAME
            ) as client:
                await client.change_password(identity.public_key, self._user, self._password, new)
        except PasswordRejectedError as err:
            # The gateway's own policy check (it may know more, e.g. its default password).
            codes = [reason for reason in err.reasons if reason in _POLICY_CODES]
            key = codes[0] if codes else "password_rejected"
            return _Refusal({CONF_NEW_PASSWORD: key}, {}, codes)
        except InvalidCredentialsError:
            # The current password changed meanwhile: ask for it again.
            self._password = None
            self._paired = None
            return self._show_credentials_form(self._auth_step, {"base": "invalid_auth"})
        except GatewayKeyChangedError:
            return self._abort_key_changed()
        except Exception as err:  # noqa: BLE001 - every other failure becomes a form error
            return _Refusal(*self._form_error(err), [])
        self._password = None
        # The gateway has left factory state: the identity's flag no longer applies.
        self._identity = dataclasses.replace(identity, factory_state=False)
        if self._paired is not None:
            return self._async_finish(self._paired)
        # The new password is set: pairing with it is an ordinary credentials attempt.
        return await self._async_pair(self._auth_step, self._user, new)

    @property
    def _auth_step(self) -> str:
        return "reauth_confirm" if self.source == SOURCE_REAUTH else "credentials"

    def _async_finish(self, credentials: ClientCredentials) -> ConfigFlowResult:
        """Store the client key and pinned gateway key (never the password)."""
        self._password = None
        self._paired = None
        if self.source == SOURCE_REAUTH:
            return self.async_update_reload_and_abort(
                self._get_reauth_entry(), data_updates={CONF_CREDENTIALS: credentials.to_dict()}
            )
        assert self._identity is not None
        return self.async_create_entry(
            title=f"Rayzig {self._identity.serial}",
            data={**self._connection, CONF_CREDENTIALS: credentials.to_dict()},
        )

    # --- reauthentication ------------------------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Pair again: the gateway no longer accepts the client key (revoked, user deleted)."""
        entry = self._get_reauth_entry()
        if _pinned_key(entry) is None:
            return self.async_abort(reason="credentials_damaged")
        self._connection = {
            key: value for key, value in entry_data.items() if key != CONF_CREDENTIALS
        }
        self._user = str(entry_data[CONF_CREDENTIALS].get("user") or DEFAULT_USER)
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for user and password, then pair again against the pinned gateway key."""
        if user_input is None:
            return self._show_credentials_form("reauth_confirm", {})
        errors: dict[str, str] = {}
        identity = await self._async_identify(self._connection, errors)
        if identity is None:
            self._user = str(user_input[CONF_USERNAME]).strip()
            return self._show_credentials_form("reauth_confirm", errors)
        entry = self._get_reauth_entry()
        if identity.public_key != _pinned_key(entry):
            return self.async_abort(reason="gateway_key_changed")
        await self.async_set_unique_id(identity.serial)
        self._abort_if_unique_id_mismatch()
        self._identity = identity
        return await self._async_pair(
            "reauth_confirm", str(user_input[CONF_USERNAME]).strip(), user_input[CONF_PASSWORD]
        )


class RayzigOptionsFlow(OptionsFlow):
    """Event import window, battery threshold, poll interval and the firmware update server.

    Saved options take effect at once: the entry is reloaded when they changed. Home Assistant
    2025.4 has no ``OptionsFlowWithReload``, and an update listener must not be combined with
    the ``async_update_reload_and_abort`` of reauth and reconfigure (an error from 2026.12), so
    the step reloads the entry itself.
    """

    @callback
    def _async_store_and_reload(self, options: dict[str, Any]) -> None:
        """Store ``options`` now and reload the entry if they changed.

        Home Assistant writes a finished options flow's data only after the step has returned,
        while ``async_schedule_reload`` starts the reload eagerly (it runs until its first
        suspension before this method returns). Storing the options first means the reload
        always sets up with them; Home Assistant's own write of the same data is then a no-op.
        """
        entry = self.config_entry
        if not self.hass.config_entries.async_update_entry(entry, options=options):
            return
        if entry.state.recoverable:
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
        # Otherwise (failed unload, migration error) only a restart can load the entry again;
        # it then uses the stored options.

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form for every option."""
        errors: dict[str, str] = {}
        current: Mapping[str, Any] = self.config_entry.options
        if user_input is not None:
            options: dict[str, Any] = {
                CONF_EVENT_IMPORT_WINDOW: int(user_input[CONF_EVENT_IMPORT_WINDOW]),
                CONF_LOW_BATTERY_THRESHOLD: int(user_input[CONF_LOW_BATTERY_THRESHOLD]),
                CONF_POLL_INTERVAL: int(user_input[CONF_POLL_INTERVAL]),
            }
            url = str(user_input.get(CONF_UPDATE_SERVER_URL) or "").strip()
            key = str(user_input.get(CONF_UPDATE_SIGNING_KEY) or "").strip().lower()
            if url:
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    errors[CONF_UPDATE_SERVER_URL] = "invalid_url"
                options[CONF_UPDATE_SERVER_URL] = url
            if key:
                if len(key) != SIGNING_KEY_HEX_LENGTH or any(
                    char not in "0123456789abcdef" for char in key
                ):
                    errors[CONF_UPDATE_SIGNING_KEY] = "invalid_signing_key"
                options[CONF_UPDATE_SIGNING_KEY] = key
            if url and not key:
                errors[CONF_UPDATE_SIGNING_KEY] = "signing_key_required"
            if not errors:
                self._async_store_and_reload(options)
                return self.async_create_entry(data=options)
            current = user_input
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_EVENT_IMPORT_WINDOW,
                    default=current.get(CONF_EVENT_IMPORT_WINDOW, DEFAULT_EVENT_IMPORT_WINDOW),
                ): _number(0, MAX_EVENT_IMPORT_WINDOW),
                vol.Required(
                    CONF_LOW_BATTERY_THRESHOLD,
                    default=current.get(CONF_LOW_BATTERY_THRESHOLD, DEFAULT_LOW_BATTERY_THRESHOLD),
                ): _number(0, 100, "%"),
                vol.Required(
                    CONF_POLL_INTERVAL,
                    default=current.get(CONF_POLL_INTERVAL, DEFAULT_POLL_INTERVAL),
                ): _number(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL, "s"),
                vol.Optional(
                    CONF_UPDATE_SERVER_URL,
                    description={"suggested_value": current.get(CONF_UPDATE_SERVER_URL)},
                ): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
                vol.Optional(
                    CONF_UPDATE_SIGNING_KEY,
                    description={"suggested_value": current.get(CONF_UPDATE_SIGNING_KEY)},
                ): _TEXT_SELECTOR,
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema, errors=errors)
