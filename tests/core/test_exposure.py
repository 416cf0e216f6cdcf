"""ETSI EN 303 645 5.6-1: the servers this repository runs listen on loopback unless told otherwise.

The virtual gateway (``rayzig virtual-gateway``, :class:`GatewayServer`) and the update server
(``rayzig update-server``, :func:`rayzig_core.firmware.serve`) default to ``127.0.0.1``: the
command-line defaults say so, and a server started without a host is bound to a loopback address
only (checked on the listening sockets themselves). The bridge, whose purpose is to be reached from
the network, has no default: ``--listen`` must name the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from pathlib import Path
from typing import Any

import ifaddr
import pytest

from rayzig_core import cli
from rayzig_core.firmware import serve
from rayzig_core.virtual_gateway import GatewayServer, open_gateway
from rayzig_core.virtual_gateway import server as gateway_server

LOOPBACK = "127.0.0.1"


def all_loopback(addresses: list[tuple[str, int]] | list[Any]) -> bool:
    return bool(addresses) and all(
        ipaddress.ip_address(str(address[0])).is_loopback for address in addresses
    )


def test_cli_defaults_are_loopback() -> None:
    parser = cli.build_parser()
    assert cli.DEFAULT_HOST == LOOPBACK
    assert parser.parse_args(["virtual-gateway"]).host == LOOPBACK
    assert parser.parse_args(["update-server", "dir"]).host == LOOPBACK
    # Client commands connect to the local virtual gateway unless told otherwise.
    info = cli.spec.options_from(cli.connection.ClientOptions, parser.parse_args(["info"]))
    assert cli.connection.resolve_connection(info, None).host == LOOPBACK


def test_the_bridge_has_no_default_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bridge", "--i2c-bus", "1", "--address", "0x42"])
    assert code == cli.EXIT_USAGE
    assert "--listen" in capsys.readouterr().err


async def test_gateway_server_binds_loopback_only_by_default(tmp_path: Path) -> None:
    gateway, _ = open_gateway(None, module_count=1, scrypt_n=2**10)
    server = GatewayServer(gateway, port=0)
    assert server.addresses == []
    await server.start()
    try:
        assert all_loopback(server.addresses)
        assert server.addresses == [(LOOPBACK, server.port)]
    finally:
        await server.stop()
    assert server.addresses == []


async def test_update_server_binds_loopback_only_by_default(tmp_path: Path) -> None:
    runner = await serve(tmp_path, port=0)
    try:
        assert all_loopback(runner.addresses)
        assert [address[0] for address in runner.addresses] == [LOOPBACK]
    finally:
        await runner.cleanup()


def test_cli_virtual_gateway_listens_on_loopback_without_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `rayzig virtual-gateway` binds, read from its listening sockets."""
    bound: list[tuple[str, int]] = []
    start = GatewayServer.start

    async def recording_start(self: GatewayServer) -> None:
        await start(self)
        bound.extend(self.addresses)

    monkeypatch.setattr(gateway_server.GatewayServer, "start", recording_start)
    state = tmp_path / "gw.json"
    code = cli.main(
        ["virtual-gateway", "--port", "0", "--state", str(state), "--run-for", "0.1", "--json"]
    )
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK
    listening = json.loads(out.splitlines()[0])
    assert listening["host"] == LOOPBACK
    assert all_loopback(bound)
    assert bound == [(LOOPBACK, listening["port"])]


def test_cli_update_server_listens_on_loopback_without_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rayzig update-server` reports the address its socket is bound to."""
    code = cli.main(["update-server", str(tmp_path), "--port", "0", "--run-for", "0.1", "--json"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK
    listening = json.loads(out.splitlines()[0])
    assert listening["host"] == LOOPBACK
    assert listening["url"].startswith(f"http://{LOOPBACK}:")


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this host that is not loopback, if it has one."""
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                return ip.ip
    return None


async def test_servers_started_by_default_are_not_reachable_from_another_address(
    tmp_path: Path,
) -> None:
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address to try")
    gateway, _ = open_gateway(None, module_count=1, scrypt_n=2**10)
    server = GatewayServer(gateway, port=0)
    await server.start()
    runner = await serve(tmp_path, port=0)
    try:
        for port in (server.port, runner.addresses[0][1]):
            # Reachable on loopback ...
            _, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.close()
            # ... but not on the host's other address.
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
                pass
    finally:
        await runner.cleanup()
        await server.stop()
