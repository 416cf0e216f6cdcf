"""Runtime statistics folded from an event log, against a history computed by hand (§8.3)."""

from __future__ import annotations

import json

from rayzig_core import Event, EventKind, HourRow, JsonCodec, ModuleRuntime

H0 = 1_699_999_200
"""A whole UTC hour; the history's times are offsets from it."""
HOUR = 3600
ON, OFF = True, False


def command(seq: int, offset: float, output: int, is_on: bool) -> Event:
    return Event(1, seq, H0 + offset, EventKind.COMMAND, output, "installer", is_on)


def module_wide(seq: int, offset: float, kind: EventKind, lost: int = 0) -> Event:
    return Event(1, seq, H0 + offset, kind, None, None, None, lost)


def preset(seq: int, offset: float, output: int, is_on: bool) -> Event:
    return Event(1, seq, H0 + offset, EventKind.PRESET_APPLIED, output, None, is_on)


HISTORY = [
    module_wide(1, 100, EventKind.POWER_ON),  # outputs start off (unpowered before)
    command(2, 600, 0, ON),  # cycle 1 of output 0
    command(3, 1200, 1, ON),  # cycle 1 of output 1
    command(4, 3000, 0, OFF),  # output 0: 600..3000 = 2400 s in hour 0
    command(5, 4200, 0, ON),  # cycle 2 of output 0
    # Power lost at an unknown moment after 4200 (the last record): on-time ends there.
    # Output 1 counts 1200..4200 (2400 s in hour 0, 600 s in hour 1), output 0 nothing.
    module_wide(6, 7000, EventKind.REPOWER),
    preset(7, 7001, 0, ON),  # off (unpowered) → on: cycle 3 of output 0
    preset(8, 7002, 1, OFF),
    command(9, 9000, 1, ON),  # cycle 2 of output 1
    command(10, 8000, 1, OFF),  # the clock stepped back 1000 s: no time counted, none invented
    command(11, 9500, 1, ON),  # cycle 3 of output 1
    # Records 12..19 lost: output 0 counts 7001..9500 (199 s in hour 1, 2300 s in hour 2),
    # output 1 nothing (on since 9500); then neither state is known.
    module_wide(19, 14000, EventKind.GAP, lost=8),
    command(21, 14500, 0, OFF),  # unknown → off
    command(22, 15000, 1, ON),  # unknown → on: no cycle
    command(23, 18100, 0, ON),  # cycle 4 of output 0
    # Output 1 is on at the module's latest time: 15000..18100 (3000 s in hour 4, 100 s in hour 5).
]

ROWS_0 = [
    HourRow(H0, 2400, 1),
    HourRow(H0 + HOUR, 2599, 3),
    HourRow(H0 + 2 * HOUR, 4899, 3),
    HourRow(H0 + 5 * HOUR, 4899, 4),
]
ROWS_1 = [
    HourRow(H0, 2400, 1),
    HourRow(H0 + HOUR, 3000, 1),
    HourRow(H0 + 2 * HOUR, 3000, 3),
    HourRow(H0 + 4 * HOUR, 6000, 3),
    HourRow(H0 + 5 * HOUR, 6100, 3),
]


def folded(*batches: list[Event]) -> ModuleRuntime:
    runtime = ModuleRuntime("A1")
    for batch in batches:
        runtime.fold(batch)
    return runtime


def test_totals_and_hours_match_the_hand_computed_history() -> None:
    runtime = folded(HISTORY)
    first, second = runtime.outputs[0], runtime.outputs[1]
    assert (first.on_seconds, first.cycles, first.is_on) == (4899, 4, True)
    assert (second.on_seconds, second.cycles, second.is_on) == (6100, 3, True)
    assert first.rows == ROWS_0
    assert second.rows == ROWS_1
    assert (runtime.seq, runtime.time) == (23, H0 + 18100)


