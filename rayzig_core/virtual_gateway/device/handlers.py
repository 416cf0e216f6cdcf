"""Request handling: a table from request type to handler, with the permission each one needs.

Before a key is enrolled a session may only send the requests of :data:`PRE_AUTH_HANDLERS`
(PROTOCOL.md §6.1), and in factory state nothing else on any session. Every other request needs an
enrolled client whose user has changed the factory password, and the permission of §7.2 that
:data:`HANDLERS` names for it (None: the handler checks, because the answer depends on the
request's target, §7.3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any, TypeVar

from rayzig_core.firmware import SignedManifest
from rayzig_core.models import (
    EnrolledClient,
    Event,
    GatewayInfo,
    GatewayUser,
    Output,
    UserLevel,
    UserLimitation,
)
from rayzig_core.permissions import (
    LIMITABLE_LEVELS,
    Permission,
    allowed,
    permission_to_manage,
)
from rayzig_core.protocol import codec
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.session import fingerprint
from rayzig_core.virtual_gateway import credentials
from rayzig_core.virtual_gateway.device import auth
from rayzig_core.virtual_gateway.device.accounts import FACTORY_USER, MAX_USERS
from rayzig_core.virtual_gateway.device.answers import MAX_PLAINTEXT, RequestRefused
from rayzig_core.virtual_gateway.device.identity import MODEL
from rayzig_core.virtual_gateway.device.limitation import (
    checked_limitation,
    refuse_module,
    refuse_switching,
    visible_events,
    visible_modules,
)
from rayzig_core.virtual_gateway.device.password_work import Steps
from rayzig_core.virtual_gateway.device.state import POLICY_VERSION, ClientRecord, UserAccount

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.device.connection import GatewayConnection
    from rayzig_core.virtual_gateway.device.gateway import VirtualGateway
    from rayzig_core.virtual_gateway.site.site import Site

_T = TypeVar("_T")

MAX_EVENTS_PER_BATCH = 512
"""Most records one ReadEvents answer carries (§8.2)."""
_EVENT_ENCODER = codec.encoder_for(Event)
_ACCOUNT_MANAGEMENT = (
    Permission.MANAGE_USERS,
    Permission.MANAGE_UTILITY,
    Permission.MANAGE_ADMINS,
)
"""Permissions of which at least one is needed to delete any account at all (§7.3)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the link, its enrolled client and that client's user."""

    connection: GatewayConnection
    client: ClientRecord
    account: UserAccount

    @property
    def level(self) -> UserLevel:
        """The user's level (§7.1)."""
        return self.account.level

    def need(self, permission: Permission) -> None:
        """Refuse the request unless the user's level grants ``permission`` (§7.2)."""
        if not allowed(self.level, permission):
            raise RequestRefused(
                m.ErrorCode.PERMISSION_DENIED,
                f"The {self.level.name.title()} level does not allow this "
                f"({permission.value}); ask an Administrator or System user.",
            )


PreAuthHandler = Callable[["VirtualGateway", "GatewayConnection", Any], "m.Response | Steps"]
Handler = Callable[["VirtualGateway", Caller, Any], m.Response]

PRE_AUTH_HANDLERS: dict[type[m.Request], PreAuthHandler] = {
    m.Ping: lambda gateway, connection, request: m.Ok(),
    m.Pair: auth.pair,
    m.ChangePassword: auth.change_password,
    m.RecoverPassword: auth.recover,
}
"""Requests a session may send before its key is enrolled (PROTOCOL.md §6.1)."""
PRE_AUTH_REQUESTS: frozenset[type[m.Request]] = frozenset(PRE_AUTH_HANDLERS)


