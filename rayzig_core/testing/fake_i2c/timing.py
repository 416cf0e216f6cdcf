"""The wire-time model of a fake I2C bus (PROTOCOL.md §11.11): what each transaction costs."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence


class BusTiming:
    """Wire-time model of an I2C bus at ``clock_hz`` (PROTOCOL.md §11.11).

    One transaction of messages with ``n_i`` data bytes costs
    ``(9 * sum(1 + n_i) + len(messages) + 1) / clock_hz + t_BUF`` seconds: 9 clocks per byte
    (8 bits + ACK), one address byte per message, about one clock for each (repeated) START and
    for the STOP, and the bus-free time t_BUF of the speed class (4.7 µs standard mode, 1.3 µs fast
    mode, 0.5 µs fast-mode plus). With ``sleep=True`` every transaction also takes that long in
    real time (oversleep is carried over and paid back, so long runs match the model); a
    transaction that says when it ``started`` lasts until then plus its time, so the work the
    emulated device did meanwhile is inside it, as a real device's is (it answers without
    stretching the clock, §11.5). Totals accumulate in :attr:`transactions`, :attr:`bytes` (data
    bytes), :attr:`wire_bytes` (data + address bytes) and :attr:`seconds` (modelled).
    """

    MAX_CARRY = 0.005

    def __init__(self, clock_hz: int = 400_000, *, sleep: bool = False) -> None:
        if clock_hz <= 0:
            raise ValueError("clock_hz must be > 0")
        self.clock_hz = clock_hz
        self.sleep = sleep
        self._lock = threading.Lock()
        self._carry = 0.0
        self.transactions = 0
        self.bytes = 0
        self.wire_bytes = 0
        self.seconds = 0.0

    @property
    def bus_free_time(self) -> float:
        """Minimum idle time between a STOP and the next START (t_BUF), seconds."""
        if self.clock_hz <= 100_000:
            return 4.7e-6
        if self.clock_hz <= 400_000:
            return 1.3e-6
        return 0.5e-6

    def transaction_time(self, message_lengths: Sequence[int]) -> float:
        """Modelled seconds of one transaction with messages of these data lengths."""
        clocks = 9 * (sum(message_lengths) + len(message_lengths)) + len(message_lengths) + 1
        return clocks / self.clock_hz + self.bus_free_time

    def record(self, message_lengths: Sequence[int], *, started: float | None = None) -> float:
        """Account one transaction (and, with ``sleep``, make it last); return its modelled time.

        ``started`` is the ``time.perf_counter()`` at which the transaction began: the sleep then
        ends its modelled time after that, not after now (work that took longer is not paid back).
        """
        duration = self.transaction_time(message_lengths)
        data = sum(message_lengths)
        with self._lock:
            self.transactions += 1
            self.bytes += data
            self.wire_bytes += data + len(message_lengths)
            self.seconds += duration
            if not self.sleep:
                return duration
            left = duration if started is None else started + duration - time.perf_counter()
            if left <= 0:
                return duration
            wanted = left - self._carry
            if wanted <= 0:
                self._carry = -wanted
                return duration
        before = time.perf_counter()
        time.sleep(wanted)
        overslept = time.perf_counter() - before - wanted
        with self._lock:
            self._carry = min(max(overslept, 0.0), self.MAX_CARRY)
        return duration

    def reset(self) -> None:
        """Zero the totals."""
        with self._lock:
            self.transactions = self.bytes = self.wire_bytes = 0
            self.seconds = self._carry = 0.0
