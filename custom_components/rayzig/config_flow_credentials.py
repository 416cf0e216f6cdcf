"""Config flow steps that pair: fingerprint, credentials and the forced new password.

The user compares the key fingerprint with the gateway's label or display (PROTOCOL.md §3.4); the
key is pinned from then on. Pairing (§3.3) with a user's password enrols a fresh client key; while
the gateway still has its factory password the flow cannot finish without a new password that
passes the policy (§6.2). Passwords are never stored, logged or raised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

import voluptuous as vol
from homeassistant.config_entries import SOURCE_REAUTH, ConfigFlowResult
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType
from homeassistant.helpers.translation import async_get_translations

from rayzig_core import (
    ClientCredentials,
    GatewayKeyChangedError,
    InvalidCredentialsError,
    PasswordChangeRequiredError,
    PasswordRejectedError,
    PolicyViolation,
    RayzigClient,
    RayzigError,
    check_password,
)

from .account import (
    CONF_DEDICATED_ACCOUNT,
    AccountsFullError,
    async_revoke_key,
    async_take_own_account,
    needs_own_account,
)
from .config_flow_base import (
    CLIENT_NAME,
    CONF_PASSWORD,
    CONF_USERNAME,
    TEXT_SELECTOR,
    RayzigFlowBase,
)
from .connection import create_connector
from .const import CONF_CREDENTIALS, DOMAIN

CONF_NEW_PASSWORD = "new_password"  # noqa: S105 - a form field name, not a password
CONF_CONFIRM_PASSWORD = "confirm_password"  # noqa: S105 - a form field name, not a password

_PASSWORD_SELECTOR = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="new-password")
)
_CURRENT_PASSWORD_SELECTOR = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)


_POLICY_CODES: Final = frozenset(str(violation) for violation in PolicyViolation)


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why the new-password form is shown again."""

    errors: dict[str, str]
    placeholders: dict[str, str]
    codes: list[str]


class CredentialsSteps(RayzigFlowBase):
    """Fingerprint, credentials and new-password steps, and finishing the flow with the keys."""

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
                vol.Required(CONF_USERNAME, default=self._user): TEXT_SELECTOR,
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
        return await self._async_finish(credentials)

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
            return await self._async_finish(self._paired)
        # The new password is set: pairing with it is an ordinary credentials attempt.
        return await self._async_pair(self._auth_step, self._user, new)

    async def _async_finish(self, signer: ClientCredentials) -> ConfigFlowResult:
        """Store Home Assistant's own key (never a System key, never a password).

        A System user's sign-in creates Home Assistant's own Administrator account and pairs
        under it (:mod:`.account`); the key the sign-in enrolled is revoked again.
        """
        self._password = None
        self._paired = None
        identity = self._identity
        assert identity is not None
        replaces = None
        if self.source == SOURCE_REAUTH and self._get_reauth_entry().data.get(
            CONF_DEDICATED_ACCOUNT
        ):
            replaces = ClientCredentials.from_dict(
                self._get_reauth_entry().data[CONF_CREDENTIALS]
            ).user
        try:
            key = await async_take_own_account(
                self.hass, self._connection, identity, signer, replaces
            )
        except AccountsFullError:
            return self._show_credentials_form(self._auth_step, {"base": "too_many_users"})
        except GatewayKeyChangedError:
            return self._abort_key_changed()
        except RayzigError as err:
            return self._show_credentials_form(self._auth_step, *self._form_error(err))
        finally:
            if needs_own_account(signer.level):
                await async_revoke_key(self._connection, signer)
        data = {CONF_CREDENTIALS: key.credentials.to_dict(), CONF_DEDICATED_ACCOUNT: key.dedicated}
        if self.source == SOURCE_REAUTH:
            return self.async_update_reload_and_abort(self._get_reauth_entry(), data_updates=data)
        return self.async_create_entry(
            title=f"Rayzig {identity.serial}", data={**self._connection, **data}
        )
