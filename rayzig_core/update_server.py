"""Moved to rayzig_core.firmware.server; import from rayzig_core.firmware (removed at merge)."""

# removed at merge: use rayzig_core.firmware
from rayzig_core.firmware import make_app, serve

__all__ = ["make_app", "serve"]
