"""The virtual gateway's brain: identity, users, enrolled clients and request handling.

Transport-agnostic and synchronous: a transport (TCP server, fake I2C device) calls
:meth:`VirtualGateway.attach` per link and feeds frames in; replies and notifications leave through
the ``send_frame`` callable it passed. Everything PROTOCOL.md asks of a gateway is enforced here:
handshakes (§3), pairing and the factory password (§6), throttling (§6.3), the permission matrix
(§7), the replay cache that makes retried commands act once (§5.3) and firmware installs (§10).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from rayzig_core.errors import (
    FirmwareError,
    HandshakeError,
    ProtocolError,
    RequestError,
    SessionClosedError,
)
from rayzig_core.firmware import SignedManifest, generate_signing_key
from rayzig_core.models import (
    EnrolledClient,
    Event,
    FirmwarePart,
    FirmwareVersion,
    GatewayInfo,
    GatewayUser,
    UserLevel,
)
from rayzig_core.password_policy import PolicyViolation, check_password, fold_password
from rayzig_core.permissions import Permission, allowed, permission_to_manage
from rayzig_core.protocol import codec
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import MAX_FRAME
from rayzig_core.protocol.noise import generate_keypair, public_key_of
from rayzig_core.protocol.session import ResponderHandshake, SecureChannel, fingerprint
from rayzig_core.virtual_gateway import credentials
from rayzig_core.virtual_gateway.credentials import PasswordVerifier, Throttle
from rayzig_core.virtual_gateway.firmware_store import FirmwareStore
from rayzig_core.virtual_gateway.site import (
    EventsAppended,
    ModuleJoined,
    ModuleLeft,
    Site,
    SiteChange,
    TelemetryChanged,
)
from rayzig_core.virtual_gateway.site import OutputChanged as SiteOutputChanged

_LOGGER = logging.getLogger(__name__)

FACTORY_USER = "installer"
"""The System-level account a gateway ships with (PROTOCOL.md §6.1)."""
MODEL = "Rayzig Gateway RG-1"
HARDWARE = "RZ-GW1"
"""Hardware name signed firmware manifests must name (PROTOCOL.md §10); the manifest grammar
allows no spaces, so the display MODEL cannot serve."""
POLICY_VERSION = 1
"""Version of the password policy; passwords set under an older one are reported weak (§6.2)."""
REPLAY_CACHE_SIZE = 1024
"""Mutating requests remembered per gateway for idempotent retries (§5.3)."""
PRE_AUTH_REPLAY_CACHE_SIZE = 64
"""Answers to mutating requests of unenrolled sessions (Pair, ChangePassword, RecoverPassword),
kept apart so that a flood of them cannot evict enrolled clients' entries (§5.3)."""
UNKNOWN_USER_THROTTLES = 1024
"""Unknown user names whose failed attempts are remembered (in memory, least recently used
forgotten first), so that they are throttled exactly like real accounts (§6.3)."""
MAX_EVENTS_PER_BATCH = 512
MAX_USER_NAME = 32
"""Longest user name (printable characters); every request naming a user is held to it (§7.3)."""
MAX_CLIENT_NAME = 64
"""Longest client name a Pair may give (printable characters, §3.3)."""
MAX_USERS = 30
"""Most accounts a gateway holds, so that UserList always fits one frame (§7.3)."""
MAX_MESSAGE = 1024
"""Longest error message, in code points (§9): the codec's text limit."""
MAX_MESSAGE_BYTES = 2048
"""Longest error message in UTF-8, so that an ErrorResponse always fits one frame."""
MAX_PLAINTEXT = MAX_FRAME - 1 - 16
_EVENT_ENCODER = codec.encoder_for(Event)
STATE_FORMAT = 1
DEFAULT_FIRMWARE = {
    FirmwarePart.RAYZIG: ("2.4.1", 3),
    FirmwarePart.RAXMEGA: ("1.9.0", 2),
    FirmwarePart.RAYDAL: ("1.2.3", 1),
    FirmwarePart.WBXMEGA: ("3.0.2", 4),
    FirmwarePart.TFT: ("1.0.7", 1),
}

PRE_AUTH_REQUESTS: frozenset[type[m.Request]] = frozenset(
    {m.Ping, m.Pair, m.ChangePassword, m.RecoverPassword}
)
"""Requests a session may send before its key is enrolled (PROTOCOL.md §6.1)."""


@dataclass(slots=True)
class UserAccount:
    """A user as the gateway stores it: level, verifier, throttle (never the password)."""

    name: str
    level: UserLevel
    verifier: PasswordVerifier
    must_change: bool = False
    policy_version: int = POLICY_VERSION
    throttle: Throttle = field(default_factory=Throttle)


@dataclass(slots=True)
class ClientRecord:
    """An enrolled client key bound to a user (PROTOCOL.md §3.3)."""

    client_id: int
    public_key: bytes
    name: str
    user: str


@dataclass(frozen=True, slots=True)
class FactorySecrets:
    """What a factory-fresh gateway shows once: the default password and the recovery secret."""

    default_password: str
    recovery_secret: str


@dataclass(frozen=True, slots=True)
class FactoryResetReport:
    """What :meth:`VirtualGateway.factory_reset` erased."""

    users: tuple[str, ...]
    """Accounts deleted, in name order (the factory account is reset, not deleted)."""
    clients: int
    """Enrolled client keys removed."""
    event_records: int
    """Event-log records erased, all modules together."""
    modules: int
    """Modules whose event logs were cleared (every module; the modules stay in the mesh)."""
    sessions: int
    """Links that were open and have been closed."""


