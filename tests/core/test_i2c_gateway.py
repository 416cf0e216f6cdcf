"""The real virtual gateway on the fake I2C bus, reached through smbus2's real code path.

Only the kernel boundary is faked (``rayzig_core.testing.fake_i2c``): every test goes client →
I2CTransport → smbus2 → fake ioctl → I2CSlaveLink → the virtual gateway's event loop and back
(PROTOCOL.md §11). Faults are injected at that boundary; exactly-once is checked by counting the
COMMAND events the gateway logged against the commands sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rayzig_core import cli
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import DeviceNotFoundError, DevicePermissionError
from rayzig_core.eventlog import EventLogSync
from rayzig_core.models import EventKind
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import FrameKind
from rayzig_core.protocol.link import HostLinkStats
from rayzig_core.testing.fake_i2c import BusTiming, FakeI2CBus, FaultPlan, fake_open_descriptors
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.i2c import I2CConnector, I2CTransport
from rayzig_core.virtual_gateway import (
    DEFAULT_HOP_LATENCY,
    GatewayConnection,
    VirtualGateway,
    hop_count,
)
from tests.core.conftest import OWNER, OWNER_PASSWORD, SCRYPT_N, wait_for

BUS = 1
ADDRESS = 0x42
FAST_POLL = 0.0005


def make_client(
    connector: RecordingConnector | I2CConnector, credentials: ClientCredentials | None = None
) -> RayzigClient:
    """A client with a short back-off, so reconnections happen within a test."""
    return RayzigClient(
        connector, credentials, backoff_initial=0.05, backoff_max=0.2, request_timeout=5.0
    )


def leftover_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("rayzig-i2c-", "rayzig-virtual-gateway"))
    ]


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    yield
    assert leftover_threads() == []
    assert fake_open_descriptors() == 0


class RecordingConnector:
    """An I2CConnector that keeps every transport it made (to add up their link counters)."""

    def __init__(self, channel: int = 0, *, bus: int = BUS, address: int = ADDRESS) -> None:
        self._inner = I2CConnector(bus, address, channel=channel, poll_interval=FAST_POLL)
        self.transports: list[I2CTransport] = []

    @property
    def description(self) -> str:
        return self._inner.description

    async def connect(self) -> I2CTransport:
        transport = await self._inner.connect()
        self.transports.append(transport)
        return transport

    def link_totals(self) -> HostLinkStats:
        total = HostLinkStats()
        for transport in self.transports:
            for field in dataclasses.fields(HostLinkStats):
                name = field.name
                setattr(total, name, getattr(total, name) + getattr(transport.link_stats, name))
        return total


@contextlib.contextmanager
def i2c_gateway(
    tmp_path: Path, *, faults: FaultPlan | None = None, timing: BusTiming | None = None
) -> Iterator[GatewayThread]:
    """A virtual gateway on fake bus 1 at 0x42 (also on loopback TCP), the fake kernel installed."""
    bus = FakeI2CBus(BUS, faults=faults, timing=timing)
    gw = GatewayThread(tmp_path / "gw.json", scrypt_n=SCRYPT_N, i2c=bus)
    with bus.installed():
        gw.start()
        try:
            yield gw
        finally:
            gw.stop()


async def pair_over_i2c(gw: GatewayThread, channel: int = 0) -> ClientCredentials:
    client = make_client(RecordingConnector(channel))
    try:
        identity = await client.identify()
        return await client.pair(identity, OWNER, OWNER_PASSWORD)
    finally:
        await client.close()


async def connected(
    credentials: ClientCredentials, channel: int = 0
) -> tuple[RayzigClient, RecordingConnector]:
    connector = RecordingConnector(channel)
    client = make_client(connector, credentials)
    await client.connect()
    return client, connector


def reachable_outputs(gw: GatewayThread, count: int) -> list[tuple[int, int]]:
    """``count`` (module id, output index) pairs on reachable modules."""

    def find(g: VirtualGateway) -> list[tuple[int, int]]:
        found = [
            (module.module_id, output.index)
            for module in g.site.modules()
            if module.telemetry.reachable
            for output in module.outputs
        ]
        assert len(found) >= count
        return found[:count]

    return gw.call(find)


def command_events(gw: GatewayThread) -> dict[int, int]:
    """Newest COMMAND count per module (module id → number of COMMAND records in its ring)."""

    def count(g: VirtualGateway) -> dict[int, int]:
        return {
            module.module_id: sum(
                1 for e in g.site.ring(module.module_id) if e.kind is EventKind.COMMAND
            )
            for module in g.site.modules()
        }

    return gw.call(count)


def is_on(gw: GatewayThread, module_id: int, index: int) -> bool:
    return gw.call(lambda g: g.site.module(module_id).outputs[index].is_on)


# --- the basics over I2C -------------------------------------------------------------------------


async def test_pairing_switching_and_event_sync_over_i2c(tmp_path: Path) -> None:
    with i2c_gateway(tmp_path) as gw:
        assert gw.factory is not None
        first = make_client(RecordingConnector())
        identity = await first.identify()
        assert identity.factory_state
        assert identity.fingerprint == gw.call(lambda g: g.fingerprint)
        await first.change_password(
            identity.public_key, OWNER, gw.factory.default_password, OWNER_PASSWORD
        )
        credentials = await first.pair(identity, OWNER, OWNER_PASSWORD)
        await first.close()

        client, connector = await connected(credentials)
        try:
            assert client.connector.description == "i2c://1/0x42"
            modules = await client.list_modules()
            assert len(modules) == 12
            ((module_id, index),) = reachable_outputs(gw, 1)
            notices: list[m.Notification] = []
            client.subscribe(notices.append)
            sync = EventLogSync(client)
            await sync.pull(module_id)  # catch up with the generated history
            want = not is_on(gw, module_id, index)
            output = await client.set_output(module_id, index, want)
            assert output.is_on is want
            assert is_on(gw, module_id, index) is want
            await wait_for(
                lambda: any(isinstance(n, m.OutputChanged) for n in notices), what="push"
            )
            events = await sync.pull(module_id)
            assert [(e.kind, e.output, e.is_on) for e in events] == [
                (EventKind.COMMAND, index, want)
            ]
            assert await sync.pull(module_id) == []
            telemetry = await client.get_telemetry(module_id)
            assert telemetry.reachable
        finally:
            await client.close()
        totals = connector.link_totals()
        assert totals.frames_sent > 0
        # Every frame but the answers is flagged NOTIFY, also the notifications a request caused
        # (sent right after its response): one answer per frame sent (handshake and requests).
        assert totals.notifications_received >= 2  # OutputChanged, EventsAvailable
        assert totals.frames_received - totals.notifications_received == totals.frames_sent
        stats = gw.call(lambda g: gw.i2c_adapter.stats)
        assert stats.mesh_requests == 2  # SetOutput and GetTelemetry reached the module
        assert stats.mesh_hops == 2 * hop_count(module_id)
        assert stats.mesh_delay == 0  # no sleeping timing model: no real delay


async def test_answers_after_a_password_check_are_flagged_as_answers(tmp_path: Path) -> None:
    # ChangePassword and Pair are answered once scrypt has run off the loop, after the frame that
    # asked has been handled: still answers (§11.3), so the host's count of frames awaiting an
    # answer goes back to 0 and no answer is taken for a notification.
    with i2c_gateway(tmp_path) as gw:
        assert gw.factory is not None
        connector = RecordingConnector()
        client = make_client(connector)
        try:
            identity = await client.identify()
            await client.change_password(
                identity.public_key, OWNER, gw.factory.default_password, OWNER_PASSWORD
            )
            await client.pair(identity, OWNER, OWNER_PASSWORD)
        finally:
            await client.close()
        totals = connector.link_totals()
        assert len(connector.transports) == 3
        assert totals.notifications_received == 0
        assert totals.frames_received == 5  # message 2 of the 3 handshakes, the 2 answers


async def test_two_clients_on_two_channels_at_once(tmp_path: Path) -> None:
    with i2c_gateway(tmp_path) as gw:
        gw.setup_owner(OWNER_PASSWORD)
        credentials = await pair_over_i2c(gw)
        a, _ = await connected(credentials, channel=0)
        b, _ = await connected(credentials, channel=5)
        try:
            assert b.connector.description == "i2c://1/0x42#5"
            assert sorted(gw.call(lambda g: gw.i2c_adapter.connections)) == [0, 5]
            (ma, oa), (mb, ob) = reachable_outputs(gw, 2)
            seen_by_a: list[m.OutputChanged] = []
            seen_by_b: list[m.OutputChanged] = []
            a.subscribe(lambda n: seen_by_a.append(n) if isinstance(n, m.OutputChanged) else None)
            b.subscribe(lambda n: seen_by_b.append(n) if isinstance(n, m.OutputChanged) else None)

            async def toggle(client: RayzigClient, module_id: int, index: int) -> None:
                for n in range(20):
                    await client.set_output(module_id, index, n % 2 == 0)

            before = command_events(gw)
            await asyncio.gather(toggle(a, ma, oa), toggle(b, mb, ob))
            after = command_events(gw)
            assert sum(after.values()) - sum(before.values()) == 40
            # Each client hears about the other's switching on its own channel.
            await wait_for(lambda: sum(n.module_id == mb for n in seen_by_a) >= 20, what="a")
            await wait_for(lambda: sum(n.module_id == ma for n in seen_by_b) >= 20, what="b")
            assert a.stats.connects == b.stats.connects == 1
        finally:
            await a.close()
            await b.close()


# --- faults --------------------------------------------------------------------------------------


async def _switch_many(
    gw: GatewayThread, client: RayzigClient, outputs: list[tuple[int, int]], per_output: int
) -> dict[tuple[int, int], bool]:
    """Toggle each output ``per_output`` times (one task per output); return the final states."""
    start = {key: is_on(gw, *key) for key in outputs}

    async def toggle(key: tuple[int, int]) -> None:
        state = start[key]
        for _ in range(per_output):
            state = not state
            result = await client.set_output(key[0], key[1], state)
            assert result.is_on is state

    await asyncio.gather(*(toggle(key) for key in outputs))
    return {key: start[key] ^ (per_output % 2 == 1) for key in outputs}


async def _fault_run(
    tmp_path: Path, plan: FaultPlan, outputs: int, per_output: int
) -> dict[str, Any]:
    with i2c_gateway(tmp_path, faults=plan) as gw:
        gw.setup_owner(OWNER_PASSWORD)
        credentials = await pair_over_i2c(gw)
        client, connector = await connected(credentials)
        try:
            keys = reachable_outputs(gw, outputs)
            before = command_events(gw)
            started = time.perf_counter()
            expected = await _switch_many(gw, client, keys, per_output)
            elapsed = time.perf_counter() - started
            after = command_events(gw)
        finally:
            await client.close()
        sent = outputs * per_output
        logged = sum(after.values()) - sum(before.values())
        assert logged == sent  # no command lost, none applied twice
        assert {key: is_on(gw, *key) for key in keys} == expected
        link = connector.link_totals()
        return {
            "commands": sent,
            "logged": logged,
            "seconds": round(elapsed, 2),
            "injected": plan.injected,
            "link": link,
            "client_retries": client.stats.retries,
            "reconnects": client.stats.connects - 1,
        }


async def test_soak_2000_commands_at_1_percent_bit_flips_and_nacks(tmp_path: Path) -> None:
    plan = FaultPlan(bit_flip_rate=0.01, nack_rate=0.01, seed=2026)
    result = await _fault_run(tmp_path, plan, outputs=8, per_output=250)
    print(f"\nI2C soak: {result}")
    injected = plan.injected
    assert result["commands"] == result["logged"] == 2_000
    assert injected.bit_flips >= 50
    assert injected.nacks >= 50
    link = result["link"]
    # Every injected fault that hit a link transaction was repaired by the link layer.
    assert link.retransmissions >= injected.bit_flips + injected.nacks - 10
    assert result["client_retries"] == 0  # the link layer hid every fault from the session


async def test_every_fault_kind_is_recovered(tmp_path: Path) -> None:
    plan = FaultPlan(bit_flip_rate=0.03, nack_rate=0.03, busy_rate=0.03, timeout_rate=0.03, seed=7)
    result = await _fault_run(tmp_path, plan, outputs=4, per_output=75)
    print(f"\nI2C all faults: {result}")
    injected = plan.injected
    assert min(injected.bit_flips, injected.nacks, injected.busy, injected.timeouts) >= 10
    link = result["link"]
    assert link.busy > 0  # answered BUSY: polled again, not counted as a failure
    assert link.bus_errors > 0  # NACKs and timeouts: retried with back-off
    assert link.link_errors > 0  # bit flips caught by the CRC: retransmitted


# --- gateway reboot ------------------------------------------------------------------------------


def handshake_hash(connection: GatewayConnection) -> bytes:
    """The Noise handshake hash of a gateway connection's session (unique per session)."""
    channel = connection._channel
    assert channel is not None
    return channel.handshake_hash


