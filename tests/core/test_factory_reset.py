"""ETSI EN 303 645 5.11-1: a factory reset erases the user data and keeps the device's identity.

:meth:`VirtualGateway.factory_reset` and ``rayzig virtual-gateway --factory-reset`` (PROTOCOL.md
§12): every account but ``installer`` goes, ``installer`` is back to the label's default password
(must change), every client key goes and every session is closed (a paired client gets
ClientRevokedError), throttles and replay caches are cleared, and every module's event log is
emptied with its sequence numbers going on, so a client's stale cursor never points past a log.
What the label shows stays true: the identity key (fingerprint), the default password and the
recovery secret. Afterwards the state file names none of the old users or clients.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayzig_core import cli
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import (
    ClientRevokedError,
    InvalidCredentialsError,
    PasswordChangeRequiredError,
    ThrottledError,
)
from rayzig_core.eventlog import EventLogSync
from rayzig_core.models import ConnectionState, EventKind, UserLevel
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import FACTORY_USER, EventRing, VirtualGateway
from rayzig_core.virtual_gateway.site.rings import RingState
from tests.core.conftest import (
    FAST,
    OWNER,
    OWNER_PASSWORD,
    PASSWORDS,
    SCRYPT_N,
    connected,
    connector,
    restored,
    stored,
    switchable_output,
    wait_for,
)

OWNER_CLIENT = "Owner's laptop"
URSULA_CLIENT = "Ursula's phone"
PERSONAL = ("ursula", "sybil", "mallory", OWNER_CLIENT, URSULA_CLIENT)
"""Names that must be gone from the state after a reset (none of them can occur in hex)."""


# --- the event ring ------------------------------------------------------------------------------


def test_a_cleared_ring_goes_on_with_its_sequence_numbers() -> None:
    ring = EventRing(capacity=4)
    for _ in range(6):  # wrapped: holds 3..6
        ring.append(module_id=1, timestamp=1.0, kind=EventKind.COMMAND, output=0, user="ursula")
    assert ring.clear() == 4
    assert (ring.count, ring.oldest_seq, ring.newest_seq) == (0, 7, 6)
    assert ring.read(0, 10) == []
    reloaded = EventRing.restore(restored(RingState, stored(ring.state())), 1)
    assert (reloaded.count, reloaded.oldest_seq, reloaded.newest_seq) == (0, 7, 6)
    assert "ursula" not in json.dumps(stored(ring.state()))

    for r in (ring, reloaded):
        for _ in range(3):
            r.append(module_id=1, timestamp=2.0, kind=EventKind.REPOWER)
        assert [e.seq for e in r.read(0, 10)] == [7, 8, 9]
        assert [e.seq for e in r.read(7, 10)] == [8, 9]
        for _ in range(3):  # wraps again: holds 9..12
            r.append(module_id=1, timestamp=3.0, kind=EventKind.BATTERY_LOW)
        assert [e.seq for e in r] == [9, 10, 11, 12]
        assert [e.seq for e in r.read(10, 10)] == [11, 12]
        again = EventRing.restore(restored(RingState, stored(r.state())), 1)
        assert list(again) == list(r)
        again.append(module_id=1, timestamp=4.0, kind=EventKind.REPOWER)
        assert [e.seq for e in again] == [10, 11, 12, 13]
    # A ring cleared and partly refilled is stored with first_seq > 1 and fewer records than
    # its capacity; that is valid now.
    partial = EventRing(capacity=4)
    for _ in range(5):
        partial.append(module_id=1, timestamp=1.0, kind=EventKind.REPOWER)
    partial.clear()
    partial.append(module_id=1, timestamp=1.0, kind=EventKind.REPOWER)
    data = stored(partial.state())
    assert data["first_seq"] == 6
    assert len(data["events"]) == 1
    assert [e.seq for e in EventRing.restore(restored(RingState, data), 1)] == [6]


# --- the reset on a running gateway --------------------------------------------------------------


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    gw = GatewayThread(tmp_path / "gw.json", scrypt_n=SCRYPT_N).start()
    try:
        yield gw
    finally:
        gw.stop()


async def pair_as(gw: GatewayThread, user: str, password: str, name: str) -> ClientCredentials:
    client = RayzigClient(connector(gw), client_name=name, **FAST)
    try:
        return await client.pair(await client.identify(), user, password)
    finally:
        await client.close()


async def lived_in(gw: GatewayThread) -> tuple[ClientCredentials, ClientCredentials]:
    """A gateway in use: accounts, two paired clients, switching by name, failed attempts."""
    assert gw.factory is not None
    first = RayzigClient(connector(gw), **FAST)
    identity = await first.identify()
    await first.change_password(
        identity.public_key, OWNER, gw.factory.default_password, OWNER_PASSWORD
    )
    await first.close()
    owner_credentials = await pair_as(gw, OWNER, OWNER_PASSWORD, OWNER_CLIENT)
    owner = await connected(gw, owner_credentials)
    try:
        await owner.add_user("ursula", UserLevel.USER, PASSWORDS["ursula"])
        await owner.add_user("sybil", UserLevel.SYSTEM, PASSWORDS["sybil"])
    finally:
        await owner.close()
    ursula_credentials = await pair_as(gw, "ursula", PASSWORDS["ursula"], URSULA_CLIENT)
    ursula = await connected(gw, ursula_credentials)
    try:
        module_id, index = switchable_output(gw)
        for on in (True, False, True):
            await ursula.set_output(module_id, index, on)
    finally:
        await ursula.close()
    # Failed attempts: the installer and the recovery secret are throttled; an unknown name too.
    stranger = RayzigClient(connector(gw), **FAST)
    try:
        for _ in range(4):
            with pytest.raises((InvalidCredentialsError, ThrottledError)):
                await stranger.pair(identity, OWNER, "not the owner's password at all")
            with pytest.raises((InvalidCredentialsError, ThrottledError)):
                await stranger.recover_password(
                    identity.public_key, "00000-00000-00000-00000-00000", OWNER_PASSWORD
                )
        with pytest.raises(InvalidCredentialsError):
            await stranger.pair(identity, "mallory", "not a password anyone has here")
    finally:
        await stranger.close()
    return owner_credentials, ursula_credentials


def event_names(g: VirtualGateway) -> set[str]:
    return {
        e.user for m in g.site.modules() for e in g.site.ring(m.module_id) if e.user is not None
    }


async def test_factory_reset_erases_user_data_and_keeps_the_identity(
    gateway: GatewayThread,
) -> None:
    assert gateway.factory is not None
    owner_credentials, ursula_credentials = await lived_in(gateway)
    fingerprint = gateway.call(lambda g: g.fingerprint)
    assert "ursula" in event_names(gateway.gateway)
    newest = gateway.call(lambda g: {m.module_id: m.event_seq for m in g.site.modules()})
    held = gateway.call(lambda g: sum(m.event_count for m in g.site.modules()))
    old_ids = {owner_credentials.client_id, ursula_credentials.client_id}
    assert "ursula" in gateway.state_path.read_text()

    def throttled(g: VirtualGateway) -> tuple[int, int, int]:
        return (
            g.users[FACTORY_USER].throttle.failures,
            g.accounts.recovery_throttle.failures,
            len(g.accounts.unknown_throttles),
        )

    assert gateway.call(throttled) == (4, 4, 1)

    # Two paired clients are connected when the reset happens.
    owner = await connected(gateway, owner_credentials)
    ursula = await connected(gateway, ursula_credentials)
    try:
        report = gateway.call(lambda g: g.factory_reset())
        assert report.users == ("sybil", "ursula")
        assert report.clients == 2
        assert report.event_records == held
        assert report.modules == len(newest)
        assert report.sessions >= 2

        # Their sessions end at once, and they cannot come back: their keys are gone.
        for client in (owner, ursula):

            def revoked(c: RayzigClient = client) -> bool:
                return c.state is ConnectionState.AUTH_FAILED

            await wait_for(revoked, what="AUTH_FAILED")
            assert isinstance(client.auth_error, ClientRevokedError)
            with pytest.raises(ClientRevokedError):
                await client.list_modules()
    finally:
        await owner.close()
        await ursula.close()
    again = RayzigClient(connector(gateway), owner_credentials, **FAST)
    with pytest.raises(ClientRevokedError):
        await again.connect()
    await again.close()

    # What the gateway keeps and what it lost, seen from inside.
    def inside(g: VirtualGateway) -> None:
        assert list(g.users) == [FACTORY_USER]
        installer = g.users[FACTORY_USER]
        assert installer.level is UserLevel.SYSTEM
        assert installer.must_change
        assert installer.throttle.failures == 0
        assert g.clients == {}
        assert g.accounts.next_client_id > max(old_ids)
        assert not g.replay.enrolled
        assert not g.replay.pre_auth
        assert not g.accounts.unknown_throttles
        assert g.accounts.recovery_throttle.failures == 0
        assert g.fingerprint == fingerprint
        assert event_names(g) == set()
        for module in g.site.modules():
            assert module.event_count == 0
            assert module.event_seq == newest[module.module_id]  # never goes back

    gateway.call(inside)

    # On disk at once (durably, before factory_reset returned): no old user or client name.
    text = gateway.state_path.read_text()
    assert stat.S_IMODE(gateway.state_path.stat().st_mode) == 0o600
    for name in PERSONAL:
        assert name not in text, name
    assert FACTORY_USER in text

    # From outside it is a factory-new gateway with the same label: same fingerprint, the
    # label's default password works (to set a new one only, and at once: no throttle left),
    # the old passwords do not, and the recovery secret still works (its throttle is cleared).
    client = RayzigClient(connector(gateway), **FAST)
    try:
        identity = await client.identify()
        assert identity.factory_state
        assert identity.fingerprint == fingerprint
        with pytest.raises(PasswordChangeRequiredError):
            await client.pair(identity, OWNER, gateway.factory.default_password)
        for user, password in ((OWNER, OWNER_PASSWORD), ("ursula", PASSWORDS["ursula"])):
            with pytest.raises(InvalidCredentialsError):
                await client.pair(identity, user, password)
        await client.recover_password(
            identity.public_key, gateway.factory.recovery_secret, PASSWORDS["sybil"]
        )
        credentials = await client.pair(identity, OWNER, PASSWORDS["sybil"])
        assert credentials.client_id not in old_ids  # ids are never reused
    finally:
        await client.close()
    fresh = await connected(gateway, credentials)
    try:
        assert [u.name for u in await fresh.list_users()] == [FACTORY_USER]
        assert [c.client_id for c in await fresh.list_clients()] == [credentials.client_id]
    finally:
        await fresh.close()

    # A restart loads the reset state (emptied rings whose numbering starts after 1).
    gateway.restart()
    assert gateway.call(lambda g: {m.module_id: m.event_seq for m in g.site.modules()}) == newest
    assert gateway.call(lambda g: list(g.users)) == [FACTORY_USER]


async def test_a_stale_event_cursor_sees_the_log_go_on(gateway: GatewayThread) -> None:
    """Cursors saved before a reset: no record twice, no false restart, erased ones as a GAP."""
    assert gateway.factory is not None
    owner_credentials, _ = await lived_in(gateway)
    module_id, index = switchable_output(gateway)
    owner = await connected(gateway, owner_credentials)
    try:
        sync = EventLogSync(owner, {module_id: 0})
        await sync.pull(module_id)
        current = sync.cursors[module_id]
        for on in (True, False, True):
            await owner.set_output(module_id, index, on)
        behind = current  # three records it has not read
    finally:
        await owner.close()
    top = gateway.call(lambda g: g.site.ring(module_id).newest_seq)
    assert top == behind + 3

    gateway.call(lambda g: g.factory_reset())
    client = RayzigClient(connector(gateway), **FAST)
    try:
        identity = await client.identify()
        await client.change_password(
            identity.public_key, OWNER, gateway.factory.default_password, OWNER_PASSWORD
        )
        credentials = await client.pair(identity, OWNER, OWNER_PASSWORD)
    finally:
        await client.close()
    owner = await connected(gateway, credentials)
    try:
        up_to_date = EventLogSync(owner, {module_id: top})
        lagging = EventLogSync(owner, {module_id: behind})
        batch = await owner.read_events(module_id, top)
        assert (batch.events, batch.oldest_seq, batch.newest_seq) == ((), top + 1, top)
        assert await up_to_date.pull(module_id) == []
        assert await lagging.pull(module_id) == []  # nothing to import yet
        await owner.set_output(module_id, index, on=False)
        new = await up_to_date.pull(module_id)
        assert [(e.seq, e.kind, e.user) for e in new] == [(top + 1, EventKind.COMMAND, OWNER)]
        late = await lagging.pull(module_id)
        assert [(e.seq, e.kind, e.lost) for e in late] == [
            (top, EventKind.GAP, 3),  # the three records it never read were erased
            (top + 1, EventKind.COMMAND, 0),
        ]
        assert up_to_date.cursors == lagging.cursors == {module_id: top + 1}
    finally:
        await owner.close()


# --- rayzig virtual-gateway --factory-reset ------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


async def used_then_stopped(gw: GatewayThread) -> tuple[ClientCredentials, ClientCredentials]:
    credentials = await lived_in(gw)
    gw.stop()
    return credentials


async def test_cli_factory_reset_asks_erases_and_reports(
    gateway: GatewayThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gateway.factory is not None
    state = gateway.state_path
    fingerprint = gateway.call(lambda g: g.fingerprint)
    owner_credentials, _ = await used_then_stopped(gateway)
    before = state.read_text()
    reset = ("virtual-gateway", "--factory-reset", "--state", str(state))

    # Without a terminal it needs --yes; on a terminal, anything but yes changes nothing.
    monkeypatch.setattr("rayzig_core.cli.prompts.interactive", lambda: False)
    code, out, err = run(capsys, *reset)
    assert code == cli.EXIT_USAGE
    assert "--yes" in err
    monkeypatch.setattr("rayzig_core.cli.prompts.interactive", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    code, out, err = run(capsys, *reset)
    assert code == cli.EXIT_USAGE
    assert "nothing was erased" in err
    assert state.read_text() == before

    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    code, out, err = run(capsys, *reset)
    assert code == cli.EXIT_OK, err
    assert "every user but installer" in err  # what the question said would go
    assert "erased 2 user(s) (sybil, ursula)" in out
    assert "erased 2 paired client key(s)" in out
    assert f"fingerprint {fingerprint}" in out
    text = state.read_text()
    for name in PERSONAL:
        assert name not in text, name
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    # Again with --yes --json: nothing left to erase but the structure is the same.
    monkeypatch.setattr("rayzig_core.cli.prompts.interactive", lambda: False)
    code, out, err = run(capsys, *reset, "--yes", "--json")
    assert code == cli.EXIT_OK, err
    report = json.loads(out)
    assert report["event"] == "factory_reset"
    assert report["users_erased"] == []
    assert report["clients_erased"] == 0
    assert report["event_records_erased"] == 0
    assert report["fingerprint"] == fingerprint

    # Started again: the same gateway in factory state, and the paired client is revoked.
    gateway.start()
    client = RayzigClient(connector(gateway), owner_credentials, **FAST)
    with pytest.raises(ClientRevokedError):
        await client.connect()
    await client.close()
    identity = await RayzigClient(connector(gateway)).identify()
    assert identity.factory_state
    assert identity.fingerprint == fingerprint


def test_cli_factory_reset_without_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "none" / "gw.json"
    code, _, err = run(capsys, "virtual-gateway", "--factory-reset", "--yes", "--state", str(state))
    assert code == cli.EXIT_USAGE
    assert "nothing to reset" in err
    assert not state.parent.exists()


def test_cli_factory_reset_refuses_while_the_gateway_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A running gateway would write its old state back when it stops: the reset waits for it."""
    state = tmp_path / "gw.json"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "rayzig_core.cli", "virtual-gateway", "--port", "0",
            "--state", str(state), "--modules", "2", "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        listening = json.loads(process.stdout.readline())
        assert listening["event"] == "listening"
        code, _, err = run(
            capsys, "virtual-gateway", "--factory-reset", "--yes", "--state", str(state)
        )
        assert code == cli.EXIT_USAGE
        assert "running" in err
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    # Stopped: the reset goes ahead.
    code, _, err = run(capsys, "virtual-gateway", "--factory-reset", "--yes", "--state", str(state))
    assert code == cli.EXIT_OK, err
