"""Update entities: signed firmware from a real update server installed on the virtual gateway."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from homeassistant.components.update import (
    ATTR_IN_PROGRESS,
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    ATTR_RELEASE_SUMMARY,
    ATTR_UPDATE_PERCENTAGE,
    UpdateEntityFeature,
)
from homeassistant.const import ATTR_SUPPORTED_FEATURES, STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_platform
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_state_change_event
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components.rayzig.firmware as firmware_module
from custom_components.rayzig.const import (
    CONF_CREDENTIALS,
    CONF_UPDATE_SERVER_URL,
    CONF_UPDATE_SIGNING_KEY,
    DOMAIN,
)
from custom_components.rayzig.firmware import RayzigFirmwareCoordinator, is_newer, newest
from custom_components.rayzig.repairs import ISSUE_FIRMWARE_SECURITY_UPDATE, issue_id
from custom_components.rayzig.update import RayzigFirmwareUpdate
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import PermissionDeniedError, RayzigError
from rayzig_core.firmware import (
    CHUNK_SIZE,
    UpdateServerClient,
    generate_signing_key,
    image_file_name,
    install_firmware,
    publish_image,
    serve,
)
from rayzig_core.models import FirmwarePart, FirmwareVersion, UserLevel
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector

from .runtime_helpers import loaded_entry, wait_for

IMAGE_SIZE = 5 * CHUNK_SIZE + 123
VIEWER = "viewer"
VIEWER_PASSWORD = "quiet-heron-paints-93-lanterns"


@pytest.fixture
def signing_key() -> tuple[bytes, bytes]:
    """The publisher's key pair (private, public), made for this test."""
    return generate_signing_key()


@pytest.fixture
def gateway_factory(
    tmp_path: Path, socket_enabled: None, signing_key: tuple[bytes, bytes]
) -> Iterator[GatewayThread]:
    """A factory-state virtual gateway that trusts the test publisher's key."""
    gateway = GatewayThread(tmp_path / "gateway.json", trusted_update_keys=(signing_key[1],))
    yield gateway
    gateway.stop()


@dataclass(frozen=True)
class UpdateServer:
    """Where the test publishes (directory), where Home Assistant fetches (url), and the keys."""

    directory: Path
    url: str
    private: bytes
    public: bytes


@pytest.fixture
async def update_server(
    tmp_path: Path, signing_key: tuple[bytes, bytes]
) -> AsyncIterator[UpdateServer]:
    """A real update server on loopback serving an (initially empty) catalogue directory."""
    directory = tmp_path / "updates"
    directory.mkdir()
    runner = await serve(directory, port=0)
    try:
        host, port = runner.addresses[0][:2]
        yield UpdateServer(directory, f"http://{host}:{port}", *signing_key)
    finally:
        await runner.cleanup()


def publish(
    gateway: GatewayThread,
    directory: Path,
    private_key: bytes,
    *,
    version: str = "2.5.0",
    security_version: int = 3,
    security_fix: bool = False,
    part: FirmwarePart = FirmwarePart.RAYZIG,
) -> bytes:
    """Sign and publish an image for the gateway's hardware; returns the image."""
    hardware = gateway.call(lambda gw: gw.firmware.hardware)
    image = os.urandom(IMAGE_SIZE)
    publish_image(
        directory,
        private_key,
        hardware=hardware,
        part=part,
        version=version,
        security_version=security_version,
        image=image,
        release_notes=f"Rayzig {version}: faster mesh joins.\n\nFull notes here.",
        security_fix=security_fix,
    )
    return image


