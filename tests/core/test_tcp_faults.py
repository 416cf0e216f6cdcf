"""TCP fault injection: dropped connections and gateway reboots never lose or repeat a command."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import EventKind
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector
from rayzig_core.virtual_gateway import TcpFaults

PASSWORD = "mauve-otter-juggles-47-kites"


async def _pair(gateway: GatewayThread) -> ClientCredentials:
    client = RayzigClient(TcpConnector("127.0.0.1", gateway.port))
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
    gateway = GatewayThread(
        tmp_path / "gw.json", tcp_faults=TcpFaults(disconnect_rate=0.04, seed=7)
    ).start()
    try:
        gateway.setup_owner(PASSWORD)
        # Pairing itself may be cut; retry like a user would.
        for _ in range(20):
            try:
                creds = await _pair(gateway)
                break
            except Exception:
                await asyncio.sleep(0.01)
        else:
            pytest.fail("could not pair through the faults")
        client = RayzigClient(
            TcpConnector("127.0.0.1", gateway.port), creds, backoff_initial=0.01, backoff_max=0.05
        )
        for _ in range(20):
            try:
                await client.connect()
                break
            except Exception:
                await asyncio.sleep(0.01)
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
        creds = await _pair(gateway)
        client = RayzigClient(
            TcpConnector("127.0.0.1", gateway.port), creds, backoff_initial=0.01, backoff_max=0.05
        )
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


async def test_cli_virtual_gateway_injects_reboots(tmp_path: Path) -> None:
    """`rayzig virtual-gateway --fault-reboot-every` ends every session periodically."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    state = tmp_path / "gateway.json"
    process = subprocess.Popen(  # noqa: ASYNC220 - a short-lived child, read line by line
        [sys.executable, "-m", "rayzig_core.cli", "virtual-gateway", "--port", "0", "--state",
         str(state), "--modules", "2", "--fault-reboot-every", "0.3", "--run-for", "3", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = json.loads(await asyncio.to_thread(process.stdout.readline))
        port = int(first["port"])
        default = first["default_password"]
        connector = TcpConnector("127.0.0.1", port)
        pairing = RayzigClient(connector)
        identity = await pairing.identify()
        await pairing.change_password(identity.public_key, "installer", default, PASSWORD)
        for _ in range(20):
            try:
                creds = await pairing.pair(identity, "installer", PASSWORD)
                break
            except Exception:
                await asyncio.sleep(0.05)
        client = RayzigClient(connector, creds, backoff_initial=0.01, backoff_max=0.05)
        await client.connect()
        await asyncio.sleep(1.2)
        assert client.stats.disconnects >= 2
        assert client.stats.connects >= 3
        await client.list_modules()
        await client.close()
    finally:
        await asyncio.to_thread(process.wait, 30)
    assert process.returncode == 0
