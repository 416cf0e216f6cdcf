"""Every ``rayzig`` command and its own options, as data (docs/CLI.md describes them for people).

The options every command shares are in options.py.
"""

from __future__ import annotations

from rayzig_core import admission
from rayzig_core.cli import values as v
from rayzig_core.cli.spec import Arg, Command

_MODULE = Arg("module", type=v.non_negative, metavar="MODULE", help="module id")
_OUTPUT = Arg("output", type=v.positive, metavar="OUTPUT", help="output number, from 1")
_ON_OFF = ("on", "off")
_RUN_FOR = Arg("--run-for", type=v.seconds, metavar="SECONDS", help="stop after SECONDS (demos)")
_LISTEN_HOST = Arg(
    "--host", default=v.DEFAULT_HOST, help=f"listen address (default {v.DEFAULT_HOST})"
)
_UPDATE_SERVER = (
    Arg("--server", required=True, metavar="URL", help="update server, e.g. http://127.0.0.1:8765"),
    Arg(
        "--signing-key",
        type=v.public_key,
        action="append",
        required=True,
        metavar="HEX",
        help="trusted Ed25519 public key of the publisher (repeatable)",
    ),
)
_PART_HELP = "one of " + ", ".join(v.PARTS)
_LIMITATION = (
    Arg(
        "--modules",
        type=v.module_ids,
        metavar="M,M",
        help="limit the user to these modules (ids separated by commas, e.g. 3,5)",
    ),
    Arg(
        "--outputs",
        type=v.output_refs,
        metavar="M:O,M:O",
        help="limit the user to these outputs: module id and output number from 1 (e.g. 3:1,5:2)",
    ),
    Arg(
        "--read-only",
        action="store_true",
        help="the user may read but switch nothing (without --modules and --outputs: the whole "
        "site, read-only)",
    ),
)
"""A User's limitation (PROTOCOL.md §7.4), for ``users add`` and ``users limit``."""


def _admission(max_pending: int) -> tuple[Arg, ...]:
    """A server's connection hygiene (PROTOCOL.md §2.2, §3.2): deadlines and the pending pool."""
    return (
        Arg(
            "--login-grace",
            type=v.seconds,
            default=admission.DEFAULT_LOGIN_GRACE,
            metavar="SECONDS",
            help="drop a connection that has not authenticated within SECONDS (default "
            f"{admission.DEFAULT_LOGIN_GRACE:g})",
        ),
        Arg(
            "--max-pending",
            type=v.positive,
            default=max_pending,
            metavar="N",
            help="connections waiting to authenticate at once; a new one pushes out the oldest "
            f"(default {max_pending})",
        ),
        Arg(
            "--frame-timeout",
            type=v.seconds,
            default=admission.DEFAULT_FRAME_TIMEOUT,
            metavar="SECONDS",
            help="drop a connection whose frame stops half-way for SECONDS (default "
            f"{admission.DEFAULT_FRAME_TIMEOUT:g})",
        ),
        Arg(
            "--idle-timeout",
            type=v.seconds_or_never,
            default=admission.DEFAULT_IDLE_TIMEOUT,
            metavar="SECONDS",
            help="drop an authenticated session that sends nothing for SECONDS, 0: never "
            f"(default {admission.DEFAULT_IDLE_TIMEOUT:g}; clients ping after 60 s of silence)",
        ),
    )


PAIRING = (
    Command(
        "info",
        "gateway identity, fingerprint, factory state, firmware",
        "rayzig_core.cli.pairing:info",
    ),
    Command(
        "pair",
        "pair this computer with a gateway",
        "rayzig_core.cli.pairing:pair",
        (
            Arg("--user", default=v.DEFAULT_USER, help=f"gateway user (default {v.DEFAULT_USER})"),
            Arg(
                "--yes-fingerprint",
                metavar="FP",
                help="the fingerprint on the gateway's label (skips the question)",
            ),
        ),
    ),
    Command(
        "passwd",
        "change a password (default: the paired user's)",
        "rayzig_core.cli.pairing:passwd",
        (Arg("--user", help="whose password (default: the paired user)"),),
    ),
    Command(
        "recover",
        "reset the System user's password with the recovery secret",
        "rayzig_core.cli.pairing:recover",
        (
            Arg(
                "--user",
                default=v.DEFAULT_USER,
                help="System user name, for the password policy check (default installer)",
            ),
            Arg(
                "--yes-fingerprint",
                metavar="FP",
                help="the fingerprint on the gateway's label (when not paired)",
            ),
        ),
    ),
)

