"""The Home Assistant benchmarks still run on a tiny workload and report figures; nothing is timed.

They start a Home Assistant of their own (real bootstrap, no test patches) and the virtual gateway
in child processes, so they run in a subprocess here, outside this test's Home Assistant and its
socket guard. As in tests/core/test_benchmarks_smoke.py, no assertion looks at a duration or a
ratio's value: only that every benchmark ran end to end and reported finite figures, and that the
instruments count what they must (Home Assistant's own entities write one state per command).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

NAMES = ("ha_setup", "ha_command", "ha_import", "ha_recovery", "ha_statistics")
REPOSITORY = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path) -> dict[str, dict[str, Any]]:
    out = tmp_path / "results.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPOSITORY), env.get("PYTHONPATH", "")) if part
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.ha.cli",
            *("--workload", "smoke", "--json", str(out)),
            *NAMES,
        ],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("RATIO") == len(NAMES)
    return {result["name"]: result for result in json.loads(out.read_text())}


def test_home_assistant_benchmarks_run(tmp_path: Path) -> None:
    results = _run(tmp_path)
    assert set(results) == set(NAMES)
    for result in results.values():
        assert math.isfinite(result["ratio"])
        assert result["ratio"] > 0
        assert result["rows"]
        assert all(row["metric"] and row["value"] for row in result["rows"])
        assert result["details"]
        assert "nan" not in json.dumps(result["rows"])
    command = "\n".join(results["ha_command"]["details"])
    # The demo switch and the input_boolean write exactly one state per command, and it changes.
    assert command.count("per command: 1.0 state writes by 1.0 entities, 1.0 changed") == 4
    imported = {row["metric"].split(": ", 1)[1] for row in results["ha_import"]["rows"]}
    assert {
        "onto the bus, paced to the recorder",
        "bus-side cost, unpaced (loop time firing)",
        "loop-blocking spans during the import",
        "missing from the database",
        "repeated (bus, database)",
    } <= imported
    # Our side of a command is reported apart from the round trip to the gateway process.
    assert "client only" in command
    assert any(
        "Home Assistant side of a Rayzig command" in row["metric"]
        for row in results["ha_command"]["rows"]
    )
    recovery = results["ha_recovery"]["rows"]
    assert [row["metric"].rsplit(": ", 1)[0].split(": ", 1)[1] for row in recovery] == [
        "outage of 0 s",
        "outage of 0.5 s",
    ]
