"""Signed software updates: manifests, catalogues, gateway firmware store, update server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rayzig_core.errors import (
    ConnectionFailedError,
    FirmwareError,
    FirmwareIntegrityError,
    FirmwareRollbackError,
    FirmwareSignatureError,
)
from rayzig_core.firmware import (
    CATALOGUE_FILE,
    CHUNK_SIZE,
    MANIFEST_DOMAIN,
    CatalogueEntry,
    FirmwareManifest,
    SignedManifest,
    UpdateServerClient,
    build_manifest,
    crc32,
    generate_signing_key,
    parse_catalogue,
    public_key_of,
    publish_image,
    sign_manifest,
    verify_manifest,
    version_key,
)
from rayzig_core.models import FirmwarePart, FirmwareVersion
from rayzig_core.update_server import serve
from rayzig_core.virtual_gateway import FirmwareStore
from rayzig_core.virtual_gateway.firmware_store import FirmwareStoreState
from tests.core.conftest import restored, stored

HARDWARE = "RZ-GW1"


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_signing_key()


@pytest.fixture
def image() -> bytes:
    return os.urandom(5 * CHUNK_SIZE + 123)


def _manifest(image: bytes, **changes: object) -> FirmwareManifest:
    manifest = build_manifest(
        hardware=HARDWARE,
        part=FirmwarePart.RAYZIG,
        version="1.3.0",
        security_version=3,
        image=image,
        release_notes="Fixes things.",
        security_fix=True,
    )
    return replace(manifest, **changes)  # type: ignore[arg-type]


def _store(public: bytes, rayzig_sv: int = 2) -> FirmwareStore:
    return FirmwareStore(
        hardware=HARDWARE,
        trusted_keys=[public],
        installed={
            FirmwarePart.RAYZIG: FirmwareVersion(FirmwarePart.RAYZIG, "1.2.0", rayzig_sv),
            FirmwarePart.TFT: FirmwareVersion(FirmwarePart.TFT, "0.9", 0),
        },
    )


def _send(
    store: FirmwareStore, part: FirmwarePart, image: bytes, start: int = 0, stop: int | None = None
) -> int:
    offset = start
    end = len(image) if stop is None else stop
    while offset < end:
        data = image[offset : min(offset + CHUNK_SIZE, end)]
        _, offset, _ = store.chunk(part, offset, data, crc32(data))
    return offset


# --- manifests and signatures ---------------------------------------------------------------


def test_sign_verify_round_trip(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    manifest = _manifest(image)
    signed = sign_manifest(private, manifest)
    assert len(signed.signature) == 64
    assert verify_manifest(signed, [public]) == manifest
    assert FirmwareManifest.from_bytes(signed.manifest) == manifest
    assert public_key_of(private) == public


def test_any_trusted_key_verifies(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    other = generate_signing_key()[1]
    signed = sign_manifest(private, _manifest(image))
    assert verify_manifest(signed, [other, b"short", public]).version == "1.3.0"


@pytest.mark.parametrize("position", [0, 5, 20, -33, -1])
def test_tampered_manifest_byte_is_rejected(
    keys: tuple[bytes, bytes], image: bytes, position: int
) -> None:
    private, public = keys
    signed = sign_manifest(private, _manifest(image))
    data = bytearray(signed.manifest)
    data[position] ^= 0x01
    with pytest.raises(FirmwareSignatureError) as info:
        verify_manifest(SignedManifest(bytes(data), signed.signature), [public])
    assert info.value.code == 11


def test_tampered_signature_is_rejected(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    signed = sign_manifest(private, _manifest(image))
    signature = bytearray(signed.signature)
    signature[10] ^= 0x80
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(signed.manifest, bytes(signature)), [public])
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(signed.manifest, signed.signature[:-1]), [public])


def test_untrusted_key_is_rejected(keys: tuple[bytes, bytes], image: bytes) -> None:
    _, public = keys
    rogue_private, _ = generate_signing_key()
    signed = sign_manifest(rogue_private, _manifest(image))
    with pytest.raises(FirmwareSignatureError, match="trusted"):
        verify_manifest(signed, [public])
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(signed, [])


def test_signature_is_checked_before_parsing(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    garbage = b"\xff\x00not cbor at all"
    # Unsigned garbage: a signature error, never a parse error.
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(garbage, bytes(64)), [public])
    # Correctly signed but malformed: an integrity error.
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(MANIFEST_DOMAIN + garbage)
    with pytest.raises(FirmwareIntegrityError, match="malformed"):
        verify_manifest(SignedManifest(garbage, signature), [public])


def test_signature_is_domain_separated(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    data = _manifest(image).to_bytes()
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(data)
    with pytest.raises(FirmwareSignatureError):
        verify_manifest(SignedManifest(data, signature), [public])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sha256": b"\x00" * 31}, "SHA-256"),
        ({"size": 0}, "size"),
        ({"security_version": -1}, "security version"),
        ({"version": "1.0 beta"}, "version"),
        ({"hardware": ""}, "hardware"),
        ({"release_notes": "x" * 1025}, "release notes"),
    ],
)
def test_invalid_manifest_cannot_be_signed(
    keys: tuple[bytes, bytes], image: bytes, changes: dict[str, object], match: str
) -> None:
    with pytest.raises(FirmwareIntegrityError, match=match):
        sign_manifest(keys[0], _manifest(image, **changes))


def test_version_key_and_crc() -> None:
    assert version_key("1.10.0") > version_key("1.9.3")
    assert version_key("2.0") > version_key("1.99")
    assert crc32(b"123456789") == 0xCBF43926


def test_firmware_store_does_not_import_asyncio() -> None:
    code = (
        "import sys, rayzig_core.virtual_gateway.firmware_store, rayzig_core.firmware;"
        "assert 'asyncio' not in sys.modules and 'aiohttp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# --- catalogues --------------------------------------------------------------------------------


def _publish(
    directory: Path, private: bytes, version: str, sv: int, image: bytes
) -> CatalogueEntry:
    return publish_image(
        directory,
        private,
        hardware=HARDWARE,
        part=FirmwarePart.RAYZIG,
        version=version,
        security_version=sv,
        image=image,
    )


def test_publish_and_parse_catalogue(
    tmp_path: Path, keys: tuple[bytes, bytes], image: bytes
) -> None:
    private, public = keys
    first = _publish(tmp_path, private, "1.3.0", 3, image)
    assert first.image_name == "rayzig-1.3.0.bin"
    assert (tmp_path / "rayzig-1.3.0.bin").read_bytes() == image
    tft = publish_image(
        tmp_path,
        private,
        hardware=HARDWARE,
        part=FirmwarePart.TFT,
        version="1.0",
        security_version=0,
        image=b"tft image",
        release_notes="New fonts",
    )
    # Republishing the same part and version replaces its entry.
    again = _publish(tmp_path, private, "1.3.0", 4, image[::-1])
    entries = parse_catalogue((tmp_path / CATALOGUE_FILE).read_bytes(), [public])
    assert entries == [tft, again]
    assert entries[1].manifest.security_version == 4
    assert not list(tmp_path.glob(".*.tmp"))


def test_publish_refuses_other_hardware(
    tmp_path: Path, keys: tuple[bytes, bytes], image: bytes
) -> None:
    _publish(tmp_path, keys[0], "1.3.0", 3, image)
    with pytest.raises(FirmwareIntegrityError, match="hardware"):
        publish_image(
            tmp_path,
            keys[0],
            hardware="OTHER",
            part=FirmwarePart.RAYZIG,
            version="9",
            security_version=9,
            image=image,
        )
    assert not (tmp_path / "rayzig-9.bin").exists()


def _catalogue(keys: tuple[bytes, bytes], image: bytes) -> dict[str, object]:
    signed = sign_manifest(keys[0], _manifest(image))
    return {
        "format": 1,
        "hardware": HARDWARE,
        "entries": [
            {
                "part": "rayzig",
                "manifest": base64.b64encode(signed.manifest).decode(),
                "signature": base64.b64encode(signed.signature).decode(),
                "image": "rayzig-1.3.0.bin",
            }
        ],
    }


def _entry_change(key: str, value: object) -> dict[str, object]:
    return {key: value}


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda doc: doc.update(format=2), "format"),
        (lambda doc: doc.update(hardware=7), "hardware"),
        (lambda doc: doc.update(entries={}), "entries"),
        (lambda doc: doc["entries"].append("x"), "entry 1"),
        (lambda doc: doc["entries"][0].update(part="flux"), "entry 0 has unknown part"),
        (lambda doc: doc["entries"][0].update(image="../etc/passwd"), r"entry 0 \(rayzig\)"),
        (lambda doc: doc["entries"][0].update(image=".hidden"), "invalid image file name"),
        (lambda doc: doc["entries"][0].update(manifest="@@@"), "manifest is not valid base64"),
        (lambda doc: doc["entries"][0].update(signature=None), "signature must be a base64"),
        (lambda doc: doc["entries"][0].update(part="tft"), "listed as tft"),
        (lambda doc: doc.update(hardware="RZ-GW2"), "is for hardware 'RZ-GW1'"),
        (lambda doc: doc["entries"].append(dict(doc["entries"][0])), "entry 1 .*repeats"),
    ],
)
def test_catalogue_parse_errors(
    keys: tuple[bytes, bytes], image: bytes, mutate: object, match: str
) -> None:
    document = _catalogue(keys, image)
    mutate(document)  # type: ignore[operator]
    with pytest.raises(FirmwareIntegrityError, match=match) as info:
        parse_catalogue(json.dumps(document).encode(), [keys[1]])
    assert info.value.code == 12
    assert "catalogue" in str(info.value)


def test_catalogue_not_json_and_unsigned_entry(keys: tuple[bytes, bytes], image: bytes) -> None:
    with pytest.raises(FirmwareIntegrityError, match="not a JSON document"):
        parse_catalogue(b"\xff{", [keys[1]])
    with pytest.raises(FirmwareIntegrityError, match="JSON object"):
        parse_catalogue(b"[]", [keys[1]])
    document = _catalogue(keys, image)
    with pytest.raises(FirmwareSignatureError, match=r"entry 0 \(rayzig, rayzig-1.3.0.bin\)"):
        parse_catalogue(json.dumps(document).encode(), [generate_signing_key()[1]])


# --- gateway firmware store ------------------------------------------------------------------


def test_full_install_in_chunks(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    store = _store(public)
    signed = sign_manifest(private, _manifest(image))
    assert store.begin(signed) == (FirmwarePart.RAYZIG, 0, len(image))
    # Nothing is raised before the image is committed.
    assert store.versions()[0] == FirmwareVersion(FirmwarePart.RAYZIG, "1.2.0", 2)
    assert _send(store, FirmwarePart.RAYZIG, image) == len(image)
    assert store.progress(FirmwarePart.RAYZIG) == (FirmwarePart.RAYZIG, len(image), len(image))
    version = store.commit(FirmwarePart.RAYZIG)
    assert version == FirmwareVersion(FirmwarePart.RAYZIG, "1.3.0", 3)
    assert store.versions() == (version, FirmwareVersion(FirmwarePart.TFT, "0.9", 0))
    assert store.progress(FirmwarePart.RAYZIG) is None
    with pytest.raises(FirmwareError) as info:
        store.commit(FirmwarePart.RAYZIG)
    assert info.value.code == 14


def test_resume_after_restart(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    store = _store(public)
    signed = sign_manifest(private, _manifest(image))
    store.begin(signed)
    held = _send(store, FirmwarePart.RAYZIG, image, stop=2 * CHUNK_SIZE + 100)
    saved = stored(store.state())
    assert public.hex() in saved["trusted_keys"]

    again = FirmwareStore.restore(restored(FirmwareStoreState, saved))
    assert again.versions() == store.versions()
    # The client begins again with the same manifest and is told where to resume.
    assert again.begin(signed) == (FirmwarePart.RAYZIG, held, len(image))
    # The chunk whose acknowledgement was lost is still acknowledged idempotently.
    last = image[2 * CHUNK_SIZE : held]
    assert again.chunk(FirmwarePart.RAYZIG, 2 * CHUNK_SIZE, last, crc32(last))[1] == held
    _send(again, FirmwarePart.RAYZIG, image, start=held)
    assert again.commit(FirmwarePart.RAYZIG).version == "1.3.0"


def test_restart_drops_tampered_partial_image(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    store = _store(public)
    store.begin(sign_manifest(private, _manifest(image)))
    _send(store, FirmwarePart.RAYZIG, image, stop=CHUNK_SIZE)
    saved = stored(store.state())
    entry = saved["in_progress"][0]
    manifest = bytearray(base64.b64decode(entry["manifest"]))
    manifest[-1] ^= 1
    entry["manifest"] = base64.b64encode(manifest).decode()
    again = FirmwareStore.restore(restored(FirmwareStoreState, saved))
    assert again.progress(FirmwarePart.RAYZIG) is None


def test_new_trusted_keys_verify_a_partial_image_again(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    private, public = keys
    other = generate_signing_key()[1]
    store = _store(public)
    store.begin(sign_manifest(private, _manifest(image)))
    _send(store, FirmwarePart.RAYZIG, image, stop=CHUNK_SIZE)
    kept = store.with_trusted_keys([public, other])
    assert kept.trusted_keys == (public, other)
    assert kept.progress(FirmwarePart.RAYZIG) == (FirmwarePart.RAYZIG, CHUNK_SIZE, len(image))
    dropped = store.with_trusted_keys([other])  # its publisher is no longer trusted
    assert dropped.progress(FirmwarePart.RAYZIG) is None
    assert dropped.versions() == store.versions()


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: s.update(format=9),
        lambda s: s.pop("installed"),
        lambda s: s.update(trusted_keys=["zz"]),
        lambda s: s["installed"][0].update(part="flux"),
        lambda s: s["installed"][0].update(security_version="3"),
        lambda s: s["in_progress"][0].update(data="!!"),
    ],
)
def test_corrupt_saved_state(keys: tuple[bytes, bytes], image: bytes, corrupt: object) -> None:
    store = _store(keys[1])
    store.begin(sign_manifest(keys[0], _manifest(image)))
    saved = stored(store.state())
    corrupt(saved)  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"wrong type or value|missing field|format"):
        restored(FirmwareStoreState, saved)


def test_chunk_crc_mismatch(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = _store(keys[1])
    store.begin(sign_manifest(keys[0], _manifest(image)))
    data = image[:CHUNK_SIZE]
    with pytest.raises(FirmwareIntegrityError, match=r"CRC mismatch.*resend") as info:
        store.chunk(FirmwarePart.RAYZIG, 0, data, crc32(data) ^ 1)
    assert info.value.code == 12
    assert store.progress(FirmwarePart.RAYZIG) == (FirmwarePart.RAYZIG, 0, len(image))
    assert store.chunk(FirmwarePart.RAYZIG, 0, data, crc32(data))[1] == CHUNK_SIZE


def test_repeated_chunk_is_idempotent_and_gaps_refused(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    store = _store(keys[1])
    store.begin(sign_manifest(keys[0], _manifest(image)))
    part = FirmwarePart.RAYZIG
    first, second = image[:CHUNK_SIZE], image[CHUNK_SIZE : 2 * CHUNK_SIZE]
    store.chunk(part, 0, first, crc32(first))
    assert store.chunk(part, 0, first, crc32(first)) == (part, CHUNK_SIZE, len(image))
    assert store.chunk(part, 0, first, crc32(first)) == (part, CHUNK_SIZE, len(image))
    store.chunk(part, CHUNK_SIZE, second, crc32(second))
    # Only the previous chunk may be repeated, and only with the same bytes.
    for offset, data in [
        (0, first),
        (CHUNK_SIZE, b"x" * CHUNK_SIZE),
        (3 * CHUNK_SIZE, second),
        (CHUNK_SIZE + 1, second[1:]),
    ]:
        with pytest.raises(FirmwareError, match="resume from offset 4096") as info:
            store.chunk(part, offset, data, crc32(data))
        assert info.value.code == 14
    assert store.progress(part) == (part, 2 * CHUNK_SIZE, len(image))


def test_chunk_beyond_size_and_without_install(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = _store(keys[1])
    with pytest.raises(FirmwareError, match="FirmwareBegin") as info:
        store.chunk(FirmwarePart.RAYZIG, 0, b"x", crc32(b"x"))
    assert info.value.code == 14
    assert not isinstance(info.value, FirmwareIntegrityError)
    store.begin(sign_manifest(keys[0], _manifest(image)))
    _send(store, FirmwarePart.RAYZIG, image, stop=len(image) - 10)
    extra = image[-10:] + b"more"
    with pytest.raises(FirmwareIntegrityError, match="beyond"):
        store.chunk(FirmwarePart.RAYZIG, len(image) - 10, extra, crc32(extra))
    with pytest.raises(FirmwareIntegrityError, match="empty"):
        store.chunk(FirmwarePart.RAYZIG, len(image) - 10, b"", crc32(b""))


def test_tampered_image_is_refused_and_version_unchanged(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    store = _store(keys[1])
    before = store.versions()
    store.begin(sign_manifest(keys[0], _manifest(image)))
    tampered = bytearray(image)
    tampered[3000] ^= 0x40
    _send(store, FirmwarePart.RAYZIG, bytes(tampered))
    with pytest.raises(FirmwareIntegrityError, match=r"SHA-256.*unchanged") as info:
        store.commit(FirmwarePart.RAYZIG)
    assert info.value.code == 12
    assert store.versions() == before
    assert store.progress(FirmwarePart.RAYZIG) is None


def test_incomplete_image_cannot_be_committed(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = _store(keys[1])
    before = store.versions()
    store.begin(sign_manifest(keys[0], _manifest(image)))
    _send(store, FirmwarePart.RAYZIG, image, stop=CHUNK_SIZE)
    with pytest.raises(FirmwareIntegrityError, match=r"incomplete.*resume from offset 2048"):
        store.commit(FirmwarePart.RAYZIG)
    assert store.versions() == before
    _send(store, FirmwarePart.RAYZIG, image, start=CHUNK_SIZE)
    assert store.commit(FirmwarePart.RAYZIG).security_version == 3


def test_rollback_refused_and_equal_security_version_allowed(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    store = _store(keys[1], rayzig_sv=4)
    before = store.versions()
    with pytest.raises(FirmwareRollbackError, match="downgrade refused") as info:
        store.begin(sign_manifest(keys[0], _manifest(image, security_version=3)))
    assert info.value.code == 13
    assert store.versions() == before
    assert store.progress(FirmwarePart.RAYZIG) is None
    # Equal security version: a reinstall or a non-security release is allowed.
    store.begin(sign_manifest(keys[0], _manifest(image, security_version=4, version="1.2.1")))
    _send(store, FirmwarePart.RAYZIG, image)
    assert store.commit(FirmwarePart.RAYZIG) == FirmwareVersion(FirmwarePart.RAYZIG, "1.2.1", 4)


def test_wrong_hardware_part_or_key_refused(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = _store(keys[1])
    before = store.versions()
    with pytest.raises(FirmwareIntegrityError, match="hardware 'RZ-GW9'"):
        store.begin(sign_manifest(keys[0], _manifest(image, hardware="RZ-GW9")))
    with pytest.raises(FirmwareIntegrityError, match="no raydal firmware part"):
        store.begin(sign_manifest(keys[0], _manifest(image, part=FirmwarePart.RAYDAL)))
    with pytest.raises(FirmwareSignatureError):
        store.begin(sign_manifest(generate_signing_key()[0], _manifest(image)))
    assert store.versions() == before
    assert store.progress(FirmwarePart.RAYZIG) is None


def test_new_manifest_restarts_and_abort(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = _store(keys[1])
    store.begin(sign_manifest(keys[0], _manifest(image)))
    _send(store, FirmwarePart.RAYZIG, image, stop=CHUNK_SIZE)
    other = sign_manifest(keys[0], _manifest(image, version="1.3.1"))
    assert store.begin(other) == (FirmwarePart.RAYZIG, 0, len(image))
    store.abort(FirmwarePart.RAYZIG)
    store.abort(FirmwarePart.RAYZIG)
    assert store.progress(FirmwarePart.RAYZIG) is None


# --- update server and client over loopback -------------------------------------------------


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
    _publish(directory, private, "1.2.0", 1, images["1.2.0"])
    _publish(directory, private, "1.10.0", 1, images["1.10.0"])
    _publish(directory, private, "1.3.0", 2, images["1.3.0"])
    client = UpdateServerClient(session, base_url + "/", [public])
    entries = await client.fetch_catalogue()
    assert [e.manifest.version for e in entries] == ["1.2.0", "1.10.0", "1.3.0"]
    latest = await client.latest_for(FirmwarePart.RAYZIG)
    assert latest is not None
    assert latest.manifest.version == "1.3.0"
    assert await client.fetch_image(latest) == images["1.3.0"]
    assert await client.latest_for(FirmwarePart.TFT) is None
    # Same security version: the higher version wins, compared numerically.
    _publish(directory, private, "1.3.0", 0, images["1.3.0"])
    latest = await client.latest_for(FirmwarePart.RAYZIG)
    assert latest is not None
    assert latest.manifest.version == "1.10.0"

    # The image installs on a gateway store end to end.
    store = _store(public, rayzig_sv=1)
    store.begin(latest.signed)
    _send(store, FirmwarePart.RAYZIG, await client.fetch_image(latest))
    assert store.commit(FirmwarePart.RAYZIG).version == "1.10.0"


async def test_tampered_image_on_disk_detected(
    server: tuple[Path, str], session: aiohttp.ClientSession, keys: tuple[bytes, bytes]
) -> None:
    directory, base_url = server
    entry = _publish(directory, keys[0], "1.3.0", 3, b"A" * 4000)
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


async def test_untrusted_catalogue_refused(
    server: tuple[Path, str], session: aiohttp.ClientSession, keys: tuple[bytes, bytes]
) -> None:
    directory, base_url = server
    _publish(directory, generate_signing_key()[0], "1.3.0", 3, b"image")
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
    _publish(directory, keys[0], "1.3.0", 3, b"image")
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
