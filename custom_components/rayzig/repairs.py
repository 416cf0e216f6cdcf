"""Repair issues of the Rayzig integration (none is fixable from Home Assistant alone).

``gateway_key_changed``: the gateway presented another key than the pinned one; the user must check
the fingerprint on its label and add it again. ``weak_password``: the gateway still holds a password
that fails today's policy for the user Home Assistant is paired as. ``firmware_security_update``:
raised by the firmware coordinator when a security fix is available for a firmware part.
``revoke_client``: a removed entry's client key could not be revoked because the gateway was away.
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from rayzig_core import FirmwarePart, GatewayInfo

from .const import DOMAIN

ISSUE_GATEWAY_KEY_CHANGED = "gateway_key_changed"
ISSUE_WEAK_PASSWORD = "weak_password"  # noqa: S105 - an issue id, not a password
ISSUE_FIRMWARE_SECURITY_UPDATE = "firmware_security_update"
ISSUE_REVOKE_CLIENT = "revoke_client"

FIRMWARE_PART_NAMES: dict[FirmwarePart, str] = {
    FirmwarePart.RAYZIG: "Rayzig",
    FirmwarePart.RAXMEGA: "Raxmega",
    FirmwarePart.RAYDAL: "Raydal",
    FirmwarePart.WBXMEGA: "WBxMega",
    FirmwarePart.TFT: "TFT display",
}


def issue_id(kind: str, entry_id: str, suffix: str | None = None) -> str:
    """Issue id of one kind of issue for one config entry (and part, where it applies)."""
    return f"{kind}_{entry_id}" if suffix is None else f"{kind}_{entry_id}_{suffix}"


@callback
def async_raise_gateway_key_changed(
    hass: HomeAssistant, entry: ConfigEntry, pinned: str, presented: str
) -> None:
    """Raise the issue: the gateway presented another key, nothing works until re-added."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(ISSUE_GATEWAY_KEY_CHANGED, entry.entry_id),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_GATEWAY_KEY_CHANGED,
        translation_placeholders={"title": entry.title, "pinned": pinned, "presented": presented},
    )


@callback
def async_clear_gateway_key_changed(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Clear the issue: the pinned key works again (or the entry was re-added)."""
    ir.async_delete_issue(hass, DOMAIN, issue_id(ISSUE_GATEWAY_KEY_CHANGED, entry.entry_id))


@callback
def async_update_weak_password_issue(
    hass: HomeAssistant, entry: ConfigEntry, info: GatewayInfo
) -> None:
    """Raise or clear the weak-password issue from what the gateway reports."""
    identifier = issue_id(ISSUE_WEAK_PASSWORD, entry.entry_id)
    if not info.weak_password:
        ir.async_delete_issue(hass, DOMAIN, identifier)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        identifier,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_WEAK_PASSWORD,
        translation_placeholders={"title": entry.title, "user": info.user},
    )


@callback
def async_raise_security_update(
    hass: HomeAssistant, entry: ConfigEntry, part: FirmwarePart, version: str
) -> None:
    """Raise the issue: a firmware release with a security fix is available for ``part``."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(ISSUE_FIRMWARE_SECURITY_UPDATE, entry.entry_id, part.name.lower()),
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_FIRMWARE_SECURITY_UPDATE,
        translation_placeholders={
            "title": entry.title,
            "part": FIRMWARE_PART_NAMES[part],
            "version": version,
        },
    )


@callback
def async_clear_security_update(
    hass: HomeAssistant, entry: ConfigEntry, part: FirmwarePart
) -> None:
    """Clear the issue: the security fix for ``part`` is installed (or no longer offered)."""
    ir.async_delete_issue(
        hass,
        DOMAIN,
        issue_id(ISSUE_FIRMWARE_SECURITY_UPDATE, entry.entry_id, part.name.lower()),
    )


@callback
def async_raise_revoke_client(
    hass: HomeAssistant, entry: ConfigEntry, client_id: int, user: str
) -> None:
    """Tell the user how to revoke a removed entry's key on the gateway by hand."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(ISSUE_REVOKE_CLIENT, entry.entry_id),
        is_fixable=False,
        is_persistent=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_REVOKE_CLIENT,
        translation_placeholders={
            "title": entry.title,
            "client_id": str(client_id),
            "user": user,
        },
    )


@callback
def async_delete_entry_issues(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Drop every issue of a removed entry except the revocation reminder."""
    registry = ir.async_get(hass)
    for domain, identifier in list(registry.issues):
        if (
            domain == DOMAIN
            and entry.entry_id in identifier
            and not identifier.startswith(ISSUE_REVOKE_CLIENT)
        ):
            ir.async_delete_issue(hass, DOMAIN, identifier)
