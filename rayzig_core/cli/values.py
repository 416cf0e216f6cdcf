"""The values the command line accepts: defaults, named choices and argument types.

Each type turns one argument into its value or raises ``argparse.ArgumentTypeError`` with a
sentence that argparse prints after the option's name.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from rayzig_core.cli.spec import resolve
from rayzig_core.models import FirmwarePart, OutputRef, RestorePreset, UserLevel

if TYPE_CHECKING:
    from rayzig_core.firmware.advisory import VersionRange

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7780
DEFAULT_UPDATE_PORT = 8765
DEFAULT_KEY_FILE = "~/.config/rayzig/client.json"
DEFAULT_STATE_FILE = "./.state/gateway.json"
DEFAULT_USER = "installer"
DEFAULT_TIMEOUT = 10.0

LEVELS = {
    "user": UserLevel.USER,
    "administrator": UserLevel.ADMINISTRATOR,
    "system": UserLevel.SYSTEM,
    "utility": UserLevel.UTILITY,
}
PRESETS = {"off": RestorePreset.OFF, "on": RestorePreset.ON, "last": RestorePreset.LAST}
PARTS = {part.name.lower(): part for part in FirmwarePart}
SEVERITIES = ("low", "medium", "high", "critical")
"""Advisory severities, lowest first (PROTOCOL.md §10.2's AdvisorySeverity, in lower case)."""
I2C_CHANNELS = 16
"""Link channels of the I2C link (PROTOCOL.md §11.2): 0 (Home Assistant's, the default) to 15."""
I2C_CLOCKS = {"100k": 100_000, "400k": 400_000, "1m": 1_000_000}
"""Bus clocks --i2c-clock accepts: standard mode, fast mode, fast mode plus."""
BRIDGE_CLIENTS = 15
"""Clients a bridge serves at most: one I2C link channel each, 1 to 15 (PROTOCOL.md §11.2)."""
SITE_MODULES = 250
"""Modules a virtual site has at most."""
MODULE_OUTPUTS = 8
"""Outputs a module has at most."""
EVENT_LOG_RECORDS = 8192
"""Records a module's event log holds at most (PROTOCOL.md §8)."""


def port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("ports are 1 to 65535")
    return value


def listen_port(text: str) -> int:
    """A port to listen on; 0 for any free one."""
    if text.strip() == "0":
        return 0
    return port(text)


def i2c_address(text: str) -> int:
    """A 7-bit I2C address such as 0x42."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address such as 0x42") from None
    if not 0x08 <= value <= 0x77:
        raise argparse.ArgumentTypeError("7-bit I2C addresses run from 0x08 to 0x77")
    return value


def i2c_channel(text: str) -> int:
    """An I2C link channel (PROTOCOL.md §11.2)."""
    channel = non_negative(text)
    if channel >= I2C_CHANNELS:
        raise argparse.ArgumentTypeError(f"an I2C link channel is 0 to {I2C_CHANNELS - 1}")
    return channel


def i2c_clock(text: str) -> int:
    """A bus clock in hertz, from 100k, 400k or 1M."""
    value = I2C_CLOCKS.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError("choose 100k, 400k or 1M")
    return value


def non_negative(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def positive(text: str) -> int:
    """A whole number, 1 or more."""
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _items(text: str, what: str) -> list[str]:
    """The comma-separated items of a list argument (at least one)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"give {what}, separated by commas")
    return items


def module_ids(text: str) -> tuple[int, ...]:
    """Module ids separated by commas, such as 3,5 (PROTOCOL.md §7.4)."""
    try:
        ids = [int(item, 10) for item in _items(text, "module ids such as 3,5")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of module ids such as 3,5"
        ) from None
    if any(module_id < 1 for module_id in ids):
        raise argparse.ArgumentTypeError("module ids are 1 or more")
    return tuple(dict.fromkeys(ids))


def output_refs(text: str) -> tuple[OutputRef, ...]:
    """Outputs as MODULE:OUTPUT separated by commas, outputs numbered from 1 (3:1,5:2)."""
    refs: list[OutputRef] = []
    for item in _items(text, "outputs such as 3:1,5:2"):
        module, _, number = item.partition(":")
        try:
            module_id, output = int(module, 10), int(number, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not MODULE:OUTPUT, such as 3:1 (output 1 of module 3)"
            ) from None
        if module_id < 1 or output < 1:
            raise argparse.ArgumentTypeError("module ids and output numbers start at 1")
        refs.append(OutputRef(module_id, output - 1))  # the protocol counts outputs from 0
    return tuple(dict.fromkeys(refs))


def seconds(text: str) -> float:
    """A duration in seconds, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def seconds_or_never(text: str) -> float | None:
    """A duration in seconds, or 0 for "never" (None)."""
    if text.strip() in {"0", "0.0"}:
        return None
    return seconds(text)


def rate(text: str) -> float:
    """A probability from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability such as 0.01") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a rate is a probability from 0 to 1, e.g. 0.01 for 1 %")
    return value


def public_key(text: str) -> bytes:
    """An Ed25519 public key in hex (PROTOCOL.md §10.2)."""
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        value = b""
    if len(value) != 32:
        raise argparse.ArgumentTypeError(
            "an Ed25519 public key is 64 hexadecimal digits (as printed by `rayzig keygen`)"
        )
    return value


def module_count(text: str) -> int:
    """The number of modules of a new virtual site."""
    value = positive(text)
    if value > SITE_MODULES:
        raise argparse.ArgumentTypeError(f"a site has at most {SITE_MODULES} modules")
    return value


def outputs_per_module(text: str) -> int:
    """The number of outputs of every module of a new virtual site."""
    value = positive(text)
    if value > MODULE_OUTPUTS:
        raise argparse.ArgumentTypeError(f"a module has at most {MODULE_OUTPUTS} outputs")
    return value


def prefill_events(text: str) -> int:
    """The number of records pre-filled in each event log of a new virtual site."""
    value = non_negative(text)
    if value > EVENT_LOG_RECORDS:
        raise argparse.ArgumentTypeError(f"an event log holds at most {EVENT_LOG_RECORDS} records")
    return value


def max_clients(text: str) -> int:
    """How many TCP clients a bridge serves at once."""
    value = positive(text)
    if value > BRIDGE_CLIENTS:
        raise argparse.ArgumentTypeError(
            f"a bridge serves 1 to {BRIDGE_CLIENTS} clients (one link channel each)"
        )
    return value


def listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT for the bridge, as the bridge parses it (loaded only when given)."""
    parse = cast("Callable[[str], tuple[str, int]]", resolve("rayzig_core.bridge:parse_listen"))
    try:
        return parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def version_range(text: str) -> VersionRange:
    """Affected firmware versions: ``V``, ``FIRST..LAST`` or ``..LAST`` (loaded only when given)."""
    parse = cast(
        "Callable[[str], VersionRange]",
        resolve("rayzig_core.firmware.advisory:parse_version_range"),
    )
    try:
        return parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
