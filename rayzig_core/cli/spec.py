"""The command line as data: argument and command specs, and the handler each command runs.

A :class:`Command` names its handler by ``module:attribute``, so a command's module (and what it
imports: the virtual gateway, the bridge, aiohttp) is loaded only when that command runs. A
:class:`Handler` binds a command function to the frozen dataclass of options it reads; the
options are taken from the parsed command line by field name.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rayzig_core.cli.output import Out
from rayzig_core.errors import RayzigInternalError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

OptionsT = TypeVar("OptionsT", bound="DataclassInstance")
Result = int | Coroutine[Any, Any, int]
"""What a command returns: its exit code, or a coroutine that main() runs to get it."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: its flags (``"--verbose -v"``, or a positional name) and add_argument's."""

    flags: str
    help: str | None = None
    type: Callable[[str], Any] | None = None
    default: Any = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    action: str | None = None
    required: bool = False
    dest: str | None = None

    @property
    def name(self) -> str:
        """The attribute it sets on the parsed command line."""
        if self.dest is not None:
            return self.dest
        return self.flags.split()[0].lstrip("-").replace("-", "_")

    def add_to(self, parser: argparse._ActionsContainer, *, suppress_default: bool) -> None:
        """Add it to ``parser``; ``suppress_default`` leaves the attribute alone when not given."""
        settings: dict[str, Any] = {
            key: value
            for key, value in (
                ("help", self.help),
                ("type", self.type),
                ("choices", self.choices),
                ("metavar", self.metavar),
                ("action", self.action),
                ("dest", self.dest),
            )
            if value is not None
        }
        if suppress_default:
            settings["default"] = argparse.SUPPRESS
        elif self.default is not None:
            settings["default"] = self.default
        if self.required:
            settings["required"] = True
        parser.add_argument(*self.flags.split(), **settings)


@dataclass(frozen=True, slots=True)
class Group:
    """Options shown under one heading of the help."""

    title: str
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Command:
    """A command: its name, one-line help, handler, arguments and sub-commands (actions)."""

    name: str
    help: str
    handler: str | None = None
    """``module:attribute`` of its :class:`Handler`; None for a group that needs an action."""
    args: tuple[Arg, ...] = ()
    connects: bool = True
    """Takes the connection options (and so can run against ``--fake-i2c``)."""
    serves: bool = False
    """Runs until stopped and logs what it serves (INFO level on stderr)."""
    actions: tuple[Command, ...] = ()

    @property
    def reaches_gateway(self) -> bool:
        """Whether it talks to a gateway, so ``--fake-i2c`` can serve it (clients, the bridge)."""
        return self.connects or any(arg.name == "fake_i2c" for arg in self.args)


@dataclass(frozen=True, slots=True)
class Handler(Generic[OptionsT]):
    """A command's code: the options dataclass it reads and the function that runs it."""

    options: type[OptionsT]
    run: Callable[[OptionsT, Out], Result]

    def __call__(self, namespace: argparse.Namespace, out: Out) -> Result:
        """Run with the options read from ``namespace``."""
        return self.run(options_from(self.options, namespace), out)


def handler(
    options: type[OptionsT],
) -> Callable[[Callable[[OptionsT, Out], Result]], Handler[OptionsT]]:
    """Decorator: make a command function a :class:`Handler` reading ``options``."""

    def bind(run: Callable[[OptionsT, Out], Result]) -> Handler[OptionsT]:
        return Handler(options, run)

    return bind


def options_from(shape: type[OptionsT], namespace: argparse.Namespace) -> OptionsT:
    """The ``shape`` dataclass filled from the parsed command line, field by field."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(shape):
        try:
            values[field.name] = getattr(namespace, field.name)
        except AttributeError:
            raise RayzigInternalError(f"the parser sets no {field.name!r}") from None
    return shape(**values)


def resolve(reference: str) -> Any:
    """The attribute a ``module:attribute`` reference names, importing its module now."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)
