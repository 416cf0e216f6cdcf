"""Regression tests for the spec-review findings of PROTOCOL.md Appendix C, fixed in the reference.

Everything that involves the gateway runs against the real virtual gateway over loopback sockets
(:class:`~rayzig_core.testing.gateway.GatewayThread`), or drives the sans-I/O pieces directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from rayzig_core.client import RayzigClient, error_from_response
from rayzig_core.errors import (
    ClientRevokedError,
    DecodeError,
    FirmwareIntegrityError,
    GatewayBusyError,
    InvalidRequestError,
    NotFoundError,
    PasswordRejectedError,
    PermissionDeniedError,
    RequestError,
    TransportError,
)
from rayzig_core.eventlog import EventLogSync
from rayzig_core.firmware import FirmwareManifest, build_manifest
from rayzig_core.models import (
    ConnectionState,
    Event,
    EventKind,
    FirmwarePart,
    GatewayUser,
    ModuleKind,
    RestorePreset,
    UserLevel,
)
from rayzig_core.password_policy import check_password
from rayzig_core.protocol import codec
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import Frame, FrameKind
from rayzig_core.protocol.noise import generate_keypair
from rayzig_core.protocol.session import InitiatorHandshake
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector, TcpTransport
from rayzig_core.virtual_gateway import ClientRecord, Site, UserAccount, VirtualGateway, server
from rayzig_core.virtual_gateway.device import handlers
from rayzig_core.virtual_gateway.device.accounts import MAX_USERS
from rayzig_core.virtual_gateway.device.answers import MAX_PLAINTEXT, bounded
from rayzig_core.virtual_gateway.device.auth import MAX_USER_NAME
from rayzig_core.virtual_gateway.device.replay import (
    PRE_AUTH_REPLAY_CACHE_SIZE,
    REPLAY_CACHE_SIZE,
)
from rayzig_core.virtual_gateway.site.limits import MAX_MODULE_ID
from rayzig_core.virtual_gateway.site.site import SiteState
from tests.core.conftest import (
    FAST,
    HOST,
    LEVELS,
    OWNER,
    OWNER_PASSWORD,
    PASSWORDS,
    RawSession,
    commands,
    connected,
    connector,
    pair,
    restored,
    stored,
    switchable_output,
)


async def closed_by_gateway(session: RawSession, within: float = 5.0) -> bool:
    """Whether the gateway ends the link without answering anything more."""
    try:
        await asyncio.wait_for(session.transport.receive(), within)
    except TransportError:
        return True
    return False


async def send_plaintext(session: RawSession, plaintext: bytes) -> None:
    """Encrypt arbitrary plaintext bytes as the next transport message of a session."""
    sealed = session.channel._send.encrypt_with_ad(b"", plaintext)
    await session.transport.send(Frame(FrameKind.TRANSPORT, sealed).to_bytes())


# --- strict CBOR (§5.1) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "why"),
    [
        ("82010100", "trailing bytes"),
        ("9f0101ff", "indefinite-length array"),
        ("8201c2420101", "bignum tag"),
        ("8201c11a00000000", "date tag"),
        ("d9d9f7820101", "self-described CBOR tag"),
        ("82011801", "integer not in shortest form"),
        ("9800", "array length not in shortest form"),
        ("8201f7", "undefined"),
        ("8201f820", "extended simple value"),
        ("a0", "map"),
        ("820101ff", "stray break"),
        ("8201fb3ff00000", "truncated float"),
        ("82017f6161ff", "indefinite-length text"),
        ("81" * 20 + "01", "nested too deeply"),
    ],
)
def test_message_decoder_refuses_non_canonical_cbor(encoded: str, why: str) -> None:
    with pytest.raises(DecodeError):
        m.decode(bytes.fromhex(encoded))


def test_message_decoder_accepts_every_float_width_and_canonical_input() -> None:
    assert m.decode(bytes.fromhex("820101")) == m.Envelope(1, m.Ping())
    event = "88 03 18 2a {} 02 00 65 616c696365 f5 00"
    for width in ("f93c00", "fa3f800000", "fb3ff0000000000000", "01"):
        body = bytes.fromhex(("86 18 47 09 03 81" + event + "01 18 2a").format(width))
        batch = m.decode(body).message
        assert isinstance(batch, m.EventBatch)
        assert batch.events[0].timestamp == 1.0
    # The reference encoder's own output always passes.
    for message in (m.Ping(), m.ListModules(3), m.ErrorResponse(m.ErrorCode.THROTTLED, "x", 8.0)):
        codec.check_strict(m.encode(2**62, message))


def test_handshake_payloads_and_manifests_use_the_same_strict_decoder() -> None:
    hello = m.encode_hello(m.ClientHello(1, "rayzig_core"))
    assert m.decode_client_hello(hello) == m.ClientHello(1, "rayzig_core")
    with pytest.raises(DecodeError):
        m.decode_client_hello(hello + b"\x00")
    manifest = build_manifest(
        hardware="RZ-GW1", part=FirmwarePart.TFT, version="1.0.0", security_version=1, image=b"x"
    ).to_bytes()
    assert FirmwareManifest.from_bytes(manifest).version == "1.0.0"
    with pytest.raises(FirmwareIntegrityError, match="malformed"):
        FirmwareManifest.from_bytes(b"\xd8\x18" + manifest)  # wrapped in a tag


async def test_gateway_closes_the_link_on_a_request_with_trailing_bytes(
    owned: GatewayThread,
) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    before = commands(owned, module_id)
    session = await RawSession.keyed(owned.port, credentials)
    try:
        request = m.encode(7, m.SetOutput(module_id, index, on=True))
        await send_plaintext(session, request + b"\x00")
        assert await closed_by_gateway(session)
    finally:
        await session.close()
    assert commands(owned, module_id) == before


# --- ClientHello.protocol_version (§1.3) -------------------------------------------------------


async def handshake_as_version(
    port: int,
    version: int,
    *,
    static_private: bytes | None = None,
    gateway_key: bytes | None = None,
) -> tuple[InitiatorHandshake, TcpTransport]:
    """Run the client side of a handshake whose ClientHello names ``version``."""
    handshake = InitiatorHandshake(
        static_private=static_private or generate_keypair()[0],
        client_name="from the future",
        gateway_key=gateway_key,
    )
    handshake._hello = m.ClientHello(version, "from the future")
    transport = await TcpConnector(HOST, port, timeout=5.0).connect()
    await transport.send(handshake.start())
    return handshake, transport


async def test_gateway_refuses_an_xx_handshake_of_another_protocol_version(
    owned: GatewayThread, caplog: pytest.LogCaptureFixture
) -> None:
    handshake, transport = await handshake_as_version(owned.port, 2)
    try:
        last = handshake.receive(await asyncio.wait_for(transport.receive(), 5))
        assert last is not None
        with caplog.at_level(logging.INFO, logger="rayzig_core.virtual_gateway.device"):
            await transport.send(last)
            channel = handshake.channel()
            await transport.send(channel.seal(1, m.Ping()))
            with pytest.raises(TransportError):
                await asyncio.wait_for(transport.receive(), 5)
        assert "client speaks protocol version 2, this gateway speaks 1" in caplog.text
    finally:
        await transport.close()


async def test_gateway_refuses_an_ik_handshake_of_another_protocol_version(
    owned: GatewayThread,
) -> None:
    _, credentials = await pair(owned)
    _, transport = await handshake_as_version(
        owned.port,
        0,
        static_private=credentials.client_private_key,
        gateway_key=credentials.gateway_public_key,
    )
    try:
        with pytest.raises(TransportError):  # closed without an answer
            await asyncio.wait_for(transport.receive(), 5)
    finally:
        await transport.close()
    # The same key with the right version is still welcome.
    session = await RawSession.keyed(owned.port, credentials)
    try:
        assert session.hello.client_enrolled is True
        assert await session.request(1, m.Ping()) == m.Ok()
    finally:
        await session.close()


# --- an unenrolled IK session ends after message 2 (§3.2) --------------------------------------


async def test_gateway_closes_an_ik_session_whose_key_is_not_enrolled_after_message_2(
    owned: GatewayThread,
) -> None:
    _, credentials = await pair(owned)
    stranger = InitiatorHandshake(
        static_private=generate_keypair()[0],
        client_name="knows the public key",
        gateway_key=credentials.gateway_public_key,
    )
    transport = await TcpConnector(HOST, owned.port, timeout=5.0).connect()
    try:
        await transport.send(stranger.start())
        assert stranger.receive(await asyncio.wait_for(transport.receive(), 5)) is None
        assert stranger.complete
        assert stranger.gateway_hello is not None
        assert stranger.gateway_hello.client_enrolled is False
        # No Ping, no answer: the link ends (a bridge never sees a TRANSPORT frame from it).
        await transport.send(stranger.channel().seal(1, m.Ping()))
        with pytest.raises(TransportError):
            await asyncio.wait_for(transport.receive(), 5)
    finally:
        await transport.close()
    # A revoked client is told to pair again and does not retry; an enrolled key is still welcome.
    revoked = await connected(owned, credentials)
    await revoked.revoke_client(0)
    await revoked.close()
    client = RayzigClient(connector(owned), credentials, **FAST)
    try:
        with pytest.raises(ClientRevokedError, match="pair again"):
            await client.connect()
        assert client.state is ConnectionState.AUTH_FAILED
    finally:
        await client.close()
    _, again = await pair(owned)
    session = await RawSession.keyed(owned.port, again)
    try:
        assert session.hello.client_enrolled is True
        assert await session.request(1, m.Ping()) == m.Ok()
    finally:
        await session.close()


# --- request id 0 (§5.3) -----------------------------------------------------------------------


async def test_request_id_zero_is_refused_and_never_acts(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    module_id, index = switchable_output(owned)
    before = commands(owned, module_id)
    session = await RawSession.keyed(owned.port, credentials)
    try:
        for request in (m.Ping(), m.GetInfo(), m.SetOutput(module_id, index, on=True)):
            response = await session.request(0, request)
            assert isinstance(response, m.ErrorResponse), request
            assert response.code is m.ErrorCode.BAD_REQUEST
        # A refusal, not a broken session; nothing was switched or cached under id 0.
        assert await session.request(1, m.Ping()) == m.Ok()
        assert isinstance(
            await session.request(2, m.SetOutput(module_id, index, on=True)), m.OutputResponse
        )
    finally:
        await session.close()
    assert len(commands(owned, module_id)) == len(before) + 1
    assert owned.call(lambda g: [k for k in g.replay.enrolled if k[1] == 0]) == []


# --- the default password in another case (§6.2) -------------------------------------------------


def fullwidth(text: str) -> str:
    """The same text in full-width forms, which NFKC maps back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


