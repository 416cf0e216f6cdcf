"""Turns the command table (commands.py, options.py) into the ``rayzig`` argument parser."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

from rayzig_core.cli.commands import COMMANDS
from rayzig_core.cli.errors import UsageError
from rayzig_core.cli.options import CONNECTION, DESCRIPTION, EPILOG, OUTPUT, SIMULATED_BUS
from rayzig_core.cli.spec import Command, Group

PROG = "rayzig"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # Never echo stray values: one of them may be a password typed on the command line.
            words = message.split(":", 1)[1].split()
            options = [word.split("=", 1)[0] for word in words if word.startswith("-")]
            others = len(words) - len(options)
            message = "unrecognized arguments: " + " ".join(options)
            if others:
                message += f" and {others} other value{'s' if others > 1 else ''}"
            message += " (passwords are never taken from the command line)" if others else ""
        raise UsageError(self.prog, message)


def _options(groups: Sequence[Group], *, suppress: bool) -> argparse.ArgumentParser:
    """A parent parser holding ``groups``; ``suppress`` keeps values given before the command.

    Every command accepts these options before or after its name: the top-level parser has them
    with their defaults, each command's parser without defaults, so that a value given after the
    name wins and one given before it is kept.
    """
    parent = _Parser(add_help=False)
    for group in groups:
        container = parent.add_argument_group(group.title)
        for arg in group.args:
            arg.add_to(container, suppress_default=suppress)
    return parent


def build_parser() -> argparse.ArgumentParser:
    """Build the ``rayzig`` argument parser; each command sets ``command_spec``."""
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[
            _options([OUTPUT], suppress=False),
            _options([CONNECTION, SIMULATED_BUS], suppress=False),
        ],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.set_defaults(command_spec=None)
    output = _options([OUTPUT], suppress=True)
    connection = _options([CONNECTION, SIMULATED_BUS], suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        _add_command(commands, command, [output, connection] if command.connects else [output])
    return parser


def _add_command(commands: Any, command: Command, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``command`` (and its actions) to the sub-parsers ``commands``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        command.name,
        help=command.help,
        description=command.help,
        parents=parents,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(command_spec=command)
    for arg in command.args:
        arg.add_to(parser, suppress_default=False)
    if command.actions:
        actions = parser.add_subparsers(
            dest=f"{command.name}_command", metavar="ACTION", parser_class=_Parser
        )
        for action in command.actions:
            _add_command(actions, action, parents)


def _version() -> str:
    try:
        return metadata.version("rayzig-core")
    except metadata.PackageNotFoundError:
        return "unknown"
