"""Password work off the gateway's event loop, and the requests that wait for it (§6.5).

A request that checks a password or makes a verifier (scrypt: tens to hundreds of milliseconds) is
handled by a generator: it yields each piece of :data:`Work` and receives its result, and its
return value is the answer. The gateway drives it (:meth:`VirtualGateway.handle`, a
:class:`PendingRequest` per request) and runs the work on the :class:`PasswordWorker`
(:data:`PASSWORD_WORKERS` thread; :func:`hashlib.scrypt` releases the GIL), so the loop goes on
serving every other session meanwhile. Without a running event loop (a gateway driven in process,
e.g. by the fuzz tests) the work runs inline and the answer comes at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from rayzig_core.errors import RayzigInternalError
from rayzig_core.protocol import messages as m
from rayzig_core.virtual_gateway import credentials
from rayzig_core.virtual_gateway.credentials import PasswordVerifier
from rayzig_core.virtual_gateway.device.replay import ReplayKey, Reply

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.device.connection import GatewayConnection

_T = TypeVar("_T")

PASSWORD_WORKERS: Final = 1
"""Threads that run scrypt: one, as the gateway's MCU checks one password at a time."""

Work = Callable[[], object]
"""A piece of password work (scrypt), run off the event loop."""
Steps = Generator[Work, object, m.Response]
"""A request's handling that waits for work: yields :data:`Work`, returns the answer."""


def checked(verifier: PasswordVerifier, password: str) -> Generator[Work, object, bool]:
    """Whether ``password`` matches ``verifier``, checked off the loop (``yield from`` it)."""
    matched = yield functools.partial(credentials.check_verifier, verifier, password)
    return matched is True


def made(password: str, n: int) -> Generator[Work, object, PasswordVerifier]:
    """A new verifier for ``password``, made off the loop (``yield from`` it)."""
    verifier = yield functools.partial(credentials.make_verifier, password, n=n)
    if not isinstance(verifier, PasswordVerifier):  # pragma: no cover - make_verifier's contract
        raise RayzigInternalError("password work returned no verifier")
    return verifier


def run_inline(steps: Generator[Work, object, _T]) -> _T:
    """Run ``steps`` to its end on this thread (for a handler that cannot wait, e.g. AddUser)."""
    value: object = None
    try:
        while True:
            value = steps.send(value)()
    except StopIteration as stop:
        result: _T = stop.value
        return result


Done = Callable[[object, BaseException | None], None]
"""Receives a piece of work's result, or the exception it raised."""


def _run_now(work: Work, done: Done) -> None:
    try:
        result = work()
    except Exception as err:  # noqa: BLE001 - handed to the request that asked for it
        done(None, err)
        return
    done(result, None)


class PasswordWorker:
    """Runs :data:`Work` on a small thread pool, handing each result back on the event loop."""

    def __init__(self, workers: int = PASSWORD_WORKERS) -> None:
        self._workers = workers
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._jobs: dict[concurrent.futures.Future[object], tuple[Work, Done]] = {}
        self._inline = False

    def run(self, work: Work, done: Done) -> None:
        """Run ``work`` and hand its outcome to ``done(result, error)``.

        ``done`` is called later on the event loop; at once when no loop runs, or while
        :meth:`finish` completes the work under way.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._inline:
            _run_now(work, done)
            return
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self._workers, thread_name_prefix="rayzig-password-check"
            )
        future = self._executor.submit(work)
        self._jobs[future] = (work, done)

        def deliver(finished: concurrent.futures.Future[object]) -> None:
            if self._jobs.pop(finished, None) is None:
                return  # already completed by finish()
            error = finished.exception()
            done(None if error is not None else finished.result(), error)

        def finished(future: concurrent.futures.Future[object]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(deliver, future)

        future.add_done_callback(finished)

    def finish(self) -> None:
        """Complete all the work under way now, on this thread, and stop the worker threads.

        Queued work runs here, the running piece is waited for, and every ``done`` is called
        before this returns (a gateway that closes its links answers what it has taken in
        first). Work that the ``done`` callbacks ask for meanwhile runs here too.
        """
        executor, self._executor = self._executor, None
        if executor is None:
            return
        executor.shutdown(wait=True, cancel_futures=True)
        self._inline = True
        try:
            while self._jobs:
                future, (work, done) = next(iter(self._jobs.items()))
                del self._jobs[future]
                if future.cancelled():
                    _run_now(work, done)
                elif (error := future.exception()) is not None:
                    done(None, error)
                else:
                    done(future.result(), None)
        finally:
            self._inline = False


@dataclass(eq=False, slots=True)
class PendingRequest:
    """One request the gateway has taken in and not answered yet (see VirtualGateway.handle)."""

    connection: GatewayConnection
    request_id: int
    request: m.Request
    reply: Reply
    enrolled: bool
    """Whether a paired session asked (unenrolled requests are bounded, §6.5)."""
    fingerprint: bytes = b""
    """The request's replay-cache fingerprint (mutating requests, §5.3)."""
    steps: Steps | None = None
    """The handling, once the handler has returned it (None before, and for plain handlers)."""
    started: bool = False
    """Whether it has handed work to the worker (it then counts as waiting for it)."""
    synchronous: bool = True
    """True while the request is still inside the call that took it in."""
    durable: bool = False
    """Whether its changes must be on disk before its answer is sent (§12)."""
    held: tuple[asyncio.TimerHandle, m.Response] | None = None
    """A THROTTLED answer held back (§6.5) and the timer that will send it."""

    @property
    def key(self) -> ReplayKey:
        """Its replay-cache key: (client key, request id)."""
        return (self.connection.peer_key, self.request_id)
