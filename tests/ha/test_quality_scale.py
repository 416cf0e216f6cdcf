"""quality_scale.yaml names exactly the current quality-scale rules, each with a valid status.

``CURRENT_RULES`` is the rule set hassfest enforces, by tier. Sources, read 2026-12:

* home-assistant/core ``script/hassfest/quality_scale.py`` (``ALL_RULES``): core PR #174555
  (merged June 2026) added ``docs-triggers`` and ``docs-conditions`` back to the bronze tier
  (they had been dropped in December 2024), and core PR #175777 (July 2026) made every rule
  mandatory in the file, whatever the declared tier: 54 rules;
* home-assistant/developers.home-assistant ``docs/core/integration-quality-scale/_includes/
  tiers.json`` (commit 186ad06, 2026-08-19): the same 54 names in the same tiers.

When Home Assistant adds, renames or retires a rule, update ``CURRENT_RULES`` from those sources and
``quality_scale.yaml`` with an honest status: a name that is not current, or a missing one, fails.
The file is read with Home Assistant's own YAML loader, as hassfest reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from homeassistant.util.yaml import load_yaml_dict

QUALITY_SCALE = (
    Path(__file__).resolve().parents[2] / "custom_components" / "rayzig" / "quality_scale.yaml"
)

CURRENT_RULES: dict[str, tuple[str, ...]] = {
    "bronze": (
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ),
    "silver": (
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ),
    "gold": (
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ),
    "platinum": ("async-dependency", "inject-websession", "strict-typing"),
}
ALL_RULES = frozenset(rule for tier in CURRENT_RULES.values() for rule in tier)
STATUSES = frozenset({"done", "todo", "exempt"})


def _rules(path: Path = QUALITY_SCALE) -> dict[str, Any]:
    return dict(load_yaml_dict(str(path))["rules"])


def _unknown_and_missing(path: Path) -> tuple[list[str], list[str]]:
    names = set(_rules(path))
    return sorted(names - ALL_RULES), sorted(ALL_RULES - names)


def test_the_rule_list_is_the_current_one() -> None:
    """54 distinct names: 20 bronze, 10 silver, 21 gold, 3 platinum (the sources' counts)."""
    counts = {tier: len(rules) for tier, rules in CURRENT_RULES.items()}
    assert counts == {"bronze": 20, "silver": 10, "gold": 21, "platinum": 3}
    assert len(ALL_RULES) == 54


def test_quality_scale_names_exactly_the_current_rules() -> None:
    unknown, missing = _unknown_and_missing(QUALITY_SCALE)
    assert not unknown, f"not current quality-scale rules: {unknown}"
    assert not missing, f"rules missing from the file: {missing}"


@pytest.mark.parametrize("rule", sorted(ALL_RULES))
def test_each_rule_has_a_status_and_exempt_and_todo_say_why(rule: str) -> None:
    """hassfest's schema (a status, or status and comment; exempt needs a comment), and this
    project's rule that a todo says what is missing."""
    value = _rules()[rule]
    status = value["status"] if isinstance(value, dict) else value
    assert status in STATUSES, f"{rule}: status {status!r}"
    if status in {"exempt", "todo"}:
        assert isinstance(value, dict), f"{rule}: {status} without a comment"
        assert str(value.get("comment", "")).strip(), f"{rule}: {status} without a comment"
    if isinstance(value, dict):
        assert set(value) <= {"status", "comment"}, f"{rule}: unknown keys {sorted(value)}"


def test_a_retired_or_misspelt_name_fails(tmp_path: Path) -> None:
    """The check itself catches a name that is not a current rule."""
    text = QUALITY_SCALE.read_text(encoding="utf-8").replace(
        "  docs-triggers:", "  docs-device-triggers:"
    )
    changed = tmp_path / "quality_scale.yaml"
    changed.write_text(text, encoding="utf-8")
    assert _unknown_and_missing(changed) == (["docs-device-triggers"], ["docs-triggers"])
