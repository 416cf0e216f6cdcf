"""The async client: the one class a user of rayzig_core learns first.

:class:`RayzigClient` talks to a gateway through any :class:`~rayzig_core.transport.base.Connector`
(TCP, bridge, I2C). First contact and pairing run short-lived Noise_XX sessions; a paired client
keeps one Noise_IK session open, reconnects with capped exponential back-off (never after an
authentication failure; :meth:`RayzigClient.reconnect_now` cuts a wait short when the caller
learns the gateway is back, e.g. from :meth:`RayzigClient.probe` or a zeroconf announcement) and
retries commands with the same request id so they act once (PROTOCOL.md §3, §5.3). It stores
keys only, never the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from rayzig_core.client_accounts import AccountRequests
from rayzig_core.errors import (
    AuthenticationError,
    ClientRevokedError,
    ConnectionFailedError,
    GatewayKeyChangedError,
    ProtocolError,
    RayzigError,
    RayzigInternalError,
    RequestTimeoutError,
    SessionClosedError,
)
from rayzig_core.models import (
    ConnectionState,
    FirmwareVersion,
    GatewayInfo,
    Module,
    Output,
    RestorePreset,
    Telemetry,
)
from rayzig_core.pairing import ClientCredentials, GatewayIdentity
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.noise import generate_keypair
from rayzig_core.protocol.session import InitiatorHandshake
from rayzig_core.secure_session import SecureSession, error_from_response, open_session
from rayzig_core.transport.base import Connector

# Also importable from here, where they were first defined: the pairing results and the
# error mapping.
__all__ = [
    "ClientCredentials",
    "ClientStats",
    "GatewayIdentity",
    "Listener",
    "RayzigClient",
    "StateListener",
    "error_from_response",
]

_LOGGER = logging.getLogger(__name__)
_R = TypeVar("_R", bound=m.Response)

DEFAULT_REQUEST_TIMEOUT = 10.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 60.0
DEFAULT_PROBE_TIMEOUT = 2.0
COMMAND_ATTEMPTS = 3
KEEPALIVE_INTERVAL = 60.0
"""Seconds of silence after which the keyed session sends a Ping (gateways and bridges drop a
session silent for their idle timeout, 180 s by default: PROTOCOL.md §3.5)."""


@dataclass(slots=True)
class ClientStats:
    """Counters for diagnostics."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    errors: int = 0
    notifications: int = 0
    last_error: str | None = None


Listener = Callable[[m.Notification], None]
StateListener = Callable[[ConnectionState], None]


