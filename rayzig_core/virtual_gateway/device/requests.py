"""How the gateway takes a request in and answers it (PROTOCOL.md §5.2, §5.3, §6.5, §12).

A mutating request is first looked up in the replay cache (a retry gets the remembered answer,
another request under a remembered id is refused, §5.3) and among the requests in flight. Then it
is handled: at once, or step by step when its handler waits for password work off the event loop
(:mod:`.password_work`). Its changes reach the disk before its answer leaves (§12), through the
server's background writer when it waited for password work, so the loop never waits for the disk
on someone else's behalf (§6.5). A THROTTLED answer to an unenrolled session is held back a
second. Every answer is observed (``request_observers``) and sent with the notifications it caused
right after it (§5.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from rayzig_core.protocol import messages as m
from rayzig_core.virtual_gateway.device.answers import INTERNAL, answer_for, bounded
from rayzig_core.virtual_gateway.device.handlers import dispatch
from rayzig_core.virtual_gateway.device.password_work import PendingRequest, Work
from rayzig_core.virtual_gateway.device.replay import InFlight, Reply, request_fingerprint

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.device.connection import GatewayConnection
    from rayzig_core.virtual_gateway.device.gateway import VirtualGateway

_LOGGER = logging.getLogger(__name__)

REUSED = m.ErrorResponse(
    m.ErrorCode.REQUEST_ID_REUSED,
    "This request id was used for another request of this client; send it with a new request id.",
)
"""The answer to a different request under a remembered request id (§5.3)."""


class RequestPipeline:
    """The requests of one gateway, from intake to answer, and those under way."""

    def __init__(self, gateway: VirtualGateway) -> None:
        self._gateway = gateway
        self._pending: set[PendingRequest] = set()
        self._finishing = False

    @property
    def pending(self) -> int:
        """Requests taken in and not answered yet."""
        return len(self._pending)

    def unenrolled_checks_waiting(self) -> int:
        """Requests of unenrolled sessions that have handed password work to the worker."""
        return sum(1 for p in self._pending if p.started and not p.enrolled)

    def finish_all(self) -> None:
        """Answer every request under way now (the gateway is closing its links).

        Their password work is completed on this thread (a few scrypt runs at most), their
        changes written at once, and held-back answers sent without waiting.
        """
        self._finishing = True
        try:
            self._gateway.password_worker.finish()
            for pending in list(self._pending):
                if pending.held is not None:
                    timer, answer = pending.held
                    timer.cancel()
                    self._deliver(pending, answer)
        finally:
            self._finishing = False

    def handle(
        self, connection: GatewayConnection, request_id: int, request: m.Request, reply: Reply
    ) -> None:
        """Answer one request through ``reply``: at once, or once its password work is done.

        A retried mutating request is answered from the replay cache (or, still under way, with
        its answer when it comes); another request under a remembered id is refused (§5.3).
        """
        gateway = self._gateway
        if request_id == 0:  # §5.3: 0 is the id of notifications, never of a request
            reply(
                m.ErrorResponse(
                    m.ErrorCode.BAD_REQUEST,
                    "Request id 0 is reserved for notifications; number requests from 1.",
                )
            )
            return
        pending = PendingRequest(
            connection, request_id, request, reply, enrolled=gateway.is_enrolled(connection)
        )
        if request.MUTATING:
            pending.fingerprint = request_fingerprint(request_id, request)
            cached = gateway.replay.lookup(pending.key)
            flight = gateway.replay.in_flight.get(pending.key)
            if cached is not None or flight is not None:
                if cached is not None and cached.answers(pending.fingerprint):
                    reply(cached.answer)
                elif flight is not None and flight.fingerprint == pending.fingerprint:
                    flight.retries.append(reply)
                else:
                    reply(REUSED)
                return
            gateway.replay.in_flight[pending.key] = InFlight(pending.fingerprint)
        self._pending.add(pending)
        self._step(pending)
        pending.synchronous = False

    def _step(
        self, pending: PendingRequest, result: object = None, error: BaseException | None = None
    ) -> None:
        """Run the request's handling up to its next piece of password work, or to its answer."""
        gateway = self._gateway
        gateway.durable_pending = False
        work: Work | None = None
        answer: m.Response | None = None
        try:
            if pending.steps is None:
                outcome = dispatch(gateway, pending.connection, pending.request)
                if isinstance(outcome, m.Response):
                    answer = outcome
                else:
                    pending.steps = outcome
                    work = outcome.send(None)
            elif error is not None:
                work = pending.steps.throw(error)
            else:
                work = pending.steps.send(result)
        except StopIteration as stop:
            answer = stop.value
        except Exception as err:  # noqa: BLE001 - every failure becomes an answer (§9)
            answer = answer_for(err, pending.request)
        pending.durable |= gateway.durable_pending
        gateway.durable_pending = False
        if answer is None:
            if work is None:  # pragma: no cover - a handler yields work or returns an answer
                answer = INTERNAL
            else:
                pending.started = True
                gateway.password_worker.run(work, functools.partial(self._step, pending))
                return
        self._finish(pending, answer)

    def _finish(self, pending: PendingRequest, answer: m.Response) -> None:
        """Remember the answer for retries, make the request's changes durable, then send it."""
        gateway = self._gateway
        if isinstance(answer, m.ErrorResponse):
            answer = replace(answer, message=bounded(answer.message))
        if pending.request.MUTATING:
            gateway.replay.remember(
                pending.key, pending.fingerprint, answer, enrolled=pending.enrolled
            )
            if pending.enrolled:
                # An unenrolled session's entry goes with the next write: a refusal that changed
                # nothing must not cost the gateway a write (§6.5).
                gateway.note_change()
        if pending.durable:
            # Throttle failures, enrolments, revocations, passwords, accounts and firmware
            # security versions reach the disk (with this answer's replay-cache entry) first.
            saver = gateway.on_save_in_background
            if not pending.synchronous and saver is not None and not self._finishing:
                try:
                    saver(functools.partial(self._saved, pending, answer))
                except Exception:
                    _LOGGER.exception("Could not store the gateway state; answering INTERNAL")
                    self._deliver(pending, INTERNAL)
                return
            try:
                gateway.on_save_now()
            except Exception:
                _LOGGER.exception("Could not store the gateway state; answering INTERNAL")
                answer = INTERNAL
        self._hold_or_deliver(pending, answer)

    def _hold_or_deliver(self, pending: PendingRequest, answer: m.Response) -> None:
        """Deliver the answer; a THROTTLED one to an unenrolled session after a delay (§6.5).

        The delay costs the gateway a timer, and a client that ignores ``retry_after`` one
        attempt per second per connection instead of one per round trip (a handshake each).
        """
        gateway = self._gateway
        delay = gateway.throttled_answer_delay
        if (
            delay > 0
            and not pending.enrolled
            and not self._finishing
            and isinstance(answer, m.ErrorResponse)
            and answer.code is m.ErrorCode.THROTTLED
        ):
            with contextlib.suppress(RuntimeError):  # no running loop: answer at once
                loop = asyncio.get_running_loop()
                pending.held = (loop.call_later(delay, self._deliver, pending, answer), answer)
                return
        self._deliver(pending, answer)

    def _saved(
        self, pending: PendingRequest, answer: m.Response, error: BaseException | None
    ) -> None:
        if error is not None:
            _LOGGER.error("Could not store the gateway state (%s); answering INTERNAL", error)
            answer = INTERNAL
        self._hold_or_deliver(pending, answer)

    def _deliver(self, pending: PendingRequest, answer: m.Response) -> None:
        """Send the answer to the request and to its retries that came meanwhile."""
        gateway = self._gateway
        pending.held = None
        self._pending.discard(pending)
        replies = [pending.reply]
        flight = gateway.replay.in_flight.get(pending.key)
        if pending.request.MUTATING and flight is not None:
            del gateway.replay.in_flight[pending.key]
            replies += flight.retries
        for observer in list(gateway.request_observers):
            observer(pending.connection, pending.request, answer)
        with gateway.deferring_notifications():
            for reply in replies:
                reply(answer)
