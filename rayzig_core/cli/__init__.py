"""``rayzig``: the installer's command-line tool for a Rayzig gateway (docs/CLI.md).

Client commands (connect with ``--host/--port`` over TCP to the virtual gateway or a bridge, or
with ``--i2c-bus/--address [--i2c-channel N]`` directly over I2C)::

    info                          versions, fingerprint, serial, model, factory state
    pair [--user U]               confirm the fingerprint, prove the password, save the key file
    passwd [--user U]             change a password
    recover                       reset the System user's password with the recovery secret
    modules                       modules, outputs, presets, battery, link quality
    set MODULE OUTPUT on|off      switch an output (outputs are numbered from 1)
    preset MODULE OUTPUT off|on|last
    utility MODULE OUTPUT on|off  mark whether the Utility user may switch an output
    events [--module M] [--since N] [--follow]
    users list | add NAME --level L [--modules M,M] [--outputs M:O,M:O] [--read-only]
    users limit NAME [--modules M,M] [--outputs M:O,M:O] [--read-only] | --unlimited
    users delete NAME
    clients list | revoke ID
    firmware list | check | install PART

Local commands::

    virtual-gateway               run the virtual gateway (the demo and test gateway);
                                  --factory-reset erases its users, clients and event logs
    bridge                        forward encrypted frames between TCP clients and the I2C gateway
    update-server DIR             serve a signed firmware catalogue directory over HTTP
    firmware-publish DIR ...      sign an image and add it to a catalogue directory
    keygen --out FILE             make an Ed25519 firmware signing key

Passwords come from a prompt that does not echo or from ``RAYZIG_PASSWORD`` /
``RAYZIG_NEW_PASSWORD`` / ``RAYZIG_RECOVERY_SECRET``, never from the command line. The pairing key
lives in a file readable by its owner only (``--key-file``, default
``~/.config/rayzig/client.json``). ``--json`` prints machine-readable output on stdout; prompts,
progress and errors go to stderr. Every error is one line on stderr that says what to do, with
an exit code (errors.py); no traceback, no secret.

The package: ``commands.py`` lists every command and option as data, ``parser.py`` turns that
into argparse, ``app.py`` runs a command, and each command group has its own module, imported
only when one of its commands runs.
"""

from rayzig_core.cli.app import main
from rayzig_core.cli.errors import (
    EXIT_AUTH,
    EXIT_CONNECT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
)
from rayzig_core.cli.parser import build_parser
from rayzig_core.cli.values import DEFAULT_HOST, DEFAULT_PORT

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EXIT_AUTH",
    "EXIT_CONNECT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "CliError",
    "build_parser",
    "main",
]
