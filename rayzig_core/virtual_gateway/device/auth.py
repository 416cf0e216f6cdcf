"""Authentication on the gateway: passwords, throttling, pairing, password change and recovery.

What an unenrolled session may do (PROTOCOL.md §6.1): pair a client key to a user (§3.3), change
a password (the factory one first, §6.1) and reset the factory account with the recovery secret
(§6.4), every attempt throttled per account or user name (§6.3), within the gateway's budget of
checks (§6.5), and every new password held to the policy (§6.2). The gateway never keeps a
password, only verifiers. Each handler is a generator (:mod:`.password_work`): scrypt runs off the
event loop, and whatever it finds is checked again once it is back, as the accounts may have
changed meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import TYPE_CHECKING, Final

from rayzig_core.models import UserLevel
from rayzig_core.password_policy import PolicyViolation, check_password, fold_password
from rayzig_core.protocol import messages as m
from rayzig_core.virtual_gateway import credentials
from rayzig_core.virtual_gateway.credentials import Throttle
from rayzig_core.virtual_gateway.device.accounts import FACTORY_USER
from rayzig_core.virtual_gateway.device.answers import RequestRefused
from rayzig_core.virtual_gateway.device.password_work import Steps, Work, checked, made, run_inline
from rayzig_core.virtual_gateway.device.state import POLICY_VERSION, UserAccount

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.device.connection import GatewayConnection
    from rayzig_core.virtual_gateway.device.gateway import VirtualGateway

_LOGGER = logging.getLogger(__name__)

MAX_USER_NAME = 32
"""Longest user name (printable characters); every request naming a user is held to it (§7.3)."""
MAX_CLIENT_NAME = 64
"""Longest client name a Pair may give (printable characters, §3.3)."""
MAX_WAITING_CHECKS: Final = 4
"""Requests of unenrolled sessions that may wait for a password check at once (§6.5)."""
BUSY_RETRY_AFTER: Final = 1.0
"""``retry_after`` of a check refused because MAX_WAITING_CHECKS are waiting."""
THROTTLED_ANSWER_DELAY: Final = 1.0
"""Seconds a THROTTLED answer to an unenrolled session is held back: a client that ignores
``retry_after`` gets one refusal per second per connection, not one per round trip (§6.5)."""


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


def take_check(gateway: VirtualGateway, connection: GatewayConnection) -> None:
    """Admit one password check into the gateway's budget, or refuse THROTTLED (§6.5).

    The same refusal whatever the name: it says nothing about which accounts exist.
    """
    enrolled = gateway.is_enrolled(connection)
    if not enrolled and gateway.requests.unenrolled_checks_waiting() >= MAX_WAITING_CHECKS:
        raise RequestRefused(
            m.ErrorCode.THROTTLED,
            "The gateway is checking other passwords; try again in a second.",
            retry_after=BUSY_RETRY_AFTER,
        )
    wait = gateway.check_budget.take(gateway.clock(), enrolled=enrolled)
    if wait > 0:
        raise RequestRefused(
            m.ErrorCode.THROTTLED,
            f"Too many password attempts on this gateway; try again in {wait:.0f} seconds.",
            retry_after=wait,
        )
    gateway.note_change()


def verify_password(
    gateway: VirtualGateway, connection: GatewayConnection, user: str, password: str
) -> Generator[Work, object, UserAccount]:
    """The account whose password this is; a wrong name or password is refused and counted.

    The attempt is counted as a failure before the check and the count is reset if the password
    is right, so attempts running side by side cannot share an account's free attempts, and the
    count is durable before the answer leaves (§6.3, §12). An unknown name goes through the same
    steps as a real account, against the default verifier (same scrypt cost) and a throttle of
    its own: THROTTLED and retry_after say nothing about whether the account exists.
    """
    accounts = gateway.accounts
    account = accounts.users.get(user)
    throttle = accounts.throttle_of(user)
    check_throttle(gateway, throttle)
    take_check(gateway, connection)
    verifier = account.verifier if account is not None else accounts.default_verifier
    credentials.record_failure(throttle, gateway.clock())
    gateway.note_change(durable=True)
    matched = yield from checked(verifier, password)
    if account is None or not matched or gateway.accounts.users.get(user) is not account:
        raise RequestRefused(
            m.ErrorCode.INVALID_CREDENTIALS,
            "Wrong user name or password.",
            retry_after=credentials.throttle_remaining(throttle, gateway.clock()) or None,
        )
    credentials.record_success(account.throttle)
    gateway.note_change()
    return account


def weak_password(
    gateway: VirtualGateway, password: str, user: str
) -> Generator[Work, object, None]:
    """Refuse a new password that breaks the policy, with every reason in §6.2's order."""
    found = set(check_password(password, user_name=user, serial=gateway.serial))
    # The default password in any case or Unicode form (§6.2), through its folded verifier:
    # the gateway never keeps the default password itself.
    folded = gateway.accounts.default_folded_verifier
    if (yield from checked(folded, fold_password(password))):
        found.add(PolicyViolation.DEFAULT_PASSWORD)
    violations = [v for v in PolicyViolation if v in found]
    if violations:
        raise RequestRefused(
            m.ErrorCode.PASSWORD_REJECTED,
            "Password rejected: " + " ".join(v.message for v in violations),
            reasons=tuple(str(v.value) for v in violations),
        )


