"""The options shared by commands, and the help's description and epilog, as data."""

from __future__ import annotations

from rayzig_core.cli import values as v
from rayzig_core.cli.spec import Arg, Group

DESCRIPTION = "Commission and diagnose a Rayzig gateway; run a virtual gateway."

EPILOG = """\
exit codes:
  0    success
  1    usage error or bad input (bad option or value, unreadable or insecure file,
       fingerprint not confirmed, prompt cancelled)
  2    cannot connect (nothing answers, link lost, timeout); servers: cannot listen
  3    authentication (wrong password, throttled, key revoked or not paired, gateway key
       changed, factory password must be changed first)
  4    refused by the gateway (permission, not found, password policy, firmware refused)
  5    internal error (please report it)
  130  interrupted
  141  stdout closed by its reader (e.g. `| head`): stopped quietly

environment:
  RAYZIG_PASSWORD         current password (instead of the prompt)
  RAYZIG_NEW_PASSWORD     new password for pair (factory state), passwd, recover, users add
  RAYZIG_RECOVERY_SECRET  recovery secret for recover

Passwords are never accepted as arguments and never echoed. See docs/CLI.md.
"""

OUTPUT = Group(
    "output",
    (
        Arg("--json", action="store_true", default=False, help="machine-readable output on stdout"),
        Arg("--verbose -v", action="store_true", default=False, help="log details to stderr"),
    ),
)
"""Options of every command, before or after its name."""

CONNECTION = Group(
    "connection",
    (
        Arg(
            "--host",
            help=f"gateway or bridge host (default {v.DEFAULT_HOST}, or the key file's)",
        ),
        Arg("--port", type=v.port, help=f"TCP port (default {v.DEFAULT_PORT}, or the key file's)"),
        Arg("--i2c-bus", type=v.non_negative, metavar="N", help="I2C bus number (/dev/i2c-N)"),
        Arg("--address", type=v.i2c_address, metavar="ADDR", help="gateway I2C address, e.g. 0x42"),
        Arg(
            "--i2c-channel",
            type=v.i2c_channel,
            metavar="N",
            help="I2C link channel, 0 to 15 (default 0, or the key file's); Home Assistant on "
            "local I2C uses 0: use 1 next to it on the same computer",
        ),
        Arg(
            "--key-file",
            default=v.DEFAULT_KEY_FILE,
            metavar="PATH",
            help=f"pairing key file, mode 0600 (default {v.DEFAULT_KEY_FILE})",
        ),
        Arg(
            "--timeout",
            type=v.seconds,
            default=v.DEFAULT_TIMEOUT,
            metavar="SECONDS",
            help=f"connect and request timeout (default {v.DEFAULT_TIMEOUT:.0f})",
        ),
    ),
)
"""How a client command reaches the gateway (before or after the command's name)."""

SIMULATED_BUS = Group(
    "simulated I2C bus (tests and demos; needs --i2c-bus/--address)",
    (
        Arg(
            "--fake-i2c",
            metavar="STATE_FILE",
            help="run the command against a virtual gateway (state in STATE_FILE, made if "
            "missing) started in-process on a simulated /dev/i2c-N, through the real smbus2 path",
        ),
        Arg(
            "--i2c-clock",
            type=v.i2c_clock,
            metavar="100k|400k|1M",
            help="model the bus at this clock in real time, with mesh hop latency "
            "(default: no timing model, as fast as possible)",
        ),
        *(
            Arg(
                option,
                type=v.rate,
                metavar="RATE",
                help=f"probability (0 to 1) that a transaction gets {what}",
            )
            for option, what in (
                ("--fault-bit-flips", "a bit flipped in transit"),
                ("--fault-nacks", "a NACK (errno 121)"),
                ("--fault-busy", "a BUSY answer from the gateway"),
                ("--fault-timeouts", "its reply lost (errno 110)"),
            )
        ),
        Arg(
            "--fault-seed",
            type=v.non_negative,
            metavar="N",
            help="seed of the fault injection (default 0: the same faults every run)",
        ),
    ),
)
"""A virtual gateway on a simulated I2C bus for one command (PROTOCOL.md §11.13)."""
