"""Repair ``own_account``: move an entry paired as a System user to Home Assistant's own account.

Entries made before Home Assistant had an account of its own hold a System user's key. The issue
offers the move; its fix flow uses that key (it has the rights: no password is asked), creates
Home Assistant's Administrator account and pairs under it (:mod:`.account`), stores the new key,
reloads the entry and revokes the old key. The System user's account itself stays untouched.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback

try:  # HA 2026 types repair flows' results apart; HA 2025.4 has only FlowResult
    from homeassistant.components.repairs import (  # type: ignore[attr-defined, unused-ignore]
        RepairsFlowResult,
    )
except ImportError:  # HA 2025.4, the tested version
    from homeassistant.data_entry_flow import (  # type: ignore[assignment, unused-ignore]
        FlowResult as RepairsFlowResult,
    )
from homeassistant.helpers import issue_registry as ir

from rayzig_core import ClientCredentials, GatewayKeyChangedError, RayzigError

from .account import (
    CONF_DEDICATED_ACCOUNT,
    AccountsFullError,
    async_revoke_key,
    async_take_own_account,
    identity_of,
    needs_own_account,
)
from .const import CONF_CREDENTIALS, DOMAIN

ISSUE_OWN_ACCOUNT = "own_account"
ATTR_ENTRY_ID = "entry_id"


def own_account_issue_id(entry_id: str) -> str:
    """Issue id of the move offer for one config entry."""
    return f"{ISSUE_OWN_ACCOUNT}_{entry_id}"


@callback
def async_update_own_account_issue(
    hass: HomeAssistant, entry: ConfigEntry, credentials: ClientCredentials
) -> None:
    """Offer the move while the entry holds a System user's key; withdraw the offer otherwise."""
    identifier = own_account_issue_id(entry.entry_id)
    if entry.data.get(CONF_DEDICATED_ACCOUNT) or not needs_own_account(credentials.level):
        ir.async_delete_issue(hass, DOMAIN, identifier)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        identifier,
        is_fixable=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_OWN_ACCOUNT,
        translation_placeholders={"title": entry.title, "user": credentials.user},
        data={ATTR_ENTRY_ID: entry.entry_id},
    )


class OwnAccountRepairFlow(RepairsFlow):
    """Confirm, then move the entry to Home Assistant's own Administrator account."""

    def __init__(self, entry_id: str) -> None:
        """Remember which entry moves."""
        self._entry_id = entry_id

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        """Start at the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Explain the move; on submit, create the account, pair, swap the key, revoke the old."""
        entry: ConfigEntry | None = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        old = ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS])
        errors: dict[str, str] = {}
        placeholders = {"title": entry.title, "user": old.user, "error": ""}
        if user_input is not None:
            connection = {
                key: value
                for key, value in entry.data.items()
                if key not in (CONF_CREDENTIALS, CONF_DEDICATED_ACCOUNT)
            }
            try:
                key = await async_take_own_account(self.hass, connection, identity_of(old), old)
            except AccountsFullError:
                errors["base"] = "too_many_users"
            except GatewayKeyChangedError:
                return self.async_abort(reason="gateway_key_changed")
            except RayzigError as err:
                errors["base"] = "cannot_connect"
                placeholders["error"] = str(err) or type(err).__name__
            else:
                self.hass.config_entries.async_update_entry(
                    entry,
                    data={
                        **connection,
                        CONF_CREDENTIALS: key.credentials.to_dict(),
                        CONF_DEDICATED_ACCOUNT: True,
                    },
                )
                await self.hass.config_entries.async_reload(entry.entry_id)
                await async_revoke_key(connection, old)
                return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders=placeholders,
        )
