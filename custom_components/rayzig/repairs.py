"""Repair issues of the Rayzig integration.

``own_account`` (fixable, :mod:`.repair_own_account`): the entry holds a System user's key; its
fix flow moves it to Home Assistant's own Administrator account. The others are not fixable from
Home Assistant alone.

``gateway_key_changed``: the gateway presented another key than the pinned one; the user must check
the fingerprint on its label and add it again. ``weak_password``: the gateway still holds a password
that fails today's policy for the user Home Assistant is paired as. ``firmware_security_update``:
raised by the firmware coordinator when a security fix is available for a firmware part.
``firmware_advisory_<severity>``: a signed security advisory names the installed version of a part;
one issue per advisory and part, cleared when a version outside it is installed or the advisory is
withdrawn. ``revoke_client``: a removed entry's client key could not be revoked because the gateway
was away.
"""

from __future__ import annotations

from collections.abc import Iterable

from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from rayzig_core import (
    AdvisorySeverity,
    FirmwareAdvisory,
    FirmwarePart,
    FirmwareVersion,
    GatewayInfo,
)

from .const import DOMAIN

ISSUE_GATEWAY_KEY_CHANGED = "gateway_key_changed"
ISSUE_WEAK_PASSWORD = "weak_password"  # noqa: S105 - an issue id, not a password
ISSUE_FIRMWARE_SECURITY_UPDATE = "firmware_security_update"
ISSUE_REVOKE_CLIENT = "revoke_client"
ISSUE_FIRMWARE_ADVISORY = "firmware_advisory"
"""Issue ids ``firmware_advisory_<entry>_<part>_<advisory>``; translation keys add the severity."""

ADVISORY_ISSUE_SEVERITY: dict[AdvisorySeverity, ir.IssueSeverity] = {
    AdvisorySeverity.LOW: ir.IssueSeverity.WARNING,
    AdvisorySeverity.MEDIUM: ir.IssueSeverity.WARNING,
    AdvisorySeverity.HIGH: ir.IssueSeverity.ERROR,
    AdvisorySeverity.CRITICAL: ir.IssueSeverity.CRITICAL,
}
"""How an advisory's severity shows in Repairs (Home Assistant has three levels)."""

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


def advisory_issue_id(entry_id: str, advisory: FirmwareAdvisory) -> str:
    """Issue id of ``advisory`` for the part it names, on one config entry."""
    suffix = f"{advisory.part.name.lower()}_{advisory.identifier.lower()}"
    return issue_id(ISSUE_FIRMWARE_ADVISORY, entry_id, suffix)


@callback
def async_update_advisory_issues(
    hass: HomeAssistant,
    entry: ConfigEntry,
    found: Iterable[tuple[FirmwareAdvisory, FirmwareVersion]],
) -> None:
    """Raise an issue per advisory naming an installed version; clear the entry's other ones.

    ``found`` pairs each advisory with the installed version it names (``rayzig_core.affecting``).
    Not fixable here: the fix is installing a fixed version from the part's update entity, which
    says what the install interrupts first; the issue links the full advisory.
    """
    raised: set[str] = set()
    for advisory, installed in found:
        identifier = advisory_issue_id(entry.entry_id, advisory)
        raised.add(identifier)
        ir.async_create_issue(
            hass,
            DOMAIN,
            identifier,
            is_fixable=False,
            learn_more_url=advisory.url,
            severity=ADVISORY_ISSUE_SEVERITY[advisory.severity],
            translation_key=f"{ISSUE_FIRMWARE_ADVISORY}_{advisory.severity.name.lower()}",
            translation_placeholders={
                "title": entry.title,
                "advisory": advisory.identifier,
                "part": FIRMWARE_PART_NAMES[advisory.part],
                "installed": installed.version,
                "fixed_in": advisory.fixed_in,
                "summary": advisory.summary,
                "url": advisory.url,
            },
        )
    prefix = issue_id(ISSUE_FIRMWARE_ADVISORY, entry.entry_id) + "_"
    for domain, identifier in list(ir.async_get(hass).issues):
        if domain == DOMAIN and identifier.startswith(prefix) and identifier not in raised:
            ir.async_delete_issue(hass, DOMAIN, identifier)


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


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The fix flow of a fixable issue: only ``own_account`` is one."""
    # Imported here: the flow needs rayzig's account helpers, which import services.
    from .repair_own_account import ATTR_ENTRY_ID, OwnAccountRepairFlow  # noqa: PLC0415

    return OwnAccountRepairFlow(str((data or {})[ATTR_ENTRY_ID]))
