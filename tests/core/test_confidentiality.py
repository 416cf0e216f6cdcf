"""ETSI EN 303 645 5.5-6 / 5.5-7: passwords and the recovery secret never cross a link in clear.

A recorder sits between a real :class:`RayzigClient` and the real virtual gateway and keeps every
byte that crosses:

* on loopback TCP, a man-in-the-middle proxy that forwards raw bytes unchanged and keeps them;
* on the I2C path, the fake kernel's ``I2C_RDWR`` boundary: every byte smbus2 hands to the
  "kernel" and every byte it reads back (PROTOCOL.md §11.13), link headers, CRCs and padding
  included.

The recorded conversation is everything that carries a secret: first contact, the label's default
password replaced in factory state, pairing, a user added with a password, and the System password
reset with the recovery secret. None of those secrets, the new passwords or the recovery secret
appear in the capture: not as UTF-8, not as UTF-16 (either byte order), not as their CBOR text
(or byte-string) encoding as a plaintext message would carry them, and not even 8 bytes of any of
those. Each capture is first shown to be complete (byte for byte what the gateway received and
sent), and the needles are shown to be exactly what a plaintext request would contain, so the
absence is meaningful. Two sessions sending the very same request with the same static key and
request id share no frame and no 16 bytes of ciphertext: every session has fresh ephemeral keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import UserLevel
from rayzig_core.protocol import codec
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import FrameKind, length_prefixed
from rayzig_core.protocol.link import CHUNK_HEADER_LEN, Command, Reply
from rayzig_core.protocol.noise import generate_keypair
from rayzig_core.protocol.session import InitiatorHandshake, ResponderHandshake, SecureChannel
from rayzig_core.testing.fake_i2c import I2C_M_RD, FakeI2CBus
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.i2c import I2CConnector
from rayzig_core.transport.tcp import TcpConnector
from rayzig_core.virtual_gateway import FactorySecrets, GatewayConnection, VirtualGateway
from rayzig_core.virtual_gateway.credentials import normalize_recovery_secret
from rayzig_core.virtual_gateway.device.connection import FrameSender
from tests.core.conftest import (
    HANG_TIMEOUT,
    HOST,
    OWNER,
    OWNER_PASSWORD,
    PASSWORDS,
    SCRYPT_N,
    RawSession,
)

RECOVERED_PASSWORD = "amber kestrel counts the ferry lights"
"""The System password set through the recovery secret."""
WINDOW = 8
"""No run of this many bytes of any encoding of a secret may appear in a capture."""
FRESHNESS_WINDOW = 16
"""Two sessions' ciphertexts may share no run of this many bytes."""
BUS = 3
ADDRESS = 0x42


# --- what must not appear ------------------------------------------------------------------------


def encodings(secret: str) -> dict[str, bytes]:
    """Every way a secret could travel if it were not encrypted."""
    utf8 = secret.encode("utf-8")
    utf16le = secret.encode("utf-16-le")
    utf16be = secret.encode("utf-16-be")
    return {
        "UTF-8": utf8,
        "UTF-16-LE": utf16le,
        "UTF-16-BE": utf16be,
        "CBOR text": codec.dumps(secret),
        "CBOR bytes of UTF-8": codec.dumps(utf8),
        "CBOR bytes of UTF-16-LE": codec.dumps(utf16le),
        "CBOR bytes of UTF-16-BE": codec.dumps(utf16be),
    }


def needles(secrets: dict[str, str]) -> dict[str, bytes]:
    """Name → bytes to look for; a name never contains the secret itself."""
    return {
        f"{name} ({encoding})": data
        for name, secret in secrets.items()
        for encoding, data in encodings(secret).items()
    }