class RequestRefused(RequestError):  # noqa: N818 - internal control flow carrying an ErrorResponse
    """Raised inside the handler to answer a request with an ErrorResponse."""

    def __init__(
        self,
        code: m.ErrorCode,
        message: str,
        *,
        retry_after: float | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(int(code), message)
        self.response = m.ErrorResponse(code, message, retry_after, reasons)


RequestObserver = Callable[["GatewayConnection", m.Request, m.Response], None]
"""Sees each request a connection made and the answer worked out for it (see request_observers)."""


class VirtualGateway:
    """A gateway that behaves like the real device; transports attach links to it."""

    def __init__(
        self,
        *,
        site: Site,
        serial: str,
        static_private: bytes,
        users: dict[str, UserAccount],
        recovery_verifier: PasswordVerifier,
        default_verifier: PasswordVerifier,
        firmware: FirmwareStore,
        clients: dict[int, ClientRecord] | None = None,
        clock: Callable[[], float] = time.time,
        scrypt_n: int = 2**15,
        default_folded_verifier: PasswordVerifier | None = None,
        next_client_id: int | None = None,
    ) -> None:
        self.site = site
        self.serial = serial
        self._static_private = static_private
        self.public_key = public_key_of(static_private)
        self.users = users
        self.recovery_verifier = recovery_verifier
        self.recovery_throttle = Throttle()
        self.default_verifier = default_verifier
        # Verifier of the case-folded default password, to refuse it as a new password in any
        # case (§6.2). Generated label passwords are lower case, so for a state saved before it
        # existed the plain default verifier is the folded one.
        self.default_folded_verifier = default_folded_verifier or default_verifier
        self.firmware = firmware
        self.clients: dict[int, ClientRecord] = clients or {}
        # Client ids are never reused (§3.3): a stale RevokeClient can never hit a newer key.
        self.next_client_id = max(next_client_id or 1, max(self.clients, default=0) + 1)
        self.clock = clock
        self.scrypt_n = scrypt_n
        self.replay_cache: OrderedDict[tuple[bytes, int], m.Response] = OrderedDict()
        self.pre_auth_replay_cache: OrderedDict[tuple[bytes, int], m.Response] = OrderedDict()
        self.unknown_throttles: OrderedDict[str, Throttle] = OrderedDict()
        self.unknown_throttle_limit = UNKNOWN_USER_THROTTLES
        self._connections: set[GatewayConnection] = set()
        self.on_dirty: Callable[[], None] = lambda: None
        """Called after any change to persist; the server gathers changes into one write."""
        self.on_save_now: Callable[[], None] = lambda: None
        """Writes the state durably at once; called before answering a security-relevant change."""
        self._durable_pending = False
        self._deferring = 0
        self._deferred: list[tuple[GatewayConnection, m.Notification]] = []
        self.request_observers: list[RequestObserver] = []
        """Called with every answer the gateway worked out (not those replayed from the cache,
        §5.3), before it is sent: a transport's hook, e.g. the mesh-latency model of the fake I2C
        bus (``rayzig_core.virtual_gateway.i2c``). Observers must not raise."""
        self.site.subscribe(self._site_changed)

    # --- construction and persistence ---------------------------------------------------

    @classmethod
    def factory_new(
        cls,
        *,
        site: Site | None = None,
        serial: str | None = None,
        clock: Callable[[], float] = time.time,
        scrypt_n: int = 2**15,
        trusted_update_keys: tuple[bytes, ...] = (),
    ) -> tuple[VirtualGateway, FactorySecrets]:
        """Make a gateway in factory state: fresh identity key, unique default password."""
        serial = serial or f"RG1-{secrets.token_hex(4).upper()}"
        secrets_ = FactorySecrets(
            credentials.generate_default_password(), credentials.generate_recovery_secret()
        )
        default_verifier = credentials.make_verifier(secrets_.default_password, n=scrypt_n)
        default_folded_verifier = credentials.make_verifier(
            fold_password(secrets_.default_password), n=scrypt_n
        )
        installer = UserAccount(FACTORY_USER, UserLevel.SYSTEM, default_verifier, must_change=True)
        private, _ = generate_keypair()
        if not trusted_update_keys:
            # Trust no publisher: an unknown key whose private half is discarded at once.
            trusted_update_keys = (generate_signing_key()[1],)
        firmware = FirmwareStore(
            hardware=HARDWARE,
            trusted_keys=trusted_update_keys,
            installed={
                part: FirmwareVersion(part, version, sv)
                for part, (version, sv) in DEFAULT_FIRMWARE.items()
            },
        )
        gateway = cls(
            site=site or Site.generate(clock=clock, serial_prefix=serial[-4:]),
            serial=serial,
            static_private=private,
            users={FACTORY_USER: installer},
            recovery_verifier=credentials.make_verifier(
                credentials.normalize_recovery_secret(secrets_.recovery_secret), n=scrypt_n
            ),
            default_verifier=default_verifier,
            firmware=firmware,
            clock=clock,
            scrypt_n=scrypt_n,
            default_folded_verifier=default_folded_verifier,
        )
        return gateway, secrets_

    def to_json(self) -> dict[str, Any]:
        """Everything the gateway must keep across restarts (PROTOCOL.md §12)."""
        return {
            "format": STATE_FORMAT,
            "serial": self.serial,
            "static_private": self._static_private.hex(),
            "scrypt_n": self.scrypt_n,
            "users": [
                {
                    "name": u.name,
                    "level": int(u.level),
                    "verifier": u.verifier.to_json(),
                    "must_change": u.must_change,
                    "policy_version": u.policy_version,
                    "throttle": u.throttle.to_json(),
                }
                for u in self.users.values()
            ],
            "recovery_verifier": self.recovery_verifier.to_json(),
            "recovery_throttle": self.recovery_throttle.to_json(),
            "default_verifier": self.default_verifier.to_json(),
            "default_folded_verifier": self.default_folded_verifier.to_json(),
            "clients": [
                {"id": c.client_id, "key": c.public_key.hex(), "name": c.name, "user": c.user}
                for c in self.clients.values()
            ],
            "next_client_id": self.next_client_id,
            "replay_cache": _cache_to_json(self.replay_cache),
            "pre_auth_replay_cache": _cache_to_json(self.pre_auth_replay_cache),
            "firmware": self.firmware.to_json(),
            "site": self.site.to_json(),
        }

    @classmethod
    def from_json(
        cls, data: dict[str, Any], *, clock: Callable[[], float] = time.time
    ) -> VirtualGateway:
        """Restore a gateway saved by :meth:`to_json`; ValueError names what is wrong."""
        try:
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"unsupported state format {data.get('format')!r}")
            users = {}
            for raw in data["users"]:
                account = UserAccount(
                    str(raw["name"]),
                    UserLevel(int(raw["level"])),
                    PasswordVerifier.from_json(raw["verifier"]),
                    must_change=bool(raw["must_change"]),
                    policy_version=int(raw["policy_version"]),
                    throttle=Throttle.from_json(raw["throttle"]),
                )
                users[account.name] = account
            clients = {
                int(raw["id"]): ClientRecord(
                    int(raw["id"]), bytes.fromhex(raw["key"]), str(raw["name"]), str(raw["user"])
                )
                for raw in data["clients"]
            }
            gateway = cls(
                site=Site.from_json(data["site"], clock=clock),
                serial=str(data["serial"]),
                static_private=bytes.fromhex(data["static_private"]),
                users=users,
                recovery_verifier=PasswordVerifier.from_json(data["recovery_verifier"]),
                default_verifier=PasswordVerifier.from_json(data["default_verifier"]),
                firmware=FirmwareStore.from_json(data["firmware"]),
                clients=clients,
                clock=clock,
                scrypt_n=int(data["scrypt_n"]),
                default_folded_verifier=(
                    PasswordVerifier.from_json(data["default_folded_verifier"])
                    if "default_folded_verifier" in data
                    else None
                ),
                # States saved before the counter existed: continue after the highest id.
                next_client_id=int(data.get("next_client_id", 1)),
            )
            gateway.recovery_throttle = Throttle.from_json(data["recovery_throttle"])
            gateway.replay_cache = _cache_from_json(data["replay_cache"])
            gateway.pre_auth_replay_cache = _cache_from_json(data.get("pre_auth_replay_cache", []))
        except (KeyError, TypeError, ValueError, ProtocolError) as err:
            raise ValueError(f"gateway state is damaged: {err}") from err
        return gateway

    def factory_reset(self) -> FactoryResetReport:
        """Erase the user data, as the device's factory reset does (PROTOCOL.md §12).

        Kept, as on the device: the identity key (the label's fingerprint stays true), the
        verifiers of the label's default password and of the recovery secret, trusted update keys
        and installed firmware, the modules with their outputs and presets, and every counter that
        must never repeat (client ids, module ids, event sequence numbers). Erased: every account
        but the factory account ``installer``, which is back to the label's default password and
        must change it (recreated if it had been deleted); every enrolled client key, and every
        open session is closed; every throttle and both replay caches (their answers name users);
        every module's event log (the records name the users who switched). The state is written
        durably before this returns when a server is attached.
        """
        removed = tuple(sorted(name for name in self.users if name != FACTORY_USER))
        clients = len(self.clients)
        sessions = len(self._connections)
        self.users = {
            FACTORY_USER: UserAccount(
                FACTORY_USER, UserLevel.SYSTEM, self.default_verifier, must_change=True
            )
        }
        self.clients = {}
        self.recovery_throttle = Throttle()
        self.unknown_throttles.clear()
        self.replay_cache.clear()
        self.pre_auth_replay_cache.clear()
        records = self.site.erase_event_logs()
        self.close_all()
        _LOGGER.info(
            "Factory reset: %d accounts, %d client keys and %d event records erased",
            len(removed),
            clients,
            records,
        )
        self._dirty(durable=True)
        self._durable_pending = False
        self.on_save_now()
        return FactoryResetReport(removed, clients, records, len(self.site.modules()), sessions)

    def _dirty(self, *, durable: bool = False) -> None:
        """Note a change; ``durable``: it must be on disk before the answer is sent (§12)."""
        if durable:
            self._durable_pending = True
        self.on_dirty()

    # --- identity ------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the gateway's static key, as printed on its label (§3.4)."""
        return fingerprint(self.public_key)

    @property
    def factory_state(self) -> bool:
        """Whether the factory password is still in force (PROTOCOL.md §6.1)."""
        account = self.users.get(FACTORY_USER)
        return account is not None and account.must_change

    def hello_for(self, client_key: bytes | None) -> m.GatewayHello:
        """The handshake payload for a client (IK tells it whether its key is enrolled)."""
        return m.GatewayHello(
            m.PROTOCOL_VERSION,
            self.serial,
            MODEL,
            self.factory_state,
            client_key is not None and self.client_by_key(client_key) is not None,
            MAX_FRAME,
        )

    def client_by_key(self, key: bytes) -> ClientRecord | None:
        """The enrolled client with this static key, if any."""
        for client in self.clients.values():
            if secrets.compare_digest(client.public_key, key):
                return client
        return None

    # --- links ---------------------------------------------------------------------------

    def attach(
        self, send_frame: Callable[[bytes], None], close: Callable[[], None]
    ) -> GatewayConnection:
        """Start serving one link; the transport feeds frames to the returned connection."""
        connection = GatewayConnection(self, send_frame, close)
        self._connections.add(connection)
        return connection

    def detach(self, connection: GatewayConnection) -> None:
        """Forget a link whose transport has gone."""
        self._connections.discard(connection)

    def close_all(self) -> None:
        """Close every link (shutdown, or a simulated reboot)."""
        for connection in list(self._connections):
            connection.close()

    def _revoke_sessions(
        self, predicate: Callable[[ClientRecord], bool], requester: GatewayConnection
    ) -> None:
        """End the links of matching clients now; the requesting link right after its reply."""
        for connection in list(self._connections):
            if connection.client is not None and predicate(connection.client):
                if connection is requester:
                    connection.close_after_reply = True
                else:
                    connection.close()

    def _site_changed(self, change: SiteChange) -> None:
        notice: m.Notification
        if isinstance(change, SiteOutputChanged):
            notice = m.OutputChanged(change.module_id, change.output, change.cause)
        elif isinstance(change, EventsAppended):
            notice = m.EventsAvailable(change.module_id, change.newest_seq)
        elif isinstance(change, TelemetryChanged):
            notice = m.TelemetryChanged(change.module_id, change.telemetry)
        elif isinstance(change, ModuleJoined):
            notice = m.ModuleJoined(change.module)
        elif isinstance(change, ModuleLeft):
            notice = m.ModuleLeft(change.module_id)
        else:  # pragma: no cover - exhaustive over SiteChange
            return
        self._dirty()
        self.broadcast(notice)

    def broadcast(self, notice: m.Notification) -> None:
        """Push a notification to every authenticated session allowed to read.

        While a request is being handled (:meth:`deferring_notifications`), the recipients are
        chosen now but the frames wait until the request's response has been sent, so that the
        requester gets its answer before the notifications its request caused.
        """
        for connection in list(self._connections):
            level = connection.level
            if level is not None and allowed(level, Permission.READ):
                if self._deferring:
                    self._deferred.append((connection, notice))
                else:
                    connection.notify(notice)

    @contextmanager
    def deferring_notifications(self) -> Iterator[None]:
        """Hold back :meth:`broadcast` frames until the block ends, then send them in order.

        :meth:`GatewayConnection.frame_received` handles a request and sends its response inside
        this block, so the notifications the request caused follow the response on every link.
        Blocks may nest; the outermost one sends.
        """
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
            if not self._deferring:
                deferred, self._deferred = self._deferred, []
                for connection, notice in deferred:
                    connection.notify(notice)

    # --- request handling ------------------------------------------------------------------

    def handle(
        self, connection: GatewayConnection, request_id: int, request: m.Request
    ) -> m.Response:
        """Answer one request, from the replay cache when it is a retried mutating request."""
        if request_id == 0:  # §5.3: 0 is the id of notifications, never of a request
            return m.ErrorResponse(
                m.ErrorCode.BAD_REQUEST,
                "Request id 0 is reserved for notifications; number requests from 1.",
            )
        cache_key = (connection.peer_key, request_id)
        # An unenrolled session's answers go to a small cache of their own (§5.3); a retry is
        # looked up in both, since a Pair retried after it succeeded comes from an enrolled key.
        enrolled = connection.client is not None and (
            self.clients.get(connection.client.client_id) is connection.client
        )
        cache = self.replay_cache if enrolled else self.pre_auth_replay_cache
        limit = REPLAY_CACHE_SIZE if enrolled else PRE_AUTH_REPLAY_CACHE_SIZE
        if request.MUTATING:
            for candidate in (self.replay_cache, self.pre_auth_replay_cache):
                cached = candidate.get(cache_key)
                if cached is not None:
                    candidate.move_to_end(cache_key)
                    return cached
        try:
            response = self._dispatch(connection, request)
        except RequestRefused as refusal:
            response = refusal.response
        except FirmwareError as err:
            response = m.ErrorResponse(m.ErrorCode(err.code), str(err))
        except RequestError as err:
            response = m.ErrorResponse(m.ErrorCode(err.code), str(err))
        except Exception:
            # A bug must not cost the client its link (§9): answer INTERNAL, log the details.
            _LOGGER.exception(
                "Unexpected error while handling %s; answering INTERNAL", type(request).__name__
            )
            response = _INTERNAL
        if isinstance(response, m.ErrorResponse):
            response = replace(response, message=_bounded(response.message))
        if request.MUTATING:
            cache[cache_key] = response
            while len(cache) > limit:
                cache.popitem(last=False)
            self._dirty()
        if self._durable_pending:
            # Throttle failures, enrolments, revocations, passwords, accounts and firmware
            # security versions reach the disk (with this answer's replay-cache entry) first.
            self._durable_pending = False
            try:
                self.on_save_now()
            except Exception:
                _LOGGER.exception("Could not store the gateway state; answering INTERNAL")
                response = _INTERNAL
        for observer in list(self.request_observers):
            observer(connection, request, response)
        return response

    def _dispatch(self, connection: GatewayConnection, request: m.Request) -> m.Response:
        if isinstance(request, m.Ping):
            return m.Ok()
        if isinstance(request, m.Pair):
            return self._pair(connection, request)
        if isinstance(request, m.ChangePassword):
            return self._change_password(request)
        if isinstance(request, m.RecoverPassword):
            return self._recover(request)
        if self.factory_state:
            # §6.1: in factory state nothing but setting the new password, on any session.
            raise RequestRefused(
                m.ErrorCode.PASSWORD_CHANGE_REQUIRED,
                f"The gateway is in factory state: set a new password for {FACTORY_USER!r} first.",
            )
        client = connection.client
        if client is None or self.clients.get(client.client_id) is not client:
            raise RequestRefused(
                m.ErrorCode.NOT_AUTHENTICATED, "This client is not paired: pair it first."
            )
        account = self.users.get(client.user)
        if account is None:  # pragma: no cover - deleting a user revokes its clients
            raise RequestRefused(m.ErrorCode.NOT_AUTHENTICATED, "The user no longer exists.")
        if account.must_change:
            raise RequestRefused(
                m.ErrorCode.PASSWORD_CHANGE_REQUIRED,
                "The factory password must be changed before anything else.",
            )
        return self._authenticated(connection, client, account, request)

    def _authenticated(
        self,
        connection: GatewayConnection,
        client: ClientRecord,
        account: UserAccount,
        request: m.Request,
    ) -> m.Response:
        level = account.level

        def need(permission: Permission) -> None:
            if not allowed(level, permission):
                raise RequestRefused(
                    m.ErrorCode.PERMISSION_DENIED,
                    f"The {level.name.title()} level does not allow this "
                    f"({permission.value}); ask an Administrator or System user.",
                )

        if isinstance(request, m.GetInfo):
            return m.InfoResponse(
                GatewayInfo(
                    self.serial,
                    MODEL,
                    m.PROTOCOL_VERSION,
                    self.fingerprint,
                    self.firmware.versions(),
                    account.name,
                    level,
                    account.policy_version < POLICY_VERSION,
                )
            )
        if isinstance(request, m.ListModules):
            need(Permission.READ)
            return self._module_page(request.start)
        if isinstance(request, m.GetTelemetry):
            need(Permission.READ)
            return m.TelemetryResponse(
                request.module_id, self.site.module(request.module_id).telemetry
            )
        if isinstance(request, m.ReadEvents):
            need(Permission.READ_EVENTS)
            return self._read_events(request)
        if isinstance(request, m.SetOutput):
            if not allowed(level, Permission.SWITCH):
                need(Permission.SWITCH_UTILITY)
                output = self._output(request.module_id, request.output)
                if not output.utility_controllable:
                    raise RequestRefused(
                        m.ErrorCode.PERMISSION_DENIED,
                        "This output is not marked utility-controllable by the site owner.",
                    )
            result = self.site.set_output(
                request.module_id, request.output, request.on, user=account.name
            )
            return m.OutputResponse(request.module_id, result)
        if isinstance(request, m.SetRestorePreset):
            need(Permission.SET_PRESET)
            result = self.site.set_preset(
                request.module_id, request.output, request.preset, user=account.name
            )
            return m.OutputResponse(request.module_id, result)
        if isinstance(request, m.SetUtilityOutput):
            need(Permission.MANAGE_UTILITY)
            result = self.site.set_utility_controllable(
                request.module_id, request.output, request.controllable
            )
            return m.OutputResponse(request.module_id, result)
        if isinstance(request, m.ListUsers):
            need(Permission.MANAGE_USERS)
            return m.UserList(
                tuple(
                    GatewayUser(u.name, u.level)
                    for u in sorted(self.users.values(), key=lambda u: u.name)
                )
            )
        if isinstance(request, m.AddUser):
            need(permission_to_manage(request.level))
            return self._add_user(request)
        if isinstance(request, m.DeleteUser):
            return self._delete_user(connection, level, request)
        if isinstance(request, m.ListClients):
            need(Permission.MANAGE_CLIENTS)
            return self._client_page(request.start)
        if isinstance(request, m.RevokeClient):
            target_id = request.client_id or client.client_id
            if target_id != client.client_id:
                need(Permission.MANAGE_CLIENTS)
            target = self.clients.get(target_id)
            if target is None:
                raise RequestRefused(m.ErrorCode.NOT_FOUND, f"No client with id {target_id}.")
            owner = self.users.get(target.user)
            # Another account's key: only a level that may manage that account (§7.3).
            if (
                target.user != account.name
                and owner is not None
                and not allowed(level, permission_to_manage(owner.level))
            ):
                raise RequestRefused(
                    m.ErrorCode.PERMISSION_DENIED,
                    f"The {level.name.title()} level cannot revoke the keys of a "
                    f"{owner.level.name.title()} user.",
                )
            del self.clients[target_id]
            self._dirty(durable=True)
            self._revoke_sessions(lambda c: c.client_id == target_id, connection)
            return m.Ok()
        if isinstance(request, m.GetFirmware):
            need(Permission.READ)
            return m.FirmwareList(self.firmware.versions())
        if isinstance(request, m.FirmwareBegin):
            need(Permission.FIRMWARE)
            part, offset, size = self.firmware.begin(
                SignedManifest(request.manifest, request.signature)
            )
            self._dirty()
            return m.FirmwareProgress(part, offset, size)
        if isinstance(request, m.FirmwareChunk):
            need(Permission.FIRMWARE)
            part, offset, size = self.firmware.chunk(
                request.part, request.offset, request.data, request.crc32
            )
            self._dirty()
            return m.FirmwareProgress(part, offset, size)
        if isinstance(request, m.FirmwareCommit):
            need(Permission.FIRMWARE)
            self.firmware.commit(request.part)
            versions = self.firmware.versions()
            self._dirty(durable=True)
            self.broadcast(m.FirmwareChanged(versions))
            return m.FirmwareList(versions)
        raise RequestRefused(m.ErrorCode.BAD_REQUEST, "Unsupported request.")

    def _output(self, module_id: int, index: int) -> Any:
        for output in self.site.module(module_id).outputs:
            if output.index == index:
                return output
        raise RequestRefused(m.ErrorCode.NOT_FOUND, f"Module {module_id} has no output {index}.")

    def _module_page(self, start: int) -> m.ModulePage:
        modules = self.site.modules()
        page: list[Any] = []
        for module in modules[max(start, 0) :]:
            candidate = m.ModulePage((*page, module), len(modules))
            if page and len(m.encode(2**62, candidate)) > MAX_PLAINTEXT:
                break
            page.append(module)
        return m.ModulePage(tuple(page), len(modules))

    def _client_page(self, start: int) -> m.ClientList:
        """One page of enrolled clients in id order, cut to fit a frame like ModulePage (§5.2)."""
        records = [self.clients[client_id] for client_id in sorted(self.clients)]
        page: list[EnrolledClient] = []
        for record in records[max(start, 0) :]:
            entry = EnrolledClient(
                record.client_id,
                record.name[:MAX_CLIENT_NAME],  # names enrolled before the limit existed
                record.user,
                fingerprint(record.public_key),
            )
            candidate = m.ClientList((*page, entry), len(records))
            if page and len(m.encode(2**62, candidate)) > MAX_PLAINTEXT:
                break
            page.append(entry)
        return m.ClientList(tuple(page), len(records))

    def _read_events(self, request: m.ReadEvents) -> m.EventBatch:
        """As many records as fit one frame (at least one), up to the batch limit (§8.2).

        Each record is encoded once, in order, until the next one would not fit: a CBOR array
        is its head followed by its items, so the batch's size is the size of the empty batch
        plus the records plus the growth of the array head (one byte at 24 items, two at 256).
        Encoding the whole 512-record read and cutting it down cost about three times as much
        for a frame that holds about 150 records.
        """
        ring = self.site.ring(request.module_id)
        wanted = max(1, min(request.max_count, MAX_EVENTS_PER_BATCH))
        events = ring.read(max(request.after_seq, 0), wanted)
        empty = m.EventBatch(request.module_id, (), ring.oldest_seq, ring.newest_seq)
        room = MAX_PLAINTEXT - len(m.encode(2**62, empty))
        used = 0
        for count, event in enumerate(events):
            used += len(codec.dumps(_EVENT_ENCODER(event)))
            items = count + 1
            head_growth = 0 if items < 24 else 1 if items < 256 else 2
            if count and used + head_growth > room:
                events = events[:count]
                break
        return m.EventBatch(request.module_id, tuple(events), ring.oldest_seq, ring.newest_seq)

    # --- passwords and pairing (PROTOCOL.md §6) --------------------------------------------

    def _check_throttle(self, throttle: Throttle) -> None:
        remaining = credentials.throttle_remaining(throttle, self.clock())
        if remaining > 0:
            raise RequestRefused(
                m.ErrorCode.THROTTLED,
                f"Too many failed attempts; try again in {remaining:.0f} seconds.",
                retry_after=remaining,
            )

    def _unknown_throttle(self, user: str) -> Throttle:
        """Return the throttle of a user name that has no account (bounded LRU, §6.3)."""
        throttle = self.unknown_throttles.get(user)
        if throttle is None:
            throttle = self.unknown_throttles[user] = Throttle()
            while len(self.unknown_throttles) > self.unknown_throttle_limit:
                self.unknown_throttles.popitem(last=False)
        else:
            self.unknown_throttles.move_to_end(user)
        return throttle

    def _verify_password(self, user: str, password: str) -> UserAccount:
        account = self.users.get(user)
        # An unknown name goes through the same steps as a real account, against the default
        # verifier (same scrypt cost) and a throttle of its own: THROTTLED and retry_after say
        # nothing about whether the account exists (§6.3).
        throttle = account.throttle if account is not None else self._unknown_throttle(user)
        self._check_throttle(throttle)
        verifier = account.verifier if account is not None else self.default_verifier
        matched = credentials.check_verifier(verifier, password)
        if account is None or not matched:
            credentials.record_failure(throttle, self.clock())
            # Durable for an unknown name too: the same disk work, so timing reveals nothing.
            self._dirty(durable=True)
            raise RequestRefused(
                m.ErrorCode.INVALID_CREDENTIALS,
                "Wrong user name or password.",
                retry_after=credentials.throttle_remaining(throttle, self.clock()) or None,
            )
        if account.throttle.failures:
            credentials.record_success(account.throttle)
            self._dirty()
        return account

    def _policy_refusal(self, password: str, user: str) -> None:
        found = set(check_password(password, user_name=user, serial=self.serial))
        # The default password in any case or Unicode form (§6.2), through its folded verifier:
        # the gateway never keeps the default password itself.
        if credentials.check_verifier(self.default_folded_verifier, fold_password(password)):
            found.add(PolicyViolation.DEFAULT_PASSWORD)
        violations = [v for v in PolicyViolation if v in found]  # in the order of §6.2
        if violations:
            raise RequestRefused(
                m.ErrorCode.PASSWORD_REJECTED,
                "Password rejected: " + " ".join(v.message for v in violations),
                reasons=tuple(str(v.value) for v in violations),
            )

    def _pair(self, connection: GatewayConnection, request: m.Pair) -> m.Response:
        _check_user_name(request.user)
        if not 1 <= len(request.client_name) <= MAX_CLIENT_NAME or not (
            request.client_name.isprintable()
        ):
            raise RequestRefused(
                m.ErrorCode.BAD_REQUEST,
                f"Client names have 1 to {MAX_CLIENT_NAME} printable characters.",
            )
        account = self._verify_password(request.user, request.password)
        if account.must_change or self.factory_state:
            raise RequestRefused(
                m.ErrorCode.PASSWORD_CHANGE_REQUIRED,
                "The factory password must be replaced first: set a new password, then pair.",
            )
        client_name = request.client_name
        existing = self.client_by_key(connection.peer_key)
        if existing is not None:
            existing.user, existing.name = account.name, client_name
            record = existing
        else:
            record = ClientRecord(
                self.next_client_id, connection.peer_key, client_name, account.name
            )
            self.next_client_id += 1
            self.clients[record.client_id] = record
        connection.client = record
        self._dirty(durable=True)
        _LOGGER.info("Enrolled client %s for user %s", record.client_id, account.name)
        return m.Paired(record.client_id, account.name, account.level)

    def _change_password(self, request: m.ChangePassword) -> m.Response:
        _check_user_name(request.user)
        account = self._verify_password(request.user, request.old_password)
        self._policy_refusal(request.new_password, account.name)
        account.verifier = credentials.make_verifier(request.new_password, n=self.scrypt_n)
        account.must_change = False
        account.policy_version = POLICY_VERSION
        self._dirty(durable=True)
        return m.Ok()

    def _recover(self, request: m.RecoverPassword) -> m.Response:
        self._check_throttle(self.recovery_throttle)
        secret = credentials.normalize_recovery_secret(request.recovery_secret)
        if not credentials.check_verifier(self.recovery_verifier, secret):
            credentials.record_failure(self.recovery_throttle, self.clock())
            self._dirty(durable=True)
            raise RequestRefused(m.ErrorCode.INVALID_CREDENTIALS, "Wrong recovery secret.")
        credentials.record_success(self.recovery_throttle)
        # Recovery resets the factory account, and only while it is a System account (§6.4):
        # with several System users, which one it resets must not depend on account order.
        system_user = self.users.get(FACTORY_USER)
        if system_user is None or system_user.level is not UserLevel.SYSTEM:
            raise RequestRefused(
                m.ErrorCode.NOT_FOUND,
                f"Recovery resets the System account {FACTORY_USER!r}, which no longer exists; "
                "another System user can set passwords by deleting and adding accounts.",
            )
        self._policy_refusal(request.new_password, system_user.name)
        system_user.verifier = credentials.make_verifier(request.new_password, n=self.scrypt_n)
        system_user.must_change = False
        system_user.policy_version = POLICY_VERSION
        credentials.record_success(system_user.throttle)
        self._dirty(durable=True)
        return m.Ok()

    def _add_user(self, request: m.AddUser) -> m.Response:
        name = request.name.strip()
        _check_user_name(name)
        if name in self.users:
            raise RequestRefused(m.ErrorCode.CONFLICT, f"User {name!r} already exists.")
        if len(self.users) >= MAX_USERS:
            raise RequestRefused(
                m.ErrorCode.CONFLICT,
                f"The gateway holds at most {MAX_USERS} users; delete one first.",
            )
        if request.level is UserLevel.UTILITY and any(
            u.level is UserLevel.UTILITY for u in self.users.values()
        ):
            raise RequestRefused(m.ErrorCode.CONFLICT, "The site already has a Utility user.")
        self._policy_refusal(request.password, name)
        self.users[name] = UserAccount(
            name, request.level, credentials.make_verifier(request.password, n=self.scrypt_n)
        )
        self._dirty(durable=True)
        return m.Ok()

    def _delete_user(
        self, connection: GatewayConnection, level: UserLevel, request: m.DeleteUser
    ) -> m.Response:
        _check_user_name(request.name)
        if not any(allowed(level, p) for p in _ACCOUNT_MANAGEMENT):
            # Before the look-up: a level that may delete no account learns nothing of names.
            raise RequestRefused(
                m.ErrorCode.PERMISSION_DENIED,
                f"The {level.name.title()} level cannot delete users; ask an Administrator "
                "or System user.",
            )
        account = self.users.get(request.name)
        if account is None:
            raise RequestRefused(m.ErrorCode.NOT_FOUND, f"No user named {request.name!r}.")
        if not allowed(level, permission_to_manage(account.level)):
            raise RequestRefused(
                m.ErrorCode.PERMISSION_DENIED,
                f"The {level.name.title()} level cannot delete a "
                f"{account.level.name.title()} user.",
            )
        if account.level is UserLevel.SYSTEM and not any(
            u.level is UserLevel.SYSTEM and u.name != account.name for u in self.users.values()
        ):
            raise RequestRefused(m.ErrorCode.CONFLICT, "The last System user cannot be deleted.")
        del self.users[account.name]
        for client_id in [c.client_id for c in self.clients.values() if c.user == account.name]:
            del self.clients[client_id]
        self._revoke_sessions(lambda c: c.user == account.name, connection)
        self._dirty(durable=True)
        return m.Ok()


