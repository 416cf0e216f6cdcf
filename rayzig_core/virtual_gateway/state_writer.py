"""The gateway's state file written off the event loop, newest state winning (PROTOCOL.md §12).

A failed password attempt must be on disk before its answer leaves (§6.3, §12), but the loop
must not wait for that fsync: paired sessions are served meanwhile (§6.5). The state is encoded
on the loop (a consistent snapshot) and written, atomically and durably, on one writer thread;
the caller is told on the loop once it is on disk. Writes happen in the order of their
snapshots, and a snapshot older than the one on disk is never written, so a write made at once
(:meth:`StateWriter.save_now`, e.g. on stop) is never undone by an older background one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable

from rayzig_core import storage
from rayzig_core.storage import JsonStore
from rayzig_core.virtual_gateway.device.gateway import VirtualGateway
from rayzig_core.virtual_gateway.device.state import GatewayState


class StateWriter:
    """Writes one gateway's state file, at once or on a background thread."""

    def __init__(self, gateway: VirtualGateway, store: JsonStore[GatewayState]) -> None:
        self.gateway = gateway
        self.store = store
        self._lock = threading.Lock()
        self._taken = 0
        """Snapshots taken (each one's number is its order)."""
        self._written = 0
        """Number of the newest snapshot on disk."""
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def _snapshot(self) -> tuple[bytes, int]:
        self._taken += 1
        return self.store.dumps(self.gateway.state()), self._taken

    def _write(self, data: bytes, number: int) -> None:
        with self._lock:
            if number <= self._written:
                return  # a newer state is on disk already
            storage.write_atomic(self.store.path, data)
            self._written = number

    def save_now(self) -> None:
        """Write the state durably before returning (after a background write under way)."""
        self._write(*self._snapshot())

    def save_in_background(self, done: Callable[[BaseException | None], None]) -> None:
        """Write the state durably on the writer thread; ``done(error)`` follows on the loop."""
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="rayzig-state-writer"
            )
        future = self._executor.submit(self._write, *self._snapshot())

        def written(future: concurrent.futures.Future[None]) -> None:
            error = None if future.cancelled() else future.exception()
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(done, error)

        future.add_done_callback(written)

    def close(self) -> None:
        """Finish the writes under way and stop the writer thread."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
