"""The gateway's budget of password checks: at most 100 in any minute, all names and sources.

Per-name throttles (§6.3) cannot stop guessing with ever new user names, each of which has its
free attempts; this budget bounds the scrypt work and the guesses of the whole gateway
(PROTOCOL.md §6.5). Checks asked by unenrolled sessions may take at most
:data:`UNENROLLED_CHECKS` of the :data:`CHECKS_PER_WINDOW`, so that a flood from anyone who reaches
the port leaves paired sessions checks of their own (a password change). The window is kept as
the times of the checks it holds, and persisted (§12), so a restart does not refill it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from rayzig_core.storage import StoredValueError

CHECKS_PER_WINDOW: Final = 100
"""Password and recovery-secret checks the whole gateway makes in any :data:`WINDOW_SECONDS`."""
UNENROLLED_CHECKS: Final = 90
"""Of those, the most that unenrolled sessions may ask for; the rest is kept for paired ones."""
WINDOW_SECONDS: Final = 60.0
"""Length of the sliding window."""


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """One check in the window, as stored: when it was made and whether a paired session asked."""

    at: float
    enrolled: bool

    def __post_init__(self) -> None:
        """Refuse a time that is not a finite, non-negative number."""
        if not 0 <= self.at < float("inf"):
            raise StoredValueError("a password check's time must be a finite, non-negative number")


class CheckBudget:
    """The sliding window of the gateway's latest password checks (at most 100 are kept)."""

    def __init__(self, records: tuple[CheckRecord, ...] = ()) -> None:
        self._records: deque[CheckRecord] = deque(
            sorted(records, key=lambda record: record.at)[-CHECKS_PER_WINDOW:]
        )

    def take(self, now: float, *, enrolled: bool) -> float:
        """Count a check made at ``now`` and return 0, or return the seconds until one is allowed.

        The wait is always 0 < wait ≤ :data:`WINDOW_SECONDS`, even if the clock went back.
        """
        self._forget_before(now)
        records = self._records
        waits: list[float] = []
        if len(records) >= CHECKS_PER_WINDOW:
            waits.append(records[0].at + WINDOW_SECONDS - now)
        if not enrolled:
            unenrolled = [record for record in records if not record.enrolled]
            if len(unenrolled) >= UNENROLLED_CHECKS:
                # The slot frees when the oldest unenrolled check that must go leaves the window.
                waits.append(unenrolled[-UNENROLLED_CHECKS].at + WINDOW_SECONDS - now)
        if waits:
            return min(max(waits), WINDOW_SECONDS)  # > 0: older checks have left the window
        records.append(CheckRecord(now, enrolled))
        return 0.0

    def records(self) -> tuple[CheckRecord, ...]:
        """The checks in the window, oldest first, as stored."""
        return tuple(self._records)

    def _forget_before(self, now: float) -> None:
        """Drop the checks older than the window.

        A check dated after ``now`` (the clock was set back) counts as made now, so a wrong clock
        can hold the budget for a minute at most.
        """
        records = self._records
        while records and records[0].at + WINDOW_SECONDS <= now:
            records.popleft()
        if records and records[-1].at > now:
            self._records = deque(
                CheckRecord(min(record.at, now), record.enrolled) for record in records
            )
