"""Connection hygiene for the servers: who may hold a connection, and for how long.

After OpenSSH's ``LoginGraceTime`` and ``MaxStartups`` (PROTOCOL.md §2.2, §3.2): a connection
must authenticate within a deadline; connections that have not yet share a small pool, and when
it is full the **oldest** of them is dropped, so that a real client always gets in however many
silent sockets a neighbour opens; a frame that stops half-way is dropped after a deadline; an
authenticated session that sends nothing for the idle timeout (clients send ``Ping``, §5.2, as a
keep-alive) is dropped. The virtual gateway's TCP server and the bridge each keep a
:class:`Gatekeeper` and tell it what they see; the gatekeeper decides. Sans-I/O: it schedules
nothing itself; the server calls :meth:`Gatekeeper.sweep` about once a second, and a test calls it
directly after moving a fake clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_LOGGER = logging.getLogger(__name__)

DEFAULT_LOGIN_GRACE = 30.0
"""Seconds a connection has to authenticate (a client bounds its own handshake by 10 s, §3.2)."""
DEFAULT_FRAME_TIMEOUT = 10.0
"""Seconds a frame whose first bytes arrived may take to arrive whole (§2.2)."""
DEFAULT_IDLE_TIMEOUT = 180.0
"""Seconds an authenticated session may send nothing (clients ping after 60 s of silence)."""
DEFAULT_MAX_PENDING = 10
"""Connections that have not authenticated yet, at once (OpenSSH's MaxStartups start)."""
BRIDGE_MAX_PENDING = 4
"""The bridge's pool: with its 8 clients, 12 of the 15 link channels (one each, §11.2)."""
SWEEP_INTERVAL = 1.0
"""How often a server asks its gatekeeper to drop what is overdue (the deadlines' resolution)."""


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """The deadlines and the pending pool's size of one server (see the module docstring)."""

    login_grace: float = DEFAULT_LOGIN_GRACE
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    """None: an authenticated session may stay silent for ever."""
    max_pending: int = DEFAULT_MAX_PENDING

    def __post_init__(self) -> None:
        """Refuse deadlines that are not positive and a pool smaller than one connection."""
        for name in ("login_grace", "frame_timeout", "idle_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {self.max_pending}")


@dataclass(eq=False, slots=True)
class Ticket:
    """One admitted connection as its gatekeeper sees it."""

    peer: str
    drop: Callable[[str], None]
    """Closes the connection; called once, with the reason, when the gatekeeper drops it."""
    opened_at: float
    heard_at: float
    """When the peer last sent a whole frame (or authenticated)."""
    frame_started: float | None = None
    """When the frame now half-received started to arrive; None between frames."""
    authenticated: bool = False
    dropped: str | None = None
    """Why the gatekeeper dropped it (for the server's log line); None while it may stay."""


@dataclass(slots=True)
class AdmissionCounts:
    """What a gatekeeper did (for benchmarks, tests and diagnostics)."""

    admitted: int = 0
    authenticated: int = 0
    evicted: int = 0
    """Pending connections dropped, oldest first, to make room for a newcomer."""
    login_timeouts: int = 0
    stalled_frames: int = 0
    idle_timeouts: int = 0


@dataclass(slots=True)
class Gatekeeper:
    """Admits connections, moves them to authenticated, and drops what overstays (see above)."""

    policy: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    clock: Callable[[], float] = time.monotonic
    counts: AdmissionCounts = field(default_factory=AdmissionCounts)
    _pending: dict[Ticket, None] = field(default_factory=dict)
    """Not yet authenticated, oldest first (a dict keeps insertion order)."""
    _sessions: set[Ticket] = field(default_factory=set)

    @property
    def pending(self) -> int:
        """Connections admitted that have not authenticated yet."""
        return len(self._pending)

    @property
    def sessions(self) -> int:
        """Authenticated connections."""
        return len(self._sessions)

    @property
    def tickets(self) -> tuple[Ticket, ...]:
        """Every connection it holds: the pending ones oldest first, then the sessions."""
        return (*self._pending, *self._sessions)

    def admit(self, peer: str, drop: Callable[[str], None]) -> Ticket:
        """Admit a new connection as pending; if the pool is full, drop the oldest pending one."""
        while len(self._pending) >= self.policy.max_pending:
            oldest = next(iter(self._pending))
            self.counts.evicted += 1
            self._drop(
                oldest,
                f"{self.policy.max_pending} connections were waiting to authenticate; the "
                "oldest made room for a new one",
            )
        now = self.clock()
        ticket = Ticket(peer, drop, opened_at=now, heard_at=now)
        self._pending[ticket] = None
        self.counts.admitted += 1
        return ticket

    def heard(self, ticket: Ticket) -> None:
        """The peer sent one or more whole frames: it is alive, and no frame is half-way."""
        ticket.heard_at = self.clock()
        ticket.frame_started = None

    def partial(self, ticket: Ticket, pending: bool) -> None:
        """Whether a frame is half-received now; its deadline runs from when it started."""
        if not pending:
            ticket.frame_started = None
        elif ticket.frame_started is None:
            ticket.frame_started = self.clock()

    def authenticate(self, ticket: Ticket) -> None:
        """Move a pending connection to the authenticated sessions (idle timeout from now on)."""
        if ticket.authenticated or ticket.dropped is not None:
            return
        self._pending.pop(ticket, None)
        ticket.authenticated = True
        ticket.heard_at = self.clock()
        self._sessions.add(ticket)
        self.counts.authenticated += 1

    def release(self, ticket: Ticket) -> None:
        """The connection ended (for whatever reason): forget it."""
        self._pending.pop(ticket, None)
        self._sessions.discard(ticket)

    def sweep(self) -> int:
        """Drop every connection past one of its deadlines now; returns how many."""
        now = self.clock()
        policy = self.policy
        overdue: list[tuple[Ticket, str]] = []
        for ticket in self._pending:
            if now - ticket.opened_at >= policy.login_grace:
                self.counts.login_timeouts += 1
                overdue.append((ticket, f"did not authenticate within {policy.login_grace:g} s"))
            elif self._stalled(ticket, now):
                overdue.append((ticket, self._stall_reason()))
        for ticket in self._sessions:
            if self._stalled(ticket, now):
                overdue.append((ticket, self._stall_reason()))
            elif policy.idle_timeout is not None and now - ticket.heard_at >= policy.idle_timeout:
                self.counts.idle_timeouts += 1
                overdue.append((ticket, f"sent nothing for {policy.idle_timeout:g} s"))
        for ticket, reason in overdue:
            self._drop(ticket, reason)
        return len(overdue)

    def _stalled(self, ticket: Ticket, now: float) -> bool:
        started = ticket.frame_started
        if started is None or now - started < self.policy.frame_timeout:
            return False
        self.counts.stalled_frames += 1
        return True

    def _stall_reason(self) -> str:
        return f"a frame stopped half-way for {self.policy.frame_timeout:g} s"

    def _drop(self, ticket: Ticket, reason: str) -> None:
        self.release(ticket)
        if ticket.dropped is not None:
            return
        ticket.dropped = reason
        _LOGGER.info("Dropping the connection from %s: %s", ticket.peer, reason)
        ticket.drop(reason)
