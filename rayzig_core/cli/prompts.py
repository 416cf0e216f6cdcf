"""Secrets and answers from the environment or the terminal, and password-policy messages.

Secrets are never taken from the command line and never echoed. A new password is checked
against the policy of PROTOCOL.md §6.2 before it is sent, and every reason is shown.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence

from rayzig_core.cli.errors import EXIT_REFUSED, EXIT_USAGE, CliError
from rayzig_core.cli.output import Out
from rayzig_core.password_policy import PolicyViolation, check_password

ENV_PASSWORD = "RAYZIG_PASSWORD"  # noqa: S105 - names of environment variables, not secrets
ENV_NEW_PASSWORD = "RAYZIG_NEW_PASSWORD"  # noqa: S105
ENV_RECOVERY_SECRET = "RAYZIG_RECOVERY_SECRET"  # noqa: S105
PASSWORD_ATTEMPTS = 3


def interactive() -> bool:
    """Whether the person running the command can be asked (stdin is a terminal)."""
    return sys.stdin.isatty()


def require_terminal(message: str) -> None:
    """Stop with ``message`` (exit code 1) when there is nobody to ask."""
    if not interactive():
        raise CliError(message)


def ask_secret(prompt: str) -> str:
    """Ask for a secret without echoing it."""
    try:
        return getpass.getpass(prompt, stream=sys.stderr)
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        raise CliError("Cancelled.", EXIT_USAGE) from None


def ask_line(prompt: str) -> str:
    """Ask for a line of (non-secret) text; the prompt goes to stderr."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise CliError("Cancelled.", EXIT_USAGE)
    return line.strip()


def read_secret(env: str, prompt: str, what: str) -> str:
    """Return a secret from ``env`` or, on a terminal, from a prompt that does not echo."""
    value = os.environ.get(env)
    if value is not None:
        if not value:
            raise CliError(f"{env} is set but empty: set it to the {what}, or unset it.")
        return value
    require_terminal(f"Cannot prompt for the {what} without a terminal: set {env}.")
    value = ask_secret(prompt)
    if not value:
        raise CliError(f"No {what} given.")
    return value


def policy_messages(violations: Sequence[PolicyViolation]) -> list[str]:
    """Why a password is refused, one sentence per reason."""
    return [violation.message for violation in violations]


def new_password(
    *, user: str, serial: str, default_password: str | None = None, whose: str = "the new"
) -> str:
    """Return a new password from RAYZIG_NEW_PASSWORD or asked twice, checked by the policy."""

    def violations(password: str) -> tuple[PolicyViolation, ...]:
        return check_password(
            password, user_name=user, serial=serial, default_password=default_password
        )

    value = os.environ.get(ENV_NEW_PASSWORD)
    if value is not None:
        found = violations(value)
        if found:
            raise CliError(
                f"{ENV_NEW_PASSWORD} is not an acceptable password: "
                + " ".join(policy_messages(found)),
                EXIT_REFUSED,
            )
        return value
    require_terminal(
        f"Cannot prompt for {whose} password without a terminal: set {ENV_NEW_PASSWORD}."
    )
    Out.note(
        "Choose a password of at least 15 characters; several unrelated words work well. "
        "Any characters are allowed."
    )
    for _ in range(PASSWORD_ATTEMPTS):
        first = ask_secret(f"New password for {user}: ")
        found = violations(first)
        if found:
            Out.note("That password cannot be used:")
            for message in policy_messages(found):
                Out.note(f"  - {message}")
            continue
        if ask_secret("Repeat the new password: ") != first:
            Out.note("The two entries differ; try again.")
            continue
        return first
    raise CliError(f"No acceptable new password after {PASSWORD_ATTEMPTS} attempts.", EXIT_REFUSED)
