"""Options-flow steps that need a System user: firmware install, Administrator account.

Home Assistant's own key is an Administrator's (:mod:`.account`): it may not install firmware or
manage Administrator and System accounts (PROTOCOL.md §7.2). For those the user types a System
user's name and password here, at the time; :func:`.account.async_system_session` pairs a
temporary key with them for this one operation and revokes it afterwards. Nothing is stored: the
password lives in the flow only until the install has started.
"""

from __future__ import annotations

import asyncio
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState, ConfigFlowResult, OptionsFlow
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from rayzig_core import (
    ClientCredentials,
    FirmwareError,
    FirmwarePart,
    InvalidRequestError,
    PasswordRejectedError,
    RayzigError,
    UserLevel,
)

from .account import NotSystemUserError, async_system_session, identity_of
from .config_flow_base import CONF_PASSWORD, CONF_USERNAME, DEFAULT_USER, TEXT_SELECTOR, error_key
from .const import CONF_CONNECTION, CONF_CREDENTIALS
from .data import RayzigData
from .firmware import RayzigFirmwareCoordinator, is_newer
from .passwords import generate_password
from .repairs import FIRMWARE_PART_NAMES

CONF_PART = "part"
CONF_NAME = "name"

_PASSWORD_SELECTOR = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)


class SystemSteps(OptionsFlow):
    """``install_firmware`` and ``add_administrator``, each with a System user's credentials."""

    _install: asyncio.Task[None] | None = None
    _install_error: str | None = None
    _install_part: FirmwarePart | None = None

    def _firmware(self) -> RayzigFirmwareCoordinator | None:
        entry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            return None
        runtime: RayzigData = entry.runtime_data
        return runtime.firmware

    def _installable(self, firmware: RayzigFirmwareCoordinator) -> list[FirmwarePart]:
        """Parts whose newest signed release is newer than the installed firmware."""
        return [
            part
            for part, release in (firmware.data or {}).items()
            if release is not None and is_newer(release, firmware.installed(part))
        ]

    async def async_step_install_firmware(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a System user and the part; install in the background, then say how it went."""
        if self._install is not None:
            if not self._install.done():
                return self._progress()
            return self.async_show_progress_done(next_step_id="install_finished")
        firmware = self._firmware()
        if firmware is None:
            return self.async_abort(reason="no_update_server")
        parts = self._installable(firmware)
        if not parts:
            return self.async_abort(reason="firmware_up_to_date")
        errors: dict[str, str] = {}
        if self._install_error is not None:
            errors["base"], self._install_error = self._install_error, None
        elif user_input is not None:
            part = FirmwarePart[str(user_input[CONF_PART])]
            self._install_part = part
            self._install = self.hass.async_create_task(
                self._async_install(
                    firmware,
                    part,
                    str(user_input[CONF_USERNAME]).strip(),
                    str(user_input[CONF_PASSWORD]),
                )
            )
            return self._progress()
        schema = vol.Schema(
            {
                vol.Required(CONF_PART, default=parts[0].name): SelectSelector(
                    SelectSelectorConfig(options=[part.name for part in parts])
                ),
                vol.Required(CONF_USERNAME, default=DEFAULT_USER): TEXT_SELECTOR,
                vol.Required(CONF_PASSWORD): _PASSWORD_SELECTOR,
            }
        )
        return self.async_show_form(step_id="install_firmware", data_schema=schema, errors=errors)

    def _progress(self) -> ConfigFlowResult:
        part = self._install_part
        assert part is not None
        return self.async_show_progress(
            step_id="install_firmware",
            progress_action="install_firmware",
            progress_task=self._install,
            description_placeholders={"part": FIRMWARE_PART_NAMES[part]},
        )

    async def _async_install(
        self, firmware: RayzigFirmwareCoordinator, part: FirmwarePart, user: str, password: str
    ) -> None:
        """Sign in as the System user, install, revoke the temporary key; errors for the form."""
        entry = self.config_entry
        identity = identity_of(ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS]))
        try:
            async with async_system_session(entry.data, identity, user, password) as client:
                del password
                await firmware.async_install(part, lambda _: None, client)
        except NotSystemUserError:
            self._install_error = "not_system_user"
        except FirmwareError:
            self._install_error = "firmware_refused"
        except RayzigError as err:
            self._install_error = error_key(err, str(entry.data[CONF_CONNECTION]))
        else:
            await entry.runtime_data.coordinator.async_refresh()
            firmware.async_check_installed()

    async def async_step_install_finished(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The install ended: installed, or back to the form with the reason."""
        self._install = None
        if self._install_error is not None:
            return await self.async_step_install_firmware()
        part = self._install_part
        assert part is not None
        firmware = self._firmware()
        installed = firmware.installed(part) if firmware is not None else None
        return self.async_abort(
            reason="firmware_installed",
            description_placeholders={
                "part": FIRMWARE_PART_NAMES[part],
                "version": installed.version if installed is not None else "?",
            },
        )

    async def async_step_add_administrator(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Create an Administrator account with a generated initial password, shown once here."""
        errors: dict[str, str] = {}
        entry = self.config_entry
        if user_input is not None:
            name = str(user_input[CONF_NAME]).strip()
            identity = identity_of(ClientCredentials.from_dict(entry.data[CONF_CREDENTIALS]))
            initial = await self.hass.async_add_executor_job(
                generate_password, name, identity.serial
            )
            user, password = str(user_input[CONF_USERNAME]).strip(), str(user_input[CONF_PASSWORD])
            try:
                async with async_system_session(entry.data, identity, user, password) as client:
                    await client.add_user(name, UserLevel.ADMINISTRATOR, initial)
            except NotSystemUserError:
                errors["base"] = "not_system_user"
            except (InvalidRequestError, PasswordRejectedError):
                errors[CONF_NAME] = "name_refused"
            except RayzigError as err:
                errors["base"] = error_key(err, str(entry.data[CONF_CONNECTION]))
            else:
                # Shown once, never stored: flow results are not recorded (as add_user's response).
                return self.async_abort(
                    reason="administrator_added",
                    description_placeholders={"name": name, "password": initial},
                )
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): TEXT_SELECTOR,
                vol.Required(CONF_USERNAME, default=DEFAULT_USER): TEXT_SELECTOR,
                vol.Required(CONF_PASSWORD): _PASSWORD_SELECTOR,
            }
        )
        return self.async_show_form(step_id="add_administrator", data_schema=schema, errors=errors)
