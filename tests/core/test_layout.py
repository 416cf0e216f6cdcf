"""The house reads in one sitting: rooms of a bounded size, each named on the architecture map."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = (ROOT / "docs" / "dev" / "ARCHITECTURE.md").read_text(encoding="utf-8")
LIMITS = {"rayzig_core": 600, "custom_components/rayzig": 400}


def _modules(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("folder", sorted(LIMITS))
def test_no_file_is_larger_than_its_layer_allows(folder: str) -> None:
    limit = LIMITS[folder]
    too_large = {
        str(path.relative_to(ROOT)): lines
        for path in _modules(folder)
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > limit
    }
    assert not too_large, f"split these (limit {limit} lines): {too_large}"


@pytest.mark.parametrize("folder", sorted(LIMITS))
def test_the_architecture_map_names_every_module(folder: str) -> None:
    """docs/dev/ARCHITECTURE.md says where each concept lives; a new module must appear there."""
    base = ROOT / folder
    missing = []
    for path in _modules(folder):
        if path.name in {"__init__.py", "__main__.py"}:
            continue
        parts = path.relative_to(base).parts
        name = "/".join(parts[-2:])  # "site/rings.py", or "client.py" at the top of the package
        if f"`{name}`" not in ARCHITECTURE and f" {name}" not in ARCHITECTURE:
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"add these to docs/dev/ARCHITECTURE.md: {missing}"
