"""Domain data of a Rayzig site: modules, outputs, telemetry, events, users (PROTOCOL.md §4, §7-8).

These frozen dataclasses are both the public API of :mod:`rayzig_core` and the bodies of wire
messages (:mod:`rayzig_core.protocol.codec` encodes them field by field, in declaration
order).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

MAX_EVENTS_PER_MODULE = 8192
"""Capacity of a module's event-log ring (PROTOCOL.md §8)."""


class ModuleKind(IntEnum):
    """How a module is powered (PROTOCOL.md §4.1)."""

    MAINS = 1
    DC_12V = 2
    BATTERY = 3


class RestorePreset(IntEnum):
    """What an output does when power returns after an outage (PROTOCOL.md §4.2)."""

    OFF = 0
    ON = 1
    LAST = 2


class UserLevel(IntEnum):
    """Access level of a gateway user (PROTOCOL.md §7); Utility sits outside the hierarchy."""

    USER = 1
    ADMINISTRATOR = 2
    SYSTEM = 3
    UTILITY = 4


class FirmwarePart(IntEnum):
    """Firmware parts of a Rayzig installation (PROTOCOL.md §10)."""

    RAYZIG = 1
    RAXMEGA = 2
    RAYDAL = 3
    WBXMEGA = 4
    TFT = 5


class EventKind(IntEnum):
    """Kind of an event-log record (PROTOCOL.md §8.1)."""

    POWER_ON = 1
    COMMAND = 2
    REPOWER = 3
    PRESET_APPLIED = 4
    BATTERY_LOW = 5
    JOINED = 6
    LEFT = 7
    GAP = 255
    """Synthesised by the client: ``lost`` records were overwritten before they were read."""


class ConnectionState(IntEnum):
    """State of a :class:`~rayzig_core.client.RayzigClient` connection."""

    DISCONNECTED = 0
    CONNECTING = 1
    CONNECTED = 2
    BACKOFF = 3
    AUTH_FAILED = 4
    CLOSED = 5


@dataclass(frozen=True, slots=True)
class Output:
    """One power output of a module and its current state (PROTOCOL.md §4.2)."""

    index: int
    name: str
    is_on: bool
    preset: RestorePreset
    utility_controllable: bool


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Telemetry of a module (PROTOCOL.md §4.3); battery fields are None on mains/DC modules."""

    link_quality: int
    """Link quality 0–255 (LQI)."""
    battery_percent: int | None
    battery_minimum_percent: int | None
    """The designated minimum below which the module reports battery low."""
    reachable: bool

    @property
    def battery_low(self) -> bool | None:
        """Whether the battery is at or below its designated minimum (None without a battery)."""
        if self.battery_percent is None or self.battery_minimum_percent is None:
            return None
        return self.battery_percent <= self.battery_minimum_percent


@dataclass(frozen=True, slots=True)
class FirmwareVersion:
    """Installed firmware of one part (PROTOCOL.md §10)."""

    part: FirmwarePart
    version: str
    security_version: int


@dataclass(frozen=True, slots=True)
class Module:
    """A module in the mesh with its outputs and telemetry (PROTOCOL.md §4.1)."""

    module_id: int
    serial: str
    name: str
    kind: ModuleKind
    model: str
    firmware: str
    outputs: tuple[Output, ...]
    telemetry: Telemetry
    event_seq: int
    """Sequence number of the newest event in this module's log (0 if none yet)."""
    event_count: int
    """Events currently held in the ring (at most MAX_EVENTS_PER_MODULE)."""

    def output(self, index: int) -> Output | None:
        """The output with this 0-based index, if the module shows it.

        Look outputs up by index, not by position: an account limited to some of a module's
        outputs sees only those (PROTOCOL.md §4.1, §7.4).
        """
        for output in self.outputs:
            if output.index == index:
                return output
        return None


@dataclass(frozen=True, slots=True)
class Event:
    """One event-log record (PROTOCOL.md §8.1)."""

    module_id: int
    seq: int
    timestamp: float
    """Module's own time of the event, seconds since the Unix epoch (UTC)."""
    kind: EventKind
    output: int | None
    """Output index the event concerns, None for module-wide events."""
    user: str | None
    """Acting user for COMMAND events."""
    is_on: bool | None
    """Output state after the event, where it applies."""
    lost: int = 0
    """For GAP records only: how many events were overwritten unread."""


@dataclass(frozen=True, slots=True)
class GatewayUser:
    """A user account on the gateway (PROTOCOL.md §7); never carries a password."""

    name: str
    level: UserLevel


@dataclass(frozen=True, slots=True)
class OutputRef:
    """One output of one module, as a user limitation names it (PROTOCOL.md §7.4)."""

    module_id: int
    output: int
    """0-based output index (people count from 1)."""


@dataclass(frozen=True, slots=True)
class UserLimitation:
    """What a limited User account may see and switch (PROTOCOL.md §7.4).

    An account without a limitation (None) is limited only by its level. The scope is the whole
    ``modules`` plus the single ``outputs``, or every module with ``all_modules``; ``read_only``
    forbids switching within it. Outside the scope the account sees nothing.
    """

    modules: tuple[int, ...] = ()
    """Modules the account may use with every output."""
    outputs: tuple[OutputRef, ...] = ()
    """Single outputs the account may use (their modules show only these outputs)."""
    read_only: bool = False
    """The account may read what its scope shows but switch nothing."""
    all_modules: bool = False
    """The scope is the whole site, now and as modules join (``modules`` and ``outputs`` empty)."""

    def covers_module(self, module_id: int) -> bool:
        """Whether the account sees the module (all of it or some of its outputs)."""
        return (
            self.all_modules
            or module_id in self.modules
            or any(ref.module_id == module_id for ref in self.outputs)
        )

    def covers_output(self, module_id: int, output: int) -> bool:
        """Whether the account sees output ``output`` (0-based) of the module."""
        return (
            self.all_modules
            or module_id in self.modules
            or OutputRef(module_id, output) in self.outputs
        )


@dataclass(frozen=True, slots=True)
class EnrolledClient:
    """A client key enrolled by pairing (PROTOCOL.md §3.3)."""

    client_id: int
    name: str
    user: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """What an authenticated session learns about the gateway (PROTOCOL.md §5.2)."""

    serial: str
    model: str
    protocol_version: int
    fingerprint: str
    firmware: tuple[FirmwareVersion, ...]
    user: str
    level: UserLevel
    weak_password: bool
    """The gateway still holds a password that fails the current policy for this user."""
