"""Fixtures of the end-to-end test: the real demo stack on loopback and Debian's Chromium.

* ``virtual_gateway``: ``rayzig virtual-gateway --port 0 --simulate 2 --prefill-events 2000
  --advertise --trust-update-key KEY --json`` with its state in the test's temporary directory (a
  new site with about ten days of event logs, as scripts/demo makes one); its JSON banner gives the
  port, serial, fingerprint, the one-time default password and its zeroconf name (announced on
  loopback). KEY is a firmware publisher's key made with ``rayzig keygen`` before it starts, so the
  gateway accepts the images the test publishes (tests/e2e/advisory.py).
* ``home_assistant``: ``hass --config <copy of config/configuration.yaml> --skip-pip`` with the
  repository on PYTHONPATH (custom_components/rayzig loaded in place), on a free loopback port,
  with the empty automations.yaml, scenes.yaml and scripts.yaml that scripts/demo creates.
* ``page``: Playwright driving /usr/bin/chromium (never a downloaded browser), every request that
  leaves loopback aborted, so the test behaves the same with or without a network.

Both servers are stopped at teardown with SIGTERM, then SIGKILL of their process group; the test
fails if either outlives its fixture. Home Assistant's log and the gateway's log (stderr; not
its stdout, which carries the default password) are copied to artifacts/e2e/.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, sync_playwright

from .helpers import (
    ARTIFACTS,
    BIN,
    CHROMIUM,
    CHROMIUM_FLAGS,
    HOST,
    ROOT,
    ManagedProcess,
    free_port,
    rayzig,
    wait_for_http,
    wait_for_json_line,
)

PREFILL_EVENTS = 2000
"""Past records per module of a new demo site, as scripts/demo gives them (about ten days)."""
HA_START_TIMEOUT = 240.0
"""Seconds for Home Assistant to serve /manifest.json (about 15 s here; slower on 2 busy cores)."""


@dataclass(frozen=True)
class PublisherKey:
    """A firmware publisher's Ed25519 signing key (``rayzig keygen``), trusted by the gateway."""

    file: Path
    public: str


@dataclass(frozen=True)
class Gateway:
    """The running virtual gateway, as its JSON banner described it."""

    host: str
    port: int
    serial: str
    fingerprint: str
    default_password: str = field(repr=False)
    process: ManagedProcess = field(repr=False)
    publisher_key: PublisherKey = field(repr=False)
    """The publisher key it trusts firmware images of (``--trust-update-key``)."""
    zeroconf: str | None = None
    """The name it is announced under (``Rayzig <serial>._rayzig._tcp.local.``)."""


@dataclass(frozen=True)
class HomeAssistant:
    """The running Home Assistant dev instance."""

    url: str
    config_dir: Path
    process: ManagedProcess = field(repr=False)

    def log(self) -> str:
        path = self.config_dir / "home-assistant.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@pytest.fixture(autouse=True)
def _preconditions(request: pytest.FixtureRequest) -> None:
    """Say what is missing instead of failing somewhere deep in the browser."""
    if request.config.pluginmanager.has_plugin("homeassistant"):
        pytest.skip("the e2e test runs without the HA pytest plugin: -p no:homeassistant")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap --browser")
    if importlib.util.find_spec("hass_frontend") is None:
        pytest.fail("the Home Assistant frontend is missing: run scripts/bootstrap --demo")


@pytest.fixture
def artifacts(_preconditions: None) -> Path:
    """artifacts/e2e/, emptied of the screenshots and logs of an earlier run (not when skipped)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.log"), *ARTIFACTS.glob("*.txt")]:
        old.unlink()
    return ARTIFACTS


def _stopped(process: ManagedProcess, timeout: float) -> None:
    process.stop(timeout)
    assert not process.running(), f"{process.name} (pid {process.pid}) survived its teardown"


@pytest.fixture
def virtual_gateway(tmp_path: Path, artifacts: Path) -> Iterator[Gateway]:
    """A factory-new virtual gateway with simulated activity on a free loopback port."""
    state = tmp_path / "gateway"
    state.mkdir()
    key_file = tmp_path / "publisher-key" / "signing.json"
    key_file.parent.mkdir()
    key = PublisherKey(key_file, str(rayzig("keygen", "--out", str(key_file))["public_key"]))
    process = ManagedProcess(
        "virtual gateway",
        [
            str(BIN / "rayzig"),
            "virtual-gateway",
            "--host",
            HOST,
            "--port",
            "0",
            "--state",
            str(state / "gateway.json"),
            "--simulate",
            "2",
            "--prefill-events",
            str(PREFILL_EVENTS),
            "--advertise",
            "--trust-update-key",
            key.public,
            "--json",
        ],
        output=state / "stdout.jsonl",
        errors=state / "gateway.log",
        cwd=tmp_path,
    ).start()
    try:
        banner = wait_for_json_line(process, "listening", timeout=60)
        assert banner["first_start"], "the gateway's state directory was not new"
        yield Gateway(
            host=str(banner["host"]),
            port=int(banner["port"]),
            serial=str(banner["serial"]),
            fingerprint=str(banner["fingerprint"]),
            default_password=str(banner["default_password"]),
            process=process,
            publisher_key=key,
            zeroconf=banner.get("zeroconf"),
        )
    finally:
        try:
            _stopped(process, timeout=20)
        finally:
            shutil.copyfile(state / "gateway.log", artifacts / "virtual-gateway.log")


@pytest.fixture
def home_assistant(tmp_path: Path, artifacts: Path) -> Iterator[HomeAssistant]:
    """Home Assistant from the demo's configuration, loading custom_components/rayzig in place."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    # Only the tracked file: a developer's config/ may also hold the demo's .storage. The files it
    # includes start empty, as scripts/demo creates them.
    shutil.copyfile(ROOT / "config" / "configuration.yaml", config_dir / "configuration.yaml")
    (config_dir / "automations.yaml").write_text("[]\n", encoding="utf-8")
    (config_dir / "scenes.yaml").write_text("", encoding="utf-8")
    (config_dir / "scripts.yaml").write_text("", encoding="utf-8")
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["RAYZIG_HA_PORT"] = str(port)
    env["RAYZIG_HA_HOST"] = HOST
    process = ManagedProcess(
        "Home Assistant",
        [str(BIN / "hass"), "--config", str(config_dir), "--skip-pip"],
        output=tmp_path / "home-assistant.out",
        env=env,
        cwd=tmp_path,
    ).start()
    url = f"http://{HOST}:{port}"
    try:
        wait_for_http(f"{url}/manifest.json", process, timeout=HA_START_TIMEOUT)
        yield HomeAssistant(url=url, config_dir=config_dir, process=process)
    finally:
        try:
            _stopped(process, timeout=60)
        finally:
            shutil.copyfile(tmp_path / "home-assistant.out", artifacts / "home-assistant.log")


_LOOPBACK = re.compile(r"^(?:https?|wss?)://(?:127\.0\.0\.1|localhost)[:/]")


def _abort_external(route: Route) -> None:
    if _LOOPBACK.match(route.request.url) or route.request.url.startswith(("data:", "blob:")):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(home_assistant: HomeAssistant) -> Iterator[Page]:
    """A page in Debian's Chromium (fresh profile), English, UTC, 1280x900."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC"
            )
            context.route("**/*", _abort_external)
            context.set_default_timeout(30_000)
            yield context.new_page()
            context.close()
        finally:
            browser.close()
