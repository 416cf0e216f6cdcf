"""Persistence: how rayzig_core writes files and turns dataclasses into JSON (PROTOCOL.md §12).

Every file is written to a temporary sibling, flushed to disk, renamed over the old one and its
directory synced, so a power loss leaves the old file or the new one, never a mix. Files that hold
secrets are created 0600 and refused on reading when other users could read them. A
:class:`JsonStore` adds a ``format`` number and a typed codec (mashumaro, with bytes as hex and
enums as their values), so no class writes its own to/from-JSON pair.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from mashumaro.codecs.basic import BasicDecoder, BasicEncoder
from mashumaro.dialect import Dialect
from mashumaro.exceptions import InvalidFieldValue, MissingField

from rayzig_core.errors import RayzigError

T = TypeVar("T")

PRIVATE_MODE = 0o600
"""Mode of a file that holds a secret (keys, verifiers): only its owner may read or write it."""
PUBLIC_MODE = 0o644
"""Mode of a file anyone may read (signed firmware, catalogues)."""


class StorageError(RayzigError):
    """A stored file cannot be read, written or understood; the message says what to do."""


class InsecureFileError(StorageError):
    """A file that holds a secret is readable by other users or belongs to someone else."""


class StoredValueError(ValueError):
    """Raised by a stored type's own checks; names the rule broken, never the value (secrets).

    :meth:`JsonCodec.decode` passes its message on; every other decoding error is reduced to the
    name of the field.
    """


def _strict_int(value: Any) -> int:
    if type(value) is not int:  # bool is an int to Python, never to a stored file
        raise TypeError("expected an integer")
    return value


def _strict_float(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise TypeError("expected a finite number")
    return float(value)


def _strict_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError("expected true or false")
    return bool(value)


def _strict_str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("expected a string")
    return str(value)


class HexBytesDialect(Dialect):
    """JSON conventions of every rayzig file: bytes as lower-case hex, enums as their values.

    Scalars are taken as they are, never converted ("1" is no integer, 1 no boolean), so that a
    damaged file is refused rather than half understood; a field's alias names its key both ways.
    """

    serialization_strategy = {
        bytes: {"serialize": bytes.hex, "deserialize": bytes.fromhex},
        int: {"deserialize": _strict_int},
        float: {"deserialize": _strict_float},
        bool: {"deserialize": _strict_bool},
        str: {"deserialize": _strict_str},
    }
    serialize_by_alias = True


class JsonCodec(Generic[T]):
    """Converts one dataclass type to and from JSON-compatible values (mashumaro, hex bytes)."""

    def __init__(self, shape: type[T]) -> None:
        self._encoder: BasicEncoder[T] = BasicEncoder(shape, default_dialect=HexBytesDialect)
        self._decoder: BasicDecoder[T] = BasicDecoder(shape, default_dialect=HexBytesDialect)

    def encode(self, value: T) -> Any:
        """JSON-compatible values for ``value`` (dicts, lists, str, int, float, bool, None)."""
        return self._encoder.encode(value)

    def decode(self, data: Any) -> T:
        """The value ``data`` describes; ValueError names the first field that is wrong."""
        try:
            return self._decoder.decode(data)
        except (TypeError, ValueError, LookupError, AttributeError) as err:
            raise ValueError(_describe_decode_error(err)) from None


def _describe_decode_error(err: BaseException) -> str:
    """One line naming what failed to decode, without the offending value (it may be secret).

    mashumaro chains one InvalidFieldValue per nesting level, so the path of field names leads
    to the innermost error; a :class:`StoredValueError` there adds the rule that was broken.
    """
    path: list[str] = []
    cause: BaseException | None = err
    while isinstance(cause, InvalidFieldValue):
        path.append(_stored_key(cause.holder_class, cause.field_name))
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, MissingField):
        return f"missing field {'.'.join([*path, cause.field_name])!r}"
    rule = f": {cause}" if isinstance(cause, StoredValueError) else ""
    if path:
        return f"field {'.'.join(path)!r} has a wrong type or value{rule}"
    if rule:
        return rule[2:]
    return f"wrong type or value ({type(err).__name__})"


def _stored_key(holder: type[Any], field_name: str) -> str:
    """The key a dataclass field has in the file: its alias, if it has one."""
    if is_dataclass(holder):
        for item in fields(holder):
            if item.name == field_name:
                return str(item.metadata.get("alias", field_name))
    return field_name


def write_atomic(path: Path, data: bytes, *, mode: int = PRIVATE_MODE) -> None:
    """Replace ``path`` with ``data`` atomically and durably, with file mode ``mode``.

    The temporary file is created with ``mode`` already set (never briefly readable by others),
    flushed and fsynced before the rename, and the directory is fsynced after it: once this
    returns, a power loss keeps the new content. A new directory is created 0700 for private
    files. Raises OSError; the temporary file never outlives a failure.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if mode == PRIVATE_MODE else 0o777)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp_path.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private(path: Path) -> bytes:
    """Read a file that holds a secret, refusing one that others can read or that is not ours.

    Raises FileNotFoundError when it does not exist, :class:`InsecureFileError` (with the command
    that fixes it) when its mode or owner is wrong, and OSError for other failures. The checks are
    made on the opened descriptor, so the file cannot be swapped between check and read.
    """
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        if os.name == "posix":
            info = os.fstat(fd)
            file_mode = stat.S_IMODE(info.st_mode)
            if file_mode & 0o077:
                raise InsecureFileError(
                    f"{path} is accessible to other users (mode {file_mode:04o}) but holds a "
                    f"secret: run `chmod 600 {path}`, or delete it and create a new one."
                )
            if info.st_uid != os.getuid():
                raise InsecureFileError(f"{path} belongs to another user; use a file of your own.")
        return handle.read()


