"""Fault injection at the fake kernel boundary (PROTOCOL.md §11.13): flips, NACKs, timeouts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Fault = Literal["flip", "nack", "busy", "timeout"]
"""The kinds of fault a :class:`FaultPlan` injects into one transaction."""


@dataclass(slots=True)
class FaultCounts:
    """Faults a :class:`FaultPlan` actually injected."""

    transactions: int = 0
    bit_flips: int = 0
    nacks: int = 0
    timeouts: int = 0
    busy: int = 0

    @property
    def total(self) -> int:
        """All injected faults."""
        return self.bit_flips + self.nacks + self.timeouts + self.busy


class FaultPlan:
    """Random faults applied per ``I2C_RDWR`` transaction at the fake kernel boundary.

    Each rate is a per-transaction probability; at most one fault hits a transaction (so the
    rates must add up to at most 1). Seeded, hence reproducible for a given sequence of calls.

    * ``bit_flip_rate`` — one random bit of one message is flipped in transit (the link's CRC
      must catch it);
    * ``nack_rate`` — the transfer stops at a random message with ``OSError(121)``: earlier
      messages were delivered, a write cut short delivers a random prefix;
    * ``timeout_rate`` — the slave sees the whole transaction but the host gets
      ``OSError(110)`` (its reply is lost);
    * ``busy_rate`` — the slave is busy: it ignores the write and answers BUSY.

    Rates are attributes and may be changed while running. :attr:`injected` counts what was done.
    """

    def __init__(
        self,
        bit_flip_rate: float = 0.0,
        nack_rate: float = 0.0,
        busy_rate: float = 0.0,
        timeout_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.bit_flip_rate = bit_flip_rate
        self.nack_rate = nack_rate
        self.busy_rate = busy_rate
        self.timeout_rate = timeout_rate
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self.injected = FaultCounts()
        self._check()

    def _check(self) -> None:
        rates = (self.bit_flip_rate, self.nack_rate, self.busy_rate, self.timeout_rate)
        if any(rate < 0 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")

    def draw(self) -> Fault | None:
        """Pick the fault (if any) for the next transaction."""
        self._check()
        self.injected.transactions += 1
        roll = self.rng.random()
        for kind, rate in (
            ("nack", self.nack_rate),
            ("timeout", self.timeout_rate),
            ("busy", self.busy_rate),
            ("flip", self.bit_flip_rate),
        ):
            if roll < rate:
                return kind  # type: ignore[return-value]
            roll -= rate
        return None
