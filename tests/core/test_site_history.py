"""Large simulated sites: outputs per module and pre-filled event logs (``Site.generate``)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from rayzig_core.models import (
    MAX_EVENTS_PER_MODULE,
    Event,
    EventKind,
    ModuleKind,
    RestorePreset,
)
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import Site, VirtualGateway, load_state, save_state
from rayzig_core.virtual_gateway.site.history import HISTORY_USERS
from rayzig_core.virtual_gateway.site.limits import MAX_OUTPUTS
from rayzig_core.virtual_gateway.site.site import SiteState
from tests.core.conftest import SCRYPT_N, restored, stored

NOW = 1_750_000_000.0
HISTORY_KINDS = {
    EventKind.POWER_ON,
    EventKind.COMMAND,
    EventKind.REPOWER,
    EventKind.PRESET_APPLIED,
}


def generate(**options: object) -> Site:
    return Site.generate(clock=lambda: NOW, **options)  # type: ignore[arg-type]


def log_of(site: Site, module_id: int) -> list[Event]:
    return list(site.ring(module_id))


@pytest.mark.parametrize("outputs", [1, 4, MAX_OUTPUTS])
def test_every_module_gets_the_outputs_asked_for(outputs: int) -> None:
    site = generate(module_count=20, outputs_per_module=outputs)
    for module in site.modules():
        assert [output.index for output in module.outputs] == list(range(outputs))
        assert module.model.endswith(str(outputs))
        names = [output.name for output in module.outputs]
        assert all(names)
        assert len(set(names)) == outputs
    kinds = Counter(module.kind for module in site.modules())
    assert kinds == Counter(module.kind for module in generate(module_count=20).modules())


def test_outputs_beyond_a_template_are_named_after_their_module() -> None:
    modules = generate(outputs_per_module=3).modules()
    battery = next(module for module in modules if module.kind is ModuleKind.BATTERY)
    assert [output.name for output in battery.outputs][1:] == [
        f"{battery.name} output 2",
        f"{battery.name} output 3",
    ]


def test_each_log_holds_the_records_asked_for_in_order_and_in_the_past() -> None:
    site = generate(module_count=6, outputs_per_module=3, prefill_events=1500)
    for module in site.modules():
        assert (module.event_count, module.event_seq) == (1500, 1500)
        events = log_of(site, module.module_id)
        assert [event.seq for event in events] == list(range(1, 1501))
        assert {event.module_id for event in events} == {module.module_id}
        assert events[0].kind is EventKind.POWER_ON
        assert {event.kind for event in events} == HISTORY_KINDS
        stamps = [event.timestamp for event in events]
        assert all(a < b for a, b in itertools.pairwise(stamps))
        assert stamps[-1] < NOW


def test_the_history_is_consistent_with_the_outputs_and_their_presets() -> None:
    site = generate(module_count=8, outputs_per_module=4, prefill_events=3000)
    for module in site.modules():
        states = [False] * len(module.outputs)  # outputs leave the factory off
        events = log_of(site, module.module_id)
        position = 1
        while position < len(events):
            event = events[position]
            if event.kind is EventKind.COMMAND:
                assert event.user in HISTORY_USERS
                assert event.output is not None
                assert event.is_on is (not states[event.output])
                states[event.output] = event.is_on
                position += 1
                continue
            assert event.kind is EventKind.REPOWER
            applied = events[position + 1 : position + 1 + len(states)]
            assert [(e.kind, e.output) for e in applied] == [
                (EventKind.PRESET_APPLIED, index) for index in range(len(states))
            ]
            for output, record in zip(module.outputs, applied, strict=True):
                if output.preset is not RestorePreset.LAST:
                    states[output.index] = output.preset is RestorePreset.ON
                assert record.is_on is states[output.index]
            position += 1 + len(states)
        assert [output.is_on for output in module.outputs] == states


def test_a_log_can_be_filled_to_its_capacity_and_keeps_logging() -> None:
    site = generate(module_count=2, prefill_events=MAX_EVENTS_PER_MODULE)
    module_id = site.modules()[0].module_id
    ring = site.ring(module_id)
    assert ring.count == ring.capacity == MAX_EVENTS_PER_MODULE
    site.set_output(module_id, 0, True, user="installer")
    assert (ring.oldest_seq, ring.newest_seq) == (2, MAX_EVENTS_PER_MODULE + 1)
    assert log_of(site, module_id)[-1].timestamp == NOW  # the live log goes on from now


def test_the_same_seed_draws_the_same_site() -> None:
    options = {"module_count": 5, "outputs_per_module": 2, "prefill_events": 400}
    one, two = generate(seed=7, **options), generate(seed=7, **options)
    other = generate(seed=8, **options)
    assert one.modules() == two.modules()
    assert [log_of(one, m.module_id) for m in one.modules()] == [
        log_of(two, m.module_id) for m in two.modules()
    ]
    assert [log_of(one, m.module_id) for m in one.modules()] != [
        log_of(other, m.module_id) for m in other.modules()
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"outputs_per_module": 0}, "outputs_per_module must be 1..8"),
        ({"outputs_per_module": MAX_OUTPUTS + 1}, "outputs_per_module must be 1..8"),
        ({"outputs_per_module": True}, "outputs_per_module must be 1..8"),
        ({"prefill_events": -1}, "prefill_events must be 0..8192"),
        ({"prefill_events": MAX_EVENTS_PER_MODULE + 1}, "prefill_events must be 0..8192"),
        ({"prefill_events": 1.5}, "prefill_events must be 0..8192"),
    ],
)
def test_out_of_range_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(**options)


def test_a_prefilled_site_is_stored_and_loaded_unchanged(tmp_path: Path) -> None:
    site = generate(module_count=3, outputs_per_module=8, prefill_events=MAX_EVENTS_PER_MODULE)
    again = Site.restore(restored(SiteState, stored(site.state())))
    assert again.modules() == site.modules()
    assert log_of(again, 2) == log_of(site, 2)
    gateway, _ = VirtualGateway.factory_new(site=site, scrypt_n=SCRYPT_N)
    save_state(gateway, tmp_path / "gw.json")
    loaded = load_state(tmp_path / "gw.json")
    assert loaded is not None
    assert loaded.site.modules() == site.modules()


def test_the_gateway_thread_makes_the_site_asked_for(tmp_path: Path) -> None:
    gw = GatewayThread(
        tmp_path / "gw.json", module_count=4, outputs_per_module=6, prefill_events=300, seed=5
    )
    gw.start()
    try:
        modules = gw.call(lambda g: g.site.modules())
    finally:
        gw.stop()
    assert len(modules) == 4
    assert {len(module.outputs) for module in modules} == {6}
    assert {(module.event_count, module.event_seq) for module in modules} == {(300, 300)}
    assert (
        modules
        == generate(module_count=4, outputs_per_module=6, prefill_events=300, seed=5).modules()
    )
