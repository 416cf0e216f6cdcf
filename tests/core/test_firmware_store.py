"""The gateway's firmware store: chunked install, resume, commit, anti-rollback (§10.3, §10.4)."""

from __future__ import annotations

import base64

import pytest

from rayzig_core.errors import (
    FirmwareError,
    FirmwareIntegrityError,
    FirmwareRollbackError,
    FirmwareSignatureError,
)
from rayzig_core.firmware import CHUNK_SIZE, crc32, generate_signing_key, sign_manifest
from rayzig_core.models import FirmwarePart, FirmwareVersion
from rayzig_core.virtual_gateway import FirmwareStore
from rayzig_core.virtual_gateway.firmware_store import FirmwareStoreState
from tests.core.conftest import restored, stored
from tests.core.firmware_helpers import gateway_store, manifest_for, send_chunks


def test_full_install_in_chunks(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    store = gateway_store(public)
    signed = sign_manifest(private, manifest_for(image))
    assert store.begin(signed) == (FirmwarePart.RAYZIG, 0, len(image))
    # Nothing is raised before the image is committed.
    assert store.versions()[0] == FirmwareVersion(FirmwarePart.RAYZIG, "1.2.0", 2)
    assert send_chunks(store, FirmwarePart.RAYZIG, image) == len(image)
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
    store = gateway_store(public)
    signed = sign_manifest(private, manifest_for(image))
    store.begin(signed)
    held = send_chunks(store, FirmwarePart.RAYZIG, image, stop=2 * CHUNK_SIZE + 100)
    saved = stored(store.state())
    assert public.hex() in saved["trusted_keys"]

    again = FirmwareStore.restore(restored(FirmwareStoreState, saved))
    assert again.versions() == store.versions()
    # The client begins again with the same manifest and is told where to resume.
    assert again.begin(signed) == (FirmwarePart.RAYZIG, held, len(image))
    # The chunk whose acknowledgement was lost is still acknowledged idempotently.
    last = image[2 * CHUNK_SIZE : held]
    assert again.chunk(FirmwarePart.RAYZIG, 2 * CHUNK_SIZE, last, crc32(last))[1] == held
    send_chunks(again, FirmwarePart.RAYZIG, image, start=held)
    assert again.commit(FirmwarePart.RAYZIG).version == "1.3.0"


def test_restart_drops_tampered_partial_image(keys: tuple[bytes, bytes], image: bytes) -> None:
    private, public = keys
    store = gateway_store(public)
    store.begin(sign_manifest(private, manifest_for(image)))
    send_chunks(store, FirmwarePart.RAYZIG, image, stop=CHUNK_SIZE)
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
    store = gateway_store(public)
    store.begin(sign_manifest(private, manifest_for(image)))
    send_chunks(store, FirmwarePart.RAYZIG, image, stop=CHUNK_SIZE)
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
    store = gateway_store(keys[1])
    store.begin(sign_manifest(keys[0], manifest_for(image)))
    saved = stored(store.state())
    corrupt(saved)  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"wrong type or value|missing field|format"):
        restored(FirmwareStoreState, saved)