SITE = (
    Command(
        "modules",
        "list modules, outputs, presets and telemetry",
        "rayzig_core.cli.site:modules",
    ),
    Command(
        "set",
        "switch an output on or off",
        "rayzig_core.cli.site:switch",
        (_MODULE, _OUTPUT, Arg("state", choices=_ON_OFF)),
    ),
    Command(
        "preset",
        "set what an output does when power returns",
        "rayzig_core.cli.site:preset",
        (_MODULE, _OUTPUT, Arg("preset", choices=tuple(v.PRESETS))),
    ),
    Command(
        "utility",
        "mark whether the Utility user may switch an output (Administrator and above)",
        "rayzig_core.cli.site:utility",
        (
            _MODULE,
            _OUTPUT,
            Arg(
                "state",
                choices=_ON_OFF,
                help="on: the Utility user may switch the output; off: it may not",
            ),
        ),
    ),
    Command(
        "events",
        "read (and follow) the event logs",
        "rayzig_core.cli.events:events",
        (
            Arg("--module", type=v.non_negative, metavar="M", help="only this module"),
            Arg(
                "--since",
                type=v.non_negative,
                default=0,
                metavar="N",
                help="only events with a sequence number above N",
            ),
            Arg("--follow -f", action="store_true", help="keep printing new events until Ctrl-C"),
            Arg(
                "--for",
                dest="timeout_follow",
                type=v.seconds,
                metavar="SECONDS",
                help="with --follow: stop after SECONDS",
            ),
        ),
    ),
)

ACCOUNTS = (
    Command(
        "users",
        "list, add, limit and delete gateway users",
        actions=(
            Command("list", "list users and their limitations", "rayzig_core.cli.users:list_users"),
            Command(
                "add",
                "add a user (password asked twice or RAYZIG_NEW_PASSWORD), limited if asked",
                "rayzig_core.cli.users:add_user",
                (
                    Arg("name", metavar="NAME"),
                    Arg(
                        "--level",
                        choices=tuple(v.LEVELS),
                        default="user",
                        help="access level (default user)",
                    ),
                    *_LIMITATION,
                ),
            ),
            Command(
                "limit",
                "limit a User to modules and outputs, or to reading (Administrator and above)",
                "rayzig_core.cli.users:limit_user",
                (
                    Arg("name", metavar="NAME"),
                    *_LIMITATION,
                    Arg("--unlimited", action="store_true", help="lift the user's limitation"),
                ),
            ),
            Command(
                "delete",
                "delete a user",
                "rayzig_core.cli.users:delete_user",
                (Arg("name", metavar="NAME"),),
            ),
        ),
    ),
    Command(
        "clients",
        "list and revoke paired clients",
        actions=(
            Command("list", "list paired client keys", "rayzig_core.cli.users:list_clients"),
            Command(
                "revoke",
                "revoke a client key",
                "rayzig_core.cli.users:revoke_client",
                (Arg("id", type=v.positive, metavar="ID"),),
            ),
        ),
    ),
)

FIRMWARE = Command(
    "firmware",
    "installed firmware, updates, install",
    actions=(
        Command("list", "installed firmware per part", "rayzig_core.cli.firmware:list_firmware"),
        Command(
            "check",
            "compare installed firmware with the update server",
            "rayzig_core.cli.updates:check",
            _UPDATE_SERVER,
        ),
        Command(
            "install",
            "install a signed image from the update server",
            "rayzig_core.cli.updates:install",
            (
                Arg("part", choices=tuple(v.PARTS), metavar="PART", help=_PART_HELP),
                Arg("--version", help="this version (default: the newest)"),
                Arg("--force", action="store_true", help="reinstall the installed version"),
                Arg(
                    "--yes",
                    action="store_true",
                    help="do not ask before installing (on a terminal)",
                ),
                *_UPDATE_SERVER,
            ),
        ),
    ),
)

