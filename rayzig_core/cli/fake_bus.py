"""``--fake-i2c``: a virtual gateway on a simulated I2C bus for the duration of one command.

The gateway runs in its own thread with its own event loop; the command reaches it through
I2CConnector and smbus2's real code path, only the kernel boundary being simulated
(PROTOCOL.md §11.13). Faults and the bus timing model (§11.11) come from the options of the
group. This module loads the virtual gateway, so the dispatcher imports it only when
``--fake-i2c`` is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from rayzig_core.cli.connection import SimulatedBusOptions
from rayzig_core.cli.errors import CliError
from rayzig_core.cli.keyfile import load_key_file
from rayzig_core.cli.output import Out
from rayzig_core.cli.values import DEFAULT_USER
from rayzig_core.testing.fake_i2c import BusTiming, FakeI2CBus, FaultPlan
from rayzig_core.testing.gateway import GatewayThread

SCRYPT_N = 2**15
"""The real gateway's password-hashing cost (the test harness lowers it; a demo must not)."""


@contextlib.contextmanager
def simulated_bus(options: SimulatedBusOptions) -> Iterator[None]:
    """Run a virtual gateway (state in ``--fake-i2c``'s file) on a simulated bus meanwhile."""
    assert options.fake_i2c is not None
    if options.host is not None or options.port is not None:
        raise CliError(
            "--fake-i2c simulates an I2C bus: use --i2c-bus/--address, not --host/--port."
        )
    bus_number, address = options.i2c_bus, options.address
    if bus_number is None and address is None:
        key = load_key_file(Path(options.key_file).expanduser())
        if key is not None:
            bus_number, address = key.connection.i2c_bus, key.connection.address
    if bus_number is None or address is None:
        raise CliError(
            "--fake-i2c needs the bus and address to simulate: add --i2c-bus and --address."
        )
    rates = options.fault_rates
    try:
        plan = FaultPlan(**rates, seed=options.fault_seed or 0) if rates else None
    except ValueError as err:
        raise CliError(f"Bad fault rates: {err}.") from None
    clock = options.i2c_clock
    timing = BusTiming(clock, sleep=True) if clock is not None else None
    bus = FakeI2CBus(bus_number, timing=timing, faults=plan)
    path = Path(options.fake_i2c).expanduser()
    gateway = GatewayThread(path, scrypt_n=SCRYPT_N, i2c=bus, i2c_address=address)
    with bus.installed():
        try:
            gateway.start()
        except (ValueError, OSError) as err:
            raise CliError(f"Cannot start the virtual gateway from {path}: {err}") from None
        try:
            if gateway.factory is not None:
                _announce(gateway, path, Out(json_mode=options.json))
            yield
        finally:
            gateway.stop()
    if plan is not None:
        injected = plan.injected
        Out.note(
            f"Simulated I2C bus {bus.number}: {bus.transactions} transactions; injected "
            f"{injected.bit_flips} bit flips, {injected.nacks} NACKs, {injected.busy} busy, "
            f"{injected.timeouts} timeouts (seed {plan.seed})."
        )


def _announce(gateway: GatewayThread, path: Path, out: Out) -> None:
    """Show the factory secrets of a gateway just made for --fake-i2c: once, on stdout.

    Never on stderr, which a service manager keeps in its journal (the secrets are the label's).
    """
    factory = gateway.factory
    assert factory is not None
    fingerprint = gateway.call(lambda g: g.fingerprint)
    serial = gateway.call(lambda g: g.serial)
    out.record(
        {
            "event": "factory_secrets",
            "serial": serial,
            "state": str(path),
            "user": DEFAULT_USER,
            "default_password": factory.default_password,
            "recovery_secret": factory.recovery_secret,
            "fingerprint": fingerprint,
        },
        "\n".join(
            (
                f"New virtual gateway {serial} in {path} (factory state). Shown ONLY THIS ONCE:",
                f"  User {DEFAULT_USER}, default password {factory.default_password}",
                f"  Recovery secret {factory.recovery_secret}",
                f"  Fingerprint {fingerprint}",
            )
        ),
    )
