"""``rayzig utility`` and ``--i2c-channel``, run in-process (``main([...])``) against the real
virtual gateway: over loopback TCP, and on the simulated I2C bus next to a long-lived client on
channel 0 (Home Assistant on local I2C)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rayzig_core import cli
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import ConnectionState
from rayzig_core.testing.fake_i2c import FakeI2CBus, fake_open_descriptors
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.i2c import I2CConnector
from tests.core.conftest import (
    HOST,
    OWNER,
    OWNER_PASSWORD,
    PASSWORDS,
    SCRYPT_N,
    switchable_output,
    wait_for,
)
from tests.core.test_cli import (
    _clean_environment,  # noqa: F401 - autouse fixture: no inherited secrets, no terminal
    fingerprint,
    run,
    run_json,
)

BUS = 1
ADDRESS = 0x42
FAST_POLL = 0.0005


# --- helpers -----------------------------------------------------------------------------------


def pair_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    gw: GatewayThread,
    key_file: Path,
    *,
    user: str = OWNER,
    password: str = OWNER_PASSWORD,
) -> list[str]:
    """Pair a key file over TCP as ``user``; returns the options that use it."""
    monkeypatch.setenv("RAYZIG_PASSWORD", password)
    code, _, err = run(
        capsys, "pair", "--user", user, "--host", HOST, "--port", str(gw.port),
        "--key-file", str(key_file), "--yes-fingerprint", fingerprint(gw),
    )  # fmt: skip
    monkeypatch.delenv("RAYZIG_PASSWORD")
    assert code == 0, err
    return ["--key-file", str(key_file)]


@pytest.fixture
def paired(
    owned: GatewayThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """A CLI key file paired as the owner (System)."""
    return pair_cli(capsys, monkeypatch, owned, tmp_path / "owner.json")


def marked(gw: GatewayThread, module_id: int, index: int) -> bool:
    return gw.call(lambda g: g.site.module(module_id).outputs[index].utility_controllable)


def add_user(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    paired: list[str],
    name: str,
    level: str,
) -> None:
    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", PASSWORDS[name])
    assert run_json(capsys, "users", "add", name, "--level", level, *paired)["added"] is True
    monkeypatch.delenv("RAYZIG_NEW_PASSWORD")


# --- utility -----------------------------------------------------------------------------------


def test_utility_marks_and_unmarks_an_output(
    paired: list[str],
    owned: GatewayThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The marking decides what the Utility user may switch; `modules --json` shows it."""
    module_id, index = switchable_output(owned)
    number = index + 1
    assert not marked(owned, module_id, index)
    add_user(capsys, monkeypatch, paired, "utility", "utility")
    grid = pair_cli(
        capsys,
        monkeypatch,
        owned,
        tmp_path / "grid.json",
        user="utility",
        password=PASSWORDS["utility"],
    )

    # Not marked: the Utility user is refused.
    code, _, err = run(capsys, "set", str(module_id), str(number), "on", *grid)
    assert code == cli.EXIT_REFUSED, err

    data = run_json(capsys, "utility", str(module_id), str(number), "on", *paired)
    assert data["module"] == module_id
    assert data["number"] == number
    assert data["utility_controllable"] is True
    assert marked(owned, module_id, index)
    modules = run_json(capsys, "modules", *paired)
    output = next(m for m in modules if m["id"] == module_id)["outputs"][index]
    assert output["utility_controllable"] is True

    # Marked: now it may switch that output (and the gateway logs it as the Utility user's).
    assert run_json(capsys, "set", str(module_id), str(number), "on", *grid)["on"] is True
    assert owned.call(lambda g: g.site.module(module_id).outputs[index].is_on) is True

    code, out, err = run(capsys, "utility", str(module_id), str(number), "off", *paired)
    assert code == 0, err
    name = output["name"]
    assert out.strip() == (
        f"Module {module_id} output {number} ({name}): the Utility user may not switch it."
    )
    assert not marked(owned, module_id, index)
    code, _, err = run(capsys, "set", str(module_id), str(number), "off", *grid)
    assert code == cli.EXIT_REFUSED, err
    code, out, _ = run(capsys, "utility", str(module_id), str(number), "on", *paired)
    assert code == 0
    assert out.strip().endswith("the Utility user may switch it.")


