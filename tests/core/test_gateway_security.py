"""Security behaviour of the virtual gateway and the client over real loopback sockets.

First contact and fingerprints, the factory password, the password policy, throttling, key-only
sessions, revocation, a changed gateway key, replay/tamper/truncation and idempotent retries.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import (
    ClientRevokedError,
    ConnectionFailedError,
    GatewayKeyChangedError,
    InvalidCredentialsError,
    NotFoundError,
    PasswordChangeRequiredError,
    PasswordRejectedError,
    ThrottledError,
)
from rayzig_core.models import ConnectionState, FirmwarePart, RestorePreset, UserLevel
from rayzig_core.password_policy import check_password
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import FrameKind, StreamDeframer, length_prefixed
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway
from tests.core.conftest import (
    FAST,
    HOST,
    OWNER,
    OWNER_PASSWORD,
    PASSWORDS,
    SCRYPT_N,
    CountingConnector,
    MitmLink,
    MitmProxy,
    RawSession,
    commands,
    connected,
    connector,
    output_state,
    pair,
    stored,
    switchable_output,
    wait_for,
)

ProxyFactory = Callable[[int], Awaitable[MitmProxy]]


def default_password(gw: GatewayThread) -> str:
    assert gw.factory is not None
    return gw.factory.default_password


# --- first contact and factory state ----------------------------------------------------------


async def test_first_contact_reports_the_gateways_fingerprint_and_factory_state(
    gateway: GatewayThread,
) -> None:
    identity = await RayzigClient(connector(gateway)).identify()

    assert identity.fingerprint == gateway.call(lambda g: g.fingerprint)
    assert identity.public_key == gateway.call(lambda g: g.public_key)
    assert identity.factory_state is True
    assert identity.serial == gateway.call(lambda g: g.serial)
    assert identity.protocol_version == m.PROTOCOL_VERSION
    # First contact enrols nothing.
    assert gateway.call(lambda g: dict(g.clients)) == {}


async def test_factory_password_only_sets_a_new_password(gateway: GatewayThread) -> None:
    client = RayzigClient(connector(gateway))
    identity = await client.identify()

    with pytest.raises(PasswordChangeRequiredError):
        await client.pair(identity, OWNER, default_password(gateway))
    assert gateway.call(lambda g: dict(g.clients)) == {}
    assert client.credentials is None

    await client.change_password(
        identity.public_key, OWNER, default_password(gateway), OWNER_PASSWORD
    )
    after = await client.identify()
    assert after.factory_state is False
    # The default password is gone for good.
    with pytest.raises(InvalidCredentialsError):
        await client.pair(after, OWNER, default_password(gateway))
    credentials = await client.pair(after, OWNER, OWNER_PASSWORD)
    assert credentials.level is UserLevel.SYSTEM
    assert credentials.user == OWNER
    async with await connected(gateway, credentials) as session:
        assert len(await session.list_modules()) == 12


AUTHENTICATED_REQUESTS: list[m.Request] = [
    m.GetInfo(),
    m.ListModules(0),
    m.SetOutput(1, 0, on=True),
    m.SetRestorePreset(1, 0, RestorePreset.ON),
    m.GetTelemetry(1),
    m.ReadEvents(1, 0, 10),
    m.ListUsers(),
    m.AddUser("mallory", UserLevel.SYSTEM, PASSWORDS["sybil"]),
    m.DeleteUser(OWNER),
    m.ListClients(),
    m.RevokeClient(1),
    m.SetUtilityOutput(1, 0, controllable=True),
    m.GetFirmware(),
    m.FirmwareBegin(b"x", b"y"),
    m.FirmwareChunk(FirmwarePart.TFT, 0, b"x", 0),
    m.FirmwareCommit(FirmwarePart.TFT),
]


async def test_unpaired_session_gets_only_not_authenticated(owned: GatewayThread) -> None:
    # (In factory state every such request gets PASSWORD_CHANGE_REQUIRED instead: test_hardening.)
    gateway = owned
    before = gateway.call(lambda g: json.dumps(stored(g.site.state()), sort_keys=True))
    session = await RawSession.open(gateway.port)
    try:
        assert session.hello.factory_state is False
        assert session.hello.client_enrolled is False
        assert await session.request(1, m.Ping()) == m.Ok()
        for request_id, request in enumerate(AUTHENTICATED_REQUESTS, start=2):
            response = await session.request(request_id, request)
            assert isinstance(response, m.ErrorResponse), request
            assert response.code is m.ErrorCode.NOT_AUTHENTICATED, request
    finally:
        await session.close()
    assert gateway.call(lambda g: json.dumps(stored(g.site.state()), sort_keys=True)) == before
    assert gateway.call(lambda g: sorted(g.users)) == [OWNER]


async def test_account_that_must_change_its_password_gets_password_change_required(
    owned: GatewayThread,
) -> None:
    _, credentials = await pair(owned)

    def force(g: VirtualGateway) -> None:
        g.users[OWNER].must_change = True

    owned.call(force)
    session = await RawSession.keyed(owned.port, credentials)
    try:
        assert session.hello.client_enrolled is True
        assert await session.request(1, m.Ping()) == m.Ok()
        for request_id, request in enumerate(AUTHENTICATED_REQUESTS, start=2):
            response = await session.request(request_id, request)
            assert isinstance(response, m.ErrorResponse), request
            assert response.code is m.ErrorCode.PASSWORD_CHANGE_REQUIRED, request
    finally:
        await session.close()
    client = RayzigClient(connector(owned), credentials, **FAST)
    with pytest.raises(PasswordChangeRequiredError):
        await client.connect()
    assert client.state is ConnectionState.AUTH_FAILED
    await client.close()


@pytest.mark.parametrize(
    ("new_password", "reason"),
    [
        ("short", "too_short"),
        ("my rayzig gateway at the cottage", "contains_product_name"),
        ("the installer walked purple giraffes home", "contains_user_name"),
        ("passwordpassword", "common"),
        ("abcdefghijklmnopqrstu", "sequential"),
        ("aaaaaaaaaaaaaaaaaaaa", "repetitive"),
    ],
)
async def test_policy_refusals_carry_reasons(
    gateway: GatewayThread, new_password: str, reason: str
) -> None:
    client = RayzigClient(connector(gateway))
    identity = await client.identify()
    with pytest.raises(PasswordRejectedError) as caught:
        await client.change_password(
            identity.public_key, OWNER, default_password(gateway), new_password
        )
    assert reason in caught.value.reasons
    # The client-side policy explains the same refusal before sending it.
    serial = identity.serial
    local = tuple(v.value for v in check_password(new_password, user_name=OWNER, serial=serial))
    assert caught.value.reasons == local
    # Nothing changed: still factory state, the refused password does not work.
    assert (await client.identify()).factory_state is True
    with pytest.raises(PasswordChangeRequiredError):
        await client.pair(identity, OWNER, default_password(gateway))


async def test_new_password_equal_to_the_default_is_refused(gateway: GatewayThread) -> None:
    client = RayzigClient(connector(gateway))
    identity = await client.identify()
    default = default_password(gateway)
    with pytest.raises(PasswordRejectedError) as caught:
        await client.change_password(identity.public_key, OWNER, default, default)
    assert "default_password" in caught.value.reasons
    assert default not in str(caught.value)
    assert (await client.identify()).factory_state is True


async def test_add_user_applies_the_policy_with_the_new_users_name(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    async with await connected(owned, credentials) as client:
        with pytest.raises(PasswordRejectedError) as caught:
            await client.add_user("gardener", UserLevel.USER, "the gardener plants tall sunflowers")
        assert caught.value.reasons == ("contains_user_name",)
        assert "gardener" not in [u.name for u in await client.list_users()]


# --- throttling -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def stopped_reconnecting(client: RayzigClient) -> None:
    """Wait until ``client`` can never try again: no reconnection task left (not a time span)."""
    await wait_for(
        lambda: client._supervisor is None or client._supervisor.done(),
        what="the client to give up reconnecting",
    )


async def test_repeated_failures_are_throttled_even_for_the_right_password(
    owned: GatewayThread,
) -> None:
    clock = FakeClock()
    owned.call(lambda g: setattr(g, "clock", clock))
    owned.call(lambda g: setattr(g, "throttled_answer_delay", 0.0))  # the timing is not tested here
    client = RayzigClient(connector(owned))
    identity = await client.identify()
    for _ in range(4):
        with pytest.raises(InvalidCredentialsError):
            await client.pair(identity, OWNER, "wrong wrong wrong wrong")
    with pytest.raises(ThrottledError) as caught:
        await client.pair(identity, OWNER, OWNER_PASSWORD)
    assert 0 < caught.value.retry_after <= 1.0
    assert owned.call(lambda g: dict(g.clients)) == {}
    # Once the delay has passed the right password works and resets the count.
    clock.now += caught.value.retry_after + 0.05
    await client.pair(identity, OWNER, OWNER_PASSWORD)
    assert owned.call(lambda g: g.users[OWNER].throttle.failures) == 0


async def test_throttle_backs_off_exponentially_and_survives_a_restart(
    owned: GatewayThread,
) -> None:
    clock = FakeClock()
    owned.call(lambda g: setattr(g, "clock", clock))
    owned.call(lambda g: setattr(g, "throttled_answer_delay", 0.0))  # the timing is not tested here
    client = RayzigClient(connector(owned))
    identity = await client.identify()
    for _ in range(4):
        with pytest.raises(InvalidCredentialsError):
            await client.pair(identity, OWNER, "wrong wrong wrong wrong")
    delays = []
    for _ in range(4):
        with pytest.raises(ThrottledError) as caught:
            await client.pair(identity, OWNER, OWNER_PASSWORD)
        delays.append(caught.value.retry_after)
        clock.now += caught.value.retry_after
        with pytest.raises(InvalidCredentialsError):
            await client.pair(identity, OWNER, "wrong wrong wrong wrong")
    assert delays == [1.0, 2.0, 4.0, 8.0]
    blocked_for = 16.0 - (time.time() - clock.now)  # the gateway now uses the real clock

    owned.restart()
    identity = await client.identify()
    with pytest.raises(ThrottledError) as caught:
        await client.pair(identity, OWNER, OWNER_PASSWORD)
    assert blocked_for - 5 < caught.value.retry_after <= blocked_for
    assert owned.call(lambda g: g.users[OWNER].throttle.failures) == 8


async def test_recovery_secret_resets_the_system_password(owned: GatewayThread) -> None:
    assert owned.factory is not None
    client = RayzigClient(connector(owned))
    identity = await client.identify()
    new_password = "amber kettles sing to sleepy lighthouses"
    with pytest.raises(InvalidCredentialsError):
        await client.recover_password(identity.public_key, "0000-0000-0000-0000-0000", new_password)
    # Typed with lower case and spaces: still the same secret.
    typed = owned.factory.recovery_secret.lower().replace("-", " ")
    await client.recover_password(identity.public_key, typed, new_password)
    with pytest.raises(InvalidCredentialsError):
        await client.pair(identity, OWNER, OWNER_PASSWORD)
    await client.pair(identity, OWNER, new_password)


# --- key-only sessions ---------------------------------------------------------------------------


async def test_paired_client_connects_with_keys_only_and_never_keeps_the_password(
    owned: GatewayThread, tmp_path: Path
) -> None:
    pairing_client = RayzigClient(connector(owned))
    identity = await pairing_client.identify()
    credentials = await pairing_client.pair(identity, OWNER, OWNER_PASSWORD)
    assert OWNER_PASSWORD not in repr(vars(pairing_client))

    stored = credentials.to_dict()
    text = json.dumps(stored)
    assert OWNER_PASSWORD not in text
    assert OWNER_PASSWORD not in repr(credentials)
    assert credentials.client_private_key.hex() not in repr(credentials)
    assert set(stored) == {
        "client_private_key", "gateway_public_key", "serial", "user", "level", "client_id"
    }  # fmt: skip
    # The gateway stores a verifier, not the password either.
    owned.restart()
    assert OWNER_PASSWORD not in (tmp_path / "gw.json").read_text()

    restored = ClientCredentials.from_dict(json.loads(text))
    assert restored == credentials
    client = RayzigClient(connector(owned), restored, **FAST)
    info = await client.connect()
    try:
        assert info.user == OWNER
        assert info.level is UserLevel.SYSTEM
        assert info.fingerprint == identity.fingerprint
        assert client.state is ConnectionState.CONNECTED
        module_id, index = switchable_output(owned)
        before = output_state(owned, module_id, index)
        result = await client.set_output(module_id, index, not before)
        assert result.is_on is (not before)
        assert output_state(owned, module_id, index) is (not before)
    finally:
        await client.close()


async def test_every_session_has_fresh_ephemeral_keys(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    hashes = set()
    for _ in range(3):
        session = await RawSession.keyed(owned.port, credentials)
        hashes.add(session.channel.handshake_hash)
        await session.close()
    assert len(hashes) == 3


# --- revocation -------------------------------------------------------------------------------


def live_links(gw: GatewayThread, user: str) -> int:
    """Authenticated links of ``user`` the gateway still serves."""
    return gw.call(
        lambda g: sum(1 for c in g._connections if c.client is not None and c.client.user == user)
    )


async def test_deleting_a_user_ends_its_session_at_once_and_for_good(
    owned: GatewayThread,
) -> None:
    _, owner_credentials = await pair(owned)
    owner = await connected(owned, owner_credentials)
    await owner.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
    _, ursula_credentials = await pair(owned, "ursula", PASSWORDS["ursula"])
    counting = CountingConnector(owned.port)
    ursula = RayzigClient(counting, ursula_credentials, **FAST)
    try:
        await ursula.connect()
        await ursula.list_modules()
        assert live_links(owned, "ursula") == 1

        await owner.delete_user("ursula")
        assert live_links(owned, "ursula") == 0  # closed before the answer was sent

        await wait_for(lambda: ursula.state is ConnectionState.AUTH_FAILED, what="AUTH_FAILED")
        assert isinstance(ursula.auth_error, ClientRevokedError)
        with pytest.raises(ClientRevokedError):
            await ursula.list_modules()
        attempts = counting.attempts
        await stopped_reconnecting(ursula)  # an authentication failure is final
        assert counting.attempts == attempts
        assert ursula.state is ConnectionState.AUTH_FAILED

        fresh = RayzigClient(connector(owned), ursula_credentials, **FAST)
        with pytest.raises(ClientRevokedError):
            await fresh.connect()
        await fresh.close()
        assert "ursula" not in [c.user for c in await owner.list_clients()]
        assert owner.state is ConnectionState.CONNECTED
    finally:
        await ursula.close()
        await owner.close()


async def test_revoking_its_own_key_ends_the_clients_access(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    _, other_credentials = await pair(owned)
    counting = CountingConnector(owned.port)
    client = RayzigClient(counting, credentials, **FAST)
    other = await connected(owned, other_credentials)
    try:
        await client.connect()
        await client.revoke_client(0)
        assert credentials.client_id not in owned.call(lambda g: list(g.clients))
        with pytest.raises(ClientRevokedError):
            await client.get_info()
        await wait_for(lambda: client.state is ConnectionState.AUTH_FAILED, what="AUTH_FAILED")
        assert counting.attempts == 1, "a revoked client must not try to reconnect"
        fresh = RayzigClient(connector(owned), credentials, **FAST)
        with pytest.raises(ClientRevokedError):
            await fresh.connect()
        await fresh.close()
        # The same user's other client is untouched.
        assert (await other.get_info()).user == OWNER
        assert other.stats.disconnects == 0
    finally:
        await client.close()
        await other.close()


async def test_administrator_revokes_another_client_by_id(owned: GatewayThread) -> None:
    _, owner_credentials = await pair(owned)
    owner = await connected(owned, owner_credentials)
    await owner.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
    _, ursula_credentials = await pair(owned, "ursula", PASSWORDS["ursula"])
    ursula = await connected(owned, ursula_credentials)
    try:
        listed = {c.client_id: c for c in await owner.list_clients()}
        assert listed[ursula_credentials.client_id].user == "ursula"
        assert listed[ursula_credentials.client_id].fingerprint == (
            ursula_credentials.client_fingerprint
        )
        with pytest.raises(NotFoundError):
            await owner.revoke_client(9999)

        await owner.revoke_client(ursula_credentials.client_id)
        assert live_links(owned, "ursula") == 0
        await wait_for(lambda: ursula.state is ConnectionState.AUTH_FAILED, what="AUTH_FAILED")
        with pytest.raises(ClientRevokedError):
            await ursula.get_info()
        assert ursula_credentials.client_id not in [c.client_id for c in await owner.list_clients()]
        # The user itself still exists and may pair again.
        _, again = await pair(owned, "ursula", PASSWORDS["ursula"])
        async with await connected(owned, again) as renewed:
            assert (await renewed.get_info()).user == "ursula"
        assert owner.stats.disconnects == 0
    finally:
        await ursula.close()
        await owner.close()


# --- a changed gateway key -----------------------------------------------------------------------


@pytest.fixture
def other_gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    gw = GatewayThread(tmp_path / "other.json", scrypt_n=SCRYPT_N).start()
    gw.setup_owner(OWNER_PASSWORD)
    try:
        yield gw
    finally:
        gw.stop()


async def test_changed_gateway_key_is_refused_with_both_fingerprints(
    owned: GatewayThread, other_gateway: GatewayThread
) -> None:
    identity, credentials = await pair(owned)
    other_fingerprint = other_gateway.call(lambda g: g.fingerprint)
    counting = CountingConnector(other_gateway.port)
    client = RayzigClient(counting, credentials, **FAST)
    try:
        with pytest.raises(GatewayKeyChangedError) as caught:
            await client.connect()
        assert caught.value.pinned_fingerprint == identity.fingerprint
        assert caught.value.presented_fingerprint == other_fingerprint
        assert identity.fingerprint != other_fingerprint
        assert client.state is ConnectionState.AUTH_FAILED
        assert client.credentials == credentials  # never re-pinned
        attempts = counting.attempts
        with pytest.raises(GatewayKeyChangedError):
            await client.get_info()
        await stopped_reconnecting(client)
        assert counting.attempts == attempts
        assert other_gateway.call(lambda g: dict(g.clients)) == {}
    finally:
        await client.close()

    # Pairing against a pinned identity refuses the other gateway before enrolling anything.
    pairing = RayzigClient(connector(other_gateway))
    with pytest.raises(GatewayKeyChangedError):
        await pairing.pair(identity, OWNER, OWNER_PASSWORD)
    assert other_gateway.call(lambda g: dict(g.clients)) == {}


async def test_gateway_replaced_under_a_connected_client_stops_it(
    owned: GatewayThread, tmp_path: Path
) -> None:
    identity, credentials = await pair(owned)
    counting = CountingConnector(owned.port)
    client = RayzigClient(counting, credentials, **FAST)
    await client.connect()
    port = owned.port
    owned.stop()
    impostor = GatewayThread(tmp_path / "impostor.json", scrypt_n=SCRYPT_N, port=port).start()
    try:
        await wait_for(lambda: client.state is ConnectionState.AUTH_FAILED, what="AUTH_FAILED")
        error = client.auth_error
        assert isinstance(error, GatewayKeyChangedError)
        assert error.pinned_fingerprint == identity.fingerprint
        assert error.presented_fingerprint == impostor.call(lambda g: g.fingerprint)
        attempts = counting.attempts
        await stopped_reconnecting(client)
        assert counting.attempts == attempts
        assert client.credentials == credentials
    finally:
        await client.close()
        impostor.stop()
        owned.start()  # the fixture stops it again


# --- replay, tampering, reordering and truncation over a real socket -----------------------------


def flip(frame: bytes, position: int = -1) -> bytes:
    """The frame with one bit flipped (in its ciphertext or tag by default)."""
    data = bytearray(frame)
    data[position] ^= 0x01
    return bytes(data)


@pytest.fixture
async def bystander(owned: GatewayThread) -> AsyncIterator[RayzigClient]:
    """Another paired client with a live session, which meddling on other links must not disturb."""
    _, credentials = await pair(owned)
    client = await connected(owned, credentials)
    states: list[ConnectionState] = []
    client.subscribe_state(states.append)
    yield client
    assert states == [], f"the bystander's session was disturbed: {states}"
    assert client.stats.disconnects == 0
    assert (await client.get_info()).user == OWNER
    await client.close()


async def keyed_through(
    owned: GatewayThread, proxy_factory: ProxyFactory
) -> tuple[MitmProxy, RawSession, ClientCredentials]:
    proxy = await proxy_factory(owned.port)
    _, credentials = await pair(owned)
    session = await RawSession.keyed(proxy.port, credentials)
    return proxy, session, credentials


async def closed_by_gateway(session: RawSession) -> None:
    """The gateway ended the link: the session reads end of stream, not a response."""
    with pytest.raises(ConnectionFailedError):
        await session.receive(within=5)


async def test_replayed_frame_closes_the_link_and_does_not_act_again(
    owned: GatewayThread, proxy_factory: ProxyFactory, bystander: RayzigClient
) -> None:
    proxy, session, _ = await keyed_through(owned, proxy_factory)
    module_id, index = switchable_output(owned)
    before = commands(owned, module_id)
    response = await session.request(10, m.SetOutput(module_id, index, on=True))
    assert isinstance(response, m.OutputResponse)
    assert len(commands(owned, module_id)) == len(before) + 1
    link = proxy.links[0]
    recorded = link.from_client[-1]

    link.frame_to_gateway(recorded)  # an attacker on the path plays it again
    await asyncio.wait_for(link.gateway_closed.wait(), 5)
    await closed_by_gateway(session)
    assert len(commands(owned, module_id)) == len(before) + 1
    await session.close()


async def test_whole_recorded_session_replayed_on_a_new_connection_does_nothing(
    owned: GatewayThread, proxy_factory: ProxyFactory, bystander: RayzigClient
) -> None:
    proxy, session, _ = await keyed_through(owned, proxy_factory)
    module_id, index = switchable_output(owned)
    await session.request(10, m.SetOutput(module_id, index, on=True))
    await session.close()
    recorded = list(proxy.links[0].from_client)
    count = len(commands(owned, module_id))

    reader, writer = await asyncio.open_connection(HOST, owned.port)
    for frame in recorded:  # the IK hello, then the SetOutput sealed for the old session's keys
        writer.write(length_prefixed(frame))
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), 5)  # until the gateway closes
    writer.close()
    frames = StreamDeframer().feed(received)
    assert [f[0] for f in frames] == [FrameKind.HANDSHAKE]  # a fresh handshake reply, then close
    assert len(commands(owned, module_id)) == count


async def test_tampered_frame_closes_the_link_and_is_not_executed(
    owned: GatewayThread, proxy_factory: ProxyFactory, bystander: RayzigClient
) -> None:
    proxy, session, _ = await keyed_through(owned, proxy_factory)
    module_id, index = switchable_output(owned)
    on_before = output_state(owned, module_id, index)
    count = len(commands(owned, module_id))
    proxy.client_hook = lambda link, frame: flip(frame)
    await session.send(11, m.SetOutput(module_id, index, not on_before))
    await asyncio.wait_for(proxy.links[0].gateway_closed.wait(), 5)
    await closed_by_gateway(session)
    assert len(commands(owned, module_id)) == count
    assert output_state(owned, module_id, index) is on_before
    await session.close()


@pytest.mark.parametrize(
    "truncate",
    [
        pytest.param(lambda frame: frame[:-1], id="last-byte"),
        pytest.param(lambda frame: frame[:-16], id="tag"),
        pytest.param(lambda frame: frame[:1], id="kind-only"),
    ],
)
async def test_truncated_frame_closes_the_link_and_is_not_executed(
    owned: GatewayThread,
    proxy_factory: ProxyFactory,
    bystander: RayzigClient,
    truncate: Callable[[bytes], bytes],
) -> None:
    proxy, session, _ = await keyed_through(owned, proxy_factory)
    module_id, index = switchable_output(owned)
    count = len(commands(owned, module_id))
    proxy.client_hook = lambda link, frame: truncate(frame)
    await session.send(12, m.SetOutput(module_id, index, on=True))
    await asyncio.wait_for(proxy.links[0].gateway_closed.wait(), 5)
    await closed_by_gateway(session)
    assert len(commands(owned, module_id)) == count
    await session.close()


async def test_frame_cut_by_the_end_of_the_stream_is_not_executed(
    owned: GatewayThread, proxy_factory: ProxyFactory, bystander: RayzigClient
) -> None:
    proxy, session, _ = await keyed_through(owned, proxy_factory)
    module_id, index = switchable_output(owned)
    count = len(commands(owned, module_id))

    def cut(link: MitmLink, frame: bytes) -> None:
        link.to_gateway(length_prefixed(frame)[: len(frame) // 2])
        link.gateway_writer.write_eof()

    proxy.client_hook = cut
    await session.send(13, m.SetOutput(module_id, index, on=True))
    await asyncio.wait_for(proxy.links[0].gateway_closed.wait(), 5)
    await closed_by_gateway(session)
    assert len(commands(owned, module_id)) == count
    await session.close()


async def test_reordered_frames_close_the_link_and_neither_is_executed(
    owned: GatewayThread, proxy_factory: ProxyFactory, bystander: RayzigClient
) -> None:
    proxy, session, _ = await keyed_through(owned, proxy_factory)
    module_id, index = switchable_output(owned)
    count = len(commands(owned, module_id))
    held: list[bytes] = []

    def swap(link: MitmLink, frame: bytes) -> bytes | None:
        if not held:
            held.append(frame)
            return None
        link.frame_to_gateway(frame)
        return held.pop()

    proxy.client_hook = swap
    await session.send(14, m.SetOutput(module_id, index, on=True))
    await session.send(15, m.SetOutput(module_id, index, on=False))
    await asyncio.wait_for(proxy.links[0].gateway_closed.wait(), 5)
    await closed_by_gateway(session)
    assert len(commands(owned, module_id)) == count
    await session.close()


async def test_frame_from_another_session_closes_the_link(
    owned: GatewayThread, proxy_factory: ProxyFactory, bystander: RayzigClient
) -> None:
    proxy, first, _ = await keyed_through(owned, proxy_factory)
    _, second_credentials = await pair(owned)
    await first.request(1, m.Ping())
    foreign = proxy.links[0].from_client[-1]
    second = await RawSession.keyed(proxy.port, second_credentials)
    assert await second.request(1, m.Ping()) == m.Ok()
    proxy.links[1].frame_to_gateway(foreign)
    await asyncio.wait_for(proxy.links[1].gateway_closed.wait(), 5)
    await closed_by_gateway(second)
    # The first session, on its own link, is unaffected.
    assert await first.request(2, m.Ping()) == m.Ok()
    await first.close()
    await second.close()


async def test_client_closes_its_session_on_a_tampered_frame_and_recovers(
    owned: GatewayThread, proxy_factory: ProxyFactory, bystander: RayzigClient
) -> None:
    proxy = await proxy_factory(owned.port)
    _, credentials = await pair(owned)
    client = await connected(proxy.port, credentials)
    states: list[ConnectionState] = []
    client.subscribe_state(states.append)
    tampered: list[bytes] = []

    def tamper_once(link: MitmLink, frame: bytes) -> bytes:
        if not tampered and frame[0] == FrameKind.TRANSPORT:
            tampered.append(frame)
            return flip(frame)
        return frame

    proxy.gateway_hook = tamper_once
    info = await client.get_info()  # the answer is tampered with; the retry gets a clean one
    assert info.user == OWNER
    assert tampered
    assert client.stats.disconnects == 1
    assert "failed authentication" in (client.stats.last_error or "")
    assert states[:3] == [
        ConnectionState.BACKOFF,
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
    ]
    assert proxy.links[0].client_closed.is_set()  # the client dropped the tampered link
    assert len(proxy.links) == 2
    await client.close()


# --- idempotent retries --------------------------------------------------------------------------


async def test_same_request_id_acts_once_across_sessions_and_restarts(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    target = not output_state(owned, module_id, index)
    count = len(commands(owned, module_id))
    request = m.SetOutput(module_id, index, target)

    session = await RawSession.keyed(owned.port, credentials)
    first = await session.request(77, request)
    assert isinstance(first, m.OutputResponse)
    assert first.output.is_on is target
    assert await session.request(77, request) == first
    await session.close()
    assert len(commands(owned, module_id)) == count + 1

    # Someone else switches it back; a late retry of the old request must not switch it again.
    owned.call(lambda g: g.site.set_output(module_id, index, not target, user="someone"))
    session = await RawSession.keyed(owned.port, credentials)
    assert await session.request(77, request) == first
    await session.close()
    owned.restart()
    session = await RawSession.keyed(owned.port, credentials)
    assert await session.request(77, request) == first
    await session.close()
    assert len(commands(owned, module_id)) == count + 2
    assert output_state(owned, module_id, index) is (not target)

    # The cache is per client key: another client's request 77 is its own command.
    _, other = await pair(owned)
    session = await RawSession.keyed(owned.port, other)
    assert isinstance(await session.request(77, request), m.OutputResponse)
    await session.close()
    assert len(commands(owned, module_id)) == count + 3


async def test_client_retry_after_a_dropped_link_acts_once(
    owned: GatewayThread, proxy_factory: ProxyFactory
) -> None:
    proxy = await proxy_factory(owned.port)
    _, credentials = await pair(owned)
    client = await connected(proxy.port, credentials)
    module_id, index = switchable_output(owned)
    target = not output_state(owned, module_id, index)
    count = len(commands(owned, module_id))
    forwarded: list[bytes] = []

    def note_request(link: MitmLink, frame: bytes) -> bytes:
        if link is proxy.links[0] and len(link.from_client) == 3:  # hello, GetInfo, SetOutput
            forwarded.append(frame)
        return frame

    def drop_answer(link: MitmLink, frame: bytes) -> bytes | None:
        if forwarded and link is proxy.links[0]:
            link.kill()  # the gateway acted; its answer never arrives
            return None
        return frame

    proxy.client_hook = note_request
    proxy.gateway_hook = drop_answer
    result = await client.set_output(module_id, index, target)
    assert forwarded, "the request reached the gateway on the first link"
    assert result.is_on is target
    assert client.stats.retries == 1
    assert client.stats.disconnects == 1
    assert len(proxy.links) == 2
    assert len(commands(owned, module_id)) == count + 1
    await client.close()


async def test_revocation_ends_every_link_of_the_client_not_just_the_requesting_one(
    owned: GatewayThread,
) -> None:
    _, credentials = await pair(owned)
    first = await RawSession.keyed(owned.port, credentials)
    second = await RawSession.keyed(owned.port, credentials)  # the same client, twice
    try:
        assert await second.request(1, m.GetInfo()) != m.Ok()
        assert await first.request(1, m.RevokeClient(0)) == m.Ok()
        await closed_by_gateway(first)
        await closed_by_gateway(second)
    finally:
        await first.close()
        await second.close()
    assert live_links(owned, OWNER) == 0


async def test_sessions_without_an_enrolled_key_receive_no_notifications(
    owned: GatewayThread,
) -> None:
    _, credentials = await pair(owned)
    unpaired = await RawSession.open(owned.port)  # first contact, nothing enrolled
    enrolled = await RawSession.keyed(owned.port, credentials)
    try:
        module_id, index = switchable_output(owned)
        owned.call(lambda g: g.site.set_output(module_id, index, on=True, user="someone"))
        assert await enrolled.request(1, m.Ping()) == m.Ok()
        assert any(isinstance(n, m.OutputChanged) for n in enrolled.notifications)
        assert await unpaired.request(1, m.Ping()) == m.Ok()
        assert unpaired.notifications == []
    finally:
        await unpaired.close()
        await enrolled.close()
