"""Security advisories in Repairs: signed advisories from a real update server, the virtual gateway.

A signed advisory that names the installed version of a firmware part raises a repair issue (its
severity mapped to the issue's, translated, naming the advisory, part, versions and link) that
clears when a fixed version is installed or the advisory is withdrawn. A tampered or wrongly signed
advisory refuses the catalogue: no repair from it, the last verified ones stay, and the log says
which advisory failed (PROTOCOL.md §10.2; ETSI EN 303 645 5.2, 5.3-11).
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import aiohttp
import pytest
from homeassistant.components.update import ATTR_RELEASE_SUMMARY
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import DOMAIN
from custom_components.rayzig.diagnostics import async_get_config_entry_diagnostics
from custom_components.rayzig.firmware import RayzigFirmwareCoordinator
from custom_components.rayzig.repairs import advisory_issue_id
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.firmware import (
    AdvisorySeverity,
    FirmwareAdvisory,
    UpdateServerClient,
    VersionRange,
    generate_signing_key,
    install_firmware,
    publish_advisory,
    withdraw_advisory,
)
from rayzig_core.models import FirmwarePart
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector

from .runtime_helpers import loaded_entry, wait_for
from .test_update import (
    UpdateServer,
    entry_with_options,
    gateway_factory,  # noqa: F401 - fixture: the gateway trusts the test publisher
    install,
    installed_on_gateway,
    publish,
    signing_key,  # noqa: F401 - fixture: the publisher's key pair
    update_entity,
    update_server,  # noqa: F401 - fixture: a real update server on loopback
)

RZSA_1 = FirmwareAdvisory(
    identifier="RZSA-2026-0001",
    hardware="RZ-GW1",
    part=FirmwarePart.RAYZIG,
    affected=(VersionRange(None, "2.4.1"),),
    fixed_in="2.5.0",
    severity=AdvisorySeverity.HIGH,
    summary="A forged mesh beacon can make the Rayzig radio join a rogue mesh.",
    url="https://rayzig.dev/security/RZSA-2026-0001",
)
RAXMEGA_CRITICAL = FirmwareAdvisory(
    identifier="RZSA-2026-0002",
    hardware="RZ-GW1",
    part=FirmwarePart.RAXMEGA,
    affected=(VersionRange("1.9.0", "1.9.0"), VersionRange("1.8.0", "1.8.4")),
    fixed_in="1.9.1",
    severity=AdvisorySeverity.CRITICAL,
    summary="The Raxmega bootloader accepts an unsigned recovery image.",
    url="https://rayzig.dev/security/RZSA-2026-0002",
)
TFT_FIXED_ALREADY = FirmwareAdvisory(
    identifier="RZSA-2025-0007",
    hardware="RZ-GW1",
    part=FirmwarePart.TFT,
    affected=(VersionRange("1.0.0", "1.0.6"),),
    fixed_in="1.0.7",
    severity=AdvisorySeverity.LOW,
    summary="The display showed the installer's name on the lock screen.",
    url="https://rayzig.dev/security/RZSA-2025-0007",
)


def issue_of(
    hass: HomeAssistant, entry: MockConfigEntry, advisory: FirmwareAdvisory
) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, advisory_issue_id(entry.entry_id, advisory))


def advisory_issues(hass: HomeAssistant) -> list[str]:
    return sorted(
        key for domain, key in ir.async_get(hass).issues if domain == DOMAIN and "advisory" in key
    )


def firmware_of(entry: MockConfigEntry) -> RayzigFirmwareCoordinator:
    firmware = entry.runtime_data.firmware
    assert isinstance(firmware, RayzigFirmwareCoordinator)
    return firmware


async def rendered(hass: HomeAssistant, issue: ir.IssueEntry, language: str) -> tuple[str, str]:
    """The issue's title and description as Home Assistant shows them in ``language``."""
    strings = await async_get_translations(hass, language, "issues", {DOMAIN})
    prefix = f"component.{DOMAIN}.issues.{issue.translation_key}"
    placeholders = issue.translation_placeholders or {}
    return (
        strings[f"{prefix}.title"].format(**placeholders),
        strings[f"{prefix}.description"].format(**placeholders),
    )


