"""Bad input: random and mutated bytes at every decoder and at the gateway's handler.

Property: only typed errors — :class:`~rayzig_core.errors.ProtocolError` subclasses, or a clean
close of the link — ever result; never another exception type, never a state change, never a reply
the client cannot decode. And a client sending garbage over TCP does not disturb another session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import json
import logging
import random
import socket
import typing
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rayzig_core.client import RayzigClient
from rayzig_core.errors import (
    InvalidRequestError,
    NotFoundError,
    ProtocolError,
    SessionClosedError,
)
from rayzig_core.models import OutputRef, UserLevel, UserLimitation
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import (
    MAX_FRAME,
    Frame,
    FrameKind,
    StreamDeframer,
    length_prefixed,
    parse_frame,
)
from rayzig_core.protocol.noise import generate_keypair, public_key_of
from rayzig_core.protocol.session import InitiatorHandshake, ResponderHandshake, SecureChannel
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpTransport
from rayzig_core.virtual_gateway import (
    FACTORY_USER,
    ClientRecord,
    GatewayConnection,
    GatewayState,
    Site,
    UserAccount,
    VirtualGateway,
)
from tests.core.conftest import (
    HOST,
    OWNER,
    OWNER_PASSWORD,
    connected,
    connector,
    pair,
    restored,
    stored,
    switchable_output,
    wait_for,
)
from tests.core.test_eventlog import generate
from tests.core.test_frames_codec import SAMPLES

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
HEAVY = settings(FUZZ, max_examples=100)
"""For properties that run handshakes and a gateway per example (the suite must stay fast)."""

# --- strategies ---------------------------------------------------------------------------------


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Bit flips, byte changes, insertions, deletions and truncations of ``data``."""
    if not data:
        return st.binary(max_size=8)
    index = st.integers(0, len(data) - 1)
    return st.one_of(
        st.tuples(index, st.integers(0, 7)).map(
            lambda t: data[: t[0]] + bytes([data[t[0]] ^ (1 << t[1])]) + data[t[0] + 1 :]
        ),
        st.tuples(index, st.integers(1, 255)).map(  # XOR with a non-zero value: always a change
            lambda t: data[: t[0]] + bytes([data[t[0]] ^ t[1]]) + data[t[0] + 1 :]
        ),
        st.tuples(index, st.binary(min_size=1, max_size=4)).map(
            lambda t: data[: t[0]] + t[1] + data[t[0] :]
        ),
        st.tuples(index, st.integers(1, 8)).map(lambda t: data[: t[0]] + data[t[0] + t[1] :]),
        index.map(lambda i: data[:i]),
    )


def mutated(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.sampled_from(samples).flatmap(mutations)


ENCODED = [
    m.encode(0 if isinstance(s, m.Notification) else 42, s) for s in SAMPLES
]  # valid payloads to mutate

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=12),
    lambda children: st.lists(children, max_size=6),
    max_leaves=24,
)
type_codes = st.sampled_from(sorted(m.CATALOGUE)) | st.integers(-5, 300)
structured = st.tuples(
    type_codes, st.integers(-5, 2**64) | cbor_values, st.lists(cbor_values, max_size=8)
).map(lambda t: cbor2.dumps([t[0], t[1], *t[2]]))


def field_strategy(tp: Any) -> st.SearchStrategy[Any]:
    """Arbitrary but encodable values of a message field's declared type."""
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return st.sampled_from(list(tp))
    if tp is bool:
        return st.booleans()
    if tp is int:
        # Small values name modules and outputs that exist (a generated site has 4 modules).
        return st.integers(0, 5) | st.integers(-3, 300) | st.integers(-(2**63), 2**64 - 1)
    if tp is str:
        return (
            st.sampled_from(["installer", "ursula", "", " ", "admin\u0000", "\u0000" * 300])
            | st.text(max_size=40)
            | st.integers(1000, 1024).map(lambda n: "n" * n)
        )
    if tp is bytes:
        return st.binary(max_size=64)
    args = typing.get_args(tp)
    if type(None) in args:  # X | None
        (inner,) = (arg for arg in args if arg is not type(None))
        return st.none() | field_strategy(inner)
    if typing.get_origin(tp) is tuple:
        return st.lists(field_strategy(args[0]), max_size=6).map(tuple)
    if dataclasses.is_dataclass(tp):  # a structure such as UserLimitation or OutputRef
        hints = typing.get_type_hints(tp)
        return st.builds(
            tp, **{f.name: field_strategy(hints[f.name]) for f in dataclasses.fields(tp)}
        )
    raise AssertionError(f"no strategy for {tp!r}")


