"""Home Assistant as a HACS user runs it, driven only through its HTTP API.

The integration folder is copied into a fresh configuration directory and ``hass`` is started
without ``--skip-pip``.
"""

from __future__ import annotations

import secrets
import shutil
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .environment import INTEGRATION, clean_env
from .ha_venv import HomeAssistantVenv
from .http_client import get_text, request_json
from .processes import LOOPBACK, RehearsalError, Service, free_port, wait_until

START_TIMEOUT = 300.0
"""Seconds for Home Assistant to answer its API (about 20 s here; it installs a few of its own
components' requirements on a first start)."""
INSTALL_TIMEOUT = 600.0
"""Seconds for the first request that loads the integration: Home Assistant installs the
requirements of the integration (and of zeroconf and homekit, its discovery) while it waits."""

INDEX_ENV = "UV_EXTRA_INDEX_URL"
"""How the local index reaches Home Assistant's installer. HA runs ``python -m uv pip install
--index-strategy unsafe-first-match --constraint package_constraints.txt`` (homeassistant/util/
package.py): uv reads this variable, asks extra indexes before the default one (PyPI), and with
that strategy takes a package from the first index that has it. ``UV_INDEX_URL`` would replace
PyPI instead, and the library's own dependencies would not be found."""

_CONFIGURATION = """\
# Written by scripts/release-rehearsal: only what onboarding and the REST API need.
homeassistant:
  name: Rayzig release rehearsal
  unit_system: metric
  time_zone: UTC
  country: GB
  currency: GBP
  latitude: 51.5
  longitude: -0.12
  elevation: 10
http:
  server_host: {host}
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
  logs:
    homeassistant.util.package: info
    homeassistant.setup: info
    custom_components.rayzig: info
    rayzig_core: info
"""


def install_like_hacs(config_dir: Path) -> Path:
    """Copy ``custom_components/rayzig`` alone into ``<config>/custom_components/``, as HACS does.

    The library is not there: it must come from the manifest's requirement.
    """
    target = config_dir / "custom_components" / INTEGRATION.name
    shutil.copytree(INTEGRATION, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    strays = [str(p) for p in config_dir.rglob("rayzig_core*")]
    if strays:
        msg = f"the configuration directory holds {strays}"
        raise RehearsalError(msg)
    return target


@dataclass
class HomeAssistant:
    """A running Home Assistant and an owner's access token for its API."""

    url: str
    service: Service
    token: str | None = None

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        return request_json(method, f"{self.url}{path}", token=self.token, **kwargs)

    def onboard(self) -> None:
        """Create the owner (onboarding's users step), trade its auth code for an access token."""
        client_id = f"{self.url}/"
        owner = self._api(
            "POST",
            "/api/onboarding/users",
            body={
                "client_id": client_id,
                "name": "Release rehearsal",
                "username": "rehearsal",
                "password": secrets.token_urlsafe(24),  # used once, never written anywhere
                "language": "en",
            },
        )
        token = self._api(
            "POST",
            "/auth/token",
            form={
                "grant_type": "authorization_code",
                "code": owner["auth_code"],
                "client_id": client_id,
            },
        )
        self.token = str(token["access_token"])

    def start_flow(self, handler: str) -> dict[str, Any]:
        """Start a config flow, as "Add integration" does (this loads the integration)."""
        return dict(
            self._api(
                "POST",
                "/api/config/config_entries/flow",
                body={"handler": handler, "show_advanced_options": False},
                timeout=INSTALL_TIMEOUT,
            )
        )

    def flow_step(self, flow_id: str, user_input: dict[str, Any]) -> dict[str, Any]:
        """Submit one step of a config flow (a menu choice or a form)."""
        return dict(
            self._api(
                "POST", f"/api/config/config_entries/flow/{flow_id}", body=user_input, timeout=120
            )
        )

    def entries(self, domain: str) -> list[dict[str, Any]]:
        """The config entries of a domain, with their state."""
        return list(self._api("GET", f"/api/config/config_entries/entry?domain={domain}"))

    def states(self) -> list[dict[str, Any]]:
        """Every entity's state."""
        return list(self._api("GET", "/api/states"))

    def state(self, entity_id: str) -> str:
        """One entity's state."""
        return str(self._api("GET", f"/api/states/{entity_id}")["state"])

    def call(self, domain: str, service: str, data: dict[str, Any]) -> None:
        """Call a service and wait for it to finish."""
        self._api("POST", f"/api/services/{domain}/{service}", body=data, timeout=60)


def start(
    venv: HomeAssistantVenv, config_dir: Path, installer_env: dict[str, str], log: Path
) -> HomeAssistant:
    """Start ``hass --config DIR`` (no ``--skip-pip``); return once its API answers.

    It runs from the clean environment, plus ``installer_env``: where its installer (uv) finds
    the library, a local index (``INDEX_ENV``) or a folder (``UV_FIND_LINKS``).
    """
    port = free_port()
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").write_text(
        _CONFIGURATION.format(host=LOOPBACK, port=port), encoding="utf-8"
    )
    service = Service(
        "Home Assistant",
        [str(venv.bin("hass")), "--config", str(config_dir)],
        output=log,
        env=clean_env(installer_env),
        cwd=venv.workdir,
    ).start()
    url = f"http://{LOOPBACK}:{port}"

    def api_up() -> bool | None:
        try:
            status, _ = get_text(f"{url}/api/onboarding", timeout=2)
        except (urllib.error.URLError, OSError):
            return None
        return True if status == 200 else None

    wait_until("answer from Home Assistant's API", api_up, timeout=START_TIMEOUT, alive=service)
    return HomeAssistant(url=url, service=service)
