"""``rayzig keygen`` and the firmware signing key file it writes (Ed25519, PROTOCOL.md §10.2).

A 0600 secret stored through :mod:`rayzig_core.storage` as ``{"format": 1, "type":
"ed25519-firmware-signing", "private_key": HEX, "public_key": HEX}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rayzig_core.cli.errors import EXIT_OK, CliError
from rayzig_core.cli.keyfile import read_secret_file
from rayzig_core.cli.output import Out
from rayzig_core.cli.spec import handler
from rayzig_core.firmware import generate_signing_key, public_key_of
from rayzig_core.storage import JsonStore, StorageError

SIGNING_KEY_FORMAT = 1
SIGNING_KEY_TYPE = "ed25519-firmware-signing"


@dataclass(frozen=True, slots=True)
class SigningKeyFile:
    """The signing key file's content after its format number."""

    type: str
    private_key: bytes
    public_key: bytes


@dataclass(frozen=True, slots=True)
class KeygenOptions:
    """Where to write the new signing key file."""

    out: str


def _store(path: Path) -> JsonStore[SigningKeyFile]:
    return JsonStore(path, SigningKeyFile, SIGNING_KEY_FORMAT)


def save_signing_key(path: Path, private_key: bytes, public_key: bytes) -> None:
    """Write a new signing key file (0600); an existing file is never replaced."""
    if path.exists():
        raise CliError(f"{path} already exists; choose another file or remove it first.")
    try:
        _store(path).save(SigningKeyFile(SIGNING_KEY_TYPE, private_key, public_key))
    except OSError as err:
        raise CliError(f"Cannot write the signing key file {path}: {err.strerror}.") from None


def load_signing_key(path: Path) -> bytes:
    """The raw Ed25519 private key of a signing key file; CliError if missing or unusable."""
    raw = read_secret_file(path, "signing key file")
    if raw is None:
        raise CliError(f"There is no signing key file {path}: make one with `rayzig keygen`.")
    try:
        private = _store(path).parse(raw).private_key
        public_key_of(private)
    except (StorageError, ValueError):
        raise CliError(f"The signing key file {path} is damaged or not a signing key.") from None
    return private


@handler(KeygenOptions)
def keygen(options: KeygenOptions, out: Out) -> int:
    """Make an Ed25519 firmware signing key file (0600) and print its public key."""
    private, public = generate_signing_key()
    path = Path(options.out).expanduser()
    save_signing_key(path, private, public)
    out.result(
        {"key_file": str(path), "public_key": public.hex()},
        f"Signing key written to {path} (keep it secret).\nPublic key (give it to gateways and "
        f"`--signing-key`):\n{public.hex()}",
    )
    return EXIT_OK
