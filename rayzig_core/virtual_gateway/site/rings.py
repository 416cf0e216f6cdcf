"""A module's event log (PROTOCOL.md §8): a fixed ring whose sequence numbers are never reused.

Stored compactly in the gateway's state file (§12): capacity, the first sequence number held and
one short array per record, ``[timestamp, kind, output, user, is_on]`` with trailing nulls dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from mashumaro.types import SerializationStrategy

from rayzig_core.models import MAX_EVENTS_PER_MODULE, Event, EventKind
from rayzig_core.storage import StoredValueError
from rayzig_core.virtual_gateway.site.limits import MAX_OUTPUTS

EventRecord: TypeAlias = tuple[float, EventKind, int | None, str | None, bool | None]
"""One stored record: ``(timestamp, kind, output, user, is_on)``; module and seq are implied."""


class EventRing:
    """A module's event log: a fixed-capacity ring whose sequence numbers are never reused.

    The record with sequence number ``seq`` lives at slot ``(seq - 1 - base) % capacity``, so a
    read is a direct index and a wrap simply overwrites the oldest record; ``base`` is 0 for a new
    ring, and the sequence number before the first record held after :meth:`clear` or a reload.
    """

    __slots__ = ("_base", "_buffer", "_capacity", "_newest_seq")

    def __init__(self, capacity: int = MAX_EVENTS_PER_MODULE) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError("ring capacity must be a positive integer")
        self._capacity = capacity
        self._buffer: list[Event] = []
        self._newest_seq = 0
        self._base = 0

    @property
    def capacity(self) -> int:
        """Most records the ring holds before it overwrites the oldest."""
        return self._capacity

    @property
    def newest_seq(self) -> int:
        """Sequence number of the newest record, 0 if nothing was ever logged."""
        return self._newest_seq

    @property
    def oldest_seq(self) -> int:
        """Sequence number of the oldest record still held (``newest_seq + 1`` when empty)."""
        return self._newest_seq - len(self._buffer) + 1

    @property
    def count(self) -> int:
        """Records currently held (at most ``capacity``)."""
        return len(self._buffer)

    def append(
        self,
        *,
        module_id: int,
        timestamp: float,
        kind: EventKind,
        output: int | None = None,
        user: str | None = None,
        is_on: bool | None = None,
    ) -> Event:
        """Log one record with the next sequence number, overwriting the oldest when full."""
        if kind is EventKind.GAP:
            raise ValueError("GAP records are synthesised by clients, never logged by a module")
        seq = self._newest_seq + 1
        event = Event(
            module_id=module_id,
            seq=seq,
            timestamp=float(timestamp),
            kind=EventKind(kind),
            output=output,
            user=user,
            is_on=is_on,
        )
        if len(self._buffer) < self._capacity:
            self._buffer.append(event)
        else:
            self._buffer[(seq - 1 - self._base) % self._capacity] = event
        self._newest_seq = seq
        return event

    def clear(self) -> int:
        """Erase every record (a factory reset); returns how many were held.

        Sequence numbers go on from :attr:`newest_seq`: they are never reused, so a reader's
        cursor never points past the log, and records it had not read count as lost (§8.2).
        """
        erased = len(self._buffer)
        self._buffer = []
        self._base = self._newest_seq
        return erased

    def read(self, after_seq: int, max_count: int) -> list[Event]:
        """Return records with seq > ``after_seq``, oldest first, at most ``max_count``.

        If ``after_seq`` lies in the overwritten region the read starts at the oldest record held;
        the caller detects the gap by comparing ``after_seq + 1`` with the first seq returned.
        """
        if max_count <= 0:
            return []
        start = max(after_seq + 1, self.oldest_seq)
        stop = min(self._newest_seq, start + max_count - 1)
        capacity = self._capacity
        buffer = self._buffer
        offset = 1 + self._base
        return [buffer[(seq - offset) % capacity] for seq in range(start, stop + 1)]

    def __iter__(self) -> Iterator[Event]:
        """Iterate over the held records, oldest first."""
        return iter(self.read(self.oldest_seq - 1, len(self._buffer)))

    def state(self) -> RingState:
        """The ring as stored: its capacity and the records held, oldest first."""
        return RingState(
            capacity=self._capacity,
            first_seq=self.oldest_seq,
            events=tuple(
                (event.timestamp, event.kind, event.output, event.user, event.is_on)
                for event in self.read(self.oldest_seq - 1, len(self._buffer))
            ),
        )

    @classmethod
    def restore(cls, state: RingState, module_id: int) -> EventRing:
        """The ring :meth:`state` described, its records numbered from ``first_seq``."""
        # A ring that has wrapped is full; one cleared by a factory reset (or a reset and then
        # wrapped) starts after 1 with any number of records: both are laid out from slot 0.
        ring = cls(state.capacity)
        first = state.first_seq
        ring._buffer = [
            Event(module_id, first + offset, timestamp, kind, output, user, is_on)
            for offset, (timestamp, kind, output, user, is_on) in enumerate(state.events)
        ]
        ring._base = first - 1
        ring._newest_seq = first + len(state.events) - 1
        return ring


class _CompactRecords(SerializationStrategy):
    """Records as ``[timestamp, kind, output, user, is_on]`` arrays without trailing nulls."""

    def serialize(self, value: tuple[EventRecord, ...]) -> list[list[object]]:
        records: list[list[object]] = []
        for timestamp, kind, output, user, is_on in value:
            record: list[object] = [timestamp, int(kind), output, user, is_on]
            while len(record) > 2 and record[-1] is None:
                record.pop()
            records.append(record)
        return records

    def deserialize(self, value: object) -> tuple[EventRecord, ...]:
        if not isinstance(value, list):
            raise StoredValueError("events must be an array")
        return tuple(_record(raw, index) for index, raw in enumerate(value))


def _record(raw: object, index: int) -> EventRecord:
    """Check and read one stored record (``index``: its position in the ring, for the message)."""
    where = f"event record {index}"
    if not isinstance(raw, list) or not 2 <= len(raw) <= 5:
        raise StoredValueError(f"{where}: expected an array of 2 to 5 fields")
    timestamp, kind_value, output, user, is_on = raw + [None] * (5 - len(raw))
    if type(timestamp) not in (int, float) or not math.isfinite(timestamp):
        raise StoredValueError(f"{where}: the timestamp must be a finite number")
    if type(kind_value) is not int or kind_value not in EventKind._value2member_map_:
        raise StoredValueError(f"{where}: unknown event kind")
    kind = EventKind(kind_value)
    if kind is EventKind.GAP:
        raise StoredValueError(f"{where}: GAP records cannot be stored in a ring")
    if output is not None and (type(output) is not int or not 0 <= output < MAX_OUTPUTS):
        raise StoredValueError(f"{where}: the output must be 0..{MAX_OUTPUTS - 1}")
    if user is not None and (type(user) is not str or not user):
        raise StoredValueError(f"{where}: the user must be a non-empty string")
    if is_on is not None and type(is_on) is not bool:
        raise StoredValueError(f"{where}: is_on must be true or false")
    return float(timestamp), kind, output, user, is_on


@dataclass(frozen=True, slots=True)
class RingState:
    """An event-log ring as stored: capacity, first sequence number held, records in order."""

    capacity: int
    first_seq: int
    events: tuple[EventRecord, ...] = field(metadata={"serialization_strategy": _CompactRecords()})

    def __post_init__(self) -> None:
        """Refuse a ring that could not exist: no capacity, seq 0, more records than room."""
        if self.capacity < 1:
            raise StoredValueError("ring capacity must be at least 1")
        if self.first_seq < 1:
            raise StoredValueError("ring first_seq must be at least 1")
        if len(self.events) > self.capacity:
            raise StoredValueError("event ring: more records than its capacity")
