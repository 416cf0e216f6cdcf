"""Authentication on the gateway: passwords, throttling, pairing, password change and recovery.

What an unenrolled session may do (PROTOCOL.md §6.1): pair a client key to a user (§3.3), change
a password (the factory one first, §6.1) and reset the factory account with the recovery secret
(§6.4), every attempt throttled per account or user name (§6.3) and every new password held to the
policy (§6.2). The gateway never keeps a password, only verifiers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rayzig_core.models import UserLevel
from rayzig_core.password_policy import PolicyViolation, check_password, fold_password
from rayzig_core.protocol import messages as m
from rayzig_core.virtual_gateway import credentials
from rayzig_core.virtual_gateway.credentials import Throttle
from rayzig_core.virtual_gateway.device.accounts import FACTORY_USER
from rayzig_core.virtual_gateway.device.answers import RequestRefused
from rayzig_core.virtual_gateway.device.state import POLICY_VERSION, UserAccount

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.device.connection import GatewayConnection
    from rayzig_core.virtual_gateway.device.gateway import VirtualGateway

_LOGGER = logging.getLogger(__name__)

MAX_USER_NAME = 32
"""Longest user name (printable characters); every request naming a user is held to it (§7.3)."""
MAX_CLIENT_NAME = 64
"""Longest client name a Pair may give (printable characters, §3.3)."""


def check_user_name(name: str) -> None:
    """Refuse a user name that no account can have: 1 to 32 printable characters (§7.3).

    Checked before anything else, so that a reply never echoes an unbounded string (§9).
    """
    if not 1 <= len(name) <= MAX_USER_NAME or not name.isprintable():
        raise RequestRefused(
            m.ErrorCode.BAD_REQUEST,
            f"User names have 1 to {MAX_USER_NAME} printable characters.",
        )


def check_throttle(gateway: VirtualGateway, throttle: Throttle) -> None:
    """Refuse an attempt while ``throttle`` blocks it, saying when to try again (§6.3)."""
    remaining = credentials.throttle_remaining(throttle, gateway.clock())
    if remaining > 0:
        raise RequestRefused(
            m.ErrorCode.THROTTLED,
            f"Too many failed attempts; try again in {remaining:.0f} seconds.",
            retry_after=remaining,
        )


def verify_password(gateway: VirtualGateway, user: str, password: str) -> UserAccount:
    """The account whose password this is; a wrong name or password is refused and counted.

    An unknown name goes through the same steps as a real account, against the default verifier
    (same scrypt cost) and a throttle of its own: THROTTLED and retry_after say nothing about
    whether the account exists (§6.3).
    """
    accounts = gateway.accounts
    account = accounts.users.get(user)
    throttle = accounts.throttle_of(user)
    check_throttle(gateway, throttle)
    verifier = account.verifier if account is not None else accounts.default_verifier
    matched = credentials.check_verifier(verifier, password)
    if account is None or not matched:
        credentials.record_failure(throttle, gateway.clock())
        # Durable for an unknown name too: the same disk work, so timing reveals nothing.
        gateway.note_change(durable=True)
        raise RequestRefused(
            m.ErrorCode.INVALID_CREDENTIALS,
            "Wrong user name or password.",
            retry_after=credentials.throttle_remaining(throttle, gateway.clock()) or None,
        )
    if account.throttle.failures:
        credentials.record_success(account.throttle)
        gateway.note_change()
    return account


def refuse_weak_password(gateway: VirtualGateway, password: str, user: str) -> None:
    """Refuse a new password that breaks the policy, with every reason in §6.2's order."""
    found = set(check_password(password, user_name=user, serial=gateway.serial))
    # The default password in any case or Unicode form (§6.2), through its folded verifier:
    # the gateway never keeps the default password itself.
    folded = gateway.accounts.default_folded_verifier
    if credentials.check_verifier(folded, fold_password(password)):
        found.add(PolicyViolation.DEFAULT_PASSWORD)
    violations = [v for v in PolicyViolation if v in found]
    if violations:
        raise RequestRefused(
            m.ErrorCode.PASSWORD_REJECTED,
            "Password rejected: " + " ".join(v.message for v in violations),
            reasons=tuple(str(v.value) for v in violations),
        )


def pair(gateway: VirtualGateway, connection: GatewayConnection, request: m.Pair) -> m.Response:
    """Enrol the session's client key for a user who proved the password (§3.3)."""
    check_user_name(request.user)
    if not 1 <= len(request.client_name) <= MAX_CLIENT_NAME or not (
        request.client_name.isprintable()
    ):
        raise RequestRefused(
            m.ErrorCode.BAD_REQUEST,
            f"Client names have 1 to {MAX_CLIENT_NAME} printable characters.",
        )
    account = verify_password(gateway, request.user, request.password)
    if account.must_change or gateway.accounts.factory_state:
        raise RequestRefused(
            m.ErrorCode.PASSWORD_CHANGE_REQUIRED,
            "The factory password must be replaced first: set a new password, then pair.",
        )
    record = gateway.accounts.enrol(connection.peer_key, request.client_name, account.name)
    connection.client = record
    gateway.note_change(durable=True)
    _LOGGER.info("Enrolled client %s for user %s", record.client_id, account.name)
    return m.Paired(record.client_id, account.name, account.level)


def change_password(
    gateway: VirtualGateway, connection: GatewayConnection, request: m.ChangePassword
) -> m.Response:
    """Replace a password, given the old one (the way out of factory state, §6.1)."""
    check_user_name(request.user)
    account = verify_password(gateway, request.user, request.old_password)
    refuse_weak_password(gateway, request.new_password, account.name)
    account.verifier = credentials.make_verifier(request.new_password, n=gateway.scrypt_n)
    account.must_change = False
    account.policy_version = POLICY_VERSION
    gateway.note_change(durable=True)
    return m.Ok()


def recover(
    gateway: VirtualGateway, connection: GatewayConnection, request: m.RecoverPassword
) -> m.Response:
    """Give the factory account a new password, given the recovery secret (§6.4)."""
    accounts = gateway.accounts
    check_throttle(gateway, accounts.recovery_throttle)
    secret = credentials.normalize_recovery_secret(request.recovery_secret)
    if not credentials.check_verifier(accounts.recovery_verifier, secret):
        credentials.record_failure(accounts.recovery_throttle, gateway.clock())
        gateway.note_change(durable=True)
        raise RequestRefused(m.ErrorCode.INVALID_CREDENTIALS, "Wrong recovery secret.")
    credentials.record_success(accounts.recovery_throttle)
    # Recovery resets the factory account, and only while it is a System account (§6.4):
    # with several System users, which one it resets must not depend on account order.
    system_user = accounts.users.get(FACTORY_USER)
    if system_user is None or system_user.level is not UserLevel.SYSTEM:
        raise RequestRefused(
            m.ErrorCode.NOT_FOUND,
            f"Recovery resets the System account {FACTORY_USER!r}, which no longer exists; "
            "another System user can set passwords by deleting and adding accounts.",
        )
    refuse_weak_password(gateway, request.new_password, system_user.name)
    system_user.verifier = credentials.make_verifier(request.new_password, n=gateway.scrypt_n)
    system_user.must_change = False
    system_user.policy_version = POLICY_VERSION
    credentials.record_success(system_user.throttle)
    gateway.note_change(durable=True)
    return m.Ok()
