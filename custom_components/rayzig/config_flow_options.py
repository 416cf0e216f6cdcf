"""Options flow of a Rayzig entry: event window, battery threshold, poll interval, update server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol
from homeassistant.config_entries import ConfigFlowResult
from homeassistant.core import callback
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType

from .config_flow_base import TEXT_SELECTOR, number_selector
from .config_flow_system import SystemSteps
from .const import (
    CONF_EVENT_IMPORT_WINDOW,
    CONF_LOW_BATTERY_THRESHOLD,
    CONF_POLL_INTERVAL,
    CONF_UPDATE_SERVER_URL,
    CONF_UPDATE_SIGNING_KEY,
    DEFAULT_EVENT_IMPORT_WINDOW,
    DEFAULT_LOW_BATTERY_THRESHOLD,
    DEFAULT_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
)

MAX_EVENT_IMPORT_WINDOW = 8192
MAX_POLL_INTERVAL = 3600
SIGNING_KEY_HEX_LENGTH = 64


class RayzigOptionsFlow(SystemSteps):
    """Settings, and the operations that need a System user's password (``install_firmware``).

    Settings: event import window, battery threshold, poll interval, the firmware update server.
    The System operations are in :mod:`.config_flow_system`.

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
        """A menu: the settings, or what needs a System password (firmware, Administrator)."""
        return self.async_show_menu(
            step_id="init", menu_options=["settings", "install_firmware", "add_administrator"]
        )

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
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
                ): number_selector(0, MAX_EVENT_IMPORT_WINDOW),
                vol.Required(
                    CONF_LOW_BATTERY_THRESHOLD,
                    default=current.get(CONF_LOW_BATTERY_THRESHOLD, DEFAULT_LOW_BATTERY_THRESHOLD),
                ): number_selector(0, 100, "%"),
                vol.Required(
                    CONF_POLL_INTERVAL,
                    default=current.get(CONF_POLL_INTERVAL, DEFAULT_POLL_INTERVAL),
                ): number_selector(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL, "s"),
                vol.Optional(
                    CONF_UPDATE_SERVER_URL,
                    description={"suggested_value": current.get(CONF_UPDATE_SERVER_URL)},
                ): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
                vol.Optional(
                    CONF_UPDATE_SIGNING_KEY,
                    description={"suggested_value": current.get(CONF_UPDATE_SIGNING_KEY)},
                ): TEXT_SELECTOR,
            }
        )
        return self.async_show_form(step_id="settings", data_schema=schema, errors=errors)
