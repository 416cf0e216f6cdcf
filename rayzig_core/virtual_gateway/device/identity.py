"""What the simulated device is: its model, its hardware name and the firmware it ships with."""

from __future__ import annotations

from rayzig_core.models import FirmwarePart

MODEL = "Rayzig Gateway RG-1"
"""The model a gateway reports in its handshake and GetInfo (PROTOCOL.md §3.2, §5.2)."""
HARDWARE = "RZ-GW1"
"""Hardware name signed firmware manifests must name (PROTOCOL.md §10); the manifest grammar
allows no spaces, so the display MODEL cannot serve."""
DEFAULT_FIRMWARE = {
    FirmwarePart.RAYZIG: ("2.4.1", 3),
    FirmwarePart.RAXMEGA: ("1.9.0", 2),
    FirmwarePart.RAYDAL: ("1.2.3", 1),
    FirmwarePart.WBXMEGA: ("3.0.2", 4),
    FirmwarePart.TFT: ("1.0.7", 1),
}
"""Version and security version of each part of a factory-new gateway (§10.1)."""
