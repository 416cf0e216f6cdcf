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

from homeassistant.config_entries import ConfigEntry, OptionsFlow
from homeassistant.core import callback

from .config_flow_connection import ConnectionSteps
from .config_flow_options import RayzigOptionsFlow
from .config_flow_reauth import ReauthSteps
from .const import DOMAIN


class RayzigConfigFlow(ConnectionSteps, ReauthSteps, domain=DOMAIN):
    """Add a Rayzig gateway from the UI."""

    VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Options: event import window, battery threshold, poll interval, update server."""
        return RayzigOptionsFlow()
