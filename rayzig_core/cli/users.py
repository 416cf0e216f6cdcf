"""Accounts: ``users list|add|limit|delete`` and ``clients list|revoke`` (PROTOCOL.md §7.3, §7.4).

People number outputs from 1 (``--outputs 3:1`` is output index 0 of module 3); the protocol
counts them from 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rayzig_core.cli import prompts
from rayzig_core.cli.connection import ClientOptions
from rayzig_core.cli.errors import EXIT_OK, CliError
from rayzig_core.cli.keyfile import require_key_file
from rayzig_core.cli.output import Out, jsonable, level_name, table
from rayzig_core.cli.session import paired_session
from rayzig_core.cli.spec import handler
from rayzig_core.cli.values import LEVELS
from rayzig_core.models import OutputRef, UserLimitation
from rayzig_core.permissions import LIMITABLE_LEVELS


@dataclass(frozen=True, slots=True, kw_only=True)
class UserOptions(ClientOptions):
    """A user by name."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitationOptions(UserOptions):
    """A User's limitation as given: modules, outputs (0-based already), read-only."""

    modules: tuple[int, ...] | None
    outputs: tuple[OutputRef, ...] | None
    read_only: bool

    def limitation(self) -> UserLimitation | None:
        """The limitation asked for; None if no option asks for one.

        ``--read-only`` alone limits the whole site to reading (PROTOCOL.md §7.4).
        """
        modules, outputs = self.modules or (), self.outputs or ()
        if not (modules or outputs or self.read_only):
            return None
        return UserLimitation(
            modules, outputs, read_only=self.read_only, all_modules=not (modules or outputs)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NewUserOptions(LimitationOptions):
    """A new user's name, level (user, administrator, system, utility) and limitation."""

    level: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitOptions(LimitationOptions):
    """A User's new limitation, or ``--unlimited`` to lift it."""

    unlimited: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeOptions(ClientOptions):
    """The id of an enrolled client key."""

    id: int


def output_name(ref: OutputRef) -> str:
    """An output as people write it: ``MODULE:NUMBER``, numbered from 1."""
    return f"{ref.module_id}:{ref.output + 1}"


def limitation_text(limitation: UserLimitation | None) -> str:
    """A limitation in one phrase (``modules 3, 5 and outputs 2:2, read-only``); ``-`` if none."""
    if limitation is None:
        return "-"
    parts = ["every module"] if limitation.all_modules else []
    if limitation.modules:
        parts.append("modules " + ", ".join(str(module) for module in limitation.modules))
    if limitation.outputs:
        parts.append("outputs " + ", ".join(output_name(ref) for ref in limitation.outputs))
    text = " and ".join(parts) or "nothing"
    return f"{text}, read-only" if limitation.read_only else text


def limitation_json(limitation: UserLimitation | None) -> dict[str, Any] | None:
    """A limitation for ``--json``: outputs with their number (from 1) and protocol index."""
    if limitation is None:
        return None
    return {
        "modules": list(limitation.modules),
        "outputs": [
            {"module": ref.module_id, "number": ref.output + 1, "index": ref.output}
            for ref in limitation.outputs
        ],
        "read_only": limitation.read_only,
        "all_modules": limitation.all_modules,
    }


@handler(ClientOptions)
async def list_users(options: ClientOptions, out: Out) -> int:
    """List gateway users and the limitations of User accounts."""
    async with paired_session(options) as (client, _):
        users = await client.list_users()
        limitations = {
            user.name: await client.get_user_limitation(user.name)
            for user in users
            if user.level in LIMITABLE_LEVELS
        }
    out.result(
        [
            {
                "name": u.name,
                "level": u.level.name.lower(),
                "limitation": limitation_json(limitations.get(u.name)),
            }
            for u in users
        ],
        table(
            ["NAME", "LEVEL", "LIMITED TO"],
            [
                [u.name, level_name(u.level), limitation_text(limitations.get(u.name))]
                for u in users
            ],
        ),
    )
    return EXIT_OK


@handler(NewUserOptions)
async def add_user(options: NewUserOptions, out: Out) -> int:
    """Create a user (limited if asked); its password is asked twice (or RAYZIG_NEW_PASSWORD)."""
    level = LEVELS[options.level]
    limitation = options.limitation()
    if limitation is not None and level not in LIMITABLE_LEVELS:
        raise CliError(
            "Only User accounts can be limited: --modules, --outputs and --read-only need "
            "--level user."
        )
    key = require_key_file(options.key_path)
    password = prompts.new_password(
        user=options.name, serial=key.credentials.serial, whose=f"{options.name}'s"
    )
    async with paired_session(options, key) as (client, _):
        if limitation is None:
            await client.add_user(options.name, level, password)
        else:
            # Deleted again if the gateway refuses the limitation: no unlimited user is left.
            await client.add_limited_user(options.name, password, limitation)
            limitation = await client.get_user_limitation(options.name.strip())
    text = f"User {options.name} ({level_name(level)}) added"
    out.result(
        {
            "added": True,
            "name": options.name,
            "level": level.name.lower(),
            "limitation": limitation_json(limitation),
        },
        f"{text}, limited to {limitation_text(limitation)}." if limitation else f"{text}.",
    )
    return EXIT_OK


@handler(LimitOptions)
async def limit_user(options: LimitOptions, out: Out) -> int:
    """Limit a User to modules and outputs or to reading, or lift the limitation (§7.4)."""
    wanted = options.limitation()
    if options.unlimited == (wanted is not None):
        raise CliError(
            "Say what to limit the user to (--modules, --outputs, --read-only), or lift the "
            "limitation with --unlimited, not both."
            if options.unlimited
            else "Say what to limit the user to (--modules, --outputs, --read-only), or lift "
            "the limitation with --unlimited."
        )
    async with paired_session(options) as (client, _):
        await client.set_user_limitation(options.name, wanted)
        stored = await client.get_user_limitation(options.name)
    text = (
        f"User {options.name} is limited to {limitation_text(stored)}"
        if stored
        else f"User {options.name} is no longer limited"
    )
    out.result(
        {"name": options.name, "limitation": limitation_json(stored)},
        f"{text}; its clients reconnect and see what it may use now.",
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