def test_only_hours_that_ended_are_complete_and_released_rows_are_forgotten() -> None:
    runtime = folded(HISTORY)
    # The module's latest time lies in hour 5: hours 0..4 are final, hour 5 is not.
    assert runtime.completed() == {0: ROWS_0[:3], 1: ROWS_1[:4]}
    runtime.release({0: H0 + 5 * HOUR, 1: H0 + 5 * HOUR})
    assert runtime.completed() == {}
    assert runtime.outputs[0].rows == ROWS_0[3:]
    assert runtime.outputs[1].rows == ROWS_1[4:]
    assert ModuleRuntime("A1").completed() == {}


def test_records_folded_twice_count_once() -> None:
    runtime = folded(HISTORY, HISTORY, HISTORY[5:12])
    assert (runtime.outputs[0].on_seconds, runtime.outputs[0].cycles) == (4899, 4)
    assert runtime.outputs[1].rows == ROWS_1


def test_any_split_into_pulls_and_a_restart_between_them_give_the_same_statistics() -> None:
    codec = JsonCodec(ModuleRuntime)
    whole = folded(HISTORY)
    for cut in range(1, len(HISTORY)):
        runtime = folded(HISTORY[:cut])
        # The state is stored and read back (a restart), then the rest (and a repeat) is folded.
        restarted = codec.decode(json.loads(json.dumps(codec.encode(runtime))))
        restarted.fold(HISTORY[cut - 1 :])
        assert restarted == whole, cut


def test_the_time_an_output_stays_on_counts_as_the_module_logs_on() -> None:
    runtime = folded([module_wide(1, 0, EventKind.POWER_ON), command(2, 1800, 0, ON)])
    assert runtime.outputs[0].on_seconds == 0
    # A record about another output shows the module powered at 2.5 h: output 0 was on since.
    changed = runtime.fold([command(3, 9000, 1, OFF)])
    assert changed == {0}
    assert runtime.outputs[0].on_seconds == 9000 - 1800
    assert [row.start for row in runtime.outputs[0].rows] == [H0, H0 + HOUR, H0 + 2 * HOUR]
    assert runtime.fold([module_wide(4, 9500, EventKind.BATTERY_LOW)]) == {0}
    assert runtime.fold([]) == set()


def test_a_preset_without_its_repower_ends_the_on_time_at_the_record_before() -> None:
    runtime = folded(
        [
            command(1, 0, 0, ON),  # unknown → on: no cycle
            command(2, 600, 1, OFF),
            preset(3, 5000, 0, ON),  # the REPOWER before it was not read
        ]
    )
    output = runtime.outputs[0]
    assert (output.on_seconds, output.cycles, output.since) == (600, 1, H0 + 5000)
    # Unknown at first: an output first seen after the start is not known to have been off.
    assert runtime.outputs[1].cycles == 0


def test_a_gap_before_anything_is_known_counts_nothing() -> None:
    runtime = folded([module_wide(5, 0, EventKind.GAP, lost=5), command(6, 60, 0, ON)])
    assert (runtime.outputs[0].on_seconds, runtime.outputs[0].cycles) == (0, 0)
    runtime = ModuleRuntime("A1")
    assert runtime.fold([Event(1, 1, H0, EventKind.JOINED, None, None, None)]) == set()
    assert runtime.outputs == []


def test_a_log_that_began_again_keeps_the_totals_and_forgets_the_states() -> None:
    runtime = folded(HISTORY)
    runtime.backfill = True  # a read of the old log was under way: the new one is read whole
    runtime.restart_log(0)
    assert (runtime.seq, runtime.backfill) == (0, False)
    assert [output.is_on for output in runtime.outputs] == [None, None]
    # Its records count from the first again; an unknown state counts no cycle.
    runtime.fold([command(1, 20_000, 0, ON), command(2, 20_600, 0, OFF)])
    assert (runtime.outputs[0].on_seconds, runtime.outputs[0].cycles) == (4899 + 600, 4)
