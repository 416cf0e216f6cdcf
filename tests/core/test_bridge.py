"""The network bridge (PROTOCOL.md §11.2) on real loopback sockets and the faked kernel I2C bus.

A client talks TCP to the bridge, the bridge talks I2C (smbus2's real code, only the kernel
boundary faked) to the real virtual gateway, which answers on a FakeI2CDevice with one session per
link channel.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import logging
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from rayzig_core import bridge as bridge_module
from rayzig_core import zeroconf_advertiser
from rayzig_core.bridge import (
    SERVICE_TYPE,
    Bridge,
    BridgeConfig,
    GatewayAdvert,
    ZeroconfAdvertiser,
    parse_listen,
    run_bridge,
)
from rayzig_core.bridge import channel as bridge_channel
from rayzig_core.cli import build_parser, main
from rayzig_core.client import RayzigClient
from rayzig_core.eventlog import EventLogSync
from rayzig_core.models import EventKind
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import length_prefixed
from rayzig_core.testing.fake_i2c import BusTiming, FakeI2CBus, fake_open_descriptors
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.i2c import I2CConnector
from rayzig_core.transport.tcp import TcpConnector, TcpTransport
from rayzig_core.virtual_gateway import VirtualGateway
from tests.core.conftest import (
    FAST,
    HANG_TIMEOUT,
    HOST,
    OWNER,
    OWNER_PASSWORD,
    SCRYPT_N,
    output_state,
    switchable_output,
    wait_for,
)

BUS = 7
ADDRESS = 0x42


# --- the virtual gateway on a fake I2C bus ------------------------------------------------------


@dataclass
class Link:
    """The frames of one session, in order, as one end saw them."""

    channel: int = 0
    sent: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)


class FrameTap:
    """Records every frame at the gateway's I2C device, per link (a HELLO starts a new one)."""

    def __init__(self, gw: GatewayThread) -> None:
        self.links: list[Link] = []
        self._current: dict[int, Link] = {}
        device = gw.i2c_device
        assert device is not None

        def install(gateway: VirtualGateway) -> None:
            adapter = gw.i2c_adapter
            push = device.push_frame

            def on_connect(channel: int) -> None:
                self._current[channel] = link = Link(channel)
                self.links.append(link)
                adapter._connect(channel)

            def on_frame(channel: int, frame: bytes) -> None:
                self._current[channel].received.append(frame)
                adapter._frame(channel, frame)

            def push_frame(channel: int, frame: bytes, *, notify: bool = False) -> None:
                self._current[channel].sent.append(frame)
                push(channel, frame, notify=notify)

            device.attach(on_frame, on_connect=on_connect, loop=asyncio.get_running_loop())
            device.push_frame = push_frame  # type: ignore[method-assign]

        gw.call(install)

    def link_of(self, session: Link) -> Link:
        """The gateway's side of a client session (matched by its first frame: unique)."""
        (link,) = [k for k in self.links if k.received[:1] == session.sent[:1]]
        return link


@contextlib.contextmanager
def gateway_on_bus(tmp_path: Path, timing: BusTiming | None = None) -> Iterator[GatewayThread]:
    """An owned virtual gateway at ADDRESS on fake bus BUS, installed for the ``with`` block."""
    bus = FakeI2CBus(BUS, timing=timing)
    gw = GatewayThread(
        tmp_path / "gw.json", scrypt_n=SCRYPT_N, i2c=bus, i2c_address=ADDRESS, hop_latency=0.0
    )
    with bus.installed():
        gw.start()
        try:
            gw.setup_owner(OWNER_PASSWORD)
            yield gw
        finally:
            gw.stop()
    assert fake_open_descriptors() == 0


@pytest.fixture
def i2c_gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    """The owned virtual gateway on the fake bus (full speed: no timing model)."""
    with gateway_on_bus(tmp_path) as gw:
        yield gw


def i2c_connector_for(channel: int) -> I2CConnector:
    return I2CConnector(BUS, ADDRESS, channel=channel, poll_interval=0.001)


@pytest.fixture
async def bridge(i2c_gateway: GatewayThread) -> AsyncIterator[Bridge]:
    started = Bridge(i2c_connector_for, host=HOST, port=0)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
    assert not i2c_threads(), "the bridge left I2C worker threads behind"


