"""Home Assistant's own gateway account: Administrator at most, never a stored System key.

Least privilege (ETSI EN 303 645, provision 5.1-4 and 5.4): a System user signs in once (in the
config flow, a reauthentication or the move repair); with that session Home Assistant creates an
account of its own, ``home-assistant-<6 hex digits>`` at Administrator level (switching, restore
presets, User and Utility accounts: everything its features need, PROTOCOL.md §7.2), with a
password generated here that is used once to pair Home Assistant's key under it and then dropped:
it is never stored, logged, shown or raised. The signer's own account stays untouched; the key its
sign-in enrolled is revoked. An Administrator's or User's sign-in needs no account of its own (it
holds no System right already): Home Assistant pairs under it as before.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.core import HomeAssistant

from rayzig_core import (
    ClientCredentials,
    GatewayIdentity,
    RayzigClient,
    RayzigError,
    UserLevel,
)

from .connection import create_connector
from .passwords import generate_password

_LOGGER = logging.getLogger(__name__)

CLIENT_NAME: Final = "Home Assistant"
ACCOUNT_PREFIX: Final = "home-assistant-"
DEDICATED_LEVEL: Final = UserLevel.ADMINISTRATOR
"""Switching needs User; restore presets and the account actions need Administrator (§7.2)."""
MAX_USERS: Final = 30
"""Most accounts a gateway holds (PROTOCOL.md §7.3)."""
CONF_DEDICATED_ACCOUNT: Final = "dedicated_account"
"""Entry data: True when the stored key belongs to Home Assistant's own account."""


class AccountsFullError(RayzigError):
    """The gateway already holds its 30 accounts: one must be deleted first."""


class NotSystemUserError(RayzigError):
    """The credentials typed for a System-only operation are not a System user's."""


@dataclass(frozen=True, slots=True)
class HomeAssistantKey:
    """The key Home Assistant stores, and whether its account is Home Assistant's own."""

    credentials: ClientCredentials
    dedicated: bool


def needs_own_account(level: UserLevel) -> bool:
    """Whether a key of this level is more than Home Assistant needs (a System user's)."""
    return level is UserLevel.SYSTEM


def identity_of(credentials: ClientCredentials) -> GatewayIdentity:
    """The pinned gateway of stored credentials, as pairing needs it."""
    return GatewayIdentity(
        public_key=credentials.gateway_public_key,
        serial=credentials.serial,
        model="",
        factory_state=False,
        protocol_version=1,
    )


async def async_take_own_account(
    hass: HomeAssistant,
    connection: Mapping[str, Any],
    identity: GatewayIdentity,
    signer: ClientCredentials,
    replaces: str | None = None,
) -> HomeAssistantKey:
    """With a System user's key, create Home Assistant's account and pair a new key under it.

    ``replaces`` names an earlier account of Home Assistant's to delete first (reauthentication:
    nobody knows its password). The signer's key is left as it is: the caller revokes it.
    """
    if not needs_own_account(signer.level):
        return HomeAssistantKey(signer, dedicated=False)
    async with RayzigClient(create_connector(connection), signer, client_name=CLIENT_NAME) as admin:
        await admin.connect()
        names = {user.name for user in await admin.list_users()}
        if replaces is not None and replaces in names and replaces.startswith(ACCOUNT_PREFIX):
            await admin.delete_user(replaces)
            names.discard(replaces)
        if len(names) >= MAX_USERS:
            raise AccountsFullError(f"The gateway already holds {MAX_USERS} accounts")
        name = _free_name(names)
        password = await hass.async_add_executor_job(generate_password, name, identity.serial)
        await admin.add_user(name, DEDICATED_LEVEL, password)
        try:
            async with RayzigClient(create_connector(connection), client_name=CLIENT_NAME) as own:
                credentials = await own.pair(identity, name, password)
        except BaseException:
            with contextlib.suppress(RayzigError):
                await admin.delete_user(name)
            raise
        finally:
            del password
    _LOGGER.info("Home Assistant now uses its own gateway account %s (Administrator level)", name)
    return HomeAssistantKey(credentials, dedicated=True)


def _free_name(taken: set[str]) -> str:
    """A name of the ``home-assistant-`` family that no account has yet (1 to 32 characters)."""
    while True:
        name = f"{ACCOUNT_PREFIX}{secrets.token_hex(3)}"
        if name not in taken:
            return name


async def async_revoke_key(connection: Mapping[str, Any], credentials: ClientCredentials) -> bool:
    """Revoke a key with itself (RevokeClient 0); False, logged, if the gateway refused or was away.

    Used for the temporary key a System user's sign-in enrolled and for the key an entry kept
    before it moved to its own account.
    """
    try:
        async with RayzigClient(
            create_connector(connection), credentials, client_name=CLIENT_NAME
        ) as client:
            await client.connect()
            await client.revoke_client(0)
    except RayzigError as err:
        _LOGGER.warning(
            "Could not revoke the gateway key of %s (client %s): %s; revoke it on the gateway "
            "(`rayzig clients revoke %s`)",
            credentials.user,
            credentials.client_id,
            err,
            credentials.client_id,
        )
        return False
    return True


@contextlib.asynccontextmanager
async def async_system_session(
    connection: Mapping[str, Any], identity: GatewayIdentity, user: str, password: str
) -> AsyncIterator[RayzigClient]:
    """Sign in as a System user for one operation (a firmware install, an Administrator account).

    The password pairs a temporary key, which is revoked when the block ends; neither the
    password nor the key is kept. Raises NotSystemUserError for another level's credentials.
    """
    client = RayzigClient(create_connector(connection), client_name=CLIENT_NAME)
    try:
        credentials = await client.pair(identity, user, password)
        await client.connect()
        try:
            if credentials.level is not UserLevel.SYSTEM:
                raise NotSystemUserError(f"{credentials.user} is not a System user")
            yield client
        finally:
            with contextlib.suppress(RayzigError):
                await client.revoke_client(0)
    finally:
        await client.close()
