"""Typed CBOR codec: frozen dataclasses ⇄ CBOR arrays, validated field by field (PROTOCOL.md §5.1).

A dataclass encodes as a CBOR array of its fields in declaration order; IntEnums as integers; tuples
as arrays; ``X | None`` as X or null. Decoding checks every value against the declared type, so a
decoded message is always well-typed; anything else raises :class:`~rayzig_core.errors.DecodeError`.
Converters are compiled once per type, which keeps event-log batches cheap to decode: a dataclass
of scalar fields encodes through one ``attrgetter``, and an array of them (an event-log page)
decodes column by column, each column checked in one pass, with the item-by-item decode (and
its exact error) whenever a column does not pass.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import operator
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, Union, get_args, get_origin

import cbor2

from rayzig_core.errors import DecodeError

Encoder: TypeAlias = Callable[[Any], Any]
Decoder: TypeAlias = Callable[[Any], Any]
ColumnCheck: TypeAlias = Callable[[Sequence[Any]], Sequence[Any] | None]
"""Checks one field of every record at once: the decoded column, or None if any value fails."""

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
MAX_TEXT = 1024
"""Longest text field accepted, in characters (names, messages)."""

_encoders: dict[Any, Encoder] = {}
_decoders: dict[Any, Decoder] = {}


def _identity(value: Any) -> Any:
    return value


def _decode_int(value: Any) -> int:
    if type(value) is not int or not INT_MIN <= value <= INT_MAX:
        raise DecodeError("expected an integer in range")
    return value


def _decode_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise DecodeError("expected a boolean")
    return value


def _decode_float(value: Any) -> float:
    if type(value) not in (float, int):
        raise DecodeError("expected a number")
    result = float(value)
    if not math.isfinite(result):
        raise DecodeError("expected a finite number")
    return result


def _decode_str(value: Any) -> str:
    if type(value) is not str or len(value) > MAX_TEXT:
        raise DecodeError("expected a text string of at most 1024 characters")
    return value


def _decode_bytes(value: Any) -> bytes:
    if type(value) is not bytes:
        raise DecodeError("expected a byte string")
    return value


_SCALAR_DECODERS: dict[Any, Decoder] = {
    int: _decode_int,
    bool: _decode_bool,
    float: _decode_float,
    str: _decode_str,
    bytes: _decode_bytes,
}


def _is_optional(tp: Any) -> Any | None:
    """Return X for ``X | None``, else None."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def encoder_for(tp: Any) -> Encoder:
    """Return (and cache) the function turning a value of type ``tp`` into CBOR-ready data."""
    cached = _encoders.get(tp)
    if cached is not None:
        return cached
    result: Encoder
    inner = _is_optional(tp)
    if inner is not None:
        enc = encoder_for(inner)

        def result(value: Any) -> Any:
            return None if value is None else enc(value)

    elif isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        result = int
    elif tp in _SCALAR_DECODERS:
        result = _identity
    elif get_origin(tp) is tuple:
        item_enc = encoder_for(get_args(tp)[0])

        def result(value: Any) -> Any:
            return list(map(item_enc, value))

    elif dataclasses.is_dataclass(tp) and _is_flat(tp, optional_enums=False):
        result = _flat_encoder(tp)
    elif dataclasses.is_dataclass(tp):
        fields = _fields(tp)
        names = [name for name, _ in fields]
        encs = [encoder_for(ftp) for _, ftp in fields]
        pairs = list(zip(names, encs, strict=True))

        def result(value: Any) -> Any:
            return [enc(getattr(value, name)) for name, enc in pairs]

    else:
        raise TypeError(f"type {tp!r} is not encodable")
    _encoders[tp] = result
    return result


def decoder_for(tp: Any) -> Decoder:
    """Return (and cache) the function validating CBOR data and building a value of type ``tp``."""
    cached = _decoders.get(tp)
    if cached is not None:
        return cached
    result: Decoder
    inner = _is_optional(tp)
    if inner is not None:
        dec = decoder_for(inner)

        def result(value: Any) -> Any:
            return None if value is None else dec(value)

    elif isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        members = {int(member): member for member in tp}
        enum_name = tp.__name__

        def result(value: Any) -> Any:
            if type(value) is not int or value not in members:
                raise DecodeError(f"unknown {enum_name} value")
            return members[value]

    elif tp in _SCALAR_DECODERS:
        result = _SCALAR_DECODERS[tp]
    elif get_origin(tp) is tuple:
        item_tp = get_args(tp)[0]
        item_dec = decoder_for(item_tp)
        by_columns = _columns_decoder(item_tp) if dataclasses.is_dataclass(item_tp) else None

        def result(value: Any) -> Any:
            if type(value) is not list:
                raise DecodeError("expected an array")
            if by_columns is not None and value:
                decoded = by_columns(value)
                if decoded is not None:
                    return decoded
            return tuple(map(item_dec, value))

    elif dataclasses.is_dataclass(tp):
        fields = _fields(tp)
        decs = [decoder_for(ftp) for _, ftp in fields]
        required = sum(
            1
            for f in dataclasses.fields(tp)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        total = len(fields)
        cls: Any = tp
        cls_name = str(cls.__name__)

        def result(value: Any) -> Any:
            if type(value) is not list or not required <= len(value) <= total:
                raise DecodeError(f"malformed {cls_name}")
            return cls(*[dec(item) for dec, item in zip(decs, value, strict=False)])

    else:
        raise TypeError(f"type {tp!r} is not decodable")
    _decoders[tp] = result
    return result


def _fields(tp: Any) -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(tp)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(tp) if f.init]