def i2c_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rayzig-i2c-")]


class RecordingConnector:
    """A TCP connector whose transports record every frame sent and received, per session."""

    def __init__(self, port: int) -> None:
        self._inner = TcpConnector(HOST, port, timeout=5.0)
        self.sessions: list[Link] = []

    @property
    def description(self) -> str:
        return self._inner.description

    async def connect(self) -> TcpTransport:
        transport = await self._inner.connect()
        send, receive = transport.send, transport.receive
        session = Link()
        self.sessions.append(session)

        async def recording_send(frame: bytes) -> None:
            session.sent.append(frame)
            await send(frame)

        async def recording_receive() -> bytes:
            frame = await receive()
            session.received.append(frame)
            return frame

        transport.send = recording_send  # type: ignore[method-assign]
        transport.receive = recording_receive  # type: ignore[method-assign]
        return transport


def client_for(port: int, credentials: Any = None) -> RayzigClient:
    return RayzigClient(TcpConnector(HOST, port, timeout=5.0), credentials, **FAST)


async def paired_client(bridge: Bridge) -> RayzigClient:
    client = client_for(bridge.port)
    identity = await client.identify()
    await client.pair(identity, OWNER, OWNER_PASSWORD)
    await client.connect()
    return client


# --- forwarding ---------------------------------------------------------------------------------


async def test_pair_switch_and_sync_events_through_the_bridge(
    bridge: Bridge, i2c_gateway: GatewayThread
) -> None:
    gw = i2c_gateway
    tap = FrameTap(gw)
    recorder = RecordingConnector(bridge.port)
    client = RayzigClient(recorder, **FAST)
    identity = await client.identify()
    assert identity.fingerprint == gw.call(lambda g: g.fingerprint)
    assert identity.serial == gw.call(lambda g: g.serial)
    await client.pair(identity, OWNER, OWNER_PASSWORD)
    try:
        await client.connect()
        module_id, index = switchable_output(gw)
        sync = EventLogSync(client)
        assert await sync.pull(module_id) == []  # the cursor starts at the newest record
        before = output_state(gw, module_id, index)
        await client.set_output(module_id, index, not before)
        assert output_state(gw, module_id, index) is (not before)  # the gateway really switched

        events = await sync.pull(module_id)
        commands = [e for e in events if e.kind is EventKind.COMMAND]
        assert commands
        assert commands[-1].is_on is (not before)
        await client.set_output(module_id, index, before)
        newer = await sync.pull(module_id)
        assert [e.is_on for e in newer if e.kind is EventKind.COMMAND] == [before]
        assert await sync.pull(module_id) == []
        # Let the last notifications (OutputChanged, EventsAvailable) arrive before closing.
        keyed = recorder.sessions[-1]
        await wait_for(
            lambda: len(keyed.received) == len(tap.link_of(keyed).sent),
            what="every frame the gateway sent to reach the client",
        )
    finally:
        await client.close()

    # Forwarded unchanged: in each of the three sessions (identify, pair, keyed) the frames the
    # client sent are, byte for byte and in order, the frames the gateway received over I2C, and
    # the frames the client received are the ones the gateway sent.
    assert len(recorder.sessions) == 3
    for session in recorder.sessions:
        link = tap.link_of(session)
        assert session.sent == link.received
        assert session.received == link.sent
    assert sum(len(s.sent) + len(s.received) for s in recorder.sessions) > 12
    await wait_for(lambda: not bridge.clients, what="the bridge to drop the client")


async def test_two_busy_clients_share_the_bus_and_both_progress(
    bridge: Bridge, i2c_gateway: GatewayThread
) -> None:
    gw = i2c_gateway
    first = await paired_client(bridge)
    second = await paired_client(bridge)
    await wait_for(lambda: len(bridge.clients) == 2, what="the two keyed sessions only")
    assert len({c.channel for c in bridge.clients}) == 2
    notices: list[m.Notification] = []
    second.subscribe(notices.append)
    module_id, index = switchable_output(gw)
    done = {"first": 0, "second": 0}
    stop = asyncio.Event()  # set when either has done 20: counted in work, not in seconds

    async def busy(name: str, client: RayzigClient) -> None:
        on = False
        while not stop.is_set():
            if name == "first":
                on = not on
                await client.set_output(module_id, index, on)
            else:
                await client.list_modules()  # large answers: many chunks per frame
            done[name] += 1
            if done[name] >= 20:
                stop.set()

    try:
        await asyncio.gather(busy("first", first), busy("second", second))
        # Both made real progress on the one bus: neither was starved by the other.
        assert min(done.values()) >= 5, done
        assert any(isinstance(n, m.OutputChanged) for n in notices)  # pushed through the bridge
        assert bridge.accepted == 6  # identify + pair + keyed session, twice
    finally:
        await first.close()
        await second.close()


