"""Home Assistant benchmark: how soon entities are available again after a gateway outage.

Home Assistant runs the Rayzig integration as it is set up (the client's reconnect back-off
starts at ``RECONNECT_BACKOFF_INITIAL`` and doubles up to the integration's cap,
``RECONNECT_BACKOFF_MAX``, ±20 % jitter; while it waits, a probe every ``PROBE_INTERVAL`` ends the
wait as soon as the gateway answers; ``custom_components/rayzig/recovery.py``). For each outage
length the
virtual gateway (a child process) stops, which ends the session and closes its port; once every
Rayzig entity is unavailable it stays away for the rest of the outage, then starts again on the
same port from its saved state. Measured, on the one monotonic clock of both processes, from the
moment the gateway listens again ("answers"): until the first entity is available again and until
every entity that was available before is. Also: how long Home Assistant took to notice.

An outage of 0 s is a restart: stopped and started again at once.

RATIO = the longest wait, after the gateway answers, until every entity is available / 5 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback

from benchmarks.common import BenchResult, Row
from benchmarks.ha import cli
from benchmarks.ha.gateway_process import GatewayProcess, SiteShape
from benchmarks.ha.hass import entities_of, home_assistant, rayzig_entry
from benchmarks.ha.hass import run as run_hass
from custom_components.rayzig.recovery import (
    PROBE_INTERVAL,
    RECONNECT_BACKOFF_INITIAL,
    RECONNECT_BACKOFF_MAX,
)

NAME = "ha_recovery"
TITLE = "Home Assistant: entities available again after a gateway outage"
TARGET = 5.0
WAIT_LIMIT = 180.0
"""Longest wait for the entities to go away or come back."""


@dataclass(frozen=True, slots=True)
class Workload:
    """The site and the outage lengths (seconds, in order)."""

    shape: SiteShape
    outages: tuple[float, ...]


FULL = Workload(SiteShape(250, outputs=4), outages=(0.0, 3.0, 10.0, 20.0))
QUICK = Workload(SiteShape(50, outputs=4), outages=(0.0, 3.0))
SMOKE = Workload(SiteShape(3, outputs=2), outages=(0.0, 0.5))
WORKLOADS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


@dataclass(frozen=True, slots=True)
class Outage:
    """One outage, its times in seconds."""

    length: float
    noticed: float
    """From the gateway stopping until every watched entity was unavailable."""
    down: float
    """From the gateway stopping until it answered again."""
    first_back: float
    """From the gateway answering until the first entity was available."""
    all_back: float
    """From the gateway answering until every watched entity was available."""


class Availability:
    """Follows which of ``entity_ids`` are unavailable, with the times of the transitions."""

    def __init__(self, hass: HomeAssistant, entity_ids: set[str]) -> None:
        self.watched = entity_ids
        self.unavailable = {
            entity_id
            for entity_id in entity_ids
            if (state := hass.states.get(entity_id)) is None or state.state == STATE_UNAVAILABLE
        }
        self.changed = asyncio.Event()
        self.first_back: float | None = None
        self._unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, self._on_change)

    @callback
    def _on_change(self, event: Event[EventStateChangedData]) -> None:
        entity_id = event.data["entity_id"]
        if entity_id not in self.watched:
            return
        new = event.data["new_state"]
        if new is None or new.state == STATE_UNAVAILABLE:
            self.unavailable.add(entity_id)
        elif entity_id in self.unavailable:
            self.unavailable.discard(entity_id)
            if self.first_back is None:
                self.first_back = time.monotonic()
        self.changed.set()

    async def all_unavailable(self) -> float:
        """Wait until every watched entity is unavailable; ``time.monotonic()`` then."""
        return await self._until(lambda: self.unavailable == self.watched)

    async def all_available(self) -> float:
        """Wait until every watched entity is available; ``time.monotonic()`` then."""
        return await self._until(lambda: not self.unavailable)

    async def _until(self, condition: Callable[[], bool]) -> float:
        async with asyncio.timeout(WAIT_LIMIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()
        return time.monotonic()

    def close(self) -> None:
        """Stop following."""
        self._unsubscribe()


async def _measure(workload: Workload) -> tuple[int, list[Outage]]:
    gateway = await GatewayProcess.start(workload.shape)
    try:
        async with home_assistant(comparison=False) as home:
            hass = home.hass
            entry = rayzig_entry(gateway.port, await gateway.pair())
            await hass.config_entries.async_add(entry)
            await hass.async_block_till_done()
            watched = {
                entity_id
                for entity_id in entities_of(hass, entry)
                if (state := hass.states.get(entity_id)) is not None
                and state.state != STATE_UNAVAILABLE
            }
            outages: list[Outage] = []
            for length in workload.outages:
                availability = Availability(hass, watched)
                try:
                    stopped = time.monotonic()
                    await gateway.stop_gateway()
                    gone = await availability.all_unavailable()
                    await asyncio.sleep(max(0.0, stopped + length - time.monotonic()))
                    answered = await gateway.start_gateway()
                    availability.first_back = None
                    back = await availability.all_available()
                    first = availability.first_back or back
                finally:
                    availability.close()
                outages.append(
                    Outage(
                        length,
                        gone - stopped,
                        answered - stopped,
                        first - answered,
                        back - answered,
                    )
                )
                await hass.async_block_till_done()
            return len(watched), outages
    finally:
        await gateway.close()


def _report(workload: Workload, watched: int, outages: list[Outage], seconds: float) -> BenchResult:
    label = workload.shape.label
    details = [
        f"site {label}: {watched} Rayzig entities watched; client back-off from "
        f"{RECONNECT_BACKOFF_INITIAL:g} s doubling to {RECONNECT_BACKOFF_MAX:g} s (the "
        f"integration's cap), a probe every {PROBE_INTERVAL:g} s while it waits; times on the "
        "monotonic clock of both processes",
        "  outage s | noticed s | gateway away s | first back s | all back s (after it answers)",
    ]
    details += [
        f"  {o.length:8.1f} | {o.noticed:9.3f} | {o.down:14.3f} | {o.first_back:12.3f} | "
        f"{o.all_back:10.3f}"
        for o in outages
    ]
    rows = [
        Row(
            f"{label}: outage of {o.length:g} s: every entity available again",
            f"{o.all_back:.2f} s after the gateway answered (first {o.first_back:.2f} s; "
            f"noticed in {o.noticed:.2f} s)",
            f"≤ {TARGET:g} s",
            o.all_back <= TARGET,
        )
        for o in outages
    ]
    worst = max(o.all_back for o in outages)
    return BenchResult(
        NAME,
        TITLE,
        worst / TARGET,
        f"longest wait until every entity is available, after the gateway answers / {TARGET:g} s "
        "(target ≤ 1)",
        rows,
        details,
        seconds,
    )


def run(workload: Workload = FULL) -> BenchResult:
    """Run the benchmark and return its result."""
    started = time.perf_counter()
    watched, outages = run_hass(_measure(workload))
    return _report(workload, watched, outages, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.ha_recovery [--workload full|quick|smoke]``."""
    cli.main(__doc__.splitlines()[0], run, WORKLOADS, argv)


if __name__ == "__main__":
    main()
