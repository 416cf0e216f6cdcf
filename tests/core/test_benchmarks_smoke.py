"""The benchmarks still run (with minimal iterations) and produce numbers; nothing here is timed.

The benchmarks (``benchmarks/``, docs/PERFORMANCE.md) are not tests: their figures depend on the
machine. This only keeps them from rotting: each one runs end to end on a tiny workload and must
report finite figures and a results table. No assertion looks at a duration or a ratio's value.
The Home Assistant-level benchmarks need Home Assistant: their smoke run is
tests/ha/test_benchmarks_smoke.py.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from benchmarks import (
    attack_flood,
    command_roundtrip,
    eventlog_read,
    handshake,
    idle_sockets,
    incremental_sync,
    run_all,
    soak,
)
from benchmarks.common import BenchResult, exchange_bus_time, machine_info
from rayzig_core.testing.fake_i2c import fake_open_descriptors


def check(result: BenchResult, name: str) -> None:
    assert result.name == name
    assert math.isfinite(result.ratio)
    assert result.ratio > 0
    assert result.rows
    assert all(row.metric and row.value for row in result.rows)
    assert result.details
    assert not [t.name for t in threading.enumerate() if t.name.startswith("rayzig-")]
    assert fake_open_descriptors() == 0


def test_command_roundtrip_runs() -> None:
    result = command_roundtrip.run(iterations=3, warmup=1, mesh_samples=1, compare_iterations=2)
    check(result, command_roundtrip.NAME)


def test_eventlog_read_runs() -> None:
    result = eventlog_read.run(events=300, repeats=1, other_clocks=(1_000_000,))
    check(result, eventlog_read.NAME)
    assert any("300 records" in line for line in result.details)


def test_handshake_runs() -> None:
    result = handshake.run(iterations=3, warmup=1)
    check(result, handshake.NAME)
    assert {row.metric.split()[0] for row in result.rows} == {"IK", "XX"}


def test_incremental_sync_runs() -> None:
    result = incremental_sync.run(modules=6, news=(0, 4))
    check(result, incremental_sync.NAME)


def test_soak_runs_and_every_command_acts_once() -> None:
    result = soak.run(commands=40)
    check(result, soak.NAME)
    assert result.ratio == 1.0  # not a timing: 40 commands, each applied exactly once
    assert all(row.met is not False for row in result.rows), result.rows


def test_idle_sockets_runs() -> None:
    result = idle_sockets.run(sockets=12)
    check(result, idle_sockets.NAME)


def test_attack_flood_runs() -> None:
    result = attack_flood.run(
        flooders=2, idle=2, duration=1.0, baseline=0.3, guess_window=1.0, scrypt_n=2**10
    )
    check(result, attack_flood.NAME)
    assert any("checked" in line for line in result.details)


def test_busiest_window_counts_the_most_in_any_minute() -> None:
    assert attack_flood.busiest_window([]) == 0
    assert attack_flood.busiest_window([0, 10, 59.9, 60, 61, 200]) == 4  # 10 .. 61


def test_exchange_bus_time_counts_transactions() -> None:
    seconds, transactions = exchange_bus_time([(True, b"\x10" * 300), (False, b"\x10" * 20)])
    # HELLO; two PUTs (248 + 52 bytes); a STATUS that finds the answer and one GET.
    assert transactions == 5
    assert seconds > 0


def test_run_all_rewrites_only_the_results_section(tmp_path: Path) -> None:
    document = tmp_path / "PERFORMANCE.md"
    document.write_text(f"# Head\n\n{run_all.BEGIN}\nold\n{run_all.END}\n\n## Tail\n")
    results = [handshake.run(iterations=2, warmup=0)]
    info = machine_info()
    run_all.rewrite(document, run_all.render(results, info, info))
    text = document.read_text()
    assert text.startswith("# Head\n")
    assert text.endswith("\n## Tail\n")
    assert "old" not in text
    assert "| Benchmark | Metric | Value | Target | Verdict |" in text
    assert info["cpu"] in text


def test_run_all_refuses_a_document_without_markers(tmp_path: Path) -> None:
    document = tmp_path / "PERFORMANCE.md"
    document.write_text("# nothing to replace\n")
    with pytest.raises(SystemExit):
        run_all.rewrite(document, "x")


def test_run_all_rewrites_each_group_in_its_own_section(tmp_path: Path) -> None:
    document = tmp_path / "PERFORMANCE.md"
    document.write_text(
        f"# Head\n\n{run_all.BEGIN}\nold bus\n{run_all.END}\n\n## Home Assistant\n\n"
        f"{run_all.HA_BEGIN}\nold ha\n{run_all.HA_END}\n\n## Tail\n"
    )
    results = [handshake.run(iterations=2, warmup=0)]
    info = machine_info()
    group = run_all.GROUPS["ha"]
    section = run_all.render(results, info, info, begin=group.begin, end=group.end)
    run_all.rewrite(document, section, begin=group.begin, end=group.end)
    text = document.read_text()
    assert "old bus" in text
    assert "old ha" not in text
    assert text.index(run_all.HA_BEGIN) > text.index("## Home Assistant")
    assert text.endswith(f"{run_all.HA_END}\n\n## Tail\n")
    assert set(run_all.GROUPS) == {"bus", "ha"}
    assert set(run_all.GROUPS["bus"].names) == set(run_all.BENCHMARKS)