def dispatch(
    gateway: VirtualGateway, connection: GatewayConnection, request: m.Request
) -> m.Response | Steps:
    """Answer ``request`` on ``connection``, or return the steps that will (§6.5).

    Refusals raise :class:`RequestRefused`.
    """
    pre_auth = PRE_AUTH_HANDLERS.get(type(request))
    if pre_auth is not None:
        return pre_auth(gateway, connection, request)
    accounts = gateway.accounts
    if accounts.factory_state:
        # §6.1: in factory state nothing but setting the new password, on any session.
        raise RequestRefused(
            m.ErrorCode.PASSWORD_CHANGE_REQUIRED,
            f"The gateway is in factory state: set a new password for {FACTORY_USER!r} first.",
        )
    client = connection.client
    if client is None or accounts.clients.get(client.client_id) is not client:
        raise RequestRefused(
            m.ErrorCode.NOT_AUTHENTICATED, "This client is not paired: pair it first."
        )
    account = accounts.users.get(client.user)
    if account is None:  # pragma: no cover - deleting a user revokes its clients
        raise RequestRefused(m.ErrorCode.NOT_AUTHENTICATED, "The user no longer exists.")
    if account.must_change:
        raise RequestRefused(
            m.ErrorCode.PASSWORD_CHANGE_REQUIRED,
            "The factory password must be changed before anything else.",
        )
    route = HANDLERS.get(type(request))
    if route is None:
        raise RequestRefused(m.ErrorCode.BAD_REQUEST, "Unsupported request.")
    permission, handler = route
    caller = Caller(connection, client, account)
    if permission is not None:
        caller.need(permission)
    return handler(gateway, caller, request)


# --- reading (§5.2, §8.2) -----------------------------------------------------------------------


def _get_info(gateway: VirtualGateway, caller: Caller, request: m.GetInfo) -> m.Response:
    account = caller.account
    return m.InfoResponse(
        GatewayInfo(
            gateway.serial,
            MODEL,
            m.PROTOCOL_VERSION,
            gateway.fingerprint,
            gateway.firmware.versions(),
            account.name,
            account.level,
            account.policy_version < POLICY_VERSION,
        )
    )


def _fitting_page(
    items: Sequence[_T], start: int, answer: Callable[[tuple[_T, ...]], m.Response]
) -> tuple[_T, ...]:
    """The longest run of ``items`` from ``start`` whose ``answer`` fits a frame, at least one.

    Paged lists (ModulePage, ClientList) carry their total, so a client asks for the rest (§5.2).
    """
    page: tuple[_T, ...] = ()
    for item in items[max(start, 0) :]:
        if page and len(m.encode(2**62, answer((*page, item)))) > MAX_PLAINTEXT:
            break
        page = (*page, item)
    return page


def _list_modules(gateway: VirtualGateway, caller: Caller, request: m.ListModules) -> m.Response:
    """One page of the modules the caller sees, in id order (§5.2, §7.4)."""
    modules = visible_modules(caller.account.limitation, gateway.site.modules())
    page = _fitting_page(modules, request.start, lambda part: m.ModulePage(part, len(modules)))
    return m.ModulePage(page, len(modules))


def _get_telemetry(gateway: VirtualGateway, caller: Caller, request: m.GetTelemetry) -> m.Response:
    refuse_module(caller.account, request.module_id)
    return m.TelemetryResponse(request.module_id, gateway.site.module(request.module_id).telemetry)


def _read_events(gateway: VirtualGateway, caller: Caller, request: m.ReadEvents) -> m.Response:
    refuse_module(caller.account, request.module_id)
    return event_batch(gateway.site, request, caller.account.limitation)