def _ephemeral(frame: bytes) -> bytes:
    """The client's ephemeral public key: the first 32 bytes of a handshake's first message."""
    assert frame[0] in (FrameKind.HELLO_XX, FrameKind.HELLO_IK)
    return frame[1:33]


async def test_gateway_reboot_mid_session_means_a_fresh_handshake(tmp_path: Path) -> None:
    with i2c_gateway(tmp_path) as gw:
        gw.setup_owner(OWNER_PASSWORD)
        credentials = await pair_over_i2c(gw)
        client, _ = await connected(credentials)
        try:
            ((module_id, index),) = reachable_outputs(gw, 1)
            adapter = gw.call(lambda g: gw.i2c_adapter)
            old_connection = gw.call(lambda g: adapter.connections[0])
            old_hash = gw.call(lambda g: handshake_hash(old_connection))
            assert client._session is not None
            old_channel = client._session.channel
            handshakes = gw.call(lambda g: list(adapter.handshakes))
            before = sum(command_events(gw).values())

            # Commands keep coming while the gateway MCU reboots in the middle of them.
            async def commands() -> None:
                for n in range(30):
                    await client.set_output(module_id, index, n % 2 == 0)

            task = asyncio.create_task(commands())
            await wait_for(lambda: sum(command_events(gw).values()) >= before + 10, what="10")
            gw.reboot_i2c()
            await asyncio.wait_for(task, 30)
            assert sum(command_events(gw).values()) == before + 30  # exactly once, across it
            assert is_on(gw, module_id, index) is False

            print(f"\nreboot: client {client.stats}")
            assert client.stats.connects == 2  # one fresh handshake after the reboot
            assert gw.call(lambda g: adapter.stats.reboots) == 1
            new_handshakes = gw.call(lambda g: list(adapter.handshakes))[len(handshakes) :]
            assert len(new_handshakes) == 1
            assert new_handshakes[0][1][0] == FrameKind.HELLO_IK
            assert _ephemeral(new_handshakes[0][1]) != _ephemeral(handshakes[-1][1])
            new_connection = gw.call(lambda g: adapter.connections[0])
            assert new_connection is not old_connection
            assert old_connection.closed
            assert gw.call(lambda g: handshake_hash(new_connection)) != old_hash

            # No nonce reuse: the old session's next frame (its keys, its next nonce) is not
            # accepted by the gateway's new session on the same channel.
            old_channel._closed = False
            stale = old_channel.seal(10**9, m.SetOutput(module_id, index, on=True))
            gw.call(lambda g: new_connection.frame_received(stale))
            assert new_connection.closed
            assert sum(command_events(gw).values()) == before + 30
            assert is_on(gw, module_id, index) is False
            # The gateway ended that channel's link; the client reconnects and carries on.
            assert (await client.set_output(module_id, index, on=True)).is_on
            assert client.stats.connects == 3
        finally:
            await client.close()


