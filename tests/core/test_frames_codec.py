"""Frames, the message codec and the secure session, sans-I/O (PROTOCOL.md §2, §3, §5).

Size limits, truncation and malformed input give typed errors; every catalogue message round-trips;
a session refuses tampered, replayed, reordered, truncated and out-of-phase frames and stays closed.
"""

from __future__ import annotations

from collections.abc import Callable

import cbor2
import pytest

from rayzig_core.errors import (
    DecodeError,
    DecryptError,
    FrameError,
    GatewayKeyChangedError,
    HandshakeError,
    ProtocolError,
    SessionClosedError,
)
from rayzig_core.models import (
    EnrolledClient,
    Event,
    EventKind,
    FirmwarePart,
    FirmwareVersion,
    GatewayInfo,
    GatewayUser,
    Module,
    ModuleKind,
    Output,
    OutputRef,
    RestorePreset,
    Telemetry,
    UserLevel,
    UserLimitation,
)
from rayzig_core.protocol import codec
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
from rayzig_core.protocol.session import (
    InitiatorHandshake,
    ResponderHandshake,
    SecureChannel,
    fingerprint,
)

# --- frames -------------------------------------------------------------------------------------


def test_frame_round_trip_and_limits() -> None:
    frame = Frame(FrameKind.TRANSPORT, b"x" * (MAX_FRAME - 1))
    assert parse_frame(frame.to_bytes()) == frame
    with pytest.raises(FrameError):
        Frame(FrameKind.TRANSPORT, b"x" * MAX_FRAME).to_bytes()
    with pytest.raises(FrameError):
        parse_frame(b"\x10" + b"x" * MAX_FRAME)
    with pytest.raises(FrameError):
        parse_frame(b"")
    for kind in (0x00, 0x04, 0x0F, 0x11, 0xFF):
        with pytest.raises(FrameError):
            parse_frame(bytes((kind,)) + b"data")
    assert parse_frame(b"\x01") == Frame(FrameKind.HELLO_XX, b"")


def test_length_prefix_limits() -> None:
    assert length_prefixed(b"\x01ab") == b"\x00\x03\x01ab"
    with pytest.raises(FrameError):
        length_prefixed(b"")
    with pytest.raises(FrameError):
        length_prefixed(b"x" * (MAX_FRAME + 1))


def test_deframer_reassembles_frames_fed_a_byte_at_a_time() -> None:
    frames = [b"\x01", b"\x10" + b"a" * 300, b"\x03" + bytes(range(256)) * 4]
    stream = b"".join(length_prefixed(f) for f in frames)
    deframer = StreamDeframer()
    out: list[bytes] = []
    for byte in stream:
        out.extend(deframer.feed(bytes((byte,))))
    assert out == frames
    assert deframer.pending == 0
    assert StreamDeframer().feed(stream) == frames


def test_deframer_reports_a_truncated_frame_as_pending() -> None:
    deframer = StreamDeframer()
    assert deframer.feed(length_prefixed(b"\x10" + b"z" * 10)[:-3]) == []
    assert deframer.pending == 10


@pytest.mark.parametrize("prefix", [b"\x00\x00", (MAX_FRAME + 1).to_bytes(2, "big"), b"\xff\xff"])
def test_impossible_length_poisons_the_deframer(prefix: bytes) -> None:
    deframer = StreamDeframer()
    assert deframer.feed(length_prefixed(b"\x01")) == [b"\x01"]
    with pytest.raises(FrameError):
        deframer.feed(prefix + b"\x10abc")
    with pytest.raises(FrameError):  # the stream cannot be resynchronised
        deframer.feed(length_prefixed(b"\x01"))


# --- the message codec --------------------------------------------------------------------------

