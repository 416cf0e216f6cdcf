"""Config flow steps that find the gateway: network bridge or local I2C, and zeroconf discovery.

Each tests the connection with first contact (PROTOCOL.md §3.4) before going on to the fingerprint;
when reconfiguring, a gateway that answers with the pinned key gets the entry's new connection.
"""

from __future__ import annotations

from typing import Any, Final

import voluptuous as vol
from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigFlowResult
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from rayzig_core import GatewayIdentity

from .config_flow_base import TEXT_SELECTOR, number_selector, pinned_key
from .config_flow_credentials import CredentialsSteps
from .const import (
    CONF_CONNECTION,
    CONF_HOST,
    CONF_I2C_ADDRESS,
    CONF_I2C_BUS,
    CONF_PORT,
    CONNECTION_I2C,
    CONNECTION_TCP,
    DEFAULT_I2C_ADDRESS,
    DEFAULT_I2C_BUS,
    DEFAULT_PORT,
)
from .recovery import async_gateway_seen

I2C_ADDRESS_MIN = 0x08
I2C_ADDRESS_MAX = 0x77

_CONNECTION_KEYS: Final = frozenset(
    {CONF_CONNECTION, CONF_HOST, CONF_PORT, CONF_I2C_BUS, CONF_I2C_ADDRESS}
)


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


class ConnectionSteps(CredentialsSteps):
    """Menu, bridge, I2C and zeroconf steps (also the connection steps of a reconfiguration)."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose how Home Assistant reaches the gateway."""
        return self.async_show_menu(step_id="user", menu_options=["bridge", "i2c"])

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
                vol.Required(CONF_HOST, default=user_input[CONF_HOST]): TEXT_SELECTOR,
                vol.Required(CONF_PORT, default=user_input[CONF_PORT]): number_selector(1, 65535),
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
                vol.Required(CONF_I2C_BUS, default=user_input[CONF_I2C_BUS]): number_selector(
                    0, 255
                ),
                vol.Required(
                    CONF_I2C_ADDRESS, default=str(user_input[CONF_I2C_ADDRESS])
                ): TEXT_SELECTOR,
            }
        )
        return self.async_show_form(step_id="i2c", data_schema=schema, errors=errors)

    async def _async_connection_tested(
        self, data: dict[str, Any], identity: GatewayIdentity
    ) -> ConfigFlowResult:
        """Reconfigure the entry, or go on to the fingerprint, once a gateway answered."""
        # A discovered flow for this gateway may wait under "Discovered": the user's own flow goes
        # on, and whichever finishes first ends the other (Home Assistant aborts same-ID flows).
        await self.async_set_unique_id(identity.serial, raise_on_progress=False)
        if self.source == SOURCE_RECONFIGURE:
            self._abort_if_unique_id_mismatch()
            entry = self._get_reconfigure_entry()
            if identity.public_key != pinned_key(entry):
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
        if existing is not None:
            async_gateway_seen(existing)  # announced again: reconnect now if it waits to
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
