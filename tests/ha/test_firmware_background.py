"""Setup does not wait for the update server: the catalogue is fetched in the background.

Against an update server on loopback that accepts the connection and reads the request but does
not answer (until the test lets it): the entry loads at once, its update entities stay
unavailable with an unknown latest version, and they become available when the catalogue arrives;
if the fetch times out they stay so, until a later fetch succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from homeassistant.components.update import ATTR_INSTALLED_VERSION, ATTR_LATEST_VERSION
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_platform
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

import custom_components.rayzig as integration
from custom_components.rayzig.const import CONF_UPDATE_SERVER_URL, CONF_UPDATE_SIGNING_KEY, DOMAIN
from custom_components.rayzig.firmware import FIRMWARE_POLL_INTERVAL
from custom_components.rayzig.update import RayzigFirmwareUpdate
from rayzig_core.firmware import (
    CATALOGUE_FILE,
    UpdateServerClient,
    generate_signing_key,
    publish_image,
)
from rayzig_core.models import FirmwarePart
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import FastClient, wait_for

QUICK_SETUP_SECONDS = 5.0
"""Setup must end well before the catalogue fetch's 30 s timeout."""


class SilentUpdateServer:
    """A loopback HTTP server that reads each request and answers only once released."""

    def __init__(self, catalogue: bytes) -> None:
        self.catalogue = catalogue
        self.requests: list[bytes] = []
        self.closed_by_client = 0
        self._released = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def release(self) -> None:
        """Answer the pending request, and every later one at once."""
        self._released.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            released = asyncio.ensure_future(self._released.wait())
            closed = asyncio.ensure_future(reader.read())  # the client gives up: EOF
            done, pending = await asyncio.wait(
                {released, closed}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if released not in done:
                self.closed_by_client += 1
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(self.catalogue)}\r\nConnection: close\r\n\r\n".encode()
                + self.catalogue
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()


@pytest.fixture
async def silent_server(
    tmp_path: Path, gateway: GatewayThread
) -> AsyncIterator[tuple[SilentUpdateServer, str, bytes]]:
    """The silent server with a catalogue offering Rayzig 2.5.0: (server, url, public key)."""
    private, public = generate_signing_key()
    directory = tmp_path / "updates"
    directory.mkdir()
    publish_image(
        directory,
        private,
        hardware=gateway.call(lambda gw: gw.firmware.hardware),
        part=FirmwarePart.RAYZIG,
        version="2.5.0",
        security_version=3,
        image=bytes(range(256)) * 4,
        release_notes="Rayzig 2.5.0.",
    )
    server = SilentUpdateServer((directory / CATALOGUE_FILE).read_bytes())
    url = await server.start()
    try:
        yield server, url, public
    finally:
        await server.close()


def _entry(config_entry: MockConfigEntry, url: str, public: bytes) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=config_entry.title,
        unique_id=config_entry.unique_id,
        data=dict(config_entry.data),
        options={CONF_UPDATE_SERVER_URL: url, CONF_UPDATE_SIGNING_KEY: public.hex()},
    )


async def _setup_quickly(
    hass: HomeAssistant, entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set the entry up (without waiting for the catalogue) and check that it took no time."""
    monkeypatch.setattr(integration, "RayzigClient", FastClient)
    entry.add_to_hass(hass)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert loop.time() - started < QUICK_SETUP_SECONDS
    assert entry.state is ConfigEntryState.LOADED


def _rayzig_update(hass: HomeAssistant) -> RayzigFirmwareUpdate:
    for platform in entity_platform.async_get_platforms(hass, DOMAIN):
        for entity in platform.entities.values():
            if isinstance(entity, RayzigFirmwareUpdate) and entity.part is FirmwarePart.RAYZIG:
                return entity
    raise AssertionError("no Rayzig update entity")


async def _unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_setup_does_not_wait_for_the_catalogue(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    silent_server: tuple[SilentUpdateServer, str, bytes],
) -> None:
    """Loaded while the server sits on the request; the entities follow when it answers."""
    server, url, public = silent_server
    entry = _entry(config_entry, url, public)
    await _setup_quickly(hass, entry, monkeypatch)
    await wait_for(hass, lambda: len(server.requests) == 1)
    firmware = entry.runtime_data.firmware
    assert firmware is not None
    assert firmware.data is None
    entity = _rayzig_update(hass)
    assert entity.latest_version is None
    assert entity.installed_version == "2.4.1"
    state = hass.states.get(entity.entity_id)
    assert state is not None
    assert state.state == STATE_UNAVAILABLE
    # Switches work meanwhile: setup is complete.
    assert hass.states.async_entity_ids("switch")

    server.release()
    await wait_for(hass, lambda: hass.states.get(entity.entity_id).state == STATE_ON)  # type: ignore[union-attr]
    state = hass.states.get(entity.entity_id)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == "2.4.1"
    assert state.attributes[ATTR_LATEST_VERSION] == "2.5.0"
    await _unload(hass, entry)


async def test_catalogue_timeout_leaves_latest_version_unknown(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    silent_server: tuple[SilentUpdateServer, str, bytes],
) -> None:
    """A fetch that times out leaves the entities unavailable; the next fetch brings them."""
    monkeypatch.setattr(UpdateServerClient, "CATALOGUE_TIMEOUT", 1.0)
    server, url, public = silent_server
    entry = _entry(config_entry, url, public)
    await _setup_quickly(hass, entry, monkeypatch)
    firmware = entry.runtime_data.firmware
    assert firmware is not None
    await wait_for(hass, lambda: not firmware.last_update_success)
    await wait_for(hass, lambda: server.closed_by_client == 1)  # Home Assistant gave up
    entity = _rayzig_update(hass)
    assert firmware.data is None
    assert entity.latest_version is None
    assert entity.installed_version == "2.4.1"
    state = hass.states.get(entity.entity_id)
    assert state is not None
    assert state.state == STATE_UNAVAILABLE

    # Six hours later the server answers: the entities come back with the release.
    server.release()
    async_fire_time_changed(hass, dt_util.utcnow() + FIRMWARE_POLL_INTERVAL + timedelta(seconds=1))
    await wait_for(hass, lambda: hass.states.get(entity.entity_id).state == STATE_ON)  # type: ignore[union-attr]
    assert len(server.requests) == 2
    assert entity.latest_version == "2.5.0"
    await _unload(hass, entry)


async def test_unload_while_the_catalogue_is_pending(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    silent_server: tuple[SilentUpdateServer, str, bytes],
) -> None:
    """Unloading cancels the pending fetch with the entry: nothing lingers, the request ends."""
    server, url, public = silent_server
    entry = _entry(config_entry, url, public)
    await _setup_quickly(hass, entry, monkeypatch)
    await wait_for(hass, lambda: len(server.requests) == 1)
    await _unload(hass, entry)
    assert entry.state is ConfigEntryState.NOT_LOADED
    await wait_for(hass, lambda: server.closed_by_client == 1)