async def test_repair_names_the_advisory_and_clears_after_the_fix_is_installed(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,  # noqa: F811 - the fixture imported above
) -> None:
    """Rayzig 2.4.1 is named by RZSA-2026-0001 until 2.5.0 is installed from the update entity."""
    directory = update_server.directory
    publish(gateway, directory, update_server.private, version="2.5.0", security_version=4)
    for advisory in (RZSA_1, RAXMEGA_CRITICAL, TFT_FIXED_ALREADY):
        publish_advisory(directory, update_server.private, advisory)
    entry = entry_with_options(config_entry, update_server.url, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch):
        issue = issue_of(hass, entry, RZSA_1)
        assert issue is not None
        assert issue.severity is ir.IssueSeverity.ERROR  # high
        assert issue.translation_key == "firmware_advisory_high"
        assert not issue.is_fixable  # the fix is the update entity
        assert issue.learn_more_url == RZSA_1.url
        assert issue.translation_placeholders == {
            "title": entry.title,
            "advisory": "RZSA-2026-0001",
            "part": "Rayzig",
            "installed": "2.4.1",
            "fixed_in": "2.5.0",
            "summary": RZSA_1.summary,
            "url": RZSA_1.url,
        }
        title, description = await rendered(hass, issue, "en")
        assert title == f"High-severity vulnerability in the Rayzig firmware of {entry.title} " + (
            "(RZSA-2026-0001)"
        )
        for text in ("**RZSA-2026-0001**", "version 2.4.1 is installed", RZSA_1.summary,
                     "Version 2.5.0 fixes it", RZSA_1.url):  # fmt: skip
            assert text in description
        title, description = await rendered(hass, issue, "de")
        assert title.startswith("Sicherheitslücke mit hohem Schweregrad in der Rayzig-Firmware")
        assert "Version 2.5.0 behebt die Lücke" in description
        critical = issue_of(hass, entry, RAXMEGA_CRITICAL)
        assert critical is not None
        assert critical.severity is ir.IssueSeverity.CRITICAL
        assert issue_of(hass, entry, TFT_FIXED_ALREADY) is None  # 1.0.7 is the fixed version

        # The update entity says which advisories the release settles, and links them.
        entity = update_entity(hass, FirmwarePart.RAYZIG)
        state = hass.states.get(entity.entity_id)
        assert state is not None
        summary = state.attributes[ATTR_RELEASE_SUMMARY].split("\n")
        assert summary[0].startswith("Installing restarts the Rayzig radio")  # still first
        assert summary[2] == "Fixes security advisories: RZSA-2026-0001."
        assert summary[4].startswith("Rayzig 2.5.0")
        notes = await entity.async_release_notes() or ""
        assert f"- [RZSA-2026-0001]({RZSA_1.url}): {RZSA_1.summary}" in notes
        raxmega = update_entity(hass, FirmwarePart.RAXMEGA)
        assert await raxmega.async_release_notes() is None  # no fix published yet

        await install(hass, entity.entity_id)
        await hass.async_block_till_done()
        assert installed_on_gateway(gateway, FirmwarePart.RAYZIG).version == "2.5.0"
        assert issue_of(hass, entry, RZSA_1) is None
        assert issue_of(hass, entry, RAXMEGA_CRITICAL) is not None  # not fixed by that


async def test_install_elsewhere_or_withdrawal_clears_the_repair(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,  # noqa: F811
) -> None:
    """An install by another client (FirmwareChanged) and a withdrawn advisory both settle it."""
    directory = update_server.directory
    publish(gateway, directory, update_server.private, version="2.5.0", security_version=4)
    publish_advisory(directory, update_server.private, RZSA_1)
    publish_advisory(directory, update_server.private, RAXMEGA_CRITICAL)
    entry = entry_with_options(config_entry, update_server.url, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch):
        assert issue_of(hass, entry, RZSA_1) is not None
        other = RayzigClient(
            TcpConnector("127.0.0.1", gateway.port),
            ClientCredentials.from_dict(config_entry.data["credentials"]),
        )
        await other.connect()
        try:
            async with aiohttp.ClientSession() as session:
                server = UpdateServerClient(session, update_server.url, (update_server.public,))
                latest = await server.latest_for(FirmwarePart.RAYZIG)
                assert latest is not None
                await install_firmware(other, latest, await server.fetch_image(latest))
        finally:
            await other.close()
        await wait_for(hass, lambda: issue_of(hass, entry, RZSA_1) is None)

        assert issue_of(hass, entry, RAXMEGA_CRITICAL) is not None
        assert withdraw_advisory(directory, RAXMEGA_CRITICAL.identifier)
        await firmware_of(entry).async_refresh()
        assert advisory_issues(hass) == []


