"""The virtual gateway and the ``rayzig`` CLI, both from the library Home Assistant installed."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environment import clean_env
from .ha_venv import HomeAssistantVenv
from .processes import LOOPBACK, RehearsalError, Service, run, wait_until

START_TIMEOUT = 60.0
MODULES = 3
"""A small site: enough for a switch, quick to create."""

OutputKey = tuple[int, int]
"""(module id, output index)"""


@dataclass(frozen=True)
class Gateway:
    """The running virtual gateway, as its JSON banner described it."""

    port: int
    fingerprint: str
    default_password: str = field(repr=False)
    service: Service = field(repr=False)


def start(venv: HomeAssistantVenv, state_dir: Path, log: Path) -> Gateway:
    """Start ``rayzig virtual-gateway``: a free loopback port, factory-new, no simulation.

    Without simulation only the rehearsal switches outputs. Its stdout, which carries the default
    password, stays in the temporary ``state_dir``; its stderr is the log kept as an artifact.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    banner_file = state_dir / "stdout.jsonl"
    service = Service(
        "virtual gateway",
        [
            str(venv.bin("rayzig")),
            "virtual-gateway",
            "--host",
            LOOPBACK,
            "--port",
            "0",
            "--state",
            str(state_dir / "gateway.json"),
            "--modules",
            str(MODULES),
            "--json",
        ],
        output=banner_file,
        errors=log,
        env=clean_env(),
        cwd=venv.workdir,
    ).start()

    def banner() -> dict[str, Any] | None:
        for line in banner_file.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if isinstance(data, dict) and data.get("event") == "listening":
                    return data
        return None

    found = wait_until("'listening' banner", banner, timeout=START_TIMEOUT, alive=service)
    if not found.get("first_start"):
        msg = "the virtual gateway's state was not new"
        raise RehearsalError(msg)
    return Gateway(
        port=int(found["port"]),
        fingerprint=str(found["fingerprint"]),
        default_password=str(found["default_password"]),
        service=service,
    )


@dataclass(frozen=True)
class GatewayCli:
    """The installer CLI, paired as a second client of the gateway (never through HA)."""

    venv: HomeAssistantVenv
    gateway: Gateway
    key_file: Path
    log: Path

    def _rayzig(self, *args: str, secret: str | None = None) -> Any:
        env = clean_env({"RAYZIG_PASSWORD": secret} if secret is not None else None)
        out = run(
            [str(self.venv.bin("rayzig")), "--json", *args, "--key-file", str(self.key_file)],
            env=env,
            cwd=self.venv.workdir,
            log=self.log,
            timeout=60,
            what=f"rayzig {args[0]}",
            stdout_only=True,
        )
        return json.loads(out)

    def pair(self, password: str) -> None:
        """Pair with the password Home Assistant set (from the environment, never argv)."""
        self._rayzig(
            "pair",
            "--host",
            LOOPBACK,
            "--port",
            str(self.gateway.port),
            "--yes-fingerprint",
            self.gateway.fingerprint,
            secret=password,
        )

    def outputs(self) -> dict[OutputKey, bool]:
        """Every output's state, as the gateway reports it (``rayzig modules``)."""
        modules = self._rayzig("modules")
        return {
            (int(module["id"]), int(output["index"])): bool(output["on"])
            for module in modules
            for output in module["outputs"]
        }
