"""rayzig_core: talk to a Rayzig gateway. This package's names are the library's public API.

Import from here (``from rayzig_core import RayzigClient, TcpConnector``), not from the modules
behind it, which may move. Everything is loaded on first use (PEP 562): importing
``rayzig_core.protocol.frames`` or ``rayzig_core.bridge`` on the single-board computer does not
load the client, aiohttp, zeroconf or smbus2 through this package, ``I2CConnector`` loads the I2C
transport only when it is looked up, and smbus2 is imported only when a transport opens its bus.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_MODULES: dict[str, tuple[str, ...]] = {
    # the client
    "rayzig_core.client": ("ClientStats", "RayzigClient"),
    # what first contact and pairing give it (PROTOCOL.md §3.3, §3.4)
    "rayzig_core.pairing": ("ClientCredentials", "GatewayIdentity"),
    # connectors: how the client reaches a gateway
    "rayzig_core.transport.base": ("Connector", "Transport"),
    "rayzig_core.transport.tcp": ("TcpConnector",),
    # looked up only where an I2C connector is built (smbus2 loads when one connects)
    "rayzig_core.transport.i2c": ("I2CConnector",),
    # the site's data
    "rayzig_core.models": (
        "ConnectionState",
        "EnrolledClient",
        "Event",
        "EventKind",
        "FirmwarePart",
        "FirmwareVersion",
        "GatewayInfo",
        "GatewayUser",
        "MAX_EVENTS_PER_MODULE",
        "Module",
        "ModuleKind",
        "Output",
        "OutputRef",
        "RestorePreset",
        "Telemetry",
        "UserLevel",
        "UserLimitation",
    ),
    # RayzigError and what a caller handles; RayzigInternalError is a bug
    "rayzig_core.errors": (
        "AuthenticationError",
        "ClientRevokedError",
        "ConnectionFailedError",
        "DecodeError",
        "DecryptError",
        "DeviceNotFoundError",
        "DevicePermissionError",
        "FirmwareError",
        "FirmwareIntegrityError",
        "FirmwareRollbackError",
        "FirmwareSignatureError",
        "FrameError",
        "GatewayBusyError",
        "GatewayKeyChangedError",
        "HandshakeError",
        "InvalidCredentialsError",
        "InvalidRequestError",
        "NotFoundError",
        "OutsideLimitationError",
        "PasswordChangeRequiredError",
        "PasswordRejectedError",
        "PermissionDeniedError",
        "ProtocolError",
        "RayzigError",
        "RayzigInternalError",
        "RequestError",
        "RequestIdReusedError",
        "RequestTimeoutError",
        "SessionClosedError",
        "ThrottledError",
        "TransportError",
    ),
    # what RayzigClient.subscribe delivers (PROTOCOL.md §5.4), read_events returns (§8.2)
    # and RequestError.code holds (§9); no frame, codec or handshake internals
    "rayzig_core.protocol.messages": (
        "ErrorCode",
        "EventBatch",
        "EventsAvailable",
        "FirmwareChanged",
        "ModuleJoined",
        "ModuleLeft",
        "Notification",
        "OutputChanged",
        "TelemetryChanged",
    ),
    # event-log import from a caller-persisted cursor (PROTOCOL.md §8.2)
    "rayzig_core.eventlog": ("EventLogSync",),
    # outputs' on-time and switching cycles folded from event logs (PROTOCOL.md §8.3)
    "rayzig_core.runtime_stats": ("HOUR_SECONDS", "HourRow", "ModuleRuntime", "OutputRuntime"),
    # dataclasses to and from JSON-compatible values, for a caller's own store
    "rayzig_core.storage": ("JsonCodec",),
    # user levels' permissions (PROTOCOL.md §7)
    "rayzig_core.permissions": (
        "LIMITABLE_LEVELS",
        "PERMISSIONS",
        "Permission",
        "allowed",
        "permission_to_manage",
    ),
    # the password policy (PROTOCOL.md §6.2)
    "rayzig_core.password_policy": ("PolicyViolation", "check_password"),
    # signed firmware and the update server (PROTOCOL.md §10)
    "rayzig_core.firmware": (
        "AdvisorySeverity",
        "CatalogueEntry",
        "FirmwareAdvisory",
        "UpdateServerClient",
        "affecting",
        "install_disruption",
        "install_firmware",
        "version_key",
    ),
}
"""The module behind each public name; the imports under TYPE_CHECKING below say the same."""

_EXPORTS: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "HOUR_SECONDS",
    "LIMITABLE_LEVELS",
    "MAX_EVENTS_PER_MODULE",
    "PERMISSIONS",
    "AdvisorySeverity",
    "AuthenticationError",
    "CatalogueEntry",
    "ClientCredentials",
    "ClientRevokedError",
    "ClientStats",
    "ConnectionFailedError",
    "ConnectionState",
    "Connector",
    "DecodeError",
    "DecryptError",
    "DeviceNotFoundError",
    "DevicePermissionError",
    "EnrolledClient",
    "ErrorCode",
    "Event",
    "EventBatch",
    "EventKind",
    "EventLogSync",
    "EventsAvailable",
    "FirmwareAdvisory",
    "FirmwareChanged",
    "FirmwareError",
    "FirmwareIntegrityError",
    "FirmwarePart",
    "FirmwareRollbackError",
    "FirmwareSignatureError",
    "FirmwareVersion",
    "FrameError",
    "GatewayBusyError",
    "GatewayIdentity",
    "GatewayInfo",
    "GatewayKeyChangedError",
    "GatewayUser",
    "HandshakeError",
    "HourRow",
    "I2CConnector",
    "InvalidCredentialsError",
    "InvalidRequestError",
    "JsonCodec",
    "Module",
    "ModuleJoined",
    "ModuleKind",
    "ModuleLeft",
    "ModuleRuntime",
    "NotFoundError",
    "Notification",
    "Output",
    "OutputChanged",
    "OutputRef",
    "OutputRuntime",
    "OutsideLimitationError",
    "PasswordChangeRequiredError",
    "PasswordRejectedError",
    "Permission",
    "PermissionDeniedError",
    "PolicyViolation",
    "ProtocolError",
    "RayzigClient",
    "RayzigError",
    "RayzigInternalError",
    "RequestError",
    "RequestIdReusedError",
    "RequestTimeoutError",
    "RestorePreset",
    "SessionClosedError",
    "TcpConnector",
    "Telemetry",
    "TelemetryChanged",
    "ThrottledError",
    "Transport",
    "TransportError",
    "UpdateServerClient",
    "UserLevel",
    "UserLimitation",
    "affecting",
    "allowed",
    "check_password",
    "install_disruption",
    "install_firmware",
    "permission_to_manage",
    "version_key",
]

if TYPE_CHECKING:
    from rayzig_core.client import ClientStats, RayzigClient
    from rayzig_core.errors import (
        AuthenticationError,
        ClientRevokedError,
        ConnectionFailedError,
        DecodeError,
        DecryptError,
        DeviceNotFoundError,
        DevicePermissionError,
        FirmwareError,
        FirmwareIntegrityError,
        FirmwareRollbackError,
        FirmwareSignatureError,
        FrameError,
        GatewayBusyError,
        GatewayKeyChangedError,
        HandshakeError,
        InvalidCredentialsError,
        InvalidRequestError,
        NotFoundError,
        OutsideLimitationError,
        PasswordChangeRequiredError,
        PasswordRejectedError,
        PermissionDeniedError,
        ProtocolError,
        RayzigError,
        RayzigInternalError,
        RequestError,
        RequestIdReusedError,
        RequestTimeoutError,
        SessionClosedError,
        ThrottledError,
        TransportError,
    )
    from rayzig_core.eventlog import EventLogSync
    from rayzig_core.firmware import (
        AdvisorySeverity,
        CatalogueEntry,
        FirmwareAdvisory,
        UpdateServerClient,
        affecting,
        install_disruption,
        install_firmware,
        version_key,
    )
    from rayzig_core.models import (
        MAX_EVENTS_PER_MODULE,
        ConnectionState,
        EnrolledClient,
        Event,
        EventKind,
        FirmwarePart,
        FirmwareVersion,
        GatewayInfo,
        GatewayUser,
        Module,
        ModuleKind,
        Output,
        OutputRef,
        RestorePreset,
        Telemetry,
        UserLevel,
        UserLimitation,
    )
    from rayzig_core.pairing import ClientCredentials, GatewayIdentity
    from rayzig_core.password_policy import PolicyViolation, check_password
    from rayzig_core.permissions import (
        LIMITABLE_LEVELS,
        PERMISSIONS,
        Permission,
        allowed,
        permission_to_manage,
    )
    from rayzig_core.protocol.messages import (
        ErrorCode,
        EventBatch,
        EventsAvailable,
        FirmwareChanged,
        ModuleJoined,
        ModuleLeft,
        Notification,
        OutputChanged,
        TelemetryChanged,
    )
    from rayzig_core.runtime_stats import HOUR_SECONDS, HourRow, ModuleRuntime, OutputRuntime
    from rayzig_core.storage import JsonCodec
    from rayzig_core.transport.base import Connector, Transport
    from rayzig_core.transport.i2c import I2CConnector
    from rayzig_core.transport.tcp import TcpConnector


def _load(name: str) -> object:
    """Import the module behind public ``name`` and return the name's value (not cached)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rayzig_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if not TYPE_CHECKING:
    # Type checkers see the imports above; at run time every public name is loaded on first use.
    __getattr__ = _load
