"""The virtual gateway's state file (PROTOCOL.md §12): a file written by older code still loads.

``fixtures/gateway_state_v1.json`` was written by the virtual gateway before it was split into
``device/`` and ``site/`` (main at b0967dd): users with a throttle, two enrolled clients and a
revoked one, both replay caches, a partial firmware image, an outage, a removed module and a
cleared event log. ``gateway_state_v1.secrets.json`` holds its test-only passwords and the client
keys it enrolled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import AuthenticationError
from rayzig_core.models import FirmwarePart, UserLevel
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway.server import load_state, save_state
from tests.core.conftest import FAST, connector

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
    # Same keys and values all the way down (key order is free).
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads(STATE.read_text())


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
