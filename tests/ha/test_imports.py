"""The integration's imports: only rayzig_core's public API, and no circle among its own modules."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import rayzig_core

COMPONENT = Path(__file__).resolve().parents[2] / "custom_components" / "rayzig"
MAX_LINES = 400


def modules() -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(COMPONENT.glob("*.py"))
    }


def imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, also those under ``if TYPE_CHECKING:`` and inside functions."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def test_only_the_top_level_package_of_rayzig_core() -> None:
    used: set[str] = set()
    for name, tree in modules().items():
        for node in imports(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
                assert not [n for n in names if n.startswith("rayzig_core.")], name
            elif node.level == 0 and (node.module or "").startswith("rayzig_core"):
                assert node.module == "rayzig_core", f"{name} imports {node.module}"
                used.update(alias.name for alias in node.names)
    assert used
    assert used <= set(rayzig_core.__all__)


def test_no_import_circle_even_for_type_checking() -> None:
    graph: dict[str, set[str]] = {}
    for name, tree in modules().items():
        graph[name] = set()
        for node in imports(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [a.name for a in node.names]
                graph[name].update(target for target in targets if target is not None)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import circle: {err.args[1]}") from None
    assert order.index("data") > max(order.index(m) for m in ("coordinator", "events", "firmware"))


def test_every_module_fits_in_400_lines() -> None:
    for path in COMPONENT.glob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{path.name} has {lines} lines"