def test_utility_needs_administrator(
    paired: list[str],
    owned: GatewayThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A User (and the Utility user itself) is refused with exit 4; an Administrator may."""
    module_id, index = switchable_output(owned)
    number = str(index + 1)
    for name, level in (("ursula", "user"), ("adam", "administrator"), ("utility", "utility")):
        add_user(capsys, monkeypatch, paired, name, level)
    for name in ("ursula", "utility"):
        key = pair_cli(
            capsys,
            monkeypatch,
            owned,
            tmp_path / f"{name}.json",
            user=name,
            password=PASSWORDS[name],
        )
        code, out, err = run(capsys, "utility", str(module_id), number, "on", *key)
        assert code == cli.EXIT_REFUSED
        assert "does not allow" in err
        assert out == ""
        assert not marked(owned, module_id, index)
    adam = pair_cli(
        capsys, monkeypatch, owned, tmp_path / "adam.json", user="adam", password=PASSWORDS["adam"]
    )
    assert run_json(capsys, "utility", str(module_id), number, "on", *adam)["utility_controllable"]
    assert marked(owned, module_id, index)


def test_utility_usage_and_refusals(
    paired: list[str], owned: GatewayThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "utility", "--help")
    assert code == 0
    assert "Utility user may switch an output" in out
    for argv, expected in (
        (["utility", "1", "0", "on"], cli.EXIT_USAGE),  # outputs are numbered from 1
        (["utility", "1", "1", "maybe"], cli.EXIT_USAGE),
        (["utility", "1", "1"], cli.EXIT_USAGE),
        (["utility", "x", "1", "on"], cli.EXIT_USAGE),
    ):
        code, _, err = run(capsys, *argv, *paired)
        assert code == expected, argv
        assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "utility", "249", "1", "on", *paired)
    assert code == cli.EXIT_REFUSED
    assert "Module 249 does not exist" in err
    module_id, _ = switchable_output(owned)
    outputs = owned.call(lambda g: len(g.site.module(module_id).outputs))
    code, _, err = run(capsys, "utility", str(module_id), str(outputs + 1), "on", *paired)
    assert code == cli.EXIT_REFUSED, err


# --- --i2c-channel -----------------------------------------------------------------------------


def test_i2c_channel_option_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0..15 only, only for a direct I2C connection; mistakes say what to do (exit 1)."""
    key_file = ["--key-file", str(tmp_path / "none.json")]
    i2c = ["--i2c-bus", "1", "--address", "0x42"]
    for value in ("16", "-1", "x"):
        code, _, err = run(capsys, "info", *i2c, "--i2c-channel", value)
        assert code == cli.EXIT_USAGE, value
        assert "--i2c-channel" in err
    code, _, err = run(capsys, "info", "--host", HOST, "--i2c-channel", "1", *key_file)
    assert code == cli.EXIT_USAGE
    assert "the bridge chooses the channel" in err
    code, _, err = run(capsys, "info", "--i2c-channel", "1", *key_file)
    assert code == cli.EXIT_USAGE
    assert "add --i2c-bus and --address" in err
    code, out, _ = run(capsys, "--help")
    assert "--i2c-channel" in out
    assert "use 1 next to it" in " ".join(out.split())


def _connection_of(key_file: Path) -> dict[str, Any]:
    connection: dict[str, Any] = json.loads(key_file.read_text())["connection"]
    return connection


@pytest.fixture
def i2c_gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    """A virtual gateway (owner password set) on simulated bus 1 at 0x42, fake kernel installed."""
    bus = FakeI2CBus(BUS)
    gw = GatewayThread(tmp_path / "gw.json", scrypt_n=SCRYPT_N, i2c=bus)
    with bus.installed():
        gw.start()
        try:
            gw.setup_owner(OWNER_PASSWORD)
            yield gw
        finally:
            gw.stop()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("rayzig-i2c-")]
    assert fake_open_descriptors() == 0


def home_assistant(credentials: ClientCredentials | None = None) -> RayzigClient:
    """A client on link channel 0, as Home Assistant uses local I2C."""
    return RayzigClient(
        I2CConnector(BUS, ADDRESS, channel=0, poll_interval=FAST_POLL),
        credentials,
        backoff_initial=0.05,
        backoff_max=0.2,
        request_timeout=5.0,
    )