VIRTUAL_GATEWAY = Command(
    "virtual-gateway",
    "run the virtual gateway",
    "rayzig_core.cli.virtual_gateway:virtual_gateway",
    (
        _LISTEN_HOST,
        Arg(
            "--port",
            type=v.listen_port,
            default=v.DEFAULT_PORT,
            help=f"TCP port, 0 for any free one (default {v.DEFAULT_PORT})",
        ),
        Arg(
            "--state",
            default=v.DEFAULT_STATE_FILE,
            metavar="FILE",
            help=f"state file (default {v.DEFAULT_STATE_FILE})",
        ),
        Arg(
            "--modules",
            type=v.module_count,
            metavar="N",
            help="modules of a new site, 1 to 250 (default 12)",
        ),
        Arg(
            "--outputs-per-module",
            type=v.outputs_per_module,
            metavar="N",
            help="give every module of a new site N outputs, 1 to 8 (default: 1 to 4 by kind)",
        ),
        Arg(
            "--prefill-events",
            type=v.prefill_events,
            metavar="N",
            help="fill every event log of a new site with N past records, up to 8192 "
            "(default: one power-on now)",
        ),
        Arg(
            "--simulate",
            type=v.seconds,
            metavar="SECONDS",
            help="random activity about every SECONDS",
        ),
        Arg(
            "--trust-update-key",
            type=v.public_key,
            action="append",
            metavar="HEX",
            help="trust firmware signed by this Ed25519 public key (repeatable; replaces saved "
            "keys)",
        ),
        _RUN_FOR,
        Arg(
            "--fault-disconnects",
            type=v.rate,
            metavar="RATE",
            default=0.0,
            help="fault injection: drop a client's connection before a received frame with this "
            "probability (e.g. 0.01)",
        ),
        Arg(
            "--fault-reboot-every",
            type=v.seconds,
            metavar="SECONDS",
            help="fault injection: simulate a gateway reboot (every session ends) every SECONDS",
        ),
        Arg(
            "--fault-seed",
            dest="tcp_fault_seed",
            type=int,
            metavar="N",
            help="seed for --fault-disconnects",
        ),
        Arg(
            "--factory-reset",
            action="store_true",
            help="erase the users (installer back to the default password), paired clients and "
            "event logs in the state file of a stopped gateway, then exit",
        ),
        Arg("--yes", action="store_true", help="with --factory-reset: do not ask"),
        *_admission(admission.DEFAULT_MAX_PENDING),
        Arg("--advertise", action="store_true", help="announce it over zeroconf, as a bridge"),
    ),
    connects=False,
    serves=True,
)

UPDATE_SERVER = Command(
    "update-server",
    "serve a firmware catalogue directory",
    "rayzig_core.cli.update_server:update_server",
    (
        Arg("directory", metavar="DIR"),
        _LISTEN_HOST,
        Arg(
            "--port",
            type=v.listen_port,
            default=v.DEFAULT_UPDATE_PORT,
            help=f"TCP port, 0 for any free one (default {v.DEFAULT_UPDATE_PORT})",
        ),
        _RUN_FOR,
    ),
    connects=False,
    serves=True,
)