def _is_scalar(tp: Any) -> bool:
    return tp in _SCALAR_DECODERS or _is_enum(tp)


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.IntEnum)


def _is_flat(tp: Any, *, optional_enums: bool = True) -> bool:
    """A dataclass whose every field is a scalar, an IntEnum, or one of them or None."""
    for _, ftp in _fields(tp):
        inner = _is_optional(ftp)
        if not _is_scalar(inner or ftp) or (
            inner is not None and not optional_enums and _is_enum(inner)
        ):
            return False
    return True


def _flat_encoder(tp: Any) -> Encoder:
    """Encode a flat dataclass with one C call: its fields as a tuple, IntEnums as their ints.

    An IntEnum field is read as ``field._value_`` (cbor2 encodes an int subclass through a
    slower lookup); a field holding a plain int instead takes the field-by-field path.
    """
    fields = _fields(tp)
    paths = [f"{name}._value_" if _is_enum(ftp) else name for name, ftp in fields]
    if not paths:
        return lambda value: ()
    getter: Encoder = operator.attrgetter(*paths)
    if len(paths) == 1:
        single = getter

        def getter(value: Any) -> Any:
            return (single(value),)

    if all(path == name for path, (name, _) in zip(paths, fields, strict=True)):
        return getter
    encs = [(name, encoder_for(ftp)) for name, ftp in fields]

    def encode(value: Any) -> Any:
        try:
            return getter(value)
        except AttributeError:
            return [enc(getattr(value, name)) for name, enc in encs]

    return encode


def _check_ints(column: Sequence[Any]) -> Sequence[Any] | None:
    if not set(map(type, column)) <= {int} or min(column) < INT_MIN or max(column) > INT_MAX:
        return None
    return column


def _check_floats(column: Sequence[Any]) -> Sequence[Any] | None:
    kinds = set(map(type, column))
    if not kinds <= {float, int}:
        return None
    if int in kinds:
        column = list(map(float, column))
    return column if all(map(math.isfinite, column)) else None


def _check_texts(column: Sequence[Any]) -> Sequence[Any] | None:
    if not set(map(type, column)) <= {str} or max(map(len, column)) > MAX_TEXT:
        return None
    return column


def _only(kind: type) -> ColumnCheck:
    def check(column: Sequence[Any]) -> Sequence[Any] | None:
        return column if set(map(type, column)) <= {kind} else None

    return check


def _check_enum(tp: type[enum.IntEnum]) -> ColumnCheck:
    members = {int(member): member for member in tp}

    def check(column: Sequence[Any]) -> Sequence[Any] | None:
        if not set(map(type, column)) <= {int} or not members.keys() >= set(column):
            return None
        return list(map(members.__getitem__, column))

    return check


def _check_optional(inner: ColumnCheck) -> ColumnCheck:
    def check(column: Sequence[Any]) -> Sequence[Any] | None:
        present = [value for value in column if value is not None]
        if not present:
            return column
        checked = inner(present)
        if checked is None:
            return None
        if checked is present:  # nothing converted: the column stands as it is
            return column
        rest = iter(checked)
        return [None if value is None else next(rest) for value in column]

    return check


_SCALAR_COLUMNS: dict[Any, ColumnCheck] = {
    int: _check_ints,
    bool: _only(bool),
    float: _check_floats,
    str: _check_texts,
    bytes: _only(bytes),
}


def _column_check(tp: Any) -> ColumnCheck:
    inner = _is_optional(tp)
    if inner is not None:
        return _check_optional(_column_check(inner))
    if tp in _SCALAR_COLUMNS:
        return _SCALAR_COLUMNS[tp]
    return _check_enum(tp)


def _columns_decoder(tp: Any) -> Callable[[list[Any]], tuple[Any, ...] | None] | None:
    """For an array of flat dataclasses: decode it column by column, None if anything fails.

    Accepts exactly what the item-by-item decoder accepts, and builds the same values (every
    column passes the same checks as its field's decoder); on None the caller decodes item by
    item, which raises the precise DecodeError. An event-log page (§8.2) is ~150 such records.
    """
    if not _is_flat(tp):
        return None
    checks = [_column_check(ftp) for _, ftp in _fields(tp)]
    required = sum(
        1
        for f in dataclasses.fields(tp)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    cls: Any = tp

    def decode(value: list[Any]) -> tuple[Any, ...] | None:
        if set(map(type, value)) != {list}:
            return None
        widths = set(map(len, value))
        width = widths.pop()
        if widths or not max(required, 1) <= width <= len(checks):
            return None
        columns = []
        for check, column in zip(checks, zip(*value, strict=True), strict=False):
            checked = check(column)
            if checked is None:
                return None
            columns.append(checked)
        return tuple(map(cls, *columns))

    return decode


def dumps(data: Any) -> bytes:
    """Serialise CBOR-ready data (lists, ints, text, bytes, floats, None, bools)."""
    return cbor2.dumps(data)


MAX_DEPTH = 16
"""Deepest nesting of arrays accepted (a ModulePage needs 5: envelope to Output)."""

_SIMPLE_VALUES = frozenset({0xF4, 0xF5, 0xF6})
"""The only simple values a message may hold: false, true, null (floats are checked apart)."""

_SHORTEST = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x1_0000_0000}
"""Per additional-information value, the least argument that needs that many bytes."""