class RayzigClient(AccountRequests):
    """Async client of one Rayzig gateway (see the module docstring for the life cycle)."""

    def __init__(
        self,
        connector: Connector,
        credentials: ClientCredentials | None = None,
        *,
        client_name: str = "rayzig_core",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        keepalive_interval: float | None = KEEPALIVE_INTERVAL,
    ) -> None:
        self.connector = connector
        self.keepalive_interval = keepalive_interval
        self.credentials = credentials
        self.client_name = client_name
        self.request_timeout = request_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stats = ClientStats()
        self.info: GatewayInfo | None = None
        self._state = ConnectionState.DISCONNECTED
        self._session: SecureSession | None = None
        self._connected = asyncio.Event()
        """Set while a session is up, and for good once the client can never connect again
        (authentication failure, closed), so that waiting requests wake up and fail at once."""
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        """Set by :meth:`reconnect_now`: ends the current back-off wait."""
        self._listeners: list[Listener] = []
        self._state_listeners: list[StateListener] = []
        self._next_id = secrets.randbelow(2**48) + 1
        self._auth_error: AuthenticationError | None = None
        self._closed = False

    # --- subscriptions ---------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every gateway notification; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def subscribe_state(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener`` on every connection-state change; returns the unsubscribe function."""
        self._state_listeners.append(listener)
        return lambda: (
            self._state_listeners.remove(listener) if listener in self._state_listeners else None
        )

    @property
    def state(self) -> ConnectionState:
        """Current connection state."""
        return self._state

    @property
    def auth_error(self) -> AuthenticationError | None:
        """The authentication failure that stopped reconnection, if any."""
        return self._auth_error

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        for listener in list(self._state_listeners):
            try:
                listener(state)
            except Exception:
                _LOGGER.exception("Connection-state listener failed")

    def _dispatch(self, notice: m.Notification) -> None:
        self.stats.notifications += 1
        for listener in list(self._listeners):
            try:
                listener(notice)
            except Exception:
                _LOGGER.exception("Notification listener failed")

    def _new_request_id(self) -> int:
        self._next_id = (self._next_id + 1) % 2**62 or 1
        return self._next_id

    # --- first contact and pairing (Noise_XX) ----------------------------------------------

    async def _pairing_session(
        self, gateway_key: bytes | None, static_private: bytes | None = None
    ) -> tuple[SecureSession, bytes]:
        private = static_private or generate_keypair()[0]
        handshake = InitiatorHandshake(
            static_private=private, client_name=self.client_name, expected_gateway_key=gateway_key
        )
        session = await open_session(
            self.connector, handshake, self._dispatch, self.request_timeout
        )
        return session, private

    async def identify(self) -> GatewayIdentity:
        """First contact: learn the gateway's key and fingerprint (nothing is enrolled)."""
        session, _ = await self._pairing_session(None)
        try:
            hello = session.hello
            return GatewayIdentity(
                session.channel.remote_static,
                hello.serial,
                hello.model,
                hello.factory_state,
                hello.protocol_version,
            )
        finally:
            await session.close()

    async def _one_shot(
        self, gateway_key: bytes, request: m.Request, static_private: bytes | None = None
    ) -> m.Response:
        session, _ = await self._pairing_session(gateway_key, static_private)
        try:
            response = await session.request(self._new_request_id(), request, self.request_timeout)
        finally:
            await session.close()
        if isinstance(response, m.ErrorResponse):
            raise error_from_response(response)
        return response

    async def pair(self, gateway: GatewayIdentity, user: str, password: str) -> ClientCredentials:
        """Prove ``user``'s password to the pinned gateway and enrol a fresh client key.

        Raises PasswordChangeRequiredError on the factory password, InvalidCredentialsError,
        ThrottledError or GatewayKeyChangedError. The password is not kept.
        """
        private = generate_keypair()[0]
        response = await self._one_shot(
            gateway.public_key, m.Pair(user, password, self.client_name), private
        )
        if not isinstance(response, m.Paired):
            raise ProtocolError("unexpected answer to Pair")
        self.credentials = ClientCredentials(
            private,
            gateway.public_key,
            gateway.serial,
            response.user,
            response.level,
            response.client_id,
        )
        return self.credentials

    async def change_password(
        self, gateway_key: bytes, user: str, old_password: str, new_password: str
    ) -> None:
        """Change a password by proving the current one (works in factory state)."""
        await self._one_shot(gateway_key, m.ChangePassword(user, old_password, new_password))

    async def recover_password(
        self, gateway_key: bytes, recovery_secret: str, new_password: str
    ) -> None:
        """Reset the System user's password with the site's recovery secret."""
        await self._one_shot(gateway_key, m.RecoverPassword(recovery_secret, new_password))

    # --- the keyed session (Noise_IK) ------------------------------------------------------

    async def _open_keyed(self) -> SecureSession:
        creds = self.credentials
        if creds is None:
            raise RayzigInternalError("connect() needs credentials: pair first")
        handshake = InitiatorHandshake(
            static_private=creds.client_private_key,
            client_name=self.client_name,
            gateway_key=creds.gateway_public_key,
        )
        try:
            session = await open_session(
                self.connector, handshake, self._dispatch, self.request_timeout
            )
        except (ConnectionFailedError, ProtocolError) as err:
            # The gateway closes an IK attempt it cannot decrypt: find out whether its key changed.
            try:
                identity = await self.identify()
            except RayzigError:
                raise err from None
            if identity.public_key != creds.gateway_public_key:
                raise GatewayKeyChangedError(
                    creds.gateway_fingerprint, identity.fingerprint
                ) from None
            raise
        if not session.hello.client_enrolled:
            await session.close()
            raise ClientRevokedError(
                "The gateway no longer knows this client's key (revoked, or its user was "
                "deleted): pair again."
            )
        response = await session.request(self._new_request_id(), m.GetInfo(), self.request_timeout)
        if isinstance(response, m.ErrorResponse):
            await session.close()
            raise error_from_response(response)
        if not isinstance(response, m.InfoResponse):
            await session.close()
            raise ProtocolError("unexpected answer to GetInfo")
        self.info = response.info
        return session

    async def connect(self) -> GatewayInfo:
        """Open the keyed session (raising if that fails), then keep it up in the background."""
        if self._closed:
            raise RayzigInternalError("client is closed")
        # A new attempt (e.g. after pairing again): forget an earlier authentication failure.
        self._auth_error = None
        self._connected.clear()
        self._set_state(ConnectionState.CONNECTING)
        try:
            session = await self._open_keyed()
        except AuthenticationError as err:
            self._auth_error = err
            self._set_state(ConnectionState.AUTH_FAILED)
            raise
        except RayzigError:
            self.stats.connect_failures += 1
            self._set_state(ConnectionState.DISCONNECTED)
            raise
        self._attach(session)
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name="rayzig-client-supervisor"
        )
        assert self.info is not None
        return self.info

    def _attach(self, session: SecureSession) -> None:
        self._session = session
        self.stats.connects += 1
        self._connected.set()
        self._set_state(ConnectionState.CONNECTED)

    async def _supervise(self) -> None:
        delay = self.backoff_initial
        while not self._closed:
            session = self._session
            if session is not None:
                reason = await self._keep_alive(session)
                self._connected.clear()
                self._session = None
                await session.close()
                if self._closed:
                    return
                self.stats.disconnects += 1
                self.stats.last_error = str(reason)
                _LOGGER.debug("Session to %s ended: %s", self.connector.description, reason)
                delay = self.backoff_initial
            if self._auth_error is not None:
                # e.g. this client revoked its own key: reconnecting would retry a known failure.
                self._set_state(ConnectionState.AUTH_FAILED)
                self._connected.set()
                return
            self._wake.clear()
            self._set_state(ConnectionState.BACKOFF)
            await self._wait_back_off(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            # A nudged attempt does not reset the schedule: nudges cannot make it hammer.
            delay = min(delay * 2, self.backoff_max)
            self._set_state(ConnectionState.CONNECTING)
            try:
                self._attach(await self._open_keyed())
            except AuthenticationError as err:
                self._auth_error = err
                self.stats.last_error = str(err)
                self._set_state(ConnectionState.AUTH_FAILED)
                self._connected.set()  # requests waiting for a reconnection raise err now
                return
            except RayzigError as err:
                self.stats.connect_failures += 1
                self.stats.last_error = str(err)

    async def _keep_alive(self, session: SecureSession) -> object:
        """Wait for ``session`` to end, pinging it after each silence of keepalive_interval.

        A Ping that goes unanswered ends the session, so a dead link is noticed and replaced.
        """
        loop = asyncio.get_running_loop()
        interval = self.keepalive_interval
        while interval is not None and not session.closed.done():
            silence = loop.time() - session.last_sent
            if silence < interval:
                await asyncio.wait({session.closed}, timeout=interval - silence)
                continue
            try:
                await session.request(self._new_request_id(), m.Ping(), self.request_timeout)
            except RequestTimeoutError:
                _LOGGER.debug("Keep-alive unanswered by %s", self.connector.description)
                await session.close()
            except (SessionClosedError, ConnectionFailedError):
                pass  # the session ended meanwhile: session.closed says why
        return await session.closed

    async def _wait_back_off(self, delay: float) -> None:
        """Wait ``delay`` seconds before the next attempt, or less if :meth:`reconnect_now`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    def reconnect_now(self) -> None:
        """Try to reconnect at once if the client is waiting out its back-off.

        For a caller that learns the gateway is back (a zeroconf announcement, a successful
        :meth:`probe`). If that attempt fails, the back-off goes on where it was. Does nothing
        while connected, connecting, closed or stopped by an authentication failure.
        """
        if self._state is ConnectionState.BACKOFF:
            self._wake.set()

    async def probe(self, timeout: float = DEFAULT_PROBE_TIMEOUT) -> bool:
        """Whether the gateway's transport opens now: a cheap check with no session or handshake.

        Opens a transport with the connector and closes it again (TCP: the gateway or bridge
        accepts a connection; I2C: the gateway answers the link's HELLO, PROTOCOL.md §11.4).
        False when it cannot be opened within ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                transport = await self.connector.connect()
        except (RayzigError, TimeoutError):
            return False
        await transport.close()
        return True

    async def _call(self, request: m.Request, expected: type[_R]) -> _R:
        """Send a request on the keyed session; retry with the same id across reconnects."""
        request_id = self._new_request_id()
        self.stats.requests += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout * COMMAND_ATTEMPTS
        attempt = 0
        while True:
            attempt += 1
            if self._auth_error is not None:
                raise self._auth_error
            if self._closed:
                raise ConnectionFailedError("client is closed")
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.01)):
                    await self._connected.wait()
            except TimeoutError as err:
                self.stats.timeouts += 1
                raise ConnectionFailedError(
                    f"Gateway at {self.connector.description} is not reachable "
                    f"({self.stats.last_error or 'not connected'})."
                ) from err
            session = self._session
            if session is None:
                continue
            try:
                response = await session.request(request_id, request, self.request_timeout)
            except (SessionClosedError, ConnectionFailedError) as err:
                if isinstance(err, RequestTimeoutError):
                    self.stats.timeouts += 1
                if attempt >= COMMAND_ATTEMPTS or loop.time() >= deadline:
                    self.stats.errors += 1
                    raise
                self.stats.retries += 1
                if isinstance(err, RequestTimeoutError):
                    continue
                if self._session is session and self._auth_error is None and not self._closed:
                    self._connected.clear()  # not yet replaced (nor terminal): wait for it
                continue
            if isinstance(response, m.ErrorResponse):
                self.stats.errors += 1
                raise error_from_response(response)
            if not isinstance(response, expected):
                raise ProtocolError(f"unexpected answer {type(response).__name__}")
            return response

    # --- operations --------------------------------------------------------------------------

    async def get_info(self) -> GatewayInfo:
        """Gateway identity, firmware and this client's user and level."""
        self.info = (await self._call(m.GetInfo(), m.InfoResponse)).info
        return self.info

    async def list_modules(self) -> list[Module]:
        """Every module with outputs, presets and telemetry (paged, PROTOCOL.md §5.2)."""
        modules: list[Module] = []
        while True:
            page = await self._call(m.ListModules(len(modules)), m.ModulePage)
            modules.extend(page.modules)
            if len(modules) >= page.total or not page.modules:
                return modules

    async def set_output(self, module_id: int, output: int, on: bool) -> Output:
        """Switch an output; returns its state as acknowledged by the gateway."""
        return (await self._call(m.SetOutput(module_id, output, on), m.OutputResponse)).output

    async def set_restore_preset(
        self, module_id: int, output: int, preset: RestorePreset
    ) -> Output:
        """Set an output's power-restore preset."""
        request = m.SetRestorePreset(module_id, output, preset)
        return (await self._call(request, m.OutputResponse)).output

    async def set_utility_output(self, module_id: int, output: int, controllable: bool) -> Output:
        """Mark whether the Utility user may switch an output."""
        request = m.SetUtilityOutput(module_id, output, controllable)
        return (await self._call(request, m.OutputResponse)).output

    async def get_telemetry(self, module_id: int) -> Telemetry:
        """A module's telemetry: battery against its minimum, link quality, reachability."""
        return (await self._call(m.GetTelemetry(module_id), m.TelemetryResponse)).telemetry

    async def read_events(
        self, module_id: int, after_seq: int, max_count: int = 512
    ) -> m.EventBatch:
        """One batch of event-log records after ``after_seq`` (see EventLogSync for cursors)."""
        return await self._call(m.ReadEvents(module_id, after_seq, max_count), m.EventBatch)

    async def firmware_versions(self) -> tuple[FirmwareVersion, ...]:
        """Installed firmware per part (Rayzig, Raxmega, Raydal, WBxMega, TFT)."""
        return (await self._call(m.GetFirmware(), m.FirmwareList)).versions

    async def revoke_client(self, client_id: int = 0) -> None:
        """Revoke a client key; 0 revokes this client's own key (used on removal)."""
        if client_id == 0:
            # The gateway closes our session right after answering: do not reconnect.
            session = self._session
            if session is None:
                raise ConnectionFailedError("not connected")
            response = await session.request(
                self._new_request_id(), m.RevokeClient(0), self.request_timeout
            )
            if isinstance(response, m.ErrorResponse):
                raise error_from_response(response)
            self._auth_error = ClientRevokedError("This client revoked its own key.")
            return
        await self._call(m.RevokeClient(client_id), m.Ok)

    # --- any request ---------------------------------------------------------------------------

    async def request(self, request: m.Request) -> m.Response:
        """Send any catalogue request and return its response (errors raised as exceptions)."""
        return await self._call(request, m.Response)

    async def close(self) -> None:
        """Stop reconnecting, close the session and wait for every task this client started."""
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        session, self._session = self._session, None
        self._connected.set()  # requests waiting for a reconnection fail with "client is closed"
        if session is not None:
            await session.close()
        self._set_state(ConnectionState.CLOSED)

    async def __aenter__(self) -> RayzigClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