# --- errors that tell the user what to do --------------------------------------------------------


async def test_missing_device_names_bus_and_address(tmp_path: Path) -> None:
    with i2c_gateway(tmp_path):
        client = make_client(I2CConnector(BUS, 0x43, poll_interval=FAST_POLL))
        with pytest.raises(DeviceNotFoundError) as info:
            await client.identify()
        await client.close()
    message = str(info.value)
    assert "0x43" in message
    assert "bus 1" in message
    assert "i2cdetect -y 1" in message
    with FakeI2CBus(3, open_error="missing").installed():
        client = make_client(I2CConnector(3, ADDRESS))
        with pytest.raises(DeviceNotFoundError) as info:
            await client.identify()
        await client.close()
    assert "/dev/i2c-3" in str(info.value)
    assert "0x42" in str(info.value)
    assert "dtparam=i2c_arm=on" in str(info.value)


async def test_permission_problem_says_what_to_do() -> None:
    with FakeI2CBus(BUS, open_error="permission").installed():
        client = make_client(I2CConnector(BUS, ADDRESS))
        with pytest.raises(DevicePermissionError) as info:
            await client.identify()
        await client.close()
    message = str(info.value)
    assert "/dev/i2c-1" in message
    assert "0x42" in message
    assert "usermod -aG i2c" in message
    assert "container" in message


