"""The Home Assistant recorder as the import benchmark sees it: its backlog, its rows, its file.

* :class:`BacklogWatch` samples the recorder's queue (``Recorder.backlog``) and notes its peak,
  the time spent above the size at which the recorder's 5-minute check may stop recording
  (``MAX_QUEUE_BACKLOG_MIN_VALUE``, 65,000, when less than 256 MB of memory is free), and when
  the queue was last seen empty.
* :func:`flush` makes the recorder commit what it holds and waits until it has (what HA's own
  test helper ``async_wait_recording_done`` does).
* :func:`stored_events` reads the ``(module_id, seq)`` of every stored event of one type from the
  database file, on a connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

from homeassistant.components.recorder.const import MAX_QUEUE_BACKLOG_MIN_VALUE
from homeassistant.components.recorder.tasks import CommitTask
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import get_instance

SAMPLE_INTERVAL = 0.05


class BacklogWatch:
    """Samples the recorder's queue length until stopped."""

    def __init__(self, hass: HomeAssistant) -> None:
        self._recorder = get_instance(hass)
        self.peak = 0
        self.above_limit = 0.0
        """Seconds during which the queue held more than MAX_QUEUE_BACKLOG_MIN_VALUE items."""
        self.last_empty = time.perf_counter()
        """``perf_counter`` when the queue was last seen empty."""
        self._sampled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        """Items in the recorder's queue now."""
        return self._recorder.backlog

    def start(self) -> BacklogWatch:
        """Start sampling."""
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            backlog = self._recorder.backlog
            now = time.perf_counter()
            self.peak = max(self.peak, backlog)
            if backlog > MAX_QUEUE_BACKLOG_MIN_VALUE:
                self.above_limit += SAMPLE_INTERVAL
            if backlog == 0:
                self.last_empty = now
            self._sampled.set()
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def drained(self, since: float, timeout: float) -> float:
        """Wait until the queue is seen empty after ``since`` (perf_counter); when it was."""
        async with asyncio.timeout(timeout):
            while self.last_empty <= since:
                self._sampled.clear()
                await self._sampled.wait()
        return self.last_empty

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def flush(hass: HomeAssistant) -> None:
    """Have the recorder commit everything it has been given, and wait until it has."""
    await hass.async_block_till_done()
    recorder = get_instance(hass)
    recorder.queue_task(CommitTask())
    await recorder.async_block_till_done()


def _read_stored(database: Path, event_type: str) -> Counter[tuple[int, int]]:
    found: Counter[tuple[int, int]] = Counter()
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT event_data.shared_data FROM events "
            "JOIN event_types ON events.event_type_id = event_types.event_type_id "
            "LEFT JOIN event_data ON events.data_id = event_data.data_id "
            "WHERE event_types.event_type = ?",
            (event_type,),
        )
        for (shared,) in rows:
            data = json.loads(shared) if shared else {}
            found[int(data.get("module_id", -1)), int(data.get("seq", -1))] += 1
    return found


async def stored_events(
    hass: HomeAssistant, database: Path, event_type: str
) -> Counter[tuple[int, int]]:
    """How often each ``(module_id, seq)`` of ``event_type`` events is in the database."""
    return await hass.async_add_executor_job(_read_stored, database, event_type)


def database_bytes(database: Path) -> int:
    """Size of the database file and its write-ahead log."""
    return sum(
        path.stat().st_size
        for path in (database, database.with_name(database.name + "-wal"))
        if path.exists()
    )