async def test_default_password_is_refused_in_any_case_or_form(gateway: GatewayThread) -> None:
    assert gateway.factory is not None
    default = gateway.factory.default_password
    client = RayzigClient(connector(gateway))
    identity = await client.identify()
    variants = [default.upper(), default[0].upper() + default[1:], fullwidth(default.upper())]
    for variant in variants:
        with pytest.raises(PasswordRejectedError) as caught:
            await client.change_password(identity.public_key, OWNER, default, variant)
        assert "default_password" in caught.value.reasons, variant
        # All reasons, in the order of the client-side policy that knows the default password.
        local = check_password(
            variant, user_name=OWNER, serial=identity.serial, default_password=default
        )
        assert caught.value.reasons == tuple(v.value for v in local)
        assert default.upper() not in str(caught.value)
    assert (await client.identify()).factory_state is True
    # The gateway keeps only verifiers: no form of the default password is in its state file.
    gateway.call(lambda g: g.on_dirty())
    gateway.stop()
    state = gateway.state_path.read_text(encoding="utf-8").casefold()
    assert default.casefold() not in state
    assert default.replace("-", "").casefold() not in state
    gateway.start()


async def test_old_state_without_the_folded_verifier_still_refuses_case_variants(
    gateway: GatewayThread,
) -> None:
    assert gateway.factory is not None
    default = gateway.factory.default_password
    gateway.stop()
    gateway.edit_state(lambda data: data.pop("default_folded_verifier"))
    gateway.start()
    client = RayzigClient(connector(gateway))
    identity = await client.identify()
    with pytest.raises(PasswordRejectedError) as caught:
        await client.change_password(identity.public_key, OWNER, default, default.upper())
    assert "default_password" in caught.value.reasons