def leaks(capture: bytes, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets (and encodings) of which WINDOW bytes or more occur in ``capture``.

    Returns names only: an assertion message must not print a secret.
    """
    found = []
    for name, needle in needles(secrets).items():
        if needle in capture or any(
            needle[i : i + WINDOW] in capture for i in range(len(needle) - WINDOW + 1)
        ):
            found.append(name)
    return found


def windows(data: bytes, size: int) -> set[bytes]:
    return {data[i : i + size] for i in range(len(data) - size + 1)}


# --- the recorded conversation -------------------------------------------------------------------


ClientFactory = Callable[[ClientCredentials | None], RayzigClient]


async def exchange_secrets(new_client: ClientFactory, factory: FactorySecrets) -> dict[str, str]:
    """Everything that carries a secret, through real clients; returns the secrets used."""
    first = new_client(None)
    try:
        identity = await first.identify()
        assert identity.factory_state
        await first.change_password(
            identity.public_key, OWNER, factory.default_password, OWNER_PASSWORD
        )
        credentials = await first.pair(identity, OWNER, OWNER_PASSWORD)
    finally:
        await first.close()
    owner = new_client(credentials)
    try:
        await owner.connect()
        await owner.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
    finally:
        await owner.close()
    rescuer = new_client(None)
    try:
        await rescuer.recover_password(
            identity.public_key, factory.recovery_secret, RECOVERED_PASSWORD
        )
        # Both passwords reached the gateway intact: they work.
        ursula = await rescuer.pair(identity, "ursula", PASSWORDS["ursula"])
        assert ursula.level is UserLevel.USER
        again = await rescuer.pair(identity, OWNER, RECOVERED_PASSWORD)
        assert again.level is UserLevel.SYSTEM
    finally:
        await rescuer.close()
    return {
        "default password": factory.default_password,
        "owner password": OWNER_PASSWORD,
        "added user's password": PASSWORDS["ursula"],
        "recovery secret": factory.recovery_secret,
        "recovery secret, normalised": normalize_recovery_secret(factory.recovery_secret),
        "password set by recovery": RECOVERED_PASSWORD,
    }


def test_needles_are_what_a_plaintext_request_would_carry() -> None:
    """The search means something: plaintext requests hold the needles, sealed ones do not."""
    secret = "AB1CD-EF2GH-JK3MN-PQ4RS-TV5WX"
    requests: list[tuple[m.Request, dict[str, str]]] = [
        (m.Pair(OWNER, OWNER_PASSWORD, "HA"), {"password": OWNER_PASSWORD}),
        (
            m.ChangePassword(OWNER, "abcd-efgh-jkmn-pqrs", RECOVERED_PASSWORD),
            {"old": "abcd-efgh-jkmn-pqrs", "new": RECOVERED_PASSWORD},
        ),
        (m.AddUser("ursula", UserLevel.USER, PASSWORDS["ursula"]), {"pw": PASSWORDS["ursula"]}),
        (m.RecoverPassword(secret, RECOVERED_PASSWORD), {"secret": secret}),
    ]
    channel = in_memory_channel()
    for request, secrets in requests:
        plaintext = m.encode(7, request)
        found = leaks(plaintext, secrets)
        for name, value in secrets.items():
            assert codec.dumps(value) in plaintext  # exactly how a message carries a text
            assert {f"{name} (UTF-8)", f"{name} (CBOR text)"} <= set(found)
        assert leaks(channel.seal(7, request), secrets) == []
    utf16 = "prefix ".encode("utf-16-le") + OWNER_PASSWORD.encode("utf-16-le")
    assert {"password (UTF-16-LE)", "password (CBOR bytes of UTF-16-LE)"} <= set(
        leaks(utf16, {"password": OWNER_PASSWORD})
    )


def in_memory_channel() -> SecureChannel:
    """The client side of an XX handshake completed in memory with a responder (no gateway)."""
    responder = ResponderHandshake(
        static_private=generate_keypair()[0],
        hello_for=lambda _: m.GatewayHello(
            m.PROTOCOL_VERSION,
            "RG1-TEST",
            "model",
            factory_state=False,
            client_enrolled=False,
            max_frame=4096,
        ),
    )
    initiator = InitiatorHandshake(static_private=generate_keypair()[0], client_name="test")
    reply = responder.receive(initiator.start())
    assert reply is not None
    final = initiator.receive(reply)
    assert final is not None
    responder.receive(final)
    return initiator.channel()


# --- what the gateway itself received and sent ---------------------------------------------------


@dataclass
class GatewayView:
    """Frames each link of the gateway received and sent, in order (recorded on its thread)."""

    links: list[tuple[list[bytes], list[bytes]]] = field(default_factory=list)

    def install(self, gateway: VirtualGateway) -> None:
        original = gateway.attach

        def attach(send_frame: FrameSender, close: Callable[[], None]) -> GatewayConnection:
            received: list[bytes] = []
            sent: list[bytes] = []

            def send(frame: bytes, *, answer: bool) -> None:
                sent.append(frame)
                send_frame(frame, answer=answer)

            connection = original(send, close)
            handle = connection.frame_received

            def frame_received(raw: bytes) -> None:
                received.append(raw)
                handle(raw)

            connection.frame_received = frame_received  # type: ignore[method-assign]
            self.links.append((received, sent))
            return connection

        gateway.attach = attach  # type: ignore[method-assign]


def watch(gw: GatewayThread) -> GatewayView:
    view = GatewayView()
    gw.call(view.install)
    return view


def snapshot(gw: GatewayThread, view: GatewayView) -> list[tuple[list[bytes], list[bytes]]]:
    """The view, copied on the gateway's thread."""
    return gw.call(lambda _: [(list(r), list(s)) for r, s in view.links])


# --- loopback TCP: a recording man in the middle -------------------------------------------------


@dataclass
class RecordedLink:
    to_gateway: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Recorder:
    """A TCP proxy on 127.0.0.1 that forwards every byte unchanged and keeps a copy."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.links: list[RecordedLink] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Recorder:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Before Python 3.12 asyncio keeps only a weak reference to this callback's task: without
        # ours, the garbage collector may destroy it mid-link (the link then never "settles").
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        link = RecordedLink()
        self.links.append(link)
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            writer.close()
            link.done.set()
            return
        await asyncio.gather(
            self._pump(reader, up_writer, link.to_gateway),
            self._pump(up_reader, writer, link.to_client),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            w.close()
        link.done.set()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kept: bytearray
    ) -> None:
        try:
            while data := await reader.read(65536):
                kept.extend(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # Half-close: the other direction keeps flowing until its own end closes.
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()

    async def settled(self) -> None:
        """Wait until every recorded connection has ended in both directions (or fail on a hang)."""
        for number, link in enumerate(self.links):
            try:
                await asyncio.wait_for(link.done.wait(), HANG_TIMEOUT)
            except TimeoutError:
                pytest.fail(f"recorded link {number} never ended")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def capture(self) -> bytes:
        return b"".join(bytes(link.to_gateway) + bytes(link.to_client) for link in self.links)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    gw = GatewayThread(tmp_path / "gw.json", scrypt_n=SCRYPT_N).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
async def recorder(gateway: GatewayThread) -> AsyncIterator[Recorder]:
    proxy = await Recorder(gateway.port).start()
    try:
        yield proxy
    finally:
        await proxy.close()


def tcp_client(port: int) -> ClientFactory:
    def make(credentials: ClientCredentials | None) -> RayzigClient:
        return RayzigClient(TcpConnector(HOST, port, timeout=5.0), credentials, request_timeout=5.0)

    return make


async def test_no_secret_crosses_loopback_tcp_in_clear(
    gateway: GatewayThread, recorder: Recorder
) -> None:
    assert gateway.factory is not None
    view = watch(gateway)
    secrets = await exchange_secrets(tcp_client(recorder.port), gateway.factory)
    await recorder.settled()

    # The capture is complete: byte for byte what the gateway received and sent, per link.
    seen = snapshot(gateway, view)
    assert len(recorder.links) == len(seen) >= 6
    for link, (received, sent) in zip(recorder.links, seen, strict=True):
        assert bytes(link.to_gateway) == b"".join(length_prefixed(f) for f in received)
        assert bytes(link.to_client) == b"".join(length_prefixed(f) for f in sent)
    frames = [frame for received, sent in seen for frame in received + sent]
    assert any(frame[0] == FrameKind.TRANSPORT for frame in frames)

    capture = recorder.capture()
    assert len(capture) > 2000
    assert leaks(capture, secrets) == []


async def test_the_same_request_twice_shares_no_ciphertext(
    gateway: GatewayThread, recorder: Recorder
) -> None:
    """Same static key, same request id, same Pair: only the fresh ephemeral keys differ."""
    gateway.setup_owner(OWNER_PASSWORD)
    static = generate_keypair()[0]
    answers = []
    for _ in range(2):
        session = await RawSession.open(recorder.port, static_private=static)
        try:
            answers.append(await session.request(7, m.Pair(OWNER, OWNER_PASSWORD, "same client")))
        finally:
            await session.close()
    await recorder.settled()
    assert isinstance(answers[0], m.Paired)
    assert answers[0] == answers[1]  # the same plaintext answer (the second from the replay cache)

    first, second = recorder.links
    for a, b in ((first.to_gateway, second.to_gateway), (first.to_client, second.to_client)):
        assert len(a) == len(b)  # the same messages, so the same frame sizes ...
        assert a != b
        # ... but beyond the length prefixes and frame kinds, not 16 bytes in common.
        assert windows(_bodies(bytes(a)), FRESHNESS_WINDOW).isdisjoint(
            windows(_bodies(bytes(b)), FRESHNESS_WINDOW)
        )
    assert leaks(recorder.capture(), {"password": OWNER_PASSWORD}) == []


def _bodies(stream: bytes) -> bytes:
    """The frames of a length-prefixed stream without prefix and kind byte, joined by a marker."""
    bodies = []
    while stream:
        length = int.from_bytes(stream[:2], "big")
        bodies.append(stream[3 : 2 + length])
        stream = stream[2 + length :]
    return b"\x00|\x00".join(bodies)


# --- I2C: the fake kernel boundary ---------------------------------------------------------------


class RecordingBus(FakeI2CBus):
    """A fake /dev/i2c-N that keeps every byte of every I2C_RDWR message, both directions."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.writes: list[bytes] = []
        self.reads: list[bytes] = []

    def _transfer(self, messages: list[Any], touched: list[Any]) -> None:
        for message in messages:
            if not message.flags & I2C_M_RD:
                self.writes.append(ctypes.string_at(message.buf, int(message.len)))
        super()._transfer(messages, touched)
        for message in messages:
            if message.flags & I2C_M_RD:
                self.reads.append(ctypes.string_at(message.buf, int(message.len)))

    def capture(self) -> bytes:
        return b"".join(self.writes) + b"".join(self.reads)

    def payload_to_gateway(self) -> bytes:
        """The frame bytes carried by PUT chunks, link headers and CRCs removed (§11.3)."""
        return b"".join(
            w[CHUNK_HEADER_LEN : CHUNK_HEADER_LEN + w[5]]
            for w in self.writes
            if len(w) > CHUNK_HEADER_LEN and w[0] & 0x0F == Command.PUT
        )

    def payload_to_host(self) -> bytes:
        """The frame bytes carried by CHUNK replies, link headers, CRCs and padding removed."""
        return b"".join(
            r[CHUNK_HEADER_LEN : CHUNK_HEADER_LEN + r[5]]
            for r in self.reads
            if len(r) > CHUNK_HEADER_LEN and r[0] == Reply.CHUNK
        )


async def test_no_secret_crosses_the_i2c_bus_in_clear(tmp_path: Path) -> None:
    bus = RecordingBus(BUS)
    gw = GatewayThread(tmp_path / "gw.json", scrypt_n=SCRYPT_N, i2c=bus, i2c_address=ADDRESS)

    def make(credentials: ClientCredentials | None) -> RayzigClient:
        connector = I2CConnector(BUS, ADDRESS, poll_interval=0.0005)
        return RayzigClient(connector, credentials, request_timeout=5.0)

    with bus.installed():
        gw.start()
        try:
            assert gw.factory is not None
            view = watch(gw)
            secrets = await exchange_secrets(make, gw.factory)
            seen = snapshot(gw, view)
        finally:
            gw.stop()

    # The capture holds every frame the gateway received and sent, in order.
    assert len(seen) >= 6
    assert bus.payload_to_gateway() == b"".join(f for received, _ in seen for f in received)
    assert bus.payload_to_host() == b"".join(f for _, sent in seen for f in sent)

    for name, capture in (
        ("raw I2C messages", bus.capture()),
        ("frames to the gateway", bus.payload_to_gateway()),
        ("frames to the host", bus.payload_to_host()),
    ):
        assert len(capture) > 1000, name
        assert leaks(capture, secrets) == [], name
