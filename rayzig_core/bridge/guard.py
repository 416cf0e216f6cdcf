"""What the bridge can tell of a client's session without reading it (PROTOCOL.md §2.2, §3.2).

The bridge sees frame kinds and lengths, nothing more. It counts a client as **authenticated**
once it has forwarded, in this order: a ``HELLO_IK`` from the client (the key-only session of a
paired client), the gateway's ``HANDSHAKE`` answer, a ``TRANSPORT`` frame from the client and a
``TRANSPORT`` frame from the gateway (the gateway answers inside a session only once the handshake
has authenticated both ends). A Noise_XX session (first contact, pairing, password change,
recovery: one request each, §3.3) never counts: it stays among the pending connections and must
end within the login grace. Until then a client is pending in the bridge's
:class:`~rayzig_core.admission.Gatekeeper`; see :class:`ClientGuard`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rayzig_core.admission import Gatekeeper, Ticket
from rayzig_core.protocol.frames import FrameKind


@dataclass(slots=True)
class SessionWatch:
    """The frame kinds of one client's session so far, as far as authentication goes."""

    keyed: bool | None = None
    """Whether the first frame was HELLO_IK; None before the first frame."""
    answered: bool = False
    """The gateway answered the IK hello with its HANDSHAKE."""
    request_seen: bool = False
    reply_seen: bool = False

    def up(self, frame: bytes) -> None:
        """A frame from the client, about to be forwarded."""
        kind = frame[0]
        if self.keyed is None:
            self.keyed = kind == FrameKind.HELLO_IK
        elif kind == FrameKind.TRANSPORT and self.answered:
            self.request_seen = True

    def down(self, frame: bytes) -> None:
        """A frame from the gateway, about to be forwarded."""
        kind = frame[0]
        if self.keyed and kind == FrameKind.HANDSHAKE:
            self.answered = True
        elif kind == FrameKind.TRANSPORT and self.request_seen:
            self.reply_seen = True

    @property
    def authenticated(self) -> bool:
        """An IK handshake completed and one request answered inside the session."""
        return bool(self.keyed and self.answered and self.request_seen and self.reply_seen)


class ClientGuard:
    """One client's admission at the bridge: its gatekeeper ticket and what its frames show.

    ``promote()`` says whether there is room for one more authenticated client (``max_clients``);
    when there is not, :meth:`down` returns False and the client is closed.
    """

    def __init__(
        self,
        gatekeeper: Gatekeeper,
        ticket: Ticket,
        *,
        promote: Callable[[], bool],
        on_authenticated: Callable[[], None],
    ) -> None:
        self._gatekeeper = gatekeeper
        self.ticket = ticket
        self._promote = promote
        self._on_authenticated = on_authenticated
        self.watch = SessionWatch()

    def up(self, frames: list[bytes]) -> None:
        """Whole frames arrived from the client: it is alive (idle timeout) and they are seen."""
        self._gatekeeper.heard(self.ticket)
        for frame in frames:
            self.watch.up(frame)

    def partial(self, pending: bool) -> None:
        """Whether the client has a frame half-sent while the bridge waits for the rest."""
        self._gatekeeper.partial(self.ticket, pending)

    def down(self, frame: bytes) -> bool:
        """A gateway frame for the client; False if the client authenticated and has no room."""
        self.watch.down(frame)
        if self.ticket.authenticated or not self.watch.authenticated:
            return True
        if not self._promote():
            return False
        self._gatekeeper.authenticate(self.ticket)
        self._on_authenticated()
        return True
