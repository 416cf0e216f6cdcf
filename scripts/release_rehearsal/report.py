"""The rehearsal's account of itself: each step's outcome and time.

On the console and in ``artifacts/release-rehearsal/summary.txt``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def say(text: str) -> None:
    """One line on the console, at once (CI logs interleave with child output)."""
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} {text}\n")
    sys.stdout.flush()


class Report:
    """Steps with their outcome and duration, and the facts each proved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.started = time.monotonic()
        self._facts: list[str] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step; a step that raises is recorded as FAILED before the error goes on."""
        say(f"release-rehearsal: {name} ...")
        start = time.monotonic()
        self._facts = []
        try:
            yield
        except BaseException:
            self._record(f"FAILED  {name} ({time.monotonic() - start:.1f} s)")
            raise
        else:
            self._record(f"ok      {name} ({time.monotonic() - start:.1f} s)")
        finally:
            for fact in self._facts:
                self._record(f"        - {fact}")
            self._facts = []

    def fact(self, text: str) -> None:
        """Something the current step proved, listed under it in the summary."""
        self._facts.append(text)

    def problem(self, text: str) -> None:
        """Something that went wrong outside a step (while stopping the servers)."""
        self._record(f"FAILED  {text}")

    def _record(self, line: str) -> None:
        self.lines.append(line)
        say(f"release-rehearsal: {line.strip()}")

    def write(self, outcome: str) -> float:
        """Write the summary with the total time; return that time in seconds."""
        total = time.monotonic() - self.started
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            "\n".join([*self.lines, "", f"{outcome} in {total:.0f} s", ""]), encoding="utf-8"
        )
        return total