def event_batch(
    site: Site, request: m.ReadEvents, limitation: UserLimitation | None = None
) -> m.EventBatch:
    """As many records as fit one frame (at least one), up to the batch limit (§8.2).

    A limited account gets only the records its limitation covers (§7.4).

    Each record is encoded once, in order, until the next one would not fit: a CBOR array
    is its head followed by its items, so the batch's size is the size of the empty batch
    plus the records plus the growth of the array head (one byte at 24 items, two at 256).
    Encoding the whole 512-record read and cutting it down cost about three times as much
    for a frame that holds about 150 records.
    """
    ring = site.ring(request.module_id)
    wanted = max(1, min(request.max_count, MAX_EVENTS_PER_BATCH))
    events = visible_events(limitation, ring, max(request.after_seq, 0), wanted)
    empty = m.EventBatch(request.module_id, (), ring.oldest_seq, ring.newest_seq)
    room = MAX_PLAINTEXT - len(m.encode(2**62, empty))
    # The records' sizes, summed, each record encoded once (lazily: the loop stops at the cut).
    used_by_count = accumulate(map(len, map(codec.dumps, map(_EVENT_ENCODER, events))))
    for count, used in enumerate(used_by_count):
        head_growth = 0 if count < 23 else 1 if count < 255 else 2  # for count + 1 items
        if count and used + head_growth > room:
            events = events[:count]
            break
    return m.EventBatch(request.module_id, tuple(events), ring.oldest_seq, ring.newest_seq)


def _get_firmware(gateway: VirtualGateway, caller: Caller, request: m.GetFirmware) -> m.Response:
    return m.FirmwareList(gateway.firmware.versions())


# --- outputs (§4.2, §7.2) -----------------------------------------------------------------------


def _output(gateway: VirtualGateway, module_id: int, index: int) -> Output:
    outputs = gateway.site.module(module_id).outputs
    for output in outputs:
        if output.index == index:
            return output
    raise RequestRefused(  # users count outputs from 1 (the index is 0-based, §4.2)
        m.ErrorCode.NOT_FOUND,
        f"Module {module_id} has no output {index + 1}: it has {len(outputs)}, numbered from 1.",
    )


def _set_output(gateway: VirtualGateway, caller: Caller, request: m.SetOutput) -> m.Response:
    """Switch an output: SWITCH, or SWITCH_UTILITY on an output marked utility-controllable."""
    if not allowed(caller.level, Permission.SWITCH):
        caller.need(Permission.SWITCH_UTILITY)
        if not _output(gateway, request.module_id, request.output).utility_controllable:
            raise RequestRefused(
                m.ErrorCode.PERMISSION_DENIED,
                "This output is not marked utility-controllable by the site owner.",
            )
    refuse_switching(caller.account, request.module_id, request.output)  # §7.4, after the level
    result = gateway.site.set_output(
        request.module_id, request.output, request.on, user=caller.account.name
    )
    return m.OutputResponse(request.module_id, result)


def _set_preset(gateway: VirtualGateway, caller: Caller, request: m.SetRestorePreset) -> m.Response:
    refuse_switching(caller.account, request.module_id, request.output)
    result = gateway.site.set_preset(
        request.module_id, request.output, request.preset, user=caller.account.name
    )
    return m.OutputResponse(request.module_id, result)


def _set_utility(
    gateway: VirtualGateway, caller: Caller, request: m.SetUtilityOutput
) -> m.Response:
    result = gateway.site.set_utility_controllable(
        request.module_id, request.output, request.controllable
    )
    return m.OutputResponse(request.module_id, result)


# --- accounts and clients (§7.3, §3.3) ----------------------------------------------------------


def _list_users(gateway: VirtualGateway, caller: Caller, request: m.ListUsers) -> m.Response:
    users = sorted(gateway.accounts.users.values(), key=lambda u: u.name)
    return m.UserList(tuple(GatewayUser(u.name, u.level) for u in users))


def _add_user(gateway: VirtualGateway, caller: Caller, request: m.AddUser) -> m.Response:
    """Create an account at a level the caller may manage, with a password the policy accepts."""
    caller.need(permission_to_manage(request.level))
    users = gateway.accounts.users
    name = request.name.strip()
    auth.check_user_name(name)
    if name in users:
        raise RequestRefused(m.ErrorCode.CONFLICT, f"User {name!r} already exists.")
    if len(users) >= MAX_USERS:
        raise RequestRefused(
            m.ErrorCode.CONFLICT,
            f"The gateway holds at most {MAX_USERS} users; delete one first.",
        )
    if request.level is UserLevel.UTILITY and any(
        u.level is UserLevel.UTILITY for u in users.values()
    ):
        raise RequestRefused(m.ErrorCode.CONFLICT, "The site already has a Utility user.")
    auth.refuse_weak_password(gateway, request.password, name)
    verifier = credentials.make_verifier(request.password, n=gateway.scrypt_n)
    users[name] = UserAccount(name, request.level, verifier)
    gateway.note_change(durable=True)
    return m.Ok()


