"""Run every benchmark and rewrite the results section of docs/PERFORMANCE.md.

``.venv/bin/python benchmarks/run_all.py`` (or ``-m benchmarks.run_all``) runs them in turn, prints
each one's figures and RATIO, then replaces what lies between the results markers of
docs/PERFORMANCE.md with a table of this run and the machine it ran on. ``--no-write`` leaves the
document alone; ``--only NAME`` runs some of them (the document is then not rewritten);
``--soak-commands N`` runs the soak with N commands per leg instead of its full 10,000 (about a
minute on the development machine).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    attack_flood,
    command_roundtrip,
    eventlog_read,
    handshake,
    idle_sockets,
    incremental_sync,
    soak,
)
from benchmarks.common import BenchResult, machine_info

BEGIN = "<!-- results:begin (written by benchmarks/run_all.py) -->"
END = "<!-- results:end -->"
DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"

BENCHMARKS: dict[str, Callable[[], BenchResult]] = {
    command_roundtrip.NAME: command_roundtrip.run,
    eventlog_read.NAME: eventlog_read.run,
    handshake.NAME: handshake.run,
    incremental_sync.NAME: incremental_sync.run,
    soak.NAME: soak.run,
    idle_sockets.NAME: idle_sockets.run,
    attack_flood.NAME: attack_flood.run,
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(results: list[BenchResult], before: dict[str, str], after: dict[str, str]) -> str:
    """The Markdown that goes between the markers."""
    total = sum(result.seconds for result in results)
    lines = [
        BEGIN,
        "",
        f"Run of {before['date']} on **{before['cpu']}**, {before['cores']} cores, "
        f"{before['python']}, {before['os']}; load average (1, 5, 15 min) "
        f"{before['load']} before, {after['load']} after; {total:.0f} s in all.",
        "",
        "| Benchmark | Metric | Value | Target | Verdict |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {_cell(result.title)} | **RATIO** | **{result.ratio:.3f}** | "
            f"{_cell(result.ratio_text)} | |"
        )
        lines.extend(
            f"| | {_cell(row.metric)} | {_cell(row.value)} | {_cell(row.target)} | {row.verdict} |"
            for row in result.rows
        )
    lines += ["", "Details of this run (as printed by the benchmarks):", ""]
    for result in results:
        lines += ["```text", f"== {result.title} ({result.name}) =="]
        lines += [f"  {line}" for line in result.details]
        lines += ["```", ""]
    lines.append(END)
    return "\n".join(lines)


def rewrite(document: Path, section: str) -> None:
    """Replace the text between the markers of ``document`` with ``section``."""
    text = document.read_text(encoding="utf-8")
    start = text.find(BEGIN)
    stop = text.find(END)
    if start < 0 or stop < start:
        raise SystemExit(f"{document}: results markers not found")
    document.write_text(text[:start] + section + text[stop + len(END) :], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; rewrite docs/PERFORMANCE.md unless told not to."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--no-write", action="store_true", help="do not rewrite the document")
    parser.add_argument("--document", type=Path, default=DOCUMENT)
    parser.add_argument(
        "--soak-commands",
        type=int,
        default=soak.FULL_COMMANDS,
        metavar="N",
        help=f"commands per leg of the soak (default the full {soak.FULL_COMMANDS})",
    )
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    before = machine_info()
    print(f"machine: {before}")
    started = time.perf_counter()
    results: list[BenchResult] = []
    for name in names:
        bench = BENCHMARKS[name]
        if name == soak.NAME:
            bench = functools.partial(soak.run, args.soak_commands)
        result = bench()
        result.print()
        results.append(result)
    after = machine_info()
    print(f"all benchmarks: {time.perf_counter() - started:.0f} s; load after: {after['load']}")
    if args.only or args.no_write:
        return 0
    rewrite(args.document, render(results, before, after))
    print(f"results written to {args.document}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
