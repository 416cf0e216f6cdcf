"""Code speaks of itself: it cites PROTOCOL.md sections, never the project's issue numbers."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ISSUE = re.compile(r"\bissues?\s+#?\d+|\btask\s+#?\d+", re.IGNORECASE)
SOURCES = ("rayzig_core", "custom_components", "benchmarks", "scripts", "tests", "contrib")


def test_no_source_file_cites_an_issue_number() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in SOURCES
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file()
        and path.suffix in {".py", ".yaml", ".json", ""}
        and "__pycache__" not in path.parts
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        )
        if ISSUE.search(line)
    ]
    assert not offenders, "cite PROTOCOL.md sections instead:\n" + "\n".join(offenders)
