"""The virtual gateway in a child process, its site shaped for a benchmark, driven over a pipe.

On a real installation the gateway is another device: here it runs in its own process, so its
work neither holds Home Assistant's GIL nor counts in Home Assistant's RSS. The child starts a
:class:`~rayzig_core.testing.gateway.GatewayThread` on loopback (state on tmpfs when there is
one) whose site is generated in the wanted shape (``outputs_per_module``, ``prefill_events``: a
realistic history of commands, repowers and applied presets), leaves factory state
(``setup_owner``) and prints one JSON line with its port. It then obeys one word per line on its
stdin, answering each with a JSON line: ``stop`` (the gateway goes away: every session ends, the
port is closed), ``start`` (back on the same port, from its saved state) and ``quit``. The
``at`` of each answer is ``time.monotonic()``, which is one clock for every process on Linux.

:class:`GatewayProcess` is the parent's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import OWNER, OWNER_PASSWORD, SCRYPT_N
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import ModuleKind
from rayzig_core.transport.tcp import TcpConnector

REPOSITORY = Path(__file__).resolve().parents[2]
ANSWER_TIMEOUT = 300.0
"""Longest wait for the child's answer (shaping 250 modules × 8192 records takes seconds)."""


@dataclass(frozen=True, slots=True)
class SiteShape:
    """The site a benchmark wants: how many modules, their outputs and their logged records."""

    modules: int
    outputs: int | None = None
    """Outputs of every module; None keeps the generator's (1 to 4, by module kind)."""
    events: int = 0
    """Records pre-filled in every module's event log (a generated history), before any client."""
    seed: int = 1

    @property
    def label(self) -> str:
        """``250 × 4`` or ``12`` (modules × outputs, outputs only when fixed)."""
        return f"{self.modules} × {self.outputs}" if self.outputs else str(self.modules)


@dataclass(frozen=True, slots=True)
class SiteSummary:
    """What the shaped site holds."""

    modules: int
    outputs: int
    records: int
    """Records held in all event logs."""
    newest_seqs: dict[int, int]
    """Module id → sequence number of its newest record."""
    kinds: dict[str, int]
    """Modules per kind (mains, dc_12v, battery)."""


def summarise_site(site: Any) -> SiteSummary:
    """What the generated site holds (read on the gateway's thread)."""
    modules = site.modules()
    kinds = {kind.name.lower(): 0 for kind in ModuleKind}
    for module in modules:
        kinds[module.kind.name.lower()] += 1
    return SiteSummary(
        len(modules),
        sum(len(module.outputs) for module in modules),
        sum(module.event_count for module in modules),
        {module.module_id: module.event_seq for module in modules},
        kinds,
    )


def _answer(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


def child_main(argv: list[str]) -> int:
    """The child: ``python -m benchmarks.ha.gateway_process OPTIONS_JSON STATE_DIR``."""
    from rayzig_core.testing.gateway import GatewayThread  # noqa: PLC0415 - child side only

    options = json.loads(argv[0])
    shape = SiteShape(**options["shape"])
    gateway = GatewayThread(
        Path(argv[1]) / "gateway.json",
        module_count=shape.modules,
        outputs_per_module=shape.outputs,
        prefill_events=shape.events,
        seed=shape.seed,
        scrypt_n=SCRYPT_N,
    )
    started = time.perf_counter()
    gateway.start()
    try:
        summary = gateway.call(lambda gw: summarise_site(gw.site))
        gateway.setup_owner(OWNER_PASSWORD, user=OWNER)
        if not options["save_changes"]:
            # The virtual gateway writes its whole state (every event log) to its JSON file
            # after each change; a real gateway's flash writes do not stall its radio or its
            # link. Off, the simulator's JSON dumps stay out of the figures; stop still saves.
            gateway.call(lambda gw: setattr(gw, "on_dirty", lambda: None))
        _answer(
            {
                "port": gateway.port,
                "site": asdict(summary),
                "shape_seconds": time.perf_counter() - started,
            }
        )
        for line in sys.stdin:
            word = line.strip()
            if word == "stop":
                gateway.stop()
            elif word == "start":
                gateway.start()
            elif word == "quit":
                break
            else:
                _answer({"error": f"unknown word {word!r}"})
                continue
            _answer({"at": time.monotonic()})
    finally:
        gateway.stop()
    return 0


def _state_parent() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


class GatewayProcess:
    """The parent's handle on a gateway child: its port, its site, outages and pairing."""

    def __init__(
        self, process: asyncio.subprocess.Process, state: tempfile.TemporaryDirectory[str]
    ) -> None:
        self._process = process
        self._state = state
        self.port = 0
        self.site = SiteSummary(0, 0, 0, {}, {})
        self.shape_seconds = 0.0

    @classmethod
    async def start(cls, shape: SiteShape, *, save_changes: bool = True) -> GatewayProcess:
        """Start a child with a site of ``shape``; returns once it listens.

        ``save_changes=False`` keeps the gateway from writing its state file after each change
        (it still writes it when stopped, so outages keep working).
        """
        state = tempfile.TemporaryDirectory(prefix="rayzig-ha-bench-gw-", dir=_state_parent())
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(REPOSITORY), env.get("PYTHONPATH", "")) if part
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.ha.gateway_process",
            json.dumps({"shape": asdict(shape), "save_changes": save_changes}),
            state.name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPOSITORY,
            env=env,
        )
        child = cls(process, state)
        try:
            ready = await child._read()
            child.port = int(ready["port"])
            site = ready["site"]
            site["newest_seqs"] = {int(k): v for k, v in site["newest_seqs"].items()}
            child.site = SiteSummary(**site)
            child.shape_seconds = float(ready["shape_seconds"])
        except BaseException:
            await child.close()
            raise
        return child

    async def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        async with asyncio.timeout(ANSWER_TIMEOUT):
            line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError("the gateway process ended (its error is on stderr above)")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"gateway process: {answer['error']}")
        return answer

    async def _say(self, word: str) -> float:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{word}\n".encode())
        await self._process.stdin.drain()
        return float((await self._read())["at"])

    async def stop_gateway(self) -> float:
        """Take the gateway away (sessions end, port closed); ``time.monotonic()`` when done."""
        return await self._say("stop")

    async def start_gateway(self) -> float:
        """Bring it back on the same port; ``time.monotonic()`` when it listens again."""
        return await self._say("start")

    async def pair(self, client_name: str = "Home Assistant") -> ClientCredentials:
        """Pair a new client key as the installer (as the config flow does)."""
        client = RayzigClient(TcpConnector("127.0.0.1", self.port), client_name=client_name)
        try:
            identity = await client.identify()
            return await client.pair(identity, OWNER, OWNER_PASSWORD)
        finally:
            await client.close()

    async def close(self) -> None:
        """Stop the child (its gateway saves and stops) and delete its state."""
        process = self._process
        if process.returncode is None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.write(b"quit\n")
                    await process.stdin.drain()
                    process.stdin.close()
            try:
                async with asyncio.timeout(60):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        self._state.cleanup()


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
