"""Transitional: the three names ``rayzig_core/cli.py`` still imports from this old module.

The gateway now lives in ``device/``; import from :mod:`rayzig_core.virtual_gateway` instead.
Delete this file together with those imports in cli.py.
"""

from __future__ import annotations

from rayzig_core.virtual_gateway.device.accounts import FACTORY_USER
from rayzig_core.virtual_gateway.device.gateway import FactorySecrets
from rayzig_core.virtual_gateway.device.identity import HARDWARE

__all__ = ["FACTORY_USER", "HARDWARE", "FactorySecrets"]
