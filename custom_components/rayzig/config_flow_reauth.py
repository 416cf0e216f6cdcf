"""Config flow steps for an existing entry: reauthentication and reconfiguration.

Reauthentication pairs again against the pinned gateway key (the gateway no longer accepts the
client key); reconfiguration moves the entry to another connection of the same gateway and goes
on in the connection steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigFlowResult

from .account import CONF_DEDICATED_ACCOUNT
from .config_flow_base import CONF_PASSWORD, CONF_USERNAME, DEFAULT_USER, pinned_key
from .config_flow_credentials import CredentialsSteps
from .const import CONF_CREDENTIALS


class ReauthSteps(CredentialsSteps):
    """Reauthentication and the start of a reconfiguration."""

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the entry to another connection of the same gateway."""
        if pinned_key(self._get_reconfigure_entry()) is None:
            return self.async_abort(reason="credentials_damaged")
        return self.async_show_menu(step_id="reconfigure", menu_options=["bridge", "i2c"])

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Pair again: the gateway no longer accepts the client key (revoked, user deleted)."""
        entry = self._get_reauth_entry()
        if pinned_key(entry) is None:
            return self.async_abort(reason="credentials_damaged")
        self._connection = {
            key: value for key, value in entry_data.items() if key != CONF_CREDENTIALS
        }
        # Nobody knows the password of Home Assistant's own account: a System user signs in.
        stored = entry_data[CONF_CREDENTIALS].get("user")
        self._user = (
            DEFAULT_USER if entry_data.get(CONF_DEDICATED_ACCOUNT) else str(stored or DEFAULT_USER)
        )
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
        if identity.public_key != pinned_key(entry):
            return self.async_abort(reason="gateway_key_changed")
        await self.async_set_unique_id(identity.serial)
        self._abort_if_unique_id_mismatch()
        self._identity = identity
        return await self._async_pair(
            "reauth_confirm", str(user_input[CONF_USERNAME]).strip(), user_input[CONF_PASSWORD]
        )
