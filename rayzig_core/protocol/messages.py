"""The message catalogue (PROTOCOL.md §5): typed requests, responses and notifications.

Every transport payload is one CBOR array ``[type, request_id, field...]``. Requests carry a request
id chosen by the client (unique per client for at least the replay window, PROTOCOL.md §5.3);
responses echo it; notifications use request id 0. Handshake payloads (§3) are bare dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from rayzig_core.errors import DecodeError
from rayzig_core.models import (
    EnrolledClient,
    Event,
    EventKind,
    FirmwarePart,
    FirmwareVersion,
    GatewayInfo,
    GatewayUser,
    Module,
    Output,
    RestorePreset,
    Telemetry,
    UserLevel,
    UserLimitation,
)
from rayzig_core.protocol import codec

PROTOCOL_VERSION = 1
"""Version of PROTOCOL.md this code implements; carried in handshake payloads."""


class ErrorCode(IntEnum):
    """Error codes of :class:`ErrorResponse` (PROTOCOL.md §9)."""

    BAD_REQUEST = 1
    NOT_AUTHENTICATED = 2
    PERMISSION_DENIED = 3
    PASSWORD_CHANGE_REQUIRED = 4
    PASSWORD_REJECTED = 5
    INVALID_CREDENTIALS = 6
    THROTTLED = 7
    NOT_FOUND = 8
    BUSY = 9
    CONFLICT = 10
    FIRMWARE_SIGNATURE = 11
    FIRMWARE_INTEGRITY = 12
    FIRMWARE_ROLLBACK = 13
    FIRMWARE_STATE = 14
    INTERNAL = 15
    REQUEST_ID_REUSED = 16
    OUTSIDE_LIMITATION = 17


# --- handshake payloads (PROTOCOL.md §3.2) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientHello:
    """Client's handshake payload: protocol version and a human name for the enrolled key."""

    protocol_version: int
    client_name: str


@dataclass(frozen=True, slots=True)
class GatewayHello:
    """Gateway's handshake payload: who it is and whether it knows the client's key."""

    protocol_version: int
    serial: str
    model: str
    factory_state: bool
    client_enrolled: bool
    max_frame: int


# --- base classes ----------------------------------------------------------------------------


class Message:
    """Base of every catalogue message; ``TYPE`` is its wire type code."""

    __slots__ = ()
    TYPE: ClassVar[int]


class Request(Message):
    """A client → gateway request (type codes 0x01–0x3F)."""

    __slots__ = ()
    MUTATING: ClassVar[bool] = False
    """Whether a retry must be answered from the replay cache instead of acting again."""


class Response(Message):
    """A gateway → client answer to one request (type codes 0x40–0x7F)."""

    __slots__ = ()


class Notification(Message):
    """A gateway → client push message, request id 0 (type codes 0x80–0xBF)."""

    __slots__ = ()


# --- requests (PROTOCOL.md §5.2) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping(Request):
    """Keep-alive; answered with Ok."""

    TYPE: ClassVar[int] = 0x01


@dataclass(frozen=True, slots=True)
class GetInfo(Request):
    """Ask for gateway identity, firmware and the session's user."""

    TYPE: ClassVar[int] = 0x02


@dataclass(frozen=True, slots=True)
class Pair(Request):
    """Prove a user's password and enrol this session's client key for that user (§3.3)."""

    TYPE: ClassVar[int] = 0x03
    MUTATING: ClassVar[bool] = True
    user: str
    password: str
    client_name: str


@dataclass(frozen=True, slots=True)
class ChangePassword(Request):
    """Change a user's password, proving the current one (allowed before pairing)."""

    TYPE: ClassVar[int] = 0x04
    MUTATING: ClassVar[bool] = True
    user: str
    old_password: str
    new_password: str


@dataclass(frozen=True, slots=True)
class RecoverPassword(Request):
    """Reset the System user's password with the site's recovery secret (§6.4)."""

    TYPE: ClassVar[int] = 0x05
    MUTATING: ClassVar[bool] = True
    recovery_secret: str
    new_password: str


@dataclass(frozen=True, slots=True)
class ListModules(Request):
    """Read one page of modules, starting at index ``start`` of the id-ordered list."""

    TYPE: ClassVar[int] = 0x06
    start: int


@dataclass(frozen=True, slots=True)
class SetOutput(Request):
    """Switch one output on or off."""

    TYPE: ClassVar[int] = 0x07
    MUTATING: ClassVar[bool] = True
    module_id: int
    output: int
    on: bool


@dataclass(frozen=True, slots=True)
class SetRestorePreset(Request):
    """Set what an output does when power returns."""

    TYPE: ClassVar[int] = 0x08
    MUTATING: ClassVar[bool] = True
    module_id: int
    output: int
    preset: RestorePreset


@dataclass(frozen=True, slots=True)
class GetTelemetry(Request):
    """Read a module's telemetry."""

    TYPE: ClassVar[int] = 0x09
    module_id: int


