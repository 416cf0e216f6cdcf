"""The virtual gateway in a background thread with its own event loop, for tests and demos.

Tests talk to it over real loopback sockets exactly as a client would; :meth:`GatewayThread.call`
runs simulation hooks (outage, battery drain) on the gateway's own thread, and :meth:`restart`
reloads it from its state file as a power cycle would.

With ``i2c=FakeI2CBus(...)`` the same gateway also answers on that fake bus at ``i2c_address``
(PROTOCOL.md §11.13), so clients can reach it through ``I2CConnector`` and smbus2's real code path
while the bus is installed (``with bus.installed():``). :meth:`GatewayThread.reboot_i2c` resets the
gateway MCU mid-session; :meth:`stop` takes the device off the bus (it then NACKs) and
:meth:`start` puts it back, rebooted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rayzig_core.admission import SWEEP_INTERVAL, AdmissionPolicy
from rayzig_core.storage import read_private
from rayzig_core.testing.fake_i2c import FakeI2CBus, FakeI2CDevice
from rayzig_core.virtual_gateway import (
    DEFAULT_HOP_LATENCY,
    FactorySecrets,
    GatewayServer,
    I2CGatewayAdapter,
    TcpFaults,
    VirtualGateway,
    credentials,
    open_gateway,
    save_state,
    serve_on_fake_bus,
)
from rayzig_core.virtual_gateway.server import state_store

_T = TypeVar("_T")
START_TIMEOUT = 30.0
RECORD_ALLOWANCE = 50e-6
"""Seconds a start or stop may take longer per pre-filled event-log record (generating, saving
and loading 250 × 8,192 records takes seconds, more on a busy machine)."""
DEFAULT_I2C_ADDRESS = 0x42


class GatewayThread:
    """Runs a :class:`GatewayServer` on 127.0.0.1 in a dedicated thread (and on a fake I2C bus).

    ``hop_latency`` (seconds per mesh hop, §11.13) defaults to
    :data:`~rayzig_core.virtual_gateway.DEFAULT_HOP_LATENCY` when the I2C bus has a sleeping
    :class:`~rayzig_core.testing.fake_i2c.BusTiming`, else 0. A new state file gets the site
    ``Site.generate`` makes of ``module_count``, ``seed``, ``outputs_per_module`` and
    ``prefill_events`` (e.g. 250 modules × 4 outputs with 8,192 records each, for large-site
    benchmarks).
    """

    def __init__(
        self,
        state_path: Path,
        *,
        module_count: int = 12,
        seed: int = 1,
        outputs_per_module: int | None = None,
        prefill_events: int = 0,
        scrypt_n: int = 2**14,
        port: int = 0,
        trusted_update_keys: tuple[bytes, ...] = (),
        i2c: FakeI2CBus | None = None,
        i2c_address: int = DEFAULT_I2C_ADDRESS,
        hop_latency: float | None = None,
        tcp_faults: TcpFaults | None = None,
        admission: AdmissionPolicy | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.state_path = state_path
        self.tcp_faults = tcp_faults
        self.admission = admission
        self.clock = clock
        """A fake clock for the TCP server's deadlines: the test moves it, then calls sweep()
        (the server then never sweeps by itself). None: the real clock, swept every second."""
        self.module_count = module_count
        self.seed = seed
        self.outputs_per_module = outputs_per_module
        self.prefill_events = prefill_events
        self.scrypt_n = scrypt_n
        self.port = port
        self.trusted_update_keys = trusted_update_keys
        self.factory: FactorySecrets | None = None
        self.i2c = i2c
        self.i2c_device: FakeI2CDevice | None = None
        """The gateway MCU on the fake bus (kept across restarts, rebooted by each start)."""
        if hop_latency is None:
            timing = i2c.timing if i2c is not None else None
            hop_latency = DEFAULT_HOP_LATENCY if timing is not None and timing.sleep else 0.0
        self.hop_latency = hop_latency
        if i2c is not None:
            self.i2c_device = FakeI2CDevice(i2c_address)
        self._adapter: I2CGatewayAdapter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: GatewayServer | None = None
        self._starts = 0

    @property
    def gateway(self) -> VirtualGateway:
        """The running gateway (touch it only through :meth:`call`)."""
        assert self._server is not None
        return self._server.gateway

    @property
    def server(self) -> GatewayServer:
        """The running TCP server (fault counts, reboot(); touch it only through :meth:`call`)."""
        assert self._server is not None
        return self._server

    @property
    def i2c_adapter(self) -> I2CGatewayAdapter:
        """The running gateway's I2C side (touch it only through :meth:`call`)."""
        assert self._adapter is not None, "GatewayThread(i2c=...) is not running"
        return self._adapter

    def start(self) -> GatewayThread:
        """Start (or restart) the gateway; returns when it is listening."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="rayzig-virtual-gateway", daemon=True
        )
        self._thread.start()
        ready.result(self._timeout)
        return self

    @property
    def _timeout(self) -> float:
        """How long a start or a stop may take: longer for a site with pre-filled event logs."""
        return START_TIMEOUT + self.module_count * self.prefill_events * RECORD_ALLOWANCE

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        listening = False
        try:
            gateway, factory = open_gateway(
                self.state_path,
                module_count=self.module_count,
                seed=self.seed,
                outputs_per_module=self.outputs_per_module,
                prefill_events=self.prefill_events,
                scrypt_n=self.scrypt_n,
                trusted_update_keys=self.trusted_update_keys,
            )
            if factory is not None:
                self.factory = factory
            self._server = GatewayServer(
                gateway,
                host="127.0.0.1",
                port=self.port,
                state_path=self.state_path,
                faults=self.tcp_faults,
                admission=self.admission,
                clock=self.clock or time.monotonic,
                sweep_every=None if self.clock is not None else SWEEP_INTERVAL,
            )
            self._loop.run_until_complete(self._server.start())
            listening = True
            self.port = self._server.port
            if self.i2c is not None and self.i2c_device is not None:
                self._power_on_i2c(self.i2c, self.i2c_device, self._server.gateway)
        except BaseException as err:  # noqa: BLE001 - handed to the starting thread
            ready.set_exception(err)
            if listening and self._server is not None:
                self._loop.run_until_complete(self._server.stop())
            self._loop.close()
            return
        ready.set_result(None)
        self._loop.run_forever()
        self._loop.run_until_complete(self._server.stop())
        self._power_off_i2c()
        self._loop.close()

    def _power_on_i2c(
        self, bus: FakeI2CBus, device: FakeI2CDevice, gateway: VirtualGateway
    ) -> None:
        """Put the MCU on the bus (rebooted if it ran before) and serve the gateway on it."""
        assert self._loop is not None
        if self._starts:
            device.reboot()
        self._starts += 1
        bus.add_device(device)
        self._adapter = serve_on_fake_bus(
            gateway, device, hop_latency=self.hop_latency, loop=self._loop
        )

    def _power_off_i2c(self) -> None:
        """Stop serving and take the MCU off the bus: it NACKs until the next start."""
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None
        if self.i2c is not None and self.i2c_device is not None:
            self.i2c.remove_device(self.i2c_device.address)

    def call(self, function: Callable[[VirtualGateway], _T]) -> _T:
        """Run ``function(gateway)`` on the gateway's thread and return its result."""
        assert self._loop is not None
        assert self._server is not None
        server = self._server

        async def run() -> _T:
            return function(server.gateway)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(START_TIMEOUT)

    def stop(self) -> None:
        """Stop the gateway, flush its state and join the thread."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self._timeout)
        self._thread = None
        self._loop = None

    def sweep(self) -> int:
        """Drop the TCP connections past a deadline now (after moving a fake ``clock``)."""
        return self.call(lambda gateway: self.server.gatekeeper.sweep())

    def restart(self) -> None:
        """Power-cycle: stop, then start again from the state file on the same port."""
        self.stop()
        self.start()

    def reboot_i2c(self) -> None:
        """Reset the gateway MCU mid-session: new link epoch, every I2C session lost (§11.9).

        The gateway's state (users, keys, outputs, replay cache) survives, as it does in flash.
        """
        self.call(lambda gateway: self.i2c_adapter.reboot())

    def setup_owner(self, password: str, *, user: str = "installer") -> None:
        """Leave factory state directly (tests that are not about first contact)."""

        def change(gateway: VirtualGateway) -> None:
            account = gateway.users[user]
            account.verifier = credentials.make_verifier(password, n=gateway.scrypt_n)
            account.must_change = False
            gateway.on_dirty()

        self.call(change)

    def edit_state(self, function: Callable[[dict[str, Any]], None]) -> None:
        """Edit the saved JSON of a stopped gateway (e.g. to model older firmware or states).

        The edited state is loaded as a gateway and saved again, so it must still be valid.
        """
        store = state_store(self.state_path)
        data = json.loads(read_private(self.state_path))
        function(data)
        state = store.parse(json.dumps(data).encode())
        save_state(VirtualGateway.restore(state), self.state_path)
