"""``main()``: parse the command line, run the command, and turn every failure into one line.

A command's module is imported only when it runs (see spec.py), so ``rayzig info`` does not
load the virtual gateway, the bridge, the update server or aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from rayzig_core.cli.connection import SimulatedBusOptions, simulated_bus
from rayzig_core.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_USAGE,
    StdoutClosedError,
    UsageError,
    describe,
)
from rayzig_core.cli.output import Out
from rayzig_core.cli.parser import PROG, build_parser
from rayzig_core.cli.spec import Command, Handler, options_from, resolve
from rayzig_core.errors import RayzigInternalError


def main(argv: list[str] | None = None) -> int:
    """Run the ``rayzig`` command line; returns the exit code (see docs/CLI.md, Exit codes).

    A reader that stops early (``rayzig modules | head -2``) ends the command quietly with
    EXIT_PIPE_CLOSED, as a Unix tool ended by SIGPIPE would.
    """
    try:
        code = _run(argv)
        sys.stdout.flush()
    except (StdoutClosedError, BrokenPipeError):  # BrokenPipeError: the final flush of stdout
        _discard_stdout()
        return EXIT_PIPE_CLOSED
    return code


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail again.

    Python's recommended handling of a closed pipe (the ``signal`` module's documentation, note
    on SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with contextlib.suppress(OSError, ValueError):  # stdout is no file (an embedder's)
            os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def _run(argv: list[str] | None) -> int:
    """Parse, run the command, and turn every failure into one line and an exit code."""
    try:
        namespace = build_parser().parse_args(argv)
    except UsageError as err:
        print(err.line(), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    command: Command | None = namespace.command_spec
    if command is None:
        print(f"{PROG}: choose a command (see `{PROG} --help`)", file=sys.stderr)
        return EXIT_USAGE
    out = Out(json_mode=namespace.json)
    bus = options_from(SimulatedBusOptions, namespace)
    try:
        with (
            _logging(verbose=namespace.verbose, server=command.serves),
            simulated_bus(bus, namespace.command, reaches_gateway=command.reaches_gateway),
        ):
            result = _handler(command, namespace)(namespace, out)
            return result if isinstance(result, int) else asyncio.run(result)
    except UsageError as err:
        print(err.line(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except StdoutClosedError:
        raise  # a reader that stopped early, not a failure: main() ends quietly
    except Exception as err:  # noqa: BLE001 - every failure becomes one line and an exit code
        code, message = describe(err)
        print(f"{PROG}: {message}", file=sys.stderr)
        return code


def _handler(command: Command, namespace: argparse.Namespace) -> Handler[Any]:
    """The handler of ``command``, its module imported now; a group needs one of its actions."""
    if command.handler is None:
        raise UsageError(f"{PROG} {namespace.command}", "choose an action")
    found = resolve(command.handler)
    if not isinstance(found, Handler):
        raise RayzigInternalError(f"{command.handler} is not a command handler")
    return found


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
    """Log to stderr while a command runs: warnings, a server's INFO, everything with -v."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_NoTracebackFormatter(f"{PROG}: %(levelname)s: %(message)s"))
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
