"""``rayzig events``: read the modules' event logs after a cursor, then optionally follow them.

Records come in sequence order per module (PROTOCOL.md §8.1); when the ring overwrote records
after the cursor, a GAP record says how many were lost (§8.2). Following waits for the gateway's
EventsAvailable notifications (§5.4), never polls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rayzig_core.cli.connection import ClientOptions
from rayzig_core.cli.errors import EXIT_OK, EXIT_REFUSED, CliError
from rayzig_core.cli.output import Out, Progress, iso_time
from rayzig_core.cli.session import paired_session
from rayzig_core.cli.signals import stop_on_signals
from rayzig_core.cli.spec import handler
from rayzig_core.client import RayzigClient
from rayzig_core.eventlog import gap_before
from rayzig_core.models import Event, EventKind
from rayzig_core.protocol import messages as m

EVENT_BATCH = 512
PROGRESS_MIN_EVENTS = EVENT_BATCH
"""Event reads longer than one batch show a progress bar (on a terminal)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsOptions(ClientOptions):
    """Which module (None: all), after which sequence number, and whether to follow."""

    module: int | None
    since: int
    follow: bool
    timeout_follow: float | None


def event_json(event: Event) -> dict[str, Any]:
    """An event record as ``--json`` shows it (output numbered from 1)."""
    return {
        "module": event.module_id,
        "seq": event.seq,
        "time": iso_time(event.timestamp),
        "timestamp": event.timestamp,
        "kind": event.kind.name.lower(),
        "output": None if event.output is None else event.output + 1,
        "user": event.user,
        "on": event.is_on,
        "lost": event.lost,
    }


def event_text(event: Event, names: dict[int, str]) -> str:
    """An event record as one line for people."""
    where = f"module {event.module_id}"
    if event.module_id in names:
        where += f" ({names[event.module_id]})"
    parts = [iso_time(event.timestamp), f"#{event.seq}", where, event.kind.name.lower()]
    if event.kind is EventKind.GAP:
        parts.append(f"- {event.lost} events were overwritten before they could be read")
        return "  ".join(parts)
    if event.output is not None:
        parts.append(f"output {event.output + 1}")
    if event.is_on is not None:
        parts.append("on" if event.is_on else "off")
    if event.user:
        parts.append(f"by {event.user}")
    return "  ".join(parts)


async def read_after(
    client: RayzigClient, module_id: int, cursor: int, on_batch: Callable[[int], None]
) -> tuple[list[Event], int]:
    """Every record of a module after ``cursor`` (a GAP record first if some were overwritten)."""
    batch = await client.read_events(module_id, cursor, EVENT_BATCH)
    if batch.newest_seq < cursor:  # the module's log restarted (module replaced or reset)
        cursor = 0
        batch = await client.read_events(module_id, 0, EVENT_BATCH)
    events: list[Event] = []
    # A cursor of 0 asks for the whole log: nothing before it counts as lost (PROTOCOL.md §8.2).
    if cursor > 0 and (gap := gap_before(module_id, batch, cursor)):
        events.append(gap)
    while True:
        events.extend(batch.events)
        on_batch(len(batch.events))
        if batch.events:
            cursor = batch.events[-1].seq
        elif batch.oldest_seq <= cursor + 1:
            cursor = max(cursor, batch.newest_seq)  # nothing it sees follows, nothing was lost
        if not batch.events or cursor >= batch.newest_seq:
            return events, cursor
        batch = await client.read_events(module_id, cursor, EVENT_BATCH)


@handler(EventsOptions)
async def events(options: EventsOptions, out: Out) -> int:
    """Dump event logs after --since, then optionally follow new events."""
    async with paired_session(options) as (client, _):
        modules = await client.list_modules()
        names = {module.module_id: module.name for module in modules}
        if options.module is not None:
            if options.module not in names:
                raise CliError(f"There is no module {options.module}.", EXIT_REFUSED)
            modules = [module for module in modules if module.module_id == options.module]
        wanted = {module.module_id for module in modules}
        pending: asyncio.Queue[int] = asyncio.Queue()

        def on_notice(notice: m.Notification) -> None:
            if isinstance(notice, m.EventsAvailable) and (
                options.module is None or notice.module_id in wanted
            ):
                pending.put_nowait(notice.module_id)
            elif isinstance(notice, m.ModuleJoined):
                names[notice.module.module_id] = notice.module.name

        unsubscribe = client.subscribe(on_notice) if options.follow else None
        total = sum(
            max(0, min(module.event_seq - options.since, module.event_count)) for module in modules
        )
        progress = Progress("Reading events", total, "events")
        progress.enabled = progress.enabled and total > PROGRESS_MIN_EVENTS
        read = 0

        def on_batch(count: int) -> None:
            nonlocal read
            read += count
            progress.update(read, max(total, read))

        cursors: dict[int, int] = {}
        collected: list[Event] = []
        for module in modules:
            found, cursors[module.module_id] = await read_after(
                client, module.module_id, options.since, on_batch
            )
            if options.follow:
                for event in found:
                    out.record(event_json(event), event_text(event, names))
            else:
                collected.extend(found)
        progress.finish()
        if not options.follow:
            out.result(
                {"events": [event_json(e) for e in collected], "cursors": cursors},
                "\n".join(event_text(e, names) for e in collected) or "No events.",
            )
            return EXIT_OK
        Out.note("Following new events; press Ctrl-C to stop.")
        try:
            await _follow(
                client,
                pending,
                cursors=cursors,
                names=names,
                out=out,
                duration=options.timeout_follow,
            )
        finally:
            if unsubscribe is not None:
                unsubscribe()
    return EXIT_OK


async def _follow(
    client: RayzigClient,
    pending: asyncio.Queue[int],
    *,
    cursors: dict[int, int],
    names: dict[int, str],
    out: Out,
    duration: float | None,
) -> None:
    """Print the new records of each module announced on ``pending`` until stopped."""
    stop = asyncio.Event()
    deadline = None if duration is None else time.monotonic() + duration
    with stop_on_signals(stop):
        while not stop.is_set():
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                module_id = await asyncio.wait_for(pending.get(), wait)
            except TimeoutError:
                continue
            found, cursors[module_id] = await read_after(
                client, module_id, cursors.get(module_id, 0), lambda _: None
            )
            for event in found:
                out.record(event_json(event), event_text(event, names))
