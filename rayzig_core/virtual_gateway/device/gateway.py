"""The virtual gateway's application, as on the device's MCU: identity, links, requests, state.

Transport-agnostic and synchronous: a transport (TCP server, fake I2C device) calls
:meth:`VirtualGateway.attach` per link and feeds frames in; replies and notifications leave through
the ``send_frame`` callable it passed, which is told which frames are answers. Everything
PROTOCOL.md asks of a gateway is enforced by the pieces tied together here: handshakes (§3,
:mod:`.connection`), pairing, passwords and throttling (§6, :mod:`.auth`), the budget and the
worker of password checks (§6.5, :mod:`.check_budget`, :mod:`.password_work`), the permission
matrix (§7, :mod:`.handlers`), requests from intake to answer (:mod:`.requests`) with the replay
cache that makes retried commands act once (§5.3, :mod:`.replay`), firmware installs (§10) and
persistence (§12, :mod:`.state`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rayzig_core.firmware import generate_signing_key
from rayzig_core.models import FirmwareVersion, UserLevel
from rayzig_core.password_policy import fold_password
from rayzig_core.permissions import Permission, allowed
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import MAX_FRAME
from rayzig_core.protocol.noise import generate_keypair, public_key_of
from rayzig_core.protocol.session import ResponderHandshake, fingerprint
from rayzig_core.virtual_gateway import credentials
from rayzig_core.virtual_gateway.device.accounts import FACTORY_USER, Accounts, name_key
from rayzig_core.virtual_gateway.device.auth import THROTTLED_ANSWER_DELAY
from rayzig_core.virtual_gateway.device.check_budget import CheckBudget
from rayzig_core.virtual_gateway.device.connection import FrameSender, GatewayConnection
from rayzig_core.virtual_gateway.device.identity import DEFAULT_FIRMWARE, HARDWARE, MODEL
from rayzig_core.virtual_gateway.device.password_work import PasswordWorker
from rayzig_core.virtual_gateway.device.replay import ReplayCache, Reply
from rayzig_core.virtual_gateway.device.requests import RequestPipeline
from rayzig_core.virtual_gateway.device.state import (
    ClientRecord,
    GatewayState,
    UserAccount,
)
from rayzig_core.virtual_gateway.firmware_store import FirmwareStore
from rayzig_core.virtual_gateway.site.changes import (
    EventsAppended,
    ModuleJoined,
    ModuleLeft,
    OutputChanged,
    SiteChange,
    TelemetryChanged,
)
from rayzig_core.virtual_gateway.site.site import Site

_LOGGER = logging.getLogger(__name__)

RequestObserver = Callable[[GatewayConnection, m.Request, m.Response], None]
"""Sees each request a connection made and the answer worked out for it (see request_observers)."""
SaveInBackground = Callable[[Callable[[BaseException | None], None]], None]
"""Writes the state durably without blocking the loop, then calls back on it (None: written)."""


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


class VirtualGateway:
    """A gateway that behaves like the real device; transports attach links to it."""

    def __init__(
        self,
        *,
        site: Site,
        serial: str,
        static_private: bytes,
        accounts: Accounts,
        firmware: FirmwareStore,
        replay: ReplayCache | None = None,
        check_budget: CheckBudget | None = None,
        clock: Callable[[], float] = time.time,
        scrypt_n: int = 2**15,
    ) -> None:
        self.site = site
        self.serial = serial
        self._static_private = static_private
        self.public_key = public_key_of(static_private)
        self.accounts = accounts
        self.firmware = firmware
        self.replay = replay or ReplayCache()
        self.check_budget = check_budget or CheckBudget()
        """The password checks of the last minute, all names and sources together (§6.5)."""
        self.password_worker = PasswordWorker()
        """Runs scrypt off the event loop (§6.5)."""
        self.clock = clock
        self.scrypt_n = scrypt_n
        self._connections: set[GatewayConnection] = set()
        self.on_dirty: Callable[[], None] = lambda: None
        """Called after any change to persist; the server gathers changes into one write."""
        self.on_save_now: Callable[[], None] = lambda: None
        """Writes the state durably at once; called before answering a security-relevant change."""
        self.on_save_in_background: SaveInBackground | None = None
        """If the server sets it: how a request that waited for password work (§6.5) gets its
        changes on disk before its answer without the loop waiting for the disk meanwhile."""
        self.durable_pending = False
        """Set by a change that must be on disk before the answer to the request making it."""
        self.requests = RequestPipeline(self)
        self.throttled_answer_delay = THROTTLED_ANSWER_DELAY
        """Seconds a THROTTLED answer to an unenrolled session is held back (§6.5)."""
        self._deferring = 0
        self._deferred: list[tuple[GatewayConnection, m.Notification]] = []
        self.request_observers: list[RequestObserver] = []
        """Called with every answer the gateway worked out (not those replayed from the cache,
        §5.3), before it is sent: a transport's hook, e.g. the mesh-latency model of the fake I2C
        bus (``rayzig_core.virtual_gateway.i2c``). Observers must not raise."""
        self.site.subscribe(self._site_changed)

    # --- construction and persistence (§12) ------------------------------------------------

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
        accounts = Accounts(
            users={FACTORY_USER: installer},
            clients={},
            recovery_verifier=credentials.make_verifier(
                credentials.normalize_recovery_secret(secrets_.recovery_secret), n=scrypt_n
            ),
            recovery_throttle=credentials.Throttle(),
            default_verifier=default_verifier,
            default_folded_verifier=default_folded_verifier,
            name_key=name_key(private),
        )
        gateway = cls(
            site=site or Site.generate(clock=clock, serial_prefix=serial[-4:]),
            serial=serial,
            static_private=private,
            accounts=accounts,
            firmware=firmware,
            clock=clock,
            scrypt_n=scrypt_n,
        )
        return gateway, secrets_

    def state(self) -> GatewayState:
        """Everything the gateway must keep across restarts (PROTOCOL.md §12)."""
        accounts = self.accounts
        return GatewayState(
            serial=self.serial,
            static_private=self._static_private,
            scrypt_n=self.scrypt_n,
            users=tuple(accounts.users.values()),
            recovery_verifier=accounts.recovery_verifier,
            recovery_throttle=accounts.recovery_throttle,
            default_verifier=accounts.default_verifier,
            default_folded_verifier=accounts.default_folded_verifier,
            clients=tuple(accounts.clients.values()),
            next_client_id=accounts.next_client_id,
            replay_cache=self.replay.entries(enrolled=True),
            pre_auth_replay_cache=self.replay.entries(enrolled=False),
            unknown_names=accounts.unknown_names(),
            password_checks=self.check_budget.records(),
            firmware=self.firmware.state(),
            site=self.site.state(),
        )

    @classmethod
    def restore(
        cls, state: GatewayState, *, clock: Callable[[], float] = time.time
    ) -> VirtualGateway:
        """The gateway :meth:`state` described (it takes over the state's account records)."""
        accounts = Accounts(
            users={account.name: account for account in state.users},
            clients={client.client_id: client for client in state.clients},
            recovery_verifier=state.recovery_verifier,
            recovery_throttle=state.recovery_throttle,
            default_verifier=state.default_verifier,
            default_folded_verifier=state.default_folded_verifier,
            next_client_id=state.next_client_id,
            name_key=name_key(state.static_private),
            unknown_names=state.unknown_names,
        )
        return cls(
            site=Site.restore(state.site, clock=clock),
            serial=state.serial,
            static_private=state.static_private,
            accounts=accounts,
            firmware=FirmwareStore.restore(state.firmware),
            replay=ReplayCache(state.replay_cache, state.pre_auth_replay_cache),
            check_budget=CheckBudget(state.password_checks),
            clock=clock,
            scrypt_n=state.scrypt_n,
        )

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
        sessions = len(self._connections)
        removed, clients = self.accounts.reset_to_factory()
        self.replay.clear()
        records = self.site.erase_event_logs()
        self.close_all()
        _LOGGER.info(
            "Factory reset: %d accounts, %d client keys and %d event records erased",
            len(removed),
            clients,
            records,
        )
        self.note_change(durable=True)
        self.durable_pending = False
        self.on_save_now()
        return FactoryResetReport(removed, clients, records, len(self.site.modules()), sessions)

    def note_change(self, *, durable: bool = False) -> None:
        """Note a change; ``durable``: it must be on disk before the answer is sent (§12)."""
        if durable:
            self.durable_pending = True
        self.on_dirty()

    # --- identity and accounts -------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the gateway's static key, as printed on its label (§3.4)."""
        return fingerprint(self.public_key)

    @property
    def factory_state(self) -> bool:
        """Whether the factory password is still in force (PROTOCOL.md §6.1)."""
        return self.accounts.factory_state

    @property
    def users(self) -> dict[str, UserAccount]:
        """The accounts by name (the live records; see :class:`Accounts`)."""
        return self.accounts.users

    @property
    def clients(self) -> dict[int, ClientRecord]:
        """The enrolled client keys by client id (the live records)."""
        return self.accounts.clients

    def hello_for(self, client_key: bytes | None) -> m.GatewayHello:
        """The handshake payload for a client (IK tells it whether its key is enrolled, §3.2)."""
        return m.GatewayHello(
            m.PROTOCOL_VERSION,
            self.serial,
            MODEL,
            self.factory_state,
            client_key is not None and self.accounts.client_by_key(client_key) is not None,
            MAX_FRAME,
        )

    def responder_handshake(self) -> ResponderHandshake:
        """A fresh handshake with the gateway's identity key, for a new link (§3.2)."""
        return ResponderHandshake(static_private=self._static_private, hello_for=self.hello_for)

    # --- links -----------------------------------------------------------------------------

    def attach(self, send_frame: FrameSender, close: Callable[[], None]) -> GatewayConnection:
        """Start serving one link; the transport feeds frames to the returned connection."""
        connection = GatewayConnection(self, send_frame, close)
        self._connections.add(connection)
        return connection

    def detach(self, connection: GatewayConnection) -> None:
        """Forget a link whose transport has gone."""
        self._connections.discard(connection)

    def close_all(self) -> None:
        """Close every link (shutdown, or a simulated reboot).

        The requests under way are answered first, as the device finishes the request in hand
        before it resets: their password work is completed here (a few scrypt runs at most).
        """
        self.requests.finish_all()
        for connection in list(self._connections):
            connection.close()

    def revoke_sessions(
        self, predicate: Callable[[ClientRecord], bool], requester: GatewayConnection
    ) -> None:
        """End the links of matching clients now; the requesting link right after its reply."""
        for connection in list(self._connections):
            if connection.client is not None and predicate(connection.client):
                if connection is requester:
                    connection.close_after_reply = True
                else:
                    connection.close()

    # --- notifications (§5.4) --------------------------------------------------------------

    def _site_changed(self, change: SiteChange) -> None:
        notice: m.Notification
        if isinstance(change, OutputChanged):
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
        self.note_change()
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

    # --- requests (§5.3, §6.5, §9) ---------------------------------------------------------

    @property
    def pending_requests(self) -> int:
        """Requests taken in and not answered yet (waiting for password work or the disk)."""
        return self.requests.pending

    def is_enrolled(self, connection: GatewayConnection) -> bool:
        """Whether the link's client key is enrolled now (not revoked meanwhile)."""
        client = connection.client
        return client is not None and self.accounts.clients.get(client.client_id) is client

    def handle(
        self, connection: GatewayConnection, request_id: int, request: m.Request, reply: Reply
    ) -> None:
        """Answer one request through ``reply``, at once or once its password work is done.

        See :class:`~rayzig_core.virtual_gateway.device.requests.RequestPipeline`.
        """
        self.requests.handle(connection, request_id, request, reply)