async def test_two_clients_take_turns_on_a_busy_400_khz_bus(tmp_path: Path) -> None:
    """With the modelled bus as the bottleneck, the fair bus lock shares it evenly."""
    timing = BusTiming(400_000, sleep=True)
    with gateway_on_bus(tmp_path, timing) as gw:
        async with Bridge(i2c_connector_for, host=HOST, port=0) as bridge:
            clients = [await paired_client(bridge) for _ in range(2)]
            reads = [0, 0]
            alone = timing.transactions
            stop = asyncio.Event()  # set when either has read 8 times: work, not seconds

            async def busy(number: int) -> None:
                while not stop.is_set():
                    await clients[number].list_modules()  # ~12 chunks of 256 bytes each
                    reads[number] += 1
                    if reads[number] >= 8:
                        stop.set()

            try:
                await asyncio.gather(busy(0), busy(1))
            finally:
                for client in clients:
                    await client.close()
        assert timing.transactions - alone > 4 * sum(reads)  # the bus really was busy
        assert min(reads) >= 5, reads
        assert min(reads) / max(reads) >= 0.6, reads  # neither starved: they took turns
    del gw
    assert not i2c_threads()


async def test_a_client_vanishing_mid_frame_disturbs_no_one(
    bridge: Bridge, i2c_gateway: GatewayThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rayzig_core.bridge")
    gw = i2c_gateway
    tap = FrameTap(gw)
    steady = await paired_client(bridge)
    await wait_for(lambda: len(bridge.clients) == 1, what="one client")
    module_id, index = switchable_output(gw)
    try:
        (steady_link,) = bridge.clients
        for abort in (False, True):
            known = len(tap.links)
            reader, writer = await asyncio.open_connection(HOST, bridge.port)
            # Half a frame: a length of 256, then 10 of its bytes, then gone.
            writer.write(b"\x01\x00" + b"\x10" * 10)
            await writer.drain()
            await wait_for(
                lambda: any(t.frame_started is not None for t in bridge.gatekeeper.tickets),
                what="the half frame to reach the bridge",
            )
            (vanishing,) = (c for c in bridge.clients if c is not steady_link)
            if abort:
                writer.transport.abort()  # RST
            else:
                writer.close()
            await wait_for(
                lambda: [id(c) for c in bridge.clients] == [id(steady_link)],
                what="the bridge to drop it",
            )
            # Nothing of it reached the gateway: a link channel is opened for a whole frame only.
            # (The tap may still see the HELLO with which the bridge reset the pairing client's
            # channel, handled later on the gateway's thread: such a link carries no frame.)
            assert (vanishing.channel, vanishing.frames_up, vanishing.bytes_up) == (0, 0, 0)
            assert [link for link in tap.links[known:] if link.received] == []
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            del reader
            # The other client carries on, on its own channel and session.
            await steady.set_output(module_id, index, not abort)
            assert output_state(gw, module_id, index) is (not abort)
        assert "in the middle of a frame; dropped its 12 bytes" in caplog.text
        # A new client is served as before.
        newcomer = client_for(bridge.port)
        assert (await newcomer.identify()).serial == gw.call(lambda g: g.serial)
        await newcomer.close()
    finally:
        await steady.close()


async def test_more_clients_than_allowed_are_closed_with_a_log_line(
    i2c_gateway: GatewayThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rayzig_core.bridge")
    async with Bridge(i2c_connector_for, host=HOST, port=0, max_clients=2) as bridge:
        clients = [await paired_client(bridge) for _ in range(2)]
        # The pairing connections close after their clients pair: wait until they are gone.
        await wait_for(
            lambda: (
                bridge.gatekeeper.sessions == 2
                and len(bridge.clients) == 2
                and all(c.authenticated for c in bridge.clients)
            ),
            what="two authenticated clients and no other",
        )
        reader, extra = await asyncio.open_connection(HOST, bridge.port)
        assert await asyncio.wait_for(reader.read(10), 30) == b""  # closed at once, cleanly
        assert bridge.refused == 1
        assert "Refusing the connection from 127.0.0.1:" in caplog.text
        assert "(--max-clients 2)" in caplog.text
        extra.close()
        # A place frees up: the next client is served again.
        await clients.pop().close()
        await wait_for(lambda: bridge.gatekeeper.sessions == 1, what="a client to leave")
        client = client_for(bridge.port)
        assert (await client.identify()).serial == i2c_gateway.call(lambda g: g.serial)
        await client.close()
        for client in clients:
            await client.close()
    assert not i2c_threads()


async def test_a_gateway_link_error_closes_only_that_client(
    bridge: Bridge, i2c_gateway: GatewayThread
) -> None:
    gw = i2c_gateway
    first = await paired_client(bridge)
    second = await paired_client(bridge)
    module_id, index = switchable_output(gw)
    ended = asyncio.Event()
    try:
        await wait_for(lambda: len(bridge.clients) == 2, what="two clients")
        oldest, newest = sorted(bridge.clients, key=lambda c: c.connected_at)
        # The gateway ends the first client's link (as for a protocol violation or a revoked key).
        gw.call(lambda g: gw.i2c_adapter.connections[oldest.channel].close())
        first.subscribe_state(lambda state: ended.set())
        await wait_for(lambda: bridge.clients == (newest,), what="only the other client left")
        await second.set_output(module_id, index, on=True)
        assert output_state(gw, module_id, index) is True
        # The client whose link ended reconnects through the bridge on its own.
        await asyncio.wait_for(ended.wait(), 5)
        await first.set_output(module_id, index, on=False)
        assert output_state(gw, module_id, index) is False
    finally:
        await first.close()
        await second.close()


async def test_a_gateway_that_does_not_answer_refuses_the_client(
    i2c_gateway: GatewayThread, caplog: pytest.LogCaptureFixture
) -> None:
    def nowhere(channel: int) -> I2CConnector:
        return I2CConnector(BUS, 0x43, channel=channel, poll_interval=0.001)  # no such device

    async with Bridge(nowhere, host=HOST, port=0) as bridge:
        reader, writer = await asyncio.open_connection(HOST, bridge.port)
        writer.write(length_prefixed(b"\x01" + bytes(32)))  # a whole HELLO_XX: a channel opens
        assert await asyncio.wait_for(reader.read(10), 30) == b""
        writer.close()
        await wait_for(lambda: not bridge.clients, what="the client to be dropped")
    assert "cannot open link channel 1" in caplog.text
    assert "i2cdetect" in caplog.text


async def test_stop_disconnects_every_client_and_joins_every_thread(
    i2c_gateway: GatewayThread,
) -> None:
    bridge = Bridge(i2c_connector_for, host=HOST, port=0)
    await bridge.start()
    clients = [await paired_client(bridge) for _ in range(3)]
    assert len(i2c_threads()) == 3
    tasks_before = len(asyncio.all_tasks())
    await bridge.stop()
    assert not bridge.clients
    assert not i2c_threads()
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, bridge.port)
    for client in clients:
        await client.close()
    assert len(asyncio.all_tasks()) < tasks_before


# --- the bridge holds no keys and reads nothing -------------------------------------------------


def test_importing_the_bridge_loads_no_session_code() -> None:
    code = (
        "import sys, rayzig_core.bridge, rayzig_core.transport.i2c;"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=30
        ).stdout.split()
    )
    assert "rayzig_core.bridge" in loaded
    forbidden = {
        "rayzig_core.client",
        "rayzig_core.protocol.noise",
        "rayzig_core.protocol.session",
        "rayzig_core.protocol.messages",
        "rayzig_core.virtual_gateway",
        "cryptography",
    }
    assert not loaded & forbidden


