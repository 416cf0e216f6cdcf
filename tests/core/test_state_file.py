"""The virtual gateway's state file (PROTOCOL.md §12): a file written by older code still loads.

``fixtures/gateway_state_v1.json`` was written by the virtual gateway before it was split into
``device/`` and ``site/`` (main at b0967dd): users with a throttle, two enrolled clients and a
revoked one, both replay caches, a partial firmware image, an outage, a removed module and a
cleared event log. ``gateway_state_v1.secrets.json`` holds its test-only passwords and the client
keys it enrolled.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rayzig_core import cli
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import AuthenticationError
from rayzig_core.firmware import generate_signing_key
from rayzig_core.models import EventKind, FirmwarePart, ModuleKind, UserLevel
from rayzig_core.storage import write_atomic
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import GatewayStateError, credentials, load_state, save_state
from tests.core.conftest import FAST, connector
from tests.core.test_cli import _clean_environment  # noqa: F401 - autouse: no inherited secrets

FIXTURES = Path(__file__).parent / "fixtures"
STATE = FIXTURES / "gateway_state_v1.json"
SECRETS: dict[str, Any] = json.loads((FIXTURES / "gateway_state_v1.secrets.json").read_text())


def _copy(tmp_path: Path) -> Path:
    """The fixture where the gateway may write it, readable by its owner only (it holds keys)."""
    path = tmp_path / "gw.json"
    shutil.copyfile(STATE, path)
    path.chmod(0o600)
    return path


def test_an_old_state_file_loads_and_saves_the_same_content(tmp_path: Path) -> None:
    gateway = load_state(_copy(tmp_path))
    assert gateway is not None
    save_state(gateway, tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    # Keys added since (§6.3, §6.5) are saved empty; the rest are the same keys and values all the
    # way down (key order is free).
    assert again.pop("unknown_names") == []
    assert again.pop("password_checks") == []
    assert again == json.loads(STATE.read_text())


async def test_an_old_state_file_serves_its_users_clients_logs_and_firmware(
    tmp_path: Path,
) -> None:
    clients = SECRETS["clients"]
    gw = GatewayThread(_copy(tmp_path)).start()
    try:
        owner = ClientCredentials.from_dict(clients["installer"])
        async with RayzigClient(connector(gw), owner, **FAST) as client:
            await client.connect()
            info = client.info
            assert info is not None
            assert (info.serial, info.user, info.level) == (owner.serial, "installer", owner.level)
            users = {user.name: user.level for user in await client.list_users()}
            assert users == {
                "installer": UserLevel.SYSTEM,
                "ursula": UserLevel.USER,
                "adam": UserLevel.ADMINISTRATOR,
            }
            assert [c.client_id for c in await client.list_clients()] == [1, 3]
            assert [m.module_id for m in await client.list_modules()] == [1, 3, 4, 5, 6, 7]
            cleared = await client.read_events(3, 0)
            assert [e.seq for e in cleared.events] == [10]  # numbering went on after a clear
            assert cleared.oldest_seq == 10
            # Records keep the actor they were logged with, also the simulator's former name.
            gate = await client.read_events(1, 0)
            actors = {e.user for e in gate.events if e.kind is EventKind.COMMAND}
            assert actors == {"installer", "automation"}
        # The revoked client stays out; enrolled keys still open sessions.
        revoked = ClientCredentials.from_dict(clients["revoked_ursula"])
        with pytest.raises(AuthenticationError):
            await RayzigClient(connector(gw), revoked, **FAST).connect()
        adam = ClientCredentials.from_dict(clients["adam"])
        async with RayzigClient(connector(gw), adam, **FAST) as client:
            await client.connect()
            assert client.info is not None
            assert client.info.user == "adam"
        # Verifiers and throttles came through: a password pairs, client ids are not reused.
        pairing = RayzigClient(connector(gw), **FAST)
        identity = await pairing.identify()
        ursula = await pairing.pair(identity, "ursula", SECRETS["passwords"]["ursula"])
        await pairing.close()
        assert ursula.client_id == 4
        assert gw.call(lambda g: g.users["adam"].throttle.failures) == 4
        partial = gw.call(lambda g: g.firmware.progress(FirmwarePart.RAYZIG))
        assert partial == (FirmwarePart.RAYZIG, 6000, 10240)
    finally:
        gw.stop()


def _edited(tmp_path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    """A copy of the fixture with ``edit`` applied to its JSON, private as the gateway writes it."""
    data = json.loads(STATE.read_text())
    edit(data)
    path = tmp_path / "edited.json"
    write_atomic(path, json.dumps(data).encode())
    return path


def _legacy(data: dict[str, Any]) -> None:
    """Drop every key that older states lack (each was added later with a safe default)."""
    del data["default_folded_verifier"], data["next_client_id"], data["pre_auth_replay_cache"]
    del data["site"]["next_module_id"], data["firmware"]["in_progress"]
    for user in data["users"]:
        del user["verifier"]["kdf"]


def test_keys_older_states_lack_take_their_defaults(tmp_path: Path) -> None:
    gateway = load_state(_edited(tmp_path, _legacy))
    assert gateway is not None
    # The folded default verifier falls back to the plain one; counters go on after the highest.
    accounts = gateway.accounts
    assert accounts.default_folded_verifier == accounts.default_verifier
    assert accounts.next_client_id == 4
    assert gateway.site.add_module(kind=ModuleKind.MAINS, name="Porch").module_id == 8
    assert not gateway.replay.pre_auth
    assert gateway.firmware.progress(FirmwarePart.RAYZIG) is None
    assert credentials.check_verifier(
        gateway.users["ursula"].verifier, SECRETS["passwords"]["ursula"]
    )


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d.update(format=2), "format 2, expected 1"),
        (lambda d: d.pop("serial"), "missing field 'serial'"),
        (lambda d: d["users"][1]["verifier"].update(digest="00"), "digest must be 16 to 64"),
        (lambda d: d["clients"][0].update(id="1"), "field 'clients.id' has a wrong type"),
        (lambda d: d["site"]["modules"][0].update(link_quality=256), "link_quality must be"),
        (lambda d: d["firmware"].update(trusted_keys=[]), "trusted keys are one or more"),
        (lambda d: d["replay_cache"].append(["00", 1, "zz"]), "replay cache entry 7"),
    ],
)
def test_a_damaged_state_file_is_refused_naming_the_file_and_what_is_wrong(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], why: str
) -> None:
    path = _edited(tmp_path, edit)
    before = path.read_bytes()
    with pytest.raises(GatewayStateError) as caught:
        load_state(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is damaged (")
    assert why in message
    assert "restore it from a backup" in message
    assert isinstance(caught.value, ValueError)  # what load_state has always raised
    assert path.read_bytes() == before  # nothing is replaced


def test_a_damaged_secret_is_never_echoed(tmp_path: Path) -> None:
    data = json.loads(STATE.read_text())
    secret = data["static_private"]
    path = _edited(tmp_path, lambda d: d.update(static_private=secret[:-1] + "z"))
    with pytest.raises(GatewayStateError) as caught:
        load_state(path)
    assert "static_private" in str(caught.value)
    assert secret[:-1] not in str(caught.value)


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_a_state_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    path.chmod(0o644)
    with pytest.raises(GatewayStateError, match="chmod 600"):
        load_state(path)


@pytest.mark.parametrize("keep_old_key", [True, False])
def test_cli_trust_update_key_on_a_saved_state_verifies_the_partial_image_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keep_old_key: bool
) -> None:
    path = _copy(tmp_path)
    old_key = json.loads(STATE.read_text())["firmware"]["trusted_keys"][0]
    new_key = generate_signing_key()[1].hex()
    trust = ["--trust-update-key", new_key]
    if keep_old_key:
        trust += ["--trust-update-key", old_key]
    code = cli.main(
        ["virtual-gateway", "--port", "0", "--state", str(path), *trust, "--run-for", "0.1"]
    )
    assert code == 0, capsys.readouterr().err
    gateway = load_state(path)
    assert gateway is not None
    assert set(gateway.firmware.trusted_keys) == {bytes.fromhex(k) for k in trust[1::2]}
    partial = gateway.firmware.progress(FirmwarePart.RAYZIG)
    assert partial == ((FirmwarePart.RAYZIG, 6000, 10240) if keep_old_key else None)