def entry_with_options(
    entry: MockConfigEntry, url: str, public_key: bytes, **data: Any
) -> MockConfigEntry:
    """The fixture's entry with the update server configured in the options."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=entry.unique_id,
        data={**entry.data, **data},
        options={CONF_UPDATE_SERVER_URL: url, CONF_UPDATE_SIGNING_KEY: public_key.hex()},
    )


def installed_on_gateway(gateway: GatewayThread, part: FirmwarePart) -> FirmwareVersion:
    versions = gateway.call(lambda gw: gw.firmware.versions())
    return next(v for v in versions if v.part is part)


def update_entity(hass: HomeAssistant, part: FirmwarePart) -> RayzigFirmwareUpdate:
    for platform in entity_platform.async_get_platforms(hass, DOMAIN):
        if platform.domain != "update":
            continue
        for entity in platform.entities.values():
            if isinstance(entity, RayzigFirmwareUpdate) and entity.part is part:
                return entity
    raise AssertionError(f"no update entity for {part.name}")


async def install(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call("update", "install", {"entity_id": entity_id}, blocking=True)


async def test_install_from_update_server(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,
) -> None:
    """A signed release installs with progress; the gateway then runs the new version."""
    directory, url = update_server.directory, update_server.url
    private, public = update_server.private, update_server.public
    publish(gateway, directory, private, version="2.5.0", security_version=4, security_fix=True)
    publish(gateway, directory, private, version="2.4.9", security_version=3)
    entry = entry_with_options(config_entry, url, public)
    async with loaded_entry(hass, entry, monkeypatch):
        entity = update_entity(hass, FirmwarePart.RAYZIG)
        entity_id = entity.entity_id
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == STATE_ON
        assert state.attributes[ATTR_INSTALLED_VERSION] == "2.4.1"
        assert state.attributes[ATTR_LATEST_VERSION] == "2.5.0"
        summary = state.attributes[ATTR_RELEASE_SUMMARY].split("\n")
        assert summary[0].startswith("Installing restarts the Rayzig radio")  # 5.3-12
        assert summary[2].startswith("Rayzig 2.5.0")
        assert state.attributes[ATTR_SUPPORTED_FEATURES] == (
            UpdateEntityFeature.INSTALL
            | UpdateEntityFeature.PROGRESS
            | UpdateEntityFeature.RELEASE_NOTES
        )
        assert state.attributes["friendly_name"].endswith("Rayzig firmware")
        assert "Full notes here." in (await entity.async_release_notes() or "")
        # Parts the catalogue does not offer are up to date.
        other = hass.states.get(update_entity(hass, FirmwarePart.TFT).entity_id)
        assert other is not None
        assert other.state == STATE_OFF
        assert other.attributes[ATTR_LATEST_VERSION] == other.attributes[ATTR_INSTALLED_VERSION]
        assert await update_entity(hass, FirmwarePart.TFT).async_release_notes() is None
        # The security fix is flagged in Repairs until it is installed.
        issues = ir.async_get(hass)
        security_issue = issue_id(ISSUE_FIRMWARE_SECURITY_UPDATE, entry.entry_id, "rayzig")
        assert issues.async_get_issue(DOMAIN, security_issue) is not None

        progress: list[tuple[bool, int | None]] = []

        @callback
        def follow(event: Event[EventStateChangedData]) -> None:
            new = event.data["new_state"]
            if new is not None:
                progress.append(
                    (new.attributes[ATTR_IN_PROGRESS], new.attributes[ATTR_UPDATE_PERCENTAGE])
                )

        unsub = async_track_state_change_event(hass, [entity_id], follow)
        await install(hass, entity_id)
        await hass.async_block_till_done()
        unsub()

        assert installed_on_gateway(gateway, FirmwarePart.RAYZIG) == FirmwareVersion(
            FirmwarePart.RAYZIG, "2.5.0", 4
        )
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == STATE_OFF
        assert state.attributes[ATTR_INSTALLED_VERSION] == "2.5.0"
        assert state.attributes[ATTR_IN_PROGRESS] is False
        percentages = [p for running, p in progress if running]
        assert percentages[0] == 0
        assert percentages == sorted(percentages)
        assert len(percentages) >= 6  # 0 and one per chunk
        assert percentages[-1] == 100
        assert progress[-1] == (False, None)
        assert issues.async_get_issue(DOMAIN, security_issue) is None


async def test_bad_signature_refused_by_gateway(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,
) -> None:
    """A catalogue signed with a key the gateway does not trust is refused; nothing changes."""
    directory, url = update_server.directory, update_server.url
    untrusted_private, untrusted_public = generate_signing_key()
    publish(gateway, directory, untrusted_private, version="9.0.0", security_version=9)
    before = installed_on_gateway(gateway, FirmwarePart.RAYZIG)
    entry = entry_with_options(config_entry, url, untrusted_public)
    async with loaded_entry(hass, entry, monkeypatch):
        entity_id = update_entity(hass, FirmwarePart.RAYZIG).entity_id
        with pytest.raises(HomeAssistantError) as caught:
            await install(hass, entity_id)
        assert caught.value.translation_key == "firmware_signature"
        assert "trusted" in str(caught.value)
        assert installed_on_gateway(gateway, FirmwarePart.RAYZIG) == before
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.attributes[ATTR_INSTALLED_VERSION] == before.version
        assert state.attributes[ATTR_IN_PROGRESS] is False


async def test_catalogue_not_trusted_by_home_assistant(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,
) -> None:
    """A catalogue not signed with the key in the options is never offered."""
    directory, url = update_server.directory, update_server.url
    publish(gateway, directory, generate_signing_key()[0], version="9.0.0", security_version=9)
    entry = entry_with_options(config_entry, url, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch) as loaded:
        firmware = loaded.runtime_data.firmware
        assert firmware is not None
        assert firmware.last_update_success is False
        state = hass.states.get(update_entity(hass, FirmwarePart.RAYZIG).entity_id)
        assert state is not None
        assert state.state == STATE_UNAVAILABLE


async def test_tampered_image_refused(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,
) -> None:
    """An image changed on the server after signing never reaches the gateway."""
    directory, url = update_server.directory, update_server.url
    publish(gateway, directory, update_server.private, version="2.5.0", security_version=3)
    path = directory / image_file_name(FirmwarePart.RAYZIG, "2.5.0")
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    entry = entry_with_options(config_entry, url, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch):
        entity_id = update_entity(hass, FirmwarePart.RAYZIG).entity_id
        with pytest.raises(HomeAssistantError) as caught:
            await install(hass, entity_id)
        assert caught.value.translation_key == "firmware_integrity"
        assert installed_on_gateway(gateway, FirmwarePart.RAYZIG).version == "2.4.1"


async def test_rollback_refused_by_gateway(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,
) -> None:
    """When the gateway already holds a higher security version, it refuses the downgrade."""
    directory, url = update_server.directory, update_server.url
    publish(gateway, directory, update_server.private, version="2.5.0", security_version=4)
    entry = entry_with_options(config_entry, url, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch):
        entity_id = update_entity(hass, FirmwarePart.RAYZIG).entity_id

        # Another client installed a newer security version; Home Assistant has not heard yet.
        def raise_security_version(gw: Any) -> None:
            gw.firmware._installed[FirmwarePart.RAYZIG] = FirmwareVersion(
                FirmwarePart.RAYZIG, "2.6.0", 5
            )

        gateway.call(raise_security_version)
        with pytest.raises(HomeAssistantError) as caught:
            await install(hass, entity_id)
        assert caught.value.translation_key == "firmware_rollback"
        assert installed_on_gateway(gateway, FirmwarePart.RAYZIG).version == "2.6.0"


async def test_user_level_refused_before_contacting_anything(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,
) -> None:
    """A User-level pairing cannot install: a clear message, no download, no gateway request."""
    directory, url = update_server.directory, update_server.url
    publish(gateway, directory, update_server.private, version="2.5.0", security_version=3)
    owner_credentials = ClientCredentials.from_dict(config_entry.data[CONF_CREDENTIALS])
    admin = RayzigClient(TcpConnector("127.0.0.1", gateway.port), owner_credentials)
    await admin.connect()
    await admin.add_user(VIEWER, UserLevel.USER, VIEWER_PASSWORD)
    await admin.close()
    viewer = RayzigClient(TcpConnector("127.0.0.1", gateway.port), client_name="Home Assistant")
    credentials = await viewer.pair(await viewer.identify(), VIEWER, VIEWER_PASSWORD)
    await viewer.close()
    entry = entry_with_options(
        config_entry, url, update_server.public, **{CONF_CREDENTIALS: credentials.to_dict()}
    )

    async def must_not_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("contacted the update server or the gateway")

    monkeypatch.setattr(UpdateServerClient, "fetch_image", must_not_run)
    monkeypatch.setattr(firmware_module, "install_firmware", must_not_run)
    async with loaded_entry(hass, entry, monkeypatch):
        entity_id = update_entity(hass, FirmwarePart.RAYZIG).entity_id
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == STATE_ON
        with pytest.raises(HomeAssistantError) as caught:
            await install(hass, entity_id)
        assert caught.value.translation_key == "firmware_needs_system"
        assert caught.value.translation_placeholders == {"user": VIEWER}
        assert "Configure > Install firmware" in str(caught.value)
        assert installed_on_gateway(gateway, FirmwarePart.RAYZIG).version == "2.4.1"


async def test_update_server_unreachable_does_not_block_setup(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    signing_key: tuple[bytes, bytes],
) -> None:
    """An update server that is away leaves the entry loaded and the update entities unavailable."""
    entry = entry_with_options(config_entry, "http://127.0.0.1:9", signing_key[1])
    async with loaded_entry(hass, entry, monkeypatch) as loaded:
        firmware = loaded.runtime_data.firmware
        assert firmware is not None
        assert not firmware.last_update_success
        entity = update_entity(hass, FirmwarePart.RAYZIG)
        state = hass.states.get(entity.entity_id)
        assert state is not None
        assert state.state == STATE_UNAVAILABLE
        # Called directly (the action refuses without a newer version), it explains itself.
        with pytest.raises(HomeAssistantError) as caught:
            await entity.async_install(None, backup=False)
        assert caught.value.translation_key == "firmware_up_to_date"


async def test_no_update_entities_without_update_server(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with loaded_entry(hass, config_entry, monkeypatch) as loaded:
        assert loaded.runtime_data.firmware is None
        assert not hass.states.async_entity_ids("update")


async def test_firmware_coordinator_install_paths(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,
) -> None:
    """The coordinator installs without a fetched catalogue and says when nothing is offered."""
    directory, url = update_server.directory, update_server.url
    publish(
        gateway,
        directory,
        update_server.private,
        version="1.9.5",
        security_version=2,
        part=FirmwarePart.RAXMEGA,
    )
    entry = entry_with_options(config_entry, url, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch) as loaded:
        firmware = loaded.runtime_data.firmware
        assert isinstance(firmware, RayzigFirmwareCoordinator)
        firmware.data = {}
        seen: list[int] = []
        await firmware.async_install(FirmwarePart.RAXMEGA, seen.append)
        assert seen[-1] == 100
        assert installed_on_gateway(gateway, FirmwarePart.RAXMEGA).version == "1.9.5"
        with pytest.raises(RayzigError, match="offers no raydal firmware"):
            await firmware.async_install(FirmwarePart.RAYDAL, seen.append)
        # Without any view of the gateway there is no installed version and no level.
        coordinator = loaded.runtime_data.coordinator
        client = firmware.client
        data, info, credentials = coordinator.data, client.info, client.credentials
        try:
            coordinator.data = None  # type: ignore[assignment]
            client.info = None
            assert firmware.installed(FirmwarePart.RAYZIG) is None
            assert firmware.installed_versions() == []
            firmware.async_check_installed()  # nothing known: the repairs are left as they are
            assert firmware.level is UserLevel.SYSTEM
            client.credentials = None
            assert firmware.level is None
            with pytest.raises(PermissionDeniedError):
                await firmware.async_install(FirmwarePart.RAYZIG, seen.append)
        finally:
            coordinator.data, client.info, client.credentials = data, info, credentials


def test_version_helpers(tmp_path: Path) -> None:
    """Newest by security version then version; anything is newer than nothing installed."""
    private, _ = generate_signing_key()
    entries = [
        publish_image(
            tmp_path,
            private,
            hardware="RZ-GW1",
            part=FirmwarePart.RAYZIG,
            version=version,
            security_version=security_version,
            image=b"x" * 10,
        )
        for version, security_version in (("2.10.0", 3), ("2.9.0", 3), ("2.0.0", 4))
    ]
    assert newest([], FirmwarePart.RAYZIG) is None
    assert newest(entries, FirmwarePart.TFT) is None
    best = newest(entries, FirmwarePart.RAYZIG)
    assert best is not None
    assert best.manifest.version == "2.0.0"
    assert is_newer(best, None)
    assert is_newer(entries[0], FirmwareVersion(FirmwarePart.RAYZIG, "2.9.0", 3))
    assert not is_newer(entries[1], FirmwareVersion(FirmwarePart.RAYZIG, "2.10.0", 3))


async def test_install_by_another_client_settles_repair(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    update_server: UpdateServer,
) -> None:
    """Firmware installed elsewhere (e.g. with the CLI) clears the repair and shows at once."""
    publish(gateway, update_server.directory, update_server.private, security_fix=True)
    entry = entry_with_options(config_entry, update_server.url, update_server.public)
    async with loaded_entry(hass, entry, monkeypatch):
        issues = ir.async_get(hass)
        security_issue = issue_id(ISSUE_FIRMWARE_SECURITY_UPDATE, entry.entry_id, "rayzig")
        assert issues.async_get_issue(DOMAIN, security_issue) is not None
        entity_id = update_entity(hass, FirmwarePart.RAYZIG).entity_id

        other = RayzigClient(
            TcpConnector("127.0.0.1", gateway.port),
            ClientCredentials.from_dict(config_entry.data[CONF_CREDENTIALS]),
        )
        await other.connect()
        async with aiohttp.ClientSession() as session:
            server = UpdateServerClient(session, update_server.url, (update_server.public,))
            latest = await server.latest_for(FirmwarePart.RAYZIG)
            assert latest is not None
            await install_firmware(other, latest, await server.fetch_image(latest))
        await other.close()

        await wait_for(hass, lambda: issues.async_get_issue(DOMAIN, security_issue) is None)

        def shows_new_version() -> bool:
            state = hass.states.get(entity_id)
            return state is not None and state.attributes[ATTR_INSTALLED_VERSION] == "2.5.0"

        await wait_for(hass, shows_new_version)
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == STATE_OFF
