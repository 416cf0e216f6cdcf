"""Fail unless the config flow is fully covered and every other integration module exceeds 95 %.

The config flow is config_flow.py and the config_flow_*.py modules it is built from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CONFIG_FLOW = 100.0
DEFAULT = 95.0


def threshold(name: str) -> float | None:
    """The coverage a module of this name must reach, or None for "more than DEFAULT"."""
    return CONFIG_FLOW if name == "config_flow.py" or name.startswith("config_flow_") else None


def main(report: str) -> int:
    """Check the coverage JSON report and print one line per module."""
    files = json.loads(Path(report).read_text(encoding="utf-8"))["files"]
    failed = False
    for path, data in sorted(files.items()):
        if "custom_components/rayzig/" not in path:
            continue
        name = Path(path).name
        percent = float(data["summary"]["percent_covered"])
        exact = threshold(name)
        need = DEFAULT if exact is None else exact
        ok = percent > need if exact is None else percent >= need
        failed |= not ok
        rule = f"> {need:g} %" if exact is None else f"{need:g} %"
        print(f"{'ok ' if ok else 'LOW'} {percent:6.2f} % {path} (needs {rule})")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
