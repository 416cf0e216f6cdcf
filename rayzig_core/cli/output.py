"""Where a command's results go: text or JSON on stdout; notes, prompts and progress on stderr."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TextIO

from rayzig_core.cli.errors import StdoutClosedError
from rayzig_core.models import UserLevel


def jsonable(value: Any) -> Any:
    """Convert dataclasses, enums (lower-case names), bytes (hex) and tuples to JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return str(value.name).lower()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class Out:
    """Where a command's results go: text or JSON on stdout, notes on stderr."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode

    def result(self, data: Any, text: str) -> None:
        """Print a command's result: ``data`` as one JSON document, or ``text``.

        StdoutClosedError if nobody reads stdout any more (the end of ``| head``).
        """
        line = json.dumps(jsonable(data), ensure_ascii=False) if self.json else text
        try:
            print(line, flush=True)
        except BrokenPipeError:
            raise StdoutClosedError from None

    def record(self, data: Any, text: str) -> None:
        """Print one record of a stream (JSON Lines in JSON mode)."""
        self.result(data, text)

    @staticmethod
    def note(text: str) -> None:
        """Tell the person at the terminal something (stderr, also in JSON mode)."""
        print(text, file=sys.stderr, flush=True)


class Progress:
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


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, without trailing spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return "\n".join(lines)


def level_name(level: UserLevel) -> str:
    """A user level as people read it (``System``)."""
    return level.name.title()


def iso_time(timestamp: float) -> str:
    """A POSIX timestamp as ISO 8601 UTC to the second (``2026-11-25T19:28:35Z``)."""
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )
