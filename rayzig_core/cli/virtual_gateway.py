"""``rayzig virtual-gateway``: run the virtual gateway until stopped, or factory-reset its state.

The state file is the gateway's persistence (PROTOCOL.md §12). While a gateway runs it holds
``FILE.lock``, so that a factory reset cannot be undone by the gateway writing its old state
back when it stops. With ``--advertise`` it announces itself over zeroconf as a bridge does, on
the interface of its listen address only (loopback stays on this computer).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayzig_core.admission import AdmissionPolicy
from rayzig_core.cli import prompts
from rayzig_core.cli.errors import EXIT_CONNECT, EXIT_OK, CliError
from rayzig_core.cli.output import Out
from rayzig_core.cli.signals import wait_for_stop
from rayzig_core.cli.spec import handler
from rayzig_core.cli.values import DEFAULT_USER
from rayzig_core.protocol.messages import PROTOCOL_VERSION
from rayzig_core.virtual_gateway import (
    FACTORY_USER,
    FactorySecrets,
    GatewayServer,
    TcpFaults,
    load_state,
    open_gateway,
    save_state,
)
from rayzig_core.zeroconf_advertiser import (
    WILDCARD_HOSTS,
    GatewayAdvert,
    ZeroconfAdvertiser,
    advertised_addresses,
)

if sys.platform != "win32":
    import fcntl

NEW_SITE_MODULES = 12


@dataclass(frozen=True, slots=True)
class VirtualGatewayOptions:
    """Where it listens and keeps its state, the site it simulates, faults, factory reset."""

    host: str
    port: int
    state: str
    modules: int | None
    outputs_per_module: int | None
    prefill_events: int | None
    simulate: float | None
    trust_update_key: list[bytes] | None
    run_for: float | None
    fault_disconnects: float
    fault_reboot_every: float | None
    tcp_fault_seed: int | None
    factory_reset: bool
    yes: bool
    login_grace: float
    max_pending: int
    frame_timeout: float
    idle_timeout: float | None
    advertise: bool


@handler(VirtualGatewayOptions)
def virtual_gateway(options: VirtualGatewayOptions, out: Out) -> int | Coroutine[Any, Any, int]:
    """Load (or create) the virtual gateway, then run it until Ctrl-C or SIGTERM."""
    state = Path(options.state).expanduser()
    if options.factory_reset:
        return _factory_reset(state, out, confirmed=options.yes)
    trusted = tuple(options.trust_update_key or ())
    lock = _lock_state(state)
    try:
        gateway = load_state(state)
    except (ValueError, OSError) as err:
        _unlock_state(lock)
        raise CliError(f"Cannot load the gateway state {state}: {err}") from None
    factory = None
    if gateway is None:
        # Not saved before it listens: if the port is taken, the secrets are not lost unseen.
        gateway, factory = open_gateway(
            None,
            module_count=options.modules or NEW_SITE_MODULES,
            outputs_per_module=options.outputs_per_module,
            prefill_events=options.prefill_events or 0,
            trusted_update_keys=trusted,
        )
    else:
        _note_site_options(options, state, len(gateway.site.modules()))
        if trusted and set(trusted) != set(gateway.firmware.trusted_keys):
            # A partial image is verified again against the new keys, not lost.
            gateway.firmware = gateway.firmware.with_trusted_keys(trusted)
    server = GatewayServer(
        gateway,
        host=options.host,
        port=options.port,
        state_path=state,
        simulate_interval=options.simulate,
        faults=TcpFaults(
            disconnect_rate=options.fault_disconnects,
            reboot_interval=options.fault_reboot_every,
            seed=options.tcp_fault_seed,
        ),
        admission=AdmissionPolicy(
            login_grace=options.login_grace,
            frame_timeout=options.frame_timeout,
            idle_timeout=options.idle_timeout,
            max_pending=options.max_pending,
        ),
    )
    return _run_gateway(
        server, state, factory, out, options.run_for, lock=lock, advertise=options.advertise
    )


def _note_site_options(options: VirtualGatewayOptions, state: Path, modules: int) -> None:
    """Say that the options that draw a new site do nothing to the existing state file."""
    if options.modules is not None and options.modules != modules:
        Out.note(
            f"--modules applies when the state file is created; {state} keeps its "
            f"{modules} modules."
        )
    given = [
        flag
        for flag, value in (
            ("--outputs-per-module", options.outputs_per_module),
            ("--prefill-events", options.prefill_events),
        )
        if value is not None
    ]
    if given:
        Out.note(
            f"{', '.join(given)} apply when the state file is created; {state} keeps its "
            "modules and event logs (delete it, or use another --state, for a new site)."
        )


def _lock_state(state: Path) -> int | None:
    """Take the lock of a state file (``FILE.lock``) for this process; CliError if it is held.

    The lock ends with the process, or when the returned descriptor is closed. None where
    locking is not available.
    """
    if sys.platform == "win32":  # pragma: no cover - no flock
        return None
    path = state.with_name(f"{state.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise CliError(f"Cannot open the lock file {path}: {err.strerror}.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise CliError(
            f"A virtual gateway is running with {state}: stop it first (Ctrl-C)."
        ) from None
    return fd


def _unlock_state(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _factory_reset(state: Path, out: Out, *, confirmed: bool) -> int:
    """Erase the user data of a stopped virtual gateway's state file (PROTOCOL.md §12)."""
    if not state.exists():
        raise CliError(f"There is no gateway state in {state}: nothing to reset.")
    lock = _lock_state(state)
    try:
        try:
            gateway = load_state(state)
        except (ValueError, OSError) as err:
            raise CliError(f"Cannot load the gateway state {state}: {err}") from None
        if gateway is None:  # removed meanwhile
            raise CliError(f"There is no gateway state in {state}: nothing to reset.")
        if not confirmed:
            prompts.require_terminal(
                "A factory reset erases every user but installer, every paired client and "
                "every event log; pass --yes to confirm it without a terminal."
            )
            Out.note(
                f"Factory reset of gateway {gateway.serial} ({state}): every user but "
                f"{FACTORY_USER}, every paired client and every event log will be erased, and "
                f"{FACTORY_USER} goes back to the default password on the label."
            )
            answer = prompts.ask_line("Erase them? [yes/no] ")
            if answer.lower() not in {"y", "yes"}:
                raise CliError("Factory reset not confirmed: nothing was erased.")
        report = gateway.factory_reset()
        try:
            save_state(gateway, state)
        except OSError as err:
            raise CliError(f"Cannot write the state file {state}: {err.strerror}.") from None
    finally:
        _unlock_state(lock)
    users = ", ".join(report.users)
    out.result(
        {
            "event": "factory_reset",
            "serial": gateway.serial,
            "state": str(state),
            "fingerprint": gateway.fingerprint,
            "users_erased": list(report.users),
            "clients_erased": report.clients,
            "event_records_erased": report.event_records,
            "modules": report.modules,
        },
        "\n".join(
            [
                f"Factory reset of virtual gateway {gateway.serial} (state {state}):",
                f"  erased {len(report.users)} user(s){f' ({users})' if users else ''}; "
                f"{FACTORY_USER} is back to the default password on the label and must change it",
                f"  erased {report.clients} paired client key(s): they must pair again",
                f"  erased {report.event_records} event-log record(s) of {report.modules} "
                "module(s) (sequence numbers go on)",
                "  cleared every password throttle and the replay caches",
                f"Kept: the identity key (fingerprint {gateway.fingerprint}), the default "
                "password and recovery secret, modules, outputs, presets and firmware.",
            ]
        ),
    )
    return EXIT_OK


