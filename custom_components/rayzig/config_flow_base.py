"""What every step of the Rayzig config flow shares: the flow's state, first contact, form errors.

:class:`RayzigFlowBase` holds what the flow has learnt so far (connection, gateway identity, user,
the password only while it is needed). The steps live in ``config_flow_connection`` (how Home
Assistant reaches the gateway, discovery), ``config_flow_credentials`` (fingerprint, pairing, the
forced new password) and ``config_flow_reauth`` (reauthentication, reconfiguration);
``config_flow.RayzigConfigFlow`` puts them together.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntry, ConfigFlow, ConfigFlowResult
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
)

from rayzig_core import (
    ClientCredentials,
    ConnectionFailedError,
    DeviceNotFoundError,
    DevicePermissionError,
    GatewayIdentity,
    InvalidCredentialsError,
    ProtocolError,
    RayzigClient,
    ThrottledError,
)

from .connection import I2CUnavailableError, create_connector
from .const import CONF_CONNECTION, CONF_CREDENTIALS, CONNECTION_I2C

_LOGGER = logging.getLogger(__name__)

CONF_USERNAME = "username"
CONF_PASSWORD = "password"  # noqa: S105 - a form field name, not a password

CLIENT_NAME = "Home Assistant"
DEFAULT_USER = "installer"

TEXT_SELECTOR = TextSelector()


def error_key(err: Exception, connection: str) -> str:
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


def pinned_key(entry: ConfigEntry) -> bytes | None:
    """Return the gateway key pinned in an entry, or None if its credentials are damaged."""
    try:
        return ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS]).gateway_public_key
    except (KeyError, ValueError):
        return None


def number_selector(minimum: int, maximum: int, unit: str | None = None) -> NumberSelector:
    """A whole-number box from ``minimum`` to ``maximum``, with an optional unit."""
    config = NumberSelectorConfig(min=minimum, max=maximum, step=1, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


class RayzigFlowBase(ConfigFlow):
    """The flow's state and what several of its steps do (no step of its own)."""

    def __init__(self) -> None:
        """Start with nothing known."""
        self._connection: dict[str, Any] = {}
        self._identity: GatewayIdentity | None = None
        self._discovered_fingerprint: str | None = None
        self._user = DEFAULT_USER
        self._password: str | None = None
        self._paired: ClientCredentials | None = None

    async def _async_identify(
        self, data: Mapping[str, Any], errors: dict[str, str]
    ) -> GatewayIdentity | None:
        """First contact at a connection; fills ``errors`` and returns None on failure."""
        try:
            async with RayzigClient(create_connector(data), client_name=CLIENT_NAME) as client:
                return await client.identify()
        except Exception as err:  # noqa: BLE001 - every failure becomes a form error
            errors["base"] = error_key(err, str(data[CONF_CONNECTION]))
            return None

    def _form_error(self, err: Exception) -> tuple[dict[str, str], dict[str, str]]:
        key = error_key(err, str(self._connection[CONF_CONNECTION]))
        placeholders = {}
        if isinstance(err, ThrottledError):
            placeholders["seconds"] = str(math.ceil(err.retry_after))
        return {"base": key}, placeholders

    def _abort_key_changed(self) -> ConfigFlowResult:
        reason = "gateway_key_changed" if self.source == SOURCE_REAUTH else "fingerprint_changed"
        return self.async_abort(reason=reason)

    @property
    def _auth_step(self) -> str:
        return "reauth_confirm" if self.source == SOURCE_REAUTH else "credentials"