def request_strategy(cls: type[m.Request]) -> st.SearchStrategy[m.Request]:
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: field_strategy(hints[f.name]) for f in dataclasses.fields(typing.cast("Any", cls))
    }
    return st.builds(cls, **fields)


REQUESTS = [cls for cls in m.CATALOGUE.values() if issubclass(cls, m.Request)]
any_request = st.one_of([request_strategy(cls) for cls in REQUESTS])


# --- decoders -----------------------------------------------------------------------------------


@FUZZ
@given(
    st.binary(max_size=MAX_FRAME + 8)
    | mutated(
        [
            f.to_bytes()
            for f in (Frame(FrameKind.HELLO_XX, b"e" * 32), Frame(FrameKind.TRANSPORT, b"x" * 40))
        ]
    )
)
def test_parse_frame_accepts_or_raises_frame_error(raw: bytes) -> None:  # fmt: skip
    try:
        frame = parse_frame(raw)
    except ProtocolError:
        return
    assert 1 <= len(raw) <= MAX_FRAME
    assert frame.to_bytes() == raw


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_deframer_only_raises_frame_errors_and_stays_failed(chunks: list[bytes]) -> None:
    deframer = StreamDeframer()
    failed = False
    for chunk in chunks:
        try:
            frames = deframer.feed(chunk)
        except ProtocolError:
            failed = True
            break
        assert all(1 <= len(f) <= MAX_FRAME for f in frames)
    if failed:
        with pytest.raises(ProtocolError):
            deframer.feed(length_prefixed(b"\x01"))


