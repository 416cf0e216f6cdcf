"""Unauthenticated work is bounded and never delays a paired session (PROTOCOL.md §6.3, §6.5).

Against the real virtual gateway over loopback: password checks run off the gateway's event loop
(a gate held by the test keeps one pending, deterministically), a global budget bounds the checks
of the whole gateway, unknown names are throttled and persisted like accounts, and a failed
attempt is answered only once its count is durable, without the gateway waiting for the disk.
Time is a fake clock; nothing here sleeps or measures time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway, credentials
from rayzig_core.virtual_gateway.credentials import PasswordVerifier
from rayzig_core.virtual_gateway.device.check_budget import CHECKS_PER_WINDOW, CheckBudget
from tests.core.conftest import OWNER, OWNER_PASSWORD, RawSession, pair, wait_for

WRONG = "wrong wrong wrong wrong"
WAIT = 10.0
"""Upper bound for an answer that must come (a failure bound, never a measured duration)."""


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def use_clock(gw: GatewayThread, clock: FakeClock) -> None:
    """Make the running gateway use ``clock`` (again after each restart), and send THROTTLED
    answers at once: the delay they are held back by is real time (tested on its own)."""

    def install(g: VirtualGateway) -> None:
        g.clock = clock
        g.throttled_answer_delay = 0.0

    gw.call(install)


@dataclass
class Gate:
    """Once armed, holds every password check at its start until :meth:`open` (then runs it)."""

    armed: bool = False
    started: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    def wrap(self, check: Callable[[PasswordVerifier, str], bool]) -> Callable[..., bool]:
        def gated(verifier: PasswordVerifier, password: str) -> bool:
            if self.armed:
                self.started.set()
                self.opened.wait(WAIT)
            return check(verifier, password)

        return gated

    def arm(self) -> None:
        self.armed = True

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, WAIT), "no password check started"

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    held = Gate()
    monkeypatch.setattr(credentials, "check_verifier", held.wrap(credentials.check_verifier))
    try:
        yield held
    finally:
        held.open()  # never leave the gateway's threads waiting


def pending(gw: GatewayThread) -> int:
    """Requests the gateway has taken in and not answered yet."""
    return gw.call(lambda g: g.pending_requests)


async def until_pending(gw: GatewayThread, count: int) -> None:
    """Wait until ``count`` requests are in the gateway (polling the gateway's own count)."""
    await wait_for(lambda: pending(gw) == count, WAIT, f"{count} pending requests")


async def refused(session: RawSession, request_id: int, request: m.Request) -> m.ErrorResponse:
    response = await session.request(request_id, request)
    assert isinstance(response, m.ErrorResponse), response
    return response


# --- a paired session never waits for unauthenticated work ---------------------------------------


async def test_a_paired_session_is_served_while_a_password_check_is_pending(
    owned: GatewayThread, gate: Gate
) -> None:
    _, owner = await pair(owned)
    paired = await RawSession.keyed(owned.port, owner)
    stranger = await RawSession.open(owned.port)
    gate.arm()
    try:
        await stranger.send(1, m.Pair("nobody", WRONG, "flood"))
        await gate.wait_started()
        # The check is held; the paired session's requests are answered meanwhile.
        info = await asyncio.wait_for(paired.request(1, m.GetInfo()), WAIT)
        assert isinstance(info, m.InfoResponse)
        assert await asyncio.wait_for(paired.request(2, m.Ping()), WAIT) == m.Ok()
        gate.open()
        envelope = await stranger.receive(WAIT)
        assert envelope.request_id == 1
        assert isinstance(envelope.message, m.ErrorResponse)
        assert envelope.message.code is m.ErrorCode.INVALID_CREDENTIALS
    finally:
        gate.open()
        await stranger.close()
        await paired.close()


async def test_a_session_gets_its_answers_in_order_while_a_check_is_pending(
    owned: GatewayThread, gate: Gate
) -> None:
    stranger = await RawSession.open(owned.port)
    gate.arm()
    try:
        await stranger.send(1, m.Pair("nobody", WRONG, "flood"))
        await stranger.send(2, m.Ping())
        await gate.wait_started()
        gate.open()
        first = await stranger.receive(WAIT)
        second = await stranger.receive(WAIT)
        assert (first.request_id, second.request_id) == (1, 2)
        assert second.message == m.Ok()
    finally:
        await stranger.close()


@dataclass
class HeldSaves:
    """Stands in for the server's background writer: each durable save waits for :meth:`finish`."""

    requested: threading.Event = field(default_factory=threading.Event)
    pending: list[Callable[[BaseException | None], None]] = field(default_factory=list)

    def install(self, gateway: VirtualGateway) -> None:
        gateway.on_save_in_background = self.save

    def save(self, done: Callable[[BaseException | None], None]) -> None:
        self.pending.append(done)
        self.requested.set()

    def finish(self, gateway: VirtualGateway) -> int:
        done, self.pending[:] = list(self.pending), []
        for callback in done:
            callback(None)
        return len(done)


async def test_a_failed_attempt_is_answered_once_durable_without_blocking_the_gateway(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    saves = HeldSaves()
    owned.call(saves.install)
    paired = await RawSession.keyed(owned.port, owner)
    stranger = await RawSession.open(owned.port)
    try:
        await stranger.send(1, m.Pair("nobody", WRONG, "flood"))
        assert await asyncio.to_thread(saves.requested.wait, WAIT), "no background save asked"
        # The failure's write is in progress: paired requests are served, the stranger waits.
        assert await asyncio.wait_for(paired.request(1, m.Ping()), WAIT) == m.Ok()
        assert pending(owned) == 1
        assert owned.call(saves.finish) == 1
        envelope = await stranger.receive(WAIT)
        assert isinstance(envelope.message, m.ErrorResponse)
        assert envelope.message.code is m.ErrorCode.INVALID_CREDENTIALS
        assert pending(owned) == 0
    finally:
        await stranger.close()
        await paired.close()


async def test_at_most_four_unauthenticated_checks_wait_and_the_next_is_throttled(
    owned: GatewayThread, gate: Gate
) -> None:
    owned.call(lambda g: setattr(g, "throttled_answer_delay", 0.0))
    strangers = [await RawSession.open(owned.port) for _ in range(5)]
    gate.arm()
    try:
        for number, stranger in enumerate(strangers[:4], start=1):
            await stranger.send(1, m.Pair(f"guess{number}", WRONG, "flood"))
        await gate.wait_started()
        await until_pending(owned, 4)
        # Four requests wait for the worker (one of them running): the fifth is refused at once.
        late = await refused(strangers[4], 1, m.Pair("guess5", WRONG, "flood"))
        assert late.code is m.ErrorCode.THROTTLED
        assert late.retry_after == 1.0
        gate.open()
        for stranger in strangers[:4]:
            answer = await stranger.receive(WAIT)
            assert isinstance(answer.message, m.ErrorResponse)
            assert answer.message.code is m.ErrorCode.INVALID_CREDENTIALS
    finally:
        for stranger in strangers:
            await stranger.close()


async def test_a_throttled_answer_to_a_stranger_is_held_back_without_holding_anyone_up(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    clock = FakeClock()
    use_clock(owned, clock)
    owned.call(lambda g: setattr(g, "throttled_answer_delay", 3600.0))  # held until closing
    paired = await RawSession.keyed(owned.port, owner)
    stranger = await RawSession.open(owned.port)
    try:
        for request_id in range(1, 5):
            await refused(stranger, request_id, m.Pair("nobody", WRONG, "x"))
        await stranger.send(5, m.Pair("nobody", WRONG, "x"))  # blocked for a second: THROTTLED
        await until_pending(owned, 1)
        assert await asyncio.wait_for(paired.request(1, m.Ping()), WAIT) == m.Ok()
        assert pending(owned) == 1
        # Closing its links, the gateway sends what it holds back first.
        owned.call(lambda g: g.close_all())
        envelope = await stranger.receive(WAIT)
        assert envelope.request_id == 5
        assert isinstance(envelope.message, m.ErrorResponse)
        assert (envelope.message.code, envelope.message.retry_after) == (
            m.ErrorCode.THROTTLED,
            1.0,
        )
    finally:
        await stranger.close()
        await paired.close()


# --- the global budget (§6.3) --------------------------------------------------------------------


async def test_the_global_budget_refuses_the_101st_check_in_a_minute(owned: GatewayThread) -> None:
    _, owner = await pair(owned)  # on the real clock: long before the fake one's window
    clock = FakeClock()
    use_clock(owned, clock)
    stranger = await RawSession.open(owned.port)
    paired = await RawSession.keyed(owned.port, owner)
    try:
        # Fresh names: no name's own throttle ever applies, only the budget of the gateway.
        for number in range(1, 91):
            answer = await refused(stranger, number, m.Pair(f"guess{number}", WRONG, "x"))
            assert answer.code is m.ErrorCode.INVALID_CREDENTIALS, number
        clock.now += 30
        budget = await refused(stranger, 91, m.Pair("guess91", WRONG, "x"))
        assert budget.code is m.ErrorCode.THROTTLED
        assert budget.retry_after == 30.0
        # The last ten checks of the minute are kept for paired sessions.
        for number in range(91, 101):
            answer = await refused(paired, number, m.ChangePassword(f"guess{number}", WRONG, WRONG))
            assert answer.code is m.ErrorCode.INVALID_CREDENTIALS, number
        last = await refused(paired, 101, m.ChangePassword("guess101", WRONG, WRONG))
        assert last.code is m.ErrorCode.THROTTLED
        assert last.retry_after == 30.0
    finally:
        await stranger.close()
        await paired.close()

    # The budget's window survives a restart.
    owned.restart()
    use_clock(owned, clock)
    stranger = await RawSession.open(owned.port)
    try:
        again = await refused(stranger, 1, m.Pair("guess102", WRONG, "x"))
        assert again.code is m.ErrorCode.THROTTLED
        assert again.retry_after == 30.0
        clock.now += 30
        fresh = await refused(stranger, 2, m.Pair("guess103", WRONG, "x"))
        assert fresh.code is m.ErrorCode.INVALID_CREDENTIALS
    finally:
        await stranger.close()


async def test_the_budget_refusal_says_nothing_about_the_name(owned: GatewayThread) -> None:
    clock = FakeClock()
    use_clock(owned, clock)
    stranger = await RawSession.open(owned.port)
    try:
        for number in range(1, 91):
            await refused(stranger, number, m.Pair(f"guess{number}", WRONG, "x"))
        real = await refused(stranger, 91, m.Pair(OWNER, OWNER_PASSWORD, "x"))
        unknown = await refused(stranger, 92, m.Pair("nobody", WRONG, "x"))
        assert real.code is unknown.code is m.ErrorCode.THROTTLED
        assert (real.message, real.retry_after) == (unknown.message, unknown.retry_after)
    finally:
        await stranger.close()
    # Refused before any check: the real account's throttle is untouched.
    assert owned.call(lambda g: g.users[OWNER].throttle.failures) == 0


# --- unknown names (§6.3) ------------------------------------------------------------------------


async def test_an_unknown_names_throttle_survives_a_restart(owned: GatewayThread) -> None:
    clock = FakeClock()
    use_clock(owned, clock)
    stranger = await RawSession.open(owned.port)
    try:
        for request_id in range(1, 4):
            answer = await refused(stranger, request_id, m.Pair("nobody", WRONG, "x"))
            assert answer.code is m.ErrorCode.INVALID_CREDENTIALS
        fourth = await refused(stranger, 4, m.Pair("nobody", WRONG, "x"))
        assert (fourth.code, fourth.retry_after) == (m.ErrorCode.INVALID_CREDENTIALS, 1.0)
    finally:
        await stranger.close()

    owned.restart()
    use_clock(owned, clock)
    stranger = await RawSession.open(owned.port)
    try:
        blocked = await refused(stranger, 1, m.Pair("nobody", WRONG, "x"))
        assert (blocked.code, blocked.retry_after) == (m.ErrorCode.THROTTLED, 1.0)
        clock.now += 1
        fifth = await refused(stranger, 2, m.Pair("nobody", WRONG, "x"))
        assert (fifth.code, fifth.retry_after) == (m.ErrorCode.INVALID_CREDENTIALS, 2.0)
    finally:
        await stranger.close()
    # The state file keeps a keyed digest of the name, never the name someone typed.
    assert "nobody" not in owned.state_path.read_text()


async def test_concurrent_attempts_on_one_name_cannot_share_its_free_attempts(
    owned: GatewayThread, gate: Gate
) -> None:
    clock = FakeClock()
    use_clock(owned, clock)
    strangers = [await RawSession.open(owned.port) for _ in range(4)]
    gate.arm()
    try:
        for count, stranger in enumerate(strangers, start=1):
            await stranger.send(1, m.Pair(OWNER, WRONG, "flood"))
            await until_pending(owned, count)
            # Counted before its check: attempts under way in parallel cannot share the free
            # attempts, so the fourth starts the back-off at once.
            assert owned.call(lambda g: g.users[OWNER].throttle.failures) == count
        assert (
            owned.call(lambda g: credentials.throttle_remaining(g.users[OWNER].throttle, clock.now))
            == 1.0
        )
        gate.open()
        answers = [await stranger.receive(WAIT) for stranger in strangers]
        assert [a.message.code for a in answers if isinstance(a.message, m.ErrorResponse)] == [
            m.ErrorCode.INVALID_CREDENTIALS
        ] * 4
    finally:
        for stranger in strangers:
            await stranger.close()
    assert owned.call(lambda g: g.users[OWNER].throttle.failures) == 4


def test_a_clock_set_back_holds_the_budget_for_a_minute_at_most() -> None:
    budget = CheckBudget()
    now = 1_800_000_000.0
    for _ in range(CHECKS_PER_WINDOW):
        assert budget.take(now, enrolled=True) == 0.0
    assert budget.take(now, enrolled=True) == 60.0
    # The clock jumps back a day: the checks count as made now, not for a day to come.
    earlier = now - 86_400
    assert budget.take(earlier, enrolled=True) == 60.0
    restored = CheckBudget(budget.records())  # as stored (§12)
    assert restored.take(earlier + 30, enrolled=True) == 30.0
    assert restored.take(earlier + 60, enrolled=True) == 0.0