def _scalar_item_pattern() -> bytes:
    """A regular expression for one item :func:`check_strict` accepts that holds no other.

    Integers in their shortest form, false/true/null, floats of any width, and strings of at most
    23 bytes (their length in the head); anything else is left to the head-by-head walk.
    """
    alternatives = [
        rb"[\x00-\x17\x20-\x37\xf4-\xf6]",  # small integers, false, true, null
        rb"[\x18\x38][\x18-\xff]",  # integers with a 1-byte argument of at least 24
        rb"[\x19\x39][\x01-\xff].",  # 2-byte argument of at least 0x100
        rb"[\x1a\x3a](?!\x00\x00)....",  # 4-byte argument of at least 0x10000
        rb"[\x1b\x3b](?!\x00\x00\x00\x00)........",  # 8-byte argument of at least 2**32
        rb"\xf9..|\xfa....|\xfb........",  # half, single and double precision floats
    ]
    for length in range(24):  # byte and text strings whose length is in the head
        alternatives.append(re.escape(bytes([0x40 + length])) + b".{%d}" % length)
        alternatives.append(re.escape(bytes([0x60 + length])) + b".{%d}" % length)
    return b"(?:" + b"|".join(alternatives) + b")"


_SCALAR_ITEM = _scalar_item_pattern()
SCALAR_RUN_MIN = 4
"""Arrays of this many to 23 items are first tried as one run of scalars (an event record has 8);
shorter ones gain nothing from it."""
_scalar_runs: dict[int, re.Pattern[bytes]] = {}


def _scalar_run(count: int) -> re.Pattern[bytes]:
    """Exactly ``count`` scalar items, compiled on first use (about a millisecond each)."""
    run = _scalar_runs.get(count)
    if run is None:
        run = _scalar_runs[count] = re.compile(_SCALAR_ITEM + b"{%d}" % count, re.DOTALL)
    return run


def check_strict(data: bytes) -> None:
    """Refuse anything but exactly one well-formed, deterministically encoded data item.

    PROTOCOL.md §5.1: definite lengths only, integers and lengths in their shortest form, no
    tags, no maps, no simple values but false/true/null, floats of any width, at most
    :data:`MAX_DEPTH` nested arrays and no trailing bytes. Only the item heads are walked (text
    and byte strings are skipped), so this is cheap next to decoding; DecodeError names the
    first violation.
    """
    size = len(data)
    pos = 0
    remaining = [1]  # items still to read at each open nesting level
    while remaining:
        if remaining[-1] == 0:
            remaining.pop()
            continue
        remaining[-1] -= 1
        if pos >= size:
            raise DecodeError("CBOR item is truncated")
        initial = data[pos]
        pos += 1
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            if info in (25, 26, 27):  # half, single or double precision float
                pos += 1 << (info - 24)
                continue
            if initial not in _SIMPLE_VALUES:
                raise DecodeError("CBOR simple value other than false, true or null")
            continue
        if major == 5:
            raise DecodeError("CBOR maps are not used by the protocol")
        if major == 6:
            raise DecodeError("CBOR tags are not allowed")
        if info < 24:
            argument = info
        elif info <= 27:
            width = 1 << (info - 24)
            if pos + width > size:
                raise DecodeError("CBOR item is truncated")
            argument = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if argument < _SHORTEST[info]:
                raise DecodeError("CBOR integer or length is not in its shortest form")
        elif info == 31:
            raise DecodeError("CBOR indefinite-length items are not allowed")
        else:
            raise DecodeError("CBOR head uses a reserved value")
        if major in (2, 3):  # byte or text string: skip its content
            pos += argument
        elif major == 4:
            if len(remaining) > MAX_DEPTH:
                raise DecodeError("CBOR arrays are nested too deeply")
            if SCALAR_RUN_MIN <= argument < 24:
                run = _scalar_run(argument).match(data, pos)
                if run is not None:  # the whole array is scalars, each accepted as it stands
                    pos = run.end()
                    continue
            remaining.append(argument)
    if pos != size:
        raise DecodeError(
            "trailing bytes after the CBOR item" if pos < size else "CBOR item is truncated"
        )


def loads(data: bytes) -> Any:
    """Parse exactly one strictly encoded CBOR item (:func:`check_strict`), else DecodeError."""
    check_strict(data)
    try:
        return cbor2.loads(data)
    except Exception as err:
        raise DecodeError("payload is not valid CBOR") from err
