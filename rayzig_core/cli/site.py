"""The site: ``modules``, and switching outputs with ``set``, ``preset`` and ``utility``.

Modules, outputs and presets are those of PROTOCOL.md §4. Outputs are numbered from 1 on the
command line and in JSON (``number``), next to the protocol's 0-based ``index``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rayzig_core.cli.connection import ClientOptions
from rayzig_core.cli.errors import EXIT_OK, CliError
from rayzig_core.cli.output import Out, table
from rayzig_core.cli.session import paired_session
from rayzig_core.cli.spec import handler
from rayzig_core.cli.values import PRESETS
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


@handler(OutputOptions)
async def switch(options: OutputOptions, out: Out) -> int:
    """Switch an output."""
    async with paired_session(options) as (client, _):
        output = await client.set_output(
            options.module, _output_index(options.output), options.state == "on"
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
        output = await client.set_restore_preset(
            options.module, _output_index(options.output), PRESETS[options.preset]
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
        output = await client.set_utility_output(
            options.module, _output_index(options.output), options.state == "on"
        )
    may = "may" if output.utility_controllable else "may not"
    out.result(
        {"module": options.module, **output_json(output)},
        f"Module {options.module} output {output.index + 1} ({output.name}): the Utility user "
        f"{may} switch it.",
    )
    return EXIT_OK
