"""User levels and the permission matrix (PROTOCOL.md §7), shared by gateway and clients.

The gateway enforces it; clients use it to explain a refusal before sending a request. A User
account may be limited further to modules and outputs (PROTOCOL.md §7.4, ``UserLimitation``).
"""

from __future__ import annotations

from enum import StrEnum

from rayzig_core.models import UserLevel


class Permission(StrEnum):
    """One thing a user may be allowed to do (PROTOCOL.md §7.2)."""

    READ = "read"
    """Module list, output states, telemetry and firmware versions."""
    READ_EVENTS = "read_events"
    SWITCH = "switch"
    """Switch any output."""
    SWITCH_UTILITY = "switch_utility"
    """Switch only outputs the owner marked utility-controllable."""
    SET_PRESET = "set_preset"
    MANAGE_USERS = "manage_users"
    """Add and delete User-level accounts and set their limitations; list users."""
    MANAGE_UTILITY = "manage_utility"
    """Create and withdraw the Utility user; mark utility-controllable outputs."""
    MANAGE_CLIENTS = "manage_clients"
    """List and revoke other clients' enrolled keys."""
    MANAGE_ADMINS = "manage_admins"
    """Add and delete Administrator and System accounts."""
    FIRMWARE = "firmware"
    SYSTEM_SETTINGS = "system_settings"


_USER = frozenset({Permission.READ, Permission.READ_EVENTS, Permission.SWITCH})
_ADMINISTRATOR = _USER | {
    Permission.SET_PRESET,
    Permission.MANAGE_USERS,
    Permission.MANAGE_UTILITY,
    Permission.MANAGE_CLIENTS,
}
_SYSTEM = _ADMINISTRATOR | {
    Permission.MANAGE_ADMINS,
    Permission.FIRMWARE,
    Permission.SYSTEM_SETTINGS,
}
_UTILITY = frozenset({Permission.READ, Permission.READ_EVENTS, Permission.SWITCH_UTILITY})

PERMISSIONS: dict[UserLevel, frozenset[Permission]] = {
    UserLevel.USER: _USER,
    UserLevel.ADMINISTRATOR: frozenset(_ADMINISTRATOR),
    UserLevel.SYSTEM: frozenset(_SYSTEM),
    UserLevel.UTILITY: _UTILITY,
}
"""The permission matrix: what each level may do (PROTOCOL.md §7.2)."""


LIMITABLE_LEVELS: frozenset[UserLevel] = frozenset({UserLevel.USER})
"""Levels whose accounts an Administrator may limit to modules and outputs (PROTOCOL.md §7.4)."""


def allowed(level: UserLevel, permission: Permission) -> bool:
    """Whether a user of ``level`` holds ``permission``."""
    return permission in PERMISSIONS[level]


def permission_to_manage(level: UserLevel) -> Permission:
    """The permission needed to add or delete an account of ``level`` (PROTOCOL.md §7.3)."""
    if level is UserLevel.USER:
        return Permission.MANAGE_USERS
    if level is UserLevel.UTILITY:
        return Permission.MANAGE_UTILITY
    return Permission.MANAGE_ADMINS
