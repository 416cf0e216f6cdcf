"""Child processes of the rehearsal: each in a session of its own, stopped with its whole group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

LOOPBACK = "127.0.0.1"

_T = TypeVar("_T")


class RehearsalError(Exception):
    """A step of the rehearsal failed; the message says what failed and where to look."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for servers that need a fixed port)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file ("" if it does not exist yet)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    timeout: float,
    what: str,
    stdout_only: bool = False,
) -> str:
    """Run a command to its end with its output appended to ``log``; return that output.

    With ``stdout_only`` the returned text is its stdout alone (stderr still goes to the log). A
    non-zero exit or a time-out raises RehearsalError with the log's tail; on a time-out the
    command's whole process group is killed.
    """
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(  # noqa: S603 - argv is built by the rehearsal, no shell
            list(argv),
            stdout=subprocess.PIPE,
            stderr=out if stdout_only else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            output, _ = proc.communicate()
            out.write(output)
            out.close()
            msg = f"{what} did not finish within {timeout:.0f} s; its log ends with:\n{tail(log)}"
            raise RehearsalError(msg) from None
        except BaseException:  # stopped by a signal: its group goes too
            _kill_group(proc.pid)
            raise
        _kill_group(proc.pid)  # nothing it started may outlive it
        out.write(output)
    text = output.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        msg = f"{what} failed (exit {proc.returncode}); its log ends with:\n{tail(log)}"
        raise RehearsalError(msg)
    return text


def wait_until(
    what: str, probe: Callable[[], _T | None], *, timeout: float, alive: Service | None = None
) -> _T:
    """Poll ``probe`` until it returns a value; fail after ``timeout`` or if ``alive`` stops."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if alive is not None and not alive.running():
            msg = (
                f"{alive.name} stopped while waiting for {what}; its log ends with:\n{alive.tail()}"
            )
            raise RehearsalError(msg)
        if time.monotonic() > deadline:
            msg = f"no {what} within {timeout:.0f} s"
            if alive is not None:
                msg += f"; {alive.name}'s log ends with:\n{alive.tail()}"
            raise RehearsalError(msg)
        time.sleep(0.25)


@dataclass
class Service:
    """A server started by the rehearsal, its output in files; stopped with its process group."""

    name: str
    argv: list[str]
    output: Path
    """Where stdout goes (and stderr too, unless ``errors`` is given)."""
    env: Mapping[str, str]
    cwd: Path
    errors: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _files: list[IO[bytes]] = field(default_factory=list, repr=False)

    def start(self) -> Service:
        """Start it in a new session, so that stopping it reaches everything it started."""
        out = self.output.open("wb")
        self._files.append(out)
        err: IO[bytes] | int = subprocess.STDOUT
        if self.errors is not None:
            err = self.errors.open("wb")
            self._files.append(err)
        self.process = subprocess.Popen(  # noqa: S603 - argv is built by the rehearsal, no shell
            self.argv,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=dict(self.env),
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        """The end of its log (stderr when separate: stdout may hold a secret)."""
        return tail(self.errors or self.output, lines)

    def stop(self, timeout: float) -> None:
        """SIGTERM, up to ``timeout`` seconds to exit, then SIGKILL of the whole group."""
        proc = self.process
        try:
            if proc is not None:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        _kill_group(proc.pid)
                        proc.wait(timeout=30)
                _kill_group(proc.pid)
        finally:
            for file in self._files:
                file.close()
            self._files.clear()
