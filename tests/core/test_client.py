"""The async client against the real virtual gateway on loopback.

Outage and restore presets, telemetry, firmware versions, paging, push notifications with
unsubscribe, reconnection with capped back-off, prompt failure of waiting requests when access
ends, and ``close()`` leaving nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from rayzig_core.client import RayzigClient
from rayzig_core.errors import ClientRevokedError, ConnectionFailedError, InvalidRequestError
from rayzig_core.models import ConnectionState, EventKind, ModuleKind, RestorePreset, UserLevel
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway
from tests.core.conftest import (
    FAST,
    OWNER,
    OWNER_PASSWORD,
    PASSWORDS,
    SCRYPT_N,
    CountingConnector,
    MitmLink,
    MitmProxy,
    connected,
    connector,
    output_state,
    pair,
    switchable_output,
    wait_for,
)


def module_with_most_outputs(gw: GatewayThread) -> int:
    def find(g: VirtualGateway) -> int:
        mains = [mod for mod in g.site.modules() if mod.kind is ModuleKind.MAINS]
        return max(mains, key=lambda mod: len(mod.outputs)).module_id

    return gw.call(find)


def battery_module(gw: GatewayThread) -> int:
    return gw.call(
        lambda g: next(mod.module_id for mod in g.site.modules() if mod.kind is ModuleKind.BATTERY)
    )


# --- outage and restore presets -------------------------------------------------------------------


async def test_outage_and_restore_apply_each_outputs_preset(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    client = await connected(owned, credentials)
    notices: list[m.Notification] = []
    client.subscribe(notices.append)
    try:
        module_id = module_with_most_outputs(owned)
        module = next(mod for mod in await client.list_modules() if mod.module_id == module_id)
        assert len(module.outputs) >= 3
        plan = [  # (state before the outage, preset, state expected after restore)
            (True, RestorePreset.OFF, False),
            (False, RestorePreset.ON, True),
            (True, RestorePreset.LAST, True),
            (False, RestorePreset.LAST, False),
        ][: len(module.outputs)]
        for index, (on, preset, _) in enumerate(plan):
            await client.set_output(module_id, index, on)
            assert (await client.set_restore_preset(module_id, index, preset)).preset is preset
        cursor = (await client.read_events(module_id, 0)).newest_seq
        battery = battery_module(owned)

        owned.call(lambda g: g.site.power_outage())
        telemetry = await client.get_telemetry(module_id)
        assert telemetry.reachable is False
        assert (await client.get_telemetry(battery)).reachable is True  # battery nodes run on
        with pytest.raises(InvalidRequestError):
            await client.set_output(module_id, 0, on=True)
        with pytest.raises(InvalidRequestError):
            await client.set_restore_preset(module_id, 0, RestorePreset.ON)

        notices.clear()
        owned.call(lambda g: g.site.power_restore())
        assert (await client.get_telemetry(module_id)).reachable is True
        module = next(mod for mod in await client.list_modules() if mod.module_id == module_id)
        for index, (_, preset, expected) in enumerate(plan):
            assert module.outputs[index].is_on is expected, (index, preset)
            assert module.outputs[index].preset is preset

        batch = await client.read_events(module_id, cursor)
        assert [e.kind for e in batch.events] == [EventKind.REPOWER] + [
            EventKind.PRESET_APPLIED
        ] * len(plan)
        applied = [(e.output, e.is_on) for e in batch.events[1:]]
        assert applied == [(index, expected) for index, (_, _, expected) in enumerate(plan)]

        await wait_for(
            lambda: (
                sum(isinstance(n, m.EventsAvailable) and n.module_id == module_id for n in notices)
                >= 1
            ),
            what="EventsAvailable after restore",
        )
        changed = [
            (n.output.index, n.output.is_on)
            for n in notices
            if isinstance(n, m.OutputChanged) and n.module_id == module_id
        ]
        assert changed == applied
        assert all(
            n.cause is EventKind.PRESET_APPLIED for n in notices if isinstance(n, m.OutputChanged)
        )
    finally:
        await client.close()


async def test_telemetry_reports_battery_against_its_minimum(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    async with await connected(owned, credentials) as client:
        module_id = battery_module(owned)
        telemetry = await client.get_telemetry(module_id)
        assert telemetry.battery_percent is not None
        assert telemetry.battery_minimum_percent is not None
        assert telemetry.battery_low is False
        assert 0 <= telemetry.link_quality <= 255
        drop = telemetry.battery_percent - telemetry.battery_minimum_percent
        owned.call(lambda g: g.site.drain_battery(module_id, drop))
        low = await client.get_telemetry(module_id)
        assert low.battery_percent == telemetry.battery_minimum_percent
        assert low.battery_low is True
        batch = await client.read_events(module_id, 0)
        assert batch.events[-1].kind is EventKind.BATTERY_LOW
        mains = await client.get_telemetry(module_with_most_outputs(owned))
        assert mains.battery_percent is None
        assert mains.battery_low is None


async def test_firmware_versions_cover_every_part(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    async with await connected(owned, credentials) as client:
        versions = await client.firmware_versions()
        assert [v.part.name for v in versions] == ["RAYZIG", "RAXMEGA", "RAYDAL", "WBXMEGA", "TFT"]
        assert all(v.version for v in versions)
        assert client.info is not None
        assert client.info.firmware == versions


async def test_module_list_is_paged_for_a_large_site(tmp_path: Path) -> None:
    gw = GatewayThread(tmp_path / "big.json", scrypt_n=SCRYPT_N, module_count=250).start()
    try:
        gw.setup_owner(OWNER_PASSWORD)
        _, credentials = await pair(gw)
        async with await connected(gw, credentials) as client:
            requests = client.stats.requests
            modules = await client.list_modules()
            assert [mod.module_id for mod in modules] == list(range(1, 251))
            assert client.stats.requests - requests > 1  # more than one frame's worth
            assert modules == gw.call(lambda g: g.site.modules())
    finally:
        gw.stop()


# --- notifications -----------------------------------------------------------------------------


async def test_subscribers_get_every_kind_of_notification_until_they_unsubscribe(
    owned: GatewayThread,
) -> None:
    _, credentials = await pair(owned)
    client = await connected(owned, credentials)
    _, other_credentials = await pair(owned)
    other = await connected(owned, other_credentials)
    notices: list[m.Notification] = []
    unsubscribe = client.subscribe(notices.append)
    try:
        module_id, index = switchable_output(owned)
        target = not output_state(owned, module_id, index)
        await other.set_output(module_id, index, target)  # another client acts
        await wait_for(lambda: any(isinstance(n, m.EventsAvailable) for n in notices))
        changed = next(n for n in notices if isinstance(n, m.OutputChanged))
        assert (changed.module_id, changed.output.index, changed.output.is_on) == (
            module_id,
            index,
            target,
        )
        assert changed.cause is EventKind.COMMAND
        available = next(n for n in notices if isinstance(n, m.EventsAvailable))
        assert available.module_id == module_id
        assert available.newest_seq == (await client.read_events(module_id, 0)).newest_seq

        joined = owned.call(
            lambda g: g.site.add_module(kind=ModuleKind.MAINS, name="Garden shed", outputs=2)
        )
        await wait_for(lambda: any(isinstance(n, m.ModuleJoined) for n in notices))
        notice = next(n for n in notices if isinstance(n, m.ModuleJoined))
        assert notice.module.module_id == joined.module_id
        assert notice.module.name == "Garden shed"
        owned.call(lambda g: g.site.remove_module(joined.module_id))
        await wait_for(lambda: any(isinstance(n, m.ModuleLeft) for n in notices))
        left = next(n for n in notices if isinstance(n, m.ModuleLeft))
        assert left.module_id == joined.module_id

        battery = battery_module(owned)
        owned.call(lambda g: g.site.drain_battery(battery, 1))
        await wait_for(lambda: any(isinstance(n, m.TelemetryChanged) for n in notices))

        unsubscribe()
        count = len(notices)
        received = client.stats.notifications
        await other.set_output(module_id, index, not target)
        await wait_for(lambda: client.stats.notifications >= received + 2)
        assert len(notices) == count
        unsubscribe()  # twice is harmless
    finally:
        await client.close()
        await other.close()


async def test_reconnects_with_back_off_after_a_gateway_restart(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    client = await connected(owned, credentials)
    states: list[ConnectionState] = []
    client.subscribe_state(states.append)
    notices: list[m.Notification] = []
    client.subscribe(notices.append)
    try:
        owned.restart()
        await wait_for(lambda: ConnectionState.CONNECTED in states, what="reconnection")
        assert states[0] is ConnectionState.BACKOFF
        assert states[-1] is ConnectionState.CONNECTED
        assert set(states) <= {
            ConnectionState.BACKOFF,
            ConnectionState.CONNECTING,
            ConnectionState.CONNECTED,
        }
        assert client.stats.connects == 2
        assert client.stats.disconnects == 1
        # The new session works and carries notifications again.
        module_id, index = switchable_output(owned)
        await client.set_output(module_id, index, not output_state(owned, module_id, index))
        await wait_for(lambda: any(isinstance(n, m.OutputChanged) for n in notices))
    finally:
        await client.close()
    assert client.state is ConnectionState.CLOSED


async def test_back_off_grows_exponentially_up_to_its_cap(
    owned: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, credentials = await pair(owned)
    # The back-off the client asks for, not wall-clock gaps (which a busy machine stretches).
    delays: list[float] = []
    real_wait = RayzigClient._wait_back_off

    async def recording_wait(self: RayzigClient, delay: float) -> None:
        delays.append(delay)
        await real_wait(self, delay)

    monkeypatch.setattr(RayzigClient, "_wait_back_off", recording_wait)
    client = RayzigClient(
        CountingConnector(owned.port),
        credentials,
        backoff_initial=0.04,
        backoff_max=0.16,
        request_timeout=2.0,
    )
    await client.connect()
    try:
        owned.stop()
        await wait_for(lambda: len(delays) >= 6, what="reconnection attempts")
        assert client.state in (ConnectionState.BACKOFF, ConnectionState.CONNECTING)
        assert client.stats.connect_failures >= 4
        # 0.04, 0.08, 0.16, then capped at 0.16 s, each with ±20 % jitter.
        for delay, nominal in zip(delays, (0.04, 0.08, 0.16, 0.16, 0.16, 0.16), strict=False):
            assert nominal * 0.8 <= delay <= nominal * 1.2, delays
        owned.start()
        await wait_for(lambda: client.state is ConnectionState.CONNECTED, what="reconnected")
        assert (await client.get_info()).user == OWNER
    finally:
        await client.close()


# --- requests waiting when access ends; close() -------------------------------------------------


async def test_request_waiting_for_reconnection_fails_at_once_when_its_user_is_deleted(
    owned: GatewayThread, proxy_factory: Callable[[int], Awaitable[MitmProxy]]
) -> None:
    _, owner_credentials = await pair(owned)
    owner = await connected(owned, owner_credentials)
    await owner.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
    _, credentials = await pair(owned, "ursula", PASSWORDS["ursula"])
    proxy = await proxy_factory(owned.port)
    # A deadline far beyond the test's: the request can only end early, by the revocation.
    client = await connected(proxy.port, credentials, request_timeout=3600.0)

    def swallow(link: MitmLink, frame: bytes) -> bytes | None:
        return None if link is proxy.links[0] else frame  # the request never arrives

    proxy.client_hook = swallow
    module_id, index = switchable_output(owned)
    seen = len(proxy.links[0].from_client)
    pending = asyncio.create_task(client.set_output(module_id, index, on=True))
    try:
        await wait_for(lambda: len(proxy.links[0].from_client) > seen, what="the request sent")
        await owner.delete_user("ursula")
        with pytest.raises(ClientRevokedError):
            await asyncio.wait_for(pending, 600)
        assert client.state is ConnectionState.AUTH_FAILED
    finally:
        pending.cancel()
        await client.close()
        await owner.close()


async def test_system_user_deleting_itself_gets_its_answer(owned: GatewayThread) -> None:
    _, owner_credentials = await pair(owned)
    async with await connected(owned, owner_credentials) as owner:
        await owner.add_user("sybil", UserLevel.SYSTEM, PASSWORDS["sybil"])
    _, credentials = await pair(owned, "sybil", PASSWORDS["sybil"])
    client = await connected(owned, credentials)
    try:
        await asyncio.wait_for(client.delete_user("sybil"), 3)
        assert "sybil" not in owned.call(lambda g: list(g.users))
        await wait_for(lambda: client.state is ConnectionState.AUTH_FAILED, what="AUTH_FAILED")
        with pytest.raises(ClientRevokedError):
            await client.get_info()
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("name", "level"), [("adam", UserLevel.ADMINISTRATOR), ("ursula", UserLevel.USER)]
)
async def test_any_account_may_delete_itself(
    owned: GatewayThread, name: str, level: UserLevel
) -> None:
    """PROTOCOL.md §7.3 (revision 2): an enrolled session deletes its own account, keys and all."""
    _, owner_credentials = await pair(owned)
    async with await connected(owned, owner_credentials) as owner:
        await owner.add_user(name, level, PASSWORDS[name])
    _, credentials = await pair(owned, name, PASSWORDS[name])
    client = await connected(owned, credentials)
    try:
        await asyncio.wait_for(client.delete_user(name), 3)
        assert owned.call(lambda g: sorted(g.users)) == [OWNER]
        assert not owned.call(lambda g: [c for c in g.clients.values() if c.user == name])
        await wait_for(lambda: client.state is ConnectionState.AUTH_FAILED, what="AUTH_FAILED")
    finally:
        await client.close()


async def test_the_last_system_account_cannot_delete_itself(owned: GatewayThread) -> None:
    _, owner_credentials = await pair(owned)
    async with await connected(owned, owner_credentials) as owner:
        with pytest.raises(InvalidRequestError, match="last System user"):
            await owner.delete_user(OWNER)
    assert OWNER in owned.call(lambda g: list(g.users))


async def test_close_fails_requests_waiting_for_a_connection(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    # A deadline far beyond the test's: the request can only end early, by close().
    client = await connected(owned, credentials, request_timeout=3600.0)
    owned.stop()
    await wait_for(lambda: client.state is not ConnectionState.CONNECTED, what="link lost")
    pending = asyncio.create_task(client.get_info())
    await asyncio.sleep(0)  # one turn of the loop: the request starts waiting for a connection
    assert not pending.done()
    await client.close()
    with pytest.raises(ConnectionFailedError):
        await asyncio.wait_for(pending, 600)


def client_tasks() -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current}


async def test_close_cancels_and_joins_everything_it_started(owned: GatewayThread) -> None:
    assert client_tasks() == set()
    _, credentials = await pair(owned)
    client = await connected(owned, credentials)
    client.subscribe(lambda notice: None)
    await client.list_modules()
    assert client_tasks()  # the supervisor and the session reader
    await client.close()
    assert client_tasks() == set()
    assert client.state is ConnectionState.CLOSED
    with pytest.raises(ConnectionFailedError):
        await client.get_info()
    with pytest.raises(Exception, match="closed"):
        await client.connect()

    # Also when closed in the middle of backing off from an unreachable gateway.
    client = await connected(owned, credentials)
    owned.stop()
    await wait_for(lambda: client.stats.connect_failures >= 1, what="a failed reconnection")
    await client.close()
    assert client_tasks() == set()
    assert client.state is ConnectionState.CLOSED


async def test_stats_count_what_happened(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    client = RayzigClient(connector(owned), credentials, **FAST)
    await client.connect()
    try:
        await client.list_modules()
        with pytest.raises(InvalidRequestError):
            await client.add_user("x" * 40, UserLevel.USER, PASSWORDS["adam"])
        assert client.stats.connects == 1
        assert client.stats.requests == 2
        assert client.stats.errors == 1
        assert client.stats.retries == 0
        assert client.stats.disconnects == 0
    finally:
        await client.close()


async def test_same_client_pairs_again_after_its_key_was_revoked(owned: GatewayThread) -> None:
    identity, credentials = await pair(owned)
    client = RayzigClient(connector(owned), credentials, **FAST)
    try:
        await client.connect()
        await client.revoke_client(0)
        await wait_for(lambda: client.state is ConnectionState.AUTH_FAILED, what="AUTH_FAILED")
        with pytest.raises(ClientRevokedError):
            await client.get_info()

        renewed = await client.pair(identity, OWNER, OWNER_PASSWORD)
        assert renewed.client_fingerprint != credentials.client_fingerprint  # a fresh key
        assert client.credentials == renewed
        info = await client.connect()
        assert info.user == OWNER
        assert client.state is ConnectionState.CONNECTED
        assert client.auth_error is None
        assert len(await client.list_modules()) == 12
    finally:
        await client.close()
    assert client_tasks() == set()


async def test_concurrent_requests_get_their_own_answers(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    async with await connected(owned, credentials) as client:
        expected = owned.call(lambda g: {mod.module_id: mod.telemetry for mod in g.site.modules()})
        ids = list(expected) * 3
        answers = await asyncio.gather(*(client.get_telemetry(module_id) for module_id in ids))
        assert answers == [expected[module_id] for module_id in ids]
        assert client.stats.retries == 0
