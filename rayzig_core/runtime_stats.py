"""Runtime statistics of a module's outputs, folded from its event log (PROTOCOL.md §8.3).

Each output's total on-time and switching cycles, and the same per UTC clock hour, computed from
the records of the module's event log in sequence order. The rules (§8.3): an interval is counted
only while the output's state is known and the module is known to be powered; a GAP (records lost)
or a REPOWER (power lost at an unknown moment) ends every on-interval at the module's last record
before it, so runtime across a loss of records or of power is never invented; a module clock that
steps backwards counts no time until it passes its latest time again; an off → on transition is
one switching cycle. Folding is O(1) per record (plus one step per clock hour an interval spans);
a record whose sequence number was folded already is skipped, so a record is never counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from .models import Event, EventKind

HOUR_SECONDS: Final = 3600
"""Seconds of one statistics period (hours start at whole multiples of it, UTC)."""


@dataclass(slots=True)
class HourRow:
    """An output's totals at the end of one clock hour (cumulative, as long-term statistics)."""

    start: int
    """The hour's start, seconds since 1970-01-01 UTC (a multiple of :data:`HOUR_SECONDS`)."""
    on_seconds: float
    """Total on-time through the end of the hour."""
    cycles: int
    """Total switching cycles through the end of the hour."""


@dataclass(slots=True)
class OutputRuntime:
    """One output's state and totals."""

    is_on: bool | None = None
    """Its state after the last record (None: not known, e.g. after a GAP)."""
    since: float = 0.0
    """Module time from which on-time is not counted yet (meaningful while ``is_on``)."""
    on_seconds: float = 0.0
    cycles: int = 0
    rows: list[HourRow] = field(default_factory=list)
    """The hours whose totals changed and were not yet released (oldest first)."""


@dataclass(slots=True)
class ModuleRuntime:
    """A module's runtime statistics: where its log was folded to, and each output's totals."""

    serial: str
    """The module the totals belong to."""
    seq: int = 0
    """Sequence number of the last record folded (records up to it are skipped)."""
    time: float | None = None
    """The module's latest time seen in its log (never decreases)."""
    outputs: list[OutputRuntime] = field(default_factory=list)
    """By 0-based output index, up to the highest output that had a record."""
    unseen: bool | None = None
    """The state of an output without a record yet: off after POWER_ON or REPOWER (unpowered
    until a record switches it), not known at first and after a GAP."""
    backfill: bool = False
    """The log is being read from ``seq`` on for these totals alone (its whole history, in
    pages); records the caller pulls meanwhile are left to that read until it has caught up."""

    def fold(self, events: Iterable[Event]) -> set[int]:
        """Fold ``events`` (in sequence order) in; the outputs whose totals changed.

        Open on-intervals are then counted up to the module's latest time (the module logged a
        record then, so it was powered, and no record switched the output off).
        """
        changed: set[int] = set()
        for event in events:
            if event.seq > self.seq:
                self._fold_one(event, changed)
        if self.time is not None:
            for index, output in enumerate(self.outputs):
                if output.is_on:
                    _count(output, output.since, self.time, changed, index)
                    output.since = self.time
        return changed

    def completed(self) -> dict[int, list[HourRow]]:
        """Per output, the rows of hours that ended by the module's latest time (final now)."""
        if self.time is None:
            return {}
        end = self.time - HOUR_SECONDS
        done = {
            index: [row for row in output.rows if row.start <= end]
            for index, output in enumerate(self.outputs)
        }
        return {index: rows for index, rows in done.items() if rows}

    def release(self, before: dict[int, int]) -> None:
        """Forget, per output, the rows of hours that start before the given time (stored)."""
        for index, start in before.items():
            if index < len(self.outputs):
                output = self.outputs[index]
                output.rows = [row for row in output.rows if row.start >= start]

    def restart_log(self, seq: int) -> None:
        """The module's log began again after ``seq`` (PROTOCOL.md §8.2): states are unknown.

        Totals stay (they only grow); the next records fold from ``seq`` on.
        """
        self.seq = seq
        self.unseen = None
        self.backfill = False  # the new log is read whole from its start
        for output in self.outputs:
            output.is_on = None  # its on-time was counted up to the module's time by fold()

    def _fold_one(self, event: Event, changed: set[int]) -> None:
        previous = self.time
        # A clock step backwards counts no time: the module's time never decreases (§8.3).
        now = event.timestamp if previous is None else max(event.timestamp, previous)
        self.seq, self.time = event.seq, now
        kind = event.kind
        if kind in (EventKind.GAP, EventKind.REPOWER, EventKind.POWER_ON):
            # Records or power lost at an unknown moment: on-time ends at the last record before.
            for index, output in enumerate(self.outputs):
                if output.is_on and previous is not None:
                    _count(output, output.since, previous, changed, index)
                # Unpowered outputs are off; after lost records nothing is known.
                output.is_on = None if kind is EventKind.GAP else False
                output.since = now
            self.unseen = None if kind is EventKind.GAP else False
            return
        if event.output is None or event.is_on is None:
            return  # BATTERY_LOW, JOINED: only the module's time moves on
        index = event.output
        while len(self.outputs) <= index:  # outputs without a record yet: as ``unseen`` says
            self.outputs.append(OutputRuntime(is_on=self.unseen, since=now))
        output = self.outputs[index]
        if kind is EventKind.PRESET_APPLIED:
            if output.is_on and previous is not None:
                _count(output, output.since, previous, changed, index)  # its REPOWER was lost
            output.is_on = False  # applied after power came back: the output was unpowered
        elif output.is_on:
            _count(output, output.since, now, changed, index)
        if event.is_on and output.is_on is False:
            output.cycles += 1
            _touch(output, now)
            changed.add(index)
        output.is_on = event.is_on
        output.since = now


def _count(output: OutputRuntime, start: float, end: float, changed: set[int], index: int) -> None:
    """Add the on-interval ``start``..``end`` to the totals, split at hour boundaries."""
    if end <= start:
        return
    changed.add(index)
    while start < end:
        hour = int(start // HOUR_SECONDS) * HOUR_SECONDS
        piece_end = min(end, hour + HOUR_SECONDS)
        output.on_seconds += piece_end - start
        _touch(output, start)
        start = piece_end


def _touch(output: OutputRuntime, time: float) -> None:
    """Record the output's totals as those at the end of ``time``'s hour so far."""
    hour = int(time // HOUR_SECONDS) * HOUR_SECONDS
    rows = output.rows
    if rows and rows[-1].start == hour:
        rows[-1].on_seconds, rows[-1].cycles = output.on_seconds, output.cycles
    else:
        rows.append(HourRow(hour, output.on_seconds, output.cycles))