def _cache_to_json(cache: OrderedDict[tuple[bytes, int], m.Response]) -> list[list[Any]]:
    """A replay cache as JSON, in LRU order: [client key hex, request id, answer envelope hex]."""
    return [
        [key.hex(), request_id, m.encode(request_id, response).hex()]
        for (key, request_id), response in cache.items()
    ]


def _cache_from_json(data: list[Any]) -> OrderedDict[tuple[bytes, int], m.Response]:
    """Rebuild a replay cache saved by :func:`_cache_to_json`."""
    cache: OrderedDict[tuple[bytes, int], m.Response] = OrderedDict()
    for key_hex, request_id, encoded in data:
        envelope = m.decode(bytes.fromhex(encoded))
        if isinstance(envelope.message, m.Response):
            cache[(bytes.fromhex(key_hex), int(request_id))] = envelope.message
    return cache


_INTERNAL = m.ErrorResponse(
    m.ErrorCode.INTERNAL,
    "The gateway failed unexpectedly while handling this request; check the state before "
    "trying again.",
)
"""The answer to a request whose handling failed with a bug; the details go to the log only."""

_ACCOUNT_MANAGEMENT = (
    Permission.MANAGE_USERS,
    Permission.MANAGE_UTILITY,
    Permission.MANAGE_ADMINS,
)
"""Permissions of which at least one is needed to delete any account at all (§7.3)."""