# --- mesh hop latency ----------------------------------------------------------------------------


async def test_mesh_hop_latency_with_a_sleeping_timing_model(tmp_path: Path) -> None:
    timing = BusTiming(1_000_000, sleep=True)
    with i2c_gateway(tmp_path, timing=timing) as gw:
        assert gw.hop_latency == DEFAULT_HOP_LATENCY
        gw.setup_owner(OWNER_PASSWORD)
        credentials = await pair_over_i2c(gw)
        client, _ = await connected(credentials)
        try:
            by_hops: dict[int, tuple[int, int]] = {}
            for module_id, index in reachable_outputs(gw, 12):
                by_hops.setdefault(hop_count(module_id), (module_id, index))
            near, far = by_hops[1], by_hops[4]

            async def round_trip(key: tuple[int, int]) -> float:
                times = []
                for n in range(5):
                    started = time.perf_counter()
                    await client.set_output(key[0], key[1], n % 2 == 0)
                    times.append(time.perf_counter() - started)
                return sorted(times)[2]

            await client.get_info()  # never reaches a module: not delayed (not a mesh request)
            near_time, far_time = await round_trip(near), await round_trip(far)
            stats = gw.call(lambda g: gw.i2c_adapter.stats)
        finally:
            await client.close()
    # Only lower bounds: the responses were really held back; a busy machine only adds time.
    assert near_time >= DEFAULT_HOP_LATENCY
    assert far_time >= 4 * DEFAULT_HOP_LATENCY
    assert stats.mesh_requests == 10
    assert stats.mesh_hops == 5 * 1 + 5 * 4
    assert stats.mesh_delay == pytest.approx(25 * DEFAULT_HOP_LATENCY)


