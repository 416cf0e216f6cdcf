"""Run the benchmarks of a group and rewrite its results section of docs/PERFORMANCE.md.

``.venv/bin/python benchmarks/run_all.py`` (or ``-m benchmarks.run_all``) runs them in turn, prints
each one's figures and RATIO, then replaces what lies between the group's results markers in
docs/PERFORMANCE.md with a table of this run and the machine it ran on. There are two groups: the
I2C bus benchmarks (``bus``, the default, about a minute) and the Home Assistant-level ones (``ha``,
which need Home Assistant installed and are imported only when they run; far longer). ``--group``
picks ``bus``, ``ha`` or ``all``; ``--quick`` runs the Home Assistant ones on smaller workloads;
``--no-write`` leaves the document alone; ``--only NAME`` runs some of them; ``--soak-commands N``
runs the soak with N commands per leg instead of its full 10,000 (about a minute on the development
machine). Quick runs and ``--only`` never rewrite it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
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
HA_BEGIN = "<!-- ha-results:begin (written by benchmarks/run_all.py) -->"
HA_END = "<!-- ha-results:end -->"
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
"""The I2C bus benchmarks (group ``bus``)."""
HA_BENCHMARKS = ("ha_setup", "ha_command", "ha_import", "ha_recovery", "ha_statistics")
"""The Home Assistant-level benchmarks (group ``ha``): modules ``benchmarks.<name>`` with
``run(workload)`` and the workloads ``FULL`` and ``QUICK``; imported when they run."""


@dataclass(frozen=True, slots=True)
class Group:
    """Benchmarks whose results share one section of the document."""

    names: tuple[str, ...]
    begin: str
    end: str


GROUPS = {
    "bus": Group(tuple(BENCHMARKS), BEGIN, END),
    "ha": Group(HA_BENCHMARKS, HA_BEGIN, HA_END),
}


def run_one(name: str, *, quick: bool = False, soak_commands: int | None = None) -> BenchResult:
    """Run one benchmark by name (a Home Assistant one on its quick workload if asked)."""
    if name == soak.NAME and soak_commands is not None:
        return soak.run(soak_commands)
    if name in BENCHMARKS:
        return BENCHMARKS[name]()
    module = importlib.import_module(f"benchmarks.{name}")
    result: BenchResult = module.run(module.QUICK if quick else module.FULL)
    return result


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(
    results: list[BenchResult],
    before: dict[str, str],
    after: dict[str, str],
    *,
    begin: str = BEGIN,
    end: str = END,
) -> str:
    """The Markdown that goes between the markers ``begin`` and ``end``."""
    total = sum(result.seconds for result in results)
    lines = [
        begin,
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
    lines.append(end)
    return "\n".join(lines)


def rewrite(document: Path, section: str, *, begin: str = BEGIN, end: str = END) -> None:
    """Replace the text from marker ``begin`` to marker ``end`` of ``document`` with ``section``."""
    text = document.read_text(encoding="utf-8")
    start = text.find(begin)
    stop = text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{document}: results markers not found")
    document.write_text(text[:start] + section + text[stop + len(end) :], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; rewrite docs/PERFORMANCE.md unless told not to."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=[*BENCHMARKS, *HA_BENCHMARKS])
    parser.add_argument(
        "--group", choices=[*GROUPS, "all"], default="bus", help="which benchmarks (bus)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller Home Assistant workloads (no rewrite)"
    )
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
    groups = list(GROUPS.values()) if args.group == "all" or args.only else [GROUPS[args.group]]
    names = args.only or [name for group in groups for name in group.names]
    started = time.perf_counter()
    written: list[tuple[Group, list[BenchResult], dict[str, str], dict[str, str]]] = []
    for group in groups:
        wanted = [name for name in group.names if name in names]
        if not wanted:
            continue
        before = machine_info()
        print(f"machine: {before}")
        results: list[BenchResult] = []
        for name in wanted:
            result = run_one(name, quick=args.quick, soak_commands=args.soak_commands)
            result.print()
            results.append(result)
        written.append((group, results, before, machine_info()))
    print(
        f"all benchmarks: {time.perf_counter() - started:.0f} s; load after: "
        f"{machine_info()['load']}"
    )
    if args.only or args.no_write or args.quick:
        return 0
    for group, results, before, after in written:
        section = render(results, before, after, begin=group.begin, end=group.end)
        rewrite(args.document, section, begin=group.begin, end=group.end)
    print(f"results written to {args.document}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