OUTPUT = Output(0, "Boiler", True, RestorePreset.LAST, False)
TELEMETRY = Telemetry(180, 55, 20, True)
MODULE = Module(
    3, "RZ1234567", "Cellar", ModuleKind.BATTERY, "RB-1", "1.2", (OUTPUT,), TELEMETRY, 9, 9
)
EVENT = Event(3, 9, 1_700_000_000.5, EventKind.COMMAND, 0, "installer", True)
VERSION = FirmwareVersion(FirmwarePart.TFT, "1.0.7", 1)
LIMITATION = UserLimitation((3,), (OutputRef(5, 1),), read_only=True)
INFO = GatewayInfo("RG1-1", "Rayzig Gateway RG-1", 1, "AAAA", (VERSION,), "installer",
                   UserLevel.SYSTEM, False)  # fmt: skip

SAMPLES: list[m.Message] = [
    m.Ping(), m.GetInfo(), m.Pair("installer", "pw", "HA"), m.ChangePassword("u", "a", "b"),
    m.RecoverPassword("ABCDE", "new"), m.ListModules(0), m.SetOutput(3, 0, on=True),
    m.SetRestorePreset(3, 0, RestorePreset.ON), m.GetTelemetry(3), m.ReadEvents(3, 0, 512),
    m.ListUsers(), m.AddUser("u", UserLevel.USER, "pw"), m.DeleteUser("u"), m.ListClients(),
    m.RevokeClient(0), m.SetUtilityOutput(3, 0, controllable=False), m.GetFirmware(),
    m.FirmwareBegin(b"manifest", b"s" * 64), m.FirmwareChunk(FirmwarePart.TFT, 0, b"data", 7),
    m.FirmwareCommit(FirmwarePart.TFT), m.Ok(),
    m.ErrorResponse(m.ErrorCode.THROTTLED, "wait", 2.5, ("common",)),
    m.ErrorResponse(m.ErrorCode.NOT_FOUND, "no"), m.InfoResponse(INFO),
    m.Paired(1, "u", UserLevel.USER),
    m.ModulePage((MODULE,), 1), m.OutputResponse(3, OUTPUT), m.TelemetryResponse(3, TELEMETRY),
    m.EventBatch(3, (EVENT,), 1, 9), m.UserList((GatewayUser("u", UserLevel.USER),)),
    m.ClientList((EnrolledClient(1, "HA", "u", "AAAA"),)), m.FirmwareList((VERSION,)),
    m.FirmwareProgress(FirmwarePart.TFT, 0, 10), m.OutputChanged(3, OUTPUT, EventKind.COMMAND),
    m.EventsAvailable(3, 9), m.TelemetryChanged(3, TELEMETRY), m.ModuleJoined(MODULE),
    m.ModuleLeft(3), m.FirmwareChanged((VERSION,)),
    m.SetUserLimitation("u", LIMITATION), m.SetUserLimitation("u", None),
    m.GetUserLimitation("u"), m.UserLimitationResponse("u", LIMITATION),
    m.UserLimitationResponse("u", None),
    m.ErrorResponse(m.ErrorCode.OUTSIDE_LIMITATION, "Module 5 is outside the limitation"),
]  # fmt: skip