def _bounded(message: str) -> str:
    """Cut an error message to the limits of §9, so that an answer is always decodable."""
    if len(message) <= MAX_MESSAGE and len(message.encode("utf-8", "replace")) <= MAX_MESSAGE_BYTES:
        return message
    cut = message[: MAX_MESSAGE - 1]
    while len(cut.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES - 3:
        cut = cut[: len(cut) * 3 // 4]
    return cut + "…"


def _check_user_name(name: str) -> None:
    """Refuse a user name that no account can have: 1 to 32 printable characters (§7.3).

    Checked before anything else, so that a reply never echoes an unbounded string (§9).
    """
    if not 1 <= len(name) <= MAX_USER_NAME or not name.isprintable():
        raise RequestRefused(
            m.ErrorCode.BAD_REQUEST,
            f"User names have 1 to {MAX_USER_NAME} printable characters.",
        )


class GatewayConnection:
    """One link to the gateway: handshake, then the secure channel (PROTOCOL.md §3)."""

    def __init__(
        self,
        gateway: VirtualGateway,
        send_frame: Callable[[bytes], None],
        close: Callable[[], None],
    ) -> None:
        self._gateway = gateway
        self._send_frame = send_frame
        self._close = close
        self._handshake = ResponderHandshake(
            static_private=gateway._static_private,
            hello_for=gateway.hello_for,
        )
        self._channel: SecureChannel | None = None
        self.peer_key = b""
        self.client: ClientRecord | None = None
        self.close_after_reply = False
        self.closed = False

    @property
    def level(self) -> UserLevel | None:
        """The authenticated user's level, None before pairing or in factory state."""
        if self.client is None:
            return None
        account = self._gateway.users.get(self.client.user)
        if account is None or account.must_change:
            return None
        return account.level

    def frame_received(self, raw: bytes) -> None:
        """Process one frame from the link; protocol violations close this link only."""
        if self.closed:
            return
        try:
            if self._channel is None:
                try:
                    self._handshake_step(raw)
                except HandshakeError as err:
                    _LOGGER.info("Refusing a handshake: %s", err)
                    self.close()
                return
            envelope = self._channel.open(raw)
            if not isinstance(envelope.message, m.Request):
                raise ProtocolError("clients may only send requests")
            # The notifications this request causes go out after its response (on every link).
            with self._gateway.deferring_notifications():
                response = self._gateway.handle(self, envelope.request_id, envelope.message)
                plaintext = m.encode(envelope.request_id, response)
                if len(plaintext) > MAX_PLAINTEXT:  # a bug: every answer must fit a frame (§5.1)
                    _LOGGER.error(
                        "%s of %d bytes does not fit a frame; answering INTERNAL",
                        type(response).__name__,
                        len(plaintext),
                    )
                    plaintext = m.encode(envelope.request_id, _INTERNAL)
                self._send_frame(self._channel.seal_encoded(plaintext))
            if self.close_after_reply:
                self.close()
        except (ProtocolError, SessionClosedError) as err:
            _LOGGER.debug("Closing link after protocol error: %s", err)
            self.close()

    def _handshake_step(self, raw: bytes) -> None:
        reply = self._handshake.receive(raw)
        if reply is not None:
            self._send_frame(reply)
        if self._handshake.complete:
            self._channel = self._handshake.channel()
            self.peer_key = self._channel.remote_static
            self.client = self._gateway.client_by_key(self.peer_key)

    def notify(self, notice: m.Notification) -> None:
        """Push a notification on this link, if its session is up."""
        if self._channel is None or self.closed:
            return
        try:
            self._send_frame(self._channel.seal(0, notice))
        except (ProtocolError, SessionClosedError):
            self.close()

    def close(self) -> None:
        """End the session and the link; keys are dropped."""
        if self.closed:
            return
        self.closed = True
        if self._channel is not None:
            self._channel.close()
        self._gateway.detach(self)
        self._close()

    def connection_lost(self) -> None:
        """The transport went away."""
        if not self.closed:
            self.closed = True
            if self._channel is not None:
                self._channel.close()
            self._gateway.detach(self)
