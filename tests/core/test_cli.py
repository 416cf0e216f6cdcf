"""The ``rayzig`` CLI, run in-process (``main([...])``) against the real virtual gateway.

Servers the CLI starts itself (virtual-gateway, update-server) run as subprocesses that are
stopped with SIGTERM, or in-process with ``--run-for``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from rayzig_core import cli
from rayzig_core.cli import main
from rayzig_core.cli.commands import COMMANDS
from rayzig_core.cli.spec import Handler, options_from, resolve
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import NotFoundError
from rayzig_core.firmware import CHUNK_SIZE, CatalogueEntry, crc32, parse_catalogue
from rayzig_core.models import MAX_EVENTS_PER_MODULE, FirmwarePart
from rayzig_core.password_policy import PolicyViolation
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector
from rayzig_core.virtual_gateway import HARDWARE, VirtualGateway, load_state
from rayzig_core.zeroconf_advertiser import SERVICE_TYPE
from tests.core.conftest import (
    HOST,
    OWNER,
    OWNER_PASSWORD,
    PASSWORDS,
    add_users_sync,
    connected,
    pair,
    switchable_output,
)

WEAK = "password12345678"
NEW_PASSWORD = "copper lantern whistles beneath autumn rain"


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No inherited secrets, and no terminal unless a test says so."""
    for name in ("RAYZIG_PASSWORD", "RAYZIG_NEW_PASSWORD", "RAYZIG_RECOVERY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("rayzig_core.cli.prompts.interactive", lambda: False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI; returns (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def target(gw: GatewayThread | int, key_file: Path) -> list[str]:
    port = gw if isinstance(gw, int) else gw.port
    return ["--host", HOST, "--port", str(port), "--key-file", str(key_file)]


def fingerprint(gw: GatewayThread) -> str:
    return gw.call(lambda g: g.fingerprint)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "rayzig" / "client.json"


@pytest.fixture
def paired(
    owned: GatewayThread,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """A gateway out of factory state and a CLI key file paired as the owner; returns options."""
    monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
    options = target(owned, key_file)
    code, _, err = run(capsys, "pair", *options, "--yes-fingerprint", fingerprint(owned))
    assert code == 0, err
    monkeypatch.delenv("RAYZIG_PASSWORD")
    return ["--key-file", str(key_file)]


def credentials_of(key_file: Path) -> ClientCredentials:
    return ClientCredentials.from_dict(json.loads(key_file.read_text())["credentials"])


# --- info and pairing --------------------------------------------------------------------------


def test_info_before_pairing(
    gateway: GatewayThread, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(capsys, "info", *target(gateway, key_file))
    assert data["fingerprint"] == fingerprint(gateway)
    assert data["serial"] == gateway.call(lambda g: g.serial)
    assert data["model"]
    assert data["factory_state"] is True
    assert data["paired"] is False
    assert not key_file.exists()

    code, out, _ = run(capsys, "info", *target(gateway, key_file))
    assert code == 0
    assert fingerprint(gateway) in out
    assert "Factory state  yes" in out


def test_pair_through_factory_state_weak_then_good(
    gateway: GatewayThread,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert gateway.factory is not None
    default = gateway.factory.default_password
    options = [*target(gateway, key_file), "--yes-fingerprint", fingerprint(gateway)]
    monkeypatch.setenv("RAYZIG_PASSWORD", default)

    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", WEAK)
    code, out, err = run(capsys, "pair", *options)
    assert code == cli.EXIT_REFUSED
    assert "factory state" in err
    assert PolicyViolation.SEQUENTIAL.message in err
    assert len(err.strip().splitlines()) == 2  # the factory-state note, then one error line
    assert out == ""
    assert not key_file.exists()
    assert gateway.call(lambda g: g.factory_state)

    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", NEW_PASSWORD)
    code, out, err = run(capsys, "pair", *options, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["paired"] is True
    assert data["user"] == OWNER
    assert data["level"] == "system"
    assert data["fingerprint"] == fingerprint(gateway)
    assert not gateway.call(lambda g: g.factory_state)
    for secret in (default, NEW_PASSWORD):
        assert secret not in out
        assert secret not in err
        assert secret not in key_file.read_text()

    info = run_json(capsys, "info", "--key-file", str(key_file))
    assert info["paired"] is True
    assert info["factory_state"] is False
    assert info["user"] == OWNER
    assert {item["part"] for item in info["firmware"]} == {p.name.lower() for p in FirmwarePart}


def test_pair_interactively_reprompts_with_reasons(
    gateway: GatewayThread,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert gateway.factory is not None
    answers = iter([gateway.factory.default_password, WEAK, NEW_PASSWORD, NEW_PASSWORD])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "", stream: object = None) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("rayzig_core.cli.prompts.interactive", lambda: True)
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    code, out, err = run(capsys, "pair", *target(gateway, key_file))
    assert code == 0, err
    assert fingerprint(gateway) in err  # shown for comparison with the label
    assert "That password cannot be used" in err
    assert PolicyViolation.SEQUENTIAL.message in err
    assert prompts == [
        f"Password for {OWNER}: ",
        f"New password for {OWNER}: ",
        f"New password for {OWNER}: ",
        "Repeat the new password: ",
    ]
    assert "Paired with gateway" in out
    for secret in (gateway.factory.default_password, WEAK, NEW_PASSWORD):
        assert secret not in out + err


def test_pair_refuses_a_different_fingerprint(
    owned: GatewayThread,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
    wrong = "0000-1111-2222-3333-4444-5555-6666-7777"
    code, _, err = run(capsys, "pair", *target(owned, key_file), "--yes-fingerprint", wrong)
    assert code == cli.EXIT_AUTH
    assert "do not pair" in err
    assert not key_file.exists()

    # Without a terminal and without --yes-fingerprint the fingerprint cannot be confirmed.
    code, _, err = run(capsys, "pair", *target(owned, key_file))
    assert code == cli.EXIT_USAGE
    assert "--yes-fingerprint" in err
    assert fingerprint(owned) in err
    assert not key_file.exists()


def test_wrong_password_exits_3(
    owned: GatewayThread,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAYZIG_PASSWORD", "not the right password at all")
    code, out, err = run(
        capsys, "pair", *target(owned, key_file), "--yes-fingerprint", fingerprint(owned)
    )
    assert code == cli.EXIT_AUTH
    assert out == ""
    assert err.startswith("rayzig: Wrong user name, password")
    assert len(err.strip().splitlines()) == 1
    assert "not the right password" not in err
    assert not key_file.exists()


def test_password_is_never_read_from_argv(
    owned: GatewayThread, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "pair", *target(owned, key_file), "--password", OWNER_PASSWORD)
    assert code == cli.EXIT_USAGE
    assert OWNER_PASSWORD not in err
    code, _, err = run(
        capsys, "pair", *target(owned, key_file), "--yes-fingerprint", fingerprint(owned)
    )
    assert code == cli.EXIT_USAGE
    assert "RAYZIG_PASSWORD" in err


def test_no_gateway_exits_2(key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", *target(free_port(), key_file))
    assert code == cli.EXIT_CONNECT
    assert out == ""
    assert "Nothing listens at tcp://127.0.0.1:" in err
    assert len(err.strip().splitlines()) == 1


def test_not_paired_exits_3(
    owned: GatewayThread, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "modules", *target(owned, key_file))
    assert code == cli.EXIT_AUTH
    assert "rayzig pair" in err


def test_key_file_is_0600_and_a_readable_one_is_refused(
    paired: list[str], key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    document = json.loads(key_file.read_text())
    assert document["credentials"]["user"] == OWNER
    assert document["connection"]["host"] == HOST
    private = document["credentials"]["client_private_key"]

    key_file.chmod(0o644)
    code, out, err = run(capsys, "modules", *paired)
    assert code == cli.EXIT_USAGE
    assert out == ""
    assert "accessible to other users (mode 0644)" in err
    assert f"chmod 600 {key_file}" in err
    assert private not in err

    key_file.chmod(0o600)
    code, _, err = run(capsys, "modules", *paired)
    assert code == 0, err


def test_damaged_key_file(
    paired: list[str], key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file.write_text("{not json")
    code, _, err = run(capsys, "modules", *paired)
    assert code == cli.EXIT_USAGE
    assert "damaged" in err


def test_recover_with_the_recovery_secret(
    gateway: GatewayThread,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert gateway.factory is not None
    options = [*target(gateway, key_file), "--yes-fingerprint", fingerprint(gateway)]
    monkeypatch.setenv("RAYZIG_RECOVERY_SECRET", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", NEW_PASSWORD)
    code, _, err = run(capsys, "recover", *options)
    assert code == cli.EXIT_AUTH
    assert "recovery secret" in err

    monkeypatch.setenv("RAYZIG_RECOVERY_SECRET", gateway.factory.recovery_secret)
    code, out, err = run(capsys, "recover", *options)
    assert code == 0, err
    assert gateway.factory.recovery_secret not in out + err

    monkeypatch.setenv("RAYZIG_PASSWORD", NEW_PASSWORD)
    code, _, err = run(capsys, "pair", *options)
    assert code == 0, err


def test_passwd(
    paired: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", NEW_PASSWORD)
    monkeypatch.setenv("RAYZIG_PASSWORD", "this is not my password")
    code, _, _ = run(capsys, "passwd", *paired)
    assert code == cli.EXIT_AUTH
    monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
    assert run_json(capsys, "passwd", *paired) == {"changed": True, "user": OWNER}
    # The key still works (sessions use keys, not passwords).
    assert run_json(capsys, "info", *paired)["paired"] is True


# --- the site ----------------------------------------------------------------------------------


def test_modules_set_preset_events(
    paired: list[str], owned: GatewayThread, capsys: pytest.CaptureFixture[str]
) -> None:
    module_id, index = switchable_output(owned)
    number = index + 1
    modules = run_json(capsys, "modules", *paired)
    assert [m["id"] for m in modules] == sorted(m["id"] for m in modules)
    module = next(m for m in modules if m["id"] == module_id)
    assert module["kind"] == "mains"
    assert module["outputs"][index]["number"] == number
    assert {"battery_percent", "battery_minimum_percent", "link_quality", "reachable"} <= set(
        module
    )
    battery = next(m for m in modules if m["kind"] == "battery")
    assert battery["battery_percent"] is not None
    assert battery["battery_minimum_percent"] is not None
    before = module["event_seq"]

    code, text, _ = run(capsys, "modules", *paired)
    assert code == 0
    assert text.splitlines()[0].split()[:3] == ["ID", "MODULE", "KIND"]
    assert module["name"] in text

    for state in ("on", "off", "on"):
        data = run_json(capsys, "set", str(module_id), str(number), state, *paired)
        assert data["on"] is (state == "on")
        assert owned.call(lambda g: g.site.module(module_id).outputs[index].is_on) is (
            state == "on"
        )
    data = run_json(capsys, "preset", str(module_id), str(number), "last", *paired)
    assert data["preset"] == "last"

    result = run_json(capsys, "events", "--module", str(module_id), "--since", str(before), *paired)
    events = result["events"]
    assert [e["seq"] for e in events] == list(range(before + 1, before + 4))
    assert [e["on"] for e in events] == [True, False, True]
    assert all(e["kind"] == "command" and e["user"] == OWNER for e in events)
    assert all(e["output"] == number for e in events)
    assert result["cursors"] == {str(module_id): before + 3}

    code, text, _ = run(
        capsys, "events", "--module", str(module_id), "--since", str(before + 2), *paired
    )
    assert code == 0
    assert len(text.strip().splitlines()) == 1
    assert f"output {number}  on  by {OWNER}" in text

    everything = run_json(capsys, "events", *paired)
    assert {e["module"] for e in everything["events"]} == {m["id"] for m in modules}


def test_refusals_exit_4(
    paired: list[str], owned: GatewayThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "set", "249", "1", "on", *paired)
    assert code == cli.EXIT_REFUSED
    assert "Module 249 does not exist" in err
    code, _, err = run(capsys, "events", "--module", "249", *paired)
    assert code == cli.EXIT_REFUSED
    code, _, err = run(capsys, "set", "1", "0", "on", *paired)
    assert code == cli.EXIT_USAGE


def _modules_with_outputs(gw: GatewayThread) -> tuple[int, int, int]:
    """A module with one output, and a module with several and how many it has."""

    def find(g: VirtualGateway) -> tuple[int, int, int]:
        modules = g.site.modules()
        single = next(m.module_id for m in modules if len(m.outputs) == 1)
        several = next(m for m in modules if len(m.outputs) > 1)
        return single, several.module_id, len(several.outputs)

    return gw.call(find)


def test_output_numbers_in_messages_count_from_one(
    paired: list[str], owned: GatewayThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every message names outputs as the user numbers them (from 1), never the protocol index."""
    single, several, count = _modules_with_outputs(owned)
    name = owned.call(lambda g: g.site.module(single).outputs[0].name)

    code, out, err = run(capsys, "set", str(single), "2", "on", *paired)
    assert (code, out) == (cli.EXIT_REFUSED, "")
    assert err == (
        f"rayzig: Module {single} has no output 2: its only output is 1 (see `rayzig modules`).\n"
    )
    code, out, err = run(capsys, "set", str(single), "1", "on", *paired)
    assert code == 0, err
    assert out == f"Module {single} output 1 ({name}) is on.\n"

    missing = f"Module {several} has no output {count + 1}: its outputs are 1 to {count}"
    for argv in (["set", "on"], ["preset", "last"], ["utility", "on"]):
        command, value = argv
        code, out, err = run(capsys, command, str(several), str(count + 1), value, *paired)
        assert (code, out) == (cli.EXIT_REFUSED, ""), argv
        assert err == f"rayzig: {missing} (see `rayzig modules`).\n", argv
    code, out, err = run(capsys, "preset", str(several), str(count), "last", *paired)
    assert code == 0, err
    last = owned.call(lambda g: g.site.module(several).outputs[count - 1].name)
    assert out == f"Module {several} output {count} ({last}) restores last after a power cut.\n"

    # The gateway's own refusal, as any client reads it, counts from 1 too: the owner's
    # command, and the Utility user's (refused before the command, §7.2).
    add_users_sync(owned, ["utility"])

    async def refusals() -> list[str]:
        _, utility = await pair(owned, "utility", PASSWORDS["utility"])
        texts = []
        for credentials in (credentials_of(Path(paired[1])), utility):
            client = await connected(owned, credentials)
            try:
                with pytest.raises(NotFoundError) as info:
                    await client.set_output(several, count, True)
            finally:
                await client.close()
            texts.append(str(info.value))
        return texts

    text = f"Module {several} has no output {count + 1}: it has {count}, numbered from 1."
    assert asyncio.run(refusals()) == [text, text]


def test_events_gap_and_progress(
    paired: list[str],
    owned: GatewayThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module_id, index = switchable_output(owned)
    extra = 300
    start = owned.call(lambda g: g.site.module(module_id).event_seq)

    def flood(g: VirtualGateway) -> None:
        for step in range(MAX_EVENTS_PER_MODULE + extra):
            g.site.set_output(module_id, index, step % 2 == 0, user="flood")

    owned.call(flood)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(
        capsys, "events", "--module", str(module_id), "--since", str(start), "--json", *paired
    )
    assert code == 0, err
    events = json.loads(out)["events"]
    assert events[0]["kind"] == "gap"
    lost = events[0]["lost"]
    assert lost == extra
    assert len(events) == 1 + MAX_EVENTS_PER_MODULE
    assert events[1]["seq"] == start + extra + 1
    assert "Reading events" in err
    assert f"{MAX_EVENTS_PER_MODULE}/{MAX_EVENTS_PER_MODULE} events" in err


def test_events_follow(
    paired: list[str], owned: GatewayThread, capsys: pytest.CaptureFixture[str]
) -> None:
    module_id, index = switchable_output(owned)
    newest = owned.call(lambda g: g.site.module(module_id).event_seq)

    def switch() -> None:
        owned.call(lambda g: g.site.set_output(module_id, index, on=True, user="later"))

    timer = threading.Timer(0.7, switch)
    timer.start()
    try:
        code, out, err = run(
            capsys, "events", "--module", str(module_id), "--since", str(newest),
            "--follow", "--for", "2.5", "--json", *paired,
        )  # fmt: skip
    finally:
        timer.join()
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["seq"], r["user"], r["on"]) for r in records] == [(newest + 1, "later", True)]
    assert "Following new events" in err


def test_users_add_list_delete(
    paired: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", "ursula1234567890")
    code, _, err = run(capsys, "users", "add", "ursula", "--level", "user", *paired)
    assert code == cli.EXIT_REFUSED
    assert PolicyViolation.CONTAINS_USER_NAME.message in err

    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", PASSWORDS["ursula"])
    data = run_json(capsys, "users", "add", "ursula", "--level", "user", *paired)
    assert data == {"added": True, "name": "ursula", "level": "user", "limitation": None}
    users = run_json(capsys, "users", "list", *paired)
    assert {"name": "ursula", "level": "user", "limitation": None} in users
    assert {"name": OWNER, "level": "system", "limitation": None} in users
    code, text, _ = run(capsys, "users", "list", *paired)
    assert "ursula" in text
    assert "System" in text

    assert run_json(capsys, "users", "delete", "ursula", *paired)["deleted"] is True
    assert "ursula" not in {u["name"] for u in run_json(capsys, "users", "list", *paired)}
    code, _, err = run(capsys, "users", "delete", "ursula", *paired)
    assert code == cli.EXIT_REFUSED
    assert "No user named 'ursula'" in err

    code, _, err = run(capsys, "users", *paired)
    assert code == cli.EXIT_USAGE


def test_permission_denied_exits_4(
    paired: list[str],
    owned: GatewayThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", PASSWORDS["ursula"])
    assert run_json(capsys, "users", "add", "ursula", *paired)["added"] is True
    ursula_key = tmp_path / "ursula.json"
    monkeypatch.setenv("RAYZIG_PASSWORD", PASSWORDS["ursula"])
    code, _, err = run(
        capsys, "pair", "--user", "ursula", *target(owned, ursula_key),
        "--yes-fingerprint", fingerprint(owned),
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "users", "list", "--key-file", str(ursula_key))
    assert code == cli.EXIT_REFUSED
    assert "does not allow" in err


def test_clients_list_and_revoke_self(
    paired: list[str], key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = credentials_of(key_file)
    clients = run_json(capsys, "clients", "list", *paired)
    assert [c["client_id"] for c in clients if c["this_client"]] == [own.client_id]
    assert clients[0]["fingerprint"] == own.client_fingerprint
    data = run_json(capsys, "clients", "revoke", str(own.client_id), *paired)
    assert data["this_client"] is True
    assert not key_file.exists()
    code, _, _ = run(capsys, "modules", *paired)
    assert code == cli.EXIT_AUTH


def test_revoked_key_exits_3(
    paired: list[str],
    key_file: Path,
    owned: GatewayThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    copy = key_file.parent / "second.json"
    monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
    code, _, err = run(
        capsys, "pair", *target(owned, copy), "--yes-fingerprint", fingerprint(owned)
    )
    assert code == 0, err
    first = credentials_of(key_file).client_id
    assert run_json(capsys, "clients", "revoke", str(first), "--key-file", str(copy))["revoked"]
    code, _, err = run(capsys, "modules", *paired)
    assert code == cli.EXIT_AUTH
    assert "pair again" in err


# --- usage -------------------------------------------------------------------------------------


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "exit codes:" in out
    assert "RAYZIG_NEW_PASSWORD" in out
    code, _, err = run(capsys, "frobnicate")
    assert code == cli.EXIT_USAGE
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys)
    assert code == cli.EXIT_USAGE
    code, _, err = run(capsys, "info", "--port", "99999")
    assert code == cli.EXIT_USAGE
    code, _, err = run(capsys, "info", "--i2c-bus", "1")
    assert code == cli.EXIT_USAGE
    assert "--address" in err
    code, _, err = run(capsys, "info", "--i2c-bus", "1", "--address", "0x42", "--host", HOST)
    assert code == cli.EXIT_USAGE


def _cli_into_closed_pipe(*argv: str) -> tuple[int, str]:
    """Run the CLI in a subprocess whose stdout's reader has already gone (as `| head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader left: the first write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rayzig_core.cli", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).parents[2],
        )
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def test_a_closed_pipe_ends_the_cli_quietly(paired: list[str]) -> None:
    """`rayzig modules | head -2`: no internal error, no traceback, the exit code of SIGPIPE."""
    for argv in (["modules", *paired], ["modules", "--json", *paired]):
        code, err = _cli_into_closed_pipe(*argv)
        assert (code, err) == (cli.EXIT_PIPE_CLOSED, ""), argv
    assert cli.EXIT_PIPE_CLOSED == 141  # 128 + SIGPIPE, as for a Unix tool that SIGPIPE ends
    # --help: quiet too; Python 3.13's argparse drops the write error itself (exit 0), 3.11's
    # leaves it to the final flush (exit 141).
    code, err = _cli_into_closed_pipe("--help")
    assert err == ""
    assert code in {cli.EXIT_OK, cli.EXIT_PIPE_CLOSED}


MINIMAL_COMMAND_LINES = [
    ["info"], ["pair"], ["passwd"], ["recover"], ["modules"], ["set", "1", "1", "on"],
    ["preset", "1", "1", "last"], ["utility", "1", "1", "off"], ["events"], ["users", "list"],
    ["users", "add", "ursula"], ["users", "limit", "ursula", "--read-only"],
    ["users", "delete", "ursula"], ["clients", "list"],
    ["clients", "revoke", "2"], ["firmware", "list"],
    ["firmware", "check", "--server", "http://127.0.0.1:1/", "--signing-key", "ab" * 32],
    ["firmware", "install", "tft", "--server", "http://127.0.0.1:1/", "--signing-key", "ab" * 32],
    ["virtual-gateway"], ["update-server", "dir"], ["bridge", "--listen", "127.0.0.1:0"],
    ["firmware-publish", "dir", "image", "--signing-key-file", "k", "--part", "tft",
     "--version", "1.0.0", "--security-version", "1"],
    ["keygen", "--out", "k"],
    ["advisory-publish", "dir", "--signing-key-file", "k", "--id", "RZSA-2026-0001", "--part",
     "rayzig", "--affected", "..2.4.1", "--fixed-in", "2.5.0", "--severity", "high",
     "--summary", "text", "--url", "https://rayzig.dev/"],
    ["advisory-withdraw", "dir", "RZSA-2026-0001"],
]  # fmt: skip


def test_every_command_reads_its_options_from_the_parser() -> None:
    """Each command's options dataclass matches what its parser sets, field by field."""
    parser = cli.build_parser()
    leaves = {
        f"{command.name} {action.name}" if action is not command else command.name
        for command in COMMANDS
        for action in (command.actions or (command,))
    }
    seen = set()
    for argv in MINIMAL_COMMAND_LINES:
        namespace = parser.parse_args(argv)
        command = namespace.command_spec
        assert command.handler is not None, argv
        handler = resolve(command.handler)
        assert isinstance(handler, Handler), command.handler
        options = options_from(handler.options, namespace)
        assert dataclasses.is_dataclass(options)
        seen.add(" ".join(argv[: 2 if command.name != argv[0] else 1]))
    assert seen == leaves


@pytest.mark.parametrize(
    ("argv", "loaded"),
    [
        (["info", "--port", "PORT"], "rayzig_core.client"),
        (["bridge", "--listen", "127.0.0.1:0"], "rayzig_core.bridge"),
    ],
)
def test_a_command_loads_only_what_it_needs(argv: list[str], loaded: str) -> None:
    """Start-up stays quick on the SBC: no server, simulator or HTTP code for other commands."""
    argv = [str(free_port()) if arg == "PORT" else arg for arg in argv]
    code = (
        "import sys; from rayzig_core.cli import main; main(sys.argv[1:]);"
        "print(' '.join(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, check=True
    )
    modules = set(result.stdout.split())
    assert loaded in modules
    for heavy in (
        "aiohttp",
        "zeroconf",
        "rayzig_core.virtual_gateway",
        "rayzig_core.testing",
        "rayzig_core.update_server",
        "rayzig_core.firmware",
    ):
        assert heavy not in modules, heavy
    if argv[0] != "bridge":
        assert "rayzig_core.bridge" not in modules


# --- virtual gateway ---------------------------------------------------------------------------


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30.0) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    process.kill()
    pytest.fail(f"no {marker!r} in output: {lines}")


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start CLI subprocesses; any still running afterwards are killed."""
    processes: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "rayzig_core.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def _stop(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


def test_virtual_gateway_banner_once_and_clean_stop(
    tmp_path: Path, spawn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state" / "gateway.json"
    process = spawn("virtual-gateway", "--port", "0", "--state", str(state), "--modules", "3")
    lines = _read_until(process, "Press Ctrl-C to stop")
    text = "\n".join(lines)
    assert "shown ONLY THIS ONCE" in text
    default = next(line for line in lines if "Default password:" in line).split()[-1]
    secret = next(line for line in lines if "Recovery secret:" in line).split()[-1]
    printed_fingerprint = next(line for line in lines if "Fingerprint:" in line).split()[-1]
    listening = next(line for line in lines if " listening on 127.0.0.1:" in line)
    port = int(listening.split("127.0.0.1:")[1].split()[0])
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    # It really is that gateway: first contact over TCP shows the same fingerprint.
    key_file = tmp_path / "k.json"
    info = run_json(capsys, "info", *target(port, key_file))
    assert info["fingerprint"] == printed_fingerprint
    assert info["factory_state"] is True

    code, out, err = _stop(process)
    assert code == 0, err
    assert "Traceback" not in err
    assert "stopped" in err

    # Second start: same identity, no secrets.
    code, out, err = run(
        capsys, "virtual-gateway", "--port", "0", "--state", str(state), "--run-for", "0.3",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    first, last = (json.loads(line) for line in out.splitlines())
    assert first["event"] == "listening"
    assert first["first_start"] is False
    assert first["fingerprint"] == printed_fingerprint
    assert first["modules"] == 3
    assert "default_password" not in first
    assert default not in out + err
    assert secret not in out + err
    assert last == {"event": "stopped", "state": str(state)}


def test_virtual_gateway_fault_seed_is_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`virtual-gateway --fault-seed` seeds its TCP faults; the global one needs --fake-i2c."""
    state = tmp_path / "gateway.json"
    options = ["--port", "0", "--state", str(state), "--run-for", "0.1", "--json"]
    faults = ["--fault-disconnects", "0.5", "--fault-seed", "3"]
    code, out, err = run(capsys, "virtual-gateway", *options, *faults)
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["event"] == "listening"
    code, out, err = run(capsys, "--fault-seed", "3", "virtual-gateway", *options)
    assert code == cli.EXIT_USAGE
    assert "--fake-i2c" in err
    assert out == ""


def test_virtual_gateway_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "gateway.json"
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run(capsys, "virtual-gateway", "--port", str(port), "--state", str(state))
    assert code == cli.EXIT_CONNECT
    assert out == ""  # no secrets printed for a gateway that never ran ...
    assert f"Cannot listen on 127.0.0.1:{port}" in err
    assert "--port" in err
    assert not state.exists()  # ... and none saved: the next start shows fresh ones


def test_virtual_gateway_first_start_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "gateway.json"
    code, out, err = run(
        capsys, "virtual-gateway", "--port", "0", "--state", str(state), "--run-for", "0.2",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    first = json.loads(out.splitlines()[0])
    assert first["first_start"] is True
    assert first["user"] == OWNER
    assert len(first["default_password"]) >= 16
    assert len(first["recovery_secret"]) >= 25
    assert first["modules"] == 12
    assert first["zeroconf"] is None  # announced only with --advertise


async def test_virtual_gateway_advertise_announces_until_it_stops(
    tmp_path: Path, spawn: Any
) -> None:
    """--advertise: `_rayzig._tcp` with serial and fingerprint on its listen interface, and
    goodbye packets when it stops, so Home Assistant's discovery forgets it."""
    state = tmp_path / "gateway.json"
    process = spawn(
        "virtual-gateway", "--host", HOST, "--port", "0", "--state", str(state), "--advertise",
        "--json",
    )  # fmt: skip
    lines = await asyncio.to_thread(_read_until, process, '"event": "listening"')
    banner = json.loads(lines[-1])
    announced = banner["zeroconf"]
    assert announced == f"Rayzig {banner['serial']}.{SERVICE_TYPE}"

    changes: asyncio.Queue[ServiceStateChange] = asyncio.Queue()

    def on_change(
        zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if name == announced:  # other gateways may announce on this loopback too
            changes.put_nowait(state_change)

    browsing = AsyncZeroconf(interfaces=[HOST], ip_version=IPVersion.V4Only)
    browser = AsyncServiceBrowser(browsing.zeroconf, [SERVICE_TYPE], handlers=[on_change])
    try:
        assert await asyncio.wait_for(changes.get(), 20) is ServiceStateChange.Added
        info = await browsing.async_get_service_info(SERVICE_TYPE, announced, timeout=5000)
        assert info is not None
        assert info.decoded_properties == {
            "serial": banner["serial"],
            "fingerprint": banner["fingerprint"],
            "version": str(m.PROTOCOL_VERSION),
        }
        assert (info.port, info.parsed_addresses()) == (banner["port"], [HOST])

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(changes.get(), 20) is ServiceStateChange.Removed
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        await browser.async_cancel()
        await browsing.async_close()


def test_virtual_gateway_large_site_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--outputs-per-module and --prefill-events shape a new site; an existing one is kept."""
    state = tmp_path / "gateway.json"
    options = ["virtual-gateway", "--port", "0", "--state", str(state), "--run-for", "0.1"]
    shape = ["--modules", "5", "--outputs-per-module", "6", "--prefill-events", "700"]
    code, out, err = run(capsys, *options, *shape, "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["modules"] == 5
    gateway = load_state(state)
    assert gateway is not None
    modules = gateway.site.modules()
    assert {len(module.outputs) for module in modules} == {6}
    assert {(module.event_count, module.event_seq) for module in modules} == {(700, 700)}
    code, _, err = run(capsys, *options, "--outputs-per-module", "2", "--prefill-events", "9")
    assert code == 0, err
    assert "--outputs-per-module, --prefill-events apply when the state file is created" in err
    kept = load_state(state)
    assert kept is not None
    assert kept.site.modules() == modules


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--outputs-per-module", "9", "a module has at most 8 outputs"),
        ("--outputs-per-module", "0", "must be 1 or more"),
        ("--outputs-per-module", "four", "'four' is not a whole number"),
        ("--prefill-events", "8193", "an event log holds at most 8192 records"),
        ("--prefill-events", "-5", "must be 0 or more"),
    ],
)
def test_virtual_gateway_large_site_options_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    state = tmp_path / "gateway.json"
    code, out, err = run(capsys, "virtual-gateway", "--state", str(state), option, value)
    assert code == cli.EXIT_USAGE
    assert f"{option}: {message}" in err.replace("argument ", "")
    assert out == ""
    assert not state.exists()


# --- firmware ----------------------------------------------------------------------------------


@pytest.fixture
def signing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    path = tmp_path / "keys" / "signing.json"
    data = run_json(capsys, "keygen", "--out", str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["private_key"] not in json.dumps(data)
    code, _, err = run(capsys, "keygen", "--out", str(path))
    assert code == cli.EXIT_USAGE
    assert "already exists" in err
    return path, data["public_key"]


@pytest.fixture
def firmware_gateway(tmp_path: Path, signing_key: tuple[Path, str]) -> Iterator[GatewayThread]:
    """A gateway out of factory state that trusts the test signing key."""
    gw = GatewayThread(
        tmp_path / "fw-gw.json", trusted_update_keys=(bytes.fromhex(signing_key[1]),)
    ).start()
    try:
        gw.setup_owner(OWNER_PASSWORD)
        yield gw
    finally:
        gw.stop()


def test_firmware_publish_serve_check_install(
    *,
    tmp_path: Path,
    signing_key: tuple[Path, str],
    firmware_gateway: GatewayThread,
    spawn: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_path, public = signing_key
    catalogue = tmp_path / "catalogue"
    image = os.urandom(5 * CHUNK_SIZE + 123)
    (tmp_path / "tft.bin").write_bytes(image)
    publish = ["firmware-publish", str(catalogue), str(tmp_path / "tft.bin"),
               "--signing-key-file", str(key_path), "--part", "tft"]  # fmt: skip
    data = run_json(capsys, *publish, "--version", "1.0.8", "--security-version", "1")
    assert data["size"] == len(image)
    assert data["hardware"] == HARDWARE  # the virtual gateway's, by default
    code, _, err = run(
        capsys, *publish, "--version", "1.0.9", "--security-version", "1", "--hardware", "RZ-GW2"
    )
    assert code == cli.EXIT_USAGE  # one catalogue, one hardware
    assert "RZ-GW1" in err
    # This one would be a downgrade.
    run_json(capsys, *publish, "--version", "1.0.6", "--security-version", "0")

    server = spawn("update-server", str(catalogue), "--port", "0", "--json")
    url = json.loads(_read_until(server, '"listening"')[-1])["url"]

    key_file = tmp_path / "fw-client.json"
    monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
    code, _, err = run(
        capsys, "pair", *target(firmware_gateway, key_file),
        "--yes-fingerprint", fingerprint(firmware_gateway),
    )  # fmt: skip
    assert code == 0, err
    keyed = ["--key-file", str(key_file)]
    server_options = ["--server", url, "--signing-key", public]

    rows = run_json(capsys, "firmware", "check", *server_options, *keyed)
    by_part = {row["part"]: row for row in rows}
    assert by_part["tft"]["installed"] == "1.0.7"
    assert by_part["tft"]["available"] == "1.0.8"
    assert by_part["tft"]["status"] == "update available"
    assert by_part["rayzig"]["status"] == "not published"

    other = "11" * 32
    code, _, err = run(capsys, "firmware", "check", "--server", url, "--signing-key", other, *keyed)
    assert code == cli.EXIT_REFUSED
    assert "trusted key" in err

    # Start the install by hand and stop after two chunks: the CLI resumes from there.
    credentials = credentials_of(key_file)
    entry = next(
        e
        for e in parse_catalogue(
            (catalogue / "catalogue.json").read_bytes(), [bytes.fromhex(public)]
        )
        if e.manifest.version == "1.0.8"
    )
    asyncio.run(_send_two_chunks(firmware_gateway.port, credentials, entry, image))
    assert firmware_gateway.call(lambda g: g.firmware.progress(FirmwarePart.TFT)) == (
        FirmwarePart.TFT, 2 * CHUNK_SIZE, len(image),
    )  # fmt: skip

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(capsys, "firmware", "install", "tft", *server_options, *keyed, "--json")
    assert code == 0, err
    assert "Installing restarts the TFT display" in err  # told before installing (5.3-12)
    result = json.loads(out)
    assert result["installed"] is True
    assert result["version"] == "1.0.8"
    drawn = [segment for segment in err.split("\r") if segment.startswith("Installing tft")]
    assert f"{2 * CHUNK_SIZE}/{len(image)} bytes" in drawn[0]  # resumed, not restarted
    assert f"{len(image)}/{len(image)} bytes" in drawn[-1]
    versions = {v["part"]: v["version"] for v in run_json(capsys, "firmware", "list", *keyed)}
    assert versions["tft"] == "1.0.8"

    code, out, _ = run(capsys, "firmware", "install", "tft", *server_options, *keyed)
    assert code == 0
    assert "already installed" in out

    # On a terminal the CLI asks first; "no" changes nothing.
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, _, err = run(capsys, "firmware", "install", "tft", "--force", *server_options, *keyed)
    assert code == cli.EXIT_USAGE
    assert "cancelled" in err
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)

    code, _, err = run(
        capsys, "firmware", "install", "tft", "--version", "1.0.6", *server_options, *keyed
    )
    assert code == cli.EXIT_REFUSED
    assert "downgrade refused" in err
    assert (
        firmware_gateway.call(lambda g: {v.part: v.version for v in g.firmware.versions()})[
            FirmwarePart.TFT
        ]
        == "1.0.8"
    )

    code, _, err = run(capsys, "firmware", "install", "raydal", *server_options, *keyed)
    assert code == cli.EXIT_REFUSED
    assert "no raydal firmware" in err

    code, _, err = _stop(server)
    assert code == 0, err


async def _send_two_chunks(
    port: int, credentials: ClientCredentials, entry: CatalogueEntry, image: bytes
) -> None:
    client = RayzigClient(TcpConnector(HOST, port, timeout=5.0), credentials)
    try:
        await client.connect()
        await client.request(m.FirmwareBegin(entry.signed.manifest, entry.signed.signature))
        for offset in (0, CHUNK_SIZE):
            chunk = image[offset : offset + CHUNK_SIZE]
            await client.request(m.FirmwareChunk(FirmwarePart.TFT, offset, chunk, crc32(chunk)))
    finally:
        await client.close()


def test_update_server_needs_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "update-server", str(tmp_path / "missing"))
    assert code == cli.EXIT_USAGE
    assert "not a directory" in err


def test_firmware_check_without_update_server(
    paired: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://{HOST}:{free_port()}"
    code, _, err = run(
        capsys, "firmware", "check", "--server", url, "--signing-key", "22" * 32, *paired
    )
    assert code == cli.EXIT_CONNECT
    assert "update server" in err
