"""The codec's fast paths accept, refuse and build exactly what the general paths do (§5.1).

Three shortcuts keep an event-log page cheap: ``check_strict`` checks an array of 4 to 23 scalar
items (an event record) in one regular-expression match, an array of flat dataclasses decodes column
by column, and a flat dataclass encodes through one ``attrgetter``. Each is compared here with
the path it short-cuts, on generated input, including input those paths refuse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rayzig_core.errors import DecodeError
from rayzig_core.models import Event, EventKind, Output, RestorePreset
from rayzig_core.protocol import codec
from rayzig_core.protocol import messages as m


def _outcome(check: Any, *args: Any) -> object:
    try:
        return ("ok", check(*args))
    except DecodeError as err:
        return ("refused", str(err))


def _strict_without_fast_path(data: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(codec, "SCALAR_RUN_MIN", 24)
        return _outcome(codec.check_strict, data)


_scalar_values = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.booleans(),
    st.none(),
    st.floats(),
    st.text(max_size=30),
    st.binary(max_size=30),
)
_values = st.recursive(_scalar_values, lambda inner: st.lists(inner, max_size=10), max_leaves=40)


def _heads(data: bytes) -> st.SearchStrategy[bytes]:
    """The encoding, and the same with one byte changed, dropped or added (often refused)."""
    if not data:
        return st.just(data)
    index = st.integers(min_value=0, max_value=len(data) - 1)
    return st.one_of(
        st.just(data),
        st.tuples(index, st.integers(0, 255)).map(
            lambda p: data[: p[0]] + bytes([p[1]]) + data[p[0] + 1 :]
        ),
        index.map(lambda i: data[:i] + data[i + 1 :]),
        st.tuples(index, st.integers(0, 255)).map(
            lambda p: data[: p[0]] + bytes([p[1]]) + data[p[0] :]
        ),
    )


@settings(max_examples=600, deadline=None)
@given(st.one_of(_values.map(cbor2.dumps).flatmap(_heads), st.binary(max_size=64)))
def test_check_strict_decides_as_the_item_by_item_walk(data: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _outcome(codec.check_strict, data) == _strict_without_fast_path(data, monkeypatch)


def test_the_scalar_runs_refuse_what_the_walk_refuses() -> None:
    # Each the last of a four-item array: non-shortest integers, a simple value, a tag.
    for item in (b"\x18\x17", b"\x19\x00\xff", b"\x3a\x00\x00\xff\xff", b"\xf7", b"\xc1\x00"):
        with pytest.raises(DecodeError):
            codec.check_strict(b"\x84\x00\x01\x02" + item)
    codec.check_strict(b"\x84\x18\x18\xf9\x00\x00\x77" + b"x" * 23 + b"\xf6")


_field_values = st.one_of(
    _scalar_values,
    st.sampled_from([math.nan, math.inf, 2**63, -(2**63) - 1, True, 0, 2, 99, "x" * 1025]),
    st.lists(st.integers(), max_size=2),
)
_records = st.lists(
    st.one_of(
        st.lists(_field_values, min_size=6, max_size=9),
        st.just([1, 2, 3.5, 2, None, "automation", True]),
        st.just([1, 2, 3, 2, 1, None, None, 0]),
        _field_values,
    ),
    max_size=6,
)


@st.composite
def _valid_record(draw: Any) -> list[Any]:
    return [
        draw(st.integers(0, 2**64 - 1)),
        draw(st.integers(-(2**63), 2**64 - 1)),
        draw(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 2**40))),
        draw(st.sampled_from([int(kind) for kind in EventKind])),
        draw(st.one_of(st.none(), st.integers(0, 7))),
        draw(st.one_of(st.none(), st.text(max_size=12))),
        draw(st.one_of(st.none(), st.booleans())),
        *draw(st.lists(st.integers(0, 9), max_size=1)),
    ]


_valid_pages = st.lists(_valid_record(), max_size=8)


@st.composite
def _pages_with_one_change(draw: Any) -> list[Any]:
    """A valid page with one field of one record replaced: the case a column check decides."""
    page = draw(_valid_pages.filter(bool))
    record = draw(st.integers(0, len(page) - 1))
    field = draw(st.integers(0, len(page[record]) - 1))
    page[record] = [*page[record][:field], draw(_field_values), *page[record][field + 1 :]]
    return page


@settings(max_examples=800, deadline=None)
@given(st.one_of(_records, _valid_pages, _pages_with_one_change()))
def test_event_pages_decode_by_columns_as_record_by_record(page: list[Any]) -> None:
    by_record = codec.decoder_for(Event)
    result = _outcome(codec.decoder_for(tuple[Event, ...]), page)
    assert result == _outcome(lambda value: tuple(map(by_record, value)), page)
    if result[0] == "ok":
        assert all(type(event.kind) is EventKind for event in result[1])  # type: ignore[index]
        assert all(type(event.timestamp) is float for event in result[1])  # type: ignore[index]


_EDGE_VALUES = (
    *(math.nan, math.inf, -math.inf, 0.5, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64),
    *(True, False, None, 0, 1, 2, 99, -1, "", "x" * 1024, "x" * 1025, b"", [], [1]),
)


@pytest.mark.parametrize("field", range(8))
def test_each_field_of_a_page_is_checked_as_its_record_decoder_checks_it(field: int) -> None:
    by_record = codec.decoder_for(Event)
    by_page = codec.decoder_for(tuple[Event, ...])
    valid = [[7, seq, 1.5e9, 2, 1, "automation", True, 0] for seq in range(1, 5)]
    for value in _EDGE_VALUES:
        for row in (0, 3):
            page = [list(record) for record in valid]
            page[row][field] = value
            expected = _outcome(lambda v: tuple(map(by_record, v)), page)
            assert _outcome(by_page, page) == expected, (field, value)


@dataclass(frozen=True, slots=True)
class _Reading:
    """A flat record whose optional columns convert (ints to floats, ints to enum members)."""

    level: float | None
    kind: EventKind | None


def test_optional_columns_that_convert_keep_their_nulls_in_place() -> None:
    page = [[1, None], [None, 2], [2.5, 4], [None, None]]
    decoded = codec.decoder_for(tuple[_Reading, ...])(page)
    assert decoded == tuple(map(codec.decoder_for(_Reading), page))
    assert [type(r.level) for r in decoded] == [float, type(None), float, type(None)]
    assert decoded[1].kind is EventKind(2)
    with pytest.raises(DecodeError, match="unknown EventKind"):
        codec.decoder_for(tuple[_Reading, ...])([[1, None], [None, 99]])


def test_an_event_batch_decodes_to_the_records_sent() -> None:
    events = tuple(
        Event(7, seq, 1.5e9 + seq, EventKind.COMMAND, seq % 3, "automation" if seq % 2 else None,
              seq % 2 == 0)
        for seq in range(1, 150)
    )  # fmt: skip
    batch = m.EventBatch(7, events, 1, 149)
    assert m.decode(m.encode(5, batch)).message == batch


def test_flat_dataclasses_encode_as_their_fields_in_order() -> None:
    event = Event(7, 3, 1.5, EventKind.PRESET_APPLIED, None, None, True, 0)
    expected = [7, 3, 1.5, int(EventKind.PRESET_APPLIED), None, None, True, 0]
    assert codec.dumps(codec.encoder_for(Event)(event)) == cbor2.dumps(expected)
    # An enum field holding a plain int (not through the typed constructor) still encodes.
    loose = Event(7, 3, 1.5, 4, None, None, True)  # type: ignore[arg-type]
    assert codec.dumps(codec.encoder_for(Event)(loose)) == cbor2.dumps(
        [7, 3, 1.5, 4, None, None, True, 0]
    )
    output = Output(0, "Pump", True, RestorePreset.OFF, True)
    assert (
        codec.decoder_for(Output)(cbor2.loads(codec.dumps(codec.encoder_for(Output)(output))))
        == output
    )
    assert codec.encoder_for(m.Ping)(m.Ping()) == ()
