"""ETSI EN 303 645 5.3-5: the firmware catalogue is checked at setup and then every six hours.

Against a real update server on loopback: the firmware coordinator fetches the catalogue when the
entry is set up, not again before six hours have passed, and again once they have, so that a
release (and a security fix) published meanwhile reaches the update entity and Repairs without a
restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.update import ATTR_INSTALLED_VERSION, ATTR_LATEST_VERSION
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.rayzig.const import (
    CONF_UPDATE_SERVER_URL,
    CONF_UPDATE_SIGNING_KEY,
    DOMAIN,
)
from custom_components.rayzig.firmware import FIRMWARE_POLL_INTERVAL, RayzigFirmwareCoordinator
from custom_components.rayzig.repairs import ISSUE_FIRMWARE_SECURITY_UPDATE, issue_id
from rayzig_core.firmware import (
    Catalogue,
    CatalogueEntry,
    generate_signing_key,
    publish_image,
    serve,
)
from rayzig_core.models import FirmwarePart
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, loaded_entry, wait_for

SIX_HOURS = timedelta(hours=6)


@pytest.fixture
async def update_server(tmp_path: Path, socket_enabled: None) -> AsyncIterator[tuple[Path, str]]:
    """A real update server on loopback: (catalogue directory, URL)."""
    directory = tmp_path / "updates"
    directory.mkdir()
    runner = await serve(directory, port=0)
    try:
        host, port = runner.addresses[0][:2]
        yield directory, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def publish(
    gateway: GatewayThread,
    directory: Path,
    private_key: bytes,
    version: str,
    security_version: int,
    *,
    security_fix: bool = False,
) -> None:
    publish_image(
        directory,
        private_key,
        hardware=gateway.call(lambda gw: gw.firmware.hardware),
        part=FirmwarePart.RAYZIG,
        version=version,
        security_version=security_version,
        image=bytes(range(256)) * 8,
        release_notes=f"Rayzig {version}.",
        security_fix=security_fix,
    )


def test_the_interval_is_six_hours() -> None:
    assert FIRMWARE_POLL_INTERVAL == SIX_HOURS


async def test_catalogue_is_fetched_again_every_six_hours(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: tuple[Path, str],
) -> None:
    directory, url = update_server
    private, public = generate_signing_key()
    publish(gateway, directory, private, "2.5.0", 3)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=config_entry.title,
        unique_id=config_entry.unique_id,
        data=dict(config_entry.data),
        options={CONF_UPDATE_SERVER_URL: url, CONF_UPDATE_SIGNING_KEY: public.hex()},
    )
    async with loaded_entry(hass, entry, monkeypatch) as loaded:
        firmware = loaded.runtime_data.firmware
        assert isinstance(firmware, RayzigFirmwareCoordinator)
        assert firmware.update_interval == SIX_HOURS
        assert firmware.last_update_success

        # Count the fetches from now on (each still goes to the real update server).
        fetches: list[list[CatalogueEntry]] = []
        fetch = firmware.server.fetch

        async def counting_fetch(*args: Any, **kwargs: Any) -> Catalogue:
            catalogue = await fetch(*args, **kwargs)
            fetches.append(catalogue.entries)
            return catalogue

        monkeypatch.setattr(firmware.server, "fetch", counting_fetch)
        update = entity_id(hass, "update", f"{gateway_serial(gateway)}_firmware_rayzig")

        def latest() -> str | None:
            state = hass.states.get(update)
            assert state is not None
            version: str | None = state.attributes[ATTR_LATEST_VERSION]
            return version

        assert latest() == "2.5.0"
        publish(gateway, directory, private, "2.6.0", 3)

        # Before six hours have passed, nothing is fetched.
        async_fire_time_changed(hass, dt_util.utcnow() + SIX_HOURS - timedelta(minutes=1))
        await hass.async_block_till_done(wait_background_tasks=True)
        assert fetches == []
        assert latest() == "2.5.0"

        # Six hours after setup the catalogue is fetched again and the new release shows.
        async_fire_time_changed(hass, dt_util.utcnow() + SIX_HOURS)
        await wait_for(hass, lambda: len(fetches) == 1 and latest() == "2.6.0")
        state = hass.states.get(update)
        assert state is not None
        assert state.state == STATE_ON
        assert state.attributes[ATTR_INSTALLED_VERSION] == "2.4.1"

        # And six hours after that: a security fix published meanwhile raises its repair.
        publish(gateway, directory, private, "2.7.0", 4, security_fix=True)
        issue = issue_id(ISSUE_FIRMWARE_SECURITY_UPDATE, entry.entry_id, "rayzig")
        issues = ir.async_get(hass)
        assert issues.async_get_issue(DOMAIN, issue) is None
        async_fire_time_changed(hass, dt_util.utcnow() + SIX_HOURS)
        await wait_for(hass, lambda: len(fetches) == 2 and latest() == "2.7.0")
        assert issues.async_get_issue(DOMAIN, issue) is not None
        assert [e.manifest.version for e in fetches[-1]] == ["2.5.0", "2.6.0", "2.7.0"]


def gateway_serial(gateway: GatewayThread) -> str:
    serial: str = gateway.call(lambda gw: gw.serial)
    return serial
