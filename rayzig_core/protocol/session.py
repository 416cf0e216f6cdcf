"""Sans-I/O secure session (PROTOCOL.md §3): Noise handshakes and the encrypted channel.

Noise_XX_25519_ChaChaPoly_SHA256 serves first contact and pairing; Noise_IK_25519_ChaChaPoly_SHA256
serves paired clients, which already know the gateway's static key. Every session has fresh
ephemeral keys; transport nonces are the Noise counters, so a replayed, reordered, truncated or
tampered frame fails authentication, and any failure closes the channel for good (§3.5).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeAlias

from rayzig_core.errors import (
    DecodeError,
    FrameError,
    GatewayKeyChangedError,
    HandshakeError,
    ProtocolError,
    SessionClosedError,
)
from rayzig_core.protocol import messages
from rayzig_core.protocol.frames import MAX_FRAME, Frame, FrameKind, parse_frame
from rayzig_core.protocol.messages import ClientHello, Envelope, GatewayHello, Message
from rayzig_core.protocol.noise import CipherState, HandshakeState

PROLOGUE = b"RAYZIG/1"
"""Noise prologue: binds both ends to this protocol version (§3.1)."""
XX = "XX"
IK = "IK"


def fingerprint(public_key: bytes) -> str:
    """Human-comparable fingerprint of a static key: 16 bytes of SHA-256 as 8 hex groups (§3.4)."""
    digest = hashlib.sha256(b"rayzig-fingerprint\x00" + public_key).hexdigest()[:32].upper()
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


class SecureChannel:
    """Transport phase of a session: seals and opens catalogue messages (§3.5)."""

    __slots__ = ("_closed", "_recv", "_send", "handshake_hash", "remote_static")

    def __init__(
        self, send: CipherState, recv: CipherState, handshake_hash: bytes, remote_static: bytes
    ) -> None:
        self._send = send
        self._recv = recv
        self._closed = False
        self.handshake_hash = handshake_hash
        self.remote_static = remote_static

    @property
    def closed(self) -> bool:
        """Whether the channel has failed or been closed; a closed channel never reopens."""
        return self._closed

    def close(self) -> None:
        """Close the channel; later seal/open calls raise SessionClosedError."""
        self._closed = True

    def seal(self, request_id: int, message: Message) -> bytes:
        """Encrypt one message into a TRANSPORT frame."""
        return self.seal_encoded(messages.encode(request_id, message))

    def seal_encoded(self, plaintext: bytes) -> bytes:
        """Encrypt one already encoded message envelope into a TRANSPORT frame.

        An oversized plaintext raises FrameError before it uses up a nonce.
        """
        if self._closed:
            raise SessionClosedError("session is closed")
        if len(plaintext) + 1 + 16 > MAX_FRAME:
            raise FrameError(f"message of {len(plaintext)} bytes does not fit a frame")
        return Frame(FrameKind.TRANSPORT, self._send.encrypt_with_ad(b"", plaintext)).to_bytes()

    def open(self, raw: bytes) -> Envelope:
        """Authenticate, decrypt and decode one frame; any failure closes the channel."""
        if self._closed:
            raise SessionClosedError("session is closed")
        try:
            frame = parse_frame(raw)
            if frame.kind is not FrameKind.TRANSPORT:
                raise ProtocolError("handshake frame after the handshake completed")
            plaintext = self._recv.decrypt_with_ad(b"", frame.data)
            return messages.decode(plaintext)
        except (ProtocolError, SessionClosedError):
            self._closed = True
            raise


class InitiatorHandshake:
    """Client side of the handshake: XX without a pinned key, IK with one (§3.2).

    With ``expected_gateway_key`` set, an XX handshake refuses any other gateway key with
    GatewayKeyChangedError before the client reveals its static key.
    """

    def __init__(
        self,
        *,
        static_private: bytes,
        client_name: str,
        gateway_key: bytes | None = None,
        expected_gateway_key: bytes | None = None,
    ) -> None:
        self.pattern = IK if gateway_key is not None else XX
        self._expected = gateway_key if gateway_key is not None else expected_gateway_key
        self._hello = ClientHello(messages.PROTOCOL_VERSION, client_name)
        self._state = HandshakeState(
            f"Noise_{self.pattern}_25519_ChaChaPoly_SHA256",
            initiator=True,
            prologue=PROLOGUE,
            s=static_private,
            rs=gateway_key,
        )
        self.gateway_hello: GatewayHello | None = None
        self.gateway_key: bytes | None = None

    def start(self) -> bytes:
        """Return the first handshake frame."""
        if self.pattern == IK:
            data = self._state.write_message(messages.encode_hello(self._hello))
            return Frame(FrameKind.HELLO_IK, data).to_bytes()
        return Frame(FrameKind.HELLO_XX, self._state.write_message(b"")).to_bytes()

    def receive(self, raw: bytes) -> bytes | None:
        """Consume the gateway's handshake frame; return the next frame to send, if any."""
        frame = parse_frame(raw)
        if frame.kind is not FrameKind.HANDSHAKE:
            raise HandshakeError("expected a handshake frame")
        payload = self._state.read_message(frame.data)
        try:
            self.gateway_hello = messages.decode_gateway_hello(payload)
        except DecodeError as err:
            raise HandshakeError("gateway handshake payload is malformed") from err
        self.gateway_key = self._state.remote_static
        if self.gateway_key is None:
            raise HandshakeError("gateway did not present a static key")
        if self._expected is not None and self.gateway_key != self._expected:
            raise GatewayKeyChangedError(fingerprint(self._expected), fingerprint(self.gateway_key))
        if self.gateway_hello.protocol_version != messages.PROTOCOL_VERSION:
            raise HandshakeError(
                f"gateway speaks protocol version {self.gateway_hello.protocol_version}, "
                f"this library speaks {messages.PROTOCOL_VERSION}"
            )
        if self.pattern == XX:
            data = self._state.write_message(messages.encode_hello(self._hello))
            return Frame(FrameKind.HANDSHAKE, data).to_bytes()
        return None

    @property
    def complete(self) -> bool:
        """Whether the handshake has finished."""
        return self._state.complete

    def channel(self) -> SecureChannel:
        """The transport channel of the completed handshake."""
        if not self._state.complete or self.gateway_key is None:
            raise HandshakeError("handshake is not complete")
        send, recv = self._state.split()
        return SecureChannel(send, recv, self._state.handshake_hash, self.gateway_key)


