"""First contact and pairing: ``info``, ``pair``, ``passwd`` and ``recover``.

Pairing follows PROTOCOL.md §3.3: the person confirms the gateway's fingerprint (§3.4), proves
the password (a factory password must be changed first, §6.1), and the key is saved in the key
file. ``recover`` resets the System user's password with the recovery secret (§6.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rayzig_core.cli import prompts
from rayzig_core.cli.connection import ClientOptions, make_client, resolve_connection
from rayzig_core.cli.errors import EXIT_AUTH, EXIT_OK, CliError
from rayzig_core.cli.firmware import firmware_json, firmware_text
from rayzig_core.cli.keyfile import load_key_file, require_key_file, save_key_file
from rayzig_core.cli.output import Out, level_name
from rayzig_core.cli.prompts import ENV_PASSWORD, ENV_RECOVERY_SECRET
from rayzig_core.cli.spec import handler
from rayzig_core.client import GatewayIdentity
from rayzig_core.errors import GatewayKeyChangedError, PasswordChangeRequiredError


@dataclass(frozen=True, slots=True, kw_only=True)
class PairOptions(ClientOptions):
    """``pair``: as whom, and the fingerprint on the label if it is not to be asked."""

    user: str
    yes_fingerprint: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswdOptions(ClientOptions):
    """``passwd``: whose password (None: the paired user's)."""

    user: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoverOptions(ClientOptions):
    """``recover``: the System user's name (for the policy check) and the label's fingerprint."""

    user: str
    yes_fingerprint: str | None


@handler(ClientOptions)
async def info(options: ClientOptions, out: Out) -> int:
    """Identity of the gateway; with a key file, also firmware versions and who we are."""
    key = load_key_file(options.key_path)
    connection = resolve_connection(options, key.connection if key else None)
    client = make_client(options, connection, key.credentials if key else None)
    try:
        identity = await client.identify()
        data: dict[str, Any] = {
            "serial": identity.serial,
            "model": identity.model,
            "fingerprint": identity.fingerprint,
            "protocol_version": identity.protocol_version,
            "factory_state": identity.factory_state,
            "paired": False,
        }
        lines = [
            f"Gateway        {identity.serial} ({identity.model})",
            f"Fingerprint    {identity.fingerprint}",
            f"Protocol       {identity.protocol_version}",
            "Factory state  "
            + ("yes: run `rayzig pair` to set the password" if identity.factory_state else "no"),
        ]
        if key is None:
            lines.append("Paired         no (run `rayzig pair`)")
        else:
            if identity.public_key != key.credentials.gateway_public_key:
                raise GatewayKeyChangedError(
                    key.credentials.gateway_fingerprint, identity.fingerprint
                )
            session = await client.connect()
            versions = await client.firmware_versions()
            data.update(
                paired=True,
                user=session.user,
                level=session.level.name.lower(),
                client_id=key.credentials.client_id,
                weak_password=session.weak_password,
                firmware=firmware_json(versions),
            )
            lines.append(
                f"Paired         as {session.user} ({level_name(session.level)}), "
                f"client {key.credentials.client_id}"
            )
            if session.weak_password:
                lines.append(
                    "Password       too weak for the current policy: change it with `rayzig passwd`"
                )
            lines.append("Firmware")
            lines.extend(f"  {line}" for line in firmware_text(versions).splitlines())
    finally:
        await client.close()
    out.result(data, "\n".join(lines))
    return EXIT_OK


@handler(PairOptions)
async def pair(options: PairOptions, out: Out) -> int:
    """First contact, fingerprint confirmation, password proof (and forced change), key file."""
    path = options.key_path
    old = load_key_file(path)
    connection = resolve_connection(options, old.connection if old else None)
    client = make_client(options, connection, None)
    try:
        identity = await client.identify()
        confirm_fingerprint(identity, options.yes_fingerprint)
        user = options.user
        password = prompts.read_secret(ENV_PASSWORD, f"Password for {user}: ", "password")
        try:
            credentials = await client.pair(identity, user, password)
        except PasswordChangeRequiredError:
            Out.note(
                f"The gateway is in factory state: the password of {user} must be changed "
                "before anything else."
            )
            new = prompts.new_password(user=user, serial=identity.serial, default_password=password)
            await client.change_password(identity.public_key, user, password, new)
            Out.note(f"Password of {user} changed.")
            credentials = await client.pair(identity, user, new)
    finally:
        await client.close()
    if old is not None and old.credentials.gateway_public_key != identity.public_key:
        Out.note(f"Replacing the pairing with gateway {old.credentials.serial} in {path}.")
    save_key_file(path, credentials, connection)
    out.result(
        {
            "paired": True,
            "serial": credentials.serial,
            "fingerprint": credentials.gateway_fingerprint,
            "user": credentials.user,
            "level": credentials.level.name.lower(),
            "client_id": credentials.client_id,
            "key_file": str(path),
        },
        f"Paired with gateway {credentials.serial} as {credentials.user} "
        f"({level_name(credentials.level)}), client {credentials.client_id}. "
        f"Key saved in {path}.",
    )
    return EXIT_OK


@handler(PasswdOptions)
async def passwd(options: PasswdOptions, out: Out) -> int:
    """Change a password by proving the current one (over a session pinned to the gateway)."""
    key = require_key_file(options.key_path)
    user = options.user or key.credentials.user
    client = make_client(options, resolve_connection(options, key.connection), None)
    try:
        old = prompts.read_secret(
            ENV_PASSWORD, f"Current password for {user}: ", "current password"
        )
        new = prompts.new_password(user=user, serial=key.credentials.serial)
        await client.change_password(key.credentials.gateway_public_key, user, old, new)
    finally:
        await client.close()
    out.result({"changed": True, "user": user}, f"Password of {user} changed.")
    return EXIT_OK


@handler(RecoverOptions)
async def recover(options: RecoverOptions, out: Out) -> int:
    """Reset the System user's password with the site's recovery secret."""
    key = load_key_file(options.key_path)
    client = make_client(
        options, resolve_connection(options, key.connection if key else None), None
    )
    try:
        if key is not None:
            gateway_key, serial = key.credentials.gateway_public_key, key.credentials.serial
        else:
            identity = await client.identify()
            confirm_fingerprint(identity, options.yes_fingerprint)
            gateway_key, serial = identity.public_key, identity.serial
        secret = prompts.read_secret(ENV_RECOVERY_SECRET, "Recovery secret: ", "recovery secret")
        new = prompts.new_password(user=options.user, serial=serial, whose="the System user's new")
        await client.recover_password(gateway_key, secret, new)
    finally:
        await client.close()
    out.result(
        {"recovered": True, "serial": serial},
        f"The System user's password on gateway {serial} was reset. Pair again with "
        "`rayzig pair --user NAME` if this client is not paired.",
    )
    return EXIT_OK


def confirm_fingerprint(identity: GatewayIdentity, expected: str | None) -> None:
    """Make the person confirm the gateway's fingerprint (or compare it with --yes-fingerprint)."""
    if expected is not None:
        if _normalise_fingerprint(expected) != _normalise_fingerprint(identity.fingerprint):
            raise CliError(
                f"The gateway presents fingerprint {identity.fingerprint}, not the {expected} "
                "you gave: do not pair. Check the host and port, and the fingerprint on the "
                "gateway's label or display.",
                EXIT_AUTH,
            )
        return
    prompts.require_terminal(
        "Cannot ask you to confirm the gateway's fingerprint without a terminal: compare it "
        f"with the gateway's label and pass --yes-fingerprint {identity.fingerprint}."
    )
    Out.note(f"Gateway {identity.serial} ({identity.model}) presents the fingerprint")
    Out.note(f"    {identity.fingerprint}")
    answer = prompts.ask_line(
        "Does it match the fingerprint on the gateway's label or display? [yes/no] "
    )
    if answer.lower() not in {"y", "yes"}:
        raise CliError("Fingerprint not confirmed: nothing was changed.")


def _normalise_fingerprint(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch in "0123456789ABCDEF")
