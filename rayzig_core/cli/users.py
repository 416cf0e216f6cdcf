"""Accounts: ``users list|add|delete`` and ``clients list|revoke`` (PROTOCOL.md §7.3)."""

from __future__ import annotations

from dataclasses import dataclass

from rayzig_core.cli import prompts
from rayzig_core.cli.connection import ClientOptions
from rayzig_core.cli.errors import EXIT_OK
from rayzig_core.cli.keyfile import require_key_file
from rayzig_core.cli.output import Out, jsonable, level_name, table
from rayzig_core.cli.session import paired_session
from rayzig_core.cli.spec import handler
from rayzig_core.cli.values import LEVELS


@dataclass(frozen=True, slots=True, kw_only=True)
class UserOptions(ClientOptions):
    """A user by name."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NewUserOptions(UserOptions):
    """A new user's name and level (user, administrator, system, utility)."""

    level: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeOptions(ClientOptions):
    """The id of an enrolled client key."""

    id: int


@handler(ClientOptions)
async def list_users(options: ClientOptions, out: Out) -> int:
    """List gateway users."""
    async with paired_session(options) as (client, _):
        users = await client.list_users()
    out.result(
        [{"name": u.name, "level": u.level.name.lower()} for u in users],
        table(["NAME", "LEVEL"], [[u.name, level_name(u.level)] for u in users]),
    )
    return EXIT_OK


@handler(NewUserOptions)
async def add_user(options: NewUserOptions, out: Out) -> int:
    """Create a user; its password is asked twice (or taken from RAYZIG_NEW_PASSWORD)."""
    level = LEVELS[options.level]
    key = require_key_file(options.key_path)
    password = prompts.new_password(
        user=options.name, serial=key.credentials.serial, whose=f"{options.name}'s"
    )
    async with paired_session(options, key) as (client, _):
        await client.add_user(options.name, level, password)
    out.result(
        {"added": True, "name": options.name, "level": level.name.lower()},
        f"User {options.name} ({level_name(level)}) added.",
    )
    return EXIT_OK


@handler(UserOptions)
async def delete_user(options: UserOptions, out: Out) -> int:
    """Delete a user (its clients lose access at once)."""
    async with paired_session(options) as (client, _):
        await client.delete_user(options.name)
    out.result(
        {"deleted": True, "name": options.name},
        f"User {options.name} deleted; clients paired as {options.name} lost access.",
    )
    return EXIT_OK


@handler(ClientOptions)
async def list_clients(options: ClientOptions, out: Out) -> int:
    """List enrolled client keys."""
    async with paired_session(options) as (client, key):
        clients = await client.list_clients()
    own = key.credentials.client_id
    out.result(
        [{**jsonable(c), "this_client": c.client_id == own} for c in clients],
        table(
            ["ID", "NAME", "USER", "FINGERPRINT", ""],
            [
                [
                    str(c.client_id),
                    c.name,
                    c.user,
                    c.fingerprint,
                    "(this client)" if c.client_id == own else "",
                ]
                for c in clients
            ],
        ),
    )
    return EXIT_OK


@handler(RevokeOptions)
async def revoke_client(options: RevokeOptions, out: Out) -> int:
    """Revoke an enrolled client key (this client's own key deletes the key file too)."""
    async with paired_session(options) as (client, key):
        own = options.id == key.credentials.client_id
        await client.revoke_client(0 if own else options.id)
    text = f"Client {options.id} revoked."
    if own:
        key.path.unlink(missing_ok=True)
        text += f" It was this client: {key.path} was deleted; pair again to reconnect."
    out.result({"revoked": True, "client_id": options.id, "this_client": own}, text)
    return EXIT_OK