HelloFactory: TypeAlias = Callable[[bytes | None], GatewayHello]
"""Builds the gateway's handshake payload, given the client's static key when already known (IK)."""


class ResponderHandshake:
    """Gateway side of the handshake; the first frame's kind selects XX or IK (§3.2)."""

    def __init__(self, *, static_private: bytes, hello_for: HelloFactory) -> None:
        self._static = static_private
        self._hello_for = hello_for
        self._state: HandshakeState | None = None
        self.pattern: str | None = None
        """XX or IK, chosen by the client's first frame."""
        self.client_hello: ClientHello | None = None
        self.client_key: bytes | None = None
        self.gateway_hello: GatewayHello | None = None
        """The payload of message 2, once sent."""

    def receive(self, raw: bytes) -> bytes | None:
        """Consume a client handshake frame; return the reply frame, if any."""
        frame = parse_frame(raw)
        if self._state is None:
            if frame.kind not in (FrameKind.HELLO_XX, FrameKind.HELLO_IK):
                raise HandshakeError("session must start with a hello frame")
            self.pattern = XX if frame.kind is FrameKind.HELLO_XX else IK
            self._state = HandshakeState(
                f"Noise_{self.pattern}_25519_ChaChaPoly_SHA256",
                initiator=False,
                prologue=PROLOGUE,
                s=self._static,
            )
            payload = self._state.read_message(frame.data)
            if self.pattern == XX:
                if payload:
                    raise HandshakeError("XX first message must carry no payload")
                return self._write_hello(None)
            self._take_client_hello(payload)
            return self._write_hello(self.client_key)
        if frame.kind is not FrameKind.HANDSHAKE or self._state.complete:
            raise HandshakeError("unexpected handshake frame")
        self._take_client_hello(self._state.read_message(frame.data))
        return None

    def _write_hello(self, client_key: bytes | None) -> bytes:
        """Message 2: the gateway's handshake frame carrying its GatewayHello."""
        assert self._state is not None
        self.gateway_hello = self._hello_for(client_key)
        reply = self._state.write_message(messages.encode_hello(self.gateway_hello))
        return Frame(FrameKind.HANDSHAKE, reply).to_bytes()

    def _take_client_hello(self, payload: bytes) -> None:
        assert self._state is not None
        try:
            self.client_hello = messages.decode_client_hello(payload)
        except DecodeError as err:
            raise HandshakeError("client handshake payload is malformed") from err
        if self.client_hello.protocol_version != messages.PROTOCOL_VERSION:
            # §1.3: no session with a peer of another version (nothing is sent before the session).
            raise HandshakeError(
                f"client speaks protocol version {self.client_hello.protocol_version}, "
                f"this gateway speaks {messages.PROTOCOL_VERSION}"
            )
        self.client_key = self._state.remote_static

    @property
    def complete(self) -> bool:
        """Whether the handshake has finished."""
        return self._state is not None and self._state.complete

    def channel(self) -> SecureChannel:
        """The transport channel of the completed handshake."""
        if self._state is None or not self._state.complete or self.client_key is None:
            raise HandshakeError("handshake is not complete")
        send, recv = self._state.split()
        return SecureChannel(send, recv, self._state.handshake_hash, self.client_key)