async def _run_gateway(
    server: GatewayServer,
    state: Path,
    factory: FactorySecrets | None,
    out: Out,
    run_for: float | None,
    *,
    lock: int | None,
    advertise: bool,
) -> int:
    """Listen, save the (new) state, announce, and serve until stopped; then release ``lock``."""
    try:
        return await _serve_gateway(server, state, factory, out, run_for, advertise=advertise)
    finally:
        _unlock_state(lock)


async def _serve_gateway(
    server: GatewayServer,
    state: Path,
    factory: FactorySecrets | None,
    out: Out,
    run_for: float | None,
    *,
    advertise: bool,
) -> int:
    try:
        await server.start()
    except OSError as err:
        raise CliError(
            str(err) if err.strerror else f"Cannot listen: {err}", EXIT_CONNECT
        ) from None
    try:
        save_state(server.gateway, state)
    except OSError as err:
        server.state_path = None
        await server.stop()
        raise CliError(f"Cannot write the state file {state}: {err.strerror}.") from None
    try:
        advertiser = await _advertise(server) if advertise else None
        try:
            _announce(out, server, state, factory, advertiser)
            await wait_for_stop(run_for)
        finally:
            if advertiser is not None:
                await advertiser.stop()  # goodbye packets: discovery forgets it
    finally:
        await server.stop()
    if out.json:
        out.record({"event": "stopped", "state": str(state)}, "")
    else:
        Out.note(f"Virtual gateway stopped; state saved in {state}.")
    return EXIT_OK


