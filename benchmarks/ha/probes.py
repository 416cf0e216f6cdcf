"""What the Home Assistant benchmarks measure with: command latency, state writes, memory.

* :func:`toggle` calls ``turn_on``/``turn_off`` on an entity and times it until the new state is
  on the bus (the ``state_changed`` event), as an automation waiting for it would see it.
* :class:`StateWrites` counts every state write of every entity (``Entity._async_write_ha_state``
  is wrapped while it is active: the writes that change nothing are counted too, and they cost
  the same work) and every ``state_changed`` event (the writes that changed the state or its
  attributes).
* :func:`rss` reads this process's resident set size from ``/proc`` after a full collection.
* :class:`LoopSpans` times every callback the event loop runs while active (``Handle._run`` is
  wrapped: two clock reads per callback) and keeps those that held the loop longer than a bound:
  while one runs, nothing else on the loop (a command, a state write) can. It also times the
  garbage collector's full (generation 2) collections meanwhile, which stop every thread.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import gc
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from homeassistant.const import EVENT_STATE_CHANGED, STATE_ON
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.event import async_track_state_change_event

COMMAND_TIMEOUT = 30.0
QUIET = 0.05
"""Seconds without a state write after which a command's consequences are taken as complete."""
SETTLE_LIMIT = 5.0
"""Longest wait for that quiet."""


async def toggle(hass: HomeAssistant, entity_id: str) -> float:
    """Switch ``entity_id`` to the opposite state; seconds until the new state is on the bus."""
    state = hass.states.get(entity_id)
    if state is None:
        raise RuntimeError(f"{entity_id} has no state")
    turn_on = state.state != STATE_ON
    wanted = STATE_ON if turn_on else "off"
    arrived: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None and new.state == wanted and not arrived.done():
            arrived.set_result(time.perf_counter())

    unsubscribe = async_track_state_change_event(hass, entity_id, changed)
    try:
        started = time.perf_counter()
        call = asyncio.ensure_future(
            hass.services.async_call(
                entity_id.split(".", 1)[0],
                "turn_on" if turn_on else "turn_off",
                {"entity_id": entity_id},
                blocking=True,
            )
        )
        async with asyncio.timeout(COMMAND_TIMEOUT):
            done = await arrived
            await call
    finally:
        unsubscribe()
    return done - started


def rss() -> int:
    """Resident set size of this process in bytes, after a full garbage collection."""
    gc.collect()
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class StateWrites:
    """Counts state writes per entity and ``state_changed`` events while active (a context)."""

    def __init__(self, hass: HomeAssistant) -> None:
        self._hass = hass
        self.writes: Counter[str] = Counter()
        """Entity id → state writes (``_async_write_ha_state`` calls)."""
        self.changes: Counter[str] = Counter()
        """Entity id → ``state_changed`` events."""
        self.last_write = 0.0
        """``perf_counter`` of the latest write."""
        self._original: Callable[[Entity], None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def __enter__(self) -> StateWrites:
        original = Entity._async_write_ha_state  # the instrument
        writes = self.writes

        def counted(entity: Entity) -> None:
            writes[entity.entity_id] += 1
            self.last_write = time.perf_counter()
            original(entity)

        self._original = original
        Entity._async_write_ha_state = counted  # type: ignore[method-assign,assignment]

        @callback
        def changed(event: Event[EventStateChangedData]) -> None:
            self.changes[event.data["entity_id"]] += 1

        self._unsubscribe = self._hass.bus.async_listen(EVENT_STATE_CHANGED, changed)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._original is not None:
            Entity._async_write_ha_state = self._original  # type: ignore[method-assign,assignment]
            self._original = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        """Copies of the write and change counters."""
        return Counter(self.writes), Counter(self.changes)

    async def settle(self) -> None:
        """Wait until no entity has written its state for :data:`QUIET` seconds."""
        deadline = time.perf_counter() + SETTLE_LIMIT
        await self._hass.async_block_till_done()
        while time.perf_counter() < deadline:
            quiet_for = time.perf_counter() - self.last_write
            if quiet_for >= QUIET:
                return
            await asyncio.sleep(QUIET - quiet_for)
            await self._hass.async_block_till_done()


LONG_SPAN = 0.005
"""A callback that holds the event loop longer than this (seconds) counts as loop-blocking."""


class LoopSpans:
    """Callbacks that held the event loop longer than :data:`LONG_SPAN` while active (a context).

    Each is named by its task's coroutine (or its callback), so the report says whose work it was.
    """

    def __init__(self) -> None:
        self.long: list[tuple[float, str]] = []
        """(seconds, owner) of every callback that ran longer than :data:`LONG_SPAN`."""
        self._original: Callable[[asyncio.events.Handle], None] | None = None
        self.full_collections: list[float] = []
        """Seconds each full garbage collection took."""
        self._collecting = 0.0

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._collecting = time.perf_counter()
        else:
            self.full_collections.append(time.perf_counter() - self._collecting)

    def __enter__(self) -> LoopSpans:
        gc.callbacks.append(self._on_collection)
        original = asyncio.events.Handle._run  # the instrument
        long = self.long

        def timed(handle: asyncio.events.Handle) -> None:
            started = time.perf_counter()
            original(handle)
            elapsed = time.perf_counter() - started
            if elapsed > LONG_SPAN:
                long.append((elapsed, _owner(handle)))

        self._original = original
        asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._original is not None:
            asyncio.events.Handle._run = self._original  # type: ignore[method-assign,assignment]
            self._original = None
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def summary(self) -> str:
        """``3 over 5 ms, longest 12.3 ms (RayzigEventImporter._run_pending); ...``."""
        if self.long:
            seconds, owner = max(self.long)
            spans = (
                f"{len(self.long)} over {LONG_SPAN * 1e3:.0f} ms, longest {seconds * 1e3:.1f} ms "
                f"({owner})"
            )
        else:
            spans = f"none over {LONG_SPAN * 1e3:.0f} ms"
        collections = self.full_collections
        if not collections:
            return f"{spans}; no full garbage collection"
        return (
            f"{spans}; {len(collections)} full garbage collections, the longest "
            f"{max(collections) * 1e3:.1f} ms"
        )


def _owner(handle: asyncio.events.Handle) -> str:
    """The coroutine of the task a callback steps, else the callback's own name."""
    callback_ = getattr(handle, "_callback", None)
    owner = getattr(callback_, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return str(getattr(owner.get_coro(), "__qualname__", owner.get_name()))
    return str(getattr(callback_, "__qualname__", type(callback_).__name__))