async def test_tampered_or_wrongly_signed_advisory_raises_no_repair(
    *,
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The catalogue is refused whole and says why; raised repairs stay as last verified."""
    directory = update_server.directory
    publish_advisory(directory, update_server.private, RZSA_1)
    catalogue = directory / "catalogue.json"
    good = catalogue.read_text()
    document = json.loads(good)
    signed = bytearray(base64.b64decode(document["advisories"][0]["advisory"]))
    signed[signed.index(b"2.5.0")] = ord("9")  # "fixed in 9.5.0": now 2.5.0 would not settle it
    document["advisories"][0]["advisory"] = base64.b64encode(bytes(signed)).decode()
    catalogue.write_text(json.dumps(document))
    entry = entry_with_options(config_entry, update_server.url, update_server.public)
    caplog.set_level(logging.ERROR)
    async with loaded_entry(hass, entry, monkeypatch):
        firmware = firmware_of(entry)
        assert firmware.last_update_success is False
        assert advisory_issues(hass) == []  # nothing from an advisory that does not verify
        assert firmware.advisories == []
        assert "advisory 0 (RZSA-2026-0001): signature does not verify" in caplog.text
        assert "was refused" in str(firmware.last_exception)
        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        assert "was refused" in diagnostics["firmware"]["last_error"]
        state = hass.states.get(update_entity(hass, FirmwarePart.RAYZIG).entity_id)
        assert state is not None
        assert state.state == STATE_UNAVAILABLE

        # A good catalogue raises the repair; a wrongly signed advisory then leaves it standing.
        catalogue.write_text(good)
        await firmware.async_refresh()
        assert advisory_issues(hass) == [advisory_issue_id(entry.entry_id, RZSA_1)]
        caplog.clear()
        publish_advisory(directory, generate_signing_key()[0], RAXMEGA_CRITICAL)
        await firmware.async_refresh()
        assert firmware.last_update_success is False
        assert "advisory 1 (RZSA-2026-0002): signature does not verify" in caplog.text
        assert advisory_issues(hass) == [advisory_issue_id(entry.entry_id, RZSA_1)]
        assert firmware.advisories == [RZSA_1]
        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        assert [a["identifier"] for a in diagnostics["firmware"]["advisories"]] == [
            RZSA_1.identifier
        ]

        # Reloaded while the catalogue is refused: nothing verified yet, so nothing is settled.
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        reloaded = firmware_of(entry)
        await wait_for(hass, lambda: not reloaded.last_update_success)
        reloaded.async_check_installed()
        assert reloaded.advisories == []
        assert advisory_issues(hass) == [advisory_issue_id(entry.entry_id, RZSA_1)]


async def test_removing_the_update_server_clears_its_repairs(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,  # noqa: F811
) -> None:
    """A reload keeps the repairs; a reload without an update server clears them."""
    publish_advisory(update_server.directory, update_server.private, RZSA_1)
    publish(gateway, update_server.directory, update_server.private, security_fix=True)
    entry = entry_with_options(config_entry, update_server.url, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch):
        expected = [advisory_issue_id(entry.entry_id, RZSA_1)]
        assert advisory_issues(hass) == expected
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert advisory_issues(hass) == expected
        hass.config_entries.async_update_entry(entry, options={})
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.runtime_data.firmware is None
        assert advisory_issues(hass) == []
        # What is left is the offer to move off the installer's key (not a firmware repair).
        left = [key for domain, key in ir.async_get(hass).issues if domain == DOMAIN]
        assert left == [f"own_account_{entry.entry_id}"]


def test_every_severity_has_its_issue_text() -> None:
    """Each advisory severity maps to an issue severity and a translated issue."""
    strings = json.loads(
        (Path(__file__).parents[2] / "custom_components" / DOMAIN / "strings.json").read_text()
    )
    for severity in AdvisorySeverity:
        issue = strings["issues"][f"firmware_advisory_{severity.name.lower()}"]
        assert severity.name.lower() in issue["description"]
        for placeholder in ("{advisory}", "{part}", "{installed}", "{fixed_in}", "{url}"):
            assert placeholder in issue["description"] + issue["title"]