def test_the_bridge_module_imports_session_code_only_inside_identify() -> None:
    package = Path(bridge_module.__file__).parent
    sources = [*sorted(package.glob("*.py")), Path(zeroconf_advertiser.__file__)]
    assert len(sources) > 2
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in sources]
    top_level = {
        alias.name if isinstance(node, ast.Import) else str(node.module)
        for tree in trees
        for node in tree.body
        for alias in getattr(node, "names", [])
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    assert not any("noise" in n or "session" in n or "client" in n for n in top_level)
    lazy = {
        (func.name, str(node.module))
        for tree in trees
        for func in ast.walk(tree)
        if isinstance(func, ast.AsyncFunctionDef | ast.FunctionDef)
        for node in ast.walk(func)
        if isinstance(node, ast.ImportFrom) and node.module and "rayzig_core" in node.module
    }
    assert lazy == {("identify_gateway", "rayzig_core.client")}


# --- zeroconf -----------------------------------------------------------------------------------


async def test_zeroconf_advertises_serial_and_fingerprint_on_loopback(
    i2c_gateway: GatewayThread,
) -> None:
    gw = i2c_gateway
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[Bridge, GatewayAdvert, ZeroconfAdvertiser | None]] = (
        asyncio.get_running_loop().create_future()
    )
    config = BridgeConfig(i2c_connector_for, host=HOST, port=0, zeroconf_interfaces=[HOST])
    runner = asyncio.create_task(
        run_bridge(config, wait=stop.wait, on_ready=lambda *args: ready.set_result(args))
    )
    browser_zc = AsyncZeroconf(interfaces=[HOST], ip_version=IPVersion.V4Only)
    try:
        bridge, advert, advertiser = await asyncio.wait_for(ready, HANG_TIMEOUT)
        assert advertiser is not None
        found: asyncio.Queue[str] = asyncio.Queue()

        def on_change(
            zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
        ) -> None:
            if state_change is ServiceStateChange.Added:
                found.put_nowait(name)

        browser = AsyncServiceBrowser(browser_zc.zeroconf, [SERVICE_TYPE], handlers=[on_change])
        try:
            # Other bridges on this host (other test runs) may announce on loopback too: wait
            # for this one's name among whatever is found.
            async with asyncio.timeout(HANG_TIMEOUT):
                while (name := await found.get()) != advertiser.name:
                    pass
        finally:
            await browser.async_cancel()
        info = await browser_zc.async_get_service_info(
            SERVICE_TYPE, name, timeout=int(HANG_TIMEOUT * 1000)
        )
        assert info is not None
        properties = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        assert properties == {
            "serial": gw.call(lambda g: g.serial),
            "fingerprint": gw.call(lambda g: g.fingerprint),
            "version": str(m.PROTOCOL_VERSION),
        }
        assert advert.txt() == properties
        assert info.port == bridge.port
        assert info.parsed_addresses() == [HOST]
        # What a discovering client then does: connect to the announced address and port.
        client = client_for(info.port)
        assert (await client.identify()).fingerprint == properties["fingerprint"]
        await client.close()
    finally:
        stop.set()
        await asyncio.wait_for(runner, 20)
        await browser_zc.async_close()
    assert not i2c_threads()


