"""The update server and its client over loopback (PROTOCOL.md §10.2)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from rayzig_core.errors import ConnectionFailedError, FirmwareIntegrityError, FirmwareSignatureError
from rayzig_core.firmware import (
    CATALOGUE_FILE,
    UpdateServerClient,
    generate_signing_key,
    publish_advisory,
    serve,
)
from rayzig_core.models import FirmwarePart
from tests.core.firmware_helpers import advisory_for, gateway_store, publish_version, send_chunks


@pytest.fixture
async def server(tmp_path: Path, keys: tuple[bytes, bytes]) -> AsyncIterator[tuple[Path, str]]:
    directory = tmp_path / "updates"
    directory.mkdir()
    (tmp_path / "outside.txt").write_text("secret outside")
    (directory / "secret.txt").write_text("not listed")
    runner = await serve(directory, port=0)
    try:
        host, port = runner.addresses[0][:2]
        yield directory, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def _raw_get(base_url: str, path: str) -> int:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(response.split(b" ", 2)[1])


async def test_client_fetches_latest_and_image(
    server: tuple[Path, str], session: aiohttp.ClientSession, keys: tuple[bytes, bytes]
) -> None:
    directory, base_url = server
    private, public = keys
    images = {v: os.urandom(3000 + i) for i, v in enumerate(["1.2.0", "1.10.0", "1.3.0"])}
    publish_version(directory, private, "1.2.0", 1, images["1.2.0"])
    publish_version(directory, private, "1.10.0", 1, images["1.10.0"])
    publish_version(directory, private, "1.3.0", 2, images["1.3.0"])
    client = UpdateServerClient(session, base_url + "/", [public])
    entries = await client.fetch_catalogue()
    assert [e.manifest.version for e in entries] == ["1.2.0", "1.10.0", "1.3.0"]
    latest = await client.latest_for(FirmwarePart.RAYZIG)
    assert latest is not None
    assert latest.manifest.version == "1.3.0"
    assert await client.fetch_image(latest) == images["1.3.0"]
    assert await client.latest_for(FirmwarePart.TFT) is None
    # Same security version: the higher version wins, compared numerically.
    publish_version(directory, private, "1.3.0", 0, images["1.3.0"])
    latest = await client.latest_for(FirmwarePart.RAYZIG)
    assert latest is not None
    assert latest.manifest.version == "1.10.0"

    # The image installs on a gateway store end to end.
    store = gateway_store(public, rayzig_sv=1)
    store.begin(latest.signed)
    send_chunks(store, FirmwarePart.RAYZIG, await client.fetch_image(latest))
    assert store.commit(FirmwarePart.RAYZIG).version == "1.10.0"


async def test_tampered_image_on_disk_detected(
    server: tuple[Path, str], session: aiohttp.ClientSession, keys: tuple[bytes, bytes]
) -> None:
    directory, base_url = server
    entry = publish_version(directory, keys[0], "1.3.0", 3, b"A" * 4000)
    client = UpdateServerClient(session, base_url, [keys[1]])
    (directory / entry.image_name).write_bytes(b"A" * 3999 + b"B")
    with pytest.raises(FirmwareIntegrityError, match="SHA-256"):
        await client.fetch_image(entry)
    (directory / entry.image_name).write_bytes(b"A" * 3000)
    with pytest.raises(FirmwareIntegrityError, match=r"4000 bytes .* only 3000 bytes"):
        await client.fetch_image(entry)
    for size in (4001, 100_000):
        (directory / entry.image_name).write_bytes(b"A" * size)
        with pytest.raises(FirmwareIntegrityError, match=r"should be 4000 bytes .* larger than"):
            await client.fetch_image(entry)
    (directory / entry.image_name).unlink()
    with pytest.raises(ConnectionFailedError, match=r"HTTP 404 for .*rayzig-1.3.0.bin"):
        await client.fetch_image(entry)


async def test_server_serves_advisories_and_the_client_verifies_them(
    server: tuple[Path, str], session: aiohttp.ClientSession, keys: tuple[bytes, bytes]
) -> None:
    """The server publishes the directory as it is; the client checks every advisory."""
    directory, base_url = server
    private, public = keys
    publish_version(directory, private, "2.5.0", 4, b"image")
    publish_advisory(directory, private, advisory_for())
    client = UpdateServerClient(session, base_url, [public])
    catalogue = await client.fetch()
    assert catalogue.advisories == [advisory_for()]
    assert [e.manifest.version for e in catalogue.entries] == ["2.5.0"]
    assert await client.fetch_catalogue() == catalogue.entries
    publish_advisory(
        directory, generate_signing_key()[0], advisory_for(identifier="RZSA-2026-0002")
    )
    with pytest.raises(FirmwareSignatureError, match=r"advisory 1 \(RZSA-2026-0002\)"):
        await client.fetch()


async def test_untrusted_catalogue_refused(
    server: tuple[Path, str], session: aiohttp.ClientSession, keys: tuple[bytes, bytes]
) -> None:
    directory, base_url = server
    publish_version(directory, generate_signing_key()[0], "1.3.0", 3, b"image")
    client = UpdateServerClient(session, base_url, [keys[1]])
    with pytest.raises(FirmwareSignatureError, match="entry 0"):
        await client.fetch_catalogue()


@pytest.mark.parametrize(
    "path",
    [
        "/images/secret.txt",
        "/images/catalogue.json",
        "/images/..%2Foutside.txt",
        "/images/%2e%2e%2foutside.txt",
        "/images/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/images/..%5Coutside.txt",
        "/images/../../outside.txt",
        "/images/..",
        "/images/%2e%2e",
        "/images/",
        "/images/.%2fsecret.txt",
        "/outside.txt",
        "/../outside.txt",
        "/secret.txt",
    ],
)
async def test_server_refuses_unlisted_and_traversal(
    server: tuple[Path, str], keys: tuple[bytes, bytes], path: str
) -> None:
    directory, base_url = server
    publish_version(directory, keys[0], "1.3.0", 3, b"image")
    # Even a catalogue listing a traversing name must not let it out of the directory.
    document = json.loads((directory / CATALOGUE_FILE).read_text())
    document["entries"].append({"part": "tft", "image": "../outside.txt"})
    document["entries"].append({"part": "tft", "image": "..\\outside.txt"})
    (directory / CATALOGUE_FILE).write_text(json.dumps(document))
    assert await _raw_get(base_url, "/images/rayzig-1.3.0.bin") == 200
    assert await _raw_get(base_url, path) == 404


async def test_server_without_catalogue_and_network_errors(
    server: tuple[Path, str], session: aiohttp.ClientSession, keys: tuple[bytes, bytes]
) -> None:
    _, base_url = server
    client = UpdateServerClient(session, base_url, [keys[1]])
    with pytest.raises(ConnectionFailedError, match=r"HTTP 404 .*catalogue.json"):
        await client.fetch_catalogue()
    # A port nobody listens on.
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await runner.cleanup()
    client = UpdateServerClient(session, f"http://127.0.0.1:{port}", [keys[1]])
    with pytest.raises(ConnectionFailedError, match=rf"127\.0\.0\.1:{port}/catalogue\.json.*check"):
        await client.fetch_catalogue()
