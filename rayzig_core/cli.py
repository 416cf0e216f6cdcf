"""``rayzig``: the installer's command-line tool for a Rayzig gateway (issue 3 §5, issue 2 §6).

Client commands (connect with ``--host/--port`` over TCP to the virtual gateway or a bridge, or
with ``--i2c-bus/--address [--i2c-channel N]`` directly over I2C)::

    info                          versions, fingerprint, serial, model, factory state
    pair [--user U]               confirm the fingerprint, prove the password, save the key file
    passwd [--user U]             change a password
    recover                       reset the System user's password with the recovery secret
    modules                       modules, outputs, presets, battery, link quality
    set MODULE OUTPUT on|off      switch an output (outputs are numbered from 1)
    preset MODULE OUTPUT off|on|last
    utility MODULE OUTPUT on|off  mark whether the Utility user may switch an output
    events [--module M] [--since N] [--follow]
    users list | add NAME --level L | delete NAME
    clients list | revoke ID
    firmware list | check | install PART

Local commands::

    virtual-gateway               run the virtual gateway (the demo and test gateway);
                                  --factory-reset erases its users, clients and event logs
    bridge                        forward encrypted frames between TCP clients and the I2C gateway
    update-server DIR             serve a signed firmware catalogue directory over HTTP
    firmware-publish DIR ...      sign an image and add it to a catalogue directory
    keygen --out FILE             make an Ed25519 firmware signing key

Passwords come from a prompt that does not echo or from ``RAYZIG_PASSWORD`` /
``RAYZIG_NEW_PASSWORD`` / ``RAYZIG_RECOVERY_SECRET``, never from the command line. The pairing key
lives in a file readable by its owner only (``--key-file``, default
``~/.config/rayzig/client.json``).
``--json`` prints machine-readable output on stdout; prompts, progress and errors go to stderr.

Exit codes:

    0  success
    1  usage error or bad input (unknown option, bad value, unreadable or insecure file,
       fingerprint not confirmed, prompt cancelled)
    2  cannot connect: nothing answers, link lost, timeout, protocol violation; for
       virtual-gateway and update-server: cannot listen on the port
    3  authentication: wrong password, throttled, client key revoked or not paired yet,
       gateway key changed, factory password still in force
    4  refused: permission denied, not found, password policy, firmware refused
    5  internal error (a bug in rayzig: please report it)
    130  interrupted (Ctrl-C) during a command that does not run until interrupted

Every error is one line on stderr that says what to do; no traceback, no secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import importlib
import json
import logging
import os
import secrets
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar, cast

from rayzig_core.client import ClientCredentials, GatewayIdentity, RayzigClient
from rayzig_core.errors import (
    AuthenticationError,
    ClientRevokedError,
    ConnectionFailedError,
    GatewayKeyChangedError,
    InvalidCredentialsError,
    PasswordChangeRequiredError,
    PasswordRejectedError,
    ProtocolError,
    RayzigError,
    RayzigInternalError,
    RequestError,
    ThrottledError,
)
from rayzig_core.models import (
    Event,
    EventKind,
    FirmwarePart,
    FirmwareVersion,
    Module,
    Output,
    RestorePreset,
    UserLevel,
)
from rayzig_core.password_policy import PolicyViolation, check_password
from rayzig_core.transport.base import Connector

if TYPE_CHECKING:
    from rayzig_core.bridge import Bridge, BridgeConfig, GatewayAdvert, ZeroconfAdvertiser
    from rayzig_core.firmware import CatalogueEntry, UpdateServerClient
    from rayzig_core.testing.gateway import GatewayThread
    from rayzig_core.virtual_gateway.gateway import FactorySecrets
    from rayzig_core.virtual_gateway.server import GatewayServer

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_CONNECT = 2
EXIT_AUTH = 3
EXIT_REFUSED = 4
EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7780
DEFAULT_UPDATE_PORT = 8765
DEFAULT_KEY_FILE = "~/.config/rayzig/client.json"
DEFAULT_STATE_FILE = "./.state/gateway.json"
DEFAULT_USER = "installer"
DEFAULT_TIMEOUT = 10.0
KEY_FILE_FORMAT = 1
SIGNING_KEY_FORMAT = 1
PASSWORD_ATTEMPTS = 3
EVENT_BATCH = 512
PROGRESS_MIN_EVENTS = EVENT_BATCH
"""Event reads longer than one batch show a progress bar (on a terminal)."""

ENV_PASSWORD = "RAYZIG_PASSWORD"  # noqa: S105 - names of environment variables, not secrets
ENV_NEW_PASSWORD = "RAYZIG_NEW_PASSWORD"  # noqa: S105
ENV_RECOVERY_SECRET = "RAYZIG_RECOVERY_SECRET"  # noqa: S105

LEVELS = {
    "user": UserLevel.USER,
    "administrator": UserLevel.ADMINISTRATOR,
    "system": UserLevel.SYSTEM,
    "utility": UserLevel.UTILITY,
}
PRESETS = {"off": RestorePreset.OFF, "on": RestorePreset.ON, "last": RestorePreset.LAST}
I2C_CHANNELS = 16
"""Link channels of the I2C link (PROTOCOL.md §11.2): 0 (Home Assistant's, the default) to 15."""
PARTS = {part.name.lower(): part for part in FirmwarePart}

EPILOG = """\
exit codes:
  0    success
  1    usage error or bad input (bad option or value, unreadable or insecure file,
       fingerprint not confirmed, prompt cancelled)
  2    cannot connect (nothing answers, link lost, timeout); servers: cannot listen
  3    authentication (wrong password, throttled, key revoked or not paired, gateway key
       changed, factory password must be changed first)
  4    refused by the gateway (permission, not found, password policy, firmware refused)
  5    internal error (please report it)
  130  interrupted

environment:
  RAYZIG_PASSWORD         current password (instead of the prompt)
  RAYZIG_NEW_PASSWORD     new password for pair (factory state), passwd, recover, users add
  RAYZIG_RECOVERY_SECRET  recovery secret for recover

Passwords are never accepted as arguments and never echoed. See docs/CLI.md.
"""

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
Handler = Callable[[argparse.Namespace, "_Out"], int | Coroutine[Any, Any, int]]
"""A command: returns its exit code, or a coroutine that main() runs to get it."""


class CliError(Exception):
    """A failure to report as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class _UsageError(Exception):
    """Raised by the argument parser instead of exiting."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting with status 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # Never echo stray values: one of them may be a password typed on the command line.
            words = message.split(":", 1)[1].split()
            options = [word.split("=", 1)[0] for word in words if word.startswith("-")]
            others = len(words) - len(options)
            message = "unrecognized arguments: " + " ".join(options)
            if others:
                message += f" and {others} other value{'s' if others > 1 else ''}"
            message += " (passwords are never taken from the command line)" if others else ""
        raise _UsageError(self.prog, message)


# --- output ------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Convert dataclasses, enums, bytes and tuples to JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return str(value.name).lower()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Out:
    """Where a command's results go: text or JSON on stdout, notes on stderr."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode

    def result(self, data: Any, text: str) -> None:
        """Print a command's result: ``data`` as one JSON document, or ``text``."""
        if self.json:
            print(json.dumps(_jsonable(data), ensure_ascii=False), flush=True)
        else:
            print(text, flush=True)

    def record(self, data: Any, text: str) -> None:
        """Print one record of a stream (JSON Lines in JSON mode)."""
        self.result(data, text)

    @staticmethod
    def note(text: str) -> None:
        """Tell the person at the terminal something (stderr, also in JSON mode)."""
        print(text, file=sys.stderr, flush=True)


class _Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal."""

    WIDTH = 30
    INTERVAL = 0.1

    def __init__(self, label: str, total: int, unit: str, *, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.enabled = self.stream.isatty()
        self._drawn = 0.0
        self._done = 0

    def update(self, done: int, total: int | None = None) -> None:
        """Show ``done`` of ``total`` (redrawn at most ten times a second, and at the end)."""
        if total is not None:
            self.total = max(total, 1)
        self._done = min(done, self.total)
        now = time.monotonic()
        if not self.enabled or (now - self._drawn < self.INTERVAL and self._done < self.total):
            return
        self._drawn = now
        filled = self.WIDTH * self._done // self.total
        percent = 100 * self._done // self.total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {percent:3d}% {self._done}/{self.total} {self.unit}"
        )
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


# --- prompts and secrets -----------------------------------------------------------------------


def _interactive() -> bool:
    """Whether the person running the command can be asked (stdin is a terminal)."""
    return sys.stdin.isatty()


def _ask_secret(prompt: str) -> str:
    """Ask for a secret without echoing it."""
    try:
        return getpass.getpass(prompt, stream=sys.stderr)
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        raise CliError("Cancelled.", EXIT_USAGE) from None


def _ask_line(prompt: str) -> str:
    """Ask for a line of (non-secret) text; the prompt goes to stderr."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise CliError("Cancelled.", EXIT_USAGE)
    return line.strip()


def _read_secret(env: str, prompt: str, what: str) -> str:
    """Return a secret from ``env`` or, on a terminal, from a prompt that does not echo."""
    value = os.environ.get(env)
    if value is not None:
        if not value:
            raise CliError(f"{env} is set but empty: set it to the {what}, or unset it.")
        return value
    if not _interactive():
        raise CliError(f"Cannot prompt for the {what} without a terminal: set {env}.")
    value = _ask_secret(prompt)
    if not value:
        raise CliError(f"No {what} given.")
    return value


def _violation_messages(violations: Sequence[PolicyViolation]) -> list[str]:
    return [violation.message for violation in violations]


def _gateway_reasons(reasons: Sequence[str]) -> list[str]:
    """Turn the gateway's violation codes into sentences (unknown codes are shown as they are)."""
    messages = []
    for reason in reasons:
        try:
            messages.append(PolicyViolation(reason).message)
        except ValueError:
            messages.append(reason)
    return messages


def _new_password(
    *, user: str, serial: str, default_password: str | None = None, whose: str = "the new"
) -> str:
    """Return a new password from RAYZIG_NEW_PASSWORD or asked twice, checked by the policy."""

    def violations(password: str) -> tuple[PolicyViolation, ...]:
        return check_password(
            password, user_name=user, serial=serial, default_password=default_password
        )

    value = os.environ.get(ENV_NEW_PASSWORD)
    if value is not None:
        found = violations(value)
        if found:
            raise CliError(
                f"{ENV_NEW_PASSWORD} is not an acceptable password: "
                + " ".join(_violation_messages(found)),
                EXIT_REFUSED,
            )
        return value
    if not _interactive():
        raise CliError(
            f"Cannot prompt for {whose} password without a terminal: set {ENV_NEW_PASSWORD}."
        )
    _Out.note(
        "Choose a password of at least 15 characters; several unrelated words work well. "
        "Any characters are allowed."
    )
    for _ in range(PASSWORD_ATTEMPTS):
        first = _ask_secret(f"New password for {user}: ")
        found = violations(first)
        if found:
            _Out.note("That password cannot be used:")
            for message in _violation_messages(found):
                _Out.note(f"  - {message}")
            continue
        if _ask_secret("Repeat the new password: ") != first:
            _Out.note("The two entries differ; try again.")
            continue
        return first
    raise CliError(f"No acceptable new password after {PASSWORD_ATTEMPTS} attempts.", EXIT_REFUSED)


# --- key files ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _KeyFile:
    path: Path
    credentials: ClientCredentials
    connection: dict[str, Any]


def _key_path(args: argparse.Namespace) -> Path:
    return Path(args.key_file).expanduser()


def _open_private(path: Path, what: str) -> str:
    """Read a file that holds a secret, refusing it if other users may read or change it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise CliError(f"Cannot read the {what} {path}: {err.strerror}.") from None
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        if os.name == "posix":
            info = os.fstat(fd)
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise CliError(
                    f"The {what} {path} is accessible to other users (mode {mode:04o}) but holds "
                    f"a private key: run `chmod 600 {path}`, or delete it and create a new one."
                )
            if info.st_uid != os.getuid():
                raise CliError(
                    f"The {what} {path} belongs to another user; use a file of your own."
                )
        try:
            return handle.read()
        except (OSError, UnicodeDecodeError) as err:
            raise CliError(f"Cannot read the {what} {path} ({type(err).__name__}).") from None


def _write_private(path: Path, text: str, what: str, *, replace: bool = True) -> None:
    """Write a secret file atomically with mode 0600 (its directory is made 0700 if new)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not replace and path.exists():
            raise CliError(f"{path} already exists; choose another file or remove it first.")
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                if hasattr(os, "fchmod"):
                    os.fchmod(handle.fileno(), 0o600)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as err:
        raise CliError(f"Cannot write the {what} {path}: {err.strerror}.") from None


def _load_key_file(path: Path) -> _KeyFile | None:
    """Return the saved pairing, or None if there is no key file."""
    try:
        text = _open_private(path, "key file")
    except FileNotFoundError:
        return None
    try:
        return _parse_key_file(path, text)
    except (ValueError, KeyError, TypeError):
        raise CliError(
            f"The key file {path} is damaged: delete it and pair again with `rayzig pair`."
        ) from None


def _parse_key_file(path: Path, text: str) -> _KeyFile:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != KEY_FILE_FORMAT:
        raise ValueError("unknown key file format")
    connection = data.get("connection") or {}
    if not isinstance(connection, dict):
        raise TypeError("connection must be an object")
    return _KeyFile(path, ClientCredentials.from_dict(data["credentials"]), connection)


def _save_key_file(path: Path, credentials: ClientCredentials, connection: dict[str, Any]) -> None:
    document = {
        "format": KEY_FILE_FORMAT,
        "credentials": credentials.to_dict(),
        "connection": connection,
    }
    _write_private(path, json.dumps(document, indent=2) + "\n", "key file")


def _require_key_file(args: argparse.Namespace) -> _KeyFile:
    path = _key_path(args)
    key = _load_key_file(path)
    if key is None:
        raise CliError(
            f"Not paired: there is no key file at {path}. Pair first with `rayzig pair "
            "--host HOST --port PORT` (or pass --key-file).",
            EXIT_AUTH,
        )
    return key


# --- connections -------------------------------------------------------------------------------


def _connection(args: argparse.Namespace, saved: dict[str, Any] | None) -> dict[str, Any]:
    """Where to connect: the command line, else the key file, else the local virtual gateway.

    An I2C connection carries ``i2c_channel`` only when it is not 0, the default (so key files
    paired on channel 0 look as they always did).
    """
    host, port = getattr(args, "host", None), getattr(args, "port", None)
    bus, address = getattr(args, "i2c_bus", None), getattr(args, "address", None)
    channel: int | None = getattr(args, "i2c_channel", None)
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
        return _with_channel({"i2c_bus": bus, "address": address}, channel)
    if channel is not None:
        if not saved or "i2c_bus" not in saved:
            raise CliError(
                "--i2c-channel applies to a direct I2C connection: add --i2c-bus and --address."
            )
        return _with_channel(dict(saved), channel)
    saved_tcp = saved if saved and "host" in saved else None
    if host is not None or port is not None:
        return {
            "host": host or (saved_tcp["host"] if saved_tcp else DEFAULT_HOST),
            "port": port or (saved_tcp["port"] if saved_tcp else DEFAULT_PORT),
        }
    if saved:
        return dict(saved)
    return {"host": DEFAULT_HOST, "port": DEFAULT_PORT}


def _with_channel(connection: dict[str, Any], channel: int | None) -> dict[str, Any]:
    """``connection`` on I2C link channel ``channel`` (None: keep what it has)."""
    if channel is None:
        return connection
    rest = {key: value for key, value in connection.items() if key != "i2c_channel"}
    return {**rest, "i2c_channel": channel} if channel else rest


def _connector(connection: dict[str, Any], timeout: float) -> Connector:
    if "i2c_bus" in connection:
        try:
            module = importlib.import_module("rayzig_core.transport.i2c")
            factory = module.I2CConnector
        except (ImportError, AttributeError):
            raise CliError(
                "This version of rayzig_core has no I2C transport yet: connect through a bridge "
                "with --host/--port.",
                EXIT_CONNECT,
            ) from None
        try:
            return cast(
                "Connector",
                factory(
                    int(connection["i2c_bus"]),
                    int(connection["address"]),
                    channel=int(connection.get("i2c_channel", 0)),
                ),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CliError(f"Bad I2C bus, address or channel: {err}") from None
    from rayzig_core.transport.tcp import TcpConnector  # noqa: PLC0415

    try:
        return TcpConnector(str(connection["host"]), int(connection["port"]), timeout=timeout)
    except (KeyError, TypeError, ValueError):
        raise CliError("The saved connection is damaged: pass --host and --port.") from None


def _client_name() -> str:
    return f"rayzig-cli@{socket.gethostname()}"[:64]


def _make_client(
    args: argparse.Namespace, connection: dict[str, Any], credentials: ClientCredentials | None
) -> RayzigClient:
    return RayzigClient(
        _connector(connection, args.timeout),
        credentials,
        client_name=_client_name(),
        request_timeout=args.timeout,
    )


_LOCAL_COMMANDS = frozenset({"virtual-gateway", "update-server", "firmware-publish", "keygen"})
"""Commands that do not connect to a gateway (so --fake-i2c has nothing to serve them)."""
_FAULT_OPTIONS = {
    "fault_bit_flips": "bit_flip_rate",
    "fault_nacks": "nack_rate",
    "fault_busy": "busy_rate",
    "fault_timeouts": "timeout_rate",
}


@contextlib.contextmanager
def _fake_i2c(args: argparse.Namespace) -> Iterator[None]:
    """With --fake-i2c: a virtual gateway on a simulated I2C bus for the duration of the command.

    The gateway runs in its own thread with its own event loop; the command reaches it through
    I2CConnector and smbus2's real code path, only the kernel boundary being simulated
    (PROTOCOL.md §11.13). Faults and the timing model come from the other options of the group.
    """
    state = getattr(args, "fake_i2c", None)
    rates: dict[str, float] = {
        name: float(getattr(args, option))
        for option, name in _FAULT_OPTIONS.items()
        if getattr(args, option, None) is not None
    }
    clock: int | None = getattr(args, "i2c_clock", None)
    seed: int | None = getattr(args, "fault_seed", None)
    if state is None:
        if rates or clock is not None or seed is not None:
            raise CliError(
                "--i2c-clock and the --fault-* options only apply to a simulated bus: add "
                "--fake-i2c STATE_FILE (a real bus's clock is set in the kernel, "
                "dtparam=i2c_arm_baudrate)."
            )
        yield
        return
    if args.command in _LOCAL_COMMANDS:
        raise CliError(
            f"--fake-i2c runs a command against a simulated I2C bus; `rayzig {args.command}` "
            "does not connect to a gateway."
        )
    from rayzig_core.testing.fake_i2c import BusTiming, FakeI2CBus, FaultPlan  # noqa: PLC0415
    from rayzig_core.testing.gateway import GatewayThread  # noqa: PLC0415

    if getattr(args, "host", None) is not None or getattr(args, "port", None) is not None:
        raise CliError(
            "--fake-i2c simulates an I2C bus: use --i2c-bus/--address, not --host/--port."
        )
    bus_number, address = getattr(args, "i2c_bus", None), getattr(args, "address", None)
    if bus_number is None and address is None:
        key = _load_key_file(_key_path(args))
        saved = key.connection if key is not None else {}
        bus_number, address = saved.get("i2c_bus"), saved.get("address")
    if bus_number is None or address is None:
        raise CliError(
            "--fake-i2c needs the bus and address to simulate: add --i2c-bus and --address."
        )
    try:
        plan = FaultPlan(**rates, seed=seed or 0) if rates else None
    except ValueError as err:
        raise CliError(f"Bad fault rates: {err}.") from None
    timing = BusTiming(clock, sleep=True) if clock is not None else None
    bus = FakeI2CBus(int(bus_number), timing=timing, faults=plan)
    path = Path(state).expanduser()
    gateway = GatewayThread(path, scrypt_n=2**15, i2c=bus, i2c_address=int(address))
    with bus.installed():
        try:
            gateway.start()
        except (ValueError, OSError) as err:
            raise CliError(f"Cannot start the virtual gateway from {path}: {err}") from None
        try:
            if gateway.factory is not None:
                _announce_fake_i2c(gateway, path)
            yield
        finally:
            gateway.stop()
    if plan is not None:
        injected = plan.injected
        _Out.note(
            f"Simulated I2C bus {bus.number}: {bus.transactions} transactions; injected "
            f"{injected.bit_flips} bit flips, {injected.nacks} NACKs, {injected.busy} busy, "
            f"{injected.timeouts} timeouts (seed {plan.seed})."
        )


def _announce_fake_i2c(gateway: GatewayThread, path: Path) -> None:
    """Show the factory secrets of a gateway just made for --fake-i2c (on stderr, once)."""
    factory = gateway.factory
    assert factory is not None
    fingerprint = gateway.call(lambda g: g.fingerprint)
    serial = gateway.call(lambda g: g.serial)
    for line in (
        f"New virtual gateway {serial} in {path} (factory state). Shown ONLY THIS ONCE:",
        f"  User {DEFAULT_USER}, default password {factory.default_password}",
        f"  Recovery secret {factory.recovery_secret}",
        f"  Fingerprint {fingerprint}",
    ):
        _Out.note(line)


@contextlib.asynccontextmanager
async def _session(
    args: argparse.Namespace, key: _KeyFile | None = None
) -> AsyncIterator[tuple[RayzigClient, _KeyFile]]:
    """Connect a key-only client for a paired command (closed afterwards)."""
    key = key or _require_key_file(args)
    client = _make_client(args, _connection(args, key.connection), key.credentials)
    try:
        await client.connect()
        yield client, key
    finally:
        await client.close()


def _normalise_fingerprint(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch in "0123456789ABCDEF")


def _confirm_fingerprint(identity: GatewayIdentity, expected: str | None) -> None:
    """Make the person confirm the gateway's fingerprint (or compare it with --yes-fingerprint)."""
    if expected is not None:
        if _normalise_fingerprint(expected) != _normalise_fingerprint(identity.fingerprint):
            raise CliError(
                f"The gateway presents fingerprint {identity.fingerprint}, not the {expected} "
                "you gave: do not pair. Check the host and port, and the fingerprint on the "
                "gateway's label or display.",
                EXIT_AUTH,
            )
        return
    if not _interactive():
        raise CliError(
            "Cannot ask you to confirm the gateway's fingerprint without a terminal: compare it "
            f"with the gateway's label and pass --yes-fingerprint {identity.fingerprint}."
        )
    _Out.note(f"Gateway {identity.serial} ({identity.model}) presents the fingerprint")
    _Out.note(f"    {identity.fingerprint}")
    answer = _ask_line("Does it match the fingerprint on the gateway's label or display? [yes/no] ")
    if answer.lower() not in {"y", "yes"}:
        raise CliError("Fingerprint not confirmed: nothing was changed.")


# --- formatting --------------------------------------------------------------------------------


def _level_name(level: UserLevel) -> str:
    return level.name.title()


def _iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return "\n".join(lines)


def _output_json(output: Output) -> dict[str, Any]:
    return {
        "number": output.index + 1,
        "index": output.index,
        "name": output.name,
        "on": output.is_on,
        "preset": output.preset.name.lower(),
        "utility_controllable": output.utility_controllable,
    }


def _module_json(module: Module) -> dict[str, Any]:
    telemetry = module.telemetry
    return {
        "id": module.module_id,
        "serial": module.serial,
        "name": module.name,
        "kind": module.kind.name.lower(),
        "model": module.model,
        "firmware": module.firmware,
        "outputs": [_output_json(output) for output in module.outputs],
        "battery_percent": telemetry.battery_percent,
        "battery_minimum_percent": telemetry.battery_minimum_percent,
        "battery_low": telemetry.battery_low,
        "link_quality": telemetry.link_quality,
        "reachable": telemetry.reachable,
        "event_seq": module.event_seq,
        "event_count": module.event_count,
    }


def _battery_text(module: Module) -> str:
    telemetry = module.telemetry
    if telemetry.battery_percent is None:
        return "-"
    text = f"{telemetry.battery_percent}% (min {telemetry.battery_minimum_percent}%)"
    return text + " LOW" if telemetry.battery_low else text


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "module": event.module_id,
        "seq": event.seq,
        "time": _iso(event.timestamp),
        "timestamp": event.timestamp,
        "kind": event.kind.name.lower(),
        "output": None if event.output is None else event.output + 1,
        "user": event.user,
        "on": event.is_on,
        "lost": event.lost,
    }


def _event_text(event: Event, names: dict[int, str]) -> str:
    where = f"module {event.module_id}"
    if event.module_id in names:
        where += f" ({names[event.module_id]})"
    parts = [_iso(event.timestamp), f"#{event.seq}", where, event.kind.name.lower()]
    if event.kind is EventKind.GAP:
        parts.append(f"- {event.lost} events were overwritten before they could be read")
        return "  ".join(parts)
    if event.output is not None:
        parts.append(f"output {event.output + 1}")
    if event.is_on is not None:
        parts.append("on" if event.is_on else "off")
    if event.user:
        parts.append(f"by {event.user}")
    return "  ".join(parts)


def _firmware_json(versions: Sequence[FirmwareVersion]) -> list[dict[str, Any]]:
    return [
        {"part": v.part.name.lower(), "version": v.version, "security_version": v.security_version}
        for v in versions
    ]


def _firmware_text(versions: Sequence[FirmwareVersion]) -> str:
    return _table(
        ["PART", "VERSION", "SECURITY"],
        [[v.part.name.lower(), v.version, str(v.security_version)] for v in versions],
    )


# --- argument types ----------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("ports are 1 to 65535")
    return value


def _listen_port(text: str) -> int:
    if text.strip() == "0":
        return 0
    return _port(text)


def _i2c_address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address such as 0x42") from None
    if not 0x08 <= value <= 0x77:
        raise argparse.ArgumentTypeError("7-bit I2C addresses run from 0x08 to 0x77")
    return value


def _i2c_channel(text: str) -> int:
    channel = _non_negative(text)
    if channel >= I2C_CHANNELS:
        raise argparse.ArgumentTypeError(f"an I2C link channel is 0 to {I2C_CHANNELS - 1}")
    return channel


def _non_negative(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


I2C_CLOCKS = {"100k": 100_000, "400k": 400_000, "1m": 1_000_000}
"""Bus clocks --i2c-clock accepts: standard mode, fast mode, fast mode plus."""


def _i2c_clock(text: str) -> int:
    value = I2C_CLOCKS.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError("choose 100k, 400k or 1M")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability such as 0.01") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a rate is a probability from 0 to 1, e.g. 0.01 for 1 %")
    return value


def _public_key(text: str) -> bytes:
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        value = b""
    if len(value) != 32:
        raise argparse.ArgumentTypeError(
            "an Ed25519 public key is 64 hexadecimal digits (as printed by `rayzig keygen`)"
        )
    return value


# --- commands: first contact and pairing -------------------------------------------------------


async def cmd_info(args: argparse.Namespace, out: _Out) -> int:
    """Identity of the gateway; with a key file, also firmware versions and who we are."""
    key = _load_key_file(_key_path(args))
    connection = _connection(args, key.connection if key else None)
    client = _make_client(args, connection, key.credentials if key else None)
    try:
        identity = await client.identify()
        data: dict[str, Any] = {
            "serial": identity.serial,
            "model": identity.model,
            "fingerprint": identity.fingerprint,
            "protocol_version": identity.protocol_version,
            "factory_state": identity.factory_state,
            "paired": False,
        }
        lines = [
            f"Gateway        {identity.serial} ({identity.model})",
            f"Fingerprint    {identity.fingerprint}",
            f"Protocol       {identity.protocol_version}",
            "Factory state  "
            + ("yes: run `rayzig pair` to set the password" if identity.factory_state else "no"),
        ]
        if key is None:
            lines.append("Paired         no (run `rayzig pair`)")
        else:
            if identity.public_key != key.credentials.gateway_public_key:
                raise GatewayKeyChangedError(
                    key.credentials.gateway_fingerprint, identity.fingerprint
                )
            info = await client.connect()
            versions = await client.firmware_versions()
            data.update(
                paired=True,
                user=info.user,
                level=info.level.name.lower(),
                client_id=key.credentials.client_id,
                weak_password=info.weak_password,
                firmware=_firmware_json(versions),
            )
            lines.append(
                f"Paired         as {info.user} ({_level_name(info.level)}), "
                f"client {key.credentials.client_id}"
            )
            if info.weak_password:
                lines.append(
                    "Password       too weak for the current policy: change it with `rayzig passwd`"
                )
            lines.append("Firmware")
            lines.extend(f"  {line}" for line in _firmware_text(versions).splitlines())
    finally:
        await client.close()
    out.result(data, "\n".join(lines))
    return EXIT_OK


async def cmd_pair(args: argparse.Namespace, out: _Out) -> int:
    """First contact, fingerprint confirmation, password proof (and forced change), key file."""
    path = _key_path(args)
    old = _load_key_file(path)
    connection = _connection(args, old.connection if old else None)
    client = _make_client(args, connection, None)
    try:
        identity = await client.identify()
        _confirm_fingerprint(identity, args.yes_fingerprint)
        user = args.user
        password = _read_secret(ENV_PASSWORD, f"Password for {user}: ", "password")
        try:
            credentials = await client.pair(identity, user, password)
        except PasswordChangeRequiredError:
            _Out.note(
                f"The gateway is in factory state: the password of {user} must be changed "
                "before anything else."
            )
            new = _new_password(user=user, serial=identity.serial, default_password=password)
            await client.change_password(identity.public_key, user, password, new)
            _Out.note(f"Password of {user} changed.")
            credentials = await client.pair(identity, user, new)
    finally:
        await client.close()
    if old is not None and old.credentials.gateway_public_key != identity.public_key:
        _Out.note(f"Replacing the pairing with gateway {old.credentials.serial} in {path}.")
    _save_key_file(path, credentials, connection)
    out.result(
        {
            "paired": True,
            "serial": credentials.serial,
            "fingerprint": credentials.gateway_fingerprint,
            "user": credentials.user,
            "level": credentials.level.name.lower(),
            "client_id": credentials.client_id,
            "key_file": str(path),
        },
        f"Paired with gateway {credentials.serial} as {credentials.user} "
        f"({_level_name(credentials.level)}), client {credentials.client_id}. "
        f"Key saved in {path}.",
    )
    return EXIT_OK


async def cmd_passwd(args: argparse.Namespace, out: _Out) -> int:
    """Change a password by proving the current one (over a session pinned to the gateway)."""
    key = _require_key_file(args)
    user = args.user or key.credentials.user
    client = _make_client(args, _connection(args, key.connection), None)
    try:
        old = _read_secret(ENV_PASSWORD, f"Current password for {user}: ", "current password")
        new = _new_password(user=user, serial=key.credentials.serial)
        await client.change_password(key.credentials.gateway_public_key, user, old, new)
    finally:
        await client.close()
    out.result({"changed": True, "user": user}, f"Password of {user} changed.")
    return EXIT_OK


async def cmd_recover(args: argparse.Namespace, out: _Out) -> int:
    """Reset the System user's password with the site's recovery secret."""
    key = _load_key_file(_key_path(args))
    client = _make_client(args, _connection(args, key.connection if key else None), None)
    try:
        if key is not None:
            gateway_key, serial = key.credentials.gateway_public_key, key.credentials.serial
        else:
            identity = await client.identify()
            _confirm_fingerprint(identity, args.yes_fingerprint)
            gateway_key, serial = identity.public_key, identity.serial
        secret = _read_secret(ENV_RECOVERY_SECRET, "Recovery secret: ", "recovery secret")
        new = _new_password(user=args.user, serial=serial, whose="the System user's new")
        await client.recover_password(gateway_key, secret, new)
    finally:
        await client.close()
    out.result(
        {"recovered": True, "serial": serial},
        f"The System user's password on gateway {serial} was reset. Pair again with "
        "`rayzig pair --user NAME` if this client is not paired.",
    )
    return EXIT_OK


# --- commands: the site ------------------------------------------------------------------------


async def cmd_modules(args: argparse.Namespace, out: _Out) -> int:
    """Print the module table: one row per output, module columns on its first output."""
    async with _session(args) as (client, _):
        modules = await client.list_modules()
    rows: list[list[str]] = []
    for module in modules:
        first = [
            str(module.module_id),
            module.name,
            module.kind.name.lower(),
            _battery_text(module),
            f"{module.telemetry.link_quality}/255",
            "yes" if module.telemetry.reachable else "NO",
        ]
        for position, output in enumerate(module.outputs or (None,)):
            row = first if position == 0 else [""] * len(first)
            if output is None:
                rows.append([*row, "-", "", "", ""])
                continue
            rows.append(
                [
                    *row,
                    str(output.index + 1),
                    output.name,
                    "on" if output.is_on else "off",
                    output.preset.name.lower(),
                ]
            )
    text = _table(
        [
            "ID",
            "MODULE",
            "KIND",
            "BATTERY",
            "LINK",
            "REACHABLE",
            "OUT",
            "OUTPUT",
            "STATE",
            "PRESET",
        ],
        rows,
    )
    out.result([_module_json(m) for m in modules], text)
    return EXIT_OK


def _output_index(number: int) -> int:
    if number < 1:
        raise CliError("Outputs are numbered from 1.")
    return number - 1


async def cmd_set(args: argparse.Namespace, out: _Out) -> int:
    """Switch an output."""
    async with _session(args) as (client, _):
        output = await client.set_output(
            args.module, _output_index(args.output), args.state == "on"
        )
    state = "on" if output.is_on else "off"
    out.result(
        {"module": args.module, **_output_json(output)},
        f"Module {args.module} output {output.index + 1} ({output.name}) is {state}.",
    )
    return EXIT_OK


async def cmd_preset(args: argparse.Namespace, out: _Out) -> int:
    """Set an output's power-restore preset."""
    async with _session(args) as (client, _):
        output = await client.set_restore_preset(
            args.module, _output_index(args.output), PRESETS[args.preset]
        )
    out.result(
        {"module": args.module, **_output_json(output)},
        f"Module {args.module} output {output.index + 1} ({output.name}) restores "
        f"{output.preset.name.lower()} after a power cut.",
    )
    return EXIT_OK


async def cmd_utility(args: argparse.Namespace, out: _Out) -> int:
    """Mark whether the Utility user may switch an output (Administrator and above)."""
    async with _session(args) as (client, _):
        output = await client.set_utility_output(
            args.module, _output_index(args.output), args.state == "on"
        )
    may = "may" if output.utility_controllable else "may not"
    out.result(
        {"module": args.module, **_output_json(output)},
        f"Module {args.module} output {output.index + 1} ({output.name}): the Utility user "
        f"{may} switch it.",
    )
    return EXIT_OK


async def _read_after(
    client: RayzigClient, module_id: int, cursor: int, on_batch: Callable[[int], None]
) -> tuple[list[Event], int]:
    """Every record of a module after ``cursor`` (a GAP record first if some were overwritten)."""
    batch = await client.read_events(module_id, cursor, EVENT_BATCH)
    if batch.newest_seq < cursor:  # the module's log restarted (module replaced or reset)
        cursor = 0
        batch = await client.read_events(module_id, 0, EVENT_BATCH)
    events: list[Event] = []
    if cursor > 0 and batch.events and batch.events[0].seq > cursor + 1:
        first = batch.events[0]
        events.append(
            Event(
                module_id,
                first.seq - 1,
                first.timestamp,
                EventKind.GAP,
                None,
                None,
                None,
                lost=first.seq - 1 - cursor,
            )
        )
    while True:
        events.extend(batch.events)
        on_batch(len(batch.events))
        if batch.events:
            cursor = batch.events[-1].seq
        if not batch.events or cursor >= batch.newest_seq:
            return events, cursor
        batch = await client.read_events(module_id, cursor, EVENT_BATCH)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on Ctrl-C or SIGTERM (when running in the main thread)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def cmd_events(args: argparse.Namespace, out: _Out) -> int:
    """Dump event logs after --since, then optionally follow new events."""
    from rayzig_core.protocol import messages as m  # noqa: PLC0415

    async with _session(args) as (client, _):
        modules = await client.list_modules()
        names = {module.module_id: module.name for module in modules}
        if args.module is not None:
            if args.module not in names:
                raise CliError(f"There is no module {args.module}.", EXIT_REFUSED)
            modules = [module for module in modules if module.module_id == args.module]
        wanted = {module.module_id for module in modules}
        pending: asyncio.Queue[int] = asyncio.Queue()

        def on_notice(notice: m.Notification) -> None:
            if isinstance(notice, m.EventsAvailable) and (
                args.module is None or notice.module_id in wanted
            ):
                pending.put_nowait(notice.module_id)
            elif isinstance(notice, m.ModuleJoined):
                names[notice.module.module_id] = notice.module.name

        unsubscribe = client.subscribe(on_notice) if args.follow else None
        total = sum(
            max(0, min(module.event_seq - args.since, module.event_count)) for module in modules
        )
        progress = _Progress("Reading events", total, "events")
        progress.enabled = progress.enabled and total > PROGRESS_MIN_EVENTS
        read = 0

        def on_batch(count: int) -> None:
            nonlocal read
            read += count
            progress.update(read, max(total, read))

        cursors: dict[int, int] = {}
        collected: list[Event] = []
        for module in modules:
            events, cursors[module.module_id] = await _read_after(
                client, module.module_id, args.since, on_batch
            )
            if args.follow:
                for event in events:
                    out.record(_event_json(event), _event_text(event, names))
            else:
                collected.extend(events)
        progress.finish()
        if not args.follow:
            out.result(
                {"events": [_event_json(e) for e in collected], "cursors": cursors},
                "\n".join(_event_text(e, names) for e in collected) or "No events.",
            )
            return EXIT_OK
        _Out.note("Following new events; press Ctrl-C to stop.")
        stop = asyncio.Event()
        deadline = None if args.timeout_follow is None else time.monotonic() + args.timeout_follow
        with _stop_on_signals(stop):
            try:
                while not stop.is_set():
                    wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                    if wait <= 0:
                        break
                    try:
                        module_id = await asyncio.wait_for(pending.get(), wait)
                    except TimeoutError:
                        continue
                    events, cursors[module_id] = await _read_after(
                        client, module_id, cursors.get(module_id, 0), lambda _: None
                    )
                    for event in events:
                        out.record(_event_json(event), _event_text(event, names))
            finally:
                if unsubscribe is not None:
                    unsubscribe()
    return EXIT_OK


# --- commands: users and clients ---------------------------------------------------------------


async def cmd_users_list(args: argparse.Namespace, out: _Out) -> int:
    """List gateway users."""
    async with _session(args) as (client, _):
        users = await client.list_users()
    out.result(
        [{"name": u.name, "level": u.level.name.lower()} for u in users],
        _table(["NAME", "LEVEL"], [[u.name, _level_name(u.level)] for u in users]),
    )
    return EXIT_OK


async def cmd_users_add(args: argparse.Namespace, out: _Out) -> int:
    """Create a user; its password is asked twice (or taken from RAYZIG_NEW_PASSWORD)."""
    level = LEVELS[args.level]
    key = _require_key_file(args)
    password = _new_password(user=args.name, serial=key.credentials.serial, whose=f"{args.name}'s")
    async with _session(args, key) as (client, _):
        await client.add_user(args.name, level, password)
    out.result(
        {"added": True, "name": args.name, "level": level.name.lower()},
        f"User {args.name} ({_level_name(level)}) added.",
    )
    return EXIT_OK


async def cmd_users_delete(args: argparse.Namespace, out: _Out) -> int:
    """Delete a user (its clients lose access at once)."""
    async with _session(args) as (client, _):
        await client.delete_user(args.name)
    out.result(
        {"deleted": True, "name": args.name},
        f"User {args.name} deleted; clients paired as {args.name} lost access.",
    )
    return EXIT_OK


async def cmd_clients_list(args: argparse.Namespace, out: _Out) -> int:
    """List enrolled client keys."""
    async with _session(args) as (client, key):
        clients = await client.list_clients()
    own = key.credentials.client_id
    out.result(
        [{**_jsonable(c), "this_client": c.client_id == own} for c in clients],
        _table(
            ["ID", "NAME", "USER", "FINGERPRINT", ""],
            [
                [
                    str(c.client_id),
                    c.name,
                    c.user,
                    c.fingerprint,
                    "(this client)" if c.client_id == own else "",
                ]
                for c in clients
            ],
        ),
    )
    return EXIT_OK


async def cmd_clients_revoke(args: argparse.Namespace, out: _Out) -> int:
    """Revoke an enrolled client key (this client's own key deletes the key file too)."""
    async with _session(args) as (client, key):
        own = args.id == key.credentials.client_id
        await client.revoke_client(0 if own else args.id)
    text = f"Client {args.id} revoked."
    if own:
        key.path.unlink(missing_ok=True)
        text += f" It was this client: {key.path} was deleted; pair again to reconnect."
    out.result({"revoked": True, "client_id": args.id, "this_client": own}, text)
    return EXIT_OK


# --- commands: firmware ------------------------------------------------------------------------


async def cmd_firmware_list(args: argparse.Namespace, out: _Out) -> int:
    """Installed firmware per part."""
    async with _session(args) as (client, _):
        versions = await client.firmware_versions()
    out.result(_firmware_json(versions), _firmware_text(versions))
    return EXIT_OK


@contextlib.asynccontextmanager
async def _catalogue(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[UpdateServerClient, list[CatalogueEntry]]]:
    """Open the update server (on a fresh HTTP session) and fetch its verified catalogue."""
    import aiohttp  # noqa: PLC0415

    from rayzig_core.firmware import UpdateServerClient  # noqa: PLC0415

    async with aiohttp.ClientSession() as http:
        server = UpdateServerClient(http, args.server, args.signing_key)
        entries = await _from_update_server(server.fetch_catalogue())
        yield server, entries


async def _from_update_server(call: Awaitable[_T]) -> _T:
    """Await an update-server call, naming the update server (not the gateway) in errors."""
    try:
        return await call
    except ConnectionFailedError as err:
        raise CliError(str(err), EXIT_CONNECT) from None
    except RequestError as err:
        raise CliError(f"Refused firmware from the update server: {err}", EXIT_REFUSED) from None


def _newest(entries: Sequence[CatalogueEntry], part: FirmwarePart) -> CatalogueEntry | None:
    from rayzig_core.firmware import version_key  # noqa: PLC0415

    candidates = [e for e in entries if e.manifest.part is part]
    if not candidates:
        return None
    return max(
        candidates, key=lambda e: (e.manifest.security_version, version_key(e.manifest.version))
    )


def _status(installed: FirmwareVersion, entry: CatalogueEntry | None) -> str:
    from rayzig_core.firmware import version_key  # noqa: PLC0415

    if entry is None:
        return "not published"
    manifest = entry.manifest
    if manifest.security_version < installed.security_version:
        return "older than installed (would be refused)"
    if version_key(manifest.version) > version_key(installed.version) or (
        manifest.security_version > installed.security_version
    ):
        return "update available"
    return "up to date"


async def cmd_firmware_check(args: argparse.Namespace, out: _Out) -> int:
    """Compare installed firmware with the newest signed images on the update server."""
    async with _session(args) as (client, _), _catalogue(args) as (_server, entries):
        installed = await client.firmware_versions()
    rows: list[dict[str, Any]] = []
    for version in installed:
        entry = _newest(entries, version.part)
        rows.append(
            {
                "part": version.part.name.lower(),
                "installed": version.version,
                "installed_security_version": version.security_version,
                "available": entry.manifest.version if entry else None,
                "available_security_version": entry.manifest.security_version if entry else None,
                "security_fix": entry.manifest.security_fix if entry else None,
                "status": _status(version, entry),
            }
        )
    text = _table(
        ["PART", "INSTALLED", "AVAILABLE", "STATUS"],
        [
            [
                r["part"],
                f"{r['installed']} (sec {r['installed_security_version']})",
                "-"
                if r["available"] is None
                else f"{r['available']} (sec {r['available_security_version']})"
                + (" security fix" if r["security_fix"] else ""),
                r["status"],
            ]
            for r in rows
        ],
    )
    out.result(rows, text)
    return EXIT_OK


def _warn_install(args: argparse.Namespace, part: FirmwarePart, version: str) -> None:
    """Say what installing interrupts (EN 303 645 5.3-12); on a terminal, ask before going on."""
    from rayzig_core.firmware import PART_NAMES, install_disruption  # noqa: PLC0415

    print(install_disruption(part), file=sys.stderr)
    if args.yes or not sys.stdin.isatty():
        return
    answer = input(f"Install {PART_NAMES[part]} {version} now? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("Installation cancelled; nothing was changed.", EXIT_USAGE)


async def cmd_firmware_install(args: argparse.Namespace, out: _Out) -> int:
    """Download a signed image, verify it and install it on the gateway in resumable chunks."""
    from rayzig_core.firmware import install_firmware  # noqa: PLC0415

    part = PARTS[args.part]
    async with _session(args) as (client, _), _catalogue(args) as (server, entries):
        if args.version is not None:
            matching = [
                e for e in entries if e.manifest.part is part and e.manifest.version == args.version
            ]
            entry = matching[0] if matching else None
        else:
            entry = _newest(entries, part)
        if entry is None:
            wanted = f"{args.part} {args.version}" if args.version else args.part
            raise CliError(f"The update server publishes no {wanted} firmware.", EXIT_REFUSED)
        manifest = entry.manifest
        installed = {v.part: v for v in await client.firmware_versions()}.get(part)
        if installed is not None and installed.version == manifest.version and not args.force:
            out.result(
                {"installed": False, "part": args.part, "version": manifest.version},
                f"{args.part} {manifest.version} is already installed (use --force to reinstall).",
            )
            return EXIT_OK
        _warn_install(args, part, manifest.version)
        image = await _from_update_server(server.fetch_image(entry))
        progress = _Progress(f"Installing {args.part} {manifest.version}", manifest.size, "bytes")
        try:
            versions = await install_firmware(client, entry, image, progress.update)
        finally:
            progress.finish()
    out.result(
        {
            "installed": True,
            "part": args.part,
            "version": manifest.version,
            "security_version": manifest.security_version,
            "firmware": _firmware_json(versions),
        },
        f"Installed {args.part} {manifest.version} (security version {manifest.security_version}).",
    )
    return EXIT_OK


# --- commands: local tools ---------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace, out: _Out) -> int:
    """Make an Ed25519 firmware signing key file (0600) and print its public key."""
    from rayzig_core.firmware import generate_signing_key  # noqa: PLC0415

    private, public = generate_signing_key()
    path = Path(args.out).expanduser()
    document = {
        "format": SIGNING_KEY_FORMAT,
        "type": "ed25519-firmware-signing",
        "private_key": private.hex(),
        "public_key": public.hex(),
    }
    _write_private(path, json.dumps(document, indent=2) + "\n", "signing key file", replace=False)
    out.result(
        {"key_file": str(path), "public_key": public.hex()},
        f"Signing key written to {path} (keep it secret).\nPublic key (give it to gateways and "
        f"`--signing-key`):\n{public.hex()}",
    )
    return EXIT_OK


def _load_signing_key(path: Path) -> bytes:
    from rayzig_core.firmware import public_key_of  # noqa: PLC0415

    try:
        text = _open_private(path, "signing key file")
    except FileNotFoundError:
        raise CliError(
            f"There is no signing key file {path}: make one with `rayzig keygen`."
        ) from None
    try:
        document = json.loads(text)
        private = bytes.fromhex(document["private_key"])
        public_key_of(private)
    except (ValueError, KeyError, TypeError):
        raise CliError(f"The signing key file {path} is damaged or not a signing key.") from None
    return private


def cmd_firmware_publish(args: argparse.Namespace, out: _Out) -> int:
    """Sign an image and add it to a catalogue directory."""
    from rayzig_core.firmware import CATALOGUE_FILE, publish_image  # noqa: PLC0415
    from rayzig_core.virtual_gateway.gateway import HARDWARE as GATEWAY_HARDWARE  # noqa: PLC0415

    directory = Path(args.directory)
    private = _load_signing_key(Path(args.signing_key_file).expanduser())
    hardware = args.hardware
    if hardware is None and not (directory / CATALOGUE_FILE).exists():
        hardware = GATEWAY_HARDWARE
    elif hardware is None:
        try:
            hardware = json.loads((directory / CATALOGUE_FILE).read_text(encoding="utf-8"))[
                "hardware"
            ]
        except (OSError, ValueError, KeyError, TypeError):
            raise CliError(
                f"The catalogue in {directory} is unreadable: repair it, or name the hardware "
                "with --hardware."
            ) from None
    try:
        image = Path(args.image).read_bytes()
    except OSError as err:
        raise CliError(f"Cannot read the image {args.image}: {err.strerror}.") from None
    try:
        entry = publish_image(
            directory,
            private,
            hardware=str(hardware),
            part=PARTS[args.part],
            version=args.version,
            security_version=args.security_version,
            image=image,
            release_notes=args.release_notes,
            security_fix=args.security_fix,
        )
    except RequestError as err:
        raise CliError(str(err)) from None
    except OSError as err:
        raise CliError(f"Cannot write to {directory}: {err.strerror}.") from None
    manifest = entry.manifest
    out.result(
        {
            "part": args.part,
            "version": manifest.version,
            "security_version": manifest.security_version,
            "hardware": manifest.hardware,
            "size": manifest.size,
            "sha256": manifest.sha256.hex(),
            "image": entry.image_name,
            "directory": str(directory),
        },
        f"Published {args.part} {manifest.version} (security version "
        f"{manifest.security_version}, {manifest.size} bytes) for {manifest.hardware} in "
        f"{directory / entry.image_name}.",
    )
    return EXIT_OK


async def _wait_for_stop(duration: float | None = None) -> None:
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        if duration is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)


def _lock_state(state: Path) -> int | None:
    """Take the lock of a state file (``FILE.lock``) for this process; CliError if it is held.

    A running virtual gateway holds it, so that a factory reset cannot be undone by the
    gateway writing its old state back when it stops. The lock ends with the process (or when
    the returned descriptor is closed). None where locking is not available.
    """
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows
        return None
    path = state.with_name(f"{state.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise CliError(f"Cannot open the lock file {path}: {err.strerror}.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise CliError(
            f"A virtual gateway is running with {state}: stop it first (Ctrl-C)."
        ) from None
    return fd


def _unlock_state(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def cmd_virtual_gateway(args: argparse.Namespace, out: _Out) -> int | Coroutine[Any, Any, int]:
    """Load (or create) the virtual gateway, then run it until Ctrl-C or SIGTERM."""
    from rayzig_core.virtual_gateway.firmware_store import FirmwareStore  # noqa: PLC0415
    from rayzig_core.virtual_gateway.server import (  # noqa: PLC0415
        GatewayServer,
        TcpFaults,
        load_state,
        open_gateway,
    )

    state = Path(args.state).expanduser()
    if args.factory_reset:
        return _factory_reset(state, out, confirmed=args.yes)
    trusted = tuple(args.trust_update_key or ())
    lock = _lock_state(state)
    try:
        gateway = load_state(state)
    except (ValueError, OSError) as err:
        _unlock_state(lock)
        raise CliError(f"Cannot load the gateway state {state}: {err}") from None
    factory = None
    if gateway is None:
        # Not saved before it listens: if the port is taken, the secrets are not lost unseen.
        gateway, factory = open_gateway(
            None, module_count=args.modules or 12, trusted_update_keys=trusted
        )
    else:
        if args.modules is not None and args.modules != len(gateway.site.modules()):
            _Out.note(
                f"--modules applies when the state file is created; {state} keeps its "
                f"{len(gateway.site.modules())} modules."
            )
        if trusted and set(trusted) != set(gateway.firmware.trusted_keys):
            # Through the store's own persistence, so a partial image is re-verified, not lost.
            saved = gateway.firmware.to_json()
            saved["trusted_keys"] = [key.hex() for key in trusted]
            gateway.firmware = FirmwareStore.from_json(saved)
    server = GatewayServer(
        gateway,
        host=args.host,
        port=args.port,
        state_path=state,
        simulate_interval=args.simulate,
        faults=TcpFaults(
            disconnect_rate=args.fault_disconnects,
            reboot_interval=args.fault_reboot_every,
            seed=args.fault_seed,
        ),
    )
    return _run_gateway(server, state, factory, out, args.run_for, lock=lock)


def _factory_reset(state: Path, out: _Out, *, confirmed: bool) -> int:
    """Erase the user data of a stopped virtual gateway's state file (PROTOCOL.md §12)."""
    from rayzig_core.virtual_gateway.gateway import FACTORY_USER  # noqa: PLC0415
    from rayzig_core.virtual_gateway.server import load_state, save_state  # noqa: PLC0415

    if not state.exists():
        raise CliError(f"There is no gateway state in {state}: nothing to reset.")
    lock = _lock_state(state)
    try:
        try:
            gateway = load_state(state)
        except (ValueError, OSError) as err:
            raise CliError(f"Cannot load the gateway state {state}: {err}") from None
        if gateway is None:  # removed meanwhile
            raise CliError(f"There is no gateway state in {state}: nothing to reset.")
        if not confirmed:
            if not _interactive():
                raise CliError(
                    "A factory reset erases every user but installer, every paired client and "
                    "every event log; pass --yes to confirm it without a terminal."
                )
            _Out.note(
                f"Factory reset of gateway {gateway.serial} ({state}): every user but "
                f"{FACTORY_USER}, every paired client and every event log will be erased, and "
                f"{FACTORY_USER} goes back to the default password on the label."
            )
            answer = _ask_line("Erase them? [yes/no] ")
            if answer.lower() not in {"y", "yes"}:
                raise CliError("Factory reset not confirmed: nothing was erased.")
        report = gateway.factory_reset()
        try:
            save_state(gateway, state)
        except OSError as err:
            raise CliError(f"Cannot write the state file {state}: {err.strerror}.") from None
    finally:
        _unlock_state(lock)
    users = ", ".join(report.users)
    out.result(
        {
            "event": "factory_reset",
            "serial": gateway.serial,
            "state": str(state),
            "fingerprint": gateway.fingerprint,
            "users_erased": list(report.users),
            "clients_erased": report.clients,
            "event_records_erased": report.event_records,
            "modules": report.modules,
        },
        "\n".join(
            [
                f"Factory reset of virtual gateway {gateway.serial} (state {state}):",
                f"  erased {len(report.users)} user(s){f' ({users})' if users else ''}; "
                f"{FACTORY_USER} is back to the default password on the label and must change it",
                f"  erased {report.clients} paired client key(s): they must pair again",
                f"  erased {report.event_records} event-log record(s) of {report.modules} "
                "module(s) (sequence numbers go on)",
                "  cleared every password throttle and the replay caches",
                f"Kept: the identity key (fingerprint {gateway.fingerprint}), the default "
                "password and recovery secret, modules, outputs, presets and firmware.",
            ]
        ),
    )
    return EXIT_OK


async def _run_gateway(
    server: GatewayServer,
    state: Path,
    factory: FactorySecrets | None,
    out: _Out,
    run_for: float | None,
    *,
    lock: int | None = None,
) -> int:
    """Listen, save the (new) state, announce, and serve until stopped; then release ``lock``."""
    try:
        return await _serve_gateway(server, state, factory, out, run_for)
    finally:
        _unlock_state(lock)


async def _serve_gateway(
    server: GatewayServer,
    state: Path,
    factory: FactorySecrets | None,
    out: _Out,
    run_for: float | None,
) -> int:
    from rayzig_core.virtual_gateway.server import save_state  # noqa: PLC0415

    try:
        await server.start()
    except OSError as err:
        raise CliError(
            str(err) if err.strerror else f"Cannot listen: {err}", EXIT_CONNECT
        ) from None
    try:
        save_state(server.gateway, state)
    except OSError as err:
        server.state_path = None
        await server.stop()
        raise CliError(f"Cannot write the state file {state}: {err.strerror}.") from None
    try:
        _announce_gateway(out, server, state, factory)
        await _wait_for_stop(run_for)
    finally:
        await server.stop()
    if out.json:
        out.record({"event": "stopped", "state": str(state)}, "")
    else:
        _Out.note(f"Virtual gateway stopped; state saved in {state}.")
    return EXIT_OK


def _announce_gateway(
    out: _Out, server: GatewayServer, state: Path, factory: FactorySecrets | None
) -> None:
    gateway = server.gateway
    modules = len(gateway.site.modules())
    data: dict[str, Any] = {
        "event": "listening",
        "host": server.host,
        "port": server.port,
        "serial": gateway.serial,
        "fingerprint": gateway.fingerprint,
        "modules": modules,
        "state": str(state),
        "first_start": factory is not None,
    }
    text = []
    if factory is not None:
        data["user"] = DEFAULT_USER
        data["default_password"] = factory.default_password
        data["recovery_secret"] = factory.recovery_secret
        rule = "=" * 72
        text += [
            rule,
            f"  NEW VIRTUAL GATEWAY {gateway.serial}: factory state",
            "  Write these down now. They are shown ONLY THIS ONCE.",
            "",
            f"  User:              {DEFAULT_USER}",
            f"  Default password:  {factory.default_password}",
            "                     (it only lets you set a new password)",
            f"  Recovery secret:   {factory.recovery_secret}",
            "                     (resets the System password if it is lost)",
            f"  Fingerprint:       {gateway.fingerprint}",
            "",
            f"  Pair with:  rayzig pair --host {server.host} --port {server.port}",
            rule,
        ]
    text.append(
        f"Rayzig virtual gateway {gateway.serial} listening on {server.host}:{server.port} "
        f"({modules} modules, state {state})"
    )
    text.append(f"Fingerprint {gateway.fingerprint}. Press Ctrl-C to stop.")
    out.result(data, "\n".join(text))


def cmd_update_server(args: argparse.Namespace, out: _Out) -> Coroutine[Any, Any, int]:
    """Check the catalogue directory, then serve it until Ctrl-C or SIGTERM."""
    from rayzig_core.firmware import CATALOGUE_FILE  # noqa: PLC0415

    directory = Path(args.directory)
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory.")
    if not (directory / CATALOGUE_FILE).is_file():
        _Out.note(
            f"{directory} has no {CATALOGUE_FILE} yet; publish an image with "
            "`rayzig firmware-publish`."
        )
    return _serve_updates(directory, args.host, args.port, out, args.run_for)


async def _serve_updates(
    directory: Path, host: str, port: int, out: _Out, run_for: float | None
) -> int:
    """Serve ``directory`` until stopped."""
    from rayzig_core.firmware import serve  # noqa: PLC0415

    try:
        runner = await serve(directory, host, port)
    except OSError as err:
        raise CliError(
            f"Cannot listen on {host}:{port} ({err.strerror or err}); choose another "
            "port with --port or stop the program using it.",
            EXIT_CONNECT,
        ) from None
    try:
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}/"
        out.result(
            {
                "event": "listening",
                "url": url,
                "host": bound_host,
                "port": bound_port,
                "directory": str(directory),
            },
            f"Serving the firmware catalogue in {directory} at {url}. Press Ctrl-C to stop.",
        )
        await _wait_for_stop(run_for)
    finally:
        await runner.cleanup()
    if out.json:
        out.record({"event": "stopped"}, "")
    else:
        _Out.note("Update server stopped.")
    return EXIT_OK


def cmd_bridge(args: argparse.Namespace, out: _Out) -> Coroutine[Any, Any, int]:
    """Forward frames between TCP clients and the I2C gateway until Ctrl-C or SIGTERM."""
    from rayzig_core.bridge import BridgeConfig  # noqa: PLC0415 - bridge code only when bridging
    from rayzig_core.transport.i2c import I2CConnector  # noqa: PLC0415

    bus, address = args.i2c_bus, args.address
    if bus is None or address is None:
        raise CliError(
            "Give the gateway's --i2c-bus and --address (e.g. --i2c-bus 1 --address 0x42)."
        )
    host, port = args.listen

    def connector_for(channel: int) -> Connector:
        return I2CConnector(bus, address, channel=channel)

    config = BridgeConfig(
        connector_for,
        host=host,
        port=port,
        max_clients=args.max_clients,
        zeroconf=not args.no_zeroconf,
        zeroconf_interfaces=args.zeroconf_interface,
    )
    return _run_bridge(config, out, args.run_for)


async def _run_bridge(config: BridgeConfig, out: _Out, run_for: float | None) -> int:
    """Identify the gateway, listen and advertise, then forward until stopped."""
    from rayzig_core.bridge import IdentifyError, run_bridge  # noqa: PLC0415

    def ready(bridge: Bridge, advert: GatewayAdvert, advertiser: ZeroconfAdvertiser | None) -> None:
        announced = advertiser.name if advertiser is not None else None
        out.result(
            {
                "event": "listening",
                "host": bridge.host,
                "port": bridge.port,
                "serial": advert.serial,
                "fingerprint": advert.fingerprint,
                "protocol_version": advert.protocol_version,
                "max_clients": bridge.max_clients,
                "zeroconf": announced,
            },
            f"Rayzig bridge for gateway {advert.serial} listening on {bridge.host}:{bridge.port} "
            f"(at most {bridge.max_clients} clients"
            + (f"; announced as {announced!r}" if announced else "; not announced")
            + f").\nFingerprint {advert.fingerprint}. Press Ctrl-C to stop.",
        )

    try:
        bridge = await run_bridge(config, wait=lambda: _wait_for_stop(run_for), on_ready=ready)
    except IdentifyError as err:
        raise CliError(str(err), EXIT_CONNECT) from None
    except OSError as err:
        raise CliError(
            str(err) if err.strerror else f"Cannot listen: {err}", EXIT_CONNECT
        ) from None
    if out.json:
        out.record({"event": "stopped", "clients_served": bridge.accepted}, "")
    else:
        served = bridge.accepted
        _Out.note(f"Bridge stopped; it served {served} connection{'' if served == 1 else 's'}.")
    return EXIT_OK


def _listen_address(text: str) -> tuple[str, int]:
    from rayzig_core.bridge import parse_listen  # noqa: PLC0415

    try:
        return parse_listen(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _max_clients(text: str) -> int:
    value = _positive(text)
    if value > 15:
        raise argparse.ArgumentTypeError("a bridge serves 1 to 15 clients (one link channel each)")
    return value


# --- parser ------------------------------------------------------------------------------------


def _common(*, suppress: bool) -> argparse.ArgumentParser:
    """Options every command accepts, before or after the command name."""
    parent = _Parser(add_help=False)
    default: Any = argparse.SUPPRESS if suppress else False
    group = parent.add_argument_group("output")
    group.add_argument(
        "--json", action="store_true", default=default, help="machine-readable output on stdout"
    )
    group.add_argument(
        "--verbose", "-v", action="store_true", default=default, help="log details to stderr"
    )
    return parent


def _connection_options(*, suppress: bool) -> argparse.ArgumentParser:
    parent = _Parser(add_help=False)
    default: Any = argparse.SUPPRESS if suppress else None
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--host",
        default=default,
        help=f"gateway or bridge host (default {DEFAULT_HOST}, or the key file's)",
    )
    group.add_argument(
        "--port",
        type=_port,
        default=default,
        help=f"TCP port (default {DEFAULT_PORT}, or the key file's)",
    )
    group.add_argument(
        "--i2c-bus",
        type=_non_negative,
        default=default,
        metavar="N",
        help="I2C bus number (/dev/i2c-N)",
    )
    group.add_argument(
        "--address",
        type=_i2c_address,
        default=default,
        metavar="ADDR",
        help="gateway I2C address, e.g. 0x42",
    )
    group.add_argument(
        "--i2c-channel",
        type=_i2c_channel,
        default=default,
        metavar="N",
        help="I2C link channel, 0 to 15 (default 0, or the key file's); Home Assistant on "
        "local I2C uses 0: use 1 next to it on the same computer",
    )
    group.add_argument(
        "--key-file",
        default=argparse.SUPPRESS if suppress else DEFAULT_KEY_FILE,
        metavar="PATH",
        help=f"pairing key file, mode 0600 (default {DEFAULT_KEY_FILE})",
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=argparse.SUPPRESS if suppress else DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"connect and request timeout (default {DEFAULT_TIMEOUT:.0f})",
    )
    fake = parent.add_argument_group(
        "simulated I2C bus (tests and demos; needs --i2c-bus/--address)"
    )
    fake.add_argument(
        "--fake-i2c",
        default=default,
        metavar="STATE_FILE",
        help="run the command against a virtual gateway (state in STATE_FILE, made if missing) "
        "started in-process on a simulated /dev/i2c-N, through the real smbus2 path",
    )
    fake.add_argument(
        "--i2c-clock",
        type=_i2c_clock,
        default=default,
        metavar="100k|400k|1M",
        help="model the bus at this clock in real time, with mesh hop latency "
        "(default: no timing model, as fast as possible)",
    )
    for option, what in (
        ("--fault-bit-flips", "a bit flipped in transit"),
        ("--fault-nacks", "a NACK (errno 121)"),
        ("--fault-busy", "a BUSY answer from the gateway"),
        ("--fault-timeouts", "its reply lost (errno 110)"),
    ):
        fake.add_argument(
            option,
            type=_rate,
            default=default,
            metavar="RATE",
            help=f"probability (0 to 1) that a transaction gets {what}",
        )
    fake.add_argument(
        "--fault-seed",
        type=_non_negative,
        default=default,
        metavar="N",
        help="seed of the fault injection (default 0: the same faults every run)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """Build the ``rayzig`` argument parser."""
    output_top, output_sub = _common(suppress=False), _common(suppress=True)
    conn_top, conn_sub = _connection_options(suppress=False), _connection_options(suppress=True)
    parser = _Parser(
        prog="rayzig",
        description="Commission and diagnose a Rayzig gateway; run a virtual gateway.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[output_top, conn_top],
    )
    parser.add_argument("--version", action="version", version=f"rayzig {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(
        sub: Any,
        name: str,
        handler: Handler,
        help_: str,
        *,
        client: bool = True,
    ) -> argparse.ArgumentParser:
        parents = [output_sub, conn_sub] if client else [output_sub]
        p: argparse.ArgumentParser = sub.add_parser(
            name,
            help=help_,
            description=help_,
            parents=parents,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    command(commands, "info", cmd_info, "gateway identity, fingerprint, factory state, firmware")

    p = command(commands, "pair", cmd_pair, "pair this computer with a gateway")
    p.add_argument("--user", default=DEFAULT_USER, help=f"gateway user (default {DEFAULT_USER})")
    p.add_argument(
        "--yes-fingerprint",
        metavar="FP",
        help="the fingerprint on the gateway's label (skips the question)",
    )

    p = command(commands, "passwd", cmd_passwd, "change a password (default: the paired user's)")
    p.add_argument("--user", help="whose password (default: the paired user)")

    p = command(
        commands,
        "recover",
        cmd_recover,
        "reset the System user's password with the recovery secret",
    )
    p.add_argument(
        "--user",
        default=DEFAULT_USER,
        help="System user name, for the password policy check (default installer)",
    )
    p.add_argument(
        "--yes-fingerprint",
        metavar="FP",
        help="the fingerprint on the gateway's label (when not paired)",
    )

    command(commands, "modules", cmd_modules, "list modules, outputs, presets and telemetry")

    p = command(commands, "set", cmd_set, "switch an output on or off")
    p.add_argument("module", type=_non_negative, metavar="MODULE", help="module id")
    p.add_argument("output", type=_positive, metavar="OUTPUT", help="output number, from 1")
    p.add_argument("state", choices=["on", "off"])

    p = command(commands, "preset", cmd_preset, "set what an output does when power returns")
    p.add_argument("module", type=_non_negative, metavar="MODULE", help="module id")
    p.add_argument("output", type=_positive, metavar="OUTPUT", help="output number, from 1")
    p.add_argument("preset", choices=list(PRESETS))

    p = command(
        commands,
        "utility",
        cmd_utility,
        "mark whether the Utility user may switch an output (Administrator and above)",
    )
    p.add_argument("module", type=_non_negative, metavar="MODULE", help="module id")
    p.add_argument("output", type=_positive, metavar="OUTPUT", help="output number, from 1")
    p.add_argument(
        "state",
        choices=["on", "off"],
        help="on: the Utility user may switch the output; off: it may not",
    )

    p = command(commands, "events", cmd_events, "read (and follow) the event logs")
    p.add_argument("--module", type=_non_negative, metavar="M", help="only this module")
    p.add_argument(
        "--since",
        type=_non_negative,
        default=0,
        metavar="N",
        help="only events with a sequence number above N",
    )
    p.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C"
    )
    p.add_argument(
        "--for",
        dest="timeout_follow",
        type=_seconds,
        metavar="SECONDS",
        help="with --follow: stop after SECONDS",
    )

    p = command(commands, "users", _missing_subcommand, "list, add and delete gateway users")
    users = p.add_subparsers(dest="users_command", metavar="ACTION", parser_class=_Parser)
    command(users, "list", cmd_users_list, "list users")
    q = command(
        users, "add", cmd_users_add, "add a user (password asked twice or RAYZIG_NEW_PASSWORD)"
    )
    q.add_argument("name", metavar="NAME")
    q.add_argument(
        "--level", choices=list(LEVELS), default="user", help="access level (default user)"
    )
    q = command(users, "delete", cmd_users_delete, "delete a user")
    q.add_argument("name", metavar="NAME")

    p = command(commands, "clients", _missing_subcommand, "list and revoke paired clients")
    clients = p.add_subparsers(dest="clients_command", metavar="ACTION", parser_class=_Parser)
    command(clients, "list", cmd_clients_list, "list paired client keys")
    q = command(clients, "revoke", cmd_clients_revoke, "revoke a client key")
    q.add_argument("id", type=_positive, metavar="ID")

    p = command(commands, "firmware", _missing_subcommand, "installed firmware, updates, install")
    firmware = p.add_subparsers(dest="firmware_command", metavar="ACTION", parser_class=_Parser)
    command(firmware, "list", cmd_firmware_list, "installed firmware per part")
    for name, handler, help_ in (
        ("check", cmd_firmware_check, "compare installed firmware with the update server"),
        ("install", cmd_firmware_install, "install a signed image from the update server"),
    ):
        q = command(firmware, name, handler, help_)
        if name == "install":
            q.add_argument(
                "part", choices=list(PARTS), metavar="PART", help="one of " + ", ".join(PARTS)
            )
            q.add_argument("--version", help="this version (default: the newest)")
            q.add_argument("--force", action="store_true", help="reinstall the installed version")
            q.add_argument(
                "--yes", action="store_true", help="do not ask before installing (on a terminal)"
            )
        q.add_argument(
            "--server",
            required=True,
            metavar="URL",
            help="update server, e.g. http://127.0.0.1:8765",
        )
        q.add_argument(
            "--signing-key",
            type=_public_key,
            action="append",
            required=True,
            metavar="HEX",
            help="trusted Ed25519 public key of the publisher (repeatable)",
        )

    p = command(
        commands, "virtual-gateway", cmd_virtual_gateway, "run the virtual gateway", client=False
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"listen address (default {DEFAULT_HOST})")
    p.add_argument(
        "--port",
        type=_listen_port,
        default=DEFAULT_PORT,
        help=f"TCP port, 0 for any free one (default {DEFAULT_PORT})",
    )
    p.add_argument(
        "--state",
        default=DEFAULT_STATE_FILE,
        metavar="FILE",
        help=f"state file (default {DEFAULT_STATE_FILE})",
    )
    p.add_argument(
        "--modules",
        type=_module_count,
        metavar="N",
        help="modules of a new site, 1 to 250 (default 12)",
    )
    p.add_argument(
        "--simulate", type=_seconds, metavar="SECONDS", help="random activity about every SECONDS"
    )
    p.add_argument(
        "--trust-update-key",
        type=_public_key,
        action="append",
        metavar="HEX",
        help="trust firmware signed by this Ed25519 public key (repeatable; replaces saved keys)",
    )
    p.add_argument("--run-for", type=_seconds, metavar="SECONDS", help="stop after SECONDS (demos)")
    p.add_argument(
        "--fault-disconnects",
        type=_rate,
        metavar="RATE",
        default=0.0,
        help="fault injection: drop a client's connection before a received frame with this "
        "probability (e.g. 0.01)",
    )
    p.add_argument(
        "--fault-reboot-every",
        type=_seconds,
        metavar="SECONDS",
        help="fault injection: simulate a gateway reboot (every session ends) every SECONDS",
    )
    p.add_argument("--fault-seed", type=int, metavar="N", help="seed for --fault-disconnects")
    p.add_argument(
        "--factory-reset",
        action="store_true",
        help="erase the users (installer back to the default password), paired clients and "
        "event logs in the state file of a stopped gateway, then exit",
    )
    p.add_argument("--yes", action="store_true", help="with --factory-reset: do not ask")

    p = command(
        commands,
        "update-server",
        cmd_update_server,
        "serve a firmware catalogue directory",
        client=False,
    )
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"listen address (default {DEFAULT_HOST})")
    p.add_argument(
        "--port",
        type=_listen_port,
        default=DEFAULT_UPDATE_PORT,
        help=f"TCP port, 0 for any free one (default {DEFAULT_UPDATE_PORT})",
    )
    p.add_argument("--run-for", type=_seconds, metavar="SECONDS", help="stop after SECONDS (demos)")

    p = command(
        commands,
        "bridge",
        cmd_bridge,
        "forward encrypted frames between TCP clients and the I2C gateway (on the SBC)",
        client=False,
    )
    p.add_argument(
        "--i2c-bus", type=_non_negative, metavar="N", help="I2C bus of the gateway (/dev/i2c-N)"
    )
    p.add_argument(
        "--address", type=_i2c_address, metavar="ADDR", help="gateway I2C address, e.g. 0x42"
    )
    p.add_argument(
        "--listen",
        type=_listen_address,
        required=True,
        metavar="HOST:PORT",
        help="TCP address to serve, e.g. 0.0.0.0:7780 ([::]:7780 for IPv6; port 0: any free one)",
    )
    p.add_argument(
        "--max-clients",
        type=_max_clients,
        default=8,
        metavar="N",
        help="TCP clients at once, 1 to 15 (default 8); more are refused",
    )
    p.add_argument(
        "--no-zeroconf", action="store_true", help="do not announce the bridge over zeroconf"
    )
    p.add_argument(
        "--zeroconf-interface",
        action="append",
        metavar="ADDR",
        help="announce only on the interface with this IP address (repeatable; default: all)",
    )
    p.add_argument(
        "--fake-i2c",
        metavar="STATE_FILE",
        help="demo: bridge to a virtual gateway (state in STATE_FILE, made if missing) started "
        "in-process on a simulated /dev/i2c-N at --i2c-bus/--address",
    )
    p.add_argument(
        "--i2c-clock",
        type=_i2c_clock,
        metavar="100k|400k|1M",
        help="with --fake-i2c: model the bus at this clock in real time",
    )
    p.add_argument("--run-for", type=_seconds, metavar="SECONDS", help="stop after SECONDS (demos)")

    p = command(
        commands,
        "firmware-publish",
        cmd_firmware_publish,
        "sign an image into a catalogue directory",
        client=False,
    )
    p.add_argument("directory", metavar="DIR")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--signing-key-file", required=True, metavar="F", help="made by `rayzig keygen`")
    p.add_argument(
        "--part", required=True, choices=list(PARTS), metavar="P", help="one of " + ", ".join(PARTS)
    )
    p.add_argument("--version", required=True, metavar="V")
    p.add_argument(
        "--security-version",
        required=True,
        type=_non_negative,
        metavar="N",
        help="anti-rollback counter",
    )
    p.add_argument(
        "--hardware", help="hardware name (default: the catalogue's; for a new one RZ-GW1)"
    )
    p.add_argument("--release-notes", default="", metavar="TEXT")
    p.add_argument("--security-fix", action="store_true", help="mark the image as a security fix")

    p = command(
        commands,
        "keygen",
        cmd_keygen,
        "make an Ed25519 firmware signing key file (0600)",
        client=False,
    )
    p.add_argument("--out", required=True, metavar="F")
    return parser


def _module_count(text: str) -> int:
    value = _positive(text)
    if value > 250:
        raise argparse.ArgumentTypeError("a site has at most 250 modules")
    return value


def _missing_subcommand(args: argparse.Namespace, out: _Out) -> int:
    raise _UsageError(f"rayzig {args.command}", "choose an action")


def _version() -> str:
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version("rayzig-core")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- errors ------------------------------------------------------------------------------------


def _describe(err: BaseException) -> tuple[int, str]:
    """Exit code and one line saying what went wrong and what to do."""
    if isinstance(err, CliError):
        return err.code, str(err)
    if isinstance(err, GatewayKeyChangedError):
        return EXIT_AUTH, str(err)
    if isinstance(err, ClientRevokedError):
        return EXIT_AUTH, (
            "The gateway no longer accepts this client's key (revoked, or its user was "
            "deleted): pair again with `rayzig pair`."
        )
    if isinstance(err, ThrottledError):
        return EXIT_AUTH, (
            f"Too many failed attempts: the gateway accepts the next one in "
            f"{max(err.retry_after, 1):.0f} seconds. Wait, then try again."
        )
    if isinstance(err, InvalidCredentialsError):
        return EXIT_AUTH, (
            "Wrong user name, password or recovery secret. Check them and try again (after "
            "repeated failures the gateway makes you wait)."
        )
    if isinstance(err, PasswordChangeRequiredError):
        return EXIT_AUTH, (
            "The gateway still has its factory password: run `rayzig pair` to set a new one."
        )
    if isinstance(err, AuthenticationError):
        return EXIT_AUTH, f"Authentication failed: {err}"
    if isinstance(err, PasswordRejectedError):
        return EXIT_REFUSED, "The gateway refused the password: " + " ".join(
            _gateway_reasons(err.reasons)
        )
    if isinstance(err, RequestError):
        return EXIT_REFUSED, f"The gateway refused: {err}"
    if isinstance(err, ConnectionFailedError):
        return EXIT_CONNECT, f"Cannot reach the gateway: {err}"
    if isinstance(err, ProtocolError):
        return EXIT_CONNECT, (
            f"The other end does not speak the Rayzig protocol correctly ({err}); check that the "
            "host and port lead to a Rayzig gateway or bridge."
        )
    if isinstance(err, RayzigInternalError):
        return EXIT_INTERNAL, f"Internal error: {err}. Please report this bug."
    if isinstance(err, RayzigError):
        return EXIT_INTERNAL, f"Unexpected error: {err}. Please report this bug."
    return EXIT_INTERNAL, (
        f"Internal error ({type(err).__name__}). Please report this bug with the command you ran."
    )


class _NoTracebackFormatter(logging.Formatter):
    """Log lines without tracebacks (the CLI never prints one)."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging API
        return ""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_text = ""
        saved = record.exc_info
        record.exc_info = None
        try:
            return super().format(record)
        finally:
            record.exc_info = saved


@contextlib.contextmanager
def _logging(*, verbose: bool, server: bool) -> Iterator[None]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_NoTracebackFormatter("rayzig: %(levelname)s: %(message)s"))
    level = logging.DEBUG if verbose else logging.INFO if server else logging.WARNING
    handler.setLevel(level)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, old_level) if old_level else level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def main(argv: list[str] | None = None) -> int:
    """Run the ``rayzig`` command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(f"{err.prog}: {err} (see `{err.prog} --help`)", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        print("rayzig: choose a command (see `rayzig --help`)", file=sys.stderr)
        return EXIT_USAGE
    out = _Out(json_mode=args.json)
    server = args.command in {"virtual-gateway", "update-server", "bridge"}
    try:
        with _logging(verbose=args.verbose, server=server), _fake_i2c(args):
            result = handler(args, out)
            return result if isinstance(result, int) else asyncio.run(result)
    except _UsageError as err:
        print(f"{err.prog}: {err} (see `{err.prog} --help`)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rayzig: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - every failure becomes one line and an exit code
        code, message = _describe(err)
        print(f"rayzig: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
