"""Typed CBOR codec: frozen dataclasses ⇄ CBOR arrays, validated field by field (PROTOCOL.md §5.1).

A dataclass encodes as a CBOR array of its fields in declaration order; IntEnums as integers; tuples
as arrays; ``X | None`` as X or null. Decoding checks every value against the declared type, so a
decoded message is always well-typed; anything else raises :class:`~rayzig_core.errors.DecodeError`.
Converters are compiled once per type, which keeps event-log batches cheap to decode.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable
from typing import Any, TypeAlias, Union, get_args, get_origin

import cbor2

from rayzig_core.errors import DecodeError

Encoder: TypeAlias = Callable[[Any], Any]
Decoder: TypeAlias = Callable[[Any], Any]

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
            return [item_enc(item) for item in value]

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
        item_dec = decoder_for(get_args(tp)[0])

        def result(value: Any) -> Any:
            if type(value) is not list:
                raise DecodeError("expected an array")
            return tuple(item_dec(item) for item in value)

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


def dumps(data: Any) -> bytes:
    """Serialise CBOR-ready data (lists, ints, text, bytes, floats, None, bools)."""
    return cbor2.dumps(data)


MAX_DEPTH = 16
"""Deepest nesting of arrays accepted (a ModulePage needs 5: envelope to Output)."""

_SIMPLE_VALUES = frozenset({0xF4, 0xF5, 0xF6})
"""The only simple values a message may hold: false, true, null (floats are checked apart)."""

_SHORTEST = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x1_0000_0000}
"""Per additional-information value, the least argument that needs that many bytes."""


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