@dataclass(frozen=True, slots=True)
class JsonStore(Generic[T]):
    """A JSON file holding one value of type ``shape`` under a ``format`` number.

    The file is ``{"format": N, ...fields of the value...}``. Loading a file of another format,
    damaged JSON or a value of the wrong shape raises :class:`StorageError` naming the file and
    what to do (``damaged_hint``); nothing is ever silently replaced.
    """

    path: Path
    shape: type[T]
    format: int
    private: bool = True
    damaged_hint: str = "restore it from a backup or delete it"

    @property
    def _codec(self) -> JsonCodec[T]:
        return _codec_for(self.shape)

    def load(self) -> T | None:
        """The stored value, or None when the file does not exist yet."""
        try:
            raw = read_private(self.path) if self.private else self.path.read_bytes()
        except FileNotFoundError:
            return None
        except InsecureFileError:
            raise
        except OSError as err:
            raise StorageError(f"Cannot read {self.path}: {err.strerror}.") from None
        return self.parse(raw)

    def parse(self, raw: bytes) -> T:
        """Decode the bytes of a stored file (the checks of :meth:`load` without the reading)."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise self._damaged(f"not valid JSON ({type(err).__name__})") from None
        if not isinstance(data, dict):
            raise self._damaged("not a JSON object")
        found = data.pop("format", None)
        if found != self.format:
            raise self._damaged(f"format {found!r}, expected {self.format}")
        try:
            return self._codec.decode(data)
        except ValueError as err:
            raise self._damaged(str(err)) from None

    def dumps(self, value: T) -> bytes:
        """The bytes :meth:`save` writes for ``value``."""
        encoded = self._codec.encode(value)
        return json.dumps({"format": self.format, **encoded}, separators=(",", ":")).encode()

    def save(self, value: T) -> None:
        """Write ``value`` atomically and durably (0600 when private); OSError on failure."""
        write_atomic(
            self.path, self.dumps(value), mode=PRIVATE_MODE if self.private else PUBLIC_MODE
        )

    def _damaged(self, why: str) -> StorageError:
        return StorageError(f"{self.path} is damaged ({why}): {self.damaged_hint}.")


_CODECS: dict[type[Any], JsonCodec[Any]] = {}


def _codec_for(shape: type[T]) -> JsonCodec[T]:
    """One codec per type: building one compiles code, so it is done once and shared."""
    codec = _CODECS.get(shape)
    if codec is None:
        codec = _CODECS[shape] = JsonCodec(shape)
    return codec
