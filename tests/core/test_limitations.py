"""User limitations (PROTOCOL.md §7.4), enforced by the virtual gateway over real loopback sessions.

Ursula (User) is limited to module 3 whole and output 2 (index 1) of module 2; modules 4 and 5 lie
outside. An Administrator sets the limitation; she is refused outside it with the typed error
that names it, sees only her modules and outputs, gets no notification and no event record about
anything else, cannot change her own limitation, and keeps it across a gateway restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import (
    InvalidRequestError,
    NotFoundError,
    OutsideLimitationError,
    PermissionDeniedError,
)
from rayzig_core.eventlog import EventLogSync
from rayzig_core.models import EventKind, ModuleKind, OutputRef, UserLevel, UserLimitation
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import VirtualGateway
from tests.core.conftest import PASSWORDS, connected, output_state, pair

PARTIAL, WHOLE, OTHER, BATTERY = 2, 3, 5, 4
"""Modules of the generated site: 2 (mains, 3 outputs), 3 (mains, 1), 5 (mains, 2), 4 (battery)."""
LIMITATION = UserLimitation(modules=(WHOLE,), outputs=(OutputRef(PARTIAL, 1),))


@dataclass
class Site:
    """The gateway, the Administrator's client and the limited user's client."""

    gw: GatewayThread
    admin: RayzigClient
    ursula: RayzigClient
    ursula_credentials: ClientCredentials


@pytest.fixture
async def site(owned: GatewayThread) -> AsyncIterator[Site]:
    _, owner = await pair(owned)
    admin = await connected(owned, owner)
    try:
        await admin.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
        await admin.set_user_limitation("ursula", LIMITATION)
        _, credentials = await pair(owned, "ursula", PASSWORDS["ursula"])
        ursula = await connected(owned, credentials)
        try:
            yield Site(owned, admin, ursula, credentials)
        finally:
            await ursula.close()
    finally:
        await admin.close()


def collect(client: RayzigClient) -> list[m.Notification]:
    """Every notification ``client`` gets from now on."""
    received: list[m.Notification] = []
    client.subscribe(received.append)
    return received


async def settled(client: RayzigClient) -> None:
    """Wait until every notification already sent to ``client`` has been delivered.

    The gateway sends a request's notifications before it reads the next request, and a session
    delivers frames in order: once a Ping is answered, nothing sent before it is still on its way.
    """
    assert await client.request(m.Ping()) == m.Ok()


def about(notices: list[m.Notification]) -> set[tuple[str, int, int | None]]:
    """(kind, module, output) of each notification."""
    seen: set[tuple[str, int, int | None]] = set()
    for notice in notices:
        output = notice.output.index if isinstance(notice, m.OutputChanged) else None
        module_id = getattr(notice, "module_id", None)
        if isinstance(notice, m.ModuleJoined):
            module_id = notice.module.module_id
        assert isinstance(module_id, int)
        seen.add((type(notice).__name__, module_id, output))
    return seen


# --- what a limited user sees ---------------------------------------------------------------


async def test_a_limited_user_lists_only_its_modules_and_outputs(site: Site) -> None:
    modules = await site.ursula.list_modules()
    assert [module.module_id for module in modules] == [PARTIAL, WHOLE]
    partial, whole = modules
    assert [output.index for output in partial.outputs] == [1]
    assert partial.output(1) is partial.outputs[0]
    assert partial.output(0) is None
    assert len(whole.outputs) == 1
    # Unlimited accounts still see the whole site.
    assert len(await site.admin.list_modules()) == 12


async def test_outside_its_limitation_a_user_is_refused_with_the_typed_error(site: Site) -> None:
    before = output_state(site.gw, OTHER, 0)
    hidden = output_state(site.gw, PARTIAL, 0)
    with pytest.raises(OutsideLimitationError) as caught:
        await site.ursula.set_output(OTHER, 0, not before)
    assert caught.value.code == m.ErrorCode.OUTSIDE_LIMITATION
    assert "Module 5 is outside the limitation of user 'ursula'" in str(caught.value)
    assert "an Administrator or System user can change the limitation" in str(caught.value)
    assert isinstance(caught.value, PermissionDeniedError)  # handled like any refusal by level
    with pytest.raises(OutsideLimitationError, match=r"Output 1 \(index 0\) of module 2"):
        await site.ursula.set_output(PARTIAL, 0, not hidden)
    with pytest.raises(OutsideLimitationError, match="Module 4"):
        await site.ursula.get_telemetry(BATTERY)
    with pytest.raises(OutsideLimitationError, match="Module 5"):
        await site.ursula.read_events(OTHER, 0)
    # A module id that does not exist is refused the same way: no probing of the site.
    with pytest.raises(OutsideLimitationError, match="Module 999"):
        await site.ursula.get_telemetry(999)
    assert output_state(site.gw, OTHER, 0) is before
    assert output_state(site.gw, PARTIAL, 0) is hidden
    assert site.ursula.stats.disconnects == 0


async def test_inside_its_limitation_a_user_switches_and_reads(site: Site) -> None:
    before = output_state(site.gw, PARTIAL, 1)
    result = await site.ursula.set_output(PARTIAL, 1, not before)
    assert result.index == 1
    assert result.is_on is (not before)
    assert (await site.ursula.set_output(WHOLE, 0, on=True)).is_on is True
    assert (await site.ursula.get_telemetry(PARTIAL)).reachable is True
    assert (await site.ursula.read_events(WHOLE, 0)).events


async def test_a_read_only_user_reads_but_switches_nothing(site: Site) -> None:
    await site.admin.set_user_limitation("ursula", UserLimitation(all_modules=True, read_only=True))
    assert len(await site.ursula.list_modules()) == 12  # reconnected, sees the whole site
    before = output_state(site.gw, OTHER, 0)
    with pytest.raises(OutsideLimitationError, match="'ursula' is limited to reading"):
        await site.ursula.set_output(OTHER, 0, not before)
    assert output_state(site.gw, OTHER, 0) is before
    assert (await site.ursula.get_telemetry(OTHER)).reachable is True


# --- notifications and events ----------------------------------------------------------------


async def test_a_limited_user_gets_no_notifications_about_other_modules(site: Site) -> None:
    ursula, admin = collect(site.ursula), collect(site.admin)
    await site.admin.set_output(OTHER, 1, on=True)  # outside: module 5
    await site.admin.set_output(PARTIAL, 0, on=True)  # outside: another output of module 2
    site.gw.call(lambda g: g.site.set_link_quality(BATTERY, 77))  # outside: module 4
    await site.admin.set_output(PARTIAL, 1, on=True)  # inside
    await site.admin.set_output(WHOLE, 0, on=True)  # inside
    site.gw.call(lambda g: g.site.set_link_quality(WHOLE, 66))  # inside
    await settled(site.ursula)
    await settled(site.admin)
    assert about(ursula) == {
        ("OutputChanged", PARTIAL, 1),
        ("EventsAvailable", PARTIAL, None),  # its log gained a record (about output 0 too)
        ("OutputChanged", WHOLE, 0),
        ("EventsAvailable", WHOLE, None),
        ("TelemetryChanged", WHOLE, None),
    }
    assert {
        ("OutputChanged", OTHER, 1),
        ("OutputChanged", PARTIAL, 0),
        ("TelemetryChanged", BATTERY, None),
    } <= about(admin)


async def test_modules_joining_and_leaving_are_told_only_when_seen(site: Site) -> None:
    ursula = collect(site.ursula)
    joined = site.gw.call(lambda g: g.site.add_module(kind=ModuleKind.MAINS, name="Shed").module_id)
    site.gw.call(lambda g: g.site.remove_module(OTHER))
    site.gw.call(lambda g: g.site.remove_module(WHOLE))
    await settled(site.ursula)
    assert about(ursula) == {("ModuleLeft", WHOLE, None)}
    # A read-only user of the whole site hears of modules that join.
    await site.admin.set_user_limitation("ursula", UserLimitation(all_modules=True, read_only=True))
    await settled(site.ursula)  # reconnected
    ursula.clear()
    added = site.gw.call(lambda g: g.site.add_module(kind=ModuleKind.MAINS, name="Barn").module_id)
    await settled(site.ursula)
    assert about(ursula) == {("ModuleJoined", added, None), ("EventsAvailable", added, None)}
    assert added > joined


async def test_event_reads_leave_out_records_about_outputs_it_does_not_see(site: Site) -> None:
    for on in (True, False, True):
        await site.admin.set_output(PARTIAL, 0, on)  # hidden output
    await site.admin.set_output(PARTIAL, 1, on=True)  # seen output
    for on in (True, False):
        await site.admin.set_output(PARTIAL, 2, on)  # hidden output
    everything = await site.admin.read_events(PARTIAL, 0)
    seen = await site.ursula.read_events(PARTIAL, 0)
    assert [e.output for e in everything.events] == [None, 0, 0, 0, 1, 2, 2]  # POWER_ON first
    assert [(e.kind, e.output) for e in seen.events] == [
        (EventKind.POWER_ON, None),
        (EventKind.COMMAND, 1),
    ]
    assert (seen.oldest_seq, seen.newest_seq) == (everything.oldest_seq, everything.newest_seq)
    # The batch limit counts the records it gets; after the last one nothing it sees follows.
    assert [e.seq for e in (await site.ursula.read_events(PARTIAL, 0, 1)).events] == [1]
    assert (await site.ursula.read_events(PARTIAL, seen.events[-1].seq)).events == ()


async def test_event_log_sync_of_a_limited_user_reports_no_false_gap(site: Site) -> None:
    sync = EventLogSync(site.ursula, {PARTIAL: 0})
    await site.admin.set_output(PARTIAL, 0, on=True)  # hidden: no record for her, no loss
    await site.admin.set_output(PARTIAL, 1, on=True)
    await site.admin.set_output(PARTIAL, 2, on=True)  # hidden, newest
    events = await sync.pull(PARTIAL)
    assert [(e.kind, e.output) for e in events] == [
        (EventKind.POWER_ON, None),
        (EventKind.COMMAND, 1),
    ]
    newest = (await site.admin.read_events(PARTIAL, 0)).newest_seq
    assert sync.cursors[PARTIAL] == newest  # moved past the hidden tail
    await site.admin.set_output(PARTIAL, 0, on=False)  # hidden only
    assert await sync.pull(PARTIAL) == []
    assert sync.cursors[PARTIAL] == newest + 1


# --- who sets it, and how it is kept ---------------------------------------------------------


async def test_a_user_cannot_change_its_own_limitation(site: Site) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        await site.ursula.set_user_limitation("ursula", None)
    assert not isinstance(caught.value, OutsideLimitationError)
    assert "manage_users" in str(caught.value)
    assert site.gw.call(lambda g: g.users["ursula"].limitation) == LIMITATION
    # It may read its own, and only its own.
    assert await site.ursula.get_user_limitation() == LIMITATION
    with pytest.raises(PermissionDeniedError):
        await site.ursula.get_user_limitation("installer")


async def test_an_administrator_sets_and_lifts_it_and_the_user_reconnects(site: Site) -> None:
    assert await site.admin.get_user_limitation("ursula") == LIMITATION
    disconnects = site.ursula.stats.disconnects
    await site.admin.set_user_limitation("ursula", None)
    assert await site.admin.get_user_limitation("ursula") is None
    assert len(await site.ursula.list_modules()) == 12
    assert site.ursula.stats.disconnects == disconnects + 1  # its session was started again
    # The same limitation again changes nothing and closes nothing.
    await site.admin.set_user_limitation("ursula", None)
    await settled(site.ursula)
    assert site.ursula.stats.disconnects == disconnects + 1


async def test_the_gateway_checks_and_normalises_a_limitation(site: Site) -> None:
    messy = UserLimitation(
        modules=(WHOLE, WHOLE),
        outputs=(OutputRef(PARTIAL, 2), OutputRef(WHOLE, 0), OutputRef(PARTIAL, 1)),
    )
    await site.admin.set_user_limitation("ursula", messy)
    assert await site.admin.get_user_limitation("ursula") == UserLimitation(
        modules=(WHOLE,), outputs=(OutputRef(PARTIAL, 1), OutputRef(PARTIAL, 2))
    )
    refusals: list[tuple[Callable[[], object], type[Exception], str]] = [
        (lambda: UserLimitation(modules=(999,)), NotFoundError, "Module 999 does not exist"),
        (lambda: UserLimitation(outputs=(OutputRef(WHOLE, 5),)), NotFoundError, "no output 6"),
        (lambda: UserLimitation(all_modules=True), InvalidRequestError, "limits nothing"),
        (
            lambda: UserLimitation(modules=(WHOLE,), all_modules=True, read_only=True),
            InvalidRequestError,
            "names no single modules",
        ),
        (lambda: UserLimitation(modules=tuple(range(300))), InvalidRequestError, "at most 256"),
    ]
    for make, error, text in refusals:
        limitation = make()
        assert isinstance(limitation, UserLimitation)
        with pytest.raises(error, match=text):
            await site.admin.set_user_limitation("ursula", limitation)
    with pytest.raises(InvalidRequestError, match="Only User accounts can be limited"):
        await site.admin.set_user_limitation("installer", UserLimitation(read_only=True))
    with pytest.raises(NotFoundError):
        await site.admin.set_user_limitation("nobody", None)


async def test_it_survives_a_restart_and_goes_with_the_account(site: Site) -> None:
    await site.ursula.close()
    await site.admin.close()
    site.gw.restart()
    ursula = await connected(site.gw, site.ursula_credentials)
    try:
        assert [module.module_id for module in await ursula.list_modules()] == [PARTIAL, WHOLE]
        assert await ursula.get_user_limitation() == LIMITATION
    finally:
        await ursula.close()

    def recreate(g: VirtualGateway) -> UserLimitation | None:
        return g.users["ursula"].limitation

    _, owner = await pair(site.gw)
    async with await connected(site.gw, owner) as admin:
        await admin.delete_user("ursula")
        await admin.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
        assert site.gw.call(recreate) is None  # a new account of the name starts unlimited


async def test_add_limited_user_removes_the_account_again_when_refused(site: Site) -> None:
    await site.admin.add_limited_user(" guest ", PASSWORDS["sybil"], UserLimitation((WHOLE,)))
    assert await site.admin.get_user_limitation("guest") == UserLimitation((WHOLE,))
    with pytest.raises(NotFoundError):
        await site.admin.add_limited_user("visitor", PASSWORDS["sybil"], UserLimitation((999,)))
    assert "visitor" not in {user.name for user in await site.admin.list_users()}
