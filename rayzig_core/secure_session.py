"""One secure session to a gateway over a transport, and what its error answers mean.

:func:`open_session` opens a transport from a connector and runs a Noise handshake over it
(PROTOCOL.md §3); the :class:`SecureSession` it returns matches responses to requests by request id
(§5.3) and hands notifications to a callback (§5.4). :func:`error_from_response` turns a gateway's
error answer into the exception a caller handles (§9). :class:`~rayzig_core.client.RayzigClient`
builds pairing, the keyed session, reconnection and retries on these.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from rayzig_core.errors import (
    ClientRevokedError,
    ConnectionFailedError,
    FirmwareError,
    FirmwareIntegrityError,
    FirmwareRollbackError,
    FirmwareSignatureError,
    GatewayBusyError,
    InvalidCredentialsError,
    InvalidRequestError,
    NotFoundError,
    OutsideLimitationError,
    PasswordChangeRequiredError,
    PasswordRejectedError,
    PermissionDeniedError,
    ProtocolError,
    RayzigError,
    RequestError,
    RequestIdReusedError,
    RequestTimeoutError,
    SessionClosedError,
    ThrottledError,
)
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.session import InitiatorHandshake, SecureChannel
from rayzig_core.transport.base import Connector, Transport

_ERRORS: dict[m.ErrorCode, type[RequestError]] = {
    m.ErrorCode.PERMISSION_DENIED: PermissionDeniedError,
    m.ErrorCode.OUTSIDE_LIMITATION: OutsideLimitationError,
    m.ErrorCode.NOT_FOUND: NotFoundError,
    m.ErrorCode.BAD_REQUEST: InvalidRequestError,
    m.ErrorCode.CONFLICT: InvalidRequestError,
    m.ErrorCode.BUSY: GatewayBusyError,
    m.ErrorCode.FIRMWARE_SIGNATURE: FirmwareSignatureError,
    m.ErrorCode.FIRMWARE_INTEGRITY: FirmwareIntegrityError,
    m.ErrorCode.FIRMWARE_ROLLBACK: FirmwareRollbackError,
    m.ErrorCode.FIRMWARE_STATE: FirmwareError,
    m.ErrorCode.INTERNAL: RequestError,
    m.ErrorCode.REQUEST_ID_REUSED: RequestIdReusedError,
}


def error_from_response(response: m.ErrorResponse) -> RayzigError:
    """Map a gateway ErrorResponse to the exception a caller handles (PROTOCOL.md §9)."""
    code = response.code
    if code is m.ErrorCode.PASSWORD_REJECTED:
        return PasswordRejectedError(response.reasons or (response.message,))
    if code is m.ErrorCode.THROTTLED:
        return ThrottledError(response.retry_after or 0.0)
    if code is m.ErrorCode.INVALID_CREDENTIALS:
        return InvalidCredentialsError(response.message)
    if code is m.ErrorCode.PASSWORD_CHANGE_REQUIRED:
        return PasswordChangeRequiredError(response.message)
    if code is m.ErrorCode.NOT_AUTHENTICATED:
        return ClientRevokedError(response.message)
    return _ERRORS.get(code, RequestError)(int(code), response.message)


class SecureSession:
    """One open secure session: request/response matching and notification dispatch."""

    def __init__(
        self,
        transport: Transport,
        channel: SecureChannel,
        hello: m.GatewayHello,
        on_notification: Callable[[m.Notification], None],
    ) -> None:
        self.transport = transport
        self.channel = channel
        self.hello = hello
        self._on_notification = on_notification
        self._pending: dict[int, asyncio.Future[m.Response]] = {}
        self.last_sent = asyncio.get_running_loop().time()
        """Loop time of the last request sent (the client pings after a silence, §3.5)."""
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        error: Exception = SessionClosedError("session closed")
        try:
            while True:
                envelope = self.channel.open(await self.transport.receive())
                message = envelope.message
                if isinstance(message, m.Notification):
                    self._on_notification(message)
                elif isinstance(message, m.Response):
                    future = self._pending.pop(envelope.request_id, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                else:
                    raise ProtocolError("gateway sent a request")
        except (ConnectionFailedError, ProtocolError) as err:
            error = err
        finally:
            self.channel.close()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(SessionClosedError(f"session ended: {error}"))
            self._pending.clear()
            if not self.closed.done():
                self.closed.set_result(error)

    async def request(self, request_id: int, message: m.Request, timeout: float) -> m.Response:
        """Send ``message`` and wait for its answer (RequestTimeoutError after ``timeout``)."""
        if self.closed.done():
            raise SessionClosedError("session is closed")
        future: asyncio.Future[m.Response] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.last_sent = asyncio.get_running_loop().time()
        try:
            await self.transport.send(self.channel.seal(request_id, message))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as err:
            raise RequestTimeoutError(
                f"{self.transport.description} did not answer within {timeout:.0f} s"
            ) from err
        finally:
            self._pending.pop(request_id, None)

    async def close(self) -> None:
        """Stop reading and close the transport."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.transport.close()


async def open_session(
    connector: Connector,
    handshake: InitiatorHandshake,
    on_notification: Callable[[m.Notification], None],
    timeout: float,
) -> SecureSession:
    """Open a transport and run a handshake over it; the transport is closed on failure."""
    transport = await connector.connect()
    try:
        async with asyncio.timeout(timeout):
            await transport.send(handshake.start())
            while not handshake.complete:
                reply = handshake.receive(await transport.receive())
                if reply is not None:
                    await transport.send(reply)
    except TimeoutError as err:
        await transport.close()
        raise RequestTimeoutError(f"handshake with {connector.description} timed out") from err
    except BaseException:
        await transport.close()
        raise
    assert handshake.gateway_hello is not None
    return SecureSession(transport, handshake.channel(), handshake.gateway_hello, on_notification)
