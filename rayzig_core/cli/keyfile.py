"""The key file: this client's pairing with one gateway, a 0600 secret (docs/CLI.md, The key file).

It holds the client's private key, the gateway's pinned public key, serial, user, level and
client id (PROTOCOL.md §3.3), and where to connect; never a password. It is stored through
:mod:`rayzig_core.storage` (atomic, durable, refused when others can read it) as
``{"format": 1, "credentials": {...}, "connection": {...}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayzig_core.cli.connection import Connection
from rayzig_core.cli.errors import EXIT_AUTH, CliError
from rayzig_core.client import ClientCredentials
from rayzig_core.storage import InsecureFileError, JsonStore, StorageError, read_private

KEY_FILE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class KeyFileDocument:
    """The key file's content after its format number."""

    credentials: dict[str, Any]
    """:meth:`ClientCredentials.to_dict`."""
    connection: Connection = field(default_factory=Connection)


@dataclass(frozen=True, slots=True)
class KeyFile:
    """A saved pairing: the key file's path, the credentials, and where the gateway was."""

    path: Path
    credentials: ClientCredentials
    connection: Connection


def load_key_file(path: Path) -> KeyFile | None:
    """The saved pairing, or None if there is no key file; CliError if it is unusable."""
    raw = read_secret_file(path, "key file")
    if raw is None:
        return None
    try:
        document = JsonStore(path, KeyFileDocument, KEY_FILE_FORMAT).parse(raw)
        credentials = ClientCredentials.from_dict(document.credentials)
    except (StorageError, ValueError):
        raise CliError(
            f"The key file {path} is damaged: delete it and pair again with `rayzig pair`."
        ) from None
    return KeyFile(path, credentials, document.connection)


def require_key_file(path: Path) -> KeyFile:
    """The saved pairing; CliError (exit code 3) when this computer is not paired."""
    key = load_key_file(path)
    if key is None:
        raise CliError(
            f"Not paired: there is no key file at {path}. Pair first with `rayzig pair "
            "--host HOST --port PORT` (or pass --key-file).",
            EXIT_AUTH,
        )
    return key


def save_key_file(path: Path, credentials: ClientCredentials, connection: Connection) -> None:
    """Write the key file (0600, its directory 0700 if new), replacing any earlier one."""
    store = JsonStore(path, KeyFileDocument, KEY_FILE_FORMAT)
    try:
        store.save(KeyFileDocument(dict(credentials.to_dict()), connection))
    except OSError as err:
        raise CliError(f"Cannot write the key file {path}: {err.strerror}.") from None


def read_secret_file(path: Path, what: str) -> bytes | None:
    """The bytes of a file that holds a secret, or None if it does not exist.

    CliError names the file as ``what`` and says what to do when other users can read it, it
    belongs to someone else, or it cannot be read.
    """
    try:
        return read_private(path)
    except FileNotFoundError:
        return None
    except InsecureFileError as err:
        raise CliError(f"The {what} {err}") from None
    except OSError as err:
        raise CliError(f"Cannot read the {what} {path}: {err.strerror}.") from None
