"""The limits of a simulated site: module count, module ids, outputs, names (PROTOCOL.md §4)."""

from __future__ import annotations

MAX_MODULES = 250
"""Most modules one site (one gateway) can hold at a time."""
MAX_MODULE_ID = 65535
"""Largest module id. Ids are handed out in order and never reused within a site's lifetime, so
an id (a client's event cursor, an entity) can never come to mean another module (§4.1)."""
MAX_OUTPUTS = 8
"""Most power outputs one module can have."""
MAX_NAME_LENGTH = 64
"""Longest module name the site accepts."""