def _delete_user(gateway: VirtualGateway, caller: Caller, request: m.DeleteUser) -> m.Response:
    """Delete an account the caller's level may manage, or its own; never the last System user.

    A User, Administrator or System session may delete its own account (§7.3, revision 2): a
    client that ends its use of a dedicated account takes the account with it. The Utility
    account stays the owner's to withdraw (§7.1).
    """
    auth.check_user_name(request.name)
    level = caller.level
    own = request.name == caller.account.name and level is not UserLevel.UTILITY
    if not own and not any(allowed(level, p) for p in _ACCOUNT_MANAGEMENT):
        # Before the look-up: a level that may delete no account learns nothing of names.
        raise RequestRefused(
            m.ErrorCode.PERMISSION_DENIED,
            f"The {level.name.title()} level cannot delete users; ask an Administrator "
            "or System user.",
        )
    users = gateway.accounts.users
    account = users.get(request.name)
    if account is None:
        raise RequestRefused(m.ErrorCode.NOT_FOUND, f"No user named {request.name!r}.")
    if not own and not allowed(level, permission_to_manage(account.level)):
        raise RequestRefused(
            m.ErrorCode.PERMISSION_DENIED,
            f"The {level.name.title()} level cannot delete a {account.level.name.title()} user.",
        )
    if account.level is UserLevel.SYSTEM and not any(
        u.level is UserLevel.SYSTEM and u.name != account.name for u in users.values()
    ):
        raise RequestRefused(m.ErrorCode.CONFLICT, "The last System user cannot be deleted.")
    gateway.accounts.remove_user(account.name)
    gateway.revoke_sessions(lambda c: c.user == account.name, caller.connection)
    gateway.note_change(durable=True)
    return m.Ok()


def _set_user_limitation(
    gateway: VirtualGateway, caller: Caller, request: m.SetUserLimitation
) -> m.Response:
    """Limit a User account, or lift its limitation; its open sessions start again (§7.4)."""
    auth.check_user_name(request.name)
    account = gateway.accounts.users.get(request.name)
    if account is None:
        raise RequestRefused(m.ErrorCode.NOT_FOUND, f"No user named {request.name!r}.")
    if account.level not in LIMITABLE_LEVELS:
        raise RequestRefused(
            m.ErrorCode.BAD_REQUEST,
            f"Only User accounts can be limited; {account.name!r} is a "
            f"{account.level.name.title()} user.",
        )
    limitation = checked_limitation(gateway.site, request.limitation)
    if limitation == account.limitation:
        return m.Ok()
    account.limitation = limitation
    gateway.note_change(durable=True)
    # Its clients reconnect and read what they may see now (their keys stay enrolled).
    gateway.revoke_sessions(lambda c: c.user == account.name, caller.connection)
    return m.Ok()


def _get_user_limitation(
    gateway: VirtualGateway, caller: Caller, request: m.GetUserLimitation
) -> m.Response:
    """An account's limitation: one's own always, another's with MANAGE_USERS (§7.4)."""
    auth.check_user_name(request.name)
    if request.name != caller.account.name:
        caller.need(Permission.MANAGE_USERS)  # before the look-up, as for DeleteUser
    account = gateway.accounts.users.get(request.name)
    if account is None:
        raise RequestRefused(m.ErrorCode.NOT_FOUND, f"No user named {request.name!r}.")
    return m.UserLimitationResponse(account.name, account.limitation)


