"""Helpers of the real-browser end-to-end test: processes, ports, screenshots per step.

Nothing here prints or stores a password: the virtual gateway's JSON banner (which carries the
one-time default password) is read from a file in the test's temporary directory and never copied
to the artifacts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
"""The virtualenv's scripts: ``rayzig``, ``hass``."""
ARTIFACTS = ROOT / "artifacts" / "e2e"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
TRANSLATIONS = ROOT / "custom_components" / "rayzig" / "translations" / "en.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags for Debian's Chromium on these machines (docs: machines/python.md). Playwright's
``launch`` adds a fresh, temporary ``--user-data-dir`` itself and removes it on close."""

HOST = "127.0.0.1"
UPDATE_SCREENSHOTS_ENV = "RAYZIG_UPDATE_SCREENSHOTS"

_T = TypeVar("_T")


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (Home Assistant needs a fixed one)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ui_strings() -> dict[str, Any]:
    """The integration's English UI strings, as Home Assistant shows them."""
    return dict(json.loads(TRANSLATIONS.read_text(encoding="utf-8")))


@dataclass
class ManagedProcess:
    """A subprocess in its own session, output to a file; stopped with SIGTERM, then SIGKILL."""

    name: str
    argv: list[str]
    output: Path
    """Where stdout goes (and stderr, unless ``errors`` is given)."""
    errors: Path | None = None
    env: dict[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _files: list[IO[bytes]] = field(default_factory=list, repr=False)

    def start(self) -> ManagedProcess:
        out = self.output.open("wb")
        self._files.append(out)
        err: IO[bytes] | int = subprocess.STDOUT
        if self.errors is not None:
            err = self.errors.open("wb")
            self._files.append(err)
        self.process = subprocess.Popen(
            self.argv,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        """The end of the process's log (stderr when separate: stdout may hold secrets)."""
        try:
            text = (self.errors or self.output).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, wait up to ``timeout``; then SIGKILL the whole process group. Returns rc."""
        proc = self.process
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
            # Anything the process left behind in its session goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        finally:
            for file in self._files:
                file.close()
            self._files.clear()
        return proc.returncode


def rayzig(*args: str) -> dict[str, Any]:
    """Run the installer CLI with ``--json``; its result. Fails the test with its stderr."""
    done = subprocess.run(
        [str(BIN / "rayzig"), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"rayzig {args[0]} failed ({done.returncode}): {done.stderr}"
    return dict(json.loads(done.stdout.splitlines()[-1]))


def wait_for_json_line(proc: ManagedProcess, event: str, timeout: float) -> dict[str, Any]:
    """Wait for the first JSON line ``{"event": event, ...}`` in a process's output file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.output.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    data = json.loads(line)
                    if isinstance(data, dict) and data.get("event") == event:
                        return data
        if not proc.running():
            msg = f"{proc.name} exited before {event!r}; its output ends with:\n{proc.tail()}"
            raise RuntimeError(msg)
        time.sleep(0.1)
    msg = f"{proc.name} printed no {event!r} line within {timeout:.0f} s"
    raise TimeoutError(msg)


def wait_for_http(url: str, proc: ManagedProcess, timeout: float) -> float:
    """Wait until ``url`` answers 200; fail early if the process dies. Returns seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        if not proc.running():
            msg = f"{proc.name} stopped while starting; its output ends with:\n{proc.tail()}"
            raise RuntimeError(msg)
        time.sleep(0.5)
    msg = f"{url} did not answer within {timeout:.0f} s; {proc.name} output:\n{proc.tail()}"
    raise TimeoutError(msg)


def run_async(factory: Callable[[], Awaitable[_T]], timeout: float = 60) -> _T:
    """Run a coroutine in a thread of its own (Playwright's sync API owns this thread's loop)."""

    def runner() -> _T:
        async def main() -> _T:
            return await factory()

        return asyncio.run(main())

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(runner).result(timeout=timeout)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class Steps:
    """Numbered steps, each leaving artifacts/e2e/NN-name.png (NN-name-FAILED.png on failure)."""

    def __init__(self, page: Page, directory: Path = ARTIFACTS) -> None:
        self.page = page
        self.directory = directory
        self.number = 0
        self.saved: list[Path] = []
        self.notes: list[str] = []
        """Lines for artifacts/e2e/summary.txt: each step's outcome and time, and test notes."""
        self.skipped: list[str] = []
        """Steps that called ``pytest.skip`` (the test goes on): "NN name: reason"."""
        self._current: str | None = None

    def _path(self, name: str, suffix: str = "") -> Path:
        return self.directory / f"{self.number:02d}-{slug(name)}{suffix}.png"

    def screenshot(self, path: Path) -> Path | None:
        try:
            self.page.screenshot(path=str(path), timeout=15_000)
        except Exception:
            return None
        self.saved.append(path)
        return path

    def shot(self, name: str) -> Path | None:
        """An extra screenshot inside the current step: ``NN-<step>-<name>.png``."""
        assert self._current is not None
        return self.screenshot(self._path(f"{self._current}-{name}"))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.number += 1
        self._current = name
        start = time.monotonic()
        try:
            yield
        except pytest.skip.Exception as skip:  # this step only: the test goes on
            self.skipped.append(f"{self.number:02d} {name}: {skip.msg}")
            self.notes.append(f"{self.number:02d} {name}: skipped ({skip.msg})")
            return
        except BaseException as err:
            path = self.screenshot(self._path(name, "-FAILED"))
            where = f"screenshot {path.relative_to(ROOT)}" if path else "no screenshot"
            err.add_note(f"e2e step {self.number:02d} '{name}' failed ({where})")
            self.notes.append(
                f"{self.number:02d} {name}: FAILED after {time.monotonic() - start:.1f} s ({where})"
            )
            raise
        finally:
            self._current = None
        self.screenshot(self._path(name))
        self.notes.append(f"{self.number:02d} {name}: ok in {time.monotonic() - start:.1f} s")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def write_summary(self) -> Path:
        path = self.directory / "summary.txt"
        path.write_text("\n".join(self.notes) + "\n", encoding="utf-8")
        return path

    def last(self) -> Path:
        return self.saved[-1]


def publish(screenshot: Path, docs_name: str) -> None:
    """Copy a step's screenshot into docs/screenshots/ when RAYZIG_UPDATE_SCREENSHOTS=1."""
    if os.environ.get(UPDATE_SCREENSHOTS_ENV) != "1":
        return
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, DOCS_SCREENSHOTS / docs_name)


def click_until(
    button: Locator, done: Locator, *, attempts: int = 6, wait_ms: int = 10_000
) -> None:
    """Click ``button`` until ``done`` is visible (onboarding buttons ignore early clicks)."""
    for _ in range(attempts):
        if done.is_visible():
            return
        if button.is_visible():
            with contextlib.suppress(Exception):
                button.click(timeout=5_000)
        with contextlib.suppress(Exception):
            done.wait_for(state="visible", timeout=wait_ms)
            return
    done.wait_for(state="visible", timeout=1_000)