def test_samples_cover_the_whole_catalogue() -> None:
    assert {type(sample) for sample in SAMPLES} == set(m.CATALOGUE.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_catalogue_message_round_trips(message: m.Message) -> None:
    request_id = 0 if isinstance(message, m.Notification) else 2**62 + 5
    envelope = m.decode(m.encode(request_id, message))
    assert envelope == m.Envelope(request_id, message)


def raw(*items: object) -> bytes:
    return cbor2.dumps(list(items))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\x00", id="not-cbor"),
        pytest.param(cbor2.dumps({"type": 1}), id="map"),
        pytest.param(raw(0x01), id="no-request-id"),
        pytest.param(raw(0x3F, 1), id="unknown-type"),
        pytest.param(raw("1", 1), id="type-as-text"),
        pytest.param(raw(0x01, -1), id="negative-id"),
        pytest.param(raw(0x01, 2**63), id="id-too-large"),
        pytest.param(raw(0x01, True), id="bool-id"),
        pytest.param(raw(0x01, 1, "extra"), id="extra-field"),
        pytest.param(raw(0x07, 1, 3, 0), id="missing-field"),
        pytest.param(raw(0x07, 1, 3, 0, 1), id="int-for-bool"),
        pytest.param(raw(0x07, 1, True, 0, True), id="bool-for-int"),
        pytest.param(raw(0x07, 1, 2**64, 0, True), id="int-out-of-range"),
        pytest.param(raw(0x08, 1, 3, 0, 7), id="unknown-enum"),
        pytest.param(raw(0x0D, 1, "x" * (codec.MAX_TEXT + 1)), id="long-text"),
        pytest.param(raw(0x0D, 1, b"bytes"), id="bytes-for-text"),
        pytest.param(raw(0x12, 1, "text", b"sig"), id="text-for-bytes"),
        pytest.param(raw(0x41, 1, 5, "m", float("nan")), id="nan"),
        pytest.param(raw(0x41, 1, 5, "m", None, "not-a-list"), id="not-an-array"),
        pytest.param(raw(0x47, 1, 3, [[3, 1, 1.0, 99, None, None, None]], 1, 1), id="bad-event"),
        pytest.param(raw(0x15, 1, "u", [[3], [], False, False, True]), id="limitation-extra"),
        pytest.param(raw(0x15, 1, "u", [[3], [[5]], False, False]), id="output-ref-short"),
        pytest.param(raw(0x15, 1, "u", [["3"], [], False, False]), id="module-id-as-text"),
        pytest.param(raw(0x15, 1, "u"), id="limitation-missing"),
        pytest.param(raw(0x41, 1, 18, "m"), id="unknown-error-code"),
    ],
)
def test_malformed_payloads_are_decode_errors(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        m.decode(payload)


def test_handshake_payloads_are_checked() -> None:
    hello = m.GatewayHello(1, "RG1", "model", False, True, MAX_FRAME)
    assert m.decode_gateway_hello(m.encode_hello(hello)) == hello
    with pytest.raises(DecodeError):
        m.decode_gateway_hello(raw(1, "RG1", "model", False))
    with pytest.raises(DecodeError):
        m.decode_client_hello(raw("1", "name"))
    with pytest.raises(DecodeError):
        m.decode_client_hello(b"\x9f")


# --- sessions -----------------------------------------------------------------------------------

GATEWAY_PRIVATE = generate_keypair()[0]
GATEWAY_KEY = public_key_of(GATEWAY_PRIVATE)


def hello_for(client_key: bytes | None) -> m.GatewayHello:
    return m.GatewayHello(1, "RG1-TEST", "model", False, client_key is not None, MAX_FRAME)


def handshake(*, ik: bool = True) -> tuple[SecureChannel, SecureChannel, ResponderHandshake]:
    client_private = generate_keypair()[0]
    initiator = InitiatorHandshake(
        static_private=client_private,
        client_name="test",
        gateway_key=GATEWAY_KEY if ik else None,
    )
    responder = ResponderHandshake(static_private=GATEWAY_PRIVATE, hello_for=hello_for)
    message = initiator.start()
    while not (initiator.complete and responder.complete):
        reply = responder.receive(message)
        if reply is None:
            break
        message = initiator.receive(reply)  # type: ignore[assignment]
        if message is None:
            break
    assert initiator.complete
    assert responder.complete
    assert responder.client_key == public_key_of(client_private)
    assert responder.client_hello == m.ClientHello(1, "test")
    return initiator.channel(), responder.channel(), responder


@pytest.mark.parametrize("ik", [True, False], ids=["IK", "XX"])
def test_session_carries_messages_both_ways(ik: bool) -> None:
    client, gateway, _ = handshake(ik=ik)
    assert client.remote_static == GATEWAY_KEY
    assert client.handshake_hash == gateway.handshake_hash
    assert gateway.open(client.seal(7, m.GetInfo())) == m.Envelope(7, m.GetInfo())
    assert client.open(gateway.seal(7, m.Ok())) == m.Envelope(7, m.Ok())


Mangle = Callable[[bytes, bytes], bytes]
"""(first frame, second frame) → what arrives second."""


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda first, second: first, id="replay"),
        pytest.param(lambda first, second: second[:-1], id="truncated"),
        pytest.param(lambda first, second: second[:17], id="shorter-than-tag"),
        pytest.param(lambda first, second: second[:1], id="kind-only"),
        pytest.param(lambda first, second: second[:-5] + bytes([second[-5] ^ 1]) + second[-4:],
                     id="bit-flip"),
        pytest.param(lambda first, second: bytes([FrameKind.HANDSHAKE]) + second[1:],
                     id="handshake-kind"),
        pytest.param(lambda first, second: b"", id="empty"),
    ],
)  # fmt: skip
def test_bad_frame_closes_the_channel_for_good(mangle: Mangle) -> None:
    client, gateway, _ = handshake()
    first = client.seal(1, m.Ping())
    second = client.seal(2, m.Ping())
    third = client.seal(3, m.Ping())
    assert gateway.open(first).request_id == 1
    with pytest.raises(ProtocolError):
        gateway.open(mangle(first, second))
    assert gateway.closed
    with pytest.raises(SessionClosedError):
        gateway.open(third)
    with pytest.raises(SessionClosedError):
        gateway.seal(1, m.Ok())


