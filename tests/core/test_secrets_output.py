"""A new gateway's one-time secrets go to stdout (or --json) once, never to stderr or a log.

Every server command that can make a factory-new gateway is run in-process with stderr and every
log record captured: ``virtual-gateway``, ``bridge --fake-i2c`` and ``--fake-i2c`` under a client
command, in text and JSON mode. Under systemd stderr is the journal, readable by more people than
the installer who should see the label's secrets once.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from rayzig_core.cli import main

SECRETS_TEXT = {
    "default_password": re.compile(r"[Dd]efault password:?\s+(\S+)"),
    "recovery_secret": re.compile(r"Recovery secret:?\s+(\S+)"),
}


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> tuple[str, str]:
    """Run ``rayzig argv`` in-process; (stdout, stderr + every log record at DEBUG)."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err + "\n" + caplog.text


def secrets_in(out: str, *, json_mode: bool) -> list[str]:
    """The default password and recovery secret printed on ``out`` (exactly one of each)."""
    if json_mode:
        records = [json.loads(line) for line in out.splitlines() if line.strip()]
        found = [r for r in records if "default_password" in r]
        assert len(found) == 1, records
        return [found[0]["default_password"], found[0]["recovery_secret"]]
    values = []
    for pattern in SECRETS_TEXT.values():
        matches = pattern.findall(out)
        assert len(matches) == 1, out
        values.append(matches[0])
    return values


def assert_shown_once_and_never_logged(out: str, logged: str, *, json_mode: bool) -> None:
    secrets = secrets_in(out, json_mode=json_mode)
    for secret in secrets:
        assert len(secret) >= 16
        assert out.count(secret) == 1, "shown once"
        assert secret not in logged, "a secret reached stderr or a log record"


@pytest.mark.parametrize("json_mode", [False, True])
def test_virtual_gateway_shows_its_secrets_on_stdout_only(
    tmp_path: Path,
    json_mode: bool,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    argv = ["virtual-gateway", "--port", "0", "--state", str(tmp_path / "gw.json"), "-v"]
    argv += ["--modules", "2", "--run-for", "0.01", *(["--json"] if json_mode else [])]
    out, logged = run(argv, capsys, caplog)
    assert_shown_once_and_never_logged(out, logged, json_mode=json_mode)
    # The second start has no secrets to show.
    out, _ = run(argv, capsys, caplog)
    assert "default_password" not in out
    assert "Default password" not in out


@pytest.mark.parametrize("json_mode", [False, True])
def test_bridge_on_a_fake_bus_shows_the_secrets_on_stdout_only(
    tmp_path: Path,
    json_mode: bool,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    argv = ["bridge", "--fake-i2c", str(tmp_path / "gw.json"), "--i2c-bus", "5", "-v"]
    argv += ["--address", "0x42", "--listen", "127.0.0.1:0", "--no-zeroconf", "--run-for", "0.01"]
    out, logged = run([*argv, *(["--json"] if json_mode else [])], capsys, caplog)
    assert_shown_once_and_never_logged(out, logged, json_mode=json_mode)


@pytest.mark.parametrize("json_mode", [False, True])
def test_a_client_command_on_a_fake_bus_shows_the_secrets_on_stdout_only(
    tmp_path: Path,
    json_mode: bool,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = ["--fake-i2c", str(tmp_path / "gw.json"), "--i2c-bus", "5", "--address", "0x42"]
    out, logged = run([*argv, "info", "-v", *(["--json"] if json_mode else [])], capsys, caplog)
    assert_shown_once_and_never_logged(out, logged, json_mode=json_mode)
    if json_mode:  # JSON Lines: the secrets' record, then the command's own result
        first, result = (json.loads(line) for line in out.splitlines())
        assert first["event"] == "factory_secrets"
        assert result["factory_state"] is True
