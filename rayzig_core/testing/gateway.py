"""The virtual gateway in a background thread with its own event loop, for tests and demos.

Tests talk to it over real loopback sockets exactly as a client would; :meth:`GatewayThread.call`
runs simulation hooks (outage, battery drain) on the gateway's own thread, and :meth:`restart`
reloads it from its state file as a power cycle would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rayzig_core.gateway.gateway import FactorySecrets, VirtualGateway
from rayzig_core.gateway.server import GatewayServer, load_state, open_gateway, save_state

_T = TypeVar("_T")
START_TIMEOUT = 30.0


class GatewayThread:
    """Runs a :class:`GatewayServer` on 127.0.0.1 in a dedicated thread."""

    def __init__(
        self,
        state_path: Path,
        *,
        module_count: int = 12,
        scrypt_n: int = 2**14,
        port: int = 0,
        trusted_update_keys: tuple[bytes, ...] = (),
    ) -> None:
        self.state_path = state_path
        self.module_count = module_count
        self.scrypt_n = scrypt_n
        self.port = port
        self.trusted_update_keys = trusted_update_keys
        self.factory: FactorySecrets | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: GatewayServer | None = None

    @property
    def gateway(self) -> VirtualGateway:
        """The running gateway (touch it only through :meth:`call`)."""
        assert self._server is not None
        return self._server.gateway

    def start(self) -> GatewayThread:
        """Start (or restart) the gateway; returns when it is listening."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="rayzig-virtual-gateway", daemon=True
        )
        self._thread.start()
        ready.result(START_TIMEOUT)
        return self

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            gateway, factory = open_gateway(
                self.state_path,
                module_count=self.module_count,
                scrypt_n=self.scrypt_n,
                trusted_update_keys=self.trusted_update_keys,
            )
            if factory is not None:
                self.factory = factory
            self._server = GatewayServer(
                gateway, host="127.0.0.1", port=self.port, state_path=self.state_path
            )
            self._loop.run_until_complete(self._server.start())
            self.port = self._server.port
        except BaseException as err:  # noqa: BLE001 - handed to the starting thread
            ready.set_exception(err)
            self._loop.close()
            return
        ready.set_result(None)
        self._loop.run_forever()
        self._loop.run_until_complete(self._server.stop())
        self._loop.close()

    def call(self, function: Callable[[VirtualGateway], _T]) -> _T:
        """Run ``function(gateway)`` on the gateway's thread and return its result."""
        assert self._loop is not None and self._server is not None
        server = self._server

        async def run() -> _T:
            return function(server.gateway)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(START_TIMEOUT)

    def stop(self) -> None:
        """Stop the gateway, flush its state and join the thread."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._thread = None
        self._loop = None

    def restart(self) -> None:
        """Power-cycle: stop, then start again from the state file on the same port."""
        self.stop()
        self.start()

    def setup_owner(self, password: str, *, user: str = "installer") -> None:
        """Leave factory state directly (tests that are not about first contact)."""
        from rayzig_core.gateway import credentials  # noqa: PLC0415

        def change(gateway: VirtualGateway) -> None:
            account = gateway.users[user]
            account.verifier = credentials.make_verifier(password, n=gateway.scrypt_n)
            account.must_change = False
            gateway.on_dirty()

        self.call(change)

    def edit_state(self, function: Callable[[dict[str, Any]], None]) -> None:
        """Edit the saved state of a stopped gateway (e.g. to model older firmware)."""
        gateway = load_state(self.state_path)
        assert gateway is not None
        data = gateway.to_json()
        function(data)
        save_state(VirtualGateway.from_json(data), self.state_path)
