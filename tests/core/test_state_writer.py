"""The state file written off the event loop, newest state winning (PROTOCOL.md §12, §6.5)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from rayzig_core import storage
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway
from rayzig_core.virtual_gateway.server import state_store
from rayzig_core.virtual_gateway.state_writer import StateWriter
from tests.core.conftest import RawSession

WAIT = 10.0


def _writer(tmp_path: Path) -> tuple[VirtualGateway, StateWriter]:
    gateway, _ = VirtualGateway.factory_new(scrypt_n=2**4)
    return gateway, StateWriter(gateway, state_store(tmp_path / "gw.json"))


def _saved_counter(tmp_path: Path) -> int:
    state = state_store(tmp_path / "gw.json").load()
    assert state is not None
    return state.next_client_id


async def test_a_background_write_runs_off_the_loop_and_reports_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, writer = _writer(tmp_path)
    writers: list[str] = []
    real = storage.write_atomic

    def spy(path: Path, data: bytes, **options: int) -> None:
        writers.append(threading.current_thread().name)
        real(path, data, **options)

    monkeypatch.setattr(storage, "write_atomic", spy)
    loop_thread = threading.current_thread()
    reported: asyncio.Future[tuple[BaseException | None, bool]] = (
        asyncio.get_running_loop().create_future()
    )
    gateway.accounts.next_client_id = 42
    writer.save_in_background(
        lambda error: reported.set_result((error, threading.current_thread() is loop_thread))
    )
    try:
        assert await asyncio.wait_for(reported, WAIT) == (None, True)
        assert [name.startswith("rayzig-state-writer") for name in writers] == [True]
        assert _saved_counter(tmp_path) == 42
    finally:
        writer.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("rayzig-state-writer")]


async def test_an_older_background_write_never_replaces_a_newer_state(tmp_path: Path) -> None:
    gateway, writer = _writer(tmp_path)
    first: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    writer.save_in_background(first.set_result)
    assert await asyncio.wait_for(first, WAIT) is None
    # The writer's thread is busy: the next background write waits in its queue.
    busy = threading.Event()
    executor = writer._executor
    assert executor is not None
    executor.submit(busy.wait, WAIT)
    gateway.accounts.next_client_id = 10
    older: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    writer.save_in_background(older.set_result)
    # Meanwhile a newer state is written at once (a stop, say).
    gateway.accounts.next_client_id = 11
    writer.save_now()
    busy.set()
    try:
        assert await asyncio.wait_for(older, WAIT) is None  # reported: a newer state is on disk
        assert _saved_counter(tmp_path) == 11
    finally:
        writer.close()


async def test_a_failed_attempts_write_leaves_the_gateways_loop_free(
    owned: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through the TCP server, which hands durable writes to a StateWriter."""
    assert owned.call(lambda g: g.on_save_in_background is not None)
    writers: list[str] = []
    real = storage.write_atomic

    def spy(path: Path, data: bytes, **options: int) -> None:
        writers.append(threading.current_thread().name)
        real(path, data, **options)

    monkeypatch.setattr(storage, "write_atomic", spy)
    stranger = await RawSession.open(owned.port)
    try:
        answer = await stranger.request(1, m.Pair("nobody", "wrong wrong wrong wrong", "x"))
        assert isinstance(answer, m.ErrorResponse)
        assert answer.code is m.ErrorCode.INVALID_CREDENTIALS
    finally:
        await stranger.close()
    assert writers
    assert all(name.startswith("rayzig-state-writer") for name in writers), writers
