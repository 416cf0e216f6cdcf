"""The site: ``modules``, and switching outputs with ``set``, ``preset`` and ``utility``.

Modules, outputs and presets are those of PROTOCOL.md §4. Outputs are numbered from 1 on the
command line and in JSON (``number``), next to the protocol's 0-based ``index``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rayzig_core.cli.connection import ClientOptions
from rayzig_core.cli.errors import EXIT_OK, EXIT_REFUSED, CliError
from rayzig_core.cli.output import Out, table
from rayzig_core.cli.session import paired_session
from rayzig_core.cli.spec import handler
from rayzig_core.cli.values import PRESETS
from rayzig_core.client import RayzigClient
from rayzig_core.errors import NotFoundError, RayzigError
from rayzig_core.models import Module, Output


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputOptions(ClientOptions):
    """An output of a module, and whether to turn it (or the Utility user's right) on."""

    module: int
    output: int
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PresetOptions(ClientOptions):
    """An output of a module and its new power-restore preset (off, on, last)."""

    module: int
    output: int
    preset: str


def output_json(output: Output) -> dict[str, Any]:
    """An output as ``--json`` shows it."""
    return {
        "number": output.index + 1,
        "index": output.index,
        "name": output.name,
        "on": output.is_on,
        "preset": output.preset.name.lower(),
        "utility_controllable": output.utility_controllable,
    }


def module_json(module: Module) -> dict[str, Any]:
    """A module with its outputs and telemetry (PROTOCOL.md §4.3) as ``--json`` shows it."""
    telemetry = module.telemetry
    return {
        "id": module.module_id,
        "serial": module.serial,
        "name": module.name,
        "kind": module.kind.name.lower(),
        "model": module.model,
        "firmware": module.firmware,
        "outputs": [output_json(output) for output in module.outputs],
        "battery_percent": telemetry.battery_percent,
        "battery_minimum_percent": telemetry.battery_minimum_percent,
        "battery_low": telemetry.battery_low,
        "link_quality": telemetry.link_quality,
        "reachable": telemetry.reachable,
        "event_seq": module.event_seq,
        "event_count": module.event_count,
    }


def _battery_text(module: Module) -> str:
    telemetry = module.telemetry
    if telemetry.battery_percent is None:
        return "-"
    text = f"{telemetry.battery_percent}% (min {telemetry.battery_minimum_percent}%)"
    return text + " LOW" if telemetry.battery_low else text


MODULE_COLUMNS = ("ID", "MODULE", "KIND", "BATTERY", "LINK", "REACHABLE")
OUTPUT_COLUMNS = ("OUT", "OUTPUT", "STATE", "PRESET")


@handler(ClientOptions)
async def modules(options: ClientOptions, out: Out) -> int:
    """Print the module table: one row per output, module columns on its first output."""
    async with paired_session(options) as (client, _):
        found = await client.list_modules()
    rows: list[list[str]] = []
    for module in found:
        first = [
            str(module.module_id),
            module.name,
            module.kind.name.lower(),
            _battery_text(module),
            f"{module.telemetry.link_quality}/255",
            "yes" if module.telemetry.reachable else "NO",
        ]
        for position, output in enumerate(module.outputs or (None,)):
            row = first if position == 0 else [""] * len(first)
            if output is None:
                rows.append([*row, "-", "", "", ""])
                continue
            rows.append(
                [
                    *row,
                    str(output.index + 1),
                    output.name,
                    "on" if output.is_on else "off",
                    output.preset.name.lower(),
                ]
            )
    text = table([*MODULE_COLUMNS, *OUTPUT_COLUMNS], rows)
    out.result([module_json(m) for m in found], text)
    return EXIT_OK


def _output_index(number: int) -> int:
    """The protocol's 0-based index of output ``number`` (numbered from 1)."""
    if number < 1:
        raise CliError("Outputs are numbered from 1.")
    return number - 1


async def _on_output(
    client: RayzigClient, module_id: int, number: int, request: Callable[[int], Awaitable[Output]]
) -> Output:
    """Send ``request`` for output ``number``; a missing output is refused in the user's numbers."""
    try:
        return await request(_output_index(number))
    except NotFoundError as refused:
        raise await _missing_output(client, module_id, number, refused) from None


async def _missing_output(
    client: RayzigClient, module_id: int, number: int, refused: NotFoundError
) -> Exception:
    """The refusal to show: the module's outputs counted from 1, whatever the gateway's words.

    The gateway's text may name the protocol's 0-based index (PROTOCOL.md §4.2); the gateway's own
    refusal stands when the module itself is missing or cannot be listed.
    """
    try:
        found = await client.list_modules()
    except RayzigError:
        return refused
    module = next((m for m in found if m.module_id == module_id), None)
    if module is None or any(output.index + 1 == number for output in module.outputs):
        return refused
    numbers = sorted(output.index + 1 for output in module.outputs)
    if not numbers:
        has = "it has no outputs"
    elif len(numbers) == 1:
        has = f"its only output is {numbers[0]}"
    else:
        has = f"its outputs are {numbers[0]} to {numbers[-1]}"
    return CliError(
        f"Module {module_id} has no output {number}: {has} (see `rayzig modules`).", EXIT_REFUSED
    )


@handler(OutputOptions)
async def switch(options: OutputOptions, out: Out) -> int:
    """Switch an output."""
    async with paired_session(options) as (client, _):
        output = await _on_output(
            client,
            options.module,
            options.output,
            lambda index: client.set_output(options.module, index, options.state == "on"),
        )
    state = "on" if output.is_on else "off"
    out.result(
        {"module": options.module, **output_json(output)},
        f"Module {options.module} output {output.index + 1} ({output.name}) is {state}.",
    )
    return EXIT_OK


@handler(PresetOptions)
async def preset(options: PresetOptions, out: Out) -> int:
    """Set an output's power-restore preset (PROTOCOL.md §4.2)."""
    async with paired_session(options) as (client, _):
        output = await _on_output(
            client,
            options.module,
            options.output,
            lambda index: client.set_restore_preset(options.module, index, PRESETS[options.preset]),
        )
    out.result(
        {"module": options.module, **output_json(output)},
        f"Module {options.module} output {output.index + 1} ({output.name}) restores "
        f"{output.preset.name.lower()} after a power cut.",
    )
    return EXIT_OK


@handler(OutputOptions)
async def utility(options: OutputOptions, out: Out) -> int:
    """Mark whether the Utility user may switch an output (Administrator and above, §7.2)."""
    async with paired_session(options) as (client, _):
        output = await _on_output(
            client,
            options.module,
            options.output,
            lambda index: client.set_utility_output(options.module, index, options.state == "on"),
        )
    may = "may" if output.utility_controllable else "may not"
    out.result(
        {"module": options.module, **output_json(output)},
        f"Module {options.module} output {output.index + 1} ({output.name}): the Utility user "
        f"{may} switch it.",
    )
    return EXIT_OK