def test_reordered_frames_fail_authentication() -> None:
    client, gateway, _ = handshake()
    client.seal(1, m.Ping())
    second = client.seal(2, m.Ping())
    with pytest.raises(DecryptError):
        gateway.open(second)


def test_frames_of_another_session_fail_authentication() -> None:
    client, _, _ = handshake()
    _, other_gateway, _ = handshake()
    with pytest.raises(DecryptError):
        other_gateway.open(client.seal(1, m.Ping()))


def test_nothing_but_a_hello_starts_a_session() -> None:
    client, _, _ = handshake()
    for first in (client.seal(1, m.Ping()), b"\x03" + b"\x00" * 48, b"\x10"):
        responder = ResponderHandshake(static_private=GATEWAY_PRIVATE, hello_for=hello_for)
        with pytest.raises(HandshakeError):
            responder.receive(first)
        assert not responder.complete
        with pytest.raises(HandshakeError):
            responder.channel()


def test_xx_refuses_another_gateway_before_revealing_the_client_key() -> None:
    pinned = public_key_of(generate_keypair()[0])
    initiator = InitiatorHandshake(
        static_private=generate_keypair()[0], client_name="test", expected_gateway_key=pinned
    )
    responder = ResponderHandshake(static_private=GATEWAY_PRIVATE, hello_for=hello_for)
    reply = responder.receive(initiator.start())
    assert reply is not None
    with pytest.raises(GatewayKeyChangedError) as caught:
        initiator.receive(reply)
    assert caught.value.pinned_fingerprint == fingerprint(pinned)
    assert caught.value.presented_fingerprint == fingerprint(GATEWAY_KEY)
    assert not initiator.complete
    assert responder.client_key is None


def test_ik_to_the_wrong_gateway_fails_at_the_gateway() -> None:
    initiator = InitiatorHandshake(
        static_private=generate_keypair()[0],
        client_name="test",
        gateway_key=public_key_of(generate_keypair()[0]),
    )
    responder = ResponderHandshake(static_private=GATEWAY_PRIVATE, hello_for=hello_for)
    with pytest.raises(ProtocolError):
        responder.receive(initiator.start())
    assert responder.client_key is None


def test_fingerprint_format() -> None:
    value = fingerprint(GATEWAY_KEY)
    groups = value.split("-")
    assert len(groups) == 8
    assert all(len(g) == 4 and g == g.upper() for g in groups)
    assert int("".join(groups), 16) >= 0
    assert fingerprint(public_key_of(generate_keypair()[0])) != value
