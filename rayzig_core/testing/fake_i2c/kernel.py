"""The fake Linux I2C kernel boundary (PROTOCOL.md §11.13): smbus2's ``os.open`` and ``ioctl``.

While :func:`install_fake_i2c` is active, ``smbus2.smbus2.os`` is a shim whose ``open``/``close``
serve ``/dev/i2c-N`` from the installed fake buses (every other path and attribute goes to the real
``os``), and ``smbus2.smbus2.ioctl`` serves ``I2C_FUNCS``, ``I2C_SLAVE(_FORCE)``, ``I2C_PEC`` and
``I2C_RDWR`` on fake descriptors (real descriptors go to the real ``fcntl.ioctl``). Nothing global
outside smbus2 is touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rayzig_core.testing.fake_i2c.bus import FakeI2CBus

I2C_SLAVE = 0x0703
I2C_SLAVE_FORCE = 0x0706
I2C_FUNCS = 0x0705
I2C_RDWR = 0x0707
I2C_PEC = 0x0708
I2C_M_RD = 0x0001
I2C_FUNC_I2C = 0x00000001
I2C_RDWR_IOCTL_MAX_MSGS = 42
EREMOTEIO = 121
ETIMEDOUT = 110
FIRST_FAKE_FD = 10_000

_DEV_PATH = re.compile(r"/dev/i2c-(\d+)")


class _OsShim:
    """Stands in for the ``os`` module inside smbus2: fake ``/dev/i2c-N``, real everything else."""

    def __init__(self, kernel: _FakeKernel) -> None:
        self._kernel = kernel

    def open(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        return self._kernel.open(path, flags, mode, dir_fd=dir_fd)

    def close(self, fd: int) -> None:
        self._kernel.close(fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


class _FakeKernel:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buses: dict[int, FakeI2CBus] = {}
        self._fds: dict[int, FakeI2CBus] = {}
        self._next_fd = FIRST_FAKE_FD
        self._depth = 0
        self._saved: tuple[Any, Any] | None = None

    def install(self, buses: Sequence[FakeI2CBus]) -> None:
        with self._lock:
            for bus in buses:
                other = self._buses.get(bus.number)
                if other is not None and other is not bus:
                    raise ValueError(f"another fake bus {bus.number} is already installed")
            for bus in buses:
                self._buses[bus.number] = bus
            self._depth += 1
            if self._depth == 1:
                module = importlib.import_module("smbus2.smbus2")
                namespace = vars(module)
                self._saved = (namespace["os"], namespace["ioctl"])
                namespace["os"] = _OsShim(self)
                namespace["ioctl"] = self.ioctl

    def uninstall(self, buses: Sequence[FakeI2CBus]) -> None:
        with self._lock:
            for bus in buses:
                if self._buses.get(bus.number) is bus:
                    del self._buses[bus.number]
            self._depth -= 1
            if self._depth == 0 and self._saved is not None:
                namespace = vars(importlib.import_module("smbus2.smbus2"))
                namespace["os"], namespace["ioctl"] = self._saved
                self._saved = None
                self._fds.clear()

    def open(self, path: Any, flags: int, mode: int, *, dir_fd: int | None) -> int:
        match = _DEV_PATH.fullmatch(os.fsdecode(path)) if isinstance(path, str | bytes) else None
        if match is None:
            return os.open(path, flags, mode, dir_fd=dir_fd)
        with self._lock:
            bus = self._buses.get(int(match[1]))
            if bus is None or bus.open_error == "missing":
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            if bus.open_error == "permission":
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            fd = self._next_fd
            self._next_fd += 1
            self._fds[fd] = bus
            bus.opens += 1
            return fd

    def close(self, fd: int) -> None:
        with self._lock:
            bus = self._fds.pop(fd, None)
        if bus is None:
            os.close(fd)

    def ioctl(self, fd: int, request: int, arg: Any = 0, mutate_flag: bool = True) -> Any:
        bus = self._fds.get(fd)  # one dict lookup: atomic; open and close change it under the lock
        if bus is None:
            return fcntl.ioctl(fd, request, arg, mutate_flag)
        if request == I2C_FUNCS:
            arg.value = I2C_FUNC_I2C
            return 0
        if request in (I2C_SLAVE, I2C_SLAVE_FORCE, I2C_PEC):
            return 0
        if request == I2C_RDWR:
            count = int(arg.nmsgs)
            if not 0 < count <= I2C_RDWR_IOCTL_MAX_MSGS:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            bus._rdwr(arg.msgs[:count])
            return 0
        raise OSError(errno.EOPNOTSUPP, f"fake I2C kernel: ioctl 0x{request:04x} not modelled")

    @property
    def open_fds(self) -> int:
        with self._lock:
            return len(self._fds)


_KERNEL = _FakeKernel()


@contextlib.contextmanager
def install_fake_i2c(*buses: FakeI2CBus) -> Iterator[None]:
    """Serve these fake buses to smbus2 (``/dev/i2c-<number>``) inside the ``with`` block.

    While installed, opening any other ``/dev/i2c-N`` raises FileNotFoundError. Installs nest;
    the smbus2 names are restored when the outermost one ends. Close every transport first.
    """
    _KERNEL.install(buses)
    try:
        yield
    finally:
        _KERNEL.uninstall(buses)


def fake_open_descriptors() -> int:
    """Fake ``/dev/i2c-N`` descriptors currently open (0 once every SMBus was closed)."""
    return _KERNEL.open_fds
