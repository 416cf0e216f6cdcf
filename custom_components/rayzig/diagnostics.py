"""Diagnostics of a Rayzig config entry: entry, site data and client counters, secrets redacted.

Keys, fingerprints, serial numbers, user names and the host are removed by key
(``async_redact_data``); the same values are then scrubbed from any free text (error messages, the
entry title) so none can slip through.
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import CONF_CREDENTIALS, CONF_HOST, CONF_UPDATE_SIGNING_KEY
from .data import RayzigConfigEntry

REDACTED = "**REDACTED**"
KEY_PATTERNS = (
    re.compile(r"\b[0-9A-Fa-f]{4}(?:-[0-9A-Fa-f]{4}){7}\b"),
    re.compile(r"\b[0-9A-Fa-f]{64}\b"),
)
"""Any key fingerprint (8 groups of 4 hex) or 32-byte key in hex, e.g. a changed gateway key."""
TO_REDACT = {
    CONF_CREDENTIALS,
    CONF_HOST,
    CONF_UPDATE_SIGNING_KEY,
    "client_private_key",
    "gateway_public_key",
    "fingerprint",
    "serial",
    "user",
    "title",
    "unique_id",
}


def _plain(value: Any) -> Any:
    """Turn dataclasses, enums and tuples into JSON-friendly values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return value


def _scrub(value: Any, secrets: set[str]) -> Any:
    """Replace every occurrence of a secret inside strings, however deeply nested."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        for pattern in KEY_PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: RayzigConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    runtime = entry.runtime_data
    client = runtime.client
    site = runtime.coordinator.data
    secrets: set[str] = {site.info.serial, site.info.fingerprint, site.info.user}
    secrets.update(module.serial for module in site.modules.values())
    if (credentials := client.credentials) is not None:
        secrets.update(
            {
                credentials.serial,
                credentials.user,
                credentials.gateway_fingerprint,
                credentials.client_fingerprint,
                credentials.client_private_key.hex(),
                credentials.gateway_public_key.hex(),
            }
        )
    if host := entry.data.get(CONF_HOST):
        secrets.add(str(host))
    secrets.discard("")

    firmware = runtime.firmware
    data = {
        "entry": {
            "title": entry.title,
            "unique_id": entry.unique_id,
            "data": dict(entry.data),
            "options": dict(entry.options),
        },
        "connection": {
            "state": client.state.name.lower(),
            "stats": _plain(client.stats),
            "auth_error": str(client.auth_error) if client.auth_error else None,
            "level": credentials.level.name.lower() if credentials else None,
            "client_id": credentials.client_id if credentials else None,
        },
        "coordinator": {
            "last_update_success": runtime.coordinator.last_update_success,
            "update_interval": str(runtime.coordinator.update_interval),
        },
        "site": _plain(site),
        "events": {"cursors": _plain(runtime.events.cursors), "imported": runtime.events.imported},
        "firmware": None
        if firmware is None
        else {
            "last_update_success": firmware.last_update_success,
            "catalogue": _plain(firmware.data),
            "advisories": _plain(firmware.advisories),
            "last_error": None if firmware.last_exception is None else str(firmware.last_exception),
        },
    }
    return _scrub(async_redact_data(data, TO_REDACT), secrets)  # type: ignore[no-any-return]
