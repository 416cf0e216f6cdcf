"""``/dev/i2c-N`` on the fake kernel (PROTOCOL.md §11.13): I2C_RDWR messages to the devices."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from rayzig_core.testing.fake_i2c.device import FakeI2CDevice
from rayzig_core.testing.fake_i2c.faults import FaultPlan
from rayzig_core.testing.fake_i2c.kernel import (
    EREMOTEIO,
    ETIMEDOUT,
    I2C_M_RD,
    install_fake_i2c,
)
from rayzig_core.testing.fake_i2c.timing import BusTiming

OpenError = Literal["missing", "permission"]
"""Open faults of a bus: ``missing`` (FileNotFoundError) or ``permission`` (PermissionError)."""


class FakeI2CBus:
    """``/dev/i2c-<number>`` as the fake kernel serves it.

    ``open_error`` (attribute, may change at any time) makes opening fail: ``"missing"`` raises
    FileNotFoundError (no such bus), ``"permission"`` PermissionError. ``timing`` and ``faults``
    are optional :class:`BusTiming` / :class:`FaultPlan` objects applied to every ``I2C_RDWR``.
    """

    def __init__(
        self,
        number: int = 1,
        *,
        timing: BusTiming | None = None,
        faults: FaultPlan | None = None,
        open_error: OpenError | None = None,
    ) -> None:
        self.number = number
        self.timing = timing
        self.faults = faults
        self.open_error: OpenError | None = open_error
        self.transactions = 0
        self.opens = 0
        self._lock = threading.Lock()
        self._devices: dict[int, FakeI2CDevice] = {}

    def add_device(self, device: FakeI2CDevice) -> FakeI2CDevice:
        """Put a device on the bus at its address; return it."""
        with self._lock:
            if device.address in self._devices:
                raise ValueError(
                    f"address 0x{device.address:02x} already used on bus {self.number}"
                )
            self._devices[device.address] = device
        return device

    def remove_device(self, address: int) -> None:
        """Take the device at ``address`` off the bus (it then NACKs, errno 121)."""
        with self._lock:
            self._devices.pop(address, None)

    def device(self, address: int) -> FakeI2CDevice:
        """Return the device at ``address``."""
        return self._devices[address]

    @contextlib.contextmanager
    def installed(self) -> Iterator[FakeI2CBus]:
        """Serve this bus to smbus2 for the duration of the ``with`` block."""
        with install_fake_i2c(self):
            yield self

    # --- called by the fake kernel ------------------------------------------------------

    def _rdwr(self, messages: list[Any]) -> None:
        """Perform one ``I2C_RDWR`` transaction; then hand its results to the devices."""
        touched: list[FakeI2CDevice] = []
        try:
            with self._lock:
                self._transfer(messages, touched)
        finally:
            for device in touched:
                device._deliver()

    def _transfer(self, messages: list[Any], touched: list[FakeI2CDevice]) -> None:
        self.transactions += 1
        timing = self.timing
        if timing is None:
            self._exchange(messages, touched)
            return
        started = time.perf_counter()
        try:
            self._exchange(messages, touched)
        finally:
            # The devices answered inside the transaction's modelled time, as a real MCU does.
            timing.record([int(message.len) for message in messages], started=started)

    def _exchange(self, messages: list[Any], touched: list[FakeI2CDevice]) -> None:
        """Move the messages' bytes to and from the devices, injecting the planned fault."""
        plan = self.faults
        fault = plan.draw() if plan is not None else None
        rng = plan.rng if plan is not None else random
        nack_at = rng.randrange(len(messages)) if fault == "nack" else -1
        flip_at = rng.randrange(len(messages)) if fault == "flip" else -1
        busy = fault == "busy"
        for index, message in enumerate(messages):
            device = self._devices.get(int(message.addr))
            if device is None:
                raise OSError(EREMOTEIO, os.strerror(EREMOTEIO))
            if device not in touched:
                touched.append(device)
            length = int(message.len)
            reading = bool(message.flags & I2C_M_RD)
            if index == nack_at:
                assert plan is not None
                plan.injected.nacks += 1
                if not reading and length > 1:
                    cut = rng.randrange(length)
                    if cut:
                        device._write(ctypes.string_at(message.buf, cut), busy=False)
                raise OSError(EREMOTEIO, os.strerror(EREMOTEIO))
            data = (
                device._read(length, busy=busy)
                if reading
                else ctypes.string_at(message.buf, length)
            )
            if index == flip_at and length:
                assert plan is not None
                bit = rng.randrange(8 * length)
                flipped = bytearray(data)
                flipped[bit // 8] ^= 1 << (bit % 8)
                data = bytes(flipped)
                plan.injected.bit_flips += 1
            if reading:
                ctypes.memmove(message.buf, data, length)
            else:
                device._write(data, busy=busy)
        if busy:
            assert plan is not None
            plan.injected.busy += 1
        if fault == "timeout":
            assert plan is not None
            plan.injected.timeouts += 1
            raise OSError(ETIMEDOUT, os.strerror(ETIMEDOUT))
