"""``rayzig users add --modules/--outputs/--read-only``, ``users limit`` and ``users list``, run
in-process against the real virtual gateway: a User's limitation (PROTOCOL.md §7.4) round trip,
with outputs numbered from 1 on the command line and from 0 on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayzig_core import cli
from rayzig_core.models import OutputRef, UserLimitation
from rayzig_core.testing.gateway import GatewayThread
from tests.core.conftest import PASSWORDS, output_state
from tests.core.test_cli import (
    _clean_environment,  # noqa: F401 - autouse fixture: no inherited secrets, no terminal
    fingerprint,
    key_file,  # noqa: F401 - fixture: the key file path (used by paired)
    paired,  # noqa: F401 - fixture: a key file paired as the owner
    run,
    run_json,
    target,
)


def stored(gw: GatewayThread, name: str) -> UserLimitation | None:
    return gw.call(lambda g: g.users[name].limitation)


def names(gw: GatewayThread) -> set[str]:
    return gw.call(lambda g: set(g.users))


@pytest.fixture
def new_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYZIG_NEW_PASSWORD", PASSWORDS["ursula"])


@pytest.mark.usefixtures("new_password")
def test_users_add_limit_list_round_trip(
    paired: list[str],  # noqa: F811 - the fixture imported above
    owned: GatewayThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = run_json(
        capsys, "users", "add", "guest", "--modules", "3", "--outputs", "2:2,2:2",
        "--read-only", *paired,
    )  # fmt: skip
    assert data["limitation"] == {
        "modules": [3],
        "outputs": [{"module": 2, "number": 2, "index": 1}],
        "read_only": True,
        "all_modules": False,
    }
    assert stored(owned, "guest") == UserLimitation((3,), (OutputRef(2, 1),), read_only=True)

    code, text, err = run(capsys, "users", "list", *paired)
    assert code == 0, err
    assert "LIMITED TO" in text
    guest = next(line for line in text.splitlines() if line.startswith("guest"))
    assert guest.split(maxsplit=2)[2] == "modules 3 and outputs 2:2, read-only"
    listed = {user["name"]: user for user in run_json(capsys, "users", "list", *paired)}
    assert listed["guest"]["limitation"]["modules"] == [3]
    assert listed["installer"]["limitation"] is None

    code, text, err = run(capsys, "users", "limit", "guest", "--outputs", "5:1,3:1", *paired)
    assert code == 0, err
    assert text.startswith("User guest is limited to outputs 3:1, 5:1;")
    assert stored(owned, "guest") == UserLimitation(outputs=(OutputRef(3, 0), OutputRef(5, 0)))

    data = run_json(capsys, "users", "limit", "guest", "--read-only", *paired)
    assert data["limitation"]["all_modules"] is True
    assert stored(owned, "guest") == UserLimitation(read_only=True, all_modules=True)
    assert "every module, read-only" in run(capsys, "users", "list", *paired)[1]

    code, text, _ = run(capsys, "users", "limit", "guest", "--unlimited", *paired)
    assert code == 0
    assert "no longer limited" in text
    assert stored(owned, "guest") is None


@pytest.mark.usefixtures("new_password")
def test_limit_options_are_checked_before_anything_is_sent(
    paired: list[str],  # noqa: F811 - the fixture imported above
    owned: GatewayThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_json(capsys, "users", "add", "guest", *paired)["limitation"] is None
    for argv in (
        ["users", "limit", "guest"],
        ["users", "limit", "guest", "--unlimited", "--read-only"],
        ["users", "limit", "guest", "--outputs", "3:0"],
        ["users", "limit", "guest", "--outputs", "3"],
        ["users", "limit", "guest", "--modules", "3,,5"],
        ["users", "limit", "guest", "--modules", "three"],
        ["users", "add", "adam", "--level", "administrator", "--modules", "3"],
    ):
        code, _, err = run(capsys, *argv, *paired)
        assert code == cli.EXIT_USAGE, argv
        assert err.strip(), argv
    assert names(owned) == {"installer", "guest"}
    assert stored(owned, "guest") is None


@pytest.mark.usefixtures("new_password")
def test_a_refused_limitation_leaves_no_unlimited_user(
    paired: list[str],  # noqa: F811 - the fixture imported above
    owned: GatewayThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "users", "add", "guest", "--modules", "999", *paired)
    assert code == cli.EXIT_REFUSED
    assert "Module 999 does not exist" in err
    assert "guest" not in names(owned)
    code, _, err = run(capsys, "users", "limit", "installer", "--read-only", *paired)
    assert code == cli.EXIT_REFUSED
    assert "Only User accounts can be limited" in err


@pytest.mark.usefixtures("new_password")
def test_a_limited_user_on_the_command_line(
    paired: list[str],  # noqa: F811 - the fixture imported above
    owned: GatewayThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run(capsys, "users", "add", "guest", "--outputs", "2:2", *paired)
    assert code == 0, err
    guest = tmp_path / "guest.json"
    monkeypatch.setenv("RAYZIG_PASSWORD", PASSWORDS["ursula"])
    code, _, err = run(
        capsys, "pair", "--user", "guest", *target(owned, guest),
        "--yes-fingerprint", fingerprint(owned),
    )  # fmt: skip
    assert code == 0, err
    as_guest = ["--key-file", str(guest)]
    modules = run_json(capsys, "modules", *as_guest)
    assert [(m["id"], [o["number"] for o in m["outputs"]]) for m in modules] == [(2, [2])]
    before = output_state(owned, 5, 0)
    code, _, err = run(capsys, "set", "5", "1", "on" if not before else "off", *as_guest)
    assert code == cli.EXIT_REFUSED
    assert "Module 5 is outside the limitation of user 'guest'" in err
    assert output_state(owned, 5, 0) is before
    code, text, err = run(capsys, "set", "2", "2", "on", *as_guest)
    assert code == 0, err
    assert "output 2" in text
    # It cannot lift its own limitation.
    code, _, err = run(capsys, "users", "limit", "guest", "--unlimited", *as_guest)
    assert code == cli.EXIT_REFUSED
    assert stored(owned, "guest") == UserLimitation(outputs=(OutputRef(2, 1),))
