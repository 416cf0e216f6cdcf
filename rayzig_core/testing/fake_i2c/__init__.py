"""A fake Linux I2C kernel boundary for tests and demos (PROTOCOL.md §11.13).

smbus2's real ``SMBus`` / ``i2c_rdwr`` code runs unchanged; only the two names it takes from the
kernel are replaced while :func:`install_fake_i2c` (or :meth:`FakeI2CBus.installed`) is active:

* ``smbus2.smbus2.os`` becomes a shim whose ``open``/``close`` serve ``/dev/i2c-N`` from the
  installed :class:`FakeI2CBus` objects (every other path and attribute goes to the real ``os``);
* ``smbus2.smbus2.ioctl`` serves ``I2C_FUNCS``, ``I2C_SLAVE(_FORCE)``, ``I2C_PEC`` and
  ``I2C_RDWR`` on fake descriptors (real descriptors go to the real ``fcntl.ioctl``).

Nothing global outside smbus2 is touched. A :class:`FakeI2CBus` dispatches each ``I2C_RDWR``
message to the :class:`FakeI2CDevice` at its address (no device: ``OSError(121)``), models the wire
time (:class:`BusTiming`) and injects faults (:class:`FaultPlan`) at this boundary, where real
faults happen: flipped bits in transit, NACKs (errno 121), timeouts (errno 110) and a busy gateway.

The pieces: :mod:`.kernel` (the patched ``os.open``/``ioctl``), :mod:`.bus` (a ``/dev/i2c-N``),
:mod:`.device` (a gateway MCU on it), :mod:`.timing` (the wire-time model) and :mod:`.faults`
(fault injection).

Typical use (an echo gateway)::

    bus = FakeI2CBus(1, faults=FaultPlan(bit_flip_rate=0.01, nack_rate=0.01, seed=7))
    device = bus.add_device(FakeI2CDevice(0x42))
    device.attach(device.push_frame)            # every host frame comes straight back
    with bus.installed():
        transport = await I2CConnector(1, 0x42).connect()

A virtual gateway plugs in through :meth:`FakeI2CDevice.attach` (host→gateway frames, per link
channel) and :meth:`FakeI2CDevice.push_frame` (gateway→host frames, from any thread); see
:func:`rayzig_core.virtual_gateway.i2c.serve_on_fake_bus`.
"""

from rayzig_core.testing.fake_i2c.bus import FakeI2CBus, OpenError
from rayzig_core.testing.fake_i2c.device import FakeI2CDevice
from rayzig_core.testing.fake_i2c.faults import FaultCounts, FaultPlan
from rayzig_core.testing.fake_i2c.kernel import (
    EREMOTEIO,
    ETIMEDOUT,
    FIRST_FAKE_FD,
    I2C_FUNC_I2C,
    I2C_FUNCS,
    I2C_M_RD,
    I2C_PEC,
    I2C_RDWR,
    I2C_RDWR_IOCTL_MAX_MSGS,
    I2C_SLAVE,
    I2C_SLAVE_FORCE,
    fake_open_descriptors,
    install_fake_i2c,
)
from rayzig_core.testing.fake_i2c.timing import BusTiming

__all__ = [
    "EREMOTEIO",
    "ETIMEDOUT",
    "FIRST_FAKE_FD",
    "I2C_FUNCS",
    "I2C_FUNC_I2C",
    "I2C_M_RD",
    "I2C_PEC",
    "I2C_RDWR",
    "I2C_RDWR_IOCTL_MAX_MSGS",
    "I2C_SLAVE",
    "I2C_SLAVE_FORCE",
    "BusTiming",
    "FakeI2CBus",
    "FakeI2CDevice",
    "FaultCounts",
    "FaultPlan",
    "OpenError",
    "fake_open_descriptors",
    "install_fake_i2c",
]