@FUZZ
@given(
    st.lists(st.binary(min_size=1, max_size=600), max_size=6),
    st.lists(st.integers(0, 4000), max_size=6),
)
def test_deframer_output_does_not_depend_on_how_the_stream_is_split(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(length_prefixed(f) for f in frames)
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    deframer = StreamDeframer()
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(deframer.feed(stream[start:end]))
    assert out == frames
    assert deframer.pending == 0


def check_decoded(envelope: m.Envelope) -> None:
    """A decoded message is well-typed: it encodes again and decodes to itself."""
    assert isinstance(envelope.message, tuple(m.CATALOGUE.values()))
    assert m.decode(m.encode(envelope.request_id, envelope.message)) == envelope


@HEAVY
@given(st.binary(max_size=200) | structured | mutated(ENCODED))
def test_message_decoder_accepts_well_typed_messages_or_raises_decode_error(
    payload: bytes,
) -> None:
    try:
        envelope = m.decode(payload)
    except ProtocolError:
        return
    check_decoded(envelope)


@FUZZ
@given(st.binary(max_size=120) | mutated([m.encode_hello(m.ClientHello(1, "HA"))]))
def test_hello_decoders_raise_only_decode_errors(payload: bytes) -> None:
    for decode in (m.decode_client_hello, m.decode_gateway_hello):
        try:
            hello = decode(payload)
        except ProtocolError:
            continue
        assert decode(m.encode_hello(hello)) == hello


# --- handshakes and channels ----------------------------------------------------------------------

GATEWAY_PRIVATE = generate_keypair()[0]
GATEWAY_KEY = public_key_of(GATEWAY_PRIVATE)
CLIENT_PRIVATE = generate_keypair()[0]


def hello_for(client_key: bytes | None) -> m.GatewayHello:
    return m.GatewayHello(1, "RG1-FUZZ", "model", False, client_key is not None, MAX_FRAME)


def first_messages() -> list[bytes]:
    return [
        InitiatorHandshake(static_private=CLIENT_PRIVATE, client_name="c").start(),
        InitiatorHandshake(
            static_private=CLIENT_PRIVATE, client_name="c", gateway_key=GATEWAY_KEY
        ).start(),
    ]


def xx_third_message() -> tuple[ResponderHandshake, bytes]:
    initiator = InitiatorHandshake(static_private=CLIENT_PRIVATE, client_name="c")
    responder = ResponderHandshake(static_private=GATEWAY_PRIVATE, hello_for=hello_for)
    reply = responder.receive(initiator.start())
    assert reply is not None
    third = initiator.receive(reply)
    assert third is not None
    return responder, third


@FUZZ
@given(st.binary(max_size=200) | mutated(first_messages()))
def test_responder_handshake_raises_only_protocol_errors(raw: bytes) -> None:
    responder = ResponderHandshake(static_private=GATEWAY_PRIVATE, hello_for=hello_for)
    try:
        reply = responder.receive(raw)
    except ProtocolError:
        assert not responder.complete
        return
    assert reply is not None
    assert parse_frame(reply).kind is FrameKind.HANDSHAKE


@HEAVY
@given(st.data())
def test_last_xx_message_mutated_fails_with_a_protocol_error(data: st.DataObject) -> None:
    responder, third = xx_third_message()
    raw = data.draw(mutations(third) | st.binary(max_size=120))
    try:
        responder.receive(raw)
    except ProtocolError:
        assert not responder.complete
        return
    assert raw == third  # only the untouched message completes the handshake


@HEAVY
@given(st.data())
def test_initiator_handshake_raises_only_protocol_errors(data: st.DataObject) -> None:
    gateway_key = data.draw(st.sampled_from([None, GATEWAY_KEY]))
    initiator = InitiatorHandshake(
        static_private=CLIENT_PRIVATE, client_name="c", gateway_key=gateway_key
    )
    responder = ResponderHandshake(static_private=GATEWAY_PRIVATE, hello_for=hello_for)
    reply = responder.receive(initiator.start())
    assert reply is not None
    raw = data.draw(mutations(reply) | st.binary(max_size=200))
    try:
        initiator.receive(raw)
    except ProtocolError:
        assert not initiator.complete
        return
    assert raw == reply


def channels() -> tuple[SecureChannel, SecureChannel]:
    initiator = InitiatorHandshake(
        static_private=CLIENT_PRIVATE, client_name="c", gateway_key=GATEWAY_KEY
    )
    responder = ResponderHandshake(static_private=GATEWAY_PRIVATE, hello_for=hello_for)
    reply = responder.receive(initiator.start())
    assert reply is not None
    initiator.receive(reply)
    return initiator.channel(), responder.channel()


@FUZZ
@given(st.data())
def test_secure_channel_open_raises_only_protocol_errors_and_then_stays_closed(
    data: st.DataObject,
) -> None:
    client, gateway = channels()
    sealed = client.seal(5, data.draw(st.sampled_from(SAMPLES)))
    raw = data.draw(mutations(sealed) | st.binary(max_size=200))
    try:
        envelope = gateway.open(raw)
    except ProtocolError:
        assert gateway.closed
        with pytest.raises(SessionClosedError):
            gateway.open(sealed)
        return
    assert raw == sealed
    check_decoded(envelope)


# --- the gateway's link and request handler, in process -----------------------------------------


class Link:
    """A GatewayConnection with list-collecting callbacks (no sockets)."""

    def __init__(self, gateway: VirtualGateway) -> None:
        self.sent: list[bytes] = []
        self.closes = 0
        self.connection: GatewayConnection = gateway.attach(self._sent, self._closed)

    def _sent(self, frame: bytes, *, answer: bool) -> None:
        self.sent.append(frame)

    def _closed(self) -> None:
        self.closes += 1

    def feed(self, raw: bytes) -> None:
        self.connection.frame_received(raw)  # must never raise


def _template() -> dict[str, Any]:
    gateway, _ = VirtualGateway.factory_new(site=Site.generate(module_count=4), scrypt_n=2**4)
    gateway.users[FACTORY_USER].must_change = False
    gateway.clients[1] = ClientRecord(1, public_key_of(CLIENT_PRIVATE), "fuzz", FACTORY_USER)
    data: dict[str, Any] = stored(gateway.state())
    return data


TEMPLATE = _template()


def fresh_gateway() -> tuple[VirtualGateway, ClientRecord]:
    """An in-process gateway out of factory state with one enrolled System client (per example:
    random requests change the state, e.g. add a System user and then delete the installer)."""
    gateway = VirtualGateway.restore(restored(GatewayState, TEMPLATE))
    return gateway, gateway.clients[1]


def state(gateway: VirtualGateway) -> str:
    return json.dumps(stored(gateway.state()), sort_keys=True)


def open_keyed(gateway: VirtualGateway, record: ClientRecord) -> tuple[Link, SecureChannel]:
    """An IK session into the gateway, driven frame by frame."""
    link = Link(gateway)
    initiator = InitiatorHandshake(
        static_private=CLIENT_PRIVATE, client_name="fuzz", gateway_key=gateway.public_key
    )
    link.feed(initiator.start())
    assert initiator.receive(link.sent.pop()) is None
    assert initiator.gateway_hello is not None
    assert initiator.gateway_hello.client_enrolled
    return link, initiator.channel()


@HEAVY
@given(st.lists(st.binary(max_size=200) | mutated(first_messages()), min_size=1, max_size=4))
def test_gateway_link_survives_garbage_with_no_state_change(frames: list[bytes]) -> None:
    gateway, _ = fresh_gateway()
    before = state(gateway)
    link = Link(gateway)
    for raw in frames:
        link.feed(raw)
    assert len(link.sent) <= 1  # at most a handshake reply
    assert link.connection.closed or link.connection.client is None
    assert state(gateway) == before
    link.connection.connection_lost()
    assert link.connection not in gateway._connections


@HEAVY
@given(st.data())
def test_tampered_request_closes_the_link_and_changes_nothing(data: st.DataObject) -> None:
    gateway, record = fresh_gateway()
    link, channel = open_keyed(gateway, record)
    before = state(gateway)
    request = data.draw(
        st.sampled_from([m.SetOutput(1, 0, on=True), m.AddUser("eve", UserLevel.SYSTEM, "x" * 20)])
    )
    sealed = channel.seal(9, request)
    raw = data.draw(mutations(sealed))
    link.feed(raw)
    assert link.connection.closed
    assert link.closes == 1
    assert link.sent == []
    assert state(gateway) == before


@HEAVY
@given(st.lists(st.binary(max_size=120) | structured | mutated(ENCODED), min_size=1, max_size=3))
def test_sealed_garbage_payloads_are_answered_or_close_the_link(payloads: list[bytes]) -> None:
    gateway, record = fresh_gateway()
    link, channel = open_keyed(gateway, record)
    for payload in payloads:
        # Authentic frames (the session's keys) carrying arbitrary plaintext.
        sealed = Frame(FrameKind.TRANSPORT, channel._send.encrypt_with_ad(b"", payload))
        link.feed(sealed.to_bytes())
        if link.connection.closed:
            break
    replies = [channel.open(frame) for frame in link.sent]
    assert all(isinstance(r.message, m.Response | m.Notification) for r in replies)


@HEAVY
@given(st.lists(any_request, min_size=1, max_size=4))
def test_any_well_typed_request_gets_a_reply_the_client_can_decode(
    requests: list[m.Request],
) -> None:
    gateway, record = fresh_gateway()
    link, channel = open_keyed(gateway, record)
    for request_id, request in enumerate(requests, start=1):
        link.feed(channel.seal(request_id, request))
        responses = []
        while link.sent:
            envelope = channel.open(link.sent.pop(0))  # decodes on the client side
            if isinstance(envelope.message, m.Notification):
                assert envelope.request_id == 0
                continue
            responses.append(envelope)
        assert [e.request_id for e in responses] == [request_id], request
        assert isinstance(responses[0].message, m.Response)
        if link.connection.closed:
            break  # e.g. it revoked its own key or deleted its own user: answered, then closed


LIMITED = UserLimitation((2,), (OutputRef(3, 0),))
"""The fuzzed User's limitation: module 2 whole and output 0 of module 3 (of modules 1 to 4)."""


def limited_gateway() -> tuple[VirtualGateway, ClientRecord]:
    """A gateway whose one enrolled client belongs to a User limited to :data:`LIMITED`."""
    gateway, record = fresh_gateway()
    verifier = gateway.users[FACTORY_USER].verifier
    gateway.users["ursula"] = UserAccount("ursula", UserLevel.USER, verifier, limitation=LIMITED)
    record.user = "ursula"
    return gateway, record


def outside(gateway: VirtualGateway) -> list[tuple[int, int, bool, int]]:
    """Every output the limited User does not see, with its state and preset."""
    return [
        (module.module_id, output.index, output.is_on, output.preset)
        for module in gateway.site.modules()
        for output in module.outputs
        if not LIMITED.covers_output(module.module_id, output.index)
    ]


def check_within(message: m.Message) -> None:
    """Nothing the limited User gets names a module or output outside its limitation."""
    modules = message.modules if isinstance(message, m.ModulePage) else ()
    if isinstance(message, m.ModuleJoined):
        modules = (message.module,)
    for module in modules:
        assert all(LIMITED.covers_output(module.module_id, o.index) for o in module.outputs)
    if isinstance(message, m.OutputResponse | m.OutputChanged):
        assert LIMITED.covers_output(message.module_id, message.output.index)
    if isinstance(message, m.EventBatch):
        assert all(
            e.output is None or LIMITED.covers_output(e.module_id, e.output) for e in message.events
        )
    module_id = getattr(message, "module_id", None)
    if isinstance(module_id, int):
        assert LIMITED.covers_module(module_id)


site_ids = st.integers(0, 5)
site_request = st.one_of(
    st.builds(m.ListModules, st.integers(-1, 4)),
    st.builds(m.GetTelemetry, site_ids),
    st.builds(m.ReadEvents, site_ids, st.integers(-1, 3), st.integers(0, 600)),
    st.builds(m.SetOutput, site_ids, st.integers(0, 3), st.booleans()),
    st.builds(m.SetUserLimitation, st.just("ursula"), field_strategy(UserLimitation | None)),
)
"""Requests about the generated site's modules, which random ids seldom name."""


@HEAVY
@given(st.lists(site_request | any_request, min_size=1, max_size=4))
def test_a_limited_user_sees_and_changes_nothing_outside_its_limitation(
    requests: list[m.Request],
) -> None:
    gateway, record = limited_gateway()
    before = outside(gateway)
    link, channel = open_keyed(gateway, record)
    for request_id, request in enumerate(requests, start=1):
        link.feed(channel.seal(request_id, request))
        while link.sent:
            check_within(channel.open(link.sent.pop(0)).message)
        if link.connection.closed:
            break  # it revoked its own key or deleted its own account (PROTOCOL.md §7.3)
    assert outside(gateway) == before
    if "ursula" in gateway.users:
        assert gateway.users["ursula"].limitation == LIMITED  # it cannot change its own


# --- over TCP: garbage does not disturb another session ------------------------------------------

rng = random.Random(20261125)
GARBAGE: dict[str, bytes] = {
    "random-bytes": rng.randbytes(3000),
    "zero-length": b"\x00\x00\x10abc",
    "oversized-length": (MAX_FRAME + 1).to_bytes(2, "big") + b"\x10" * 100,
    "max-length-then-nothing": b"\xff\xff",
    "unknown-kind": length_prefixed(b"\x7fhello"),
    "transport-before-handshake": length_prefixed(b"\x10" + rng.randbytes(40)),
    "garbage-ik-hello": length_prefixed(b"\x02" + rng.randbytes(120)),
    "short-xx-hello": length_prefixed(b"\x01" + b"\x00" * 5),
    "low-order-ephemeral": length_prefixed(b"\x01" + b"\x00" * 32),
    "many-tiny-frames": length_prefixed(b"\x03") * 2000,
    "random-frames": b"".join(
        length_prefixed(bytes([rng.choice([1, 2, 3, 16])]) + rng.randbytes(rng.randint(0, 300)))
        for _ in range(50)
    ),
}


@pytest.fixture
async def bystander_client(owned: GatewayThread) -> RayzigClient:  # type: ignore[misc]
    _, credentials = await pair(owned)
    client = await connected(owned, credentials)
    yield client
    await client.close()


async def send_garbage(port: int, garbage: bytes, *, then_valid_hello: bool = False) -> bytes:
    """Send garbage on a fresh TCP connection; return what came back before the gateway closed."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(garbage)
        await writer.drain()
        if then_valid_hello:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


@pytest.mark.parametrize("name", list(GARBAGE))
async def test_garbage_client_loses_only_its_own_link(
    owned: GatewayThread,
    bystander_client: RayzigClient,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rayzig_core")
    before = owned.call(state)
    states: list[object] = []
    bystander_client.subscribe_state(states.append)
    # The gateway closes the link at the first violation; a frame still incomplete ends with EOF.
    answer = await send_garbage(owned.port, GARBAGE[name], then_valid_hello=True)
    frames = StreamDeframer().feed(answer)
    assert all(parse_frame(f).kind is FrameKind.HANDSHAKE for f in frames)
    assert states == []
    assert bystander_client.stats.disconnects == 0
    assert (await bystander_client.get_info()).user == OWNER
    assert owned.call(state) == before
    assert owned.call(lambda g: len(g._connections)) == 1  # only the bystander's
    unexpected = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert unexpected == [], [r.getMessage() for r in unexpected]


async def test_garbage_sender_that_keeps_its_link_open_is_harmless(
    owned: GatewayThread, bystander_client: RayzigClient
) -> None:
    """A half-sent frame holds only its own link; other sessions go on."""
    reader, writer = await asyncio.open_connection(HOST, owned.port)
    try:
        writer.write(b"\x0f\xff" + b"\x01" * 100)  # promises 4095 bytes, sends 100
        await writer.drain()
        for _ in range(3):
            assert (await bystander_client.get_info()).user == OWNER
        assert not reader.at_eof()
    finally:
        writer.close()


async def test_long_client_names_do_not_break_the_client_list(owned: GatewayThread) -> None:
    """A client pairing with an absurd name must not stop every Administrator from listing."""
    for _ in range(4):
        pairing = RayzigClient(connector(owned), client_name="x" * 1000)
        identity = await pairing.identify()
        with pytest.raises(InvalidRequestError):  # refused before the password is even checked
            await pairing.pair(identity, OWNER, OWNER_PASSWORD)
    assert owned.call(lambda g: len(g.clients)) == 0
    _, credentials = await pair(owned)
    async with await connected(owned, credentials) as admin:
        assert [c.client_id for c in await admin.list_clients()] == [credentials.client_id]
        assert admin.stats.disconnects == 0


async def test_unknown_user_with_a_long_name_gets_a_decodable_refusal(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    async with await connected(owned, credentials) as admin:
        for name in ("n" * 1024, "\u0000" * 400, "\u0000" * 32):
            with pytest.raises((NotFoundError, InvalidRequestError)):
                await admin.delete_user(name)
        assert admin.stats.disconnects == 0
        assert admin.stats.retries == 0


async def test_a_client_that_stops_reading_is_dropped_and_stalls_no_one(
    owned: GatewayThread, bystander_client: RayzigClient
) -> None:
    """An enrolled client that never reads must not make the gateway buffer (and slow) forever."""
    _, credentials = await pair(owned)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a constrained link
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, owned.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    stalled = TcpTransport(reader, writer, "stalled")
    handshake = InitiatorHandshake(
        static_private=credentials.client_private_key,
        client_name="stalled",
        gateway_key=credentials.gateway_public_key,
    )
    await stalled.send(handshake.start())
    handshake.receive(await stalled.receive())
    assert handshake.gateway_hello is not None
    assert handshake.gateway_hello.client_enrolled

    def transports() -> set[asyncio.Transport]:
        assert owned._server is not None
        return owned._server.transports

    def shrink(g: VirtualGateway) -> None:  # and a small kernel buffer on the gateway's side
        for transport in transports():
            sock = transport.get_extra_info("socket")
            if sock.getpeername() == writer.get_extra_info("sockname"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    owned.call(shrink)
    module_id, index = switchable_output(owned)
    generated = 0
    try:
        for _ in range(20):  # the stalled link is never read from
            generate(owned, module_id, index, 1000)
            generated += 1000
            if owned.call(lambda g: len(g._connections)) == 1:
                break
        assert owned.call(lambda g: len(g._connections)) == 1, "the stalled link was kept"
        buffered = owned.call(lambda g: sum(t.get_write_buffer_size() for t in transports()))
        assert buffered < 64 * 1024
        # The bystander got every notification and carries on.
        await wait_for(lambda: bystander_client.stats.notifications >= 2 * generated, within=10)
        assert bystander_client.stats.disconnects == 0
        assert (await bystander_client.get_info()).user == OWNER
    finally:
        await stalled.close()
