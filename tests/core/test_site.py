"""Tests of the simulated mesh behind the virtual gateway (rayzig_core.virtual_gateway.site)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import pytest

from rayzig_core.errors import InvalidRequestError, NotFoundError
from rayzig_core.models import (
    MAX_EVENTS_PER_MODULE,
    Event,
    EventKind,
    ModuleKind,
    RestorePreset,
)
from rayzig_core.virtual_gateway import EventRing, Site
from rayzig_core.virtual_gateway.site.changes import (
    EventsAppended,
    ModuleJoined,
    ModuleLeft,
    OutputChanged,
    SiteChange,
    TelemetryChanged,
)
from rayzig_core.virtual_gateway.site.limits import MAX_MODULE_ID, MAX_MODULES
from rayzig_core.virtual_gateway.site.mesh import SIMULATION_USER
from rayzig_core.virtual_gateway.site.rings import RingState
from rayzig_core.virtual_gateway.site.site import SiteState
from tests.core.conftest import restored, stored


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _fill(ring: EventRing, count: int, module_id: int = 1) -> None:
    for i in range(count):
        ring.append(
            module_id=module_id,
            timestamp=1000.0 + i,
            kind=EventKind.COMMAND,
            output=i % 8,
            user=f"user{i % 3}",
            is_on=i % 2 == 0,
        )


def _ring_json(ring: EventRing) -> dict[str, Any]:
    """The ring as its part of the state file holds it."""
    data: dict[str, Any] = stored(ring.state())
    return data


def _ring_from(data: object, module_id: int) -> EventRing:
    return EventRing.restore(restored(RingState, data), module_id)


def _site_json(site: Site) -> dict[str, Any]:
    """The site as its part of the state file holds it."""
    data: dict[str, Any] = stored(site.state())
    return data


def _site_from(data: object, clock: Callable[[], float] | None = None) -> Site:
    state = restored(SiteState, data)
    return Site.restore(state) if clock is None else Site.restore(state, clock=clock)


def _events(ring: EventRing) -> list[Event]:
    return ring.read(0, ring.capacity)


def _recorder(site: Site) -> list[SiteChange]:
    seen: list[SiteChange] = []
    site.subscribe(seen.append)
    return seen


def _site_with(
    clock: FakeClock, kind: ModuleKind = ModuleKind.MAINS, outputs: int = 3
) -> tuple[Site, int]:
    site = Site(clock=clock, seed=7)
    module = site.add_module(kind=kind, name="Test module", outputs=outputs)
    return site, module.module_id


# --- EventRing ---------------------------------------------------------------------------------


def test_empty_ring_bounds() -> None:
    ring = EventRing()
    assert ring.capacity == MAX_EVENTS_PER_MODULE
    assert ring.newest_seq == 0
    assert ring.oldest_seq == 1
    assert ring.count == 0
    assert ring.read(0, 10) == []


def test_ring_append_numbers_from_one() -> None:
    ring = EventRing()
    first = ring.append(module_id=4, timestamp=5.0, kind=EventKind.POWER_ON)
    assert first == Event(4, 1, 5.0, EventKind.POWER_ON, None, None, None)
    assert (ring.oldest_seq, ring.newest_seq, ring.count) == (1, 1, 1)


def test_ring_wrap_keeps_seqs_monotonic_and_oldest_correct() -> None:
    ring = EventRing()
    extra = 100
    _fill(ring, MAX_EVENTS_PER_MODULE + extra)
    assert ring.count == MAX_EVENTS_PER_MODULE
    assert ring.newest_seq == MAX_EVENTS_PER_MODULE + extra
    assert ring.oldest_seq == extra + 1
    held = _events(ring)
    assert [e.seq for e in held] == list(range(extra + 1, MAX_EVENTS_PER_MODULE + extra + 1))
    # Contents belong to the seq that was appended at that position (nothing stale left).
    assert all(e.timestamp == 1000.0 + e.seq - 1 for e in held)


def test_ring_read_after_wrap() -> None:
    ring = EventRing()
    _fill(ring, MAX_EVENTS_PER_MODULE * 2 + 5)
    newest = ring.newest_seq
    assert [e.seq for e in ring.read(newest - 3, 10)] == [newest - 2, newest - 1, newest]
    middle = ring.oldest_seq + 1000
    assert [e.seq for e in ring.read(middle, 4)] == [middle + 1, middle + 2, middle + 3, middle + 4]
    assert ring.read(newest, 10) == []
    assert ring.read(newest + 50, 10) == []
    assert ring.read(middle, 0) == []


def test_ring_read_in_lost_region_starts_at_oldest() -> None:
    ring = EventRing()
    _fill(ring, MAX_EVENTS_PER_MODULE + 300)
    batch = ring.read(50, 5)
    assert [e.seq for e in batch] == [301, 302, 303, 304, 305]
    # The caller sees the gap: it asked for 51 and got 301.
    assert batch[0].seq - 51 == 250
    assert ring.read(-10, 1)[0].seq == ring.oldest_seq


def test_small_ring_wraps_many_times() -> None:
    ring = EventRing(capacity=4)
    _fill(ring, 11)
    assert (ring.oldest_seq, ring.newest_seq, ring.count) == (8, 11, 4)
    assert [e.seq for e in ring.read(0, 100)] == [8, 9, 10, 11]
    assert [e.seq for e in ring.read(9, 100)] == [10, 11]


def test_ring_refuses_gap_records() -> None:
    with pytest.raises(ValueError):
        EventRing().append(module_id=1, timestamp=0.0, kind=EventKind.GAP)


@pytest.mark.parametrize("total", [0, 1, 3, 4, 5, 7, 8, 9, 13])
def test_ring_json_round_trip_small(total: int) -> None:
    ring = EventRing(capacity=4)
    _fill(ring, total, module_id=9)
    again = _ring_from(_ring_json(ring), 9)
    assert (again.oldest_seq, again.newest_seq, again.count) == (
        ring.oldest_seq,
        ring.newest_seq,
        ring.count,
    )
    assert _events(again) == _events(ring)
    assert _ring_json(again) == _ring_json(ring)
    # Appending after a restore continues the numbering in the right slots.
    ring.append(module_id=9, timestamp=1.0, kind=EventKind.REPOWER)
    again.append(module_id=9, timestamp=1.0, kind=EventKind.REPOWER)
    assert _events(again) == _events(ring)


def test_ring_json_round_trip_after_wrap_full_size() -> None:
    ring = EventRing()
    _fill(ring, MAX_EVENTS_PER_MODULE + 1234)
    again = _ring_from(_ring_json(ring), 1)
    assert _events(again) == _events(ring)
    assert again.oldest_seq == 1235


def test_ring_json_is_compact() -> None:
    ring = EventRing()
    ring.append(module_id=1, timestamp=2.5, kind=EventKind.POWER_ON)
    ring.append(
        module_id=1, timestamp=3.0, kind=EventKind.COMMAND, output=1, user="ann", is_on=True
    )
    assert _ring_json(ring) == {
        "capacity": MAX_EVENTS_PER_MODULE,
        "first_seq": 1,
        "events": [[2.5, 1], [3.0, 2, 1, "ann", True]],
    }


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"capacity": 4, "first_seq": 1},
        {"capacity": 0, "first_seq": 1, "events": []},
        {"capacity": True, "first_seq": 1, "events": []},
        {"capacity": 4, "first_seq": 0, "events": []},
        {"capacity": 4, "first_seq": 1, "events": {}},
        {"capacity": 2, "first_seq": 1, "events": [[1.0, 1], [1.0, 1], [1.0, 1]]},
        {"capacity": 4, "first_seq": 1, "events": [[1.0]]},
        {"capacity": 4, "first_seq": 1, "events": [[1.0, 1, None, None, None, None]]},
        {"capacity": 4, "first_seq": 1, "events": [["x", 1]]},
        {"capacity": 4, "first_seq": 1, "events": [[float("nan"), 1]]},
        {"capacity": 4, "first_seq": 1, "events": [[1.0, 99]]},
        {"capacity": 4, "first_seq": 1, "events": [[1.0, 255]]},
        {"capacity": 4, "first_seq": 1, "events": [[1.0, 2, 8]]},
        {"capacity": 4, "first_seq": 1, "events": [[1.0, 2, True]]},
        {"capacity": 4, "first_seq": 1, "events": [[1.0, 2, 0, 7]]},
        {"capacity": 4, "first_seq": 1, "events": [[1.0, 2, 0, "ann", 1]]},
        {"capacity": 4, "first_seq": 1, "events": ["[1.0, 2]"]},
    ],
)
def test_ring_from_json_rejects_malformed(data: object) -> None:
    with pytest.raises(ValueError):
        _ring_from(data, 1)


# --- commands ----------------------------------------------------------------------------------


def test_set_output_logs_command_event_with_user() -> None:
    clock = FakeClock()
    site, module_id = _site_with(clock)
    clock.advance(30)
    result = site.set_output(module_id, 1, on=True, user="alice")
    assert result.is_on is True
    assert result.index == 1
    assert site.module(module_id).outputs[1] == result
    ring = site.ring(module_id)
    last = ring.read(ring.newest_seq - 1, 1)[0]
    assert last.kind is EventKind.COMMAND
    assert last.user == "alice"
    assert last.output == 1
    assert last.is_on is True
    assert last.timestamp == clock.now
    assert last.module_id == module_id
    assert site.module(module_id).event_seq == last.seq


def test_set_output_notifies_output_then_events() -> None:
    clock = FakeClock()
    site, module_id = _site_with(clock)
    seen = _recorder(site)
    out = site.set_output(module_id, 0, on=True, user="bob")
    assert seen == [
        OutputChanged(module_id, out, EventKind.COMMAND),
        EventsAppended(module_id, site.ring(module_id).newest_seq),
    ]


def test_unknown_module_or_output_is_not_found() -> None:
    site, module_id = _site_with(FakeClock(), outputs=2)
    with pytest.raises(NotFoundError) as info:
        site.set_output(99, 0, on=True, user="x")
    assert info.value.code == 8
    with pytest.raises(NotFoundError) as info:
        site.set_output(module_id, 2, on=True, user="x")
    assert info.value.code == 8
    with pytest.raises(NotFoundError):
        site.set_output(module_id, -1, on=True, user="x")
    for call in (
        lambda: site.module(99),
        lambda: site.ring(99),
        lambda: site.set_preset(99, 0, RestorePreset.ON, user="x"),
        lambda: site.set_preset(module_id, 5, RestorePreset.ON, user="x"),
        lambda: site.set_utility_controllable(module_id, 5, controllable=True),
        lambda: site.set_link_quality(99, 10),
        lambda: site.remove_module(99),
        lambda: site.power_outage([99]),
    ):
        with pytest.raises(NotFoundError):
            call()


def test_unreachable_module_refuses_commands() -> None:
    site, module_id = _site_with(FakeClock())
    site.power_outage([module_id])
    seq_before = site.ring(module_id).newest_seq
    with pytest.raises(InvalidRequestError) as info:
        site.set_output(module_id, 0, on=True, user="x")
    assert info.value.code == 1
    assert "out of reach" in str(info.value)
    with pytest.raises(InvalidRequestError):
        site.set_preset(module_id, 0, RestorePreset.ON, user="x")
    assert site.ring(module_id).newest_seq == seq_before


def test_zero_link_quality_makes_module_unreachable() -> None:
    site, module_id = _site_with(FakeClock())
    telemetry = site.set_link_quality(module_id, 0)
    assert telemetry.reachable is False
    with pytest.raises(InvalidRequestError, match="out of reach"):
        site.set_output(module_id, 0, on=True, user="x")
    assert site.set_link_quality(module_id, 120).reachable is True
    with pytest.raises(InvalidRequestError):
        site.set_link_quality(module_id, 256)


def test_set_preset_and_utility_flag_emit_command_changes_without_events() -> None:
    site, module_id = _site_with(FakeClock())
    seq = site.ring(module_id).newest_seq
    seen = _recorder(site)
    out = site.set_preset(module_id, 2, RestorePreset.ON, user="admin")
    assert out.preset is RestorePreset.ON
    flagged = site.set_utility_controllable(module_id, 2, controllable=True)
    assert flagged.utility_controllable is True
    assert flagged.preset is RestorePreset.ON
    assert seen == [
        OutputChanged(module_id, out, EventKind.COMMAND),
        OutputChanged(module_id, flagged, EventKind.COMMAND),
    ]
    assert site.ring(module_id).newest_seq == seq
    assert site.module(module_id).outputs[2] == flagged


# --- power -------------------------------------------------------------------------------------


def test_presets_applied_on_restore() -> None:
    clock = FakeClock()
    site, module_id = _site_with(clock, outputs=3)
    presets = (RestorePreset.OFF, RestorePreset.ON, RestorePreset.LAST)
    for index, preset in enumerate(presets):
        site.set_preset(module_id, index, preset, user="admin")
    site.set_output(module_id, 0, on=True, user="admin")  # OFF preset: comes back off
    site.set_output(module_id, 1, on=False, user="admin")  # ON preset: comes back on
    site.set_output(module_id, 2, on=True, user="admin")  # LAST: comes back as it was
    seq_before = site.ring(module_id).newest_seq

    site.power_outage()
    assert site.module(module_id).telemetry.reachable is False
    clock.advance(600)
    seen = _recorder(site)
    site.power_restore()

    module = site.module(module_id)
    assert module.telemetry.reachable is True
    assert [o.is_on for o in module.outputs] == [False, True, True]
    events = site.ring(module_id).read(seq_before, 100)
    assert [(e.kind, e.output, e.is_on) for e in events] == [
        (EventKind.REPOWER, None, None),
        (EventKind.PRESET_APPLIED, 0, False),
        (EventKind.PRESET_APPLIED, 1, True),
        (EventKind.PRESET_APPLIED, 2, True),
    ]
    assert all(e.timestamp == clock.now for e in events)
    assert seen[0] == TelemetryChanged(module_id, module.telemetry)
    assert seen[1:4] == [
        OutputChanged(module_id, module.outputs[i], EventKind.PRESET_APPLIED) for i in range(3)
    ]
    assert seen[4] == EventsAppended(module_id, module.event_seq)


def test_last_preset_remembers_off_state() -> None:
    site, module_id = _site_with(FakeClock(), outputs=1)
    site.set_preset(module_id, 0, RestorePreset.LAST, user="a")
    site.set_output(module_id, 0, on=False, user="a")
    site.power_outage([module_id])
    site.power_restore([module_id])
    assert site.module(module_id).outputs[0].is_on is False


def test_restore_without_outage_does_nothing() -> None:
    site, module_id = _site_with(FakeClock())
    seen = _recorder(site)
    seq = site.ring(module_id).newest_seq
    site.power_restore()
    assert seen == []
    assert site.ring(module_id).newest_seq == seq


def test_outage_spares_battery_nodes_and_selected_modules_only() -> None:
    site = Site(clock=FakeClock(), seed=3)
    mains = site.add_module(kind=ModuleKind.MAINS, name="A", outputs=2).module_id
    dc = site.add_module(kind=ModuleKind.DC_12V, name="B").module_id
    node = site.add_module(kind=ModuleKind.BATTERY, name="C").module_id
    site.power_outage([mains, node])
    assert site.module(mains).telemetry.reachable is False
    assert site.module(dc).telemetry.reachable is True
    assert site.module(node).telemetry.reachable is True
    site.set_output(node, 0, on=True, user="x")
    site.power_outage()
    assert site.module(dc).telemetry.reachable is False
    assert site.module(node).telemetry.reachable is True
    site.power_restore([dc])
    assert site.module(dc).telemetry.reachable is True
    assert site.module(mains).telemetry.reachable is False


# --- battery -----------------------------------------------------------------------------------


def _battery_events(site: Site, module_id: int) -> int:
    return sum(1 for e in _events(site.ring(module_id)) if e.kind is EventKind.BATTERY_LOW)


def test_battery_low_logged_once_per_crossing() -> None:
    site, node = _site_with(FakeClock(), kind=ModuleKind.BATTERY, outputs=1)
    telemetry = site.module(node).telemetry
    assert telemetry.battery_percent == 100
    minimum = telemetry.battery_minimum_percent
    assert minimum is not None
    site.drain_battery(node, 100 - minimum - 1)
    assert _battery_events(site, node) == 0
    seen = _recorder(site)
    low = site.drain_battery(node, 1)
    assert low.battery_percent == minimum
    assert low.battery_low is True
    assert _battery_events(site, node) == 1
    assert seen == [
        TelemetryChanged(node, low),
        EventsAppended(node, site.ring(node).newest_seq),
    ]
    site.drain_battery(node, 3)
    site.drain_battery(node, 3)
    assert _battery_events(site, node) == 1
    site.charge_battery(node, minimum)  # not above the minimum: still the same crossing
    site.drain_battery(node, 1)
    assert _battery_events(site, node) == 1
    site.charge_battery(node, minimum + 1)
    site.drain_battery(node, 1)
    assert _battery_events(site, node) == 2


def test_flat_battery_node_goes_dark_and_repowers_when_charged() -> None:
    site, node = _site_with(FakeClock(), kind=ModuleKind.BATTERY, outputs=1)
    site.set_preset(node, 0, RestorePreset.LAST, user="a")
    site.set_output(node, 0, on=True, user="a")
    flat = site.drain_battery(node, 500)
    assert flat.battery_percent == 0
    assert flat.reachable is False
    site.power_restore()  # mains returning does not revive a flat battery
    assert site.module(node).telemetry.reachable is False
    seq = site.ring(node).newest_seq
    charged = site.charge_battery(node, 80)
    assert charged.reachable is True
    kinds = [e.kind for e in site.ring(node).read(seq, 10)]
    assert kinds == [EventKind.REPOWER, EventKind.PRESET_APPLIED]
    assert site.module(node).outputs[0].is_on is True


def test_battery_controls_validate() -> None:
    site, module_id = _site_with(FakeClock())
    with pytest.raises(InvalidRequestError):
        site.drain_battery(module_id, 1)  # mains module has no battery
    node = site.add_module(kind=ModuleKind.BATTERY, name="Node").module_id
    with pytest.raises(InvalidRequestError):
        site.drain_battery(node, -1)
    site.drain_battery(node, 30)
    with pytest.raises(InvalidRequestError):
        site.charge_battery(node, 101)
    with pytest.raises(InvalidRequestError):
        site.charge_battery(node, 10)  # charging never lowers the level


# --- membership --------------------------------------------------------------------------------


def test_add_and_remove_module() -> None:
    clock = FakeClock()
    site = Site(clock=clock, seed=1)
    seen = _recorder(site)
    first = site.add_module(kind=ModuleKind.MAINS, name="Kitchen", outputs=4)
    second = site.add_module(kind=ModuleKind.DC_12V, name="Shed", outputs=2)
    assert (first.module_id, second.module_id) == (1, 2)
    assert [o.index for o in first.outputs] == [0, 1, 2, 3]
    assert first.event_seq == 1
    assert first.event_count == 1
    joined = site.ring(1).read(0, 10)
    assert [e.kind for e in joined] == [EventKind.JOINED]
    assert seen[:2] == [ModuleJoined(first), EventsAppended(1, 1)]
    assert first.serial != second.serial
    site.remove_module(1)
    assert seen[-1] == ModuleLeft(1)
    assert [m.module_id for m in site.modules()] == [2]
    third = site.add_module(kind=ModuleKind.BATTERY, name="Vent")
    assert third.module_id == 3  # ids are never reused (PROTOCOL.md §4.1)
    assert third.telemetry.battery_percent is not None
    assert third.serial not in (first.serial, second.serial)


def test_add_module_validates() -> None:
    site = Site(clock=FakeClock(), seed=1)
    with pytest.raises(InvalidRequestError):
        site.add_module(kind=ModuleKind.MAINS, name="", outputs=1)
    with pytest.raises(InvalidRequestError):
        site.add_module(kind=ModuleKind.MAINS, name="X", outputs=9)
    with pytest.raises(InvalidRequestError):
        site.add_module(kind=ModuleKind.MAINS, name="X", outputs=0)
    full = Site.generate(module_count=MAX_MODULES, clock=FakeClock())
    with pytest.raises(InvalidRequestError):
        full.add_module(kind=ModuleKind.MAINS, name="One too many")


# --- generate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, -1, MAX_MODULES + 1])
def test_generate_rejects_out_of_range_counts(count: int) -> None:
    with pytest.raises(ValueError):
        Site.generate(module_count=count)


@pytest.mark.parametrize("count", [1, 2, 3, MAX_MODULES])
def test_generate_accepts_bounds(count: int) -> None:
    site = Site.generate(module_count=count, clock=FakeClock())
    modules = site.modules()
    assert [m.module_id for m in modules] == list(range(1, count + 1))
    assert len({m.serial for m in modules}) == count
    assert len({m.name for m in modules}) == count


def test_generate_default_mix() -> None:
    clock = FakeClock()
    site = Site.generate(clock=clock, serial_prefix="ZZ")
    modules = site.modules()
    assert len(modules) == 12
    by_kind = {kind: [m for m in modules if m.kind is kind] for kind in ModuleKind}
    assert len(by_kind[ModuleKind.MAINS]) == 6
    assert len(by_kind[ModuleKind.DC_12V]) == 3
    assert len(by_kind[ModuleKind.BATTERY]) == 3
    assert all(1 <= len(m.outputs) <= 4 for m in by_kind[ModuleKind.MAINS])
    assert all(1 <= len(m.outputs) <= 2 for m in by_kind[ModuleKind.DC_12V])
    assert all(len(m.outputs) == 1 for m in by_kind[ModuleKind.BATTERY])
    for module in modules:
        assert module.serial.startswith("ZZ")
        assert module.telemetry.reachable is True
        assert 0 <= module.telemetry.link_quality <= 255
        assert [o.index for o in module.outputs] == list(range(len(module.outputs)))
        assert all(o.name for o in module.outputs)
        battery = module.kind is ModuleKind.BATTERY
        assert (module.telemetry.battery_percent is not None) == battery
        assert (module.telemetry.battery_minimum_percent is not None) == battery
        assert module.telemetry.battery_low is (False if battery else None)
        events = site.ring(module.module_id).read(0, 10)
        assert [(e.seq, e.kind, e.timestamp) for e in events] == [
            (1, EventKind.POWER_ON, clock.now)
        ]


def test_generate_is_deterministic() -> None:
    one = Site.generate(seed=42, clock=FakeClock())
    two = Site.generate(seed=42, clock=FakeClock())
    other = Site.generate(seed=43, clock=FakeClock())
    assert one.modules() == two.modules()
    assert one.modules() != other.modules()


def test_generate_rejects_bad_serial_prefix() -> None:
    with pytest.raises(ValueError):
        Site.generate(serial_prefix="")
    with pytest.raises(ValueError):
        Site.generate(serial_prefix="R Z")


# --- listeners ---------------------------------------------------------------------------------


def test_unsubscribe_stops_notifications() -> None:
    site, module_id = _site_with(FakeClock())
    seen: list[SiteChange] = []
    unsubscribe = site.subscribe(seen.append)
    site.set_output(module_id, 0, on=True, user="x")
    unsubscribe()
    unsubscribe()  # idempotent
    site.set_output(module_id, 0, on=False, user="x")
    assert len(seen) == 2


def test_raising_listener_does_not_break_set_output(caplog: pytest.LogCaptureFixture) -> None:
    site, module_id = _site_with(FakeClock())

    def broken(change: SiteChange) -> None:
        raise RuntimeError("listener bug")

    site.subscribe(broken)
    seen = _recorder(site)
    with caplog.at_level(logging.ERROR, logger="rayzig_core.virtual_gateway.site"):
        out = site.set_output(module_id, 0, on=True, user="x")
    assert out.is_on is True
    assert site.module(module_id).outputs[0].is_on is True
    assert [type(change) for change in seen] == [OutputChanged, EventsAppended]
    assert any(record.exc_info for record in caplog.records)


def test_listener_sees_updated_state() -> None:
    site, module_id = _site_with(FakeClock())
    observed: list[bool] = []

    def check(change: SiteChange) -> None:
        if isinstance(change, OutputChanged):
            observed.append(site.module(module_id).outputs[0].is_on)

    site.subscribe(check)
    site.set_output(module_id, 0, on=True, user="x")
    assert observed == [True]


def test_telemetry_changes_are_reported() -> None:
    site, module_id = _site_with(FakeClock())
    seen = _recorder(site)
    telemetry = site.set_link_quality(module_id, 77)
    site.set_link_quality(module_id, 77)  # unchanged: nothing to report
    assert seen == [TelemetryChanged(module_id, telemetry)]


# --- JSON round trip ---------------------------------------------------------------------------


def _round_trip(site: Site, clock: Callable[[], float]) -> Site:
    return _site_from(_site_json(site), clock)


def test_json_round_trip_equality() -> None:
    clock = FakeClock()
    site = Site.generate(clock=clock, seed=5)
    for _ in range(300):
        clock.advance(1.25)
        site.simulate_step()
    site.power_outage([m.module_id for m in site.modules() if m.kind is ModuleKind.MAINS][:2])
    again = _round_trip(site, clock)
    assert again.modules() == site.modules()
    for module in site.modules():
        assert _events(again.ring(module.module_id)) == _events(site.ring(module.module_id))
    assert _site_json(again) == _site_json(site)


def test_json_round_trip_after_wrap() -> None:
    clock = FakeClock()
    site, module_id = _site_with(clock, outputs=2)
    for i in range(MAX_EVENTS_PER_MODULE + 77):
        clock.advance(0.5)
        site.set_output(module_id, i % 2, on=i % 3 == 0, user="automation")
    ring = site.ring(module_id)
    assert ring.oldest_seq == 79  # 1 JOINED + 8192 + 77 commands, 8192 held
    again = _round_trip(site, clock)
    assert again.modules() == site.modules()
    assert _events(again.ring(module_id)) == _events(ring)
    # The restored site keeps numbering where the original left off.
    again.set_output(module_id, 0, on=True, user="x")
    assert again.ring(module_id).newest_seq == ring.newest_seq + 1


def test_restored_site_still_applies_presets() -> None:
    clock = FakeClock()
    site, module_id = _site_with(clock, outputs=1)
    site.set_preset(module_id, 0, RestorePreset.ON, user="a")
    site.power_outage()
    again = _round_trip(site, clock)
    assert again.module(module_id).telemetry.reachable is False
    again.power_restore()
    assert again.module(module_id).outputs[0].is_on is True


def _mutations() -> list[Callable[[dict[str, object]], object]]:
    def module(data: dict[str, object]) -> dict[str, object]:
        modules = data["modules"]
        assert isinstance(modules, list)
        first = modules[0]
        assert isinstance(first, dict)
        return first

    def set_module(key: str, value: object) -> Callable[[dict[str, object]], object]:
        return lambda data: module(data).__setitem__(key, value)

    def drop_module(key: str) -> Callable[[dict[str, object]], object]:
        return lambda data: module(data).pop(key)

    def duplicate(data: dict[str, object]) -> None:
        modules = data["modules"]
        assert isinstance(modules, list)
        modules.append(copy.deepcopy(modules[0]))

    return [
        lambda data: data.pop("modules"),
        lambda data: data.__setitem__("format", 99),
        lambda data: data.__setitem__("modules", {"1": {}}),
        lambda data: data.__setitem__("serial_prefix", ""),
        lambda data: data.__setitem__("next_serial", "1"),
        duplicate,
        set_module("id", 0),
        set_module("id", MAX_MODULE_ID + 1),
        set_module("id", "1"),
        set_module("kind", 9),
        set_module("name", ""),
        set_module("link_quality", 256),
        set_module("link_quality", -1),
        set_module("powered", 1),
        set_module("outputs", []),
        set_module("outputs", [["A", False, 0, False]] * 9),
        set_module("outputs", [["A", False, 7, False]]),
        set_module("outputs", [["A", "no", 0, False]]),
        set_module("outputs", [["A", False, 0]]),
        set_module("battery", [50, 20]),  # the first generated module is not a battery node
        set_module("events", {"capacity": 4, "first_seq": 1, "events": [[1.0, 42]]}),
        drop_module("serial"),
        drop_module("events"),
    ]


@pytest.mark.parametrize("mutate", _mutations())
def test_from_json_rejects_malformed(mutate: Callable[[dict[str, object]], object]) -> None:
    site = Site.generate(module_count=3, seed=9, clock=FakeClock())  # module 1 is mains
    assert site.module(1).kind is not ModuleKind.BATTERY
    data = _site_json(site)
    mutate(data)
    with pytest.raises(ValueError):
        _site_from(data)


def test_from_json_rejects_non_objects_and_bad_battery() -> None:
    bad: tuple[object, ...] = (None, [], "site", 5)
    for data in bad:
        with pytest.raises(ValueError):
            _site_from(data)
    site = Site(clock=FakeClock(), seed=1)
    site.add_module(kind=ModuleKind.BATTERY, name="Node")
    good = _site_json(site)
    for battery in (None, [101, 20], [50], [50, "20"]):
        data = copy.deepcopy(good)
        data["modules"][0]["battery"] = battery
        with pytest.raises(ValueError):
            _site_from(data)
    flat_but_powered = copy.deepcopy(good)
    flat_but_powered["modules"][0]["battery"] = [0, 20]
    with pytest.raises(ValueError):
        _site_from(flat_but_powered)


# --- simulation --------------------------------------------------------------------------------


def test_simulate_step_is_deterministic_and_keeps_invariants() -> None:
    def run() -> Site:
        clock = FakeClock()
        site = Site.generate(clock=clock, seed=11)
        for _ in range(2000):
            clock.advance(3)
            site.simulate_step()
        return site

    one, two = run(), run()
    assert _site_json(one) == _site_json(two)
    commands = 0
    for module in one.modules():
        events = _events(one.ring(module.module_id))
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, module.event_seq + 1))
        commands += sum(1 for e in events if e.kind is EventKind.COMMAND)
        assert all(e.user == SIMULATION_USER for e in events if e.kind is EventKind.COMMAND)
        assert 1 <= module.telemetry.link_quality <= 255
    assert commands > 1000  # mostly output toggles
    assert any(
        e.kind is EventKind.REPOWER
        for module in one.modules()
        for e in _events(one.ring(module.module_id))
    )


def test_simulate_step_on_empty_site_is_a_no_op() -> None:
    site = Site(clock=FakeClock(), seed=1)
    site.simulate_step()
    assert site.modules() == []
