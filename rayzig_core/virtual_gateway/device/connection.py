"""One link to the gateway: the handshake, then the secure channel (PROTOCOL.md §3).

A transport (the TCP server, the fake-I2C adapter) feeds the link's frames in and sends what the
connection hands to ``send_frame``. A protocol violation closes this link only. Requests are
answered in the order received (§5.2): while one waits for password work (§6.5), the frames
after it wait too, up to MAX_WAITING_FRAMES.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from rayzig_core.errors import HandshakeError, ProtocolError, SessionClosedError
from rayzig_core.models import UserLevel, UserLimitation
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.session import IK, SecureChannel
from rayzig_core.virtual_gateway.device.answers import INTERNAL, MAX_PLAINTEXT
from rayzig_core.virtual_gateway.device.limitation import visible_notice
from rayzig_core.virtual_gateway.device.state import ClientRecord

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.device.gateway import VirtualGateway

_LOGGER = logging.getLogger(__name__)

MAX_WAITING_FRAMES: Final = 64
"""Frames a link may send while its request waits for an answer; one more closes the link."""


class FrameSender(Protocol):
    """Sends one frame on a link; ``answer`` tells an answer from a notification.

    An answer is the reply to a handshake message or to a request, whenever it is ready (a password
    check finishes off the loop, §6.5); a notification is unsolicited. The I2C link flags the two
    apart (PROTOCOL.md §11.3), TCP does not need to.
    """

    def __call__(self, frame: bytes, *, answer: bool) -> None:
        """Send ``frame``."""


class GatewayConnection:
    """One link to the gateway: handshake, then the secure channel (PROTOCOL.md §3)."""

    def __init__(
        self,
        gateway: VirtualGateway,
        send_frame: FrameSender,
        close: Callable[[], None],
    ) -> None:
        self._gateway = gateway
        self._send_frame = send_frame
        self._close = close
        self._handshake = gateway.responder_handshake()
        self._channel: SecureChannel | None = None
        self.peer_key = b""
        self.client: ClientRecord | None = None
        self.close_after_reply = False
        self.closed = False
        self._answering: int | None = None
        """The id of the request waiting for its answer, if one is."""
        self._waiting: deque[bytes] = deque()
        self._receiving = False

    @property
    def level(self) -> UserLevel | None:
        """The authenticated user's level, None before pairing or in factory state."""
        if self.client is None:
            return None
        account = self._gateway.users.get(self.client.user)
        if account is None or account.must_change:
            return None
        return account.level

    @property
    def limitation(self) -> UserLimitation | None:
        """The limitation of the session's account (§7.4), None if it has none."""
        if self.client is None:
            return None
        account = self._gateway.users.get(self.client.user)
        return None if account is None else account.limitation

    def frame_received(self, raw: bytes) -> None:
        """Process one frame from the link; protocol violations close this link only."""
        if self.closed:
            return
        if self._answering is not None:
            if len(self._waiting) >= MAX_WAITING_FRAMES:
                _LOGGER.info("Closing a link that sends too much while its request waits")
                self.close()
                return
            self._waiting.append(raw)
            return
        self._receiving = True
        try:
            self._receive(raw)
        finally:
            self._receiving = False

    def _receive(self, raw: bytes) -> None:
        try:
            if self._channel is None:
                try:
                    self._handshake_step(raw)
                except HandshakeError as err:
                    _LOGGER.info("Refusing a handshake: %s", err)
                    self.close()
                return
            envelope = self._channel.open(raw)
            if not isinstance(envelope.message, m.Request):
                raise ProtocolError("clients may only send requests")
            # The notifications this request causes go out after its response (on every link).
            self._answering = envelope.request_id
            with self._gateway.deferring_notifications():
                self._gateway.handle(
                    self,
                    envelope.request_id,
                    envelope.message,
                    functools.partial(self._answer, envelope.request_id),
                )
        except (ProtocolError, SessionClosedError) as err:
            _LOGGER.debug("Closing link after protocol error: %s", err)
            self.close()

    def _answer(self, request_id: int, response: m.Response) -> None:
        """Send the answer to the request this link is waiting for, then go on with its frames."""
        if self._answering != request_id or self._channel is None:
            return
        self._answering = None
        if self.closed:
            return
        plaintext = m.encode(request_id, response)
        if len(plaintext) > MAX_PLAINTEXT:  # a bug: every answer must fit a frame (§5.1)
            _LOGGER.error(
                "%s of %d bytes does not fit a frame; answering INTERNAL",
                type(response).__name__,
                len(plaintext),
            )
            plaintext = m.encode(request_id, INTERNAL)
        try:
            self._send_frame(self._channel.seal_encoded(plaintext), answer=True)
        except (ProtocolError, SessionClosedError):
            self.close()
            return
        if self.close_after_reply:
            self.close()
            return
        if not self._receiving:  # answered later (password work): the frames that waited
            while self._waiting and self._answering is None and not self.closed:
                self.frame_received(self._waiting.popleft())

    def _handshake_step(self, raw: bytes) -> None:
        reply = self._handshake.receive(raw)
        if reply is not None:
            self._send_frame(reply, answer=True)
        if self._handshake.complete:
            self._channel = self._handshake.channel()
            self.peer_key = self._channel.remote_static
            self.client = self._gateway.accounts.client_by_key(self.peer_key)
            hello = self._handshake.gateway_hello
            if self._handshake.pattern == IK and hello is not None and not hello.client_enrolled:
                # §3.2: message 2 told the client its key is not enrolled (it must pair again);
                # the session ends here, so it can never look authenticated to a bridge.
                _LOGGER.info("Closing an IK session whose client key is not enrolled")
                self.close()

    def notify(self, notice: m.Notification) -> None:
        """Push a notification on this link, if its session is up and its account sees it."""
        if self._channel is None or self.closed:
            return
        limitation = self.limitation
        if limitation is not None:
            shown = visible_notice(limitation, notice)  # §7.4: only what the account sees
            if shown is None:
                return
            notice = shown
        try:
            self._send_frame(self._channel.seal(0, notice), answer=False)
        except (ProtocolError, SessionClosedError):
            self.close()

    def close(self) -> None:
        """End the session and the link; keys are dropped."""
        if self.closed:
            return
        self.closed = True
        if self._channel is not None:
            self._channel.close()
        self._gateway.detach(self)
        self._close()

    def connection_lost(self) -> None:
        """The transport went away."""
        if not self.closed:
            self.closed = True
            if self._channel is not None:
                self._channel.close()
            self._gateway.detach(self)
