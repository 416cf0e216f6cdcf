"""Moved to rayzig_core.firmware.install; import from rayzig_core.firmware (removed at merge)."""

# removed at merge: use rayzig_core.firmware
from rayzig_core.firmware import CHUNK_SIZE, ProgressCallback, install_firmware

__all__ = ["CHUNK_SIZE", "ProgressCallback", "install_firmware"]