def refuse_weak_password(gateway: VirtualGateway, password: str, user: str) -> None:
    """:func:`weak_password` on the event loop, for a paired session's AddUser."""
    run_inline(weak_password(gateway, password, user))


def pair(gateway: VirtualGateway, connection: GatewayConnection, request: m.Pair) -> Steps:
    """Enrol the session's client key for a user who proved the password (§3.3)."""
    check_user_name(request.user)
    if not 1 <= len(request.client_name) <= MAX_CLIENT_NAME or not (
        request.client_name.isprintable()
    ):
        raise RequestRefused(
            m.ErrorCode.BAD_REQUEST,
            f"Client names have 1 to {MAX_CLIENT_NAME} printable characters.",
        )
    account = yield from verify_password(gateway, connection, request.user, request.password)
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
) -> Steps:
    """Replace a password, given the old one (the way out of factory state, §6.1)."""
    check_user_name(request.user)
    account = yield from verify_password(gateway, connection, request.user, request.old_password)
    yield from weak_password(gateway, request.new_password, account.name)
    verifier = yield from made(request.new_password, gateway.scrypt_n)
    if gateway.accounts.users.get(account.name) is not account:
        raise RequestRefused(m.ErrorCode.NOT_FOUND, "The account was deleted meanwhile.")
    account.verifier = verifier
    account.must_change = False
    account.policy_version = POLICY_VERSION
    gateway.note_change(durable=True)
    return m.Ok()


def recover(
    gateway: VirtualGateway, connection: GatewayConnection, request: m.RecoverPassword
) -> Steps:
    """Give the factory account a new password, given the recovery secret (§6.4)."""
    accounts = gateway.accounts
    throttle = accounts.recovery_throttle
    check_throttle(gateway, throttle)
    take_check(gateway, connection)
    secret = credentials.normalize_recovery_secret(request.recovery_secret)
    credentials.record_failure(throttle, gateway.clock())  # counted first, as in verify_password
    gateway.note_change(durable=True)
    if not (yield from checked(accounts.recovery_verifier, secret)):
        raise RequestRefused(m.ErrorCode.INVALID_CREDENTIALS, "Wrong recovery secret.")
    credentials.record_success(throttle)
    # Recovery resets the factory account, and only while it is a System account (§6.4):
    # with several System users, which one it resets must not depend on account order.
    system_user = gateway.accounts.users.get(FACTORY_USER)
    if system_user is None or system_user.level is not UserLevel.SYSTEM:
        raise RequestRefused(
            m.ErrorCode.NOT_FOUND,
            f"Recovery resets the System account {FACTORY_USER!r}, which no longer exists; "
            "another System user can set passwords by deleting and adding accounts.",
        )
    yield from weak_password(gateway, request.new_password, system_user.name)
    verifier = yield from made(request.new_password, gateway.scrypt_n)
    if gateway.accounts.users.get(FACTORY_USER) is not system_user:
        raise RequestRefused(m.ErrorCode.NOT_FOUND, "The account was deleted meanwhile.")
    system_user.verifier = verifier
    system_user.must_change = False
    system_user.policy_version = POLICY_VERSION
    credentials.record_success(system_user.throttle)
    gateway.note_change(durable=True)
    return m.Ok()