@dataclass(frozen=True, slots=True)
class ReadEvents(Request):
    """Read event-log records with seq > ``after_seq``, oldest first (§8.2)."""

    TYPE: ClassVar[int] = 0x0A
    module_id: int
    after_seq: int
    max_count: int


@dataclass(frozen=True, slots=True)
class ListUsers(Request):
    """List gateway users."""

    TYPE: ClassVar[int] = 0x0B


@dataclass(frozen=True, slots=True)
class AddUser(Request):
    """Create a user with an initial password that must pass the policy."""

    TYPE: ClassVar[int] = 0x0C
    MUTATING: ClassVar[bool] = True
    name: str
    level: UserLevel
    password: str


@dataclass(frozen=True, slots=True)
class DeleteUser(Request):
    """Delete a user and revoke every client key enrolled for it, at once."""

    TYPE: ClassVar[int] = 0x0D
    MUTATING: ClassVar[bool] = True
    name: str


@dataclass(frozen=True, slots=True)
class ListClients(Request):
    """Read one page of enrolled client keys, from index ``start`` of the id-ordered list."""

    TYPE: ClassVar[int] = 0x0E
    start: int = 0


@dataclass(frozen=True, slots=True)
class RevokeClient(Request):
    """Revoke an enrolled client key; client_id 0 means this session's own key."""

    TYPE: ClassVar[int] = 0x0F
    MUTATING: ClassVar[bool] = True
    client_id: int


@dataclass(frozen=True, slots=True)
class SetUtilityOutput(Request):
    """Mark whether the Utility user may switch an output."""

    TYPE: ClassVar[int] = 0x10
    MUTATING: ClassVar[bool] = True
    module_id: int
    output: int
    controllable: bool


@dataclass(frozen=True, slots=True)
class GetFirmware(Request):
    """Read installed firmware versions of every part."""

    TYPE: ClassVar[int] = 0x11


@dataclass(frozen=True, slots=True)
class FirmwareBegin(Request):
    """Start (or resume) installing a signed image: manifest and its Ed25519 signature (§10)."""

    TYPE: ClassVar[int] = 0x12
    MUTATING: ClassVar[bool] = True
    manifest: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class FirmwareChunk(Request):
    """One chunk of the image being installed, with its CRC-32 (§10.3)."""

    TYPE: ClassVar[int] = 0x13
    MUTATING: ClassVar[bool] = True
    part: FirmwarePart
    offset: int
    data: bytes
    crc32: int


@dataclass(frozen=True, slots=True)
class FirmwareCommit(Request):
    """Verify the complete image and apply it (§10.4)."""

    TYPE: ClassVar[int] = 0x14
    MUTATING: ClassVar[bool] = True
    part: FirmwarePart


@dataclass(frozen=True, slots=True)
class SetUserLimitation(Request):
    """Limit a User account to modules and outputs, or to reading; None lifts it (§7.4)."""

    TYPE: ClassVar[int] = 0x15
    MUTATING: ClassVar[bool] = True
    name: str
    limitation: UserLimitation | None


@dataclass(frozen=True, slots=True)
class GetUserLimitation(Request):
    """Read an account's limitation (§7.4); any account may read its own."""

    TYPE: ClassVar[int] = 0x16
    name: str


# --- responses ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ok(Response):
    """Plain success."""

    TYPE: ClassVar[int] = 0x40


@dataclass(frozen=True, slots=True)
class ErrorResponse(Response):
    """A refusal with a code, an English message and optional details (§9)."""

    TYPE: ClassVar[int] = 0x41
    code: ErrorCode
    message: str
    retry_after: float | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InfoResponse(Response):
    """Answer to GetInfo."""

    TYPE: ClassVar[int] = 0x42
    info: GatewayInfo


@dataclass(frozen=True, slots=True)
class Paired(Response):
    """Answer to Pair: the enrolled client id, user and level."""

    TYPE: ClassVar[int] = 0x43
    client_id: int
    user: str
    level: UserLevel


@dataclass(frozen=True, slots=True)
class ModulePage(Response):
    """One page of modules and the total count."""

    TYPE: ClassVar[int] = 0x44
    modules: tuple[Module, ...]
    total: int


@dataclass(frozen=True, slots=True)
class OutputResponse(Response):
    """An output's state after a request changed it (the gateway's acknowledgement)."""

    TYPE: ClassVar[int] = 0x45
    module_id: int
    output: Output


@dataclass(frozen=True, slots=True)
class TelemetryResponse(Response):
    """Answer to GetTelemetry."""

    TYPE: ClassVar[int] = 0x46
    module_id: int
    telemetry: Telemetry


@dataclass(frozen=True, slots=True)
class EventBatch(Response):
    """Answer to ReadEvents: records plus the ring's bounds, for gap detection (§8.2)."""

    TYPE: ClassVar[int] = 0x47
    module_id: int
    events: tuple[Event, ...]
    oldest_seq: int
    newest_seq: int


@dataclass(frozen=True, slots=True)
class UserList(Response):
    """Answer to ListUsers."""

    TYPE: ClassVar[int] = 0x48
    users: tuple[GatewayUser, ...]