def test_chunk_crc_mismatch(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = gateway_store(keys[1])
    store.begin(sign_manifest(keys[0], manifest_for(image)))
    data = image[:CHUNK_SIZE]
    with pytest.raises(FirmwareIntegrityError, match=r"CRC mismatch.*resend") as info:
        store.chunk(FirmwarePart.RAYZIG, 0, data, crc32(data) ^ 1)
    assert info.value.code == 12
    assert store.progress(FirmwarePart.RAYZIG) == (FirmwarePart.RAYZIG, 0, len(image))
    assert store.chunk(FirmwarePart.RAYZIG, 0, data, crc32(data))[1] == CHUNK_SIZE


def test_repeated_chunk_is_idempotent_and_gaps_refused(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    store = gateway_store(keys[1])
    store.begin(sign_manifest(keys[0], manifest_for(image)))
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
    store = gateway_store(keys[1])
    with pytest.raises(FirmwareError, match="FirmwareBegin") as info:
        store.chunk(FirmwarePart.RAYZIG, 0, b"x", crc32(b"x"))
    assert info.value.code == 14
    assert not isinstance(info.value, FirmwareIntegrityError)
    store.begin(sign_manifest(keys[0], manifest_for(image)))
    send_chunks(store, FirmwarePart.RAYZIG, image, stop=len(image) - 10)
    extra = image[-10:] + b"more"
    with pytest.raises(FirmwareIntegrityError, match="beyond"):
        store.chunk(FirmwarePart.RAYZIG, len(image) - 10, extra, crc32(extra))
    with pytest.raises(FirmwareIntegrityError, match="empty"):
        store.chunk(FirmwarePart.RAYZIG, len(image) - 10, b"", crc32(b""))


def test_tampered_image_is_refused_and_version_unchanged(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    store = gateway_store(keys[1])
    before = store.versions()
    store.begin(sign_manifest(keys[0], manifest_for(image)))
    tampered = bytearray(image)
    tampered[3000] ^= 0x40
    send_chunks(store, FirmwarePart.RAYZIG, bytes(tampered))
    with pytest.raises(FirmwareIntegrityError, match=r"SHA-256.*unchanged") as info:
        store.commit(FirmwarePart.RAYZIG)
    assert info.value.code == 12
    assert store.versions() == before
    assert store.progress(FirmwarePart.RAYZIG) is None


def test_incomplete_image_cannot_be_committed(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = gateway_store(keys[1])
    before = store.versions()
    store.begin(sign_manifest(keys[0], manifest_for(image)))
    send_chunks(store, FirmwarePart.RAYZIG, image, stop=CHUNK_SIZE)
    with pytest.raises(FirmwareIntegrityError, match=r"incomplete.*resume from offset 2048"):
        store.commit(FirmwarePart.RAYZIG)
    assert store.versions() == before
    send_chunks(store, FirmwarePart.RAYZIG, image, start=CHUNK_SIZE)
    assert store.commit(FirmwarePart.RAYZIG).security_version == 3


def test_rollback_refused_and_equal_security_version_allowed(
    keys: tuple[bytes, bytes], image: bytes
) -> None:
    store = gateway_store(keys[1], rayzig_sv=4)
    before = store.versions()
    with pytest.raises(FirmwareRollbackError, match="downgrade refused") as info:
        store.begin(sign_manifest(keys[0], manifest_for(image, security_version=3)))
    assert info.value.code == 13
    assert store.versions() == before
    assert store.progress(FirmwarePart.RAYZIG) is None
    # Equal security version: a reinstall or a non-security release is allowed.
    store.begin(sign_manifest(keys[0], manifest_for(image, security_version=4, version="1.2.1")))
    send_chunks(store, FirmwarePart.RAYZIG, image)
    assert store.commit(FirmwarePart.RAYZIG) == FirmwareVersion(FirmwarePart.RAYZIG, "1.2.1", 4)


def test_wrong_hardware_part_or_key_refused(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = gateway_store(keys[1])
    before = store.versions()
    with pytest.raises(FirmwareIntegrityError, match="hardware 'RZ-GW9'"):
        store.begin(sign_manifest(keys[0], manifest_for(image, hardware="RZ-GW9")))
    with pytest.raises(FirmwareIntegrityError, match="no raydal firmware part"):
        store.begin(sign_manifest(keys[0], manifest_for(image, part=FirmwarePart.RAYDAL)))
    with pytest.raises(FirmwareSignatureError):
        store.begin(sign_manifest(generate_signing_key()[0], manifest_for(image)))
    assert store.versions() == before
    assert store.progress(FirmwarePart.RAYZIG) is None


def test_new_manifest_restarts_and_abort(keys: tuple[bytes, bytes], image: bytes) -> None:
    store = gateway_store(keys[1])
    store.begin(sign_manifest(keys[0], manifest_for(image)))
    send_chunks(store, FirmwarePart.RAYZIG, image, stop=CHUNK_SIZE)
    other = sign_manifest(keys[0], manifest_for(image, version="1.3.1"))
    assert store.begin(other) == (FirmwarePart.RAYZIG, 0, len(image))
    store.abort(FirmwarePart.RAYZIG)
    store.abort(FirmwarePart.RAYZIG)
    assert store.progress(FirmwarePart.RAYZIG) is None
