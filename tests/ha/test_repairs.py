"""Repair issues: firmware security updates raised by helpers, and their translations."""

from __future__ import annotations

import json
import re
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.repairs import (
    async_clear_security_update,
    async_delete_entry_issues,
    async_raise_revoke_client,
    async_raise_security_update,
    issue_id,
)
from rayzig_core.models import FirmwarePart

COMPONENT = Path(__file__).parents[2] / "custom_components" / DOMAIN
ISSUES = (
    "firmware_advisory_low",
    "firmware_advisory_medium",
    "firmware_advisory_high",
    "firmware_advisory_critical",
    "firmware_security_update",
    "gateway_key_changed",
    "revoke_client",
    "weak_password",
)


async def test_security_update_issue(hass: HomeAssistant) -> None:
    """The firmware coordinator raises one issue per part and clears it once installed."""
    entry = MockConfigEntry(domain=DOMAIN, title="Rayzig home")
    entry.add_to_hass(hass)
    issues = ir.async_get(hass)
    async_raise_security_update(hass, entry, FirmwarePart.RAXMEGA, "2.1.0")
    identifier = issue_id("firmware_security_update", entry.entry_id, "raxmega")
    issue = issues.async_get_issue(DOMAIN, identifier)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert not issue.is_fixable
    assert issue.translation_placeholders == {
        "title": "Rayzig home",
        "part": "Raxmega",
        "version": "2.1.0",
    }
    async_clear_security_update(hass, entry, FirmwarePart.RAXMEGA)
    assert issues.async_get_issue(DOMAIN, identifier) is None


async def test_removed_entry_keeps_only_the_revocation_reminder(hass: HomeAssistant) -> None:
    """Removing an entry drops its issues except the one telling how to revoke its key."""
    entry = MockConfigEntry(domain=DOMAIN, title="Rayzig home")
    entry.add_to_hass(hass)
    async_raise_security_update(hass, entry, FirmwarePart.TFT, "1.2")
    async_raise_revoke_client(hass, entry, 4, "installer")
    async_delete_entry_issues(hass, entry)
    remaining = [key for (domain, key) in ir.async_get(hass).issues if domain == DOMAIN]
    assert remaining == [issue_id("revoke_client", entry.entry_id)]


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", text))


def test_translations_complete() -> None:
    """strings.json equals en.json; German has every key with the same placeholders."""
    strings = json.loads((COMPONENT / "strings.json").read_text())
    english = json.loads((COMPONENT / "translations" / "en.json").read_text())
    german = json.loads((COMPONENT / "translations" / "de.json").read_text())
    assert strings == english

    def walk(en: object, de: object, path: str) -> None:
        if isinstance(en, dict):
            assert isinstance(de, dict), path
            assert en.keys() == de.keys(), path
            for key in en:
                walk(en[key], de[key], f"{path}.{key}")
        else:
            assert isinstance(de, str), path
            assert _placeholders(str(en)) == _placeholders(de), path

    walk(english, german, "")
    for issue in ISSUES:
        assert english["issues"][issue]["title"]
        assert english["issues"][issue]["description"]
    assert "rayzig clients revoke {client_id}" in english["issues"]["revoke_client"]["description"]
    assert "rayzig passwd" in english["issues"]["weak_password"]["description"]
