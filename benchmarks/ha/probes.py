"""What the Home Assistant benchmarks measure with: command latency, state writes, memory.

* :func:`toggle` calls ``turn_on``/``turn_off`` on an entity and times it until the new state is
  on the bus (the ``state_changed`` event), as an automation waiting for it would see it.
* :class:`StateWrites` counts every state write of every entity (``Entity._async_write_ha_state``
  is wrapped while it is active: the writes that change nothing are counted too, and they cost
  the same work) and every ``state_changed`` event (the writes that changed the state or its
  attributes).
* :func:`rss` reads this process's resident set size from ``/proc`` after a full collection.
"""

from __future__ import annotations

import asyncio
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
