"""Release rehearsal: install the integration the way a HACS user will, from what a release builds.

Builds the ``rayzig-core`` sdist and wheel, serves them from a local package index, makes a clean
Home Assistant environment (the version ``hacs.json`` names) with nothing of the checkout in it,
copies ``custom_components/rayzig`` into a fresh configuration directory as HACS does, and starts
Home Assistant without ``--skip-pip``. Then, only through Home Assistant's HTTP API and the
``rayzig`` CLI that Home Assistant installed, it proves:

(a) Home Assistant itself installed ``rayzig-core`` from the manifest's requirement, from the local
    index, byte for byte the built wheel;
(b) the config entry made through the config flow (bridge, fingerprint, default password, new
    password) is loaded;
(c) switching a switch entity changes that output on the virtual gateway, and nothing else.

Every server it starts is stopped with its process group, pass or fail. What it leaves is in
``artifacts/release-rehearsal/`` (emptied first): summary.txt and the logs. Secrets (passwords,
tokens, the gateway's key file and banner) stay in a temporary directory that is deleted.

Usage: ``scripts/release-rehearsal [--find-links]`` (docs/DEVELOPMENT.md, "The release
rehearsal"). ``--find-links`` gives Home Assistant's installer the folder that holds the wheel
(``UV_FIND_LINKS``) instead of the local index: the user guide's way before the first release.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from . import gateway, ha_venv, home_assistant, package_index
from .distributions import Distributions, build
from .environment import (
    ARTIFACTS,
    DISTRIBUTION,
    Tools,
    clean_env,
    home_assistant_version,
    manifest_requirement,
    python313,
)
from .processes import LOOPBACK, RehearsalError, Service, run, tail, wait_until
from .report import Report, say

DOMAIN = "rayzig"
ENTRY_TIMEOUT = 120.0
SWITCH_TIMEOUT = 60.0
STOP_TIMEOUTS = {"Home Assistant": 60.0, "virtual gateway": 20.0, "package index": 10.0}


class StopRequestedError(RehearsalError):
    """The rehearsal was asked to stop (SIGINT, SIGTERM, SIGHUP)."""


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise StopRequestedError(f"stopped by signal {signal.Signals(signum).name}")


def main() -> int:
    """Rehearse; always stop what was started; 0 when (a), (b) and (c) were all proved."""
    parser = argparse.ArgumentParser(
        prog="scripts/release-rehearsal",
        description=(__doc__ or "").split("\n\n", maxsplit=1)[0],
        epilog="Details: docs/DEVELOPMENT.md, section 'The release rehearsal'.",
    )
    parser.add_argument(
        "--find-links",
        action="store_true",
        help=(
            "give Home Assistant's installer the folder holding the wheel (UV_FIND_LINKS) "
            "instead of a local package index (UV_EXTRA_INDEX_URL)"
        ),
    )
    args = parser.parse_args()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    report = Report(ARTIFACTS / "summary.txt")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="rayzig-release-rehearsal-"))
    services: list[Service] = []
    outcome = "PASSED"
    try:
        _rehearse(report, tmp, services, find_links=args.find_links)
    except RehearsalError as err:
        outcome = "FAILED"
        say(f"release-rehearsal: FAILED: {err}")
    except Exception:  # noqa: BLE001 - a bug here must still stop the servers and say so
        outcome = "FAILED"
        say(f"release-rehearsal: FAILED with an internal error:\n{traceback.format_exc()}")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if outcome != "PASSED":
            say(
                f"--- Home Assistant's log ends with:\n{tail(ARTIFACTS / 'home-assistant.log', 60)}"
            )
        # The client first (Home Assistant), then what it uses: no reconnect noise in its log.
        for service in sorted(services, key=lambda s: list(STOP_TIMEOUTS).index(s.name)):
            service.stop(STOP_TIMEOUTS.get(service.name, 10.0))
            if service.running():
                outcome = "FAILED"
                report.problem(f"{service.name} survived its stop")
        shutil.rmtree(tmp, ignore_errors=True)
        total = report.write(outcome)
    say(f"release-rehearsal: {outcome} in {total:.0f} s; artifacts in {ARTIFACTS}")
    return 0 if outcome == "PASSED" else 1


def _rehearse(report: Report, tmp: Path, services: list[Service], *, find_links: bool) -> None:
    tools = Tools.find()
    ha_version = home_assistant_version()
    requirement = manifest_requirement()

    with report.step("build the sdist and the wheel (uv build)"):
        dists = build(tools, tmp / "dist", ARTIFACTS / "build.log")
        if dists.requirement != requirement:
            msg = (
                f"the checkout builds {dists.requirement}, but the manifest requires {requirement}"
            )
            raise RehearsalError(msg)
        report.fact(f"{dists.sdist.name} and, built from it, {dists.wheel.name}")
        report.fact(f"the manifest requires {requirement}")

    index: package_index.PackageIndex | None = None
    if find_links:
        installer_env = {"UV_FIND_LINKS": str(dists.wheel.parent)}
    else:
        with report.step("serve them from a local package index (pypiserver)"):
            index = package_index.start(tools, tmp / "dist", ARTIFACTS / "package-index.log", tmp)
            services.append(index.service)
            report.fact(f"{index.url}, nothing else on it, no fallback to PyPI")
        installer_env = {home_assistant.INDEX_ENV: index.url}

    with report.step(f"make a clean Home Assistant {ha_version} environment"):
        venv_log = ARTIFACTS / "ha-venv.log"
        venv, warm = ha_venv.create(
            tools, python313(), ha_version, path=tmp / "venv", workdir=tmp, log=venv_log
        )
        ha_venv.check_clean(venv, venv_log)
        report.fact("from the cache (warm run)" if warm else "resolved from PyPI (cold run)")
        report.fact("rayzig_core is not importable in it; no path of the checkout is on sys.path")

    with report.step("copy custom_components/rayzig into a new configuration directory (HACS)"):
        home_assistant.install_like_hacs(tmp / "config")

    with report.step("start Home Assistant without --skip-pip"):
        # The library must come from the index: uv's cache may hold it from an earlier run.
        run(
            [str(tools.uv), "cache", "clean", DISTRIBUTION],
            env=clean_env(),
            cwd=tmp,
            log=ARTIFACTS / "ha-venv.log",
            timeout=60,
            what="uv cache clean",
        )
        ha = home_assistant.start(
            venv, tmp / "config", installer_env, ARTIFACTS / "home-assistant.log"
        )
        services.append(ha.service)
        report.fact(f"{ha.url}; " + ", ".join(f"{k}={v}" for k, v in installer_env.items()))

    with report.step("onboard through the API (owner, auth code, access token)"):
        ha.onboard()

    with report.step("add the integration: Home Assistant installs the manifest's requirement"):
        menu = ha.start_flow(DOMAIN)
        _expect(menu, "menu", "user")

    source = "the wheel folder" if find_links else "the local index"
    with report.step(f"(a) Home Assistant installed {requirement} from {source}"):
        _prove_installed_by_home_assistant(report, venv, dists, index, requirement)

    with report.step("start a virtual gateway with the CLI Home Assistant installed"):
        gw = gateway.start(venv, tmp / "gateway", ARTIFACTS / "virtual-gateway.log")
        services.append(gw.service)

    new_password = secrets.token_urlsafe(24)  # only in the flow's request and the CLI's env
    with report.step("config flow: bridge, fingerprint, default password, new password"):
        entry = _config_flow(ha, gw, str(menu["flow_id"]), new_password)
        report.fact(f"entry {entry['title']!r} created")

    with report.step("(b) the config entry is loaded"):
        state = wait_until(
            "loaded Rayzig config entry",
            lambda: next((e for e in ha.entries(DOMAIN) if e["state"] == "loaded"), None),
            timeout=ENTRY_TIMEOUT,
            alive=ha.service,
        )
        report.fact(f"entry {state['entry_id']} state {state['state']}")

    with report.step("(c) switching an entity switches that output on the gateway"):
        cli = gateway.GatewayCli(venv, gw, tmp / "cli-key.json", ARTIFACTS / "cli.log")
        cli.pair(new_password)
        for line in _prove_switch(ha, cli):
            report.fact(line)


def _expect(step: dict[str, Any], kind: str, step_id: str | None) -> None:
    if step.get("type") != kind or (step_id is not None and step.get("step_id") != step_id):
        shown = {k: step.get(k) for k in ("type", "step_id", "errors", "reason")}
        msg = f"the config flow answered {shown}, not a {kind} {step_id or ''}".rstrip()
        raise RehearsalError(msg)


def _prove_installed_by_home_assistant(
    report: Report,
    venv: ha_venv.HomeAssistantVenv,
    dists: Distributions,
    index: package_index.PackageIndex | None,
    requirement: str,
) -> None:
    log = (ARTIFACTS / "home-assistant.log").read_text(encoding="utf-8", errors="replace")
    if f"Attempting install of {requirement}" not in log:
        msg = f"Home Assistant's log does not say it installed {requirement}"
        raise RehearsalError(msg)
    if "Unable to install package" in log:
        msg = "Home Assistant's log reports a package it could not install"
        raise RehearsalError(msg)
    report.fact(f"Home Assistant's log: 'Attempting install of {requirement}'")
    if index is None:
        report.fact(f"{DISTRIBUTION} is on no index here: it came from the UV_FIND_LINKS folder")
    elif dists.wheel.name in index.downloads():
        report.fact(f"the local index served {dists.wheel.name} (package-index.log)")
    else:
        msg = f"the local index never served {dists.wheel.name}: {index.downloads()}"
        raise RehearsalError(msg)
    installed = ha_venv.check_installed(venv, dists, ARTIFACTS / "ha-venv.log")
    report.fact(
        f"{DISTRIBUTION} {installed.version} imported from {installed.module_file.parent}, "
        f"INSTALLER={installed.installer}, {installed.files_checked} files equal to the wheel's"
    )
    shown = run(
        [str(venv.python), "-m", "uv", "pip", "show", "--python", str(venv.python), DISTRIBUTION],
        env=clean_env(),
        cwd=venv.workdir,
        log=ARTIFACTS / "installed.txt",
        timeout=60,
        what="uv pip show",
    )
    fields = [line for line in shown.splitlines() if line.startswith(("Name:", "Location:"))]
    report.fact("uv pip show: " + "; ".join(fields))


def _config_flow(
    ha: home_assistant.HomeAssistant, gw: gateway.Gateway, flow_id: str, new_password: str
) -> dict[str, Any]:
    step = ha.flow_step(flow_id, {"next_step_id": "bridge"})
    _expect(step, "form", "bridge")
    step = ha.flow_step(flow_id, {"host": LOOPBACK, "port": gw.port})
    _expect(step, "form", "confirm_fingerprint")
    shown = (step.get("description_placeholders") or {}).get("fingerprint")
    if shown != gw.fingerprint:
        msg = f"the flow shows fingerprint {shown}, the gateway printed {gw.fingerprint}"
        raise RehearsalError(msg)
    _expect(ha.flow_step(flow_id, {}), "form", "credentials")
    step = ha.flow_step(flow_id, {"username": "installer", "password": gw.default_password})
    _expect(step, "form", "new_password")
    step = ha.flow_step(flow_id, {"new_password": new_password, "confirm_password": new_password})
    _expect(step, "create_entry", None)
    return step


def _prove_switch(ha: home_assistant.HomeAssistant, cli: gateway.GatewayCli) -> list[str]:
    """Switch one output on and off again from Home Assistant.

    The gateway itself must show that output, and only it, change each time.
    """
    switches = wait_until(
        "switch entity that is off",
        lambda: (
            [s for s in ha.states() if s["entity_id"].startswith("switch.") and s["state"] == "off"]
            or None
        ),
        timeout=SWITCH_TIMEOUT,
        alive=ha.service,
    )
    entity_id = str(switches[0]["entity_id"])
    facts = [f"{len(switches)} switches off; switching {entity_id}"]
    before = cli.outputs()
    switched: gateway.OutputKey | None = None
    for service, want in (("turn_on", True), ("turn_off", False)):
        ha.call("switch", service, {"entity_id": entity_id})
        now = wait_until(
            f"output change on the gateway after switch.{service}",
            lambda: _changed(before, cli.outputs()),  # noqa: B023 - used at once
            timeout=SWITCH_TIMEOUT,
        )
        changed = [key for key in now if now[key] != before.get(key)]
        if len(changed) != 1 or now[changed[0]] is not want or switched not in (None, changed[0]):
            msg = f"switch.{service} of {entity_id} changed the gateway's outputs {changed}"
            raise RehearsalError(msg)
        switched = changed[0]
        word = "on" if want else "off"
        wait_until(
            f"{entity_id} {word} in Home Assistant",
            lambda: True if ha.state(entity_id) == word else None,  # noqa: B023 - used at once
            timeout=SWITCH_TIMEOUT,
        )
        facts.append(
            f"switch.{service}: the gateway shows module {switched[0]} output {switched[1] + 1} "
            f"{word}, and no other output changed (rayzig modules)"
        )
        before = now
    return facts


def _changed(
    before: dict[gateway.OutputKey, bool], now: dict[gateway.OutputKey, bool]
) -> dict[gateway.OutputKey, bool] | None:
    return now if now != before else None


if __name__ == "__main__":
    sys.exit(main())