def _list_clients(gateway: VirtualGateway, caller: Caller, request: m.ListClients) -> m.Response:
    """One page of enrolled clients in id order (§5.2)."""
    clients = gateway.accounts.clients
    entries = [
        EnrolledClient(
            record.client_id,
            record.name[: auth.MAX_CLIENT_NAME],  # names enrolled before the limit existed
            record.user,
            fingerprint(record.public_key),
        )
        for record in (clients[client_id] for client_id in sorted(clients))
    ]
    page = _fitting_page(entries, request.start, lambda part: m.ClientList(part, len(entries)))
    return m.ClientList(page, len(entries))


def _revoke_client(gateway: VirtualGateway, caller: Caller, request: m.RevokeClient) -> m.Response:
    """Revoke a key: one's own always, another's with MANAGE_CLIENTS over its user's level."""
    own_id = caller.client.client_id
    target_id = request.client_id or own_id
    if target_id != own_id:
        caller.need(Permission.MANAGE_CLIENTS)
    accounts = gateway.accounts
    target = accounts.clients.get(target_id)
    if target is None:
        raise RequestRefused(m.ErrorCode.NOT_FOUND, f"No client with id {target_id}.")
    owner = accounts.users.get(target.user)
    # Another account's key: only a level that may manage that account (§7.3).
    if (
        target.user != caller.account.name
        and owner is not None
        and not allowed(caller.level, permission_to_manage(owner.level))
    ):
        raise RequestRefused(
            m.ErrorCode.PERMISSION_DENIED,
            f"The {caller.level.name.title()} level cannot revoke the keys of a "
            f"{owner.level.name.title()} user.",
        )
    del accounts.clients[target_id]
    gateway.note_change(durable=True)
    gateway.revoke_sessions(lambda c: c.client_id == target_id, caller.connection)
    return m.Ok()


# --- firmware (§10) -----------------------------------------------------------------------------


def _firmware_begin(
    gateway: VirtualGateway, caller: Caller, request: m.FirmwareBegin
) -> m.Response:
    part, offset, size = gateway.firmware.begin(SignedManifest(request.manifest, request.signature))
    gateway.note_change()
    return m.FirmwareProgress(part, offset, size)


def _firmware_chunk(
    gateway: VirtualGateway, caller: Caller, request: m.FirmwareChunk
) -> m.Response:
    part, offset, size = gateway.firmware.chunk(
        request.part, request.offset, request.data, request.crc32
    )
    gateway.note_change()
    return m.FirmwareProgress(part, offset, size)


def _firmware_commit(
    gateway: VirtualGateway, caller: Caller, request: m.FirmwareCommit
) -> m.Response:
    gateway.firmware.commit(request.part)
    versions = gateway.firmware.versions()
    gateway.note_change(durable=True)
    gateway.broadcast(m.FirmwareChanged(versions))
    return m.FirmwareList(versions)


HANDLERS: dict[type[m.Request], tuple[Permission | None, Handler]] = {
    m.GetInfo: (None, _get_info),  # every level may ask who it is
    m.ListModules: (Permission.READ, _list_modules),
    m.GetTelemetry: (Permission.READ, _get_telemetry),
    m.ReadEvents: (Permission.READ_EVENTS, _read_events),
    m.SetOutput: (None, _set_output),
    m.SetRestorePreset: (Permission.SET_PRESET, _set_preset),
    m.SetUtilityOutput: (Permission.MANAGE_UTILITY, _set_utility),
    m.ListUsers: (Permission.MANAGE_USERS, _list_users),
    m.AddUser: (None, _add_user),
    m.DeleteUser: (None, _delete_user),
    m.SetUserLimitation: (Permission.MANAGE_USERS, _set_user_limitation),
    m.GetUserLimitation: (None, _get_user_limitation),
    m.ListClients: (Permission.MANAGE_CLIENTS, _list_clients),
    m.RevokeClient: (None, _revoke_client),
    m.GetFirmware: (Permission.READ, _get_firmware),
    m.FirmwareBegin: (Permission.FIRMWARE, _firmware_begin),
    m.FirmwareChunk: (Permission.FIRMWARE, _firmware_chunk),
    m.FirmwareCommit: (Permission.FIRMWARE, _firmware_commit),
}
"""Authenticated requests: the permission each needs (§7.2) and its handler."""
