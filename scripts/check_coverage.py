"""Fail unless config_flow.py is fully covered and every other integration module exceeds 95 %."""

from __future__ import annotations

import json
import sys
from pathlib import Path

THRESHOLDS = {"config_flow.py": 100.0}
DEFAULT = 95.0


def main(report: str) -> int:
    """Check the coverage JSON report and print one line per module."""
    files = json.loads(Path(report).read_text(encoding="utf-8"))["files"]
    failed = False
    for path, data in sorted(files.items()):
        if "custom_components/rayzig/" not in path:
            continue
        name = Path(path).name
        percent = float(data["summary"]["percent_covered"])
        need = THRESHOLDS.get(name, DEFAULT)
        ok = percent >= need if name in THRESHOLDS else percent > need
        failed |= not ok
        rule = f"{need:g} %" if name in THRESHOLDS else f"> {need:g} %"
        print(f"{'ok ' if ok else 'LOW'} {percent:6.2f} % {path} (needs {rule})")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
