"""TCP fault injection: dropped connections and gateway reboots never lose or repeat a command.

Deterministic on a loaded machine: the faults are seeded and turned on only once the client is
paired and connected, the program under test runs until the test stops it (no ``--run-for``),
and the test waits for events (a counter reaching a value), never for a length of time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import ConnectionFailedError
from rayzig_core.models import EventKind
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector
from rayzig_core.virtual_gateway import TcpFaults
from tests.core.conftest import wait_for

PASSWORD = "mauve-otter-juggles-47-kites"
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05}


async def _pair(port: int) -> ClientCredentials:
    client = RayzigClient(TcpConnector("127.0.0.1", port))
    identity = await client.identify()
    creds = await client.pair(identity, "installer", PASSWORD)
    await client.close()
    return creds


def _commands(gateway: GatewayThread, module_id: int) -> int:
    return gateway.call(
        lambda g: sum(
            1
            for event in g.site.ring(module_id).read(0, 8192)
            if event.kind is EventKind.COMMAND and event.user == "installer"
        )
    )


def test_fault_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        TcpFaults(disconnect_rate=1.5)
    with pytest.raises(ValueError, match="positive"):
        TcpFaults(reboot_interval=0)


async def test_commands_act_exactly_once_through_dropped_connections(tmp_path: Path) -> None:
    gateway = GatewayThread(tmp_path / "gw.json").start()
    try:
        gateway.setup_owner(PASSWORD)
        creds = await _pair(gateway.port)
        client = RayzigClient(TcpConnector("127.0.0.1", gateway.port), creds, **FAST)
        await client.connect()
        faults = TcpFaults(disconnect_rate=0.04, seed=7)
        gateway.call(lambda g: gateway.server.set_faults(faults))
        module = gateway.call(lambda g: g.site.modules()[0])
        before = _commands(gateway, module.module_id)
        sent = 300
        for n in range(sent):
            output = await client.set_output(module.module_id, 0, n % 2 == 0)
            assert output.is_on is (n % 2 == 0)
        await client.close()
        counts = gateway.call(lambda g: gateway.server.fault_counts)
        assert counts.disconnects > 5, "the soak must actually inject disconnects"
        assert _commands(gateway, module.module_id) - before == sent
        assert client.stats.retries > 0
    finally:
        gateway.stop()


async def test_a_gateway_reboot_ends_sessions_and_the_client_comes_back(tmp_path: Path) -> None:
    gateway = GatewayThread(tmp_path / "gw.json").start()
    try:
        gateway.setup_owner(PASSWORD)
        creds = await _pair(gateway.port)
        client = RayzigClient(TcpConnector("127.0.0.1", gateway.port), creds, **FAST)
        await client.connect()
        module = gateway.call(lambda g: g.site.modules()[0])
        await client.set_output(module.module_id, 0, True)
        connects = client.stats.connects
        gateway.call(lambda g: gateway.server.reboot())
        output = await client.set_output(module.module_id, 0, False)
        assert output.is_on is False
        assert client.stats.connects == connects + 1
        assert gateway.call(lambda g: gateway.server.fault_counts.reboots) == 1
        await client.close()
    finally:
        gateway.stop()


def _virtual_gateway(state: Path, *options: str) -> subprocess.Popen[str]:
    """`rayzig virtual-gateway` on a free port until the test sends it SIGTERM."""
    return subprocess.Popen(
        [sys.executable, "-m", "rayzig_core.cli", "virtual-gateway", "--port", "0", "--state",
         str(state), "--modules", "2", "--json", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def _listening(process: subprocess.Popen[str]) -> dict[str, object]:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
    record: dict[str, object] = json.loads(line)
    return record


async def _stopped(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.communicate, timeout=60)
    return process.returncode


async def test_cli_virtual_gateway_injects_reboots(tmp_path: Path) -> None:
    """`rayzig virtual-gateway --fault-reboot-every` ends every session periodically."""
    state = tmp_path / "gateway.json"
    # Set up without faults: the password changed and a client paired.
    setup = _virtual_gateway(state)
    try:
        first = await _listening(setup)
        connector = TcpConnector("127.0.0.1", int(str(first["port"])))
        pairing = RayzigClient(connector)
        identity = await pairing.identify()
        default = str(first["default_password"])
        await pairing.change_password(identity.public_key, "installer", default, PASSWORD)
        creds = await pairing.pair(identity, "installer", PASSWORD)
    finally:
        assert await _stopped(setup) == 0
    # The same gateway with a reboot every half second.
    process = _virtual_gateway(state, "--fault-reboot-every", "0.5")
    try:
        port = int(str((await _listening(process))["port"]))
        client = RayzigClient(TcpConnector("127.0.0.1", port), creds, **FAST)
        for _ in range(10):  # a reboot may cut the very first handshake
            try:
                await client.connect()
                break
            except ConnectionFailedError:
                continue
        await wait_for(lambda: client.stats.disconnects >= 2, within=120, what="two reboots")
        await wait_for(lambda: client.stats.connects >= 3, within=120, what="two reconnections")
        await client.list_modules()
        await client.close()
    finally:
        assert await _stopped(process) == 0
