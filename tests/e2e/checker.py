"""A second client of the virtual gateway, to check what the browser made Home Assistant do.

It pairs as the System user the config flow signed in as (``installer``), while Home Assistant
pairs under an Administrator account of its own (``home-assistant-<6 hex>``): a command is told
apart by the user the gateway logged it under, and the test reads the event log after its own last
command. The simulation switches outputs as its own user (``site-simulator``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import EnrolledClient, EventKind, GatewayUser, Module
from rayzig_core.transport.tcp import TcpConnector

from .conftest import Gateway
from .helpers import run_async

Command = tuple[int | None, str | None, bool | None]
"""(output index, user, is_on) of a COMMAND event."""


@dataclass(frozen=True)
class GatewayChecker:
    """The test's own paired client of the gateway (one short session per question)."""

    gateway: Gateway
    credentials: ClientCredentials
    user: str
    home_assistant: str = ""
    """The gateway account Home Assistant is paired as, whose commands ``await_command`` awaits."""

    @classmethod
    def pair(cls, gateway: Gateway, user: str, password: str) -> GatewayChecker:
        """Pair as ``user`` once the config flow has left factory state."""

        async def pair() -> ClientCredentials:
            connector = TcpConnector(gateway.host, gateway.port)
            async with RayzigClient(connector, client_name="e2e checker") as client:
                identity = await client.identify()
                assert identity.fingerprint == gateway.fingerprint
                assert not identity.factory_state, (
                    "the config flow left the gateway in factory state"
                )
                return await client.pair(identity, user, password)

        return cls(gateway, run_async(pair), user)

    def watching(self, home_assistant: str) -> GatewayChecker:
        """This checker, awaiting the commands of Home Assistant's gateway account."""
        return replace(self, home_assistant=home_assistant)

    def _client(self) -> RayzigClient:
        connector = TcpConnector(self.gateway.host, self.gateway.port)
        return RayzigClient(connector, self.credentials, client_name="e2e checker")

    def modules(self) -> list[Module]:
        async def modules() -> list[Module]:
            async with self._client() as client:
                await client.connect()
                return await client.list_modules()

        return run_async(modules)

    def users(self) -> tuple[GatewayUser, ...]:
        """The gateway's accounts (a System user sees every one, PROTOCOL.md §7.3)."""

        async def users() -> tuple[GatewayUser, ...]:
            async with self._client() as client:
                await client.connect()
                return await client.list_users()

        return run_async(users)

    def clients(self) -> tuple[EnrolledClient, ...]:
        """Every enrolled client key, with the account it belongs to."""

        async def clients() -> tuple[EnrolledClient, ...]:
            async with self._client() as client:
                await client.connect()
                return await client.list_clients()

        return run_async(clients)

    def module(self, module_id: int) -> Module:
        return next(module for module in self.modules() if module.module_id == module_id)

    def firmware_version(self, part: str) -> str:
        """The installed version of a firmware part (``rayzig``, ``tft``, ...)."""

        async def versions() -> str:
            async with self._client() as client:
                await client.connect()
                found = await client.firmware_versions()
                return next(v.version for v in found if v.part.name.lower() == part)

        return run_async(versions)

    def set_output(self, module_id: int, index: int, on: bool) -> int:
        """Switch an output as the checker; returns the module's newest event number after it."""

        async def switch() -> int:
            async with self._client() as client:
                await client.connect()
                await client.set_output(module_id, index, on)
                found = await client.list_modules()
                return next(m.event_seq for m in found if m.module_id == module_id)

        return run_async(switch)

    def commands_since(self, module_id: int, after_seq: int) -> list[Command]:
        """(output, user, is_on) of the module's COMMAND events after ``after_seq``, in order."""

        async def events() -> list[Command]:
            async with self._client() as client:
                await client.connect()
                batch = await client.read_events(module_id, after_seq)
                return [
                    (event.output, event.user, event.is_on)
                    for event in batch.events
                    if event.kind is EventKind.COMMAND
                ]

        return run_async(events)

    def await_command(
        self, module_id: int, index: int, on: bool, after_seq: int, timeout_s: float = 30
    ) -> list[Command]:
        """Wait until the gateway logs Home Assistant switching the output after ``after_seq``.

        Returns the module's commands since then; AssertionError if none came in time.
        """
        assert self.home_assistant, "watching(...) names Home Assistant's account first"
        deadline = time.monotonic() + timeout_s
        commands: list[Command] = []
        while time.monotonic() < deadline:
            commands = self.commands_since(module_id, after_seq)
            if (index, self.home_assistant, on) in commands:
                return commands
            time.sleep(0.5)
        msg = (
            f"the gateway logged no switch of module {module_id} output {index + 1} "
            f"{'on' if on else 'off'} by {self.home_assistant}: {commands}"
        )
        raise AssertionError(msg)
