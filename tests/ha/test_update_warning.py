"""ETSI EN 303 645 5.3-12: before installing, the update entity says what the install interrupts.

For every firmware part with a newer signed release, the first line of the update entity's release
summary (and of its release notes, which Home Assistant's update dialog shows instead) warns that
installing restarts the part — the Rayzig radio rejoins the mesh, the TFT display goes blank — and
that outputs keep their state. The warning is in Home Assistant's language (English and German
here), survives the summary's 255-character limit, and is absent only when there is nothing to
install.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from homeassistant.components.update.const import ATTR_RELEASE_SUMMARY
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_platform
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import (
    CONF_UPDATE_SERVER_URL,
    CONF_UPDATE_SIGNING_KEY,
    DOMAIN,
)
from custom_components.rayzig.update import (
    RELEASE_SUMMARY_MAX,
    RayzigFirmwareUpdate,
    default_install_warning,
)
from rayzig_core.firmware import generate_signing_key, publish_image, serve
from rayzig_core.models import FirmwarePart
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import loaded_entry

COMPONENT = Path(__file__).parents[2] / "custom_components" / "rayzig"
LONG_NOTES = "Fixes and improvements. " * 40


def translated_warnings(language: str) -> dict[FirmwarePart, str]:
    """The warning per part, as the integration's translation file has it."""
    data = json.loads((COMPONENT / "translations" / f"{language}.json").read_text("utf-8"))
    return {
        part: data["entity"]["update"][f"firmware_{part.name.lower()}"]["state_attributes"][
            "release_summary"
        ]["state"]["install_restarts"]
        for part in FirmwarePart
    }


@pytest.fixture
async def catalogue(
    tmp_path: Path, socket_enabled: None, gateway: GatewayThread
) -> AsyncIterator[tuple[str, bytes, Path]]:
    """A real update server with a newer release of every part except RAYDAL: (url, key, dir)."""
    directory = tmp_path / "updates"
    directory.mkdir()
    private, public = generate_signing_key()
    hardware = gateway.call(lambda gw: gw.firmware.hardware)
    for part in FirmwarePart:
        if part is FirmwarePart.RAYDAL:
            continue  # nothing newer: nothing to install, nothing to warn about
        publish_image(
            directory,
            private,
            hardware=hardware,
            part=part,
            version="9.0.0",
            security_version=9,
            image=bytes(range(256)) * 4,
            release_notes=LONG_NOTES if part is FirmwarePart.WBXMEGA else f"{part.name} 9.0.0.",
        )
    runner = await serve(directory, port=0)
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}", public, directory
    finally:
        await runner.cleanup()


def with_update_server(entry: MockConfigEntry, url: str, public: bytes) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=entry.unique_id,
        data=dict(entry.data),
        options={CONF_UPDATE_SERVER_URL: url, CONF_UPDATE_SIGNING_KEY: public.hex()},
    )


def update_entities(hass: HomeAssistant) -> dict[FirmwarePart, RayzigFirmwareUpdate]:
    found = {}
    for platform in entity_platform.async_get_platforms(hass, DOMAIN):
        if platform.domain == "update":
            for entity in platform.entities.values():
                assert isinstance(entity, RayzigFirmwareUpdate)
                found[entity.part] = entity
    assert set(found) == set(FirmwarePart)
    return found


def test_built_in_warnings_match_the_english_translation() -> None:
    """The fallback (no translation loaded) says exactly what en.json says."""
    english = translated_warnings("en")
    for part in FirmwarePart:
        assert default_install_warning(part) == english[part]
    assert "Rayzig radio" in english[FirmwarePart.RAYZIG]
    assert "rejoins the mesh" in english[FirmwarePart.RAYZIG]
    assert "TFT display" in english[FirmwarePart.TFT]
    assert "blank" in english[FirmwarePart.TFT]
    for part, text in english.items():
        assert text.startswith("Installing restarts"), part
        assert text.endswith("Outputs keep their state."), part
    for part, text in translated_warnings("de").items():
        assert "neu" in text, part
        assert text.endswith("Die Ausgänge behalten ihren Zustand."), part


@pytest.mark.parametrize("language", ["en", "de"])
async def test_every_part_warns_before_install_in_the_users_language(
    *,
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    catalogue: tuple[str, bytes, Path],
    language: str,
) -> None:
    hass.config.language = language
    warnings = translated_warnings(language)
    url, public, _ = catalogue
    entry = with_update_server(config_entry, url, public)
    async with loaded_entry(hass, entry, monkeypatch):
        for part, entity in update_entities(hass).items():
            state = hass.states.get(entity.entity_id)
            assert state is not None
            summary = state.attributes[ATTR_RELEASE_SUMMARY]
            notes = await entity.async_release_notes()
            if part is FirmwarePart.RAYDAL:  # up to date: no install offered, no warning
                assert state.state != STATE_ON
                assert summary is None
                assert notes is None
                continue
            # Offered for install, and the warning comes first in both places the user reads.
            assert state.state == STATE_ON, part
            assert summary.split("\n")[0] == warnings[part], part
            assert notes is not None
            assert notes.split("\n")[0] == f"**{warnings[part]}**", part
            assert len(summary) <= RELEASE_SUMMARY_MAX
            if part is FirmwarePart.WBXMEGA:  # long notes are cut, the warning is not
                assert summary.endswith("…")
                assert len(summary) == RELEASE_SUMMARY_MAX
                assert notes.endswith(LONG_NOTES)
            else:
                assert summary == f"{warnings[part]}\n\n{part.name} 9.0.0."


async def test_warning_from_platform_data_as_on_newest_home_assistant(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    catalogue: tuple[str, bytes, Path],
) -> None:
    """From HA 2026 the loaded translations sit on the entity's platform_data, not its platform."""
    url, public, _ = catalogue
    async with loaded_entry(hass, with_update_server(config_entry, url, public), monkeypatch):
        entity = update_entities(hass)[FirmwarePart.TFT]
        key = (
            "component.rayzig.entity.update.firmware_tft.state_attributes.release_summary"
            ".state.install_restarts"
        )
        platform_data = SimpleNamespace(
            platform_name="rayzig",
            domain="update",
            platform_translations={},
            default_language_platform_translations={key: "Read from platform_data."},
        )
        monkeypatch.setattr(entity, "platform_data", platform_data, raising=False)
        assert entity.install_warning == "Read from platform_data."
        platform_data.default_language_platform_translations = {}
        assert entity.install_warning == default_install_warning(FirmwarePart.TFT)