# --- factory state (§6.1) ---------------------------------------------------------------------

SESSION_REQUESTS: list[m.Request] = [
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


def site_snapshot(gw: GatewayThread) -> str:
    return gw.call(lambda g: json.dumps(stored(g.site.state()), sort_keys=True))


async def test_factory_state_answers_password_change_required_on_an_unenrolled_session(
    gateway: GatewayThread,
) -> None:
    assert gateway.factory is not None
    before = site_snapshot(gateway)
    session = await RawSession.open(gateway.port)
    try:
        assert session.hello.factory_state is True
        assert await session.request(1, m.Ping()) == m.Ok()
        for request_id, request in enumerate(SESSION_REQUESTS, start=2):
            response = await session.request(request_id, request)
            assert isinstance(response, m.ErrorResponse), request
            assert response.code is m.ErrorCode.PASSWORD_CHANGE_REQUIRED, request
        # Pair still proves the password first, but even the right one enrols nothing.
        wrong = await session.request(50, m.Pair(OWNER, "not the label password", "x"))
        assert isinstance(wrong, m.ErrorResponse)
        assert wrong.code is m.ErrorCode.INVALID_CREDENTIALS
        right = await session.request(51, m.Pair(OWNER, gateway.factory.default_password, "x"))
        assert isinstance(right, m.ErrorResponse)
        assert right.code is m.ErrorCode.PASSWORD_CHANGE_REQUIRED
    finally:
        await session.close()
    assert site_snapshot(gateway) == before
    assert gateway.call(lambda g: (sorted(g.users), dict(g.clients))) == ([OWNER], {})


async def test_factory_state_answers_password_change_required_on_any_enrolled_session(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    async with await connected(owned, owner) as client:
        await client.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
    _, ursula = await pair(owned, "ursula", PASSWORDS["ursula"])

    def back_to_factory_state(g: VirtualGateway) -> None:
        g.users[OWNER].must_change = True

    owned.call(back_to_factory_state)
    session = await RawSession.keyed(owned.port, ursula)
    try:
        assert session.hello.factory_state is True
        assert session.hello.client_enrolled is True
        for request_id, request in enumerate([m.GetInfo(), m.ListModules(0)], start=1):
            response = await session.request(request_id, request)
            assert isinstance(response, m.ErrorResponse)
            assert response.code is m.ErrorCode.PASSWORD_CHANGE_REQUIRED
        again = await session.request(9, m.Pair("ursula", PASSWORDS["ursula"], "again"))
        assert isinstance(again, m.ErrorResponse)
        assert again.code is m.ErrorCode.PASSWORD_CHANGE_REQUIRED
    finally:
        await session.close()


# --- bounded user input in answers (§3.3, §5.2, §7.3, §9) --------------------------------------

WIDE = "\U0001f50c"  # a printable code point of 4 UTF-8 bytes: the worst case for a frame


@pytest.mark.parametrize("name", ["x" * 1000, "y" * 33, "", "a\nb", "tab\there"])
async def test_requests_naming_a_user_refuse_names_no_account_can_have(
    owned: GatewayThread, name: str
) -> None:
    _, credentials = await pair(owned)
    session = await RawSession.keyed(owned.port, credentials)
    try:
        requests: list[m.Request] = [
            m.DeleteUser(name),
            m.AddUser(name, UserLevel.USER, PASSWORDS["ursula"]),
            m.Pair(name, "whatever password", "x"),
            m.ChangePassword(name, "whatever password", PASSWORDS["ursula"]),
        ]
        for request_id, request in enumerate(requests, start=1):
            response = await session.request(request_id, request)
            assert isinstance(response, m.ErrorResponse), request
            assert response.code is m.ErrorCode.BAD_REQUEST, request
            assert name not in response.message or not name
        assert await session.request(99, m.Ping()) == m.Ok()  # the session lives on
    finally:
        await session.close()


@pytest.mark.parametrize("client_name", ["", "z" * 65, "line\nbreak", "\x00"])
async def test_pair_refuses_a_client_name_out_of_bounds_before_checking_the_password(
    owned: GatewayThread, client_name: str
) -> None:
    session = await RawSession.open(owned.port)
    try:
        response = await session.request(1, m.Pair(OWNER, OWNER_PASSWORD, client_name))
        assert isinstance(response, m.ErrorResponse)
        assert response.code is m.ErrorCode.BAD_REQUEST
        paired = await session.request(2, m.Pair(OWNER, OWNER_PASSWORD, WIDE * 64))
        assert isinstance(paired, m.Paired)
    finally:
        await session.close()
    assert owned.call(lambda g: g.users[OWNER].throttle.failures) == 0
    assert owned.call(lambda g: [c.name for c in g.clients.values()]) == [WIDE * 64]


async def test_list_clients_is_paged_so_any_number_of_long_names_fits(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)

    def enrol_many(g: VirtualGateway) -> None:
        for client_id in range(2, 42):
            name = WIDE * 64 if client_id % 2 else f"legacy {client_id} " + "n" * 1000
            key = client_id.to_bytes(32, "big")
            g.clients[client_id] = ClientRecord(client_id, key, name, OWNER)

    owned.call(enrol_many)
    session = await RawSession.keyed(owned.port, owner)
    try:
        first = await session.request(1, m.ListClients(0))
        assert isinstance(first, m.ClientList)
        assert first.total == 41
        assert 0 < len(first.clients) < 41
        assert [c.client_id for c in first.clients] == list(range(1, len(first.clients) + 1))
        beyond = await session.request(2, m.ListClients(41))
        assert beyond == m.ClientList((), 41)
    finally:
        await session.close()
    async with await connected(owned, owner) as client:
        listed = await client.list_clients()
    assert [c.client_id for c in listed] == list(range(1, 42))
    assert all(len(c.name) <= 64 for c in listed)  # names enrolled before the limit are cut


async def test_user_list_always_fits_one_frame(owned: GatewayThread) -> None:
    def fill(g: VirtualGateway) -> None:
        template = g.users[OWNER]
        for index in range(MAX_USERS - 1):
            name = f"{index:02d}" + WIDE * (MAX_USER_NAME - 2)
            g.users[name] = UserAccount(name, UserLevel.USER, template.verifier)

    owned.call(fill)
    _, owner = await pair(owned)
    async with await connected(owned, owner) as client:
        assert len(await client.list_users()) == MAX_USERS
        with pytest.raises(InvalidRequestError) as caught:
            await client.add_user("one too many", UserLevel.USER, PASSWORDS["ursula"])
        assert caught.value.code == m.ErrorCode.CONFLICT
        assert client.stats.disconnects == 0
    worst = m.UserList(tuple(GatewayUser(WIDE * MAX_USER_NAME, UserLevel.UTILITY)
                             for _ in range(MAX_USERS)))  # fmt: skip
    assert len(m.encode(2**63 - 1, worst)) <= MAX_PLAINTEXT


def test_error_messages_are_cut_to_the_text_and_frame_limits() -> None:
    assert bounded("short") == "short"
    for text in ("a" * 5000, WIDE * 1500, "b" * 1000 + WIDE * 1000):
        cut = bounded(text)
        assert len(cut) <= 1024
        response = m.ErrorResponse(m.ErrorCode.NOT_FOUND, cut, None, ("x" * 64,) * 4)
        assert len(m.encode(2**63 - 1, response)) <= MAX_PLAINTEXT


# --- account-name probing (§6.3, §7.3) -----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def attempts(session: RawSession, user: str, count: int, first_id: int) -> list[object]:
    """Answers to ``count`` Pair attempts with a wrong password, as (code, retry_after)."""
    seen: list[object] = []
    for request_id in range(first_id, first_id + count):
        response = await session.request(request_id, m.Pair(user, "wrong wrong wrong", "x"))
        assert isinstance(response, m.ErrorResponse)
        seen.append((response.code, response.retry_after))
    return seen


async def test_unknown_user_names_are_throttled_exactly_like_real_ones(
    owned: GatewayThread,
) -> None:
    clock = FakeClock()
    owned.call(lambda g: setattr(g, "clock", clock))
    # THROTTLED answers at once: they are held back by real time otherwise (§6.5).
    owned.call(lambda g: setattr(g, "throttled_answer_delay", 0.0))
    session = await RawSession.open(owned.port)
    try:
        real = await attempts(session, OWNER, 6, 1)
        unknown = await attempts(session, "nobody", 6, 101)
        assert real == unknown
        assert real[3] == (m.ErrorCode.INVALID_CREDENTIALS, 1.0)
        assert real[4] == (m.ErrorCode.THROTTLED, 1.0)
        # After the delay both fail on and back off alike.
        clock.now += 1.0
        assert await attempts(session, OWNER, 2, 201) == await attempts(session, "nobody", 2, 301)
        # The default password, which an unknown name is checked against, does not let it in.
        assert owned.factory is not None
        clock.now += 3600
        response = await session.request(401, m.Pair("nobody", owned.factory.default_password, "x"))
        assert isinstance(response, m.ErrorResponse)
        assert response.code is m.ErrorCode.INVALID_CREDENTIALS
    finally:
        await session.close()


async def test_unknown_name_throttles_are_bounded_least_recently_used_first(
    owned: GatewayThread,
) -> None:
    owned.call(lambda g: setattr(g.accounts, "unknown_throttle_limit", 3))
    session = await RawSession.open(owned.port)
    try:
        for request_id, name in enumerate(["ann", "bob", "cid", "ann", "dan"], start=1):
            response = await session.request(request_id, m.Pair(name, "wrong password!", "x"))
            assert isinstance(response, m.ErrorResponse)
            assert response.code is m.ErrorCode.INVALID_CREDENTIALS
    finally:
        await session.close()

    def remembered(g: VirtualGateway) -> list[tuple[str, int]]:
        names = {g.accounts.name_digest(name): name for name in ("ann", "bob", "cid", "dan")}
        return [(names[d], t.failures) for d, t in g.accounts.unknown_throttles.items()]

    assert owned.call(remembered) == [("cid", 1), ("ann", 2), ("dan", 1)]
    # Persisted like accounts' throttles (§6.3), as keyed digests: never the names typed.
    saved = json.dumps(owned.call(lambda g: stored(g.state())))
    assert len(owned.call(lambda g: stored(g.state()))["unknown_names"]) == 3
    assert not any(name in saved for name in ('"ann"', '"cid"', '"dan"'))


async def test_delete_user_checks_the_permission_before_revealing_whether_the_name_exists(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    async with await connected(owned, owner) as client:
        for name in ("ursula", "adam"):
            await client.add_user(name, LEVELS[name], PASSWORDS[name])
    _, ursula = await pair(owned, "ursula", PASSWORDS["ursula"])
    _, adam = await pair(owned, "adam", PASSWORDS["adam"])
    user_session = await RawSession.keyed(owned.port, ursula)
    admin_session = await RawSession.keyed(owned.port, adam)
    try:
        for request_id, name in enumerate((OWNER, "adam", "nobody"), start=1):
            refused = await user_session.request(request_id, m.DeleteUser(name))
            assert isinstance(refused, m.ErrorResponse)
            assert refused.code is m.ErrorCode.PERMISSION_DENIED, name
            assert name not in refused.message
        # A level that may delete accounts (and lists them anyway) is told what does not exist.
        missing = await admin_session.request(1, m.DeleteUser("nobody"))
        assert isinstance(missing, m.ErrorResponse)
        assert missing.code is m.ErrorCode.NOT_FOUND
        above = await admin_session.request(2, m.DeleteUser(OWNER))
        assert isinstance(above, m.ErrorResponse)
        assert above.code is m.ErrorCode.PERMISSION_DENIED
    finally:
        await user_session.close()
        await admin_session.close()
    assert owned.call(lambda g: sorted(g.users)) == ["adam", OWNER, "ursula"]


# --- INTERNAL instead of a lost link; BUSY reserved (§9) ------------------------------------------


async def test_a_bug_in_request_handling_answers_internal_and_keeps_the_link(
    owned: GatewayThread, caplog: pytest.LogCaptureFixture
) -> None:
    _, owner = await pair(owned)
    module_id, index = switchable_output(owned)

    def break_switching(g: VirtualGateway) -> None:
        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("simulated bug with a secret detail")

        g.site.set_output = broken  # type: ignore[method-assign,assignment]

    owned.call(break_switching)
    session = await RawSession.keyed(owned.port, owner)
    try:
        with caplog.at_level(logging.ERROR, logger="rayzig_core.virtual_gateway.device"):
            response = await session.request(1, m.SetOutput(module_id, index, on=True))
        assert isinstance(response, m.ErrorResponse)
        assert response.code is m.ErrorCode.INTERNAL
        assert "secret detail" not in response.message  # generic for the client ...
        assert "simulated bug with a secret detail" in caplog.text  # ... details in the log
        assert await session.request(2, m.Ping()) == m.Ok()
        # A retry of the same request is answered the same, not executed again.
        assert await session.request(1, m.SetOutput(module_id, index, on=True)) == response
    finally:
        await session.close()


async def test_an_answer_too_large_for_a_frame_becomes_internal(
    owned: GatewayThread, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, owner = await pair(owned)
    event = Event(1, 1, 0.0, EventKind.COMMAND, 0, "u" * 32, is_on=True)
    huge = m.EventBatch(1, (event,) * 200, 1, 1)
    monkeypatch.setattr(handlers, "event_batch", lambda site, request, limitation: huge)
    async with await connected(owned, owner) as client:
        with (
            caplog.at_level(logging.ERROR, logger="rayzig_core.virtual_gateway.device"),
            pytest.raises(RequestError) as caught,
        ):
            await client.read_events(1, 0)
        assert caught.value.code == m.ErrorCode.INTERNAL
        assert "does not fit a frame" in caplog.text
        assert (await client.get_info()).user == OWNER
        assert client.stats.disconnects == 0


def test_busy_is_reserved_and_documented_as_such() -> None:
    assert "never answers BUSY" in (GatewayBusyError.__doc__ or "")
    error = error_from_response(m.ErrorResponse(m.ErrorCode.BUSY, "busy"))
    assert isinstance(error, GatewayBusyError)


# --- client ids are never reused (§3.3) -----------------------------------------------------------


async def test_client_ids_are_never_reused_across_revocations_and_restarts(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    _, second = await pair(owned)
    assert (owner.client_id, second.client_id) == (1, 2)
    async with await connected(owned, owner) as client:
        await client.revoke_client(second.client_id)
    _, third = await pair(owned)
    assert third.client_id == 3  # not 2 again
    owned.restart()
    async with await connected(owned, owner) as client:
        await client.revoke_client(third.client_id)
    _, fourth = await pair(owned)
    assert fourth.client_id == 4
    assert owned.call(lambda g: g.accounts.next_client_id) == 5


async def test_state_without_the_client_id_counter_continues_after_the_highest_id(
    owned: GatewayThread,
) -> None:
    await pair(owned)
    await pair(owned)
    owned.stop()
    owned.edit_state(lambda data: data.pop("next_client_id"))
    owned.start()
    _, third = await pair(owned)
    assert third.client_id == 3


# --- revocation by level, recovery of the factory account, pre-auth replay cache -----------------


async def test_an_administrator_cannot_revoke_the_keys_of_a_system_user(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    async with await connected(owned, owner) as client:
        for name in ("ursula", "adam"):
            await client.add_user(name, LEVELS[name], PASSWORDS[name])
    _, ursula = await pair(owned, "ursula", PASSWORDS["ursula"])
    _, adam = await pair(owned, "adam", PASSWORDS["adam"])
    _, adam_phone = await pair(owned, "adam", PASSWORDS["adam"])
    async with await connected(owned, adam) as admin:
        with pytest.raises(PermissionDeniedError):
            await admin.revoke_client(owner.client_id)
        await admin.revoke_client(ursula.client_id)  # a User's key
        await admin.revoke_client(adam_phone.client_id)  # another key of its own
        assert admin.stats.disconnects == 0
    assert owned.call(lambda g: sorted(g.clients)) == [owner.client_id, adam.client_id]
    async with await connected(owned, owner) as system:
        await system.revoke_client(adam.client_id)  # System may manage Administrators
    assert owned.call(lambda g: sorted(g.clients)) == [owner.client_id]


async def test_recovery_resets_the_factory_account_even_with_several_system_users(
    owned: GatewayThread,
) -> None:
    assert owned.factory is not None
    secret = owned.factory.recovery_secret
    _, owner = await pair(owned)
    async with await connected(owned, owner) as client:
        await client.add_user("aardvark", UserLevel.SYSTEM, PASSWORDS["sybil"])  # sorts first
    client = RayzigClient(connector(owned))
    identity = await client.identify()
    new_password = "amber kettles sing to sleepy lighthouses"
    await client.recover_password(identity.public_key, secret, new_password)
    await client.pair(identity, OWNER, new_password)
    await client.pair(identity, "aardvark", PASSWORDS["sybil"])  # untouched


async def test_recovery_without_the_factory_system_account_is_refused_clearly(
    owned: GatewayThread,
) -> None:
    assert owned.factory is not None
    secret = owned.factory.recovery_secret
    _, owner = await pair(owned)
    async with await connected(owned, owner) as client:
        await client.add_user("sybil", UserLevel.SYSTEM, PASSWORDS["sybil"])
    _, sybil = await pair(owned, "sybil", PASSWORDS["sybil"])
    async with await connected(owned, sybil) as client:
        await client.delete_user(OWNER)
        # An "installer" that is not a System account is not recovered either.
        await client.add_user(OWNER, UserLevel.ADMINISTRATOR, PASSWORDS["adam"])
    client = RayzigClient(connector(owned))
    identity = await client.identify()
    with pytest.raises(NotFoundError, match="no longer exists"):
        await client.recover_password(
            identity.public_key, secret, "amber kettles sing to sleepy lighthouses"
        )
    await client.pair(identity, "sybil", PASSWORDS["sybil"])
    await client.pair(identity, OWNER, PASSWORDS["adam"])


async def test_unenrolled_requests_cannot_evict_enrolled_clients_replay_entries(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    module_id, index = switchable_output(owned)
    before = len(commands(owned, module_id))
    session = await RawSession.keyed(owned.port, owner)
    flood = await RawSession.open(owned.port)
    try:
        first = await session.request(77, m.SetOutput(module_id, index, on=True))
        assert isinstance(first, m.OutputResponse)
        # Far more unenrolled mutating requests than the main cache holds (cheap ones: refused
        # for their client name before any password work).
        for request_id in range(1, REPLAY_CACHE_SIZE + 200):
            await flood.send(request_id, m.Pair(OWNER, "x", ""))
        for request_id in range(1, REPLAY_CACHE_SIZE + 200):
            envelope = await flood.receive()
            assert envelope.request_id == request_id
        # The retried command is still recognised: answered from the cache, not executed again.
        assert await session.request(77, m.SetOutput(module_id, index, on=True)) == first
    finally:
        await session.close()
        await flood.close()
    assert len(commands(owned, module_id)) == before + 1
    sizes = owned.call(lambda g: (len(g.replay.enrolled), len(g.replay.pre_auth)))
    assert sizes == (1, PRE_AUTH_REPLAY_CACHE_SIZE)


async def test_a_retried_pair_is_answered_from_the_pre_auth_cache_across_a_restart(
    owned: GatewayThread,
) -> None:
    static_private = generate_keypair()[0]
    identity_key = owned.call(lambda g: g.public_key)
    session = await RawSession.open(owned.port, static_private=static_private, gateway_key=None)
    try:
        paired = await session.request(5, m.Pair(OWNER, OWNER_PASSWORD, "retry"))
        assert isinstance(paired, m.Paired)
    finally:
        await session.close()
    owned.restart()
    # The same key retries the same request id in a new (now key-only) session.
    retry = await RawSession.open(
        owned.port, static_private=static_private, gateway_key=identity_key
    )
    try:
        assert await retry.request(5, m.Pair(OWNER, "not even the password", "retry")) == paired
    finally:
        await retry.close()
    assert owned.call(lambda g: g.users[OWNER].throttle.failures) == 0


# --- durability of security-relevant changes (§12) ------------------------------------------------


def saved(gw: GatewayThread) -> dict[str, Any]:
    """The state file as it is on disk right now."""
    data: dict[str, Any] = json.loads(gw.state_path.read_text(encoding="utf-8"))
    return data


async def test_security_relevant_changes_are_on_disk_before_the_answer(
    owned: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, owner = await pair(owned)
    module_id, index = switchable_output(owned)
    owned.stop()
    owned.start()  # everything so far is on disk; from here on only what is written at once
    monkeypatch.setattr(server, "SAVE_DELAY", 3600.0)  # the coalesced write never comes
    session = await RawSession.keyed(owned.port, owner)
    pre_auth = await RawSession.open(owned.port)
    try:
        # An ordinary change keeps the coalesced write: not on disk yet.
        def output_on_disk() -> bool:
            modules = {module["id"]: module for module in saved(owned)["site"]["modules"]}
            is_on: bool = modules[module_id]["outputs"][index][1]
            return is_on

        was_on = output_on_disk()
        switched = await session.request(1, m.SetOutput(module_id, index, on=not was_on))
        assert isinstance(switched, m.OutputResponse)
        assert switched.output.is_on is not was_on
        assert output_on_disk() is was_on
        # A failed password check: the throttle is on disk as the answer arrives.
        await pre_auth.request(1, m.Pair(OWNER, "wrong wrong wrong", "x"))
        failures = {u["name"]: u["throttle"]["failures"] for u in saved(owned)["users"]}
        assert failures[OWNER] == 1
        # Unknown names cost the same disk work (and nothing about them is stored).
        await pre_auth.request(2, m.Pair("nobody", "wrong wrong wrong", "x"))
        # Account added, with the replay-cache entry of its request.
        added = await session.request(2, m.AddUser("ursula", UserLevel.USER, PASSWORDS["ursula"]))
        assert added == m.Ok()
        state = saved(owned)
        assert "ursula" in [u["name"] for u in state["users"]]
        assert [e[1] for e in state["replay_cache"]][-1] == 2
        # Enrolment.
        paired = await pre_auth.request(3, m.Pair("ursula", PASSWORDS["ursula"], "phone"))
        assert isinstance(paired, m.Paired)
        assert paired.client_id in [c["id"] for c in saved(owned)["clients"]]
        # Password change.
        before = next(u["verifier"] for u in saved(owned)["users"] if u["name"] == "ursula")
        new_password = "harbour lights flicker over sleeping gulls"
        changed = await pre_auth.request(
            4, m.ChangePassword("ursula", PASSWORDS["ursula"], new_password)
        )
        assert changed == m.Ok()
        after = next(u["verifier"] for u in saved(owned)["users"] if u["name"] == "ursula")
        assert after != before
        # Revocation, then deletion of the account.
        assert await session.request(3, m.RevokeClient(paired.client_id)) == m.Ok()
        assert paired.client_id not in [c["id"] for c in saved(owned)["clients"]]
        assert await session.request(4, m.DeleteUser("ursula")) == m.Ok()
        assert "ursula" not in [u["name"] for u in saved(owned)["users"]]
    finally:
        await session.close()
        await pre_auth.close()


def test_save_state_flushes_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, _ = VirtualGateway.factory_new(scrypt_n=2**4)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    server.save_state(gateway, tmp_path / "gw.json")
    assert synced == ["file", "dir"]
    assert stat.S_IMODE((tmp_path / "gw.json").stat().st_mode) == 0o600


# --- module ids are never reused (§4.1, §8.2) -----------------------------------------------------


def test_module_ids_are_never_reused_within_a_sites_lifetime() -> None:
    site = Site.generate(module_count=3, seed=4)
    assert [module.module_id for module in site.modules()] == [1, 2, 3]
    site.remove_module(3)
    assert site.add_module(kind=ModuleKind.MAINS, name="Porch").module_id == 4
    site.remove_module(4)
    again = Site.restore(restored(SiteState, stored(site.state())))
    assert again.add_module(kind=ModuleKind.MAINS, name="Shed").module_id == 5
    # A site saved before the counter existed continues after the highest id in use.
    legacy = stored(site.state())
    del legacy["next_module_id"]
    legacy_site = Site.restore(restored(SiteState, legacy))
    assert legacy_site.add_module(kind=ModuleKind.MAINS, name="X").module_id == 3
    # Up to 250 modules at a time, whatever their ids.
    high = Site.restore(
        restored(SiteState, {**stored(site.state()), "next_module_id": MAX_MODULE_ID})
    )
    assert high.add_module(kind=ModuleKind.MAINS, name="Last").module_id == MAX_MODULE_ID
    with pytest.raises(InvalidRequestError, match="factory reset"):
        high.add_module(kind=ModuleKind.MAINS, name="None left")


async def test_a_module_that_left_never_lends_its_id_or_cursor_to_a_newcomer(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    async with await connected(owned, owner) as client:
        sync = EventLogSync(client, initial_backlog=8192)
        left = owned.call(lambda g: g.site.modules()[-1].module_id)
        await sync.pull(left)
        owned.call(lambda g: g.site.remove_module(left))
        joined = owned.call(lambda g: g.site.add_module(kind=ModuleKind.MAINS, name="New"))
        assert joined.module_id == left + 1
        assert [e.kind for e in await sync.pull(joined.module_id)] == [EventKind.JOINED]
        with pytest.raises(NotFoundError):
            await client.read_events(left, 0)