# --- the CLI over the simulated bus --------------------------------------------------------------


def test_cli_over_fake_i2c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RAYZIG_PASSWORD", "RAYZIG_NEW_PASSWORD", "RAYZIG_RECOVERY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("rayzig_core.cli.prompts.interactive", lambda: False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the default key file goes there
    state = tmp_path / "gw.json"
    setup = GatewayThread(state, scrypt_n=SCRYPT_N).start()
    try:
        setup.setup_owner(OWNER_PASSWORD)
        fingerprint = setup.call(lambda g: g.fingerprint)
    finally:
        setup.stop()
    where = ["--fake-i2c", str(state), "--i2c-bus", "1", "--address", "0x42"]

    monkeypatch.setenv("RAYZIG_PASSWORD", OWNER_PASSWORD)
    assert cli.main([*where, "pair", "--yes-fingerprint", fingerprint]) == 0
    monkeypatch.delenv("RAYZIG_PASSWORD")
    key_file = tmp_path / ".config" / "rayzig" / "client.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(key_file.read_text())["connection"] == {"i2c_bus": 1, "address": 0x42}
    capsys.readouterr()

    assert cli.main(["--fake-i2c", str(state), "--i2c-bus", "1", "--address", "0x42",
                     "modules", "--json"]) == 0  # fmt: skip
    modules = json.loads(capsys.readouterr().out)
    assert len(modules) == 12
    module = next(m for m in modules if m["reachable"])
    number = module["outputs"][0]["number"]
    want = "off" if module["outputs"][0]["on"] else "on"

    # Every fault kind at once, and the bus in real time at 1 MHz with the mesh latency.
    faults = ["--fault-bit-flips", "0.05", "--fault-nacks", "0.05", "--fault-busy", "0.05",
              "--fault-timeouts", "0.05", "--fault-seed", "11", "--i2c-clock", "1M"]  # fmt: skip
    code = cli.main([*where, *faults, "set", str(module["id"]), str(number), want, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["on"] is (want == "on")
    assert "Simulated I2C bus 1:" in captured.err
    assert "seed 11" in captured.err
    # The change was made on the gateway, whose state file now holds it.
    check = GatewayThread(state, scrypt_n=SCRYPT_N).start()
    try:
        now_on = check.call(lambda g: g.site.module(module["id"]).outputs[number - 1].is_on)
    finally:
        check.stop()
    assert now_on is (want == "on")

    # The key file remembers the I2C connection: --fake-i2c alone is enough.
    assert cli.main(["--fake-i2c", str(state), "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["paired"] is True

    # Mistakes say what to do.
    assert cli.main(["--fault-nacks", "0.1", "modules"]) == 1
    assert "--fake-i2c" in capsys.readouterr().err
    assert cli.main([*where, "--fault-nacks", "0.6", "--fault-busy", "0.6", "modules"]) == 1
    assert "add up to at most 1" in capsys.readouterr().err
    assert cli.main([*where, "--i2c-clock", "3M", "modules"]) == 1
    assert "100k, 400k or 1M" in capsys.readouterr().err
    assert cli.main(["--fake-i2c", str(state), "--host", "127.0.0.1", "modules"]) == 1
    assert "--i2c-bus/--address" in capsys.readouterr().err
    assert cli.main(["--fake-i2c", str(state), "keygen", "--out", str(tmp_path / "k")]) == 1
    assert "does not connect to a gateway" in capsys.readouterr().err
