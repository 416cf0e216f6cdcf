"""Security advisories on the command line: ``advisory-publish``, ``advisory-withdraw`` and what
``firmware check`` shows, against a real update server (subprocess) and the virtual gateway."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from rayzig_core import cli
from rayzig_core.firmware import CHUNK_SIZE
from rayzig_core.testing.gateway import GatewayThread
from tests.core.conftest import OWNER_PASSWORD
from tests.core.test_cli import (
    _clean_environment,  # noqa: F401 - autouse fixture: no inherited secrets, no terminal
    _read_until,
    _stop,
    fingerprint,
    firmware_gateway,  # noqa: F401 - fixture: a gateway trusting the test signing key
    run,
    run_json,
    signing_key,  # noqa: F401 - fixture: a signing key file made by `rayzig keygen`
    spawn,  # noqa: F401 - fixture: CLI subprocesses, killed afterwards
    target,
)

ADVISORY = [
    "--id", "RZSA-2026-0001", "--part", "rayzig", "--affected", "..2.4.1", "--fixed-in", "2.5.0",
    "--severity", "high", "--summary", "A forged mesh beacon can make the radio join a rogue mesh.",
    "--url", "https://rayzig.dev/security/RZSA-2026-0001",
]  # fmt: skip


def publish_advisory(
    capsys: pytest.CaptureFixture[str], catalogue: Path, key: Path, *options: str
) -> tuple[int, str, str]:
    return run(capsys, "advisory-publish", str(catalogue), "--signing-key-file", str(key), *options)


def by_part(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["part"]: row for row in rows}


def test_advisory_publish_check_install_withdraw(
    *,
    tmp_path: Path,
    signing_key: tuple[Path, str],  # noqa: F811 - the fixture imported above
    firmware_gateway: GatewayThread,  # noqa: F811
    spawn: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`firmware check` names the advisory that affects Rayzig 2.4.1 until 2.5.0 is installed."""
    key_path, public = signing_key
    catalogue = tmp_path / "catalogue"
    code, out, err = publish_advisory(capsys, catalogue, key_path, *ADVISORY, "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "id": "RZSA-2026-0001",
        "part": "rayzig",
        "affected": ["..2.4.1"],
        "fixed_in": "2.5.0",
        "severity": "high",
        "summary": "A forged mesh beacon can make the radio join a rogue mesh.",
        "url": "https://rayzig.dev/security/RZSA-2026-0001",
        "hardware": "RZ-GW1",
        "directory": str(catalogue),
    }
    code, out, err = publish_advisory(
        capsys, catalogue, key_path, "--id", "RZSA-2026-0002", "--part", "tft",
        "--affected", "1.0.0..1.0.6", "--affected", "0.9", "--fixed-in", "1.0.7",
        "--severity", "low", "--summary", "Old display firmware.", "--url", "https://x.test/2",
    )  # fmt: skip
    assert code == 0, err
    assert "Published advisory RZSA-2026-0002 (low) for tft 1.0.0..1.0.6, 0.9" in out
    image = os.urandom(3 * CHUNK_SIZE + 7)
    (tmp_path / "rayzig.bin").write_bytes(image)
    run_json(
        capsys, "firmware-publish", str(catalogue), str(tmp_path / "rayzig.bin"),
        "--signing-key-file", str(key_path), "--part", "rayzig", "--version", "2.5.0",
        "--security-version", "4", "--security-fix",
    )  # fmt: skip
    assert len(json.loads((catalogue / "catalogue.json").read_text())["advisories"]) == 2

    server = spawn("update-server", str(catalogue), "--port", "0", "--json")
    url = json.loads(_read_until(server, '"listening"')[-1])["url"]
    key_file = tmp_path / "advisory-client.json"
    monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
    code, _, err = run(
        capsys, "pair", *target(firmware_gateway, key_file),
        "--yes-fingerprint", fingerprint(firmware_gateway),
    )  # fmt: skip
    assert code == 0, err
    check = ["firmware", "check", "--server", url, "--signing-key", public, "--key-file"]
    check.append(str(key_file))

    rows = by_part(run_json(capsys, *check))
    assert [a["id"] for a in rows["rayzig"]["advisories"]] == ["RZSA-2026-0001"]
    assert rows["rayzig"]["advisories"][0]["severity"] == "high"
    assert rows["tft"]["advisories"] == []  # 1.0.7 installed: the fixed version
    code, out, _ = run(capsys, *check)
    assert code == 0  # a successful check, with a clear marker
    assert "KNOWN VULNERABILITIES: 1 security advisory affects the installed firmware." in out
    assert "RZSA-2026-0001 (high): rayzig 2.4.1 is affected; fixed in 2.5.0" in out
    assert "https://rayzig.dev/security/RZSA-2026-0001" in out
    header, rayzig_row = out.splitlines()[:2]
    assert header.split() == ["PART", "INSTALLED", "AVAILABLE", "STATUS", "ADVISORIES"]
    assert rayzig_row.endswith("RZSA-2026-0001")

    install = ["firmware", "install", "rayzig", "--server", url, "--signing-key", public]
    assert run_json(capsys, *install, "--key-file", str(key_file))["version"] == "2.5.0"
    rows = by_part(run_json(capsys, *check))
    assert rows["rayzig"]["advisories"] == []
    code, out, _ = run(capsys, *check)
    assert "No published security advisory affects the installed firmware." in out

    # A tampered advisory refuses the catalogue, naming it; nothing is listed from it.
    document = json.loads((catalogue / "catalogue.json").read_text())
    signed = bytearray(base64.b64decode(document["advisories"][1]["advisory"]))
    signed[-3] ^= 0x20
    document["advisories"][1]["advisory"] = base64.b64encode(bytes(signed)).decode()
    (catalogue / "catalogue.json").write_text(json.dumps(document))
    code, out, err = run(capsys, *check)
    assert code == cli.EXIT_REFUSED
    assert out == ""
    assert "advisory 1 (RZSA-2026-0002): signature does not verify" in err

    code, out, err = run(capsys, "advisory-withdraw", str(catalogue), "RZSA-2026-0002")
    assert code == 0, err
    assert "Withdrew advisory RZSA-2026-0002" in out
    assert by_part(run_json(capsys, *check))["tft"]["advisories"] == []
    code, _, err = run(capsys, "advisory-withdraw", str(catalogue), "RZSA-2026-0002")
    assert code == cli.EXIT_USAGE
    assert "has no advisory RZSA-2026-0002" in err
    code, _, err = _stop(server)
    assert code == 0, err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"--affected": "2.4.1..2.0"}, "lower version first"),
        ({"--affected": "2.0 beta"}, "is not a version"),
        ({"--fixed-in": "2.4.0"}, "fixed-in version 2.4.0 is among the affected versions"),
        ({"--url": "ftp://rayzig.dev/x"}, "link must be an http(s) address"),
        ({"--id": "advisory one"}, "identifier must look like RZSA-2026-0001"),
        ({"--severity": "severe"}, "invalid choice"),
    ],
)
def test_advisory_publish_refuses_bad_input(
    tmp_path: Path,
    signing_key: tuple[Path, str],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, str],
    message: str,
) -> None:
    options = list(ADVISORY)
    for option, value in changes.items():
        options[options.index(option) + 1] = value
    code, _, err = publish_advisory(capsys, tmp_path / "catalogue", signing_key[0], *options)
    assert code == cli.EXIT_USAGE
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "catalogue" / "catalogue.json").exists()


def test_advisory_publish_needs_the_key_and_one_hardware(
    tmp_path: Path,
    signing_key: tuple[Path, str],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    catalogue = tmp_path / "catalogue"
    code, _, err = publish_advisory(capsys, catalogue, tmp_path / "missing.json", *ADVISORY)
    assert code == cli.EXIT_USAGE
    assert "rayzig keygen" in err
    assert publish_advisory(capsys, catalogue, signing_key[0], *ADVISORY)[0] == 0
    code, _, err = publish_advisory(
        capsys, catalogue, signing_key[0], *ADVISORY, "--hardware", "RZ-GW2"
    )
    assert code == cli.EXIT_USAGE
    assert "for hardware 'RZ-GW1', not 'RZ-GW2'" in err
    code, _, err = run(capsys, "advisory-withdraw", str(tmp_path / "nowhere"), "RZSA-2026-0001")
    assert code == cli.EXIT_USAGE
    assert "has no advisory" in err
