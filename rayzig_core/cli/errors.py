"""Exit codes, the CLI's own errors, and the one line and exit code every failure ends with."""

from __future__ import annotations

from collections.abc import Sequence

from rayzig_core.errors import (
    AuthenticationError,
    ClientRevokedError,
    ConnectionFailedError,
    GatewayKeyChangedError,
    InvalidCredentialsError,
    PasswordChangeRequiredError,
    PasswordRejectedError,
    ProtocolError,
    RayzigError,
    RayzigInternalError,
    RequestError,
    ThrottledError,
)
from rayzig_core.password_policy import PolicyViolation

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_CONNECT = 2
EXIT_AUTH = 3
EXIT_REFUSED = 4
EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141
"""stdout's reader stopped early (``| head``): 128 + SIGPIPE, as for a Unix tool it kills."""


class CliError(Exception):
    """A failure to report as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class StdoutClosedError(Exception):
    """stdout's reader stopped reading (``rayzig modules | head -2``): end quietly, no message."""


class UsageError(Exception):
    """A command line that cannot be parsed: reported with the usage hint of ``prog``."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog

    def line(self) -> str:
        """The one line on stderr: what is wrong and where the help is."""
        return f"{self.prog}: {self} (see `{self.prog} --help`)"


def describe(err: BaseException) -> tuple[int, str]:
    """Exit code and one line saying what went wrong and what to do."""
    if isinstance(err, CliError):
        return err.code, str(err)
    if isinstance(err, GatewayKeyChangedError):
        return EXIT_AUTH, str(err)
    if isinstance(err, ClientRevokedError):
        return EXIT_AUTH, (
            "The gateway no longer accepts this client's key (revoked, or its user was "
            "deleted): pair again with `rayzig pair`."
        )
    if isinstance(err, ThrottledError):
        return EXIT_AUTH, (
            f"Too many failed attempts: the gateway accepts the next one in "
            f"{max(err.retry_after, 1):.0f} seconds. Wait, then try again."
        )
    if isinstance(err, InvalidCredentialsError):
        return EXIT_AUTH, (
            "Wrong user name, password or recovery secret. Check them and try again (after "
            "repeated failures the gateway makes you wait)."
        )
    if isinstance(err, PasswordChangeRequiredError):
        return EXIT_AUTH, (
            "The gateway still has its factory password: run `rayzig pair` to set a new one."
        )
    if isinstance(err, AuthenticationError):
        return EXIT_AUTH, f"Authentication failed: {err}"
    if isinstance(err, PasswordRejectedError):
        return EXIT_REFUSED, "The gateway refused the password: " + " ".join(
            _policy_reasons(err.reasons)
        )
    if isinstance(err, RequestError):
        return EXIT_REFUSED, f"The gateway refused: {err}"
    if isinstance(err, ConnectionFailedError):
        return EXIT_CONNECT, f"Cannot reach the gateway: {err}"
    if isinstance(err, ProtocolError):
        return EXIT_CONNECT, (
            f"The other end does not speak the Rayzig protocol correctly ({err}); check that the "
            "host and port lead to a Rayzig gateway or bridge."
        )
    if isinstance(err, RayzigInternalError):
        return EXIT_INTERNAL, f"Internal error: {err}. Please report this bug."
    if isinstance(err, RayzigError):
        return EXIT_INTERNAL, f"Unexpected error: {err}. Please report this bug."
    return EXIT_INTERNAL, (
        f"Internal error ({type(err).__name__}). Please report this bug with the command you ran."
    )


def _policy_reasons(reasons: Sequence[str]) -> list[str]:
    """The gateway's password-policy codes as sentences (PROTOCOL.md §6.2; unknown ones as sent)."""
    messages = []
    for reason in reasons:
        try:
            messages.append(PolicyViolation(reason).message)
        except ValueError:
            messages.append(reason)
    return messages
