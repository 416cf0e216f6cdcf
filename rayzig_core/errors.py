"""Exception hierarchy of rayzig_core (PROTOCOL.md §9 error codes).

Two roots: :class:`RayzigError` is what a caller must handle (a refusal, a lost link, bad input);
:class:`RayzigInternalError` is a bug or broken invariant inside the library and is never expected.
No exception message ever contains a password, key or recovery secret.
"""

from __future__ import annotations


class RayzigError(Exception):
    """Base of every error a caller of rayzig_core is expected to handle."""


class RayzigInternalError(Exception):
    """A broken invariant inside rayzig_core: a bug, never part of normal operation."""


# --- link and session -----------------------------------------------------------------------


class ConnectionFailedError(RayzigError):
    """The gateway could not be reached or the link dropped; retrying later may succeed."""


class TransportError(ConnectionFailedError):
    """A transport (TCP, I2C) failed to move bytes."""


class DeviceNotFoundError(TransportError):
    """No gateway answers at the configured I2C bus/address or host/port."""


class DevicePermissionError(TransportError):
    """The operating system refused access to the transport (e.g. /dev/i2c-N permissions)."""


class ProtocolError(RayzigError):
    """Bytes on the wire violate PROTOCOL.md: malformed, oversized, truncated or unexpected."""


class FrameError(ProtocolError):
    """A transport frame is malformed or exceeds the hard size limit (PROTOCOL.md §2)."""


class DecodeError(ProtocolError):
    """A message payload does not decode to a catalogue message (PROTOCOL.md §5)."""


class HandshakeError(ProtocolError):
    """The Noise handshake failed (PROTOCOL.md §3); the session is closed."""


class DecryptError(ProtocolError):
    """AEAD authentication failed: the message was tampered, replayed, reordered or truncated."""


class SessionClosedError(ConnectionFailedError):
    """The secure session ended (authentication failure, replay, peer close)."""


class RequestTimeoutError(ConnectionFailedError):
    """The gateway did not answer a request in time."""


# --- identity and authentication -----------------------------------------------------------


class AuthenticationError(RayzigError):
    """Authentication failed; retrying without user action will not help."""


class GatewayKeyChangedError(AuthenticationError):
    """The gateway presented a static key other than the pinned one (PROTOCOL.md §3.4).

    Never re-pinned silently: a user must confirm the new fingerprint.
    """

    def __init__(self, pinned_fingerprint: str, presented_fingerprint: str) -> None:
        super().__init__(
            f"Gateway key changed: pinned {pinned_fingerprint}, gateway presented "
            f"{presented_fingerprint}. Check the fingerprint on the gateway's label or display, "
            "then pair again if the change is expected."
        )
        self.pinned_fingerprint = pinned_fingerprint
        self.presented_fingerprint = presented_fingerprint


class ClientRevokedError(AuthenticationError):
    """The gateway no longer knows this client's key (revoked, or its user deleted)."""


class InvalidCredentialsError(AuthenticationError):
    """User name or password is wrong."""


class ThrottledError(AuthenticationError):
    """Too many failed attempts: the gateway refuses password checks for a while."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Too many failed attempts; try again in {retry_after:.0f} seconds.")
        self.retry_after = retry_after


class PasswordChangeRequiredError(AuthenticationError):
    """The password is the factory default: it must be changed before anything else works."""


class PasswordRejectedError(RayzigError):
    """A new password fails the password policy (PROTOCOL.md §6.2); ``reasons`` says why."""

    def __init__(self, reasons: tuple[str, ...]) -> None:
        super().__init__("Password rejected: " + "; ".join(reasons))
        self.reasons = reasons


# --- requests ----------------------------------------------------------------------------


class RequestError(RayzigError):
    """The gateway refused a request with an error code (PROTOCOL.md §9)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class PermissionDeniedError(RequestError):
    """The user's level does not allow this request (PROTOCOL.md §7)."""


class OutsideLimitationError(PermissionDeniedError):
    """The module or output lies outside the user's limitation, or the user is read-only (§7.4).

    The message names the module or output and says who can change the limitation (an
    Administrator or System user). A subclass of PermissionDeniedError: code that handles a
    refusal by level handles this one too.
    """


class NotFoundError(RequestError):
    """The module, output, user or client named does not exist."""


class InvalidRequestError(RequestError):
    """The request is well-formed but its values are not acceptable."""


class RequestIdReusedError(RequestError):
    """The gateway refused a request whose id another request of this client used (§5.3).

    It acted on nothing: send the request again with a new request id.

    The reference client numbers requests itself and never reuses an id for another request;
    this comes from a client that reuses ids within the gateway's replay-cache window.
    """


class GatewayBusyError(RequestError):
    """The gateway answered BUSY: it cannot serve the request now; retry shortly with a new id.

    Reserved in protocol version 1 (PROTOCOL.md §9): the reference gateway answers each session's
    requests in order and refuses a password check that would have to wait with THROTTLED
    (§6.5), so it never answers BUSY.
    """


class FirmwareError(RequestError):
    """A firmware image or catalogue was refused (PROTOCOL.md §10)."""


class FirmwareSignatureError(FirmwareError):
    """A firmware manifest's Ed25519 signature does not verify."""


class FirmwareIntegrityError(FirmwareError):
    """A firmware image's size or SHA-256 does not match its manifest (tampered or corrupted)."""


class FirmwareRollbackError(FirmwareError):
    """A firmware image's security version is lower than the installed one (anti-rollback)."""