async def test_cli_next_to_home_assistant_on_i2c(
    i2c_gateway: GatewayThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On channel 1 the CLI leaves Home Assistant's channel-0 session alone; on 0 it cuts it."""
    gw = i2c_gateway
    pairing = home_assistant()
    identity = await pairing.identify()
    credentials = await pairing.pair(identity, OWNER, OWNER_PASSWORD)
    await pairing.close()
    ha = home_assistant(credentials)
    await ha.connect()
    states: list[ConnectionState] = []
    ha.subscribe_state(states.append)
    key_file = tmp_path / "cli.json"

    async def cli_run(*argv: str) -> tuple[int, str, str]:
        # main() runs its own event loop: in a worker thread, as in its own process.
        return await asyncio.to_thread(run, capsys, *argv)

    try:
        module_id, index = switchable_output(gw)
        monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
        code, _, err = await cli_run(
            "pair", "--i2c-bus", str(BUS), "--address", "0x42", "--i2c-channel", "1",
            "--key-file", str(key_file), "--yes-fingerprint", fingerprint(gw),
        )  # fmt: skip
        monkeypatch.delenv("RAYZIG_PASSWORD")
        assert code == 0, err
        # The key file remembers the channel: the next commands use it without the option.
        assert _connection_of(key_file) == {"i2c_bus": BUS, "address": ADDRESS, "i2c_channel": 1}
        for state in ("on", "off"):
            code, out, err = await cli_run(
                "set", str(module_id), str(index + 1), state, "--key-file", str(key_file), "--json"
            )
            assert code == 0, err
            assert json.loads(out)["on"] is (state == "on")
        code, _, err = await cli_run(
            "utility", str(module_id), str(index + 1), "on", "--key-file", str(key_file)
        )
        assert code == 0, err
        # Home Assistant's session was never interrupted (a round trip on it proves it).
        assert ha.state is ConnectionState.CONNECTED
        module = next(m for m in await ha.list_modules() if m.module_id == module_id)
        assert module.outputs[index].utility_controllable
        assert states == []

        # The same command on channel 0 (the default) ends Home Assistant's session: it
        # reconnects on its own.
        code, _, err = await cli_run("modules", "--key-file", str(key_file), "--i2c-channel", "0")
        assert code == 0, err
        await wait_for(lambda: ConnectionState.BACKOFF in states, what="a cut-off session")
        await wait_for(lambda: ha.state is ConnectionState.CONNECTED, what="a reconnection")
        # An explicit channel is not saved by an ordinary command: the key file keeps 1.
        assert _connection_of(key_file)["i2c_channel"] == 1
    finally:
        await ha.close()


def test_pair_on_channel_0_keeps_the_old_key_file_format(
    i2c_gateway: GatewayThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Channel 0 is the default: it is not written to the key file, and 1 then 0 removes it."""
    key_file = tmp_path / "cli.json"
    options = ["--i2c-bus", str(BUS), "--address", "0x42", "--key-file", str(key_file)]
    monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
    where = ["--yes-fingerprint", fingerprint(i2c_gateway)]
    assert run(capsys, "pair", *options, "--i2c-channel", "1", *where)[0] == 0
    assert _connection_of(key_file)["i2c_channel"] == 1
    # --i2c-channel alone re-pairs over the saved bus and address on another channel.
    assert run(capsys, "pair", "--key-file", str(key_file), "--i2c-channel", "0", *where)[0] == 0
    assert _connection_of(key_file) == {"i2c_bus": BUS, "address": ADDRESS}
    assert run(capsys, "pair", *options, *where)[0] == 0
    assert _connection_of(key_file) == {"i2c_bus": BUS, "address": ADDRESS}
    monkeypatch.delenv("RAYZIG_PASSWORD")
    data = run_json(capsys, "info", "--key-file", str(key_file))
    assert data["paired"] is True

    # A damaged channel in the key file is reported, not used.
    document = json.loads(key_file.read_text())
    document["connection"]["i2c_channel"] = 99
    key_file.write_text(json.dumps(document))
    code, _, err = run(capsys, "modules", "--key-file", str(key_file))
    assert code == cli.EXIT_USAGE
    assert "Bad I2C bus, address or channel" in err
