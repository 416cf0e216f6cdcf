"""PROTOCOL.md Appendix A is regenerated from the code: any difference fails.

The A.4 script in the document is run as written (in a subprocess, since it swaps the ephemeral key
source), the remaining values (public keys, fingerprints, hello payloads, the A.2 envelopes) are
computed here, and every hex value of A.1-A.3 must be one of them, and each of them must be there.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rayzig_core.models import (
    Event,
    EventKind,
    Output,
    OutputRef,
    RestorePreset,
    UserLimitation,
)
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.noise import public_key_of
from rayzig_core.protocol.session import fingerprint

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
APPENDIX = PROTOCOL[PROTOCOL.index("## Appendix A") : PROTOCOL.index("## Appendix B")]
EXAMPLES = APPENDIX[: APPENDIX.index("### A.4")]
SCRIPT = re.search(r"```python\n(.*?)```", APPENDIX[APPENDIX.index("### A.4") :], re.S)


def _key(start: int) -> bytes:
    return bytes(range(start, start + 32))


def _compact(text: str) -> str:
    """The text with the spaces and line breaks that group hex digits removed."""
    return re.sub(r"(?<=[0-9a-f])[ \n]+(?=[0-9a-f])", "", text)


def _script_output() -> str:
    assert SCRIPT is not None, "A.4 has no python block"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.group(1)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _generated() -> dict[str, str]:
    """Every value Appendix A shows, by name, computed from the code."""
    values: dict[str, str] = {}
    out = _script_output().splitlines()
    values["gateway fingerprint"] = out[0].removeprefix("gateway fingerprint ")
    pattern = ""
    for line in out[1:]:
        if line.startswith(("XX ", "IK ")):
            pattern, *fields = line.split()
            named = dict(zip(fields[::2], fields[1::2], strict=True))
            for name in ("hash", "k1", "k2"):
                values[f"{pattern} {name}"] = named[name]
            frame_no = 0
        elif pattern and not line.startswith("82"):
            frame_no += 1
            values[f"{pattern} frame {frame_no}"] = line
        else:
            ping1, ping_1234 = line.split()
            values["Ping id 1"], values["Ping id 0x1234"] = ping1, ping_1234
    for name, start in (("gateway", 0x00), ("client", 0x20)):
        values[f"{name} static private"] = _key(start).hex()
        values[f"{name} static public"] = public_key_of(_key(start)).hex()
    values["client fingerprint"] = fingerprint(public_key_of(_key(0x20)))
    for name, start in (("client", 0x40), ("gateway", 0x60)):
        values[f"{name} ephemeral private"] = _key(start).hex()
        values[f"{name} ephemeral public"] = public_key_of(_key(start)).hex()
    values["ClientHello"] = m.encode_hello(m.ClientHello(1, "rayzig_core")).hex()
    for enrolled in (False, True):
        hello = m.GatewayHello(1, "RG1-0A1B2C3D", "Rayzig Gateway RG-1", False, enrolled, 4096)
        values[f"GatewayHello enrolled={enrolled}"] = m.encode_hello(hello).hex()
    output = Output(0, "Kitchen sockets", True, RestorePreset.LAST, False)
    envelopes = {
        "SetOutput": (0x1234, m.SetOutput(3, 0, True)),
        "OutputResponse": (0x1234, m.OutputResponse(3, output)),
        "OutputChanged": (0, m.OutputChanged(3, output, EventKind.COMMAND)),
        "SetUserLimitation": (
            0x1236,
            m.SetUserLimitation("guest", UserLimitation((3,), (OutputRef(5, 1),), read_only=True)),
        ),
        "ReadEvents": (9, m.ReadEvents(3, 41, 512)),
        "EventBatch": (
            9,
            m.EventBatch(
                3, (Event(3, 42, 1795000000.5, EventKind.COMMAND, 0, "alice", True, 0),), 1, 42
            ),
        ),
        "Throttled": (
            0x1235,
            m.ErrorResponse(
                m.ErrorCode.THROTTLED, "Too many failed attempts; try again in 8 seconds.", 8.0
            ),
        ),
        "PasswordRejected": (
            7,
            m.ErrorResponse(
                m.ErrorCode.PASSWORD_REJECTED,
                "Password rejected: Use at least 15 characters.",
                None,
                ("too_short",),
            ),
        ),
    }
    for name, (request_id, message) in envelopes.items():
        values[f"{name} envelope"] = m.encode(request_id, message).hex()
    return values


GENERATED = _generated()


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_every_generated_value_is_in_appendix_a(name: str) -> None:
    value = GENERATED[name]
    compact = _compact(EXAMPLES)
    if len(value) <= 64 or "-" in value:
        assert value in compact, f"{name} {value} is not in Appendix A"
        return
    # Long envelopes are shown with the middle of a text string elided ("…").
    shown = [
        cell.replace(" ", "")
        for cell in re.findall(r"`([0-9a-f …]{20,})`", EXAMPLES)
        if value.startswith(cell.replace(" ", "").split("…")[0])
    ]
    assert value in compact or any(
        value.endswith(cell.split("…")[-1]) for cell in shown if "…" in cell
    ), f"{name} {value} is not in Appendix A"


def test_appendix_a_shows_no_value_the_code_does_not_produce() -> None:
    produced = "\n".join(GENERATED.values())
    # Runs of hex bytes anywhere in A.1-A.3 (code blocks, tables, prose), split at elisions.
    for run in re.findall(r"(?:\b[0-9a-f]{2,}\b[ \n]?|…){4,}", EXAMPLES):
        for part in run.split("…"):
            token = _compact(part).strip()
            if len(token) >= 16:
                assert token in produced, (
                    f"Appendix A shows {token}, which the code does not produce"
                )
