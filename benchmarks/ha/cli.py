"""The command line of the Home Assistant benchmarks: a workload by name, results as JSON.

``python -m benchmarks.ha_<name> [--workload full|quick|smoke] [--json FILE]`` runs one benchmark
(:func:`main`); ``python -m benchmarks.ha.cli [--workload ...] [--json FILE] NAME...`` runs
several in one process (the smoke test does this). Each prints its figures and RATIO; ``--json``
also writes the :class:`~benchmarks.common.BenchResult` (a list of them here) to ``FILE``.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from benchmarks.common import BenchResult

_W = TypeVar("_W")
WORKLOADS = ("full", "quick", "smoke")
"""Every Home Assistant benchmark module has these workloads, as upper-case module constants."""


def main(
    description: str,
    run: Callable[[_W], BenchResult],
    workloads: Mapping[str, _W],
    argv: list[str] | None = None,
) -> None:
    """Parse the command line of one benchmark, run it, print (and write) its result."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workload", choices=sorted(workloads), default="full")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    result = run(workloads[args.workload])
    result.print()
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")


def run_many(argv: list[str] | None = None) -> None:
    """Run several benchmarks by name on one workload; print them (and write them as JSON)."""
    parser = argparse.ArgumentParser(description="Run Home Assistant benchmarks by name.")
    parser.add_argument("--workload", choices=WORKLOADS, default="full")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("names", nargs="+", metavar="NAME", help="e.g. ha_command")
    args = parser.parse_args(argv)
    results: list[BenchResult] = []
    for name in args.names:
        module = importlib.import_module(f"benchmarks.{name}")
        result: BenchResult = module.run(getattr(module, args.workload.upper()))
        result.print()
        results.append(result)
    if args.json is not None:
        args.json.write_text(
            json.dumps([asdict(result) for result in results], indent=1), encoding="utf-8"
        )


if __name__ == "__main__":
    run_many()
