"""scripts/check_versions.py: the version lives in pyproject.toml and everything agrees with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_versions.py"

PYPROJECT = '[project]\nname = "rayzig-core"\nversion = "{version}"\n'
CHANGELOG = (
    "# Changelog\n\n## [Unreleased]\n\n### Added\n\n- Something new.\n\n"
    "## [{version}] - 2026-11-25\n\n### Added\n\n- First release.\n\n"
    "## [0.0.9] - 2026-01-01\n"
)


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def make_tree(
    root: Path,
    *,
    version: str = "1.2.3",
    manifest: dict[str, object] | None = None,
    changelog_version: str | None = None,
) -> Path:
    (root / "pyproject.toml").write_text(PYPROJECT.format(version=version), encoding="utf-8")
    (root / "CHANGELOG.md").write_text(
        CHANGELOG.format(version=changelog_version or version), encoding="utf-8"
    )
    if manifest is not None:
        path = root / "custom_components" / "rayzig" / "manifest.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(manifest), encoding="utf-8")
    return root


def good_manifest(version: str = "1.2.3") -> dict[str, object]:
    return {
        "domain": "rayzig",
        "name": "Rayzig",
        "requirements": [f"rayzig-core=={version}"],
        "version": version,
    }


def test_repository_versions_agree() -> None:
    """The real repository: pyproject, manifest (if present) and CHANGELOG agree."""
    result = run(REPO)
    assert result.returncode == 0, result.stderr
    assert "OK, version" in result.stdout


def test_consistent_tree_passes(tmp_path: Path) -> None:
    result = run(make_tree(tmp_path, manifest=good_manifest()))
    assert result.returncode == 0, result.stderr
    assert "OK, version 1.2.3 everywhere" in result.stdout
    assert "skipped" not in result.stdout


def test_missing_manifest_is_skipped_with_a_note(tmp_path: Path) -> None:
    result = run(make_tree(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "manifest.json does not exist yet: manifest checks skipped" in result.stdout


def test_manifest_version_mismatch_fails(tmp_path: Path) -> None:
    manifest = good_manifest()
    manifest["version"] = "1.2.4"
    result = run(make_tree(tmp_path, manifest=manifest))
    assert result.returncode == 1
    assert "manifest.json: version is '1.2.4', but pyproject.toml says '1.2.3'" in result.stderr


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        (["rayzig-core==1.2.2"], "requirement is 'rayzig-core==1.2.2', expected exactly"),
        (["rayzig-core>=1.2.3"], "expected exactly 'rayzig-core==1.2.3'"),
        (["cbor2==5.6.0"], "requirements do not pin 'rayzig-core==1.2.3'"),
        ([], "requirements do not pin 'rayzig-core==1.2.3'"),
        (["rayzig-core==1.2.3", "rayzig_core==1.2.3"], "requirements name rayzig-core 2 times"),
    ],
)
def test_manifest_requirement_must_pin_the_version(
    tmp_path: Path, requirements: list[str], message: str
) -> None:
    manifest = good_manifest()
    manifest["requirements"] = requirements
    result = run(make_tree(tmp_path, manifest=manifest))
    assert result.returncode == 1
    assert message in result.stderr


def test_manifest_without_requirements_fails(tmp_path: Path) -> None:
    manifest = good_manifest()
    del manifest["requirements"]
    result = run(make_tree(tmp_path, manifest=manifest))
    assert result.returncode == 1
    assert "requirements must be a list" in result.stderr


def test_invalid_manifest_json_fails(tmp_path: Path) -> None:
    make_tree(tmp_path, manifest=good_manifest())
    (tmp_path / "custom_components" / "rayzig" / "manifest.json").write_text("{", encoding="utf-8")
    result = run(tmp_path)
    assert result.returncode == 1
    assert "manifest.json: not valid JSON" in result.stderr


def test_changelog_top_release_mismatch_fails(tmp_path: Path) -> None:
    result = run(make_tree(tmp_path, manifest=good_manifest(), changelog_version="1.2.2"))
    assert result.returncode == 1
    assert "CHANGELOG.md: top release is '1.2.2', but pyproject.toml says '1.2.3'" in result.stderr


def test_changelog_release_needs_a_date(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "CHANGELOG.md").write_text(
        "# Changelog\n\n## [Unreleased]\n\n## [1.2.3]\n", encoding="utf-8"
    )
    result = run(tmp_path)
    assert result.returncode == 1
    assert "must read '## [1.2.3] - YYYY-MM-DD'" in result.stderr


def test_changelog_without_release_fails(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n\n## [Unreleased]\n", encoding="utf-8")
    result = run(tmp_path)
    assert result.returncode == 1
    assert "no release heading" in result.stderr


def test_hard_coded_second_version_fails(tmp_path: Path) -> None:
    make_tree(tmp_path, manifest=good_manifest())
    package = tmp_path / "rayzig_core"
    package.mkdir()
    (package / "__init__.py").write_text('__version__ = "1.2.3"\n', encoding="utf-8")
    result = run(tmp_path)
    assert result.returncode == 1
    assert "rayzig_core/__init__.py: hard-codes __version__" in result.stderr


def test_version_read_from_metadata_is_allowed(tmp_path: Path) -> None:
    make_tree(tmp_path, manifest=good_manifest())
    package = tmp_path / "rayzig_core"
    package.mkdir()
    (package / "__init__.py").write_text(
        'from importlib.metadata import version\n\n__version__ = version("rayzig-core")\n',
        encoding="utf-8",
    )
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr


def test_bad_version_format_fails(tmp_path: Path) -> None:
    result = run(make_tree(tmp_path, version="one", manifest=good_manifest("one")))
    assert result.returncode == 1
    assert "version 'one' is not of the form X.Y.Z" in result.stderr


@pytest.mark.parametrize("missing", ["pyproject.toml", "CHANGELOG.md"])
def test_missing_required_file_exits_2(tmp_path: Path, missing: str) -> None:
    make_tree(tmp_path)
    (tmp_path / missing).unlink()
    result = run(tmp_path)
    assert result.returncode == 2
    assert f"{missing} not found" in result.stderr


def test_dynamic_version_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "rayzig-core"\ndynamic = ["version"]\n', encoding="utf-8"
    )
    result = run(tmp_path)
    assert result.returncode == 2
    assert "dynamic" in result.stderr