@dataclass(frozen=True, slots=True)
class ClientList(Response):
    """Answer to ListClients: one page of enrolled keys and how many there are in all."""

    TYPE: ClassVar[int] = 0x49
    clients: tuple[EnrolledClient, ...]
    total: int = 0


@dataclass(frozen=True, slots=True)
class FirmwareList(Response):
    """Installed firmware versions."""

    TYPE: ClassVar[int] = 0x4A
    versions: tuple[FirmwareVersion, ...]


@dataclass(frozen=True, slots=True)
class FirmwareProgress(Response):
    """How much of an image the gateway holds: resume from ``offset``."""

    TYPE: ClassVar[int] = 0x4B
    part: FirmwarePart
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class UserLimitationResponse(Response):
    """Answer to GetUserLimitation: the account and its limitation (None: not limited)."""

    TYPE: ClassVar[int] = 0x4C
    name: str
    limitation: UserLimitation | None


# --- notifications (PROTOCOL.md §5.4) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputChanged(Notification):
    """An output changed state, by command, preset or repower."""

    TYPE: ClassVar[int] = 0x80
    module_id: int
    output: Output
    cause: EventKind


@dataclass(frozen=True, slots=True)
class EventsAvailable(Notification):
    """A module's event log has new records up to ``newest_seq``."""

    TYPE: ClassVar[int] = 0x81
    module_id: int
    newest_seq: int


@dataclass(frozen=True, slots=True)
class TelemetryChanged(Notification):
    """A module's telemetry changed (battery, link quality, reachability)."""

    TYPE: ClassVar[int] = 0x82
    module_id: int
    telemetry: Telemetry


@dataclass(frozen=True, slots=True)
class ModuleJoined(Notification):
    """A module joined the mesh."""

    TYPE: ClassVar[int] = 0x83
    module: Module


@dataclass(frozen=True, slots=True)
class ModuleLeft(Notification):
    """A module left the mesh."""

    TYPE: ClassVar[int] = 0x84
    module_id: int


@dataclass(frozen=True, slots=True)
class FirmwareChanged(Notification):
    """Installed firmware changed (after a commit)."""

    TYPE: ClassVar[int] = 0x85
    versions: tuple[FirmwareVersion, ...]


# --- envelope ----------------------------------------------------------------------------------

CATALOGUE: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Ping, GetInfo, Pair, ChangePassword, RecoverPassword, ListModules, SetOutput,
        SetRestorePreset, GetTelemetry, ReadEvents, ListUsers, AddUser, DeleteUser, ListClients,
        RevokeClient, SetUtilityOutput, GetFirmware, FirmwareBegin, FirmwareChunk, FirmwareCommit,
        SetUserLimitation, GetUserLimitation,
        Ok, ErrorResponse, InfoResponse, Paired, ModulePage, OutputResponse, TelemetryResponse,
        EventBatch, UserList, ClientList, FirmwareList, FirmwareProgress, UserLimitationResponse,
        OutputChanged, EventsAvailable, TelemetryChanged, ModuleJoined, ModuleLeft,
        FirmwareChanged,
    )
}  # fmt: skip

_BODY_ENCODERS = {code: codec.encoder_for(cls) for code, cls in CATALOGUE.items()}
_BODY_DECODERS = {code: codec.decoder_for(cls) for code, cls in CATALOGUE.items()}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A catalogue message with its request id: the plaintext of one transport frame."""

    request_id: int
    message: Message


def encode(request_id: int, message: Message) -> bytes:
    """Encode a message with its request id as ``[type, request_id, field...]`` CBOR."""
    body: list[Any] = _BODY_ENCODERS[message.TYPE](message)
    return codec.dumps([message.TYPE, request_id, *body])


def decode(payload: bytes) -> Envelope:
    """Decode one transport plaintext; DecodeError for anything not in the catalogue."""
    data = codec.loads(payload)
    if type(data) is not list or len(data) < 2:
        raise DecodeError("message is not an array of type and request id")
    type_code, request_id, *body = data
    decoder = _BODY_DECODERS.get(type_code) if type(type_code) is int else None
    if decoder is None:
        raise DecodeError("unknown message type")
    if type(request_id) is not int or not 0 <= request_id < 2**63:
        raise DecodeError("request id out of range")
    return Envelope(request_id, decoder(body))


def encode_hello(hello: ClientHello | GatewayHello) -> bytes:
    """Encode a handshake payload."""
    return codec.dumps(codec.encoder_for(type(hello))(hello))


def decode_client_hello(payload: bytes) -> ClientHello:
    """Decode a client's handshake payload."""
    result: ClientHello = codec.decoder_for(ClientHello)(codec.loads(payload))
    return result


def decode_gateway_hello(payload: bytes) -> GatewayHello:
    """Decode a gateway's handshake payload."""
    result: GatewayHello = codec.decoder_for(GatewayHello)(codec.loads(payload))
    return result
