"""Where a client command connects, and the client it connects with (docs/CLI.md, Connecting).

The connection options given win, else the connection saved in the key file by ``pair``, else
the local virtual gateway. Over direct I2C a command may choose the link channel
(PROTOCOL.md §11.2); through a bridge the bridge chooses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from mashumaro.config import BaseConfig

from rayzig_core.cli.errors import EXIT_CONNECT, CliError
from rayzig_core.cli.spec import resolve
from rayzig_core.cli.values import DEFAULT_HOST, DEFAULT_PORT
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.transport.base import Connector
from rayzig_core.transport.tcp import TcpConnector

I2C_CONNECTOR = "rayzig_core.transport.i2c:I2CConnector"
"""Loaded only for I2C connections: it needs smbus2."""
SIMULATED_BUS = "rayzig_core.cli.fake_bus:simulated_bus"
"""Loaded only with --fake-i2c: it runs the virtual gateway."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """The connection options every client command takes (before or after its name)."""

    host: str | None
    port: int | None
    i2c_bus: int | None
    address: int | None
    i2c_channel: int | None
    key_file: str
    timeout: float

    @property
    def key_path(self) -> Path:
        """The key file, with ``~`` expanded."""
        return Path(self.key_file).expanduser()


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the gateway is: TCP (host, port) or direct I2C (bus, address, link channel).

    The key file saves it as it is, without the fields that are None; channel 0, the default,
    is None, so key files paired on channel 0 look as they always did.
    """

    host: str | None = None
    port: int | None = None
    i2c_bus: int | None = None
    address: int | None = None
    i2c_channel: int | None = None

    class Config(BaseConfig):
        """Stored without the fields that are None."""

        omit_none = True

    @property
    def is_i2c(self) -> bool:
        """A direct I2C connection."""
        return self.i2c_bus is not None

    @property
    def is_tcp(self) -> bool:
        """A TCP connection (the virtual gateway or a bridge)."""
        return self.host is not None

    @property
    def is_empty(self) -> bool:
        """Nothing saved."""
        return self == Connection()

    def on_channel(self, channel: int | None) -> Connection:
        """The same connection on I2C link channel ``channel`` (None: the one it has)."""
        if channel is None:
            return self
        return dataclasses.replace(self, i2c_channel=channel or None)


def resolve_connection(options: ClientOptions, saved: Connection | None) -> Connection:
    """Where to connect: the command line, else ``saved`` (the key file's), else the default."""
    host, port, bus, address = options.host, options.port, options.i2c_bus, options.address
    channel = options.i2c_channel
    if channel is not None and (host is not None or port is not None):
        raise CliError(
            "--i2c-channel applies to a direct I2C connection (--i2c-bus/--address); through "
            "a bridge (--host/--port) the bridge chooses the channel."
        )
    if bus is not None or address is not None:
        if host is not None or port is not None:
            raise CliError("Use either --host/--port or --i2c-bus/--address, not both.")
        if bus is None or address is None:
            raise CliError("--i2c-bus and --address go together: give both.")
        return Connection(i2c_bus=bus, address=address).on_channel(channel)
    if channel is not None:
        if saved is None or not saved.is_i2c:
            raise CliError(
                "--i2c-channel applies to a direct I2C connection: add --i2c-bus and --address."
            )
        return saved.on_channel(channel)
    saved_tcp = saved if saved is not None and saved.is_tcp else None
    if host is not None or port is not None:
        return Connection(
            host=host or (saved_tcp.host if saved_tcp else DEFAULT_HOST),
            port=port or (saved_tcp.port if saved_tcp else DEFAULT_PORT),
        )
    if saved is not None and not saved.is_empty:
        return saved
    return Connection(host=DEFAULT_HOST, port=DEFAULT_PORT)


def connector(connection: Connection, timeout: float) -> Connector:
    """The transport's connector for ``connection``."""
    if connection.is_i2c:
        try:
            factory = cast("Callable[..., Connector]", resolve(I2C_CONNECTOR))
        except (ImportError, AttributeError):
            raise CliError(
                "This version of rayzig_core has no I2C transport yet: connect through a bridge "
                "with --host/--port.",
                EXIT_CONNECT,
            ) from None
        if connection.i2c_bus is None or connection.address is None:
            raise CliError("The saved connection is damaged: pass --i2c-bus and --address.")
        try:
            return factory(
                connection.i2c_bus, connection.address, channel=connection.i2c_channel or 0
            )
        except (TypeError, ValueError) as err:
            raise CliError(f"Bad I2C bus, address or channel: {err}") from None
    if connection.host is None or connection.port is None:
        raise CliError("The saved connection is damaged: pass --host and --port.")
    try:
        return TcpConnector(connection.host, connection.port, timeout=timeout)
    except (TypeError, ValueError):
        raise CliError("The saved connection is damaged: pass --host and --port.") from None


def client_name() -> str:
    """How this client names itself when it pairs (listed by ``rayzig clients list``)."""
    return f"rayzig-cli@{socket.gethostname()}"[:64]


def make_client(
    options: ClientOptions, connection: Connection, credentials: ClientCredentials | None
) -> RayzigClient:
    """A client for ``connection``; with ``credentials`` it can open a keyed session."""
    return RayzigClient(
        connector(connection, options.timeout),
        credentials,
        client_name=client_name(),
        request_timeout=options.timeout,
    )


@dataclass(frozen=True, slots=True)
class SimulatedBusOptions:
    """The simulated-bus options, and the connection options they are checked against."""

    fake_i2c: str | None
    i2c_clock: int | None
    fault_bit_flips: float | None
    fault_nacks: float | None
    fault_busy: float | None
    fault_timeouts: float | None
    fault_seed: int | None
    i2c_bus: int | None
    address: int | None
    host: str | None
    port: int | None
    key_file: str
    json: bool
    """Where a new gateway's factory secrets go: a JSON record or text, on stdout either way."""

    @property
    def fault_rates(self) -> dict[str, float]:
        """The fault rates given, by FaultPlan's names."""
        rates = {
            "bit_flip_rate": self.fault_bit_flips,
            "nack_rate": self.fault_nacks,
            "busy_rate": self.fault_busy,
            "timeout_rate": self.fault_timeouts,
        }
        return {name: rate for name, rate in rates.items() if rate is not None}

    @property
    def tunes_bus(self) -> bool:
        """Whether an option that only a simulated bus understands was given."""
        return bool(self.fault_rates) or self.i2c_clock is not None or self.fault_seed is not None


def simulated_bus(
    options: SimulatedBusOptions, command: str, *, reaches_gateway: bool
) -> AbstractContextManager[None]:
    """What ``--fake-i2c`` puts under ``command`` (a simulated bus, §11.13), or nothing.

    ``reaches_gateway``: whether the command talks to a gateway at all (the client commands and
    the bridge). The virtual gateway is loaded only when ``--fake-i2c`` is given.
    """
    if options.fake_i2c is None:
        if options.tunes_bus:
            raise CliError(
                "--i2c-clock and the --fault-* options only apply to a simulated bus: add "
                "--fake-i2c STATE_FILE (a real bus's clock is set in the kernel, "
                "dtparam=i2c_arm_baudrate)."
            )
        return contextlib.nullcontext()
    if not reaches_gateway:
        raise CliError(
            f"--fake-i2c runs a command against a simulated I2C bus; `rayzig {command}` "
            "does not connect to a gateway."
        )
    run = cast(
        "Callable[[SimulatedBusOptions], AbstractContextManager[None]]", resolve(SIMULATED_BUS)
    )
    return run(options)