def test_listen_addresses_and_advertised_addresses() -> None:
    assert parse_listen("0.0.0.0:7780") == ("0.0.0.0", 7780)
    assert parse_listen(":7781") == ("0.0.0.0", 7781)
    assert parse_listen("[::]:7780") == ("::", 7780)
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    for bad in ("7780", "host", "1.2.3.4:99999", "[::1]7780", "a:b"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    assert zeroconf_advertiser.advertised_addresses("192.0.2.7") == ["192.0.2.7"]
    assert zeroconf_advertiser.advertised_addresses("0.0.0.0", ["127.0.0.1"]) == ["127.0.0.1"]
    everywhere = zeroconf_advertiser.advertised_addresses("0.0.0.0")
    assert everywhere
    assert all(zeroconf_advertiser._is_ip(a) for a in everywhere)


# --- the command line ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def run_main_in_thread(argv: list[str]) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(main(argv)), name="cli-bridge")
    thread.start()
    return thread, result


async def wait_until_listening(port: int, within: float = HANG_TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing listens on {port}")
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


async def test_cli_bridge_runs_and_stops_cleanly(
    i2c_gateway: GatewayThread, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    thread, result = run_main_in_thread(
        [
            "bridge",
            "--i2c-bus",
            str(BUS),
            "--address",
            "0x42",
            "--listen",
            f"{HOST}:{port}",
            "--no-zeroconf",
            "--max-clients",
            "3",
            "--run-for",
            "3",
            "--json",
        ]
    )
    try:
        await wait_until_listening(port)
        client = client_for(port)
        identity = await client.identify()
        assert identity.serial == i2c_gateway.call(lambda g: g.serial)
        await client.close()
    finally:
        await asyncio.to_thread(thread.join, 20)
    assert result == [0]
    assert not thread.is_alive()
    assert not i2c_threads()
    out = capsys.readouterr().out
    assert '"event": "listening"' in out
    assert f'"port": {port}' in out
    assert f'"fingerprint": "{identity.fingerprint}"' in out
    assert '"event": "stopped"' in out


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_cli_bridge_process_stops_cleanly_on_a_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """The real program (as systemd runs it), with its gateway on a simulated bus (--fake-i2c)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from rayzig_core.cli import main; sys.exit(main())",
        "bridge",
        "--fake-i2c",
        str(tmp_path / "gw.json"),
        "--i2c-bus",
        "3",
        "--address",
        "0x21",
        "--listen",
        f"{HOST}:{port}",
        "--no-zeroconf",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        secrets = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert secrets["event"] == "factory_secrets"  # a new gateway: its secrets on stdout
        listening = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert listening["event"] == "listening"
        assert listening["port"] == port
        client = client_for(port)
        identity = await client.identify()
        await client.close()
        assert identity.fingerprint == listening["fingerprint"]
        assert identity.serial == listening["serial"]
        process.send_signal(stop_signal)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert json.loads(out.decode().strip().splitlines()[-1])["event"] == "stopped"
    assert b"Traceback" not in err
    assert b"Client 127.0.0.1:" in err  # a log line per client on stderr
    assert secrets["default_password"].encode() not in err
    assert secrets["recovery_secret"].encode() not in err


def test_cli_bridge_without_a_gateway_fails_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bus = FakeI2CBus(BUS)  # nothing at the address
    with bus.installed():
        code = main(
            [
                "bridge",
                "--i2c-bus",
                str(BUS),
                "--address",
                "0x42",
                "--listen",
                f"{HOST}:0",
                "--no-zeroconf",
                "--run-for",
                "1",
            ]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert "i2cdetect" in err
    assert "Traceback" not in err
    assert not i2c_threads()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "nonsense"], "is not HOST:PORT"),
        (["--listen", f"{HOST}:0", "--max-clients", "16"], "1 to 15"),
        (["--listen", f"{HOST}:0", "--address", "0x42"], "--i2c-bus"),
    ],
)
def test_cli_bridge_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["bridge", "--i2c-bus", str(BUS), "--address", "0x42"]
    if "--address" in argv:
        base = ["bridge"]
    assert main([*base, *argv]) == 1
    assert message in capsys.readouterr().err


# --- contrib --------------------------------------------------------------------------------------


def test_the_systemd_unit_is_hardened_and_runs_a_valid_command() -> None:
    unit = Path(__file__).parents[2] / "contrib" / "systemd" / "rayzig-bridge.service"
    settings: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    for key, value in {
        "User": "rayzig",
        "SupplementaryGroups": "i2c",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "DeviceAllow": "/dev/i2c-1 rw",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "Restart": "on-failure",
        "CapabilityBoundingSet": "",
    }.items():
        assert settings.get(key) == [value], key
    (exec_start,) = settings["ExecStart"]
    program, *argv = shlex.split(exec_start)
    assert program == "/opt/rayzig/venv/bin/rayzig"
    args = build_parser().parse_args(argv)
    assert (args.command, args.i2c_bus, args.address, args.listen) == (
        "bridge",
        1,
        0x42,
        ("0.0.0.0", 7780),
    )
    assert f"/dev/i2c-{args.i2c_bus} rw" in settings["DeviceAllow"]


def test_client_sockets_get_tcp_keepalive() -> None:
    class Writer:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> Any:
            return self.sock if name == "socket" else None

    with socket.socket() as sock:
        bridge_channel.keepalive(Writer(sock))  # type: ignore[arg-type]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            assert idle == bridge_channel.KEEPALIVE_IDLE
