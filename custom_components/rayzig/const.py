"""Constants of the Rayzig integration: domain, config-entry keys, defaults."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

DOMAIN: Final = "rayzig"
MANUFACTURER: Final = "Rayzig"

# Config-entry data (PROTOCOL.md §3.3: keys only, never the password).
CONF_CONNECTION: Final = "connection"
CONNECTION_TCP: Final = "tcp"
"""Network bridge on the single-board computer (or the virtual gateway)."""
CONNECTION_I2C: Final = "i2c"
"""Direct I2C on the single-board computer Home Assistant runs on."""
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"
CONF_I2C_BUS: Final = "i2c_bus"
CONF_I2C_ADDRESS: Final = "i2c_address"
CONF_CREDENTIALS: Final = "credentials"
"""ClientCredentials.to_dict(): client private key, pinned gateway key, user, level, client id."""

DEFAULT_PORT: Final = 7780
DEFAULT_I2C_BUS: Final = 1
DEFAULT_I2C_ADDRESS: Final = 0x42

# Options.
CONF_EVENT_IMPORT_WINDOW: Final = "event_import_window"
"""How many past events per module to import on first sync."""
CONF_LOW_BATTERY_THRESHOLD: Final = "low_battery_threshold"
"""Battery percent at or below which battery-low turns on (0 = the module's own minimum)."""
CONF_POLL_INTERVAL: Final = "poll_interval"
"""Seconds between safety-net polls; push notifications do the real work."""
CONF_UPDATE_SERVER_URL: Final = "update_server_url"
CONF_UPDATE_SIGNING_KEY: Final = "update_signing_key"
"""Hex Ed25519 public key that firmware catalogues must be signed with."""

DEFAULT_EVENT_IMPORT_WINDOW: Final = 100
DEFAULT_LOW_BATTERY_THRESHOLD: Final = 0
DEFAULT_POLL_INTERVAL: Final = 300
MIN_POLL_INTERVAL: Final = 30

EVENT_RAYZIG: Final = "rayzig_event"
"""Bus event fired once per imported event-log record, with the module's own timestamp."""
ATTR_MODULE_ID: Final = "module_id"
ATTR_OUTPUT: Final = "output"
ATTR_KIND: Final = "kind"
ATTR_USER: Final = "user"
ATTR_IS_ON: Final = "is_on"
ATTR_SEQ: Final = "seq"
ATTR_LOST: Final = "lost"
ATTR_DEVICE_ID: Final = "device_id"

STORAGE_VERSION: Final = 1
CONNECT_TIMEOUT: Final = timedelta(seconds=15)