async def _advertise(server: GatewayServer) -> ZeroconfAdvertiser | None:
    """Announce ``_rayzig._tcp`` with serial and fingerprint; None (and a note) if it cannot."""
    gateway = server.gateway
    wildcard = server.host in WILDCARD_HOSTS
    advertiser = ZeroconfAdvertiser(
        GatewayAdvert(gateway.serial, gateway.fingerprint, PROTOCOL_VERSION),
        port=server.port,
        addresses=advertised_addresses(server.host),
        interfaces=None if wildcard else [server.host],
    )
    try:
        await advertiser.start()
    except (OSError, ValueError) as err:
        # The gateway works without it: Home Assistant can be given host and port by hand.
        Out.note(
            f"Not announced over zeroconf ({err}): give Home Assistant the host and port by "
            "hand, or start it with --host set to an IP address of this computer."
        )
        return None
    return advertiser


def _announce(
    out: Out,
    server: GatewayServer,
    state: Path,
    factory: FactorySecrets | None,
    advertiser: ZeroconfAdvertiser | None,
) -> None:
    """Print where it listens; on the first start, the factory secrets, once (§6.1, §6.4)."""
    gateway = server.gateway
    modules = len(gateway.site.modules())
    data: dict[str, Any] = {
        "event": "listening",
        "host": server.host,
        "port": server.port,
        "serial": gateway.serial,
        "fingerprint": gateway.fingerprint,
        "modules": modules,
        "state": str(state),
        "first_start": factory is not None,
        "zeroconf": advertiser.name if advertiser is not None else None,
    }
    text = []
    if factory is not None:
        data["user"] = DEFAULT_USER
        data["default_password"] = factory.default_password
        data["recovery_secret"] = factory.recovery_secret
        rule = "=" * 72
        text += [
            rule,
            f"  NEW VIRTUAL GATEWAY {gateway.serial}: factory state",
            "  Write these down now. They are shown ONLY THIS ONCE.",
            "",
            f"  User:              {DEFAULT_USER}",
            f"  Default password:  {factory.default_password}",
            "                     (it only lets you set a new password)",
            f"  Recovery secret:   {factory.recovery_secret}",
            "                     (resets the System password if it is lost)",
            f"  Fingerprint:       {gateway.fingerprint}",
            "",
            f"  Pair with:  rayzig pair --host {server.host} --port {server.port}",
            rule,
        ]
    text.append(
        f"Rayzig virtual gateway {gateway.serial} listening on {server.host}:{server.port} "
        f"({modules} modules, state {state})"
    )
    if advertiser is not None:
        text.append(f"Announced over zeroconf as {advertiser.name!r}.")
    text.append(f"Fingerprint {gateway.fingerprint}. Press Ctrl-C to stop.")
    out.result(data, "\n".join(text))