BRIDGE = Command(
    "bridge",
    "forward encrypted frames between TCP clients and the I2C gateway (on the SBC)",
    "rayzig_core.cli.bridge:bridge",
    (
        Arg(
            "--i2c-bus",
            type=v.non_negative,
            metavar="N",
            help="I2C bus of the gateway (/dev/i2c-N)",
        ),
        Arg("--address", type=v.i2c_address, metavar="ADDR", help="gateway I2C address, e.g. 0x42"),
        Arg(
            "--listen",
            type=v.listen_address,
            required=True,
            metavar="HOST:PORT",
            help="TCP address to serve, e.g. 0.0.0.0:7780 ([::]:7780 for IPv6; port 0: any free "
            "one)",
        ),
        Arg(
            "--max-clients",
            type=v.max_clients,
            default=8,
            metavar="N",
            help="authenticated TCP clients at once, 1 to 15 (default 8; with --max-pending at "
            "most 15); more are refused",
        ),
        Arg("--no-zeroconf", action="store_true", help="do not announce the bridge over zeroconf"),
        Arg(
            "--zeroconf-interface",
            action="append",
            metavar="ADDR",
            help="announce only on the interface with this IP address (repeatable; default: all)",
        ),
        Arg(
            "--fake-i2c",
            metavar="STATE_FILE",
            help="demo: bridge to a virtual gateway (state in STATE_FILE, made if missing) "
            "started in-process on a simulated /dev/i2c-N at --i2c-bus/--address",
        ),
        Arg(
            "--i2c-clock",
            type=v.i2c_clock,
            metavar="100k|400k|1M",
            help="with --fake-i2c: model the bus at this clock in real time",
        ),
        _RUN_FOR,
        *_admission(admission.BRIDGE_MAX_PENDING),
    ),
    connects=False,
    serves=True,
)

PUBLISHING = (
    Command(
        "firmware-publish",
        "sign an image into a catalogue directory",
        "rayzig_core.cli.publishing:publish",
        (
            Arg("directory", metavar="DIR"),
            Arg("image", metavar="IMAGE"),
            Arg("--signing-key-file", required=True, metavar="F", help="made by `rayzig keygen`"),
            Arg("--part", required=True, choices=tuple(v.PARTS), metavar="P", help=_PART_HELP),
            Arg("--version", required=True, metavar="V"),
            Arg(
                "--security-version",
                required=True,
                type=v.non_negative,
                metavar="N",
                help="anti-rollback counter",
            ),
            Arg(
                "--hardware",
                help="hardware name (default: the catalogue's; for a new one RZ-GW1)",
            ),
            Arg("--release-notes", default="", metavar="TEXT"),
            Arg("--security-fix", action="store_true", help="mark the image as a security fix"),
        ),
        connects=False,
    ),
    Command(
        "advisory-publish",
        "sign a security advisory into a catalogue directory",
        "rayzig_core.cli.publishing:advisory",
        (
            Arg("directory", metavar="DIR"),
            Arg("--signing-key-file", required=True, metavar="F", help="made by `rayzig keygen`"),
            Arg(
                "--id",
                dest="identifier",
                required=True,
                metavar="ID",
                help="advisory identifier, e.g. RZSA-2026-0001",
            ),
            Arg("--part", required=True, choices=tuple(v.PARTS), metavar="P", help=_PART_HELP),
            Arg(
                "--affected",
                type=v.version_range,
                action="append",
                required=True,
                metavar="V|FIRST..LAST|..LAST",
                help="affected versions, both ends included (repeatable)",
            ),
            Arg("--fixed-in", required=True, metavar="V", help="the first version with the fix"),
            Arg("--severity", required=True, choices=v.SEVERITIES, help="how bad it is"),
            Arg(
                "--summary",
                required=True,
                metavar="TEXT",
                help="one paragraph, at most 500 characters",
            ),
            Arg("--url", required=True, metavar="URL", help="the full advisory (http or https)"),
            Arg(
                "--hardware",
                help="hardware name (default: the catalogue's; for a new one RZ-GW1)",
            ),
        ),
        connects=False,
    ),
    Command(
        "advisory-withdraw",
        "remove a security advisory from a catalogue directory",
        "rayzig_core.cli.publishing:withdraw",
        (Arg("directory", metavar="DIR"), Arg("identifier", metavar="ID")),
        connects=False,
    ),
    Command(
        "keygen",
        "make an Ed25519 firmware signing key file (0600)",
        "rayzig_core.cli.signing_key:keygen",
        (Arg("--out", required=True, metavar="F"),),
        connects=False,
    ),
)

COMMANDS: tuple[Command, ...] = (
    *PAIRING,
    *SITE,
    *ACCOUNTS,
    FIRMWARE,
    VIRTUAL_GATEWAY,
    UPDATE_SERVER,
    BRIDGE,
    *PUBLISHING,
)
"""In the order ``rayzig --help`` lists them."""
