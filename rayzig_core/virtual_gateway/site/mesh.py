"""The physics of the simulated mesh: hop timing, power cuts and restores, batteries, daily life.

Hops: module ``m`` is :func:`hop_count` ``(m)`` hops from the gateway (1 to 4, fixed by its id), and
a command that must reach it waits ``hops * hop latency`` (the fake I2C bus applies it, PROTOCOL.md
§11.13). Power: a module that loses its supply goes out of reach, and one that regains it repowers
and applies its outputs' restore presets (§4.2); a battery logs BATTERY_LOW once per downward
crossing of its minimum and browns out at 0 % (§4.3). Each function changes one module and returns
the changes to report; the :class:`~rayzig_core.virtual_gateway.site.site.Site` reports them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from rayzig_core.models import EventKind, ModuleKind, RestorePreset
from rayzig_core.virtual_gateway.site.changes import (
    EventsAppended,
    OutputChanged,
    SiteChange,
    TelemetryChanged,
)
from rayzig_core.virtual_gateway.site.modules import ModuleState

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.site.site import Site

DEFAULT_HOP_LATENCY = 0.008
"""Seconds per mesh hop in the timing model (a 250 kbit/s 802.15.4-class radio hop with MAC and
forwarding overhead is a few milliseconds)."""
MAX_HOPS = 4
"""The farthest module is this many hops from the gateway."""
SIMULATION_USER = "site-simulator"
"""User recorded on COMMAND events caused by :func:`simulate_step`, a name no reader takes for a
Home Assistant automation. It is only a name in the records (no account): state files whose
records name the former actor ``automation`` load unchanged."""


def hop_count(module_id: int) -> int:
    """Mesh hops between the gateway and module ``module_id``: ``1 + (module_id - 1) mod 4``."""
    return 1 + (module_id - 1) % MAX_HOPS


def cut_power(module: ModuleState) -> list[SiteChange]:
    """A mains or DC module loses its supply and goes out of reach; battery nodes keep running."""
    if module.kind is ModuleKind.BATTERY or not module.powered:
        return []
    module.powered = False
    return [TelemetryChanged(module.module_id, module.telemetry())]


def repower(module: ModuleState, clock: Callable[[], float]) -> list[SiteChange]:
    """Boot a module that regained power: REPOWER, then each output's preset applied (§4.2)."""
    module.powered = True
    module.log(clock, EventKind.REPOWER)
    changes: list[SiteChange] = [TelemetryChanged(module.module_id, module.telemetry())]
    for index, current in enumerate(module.outputs):
        if current.preset is RestorePreset.OFF:
            is_on = False
        elif current.preset is RestorePreset.ON:
            is_on = True
        else:
            is_on = current.is_on
        updated = replace(current, is_on=is_on)
        module.outputs[index] = updated
        module.log(clock, EventKind.PRESET_APPLIED, output=index, is_on=is_on)
        changes.append(OutputChanged(module.module_id, updated, EventKind.PRESET_APPLIED))
    changes.append(EventsAppended(module.module_id, module.ring.newest_seq))
    return changes


def set_battery(module: ModuleState, percent: int, clock: Callable[[], float]) -> list[SiteChange]:
    """Move a battery to ``percent``: BATTERY_LOW on a downward crossing; flat at 0 (§4.3)."""
    old = module.battery_percent
    minimum = module.battery_minimum_percent
    assert old is not None
    assert minimum is not None
    if percent == old:
        return []
    changes: list[SiteChange] = []
    module.battery_percent = percent
    logged = False
    if old > minimum >= percent:
        module.log(clock, EventKind.BATTERY_LOW)
        logged = True
    if percent == 0 and module.powered:
        module.powered = False  # flat: the node browns out and its outputs lose power
    changes.append(TelemetryChanged(module.module_id, module.telemetry()))
    if logged:
        changes.append(EventsAppended(module.module_id, module.ring.newest_seq))
    if percent > 0 and not module.powered:
        changes += repower(module, clock)
    return changes


def simulate_step(site: Site, modules: Sequence[ModuleState], rng: random.Random) -> None:
    """One random step of everyday activity on ``site``, drawn from ``rng``.

    ``modules`` are the site's modules in id order. Mostly the simulated occupants toggling an
    output; sometimes a battery draining (or being swapped once low), link-quality jitter, or a
    brief power cut and return on one module.
    """
    if not modules:
        return
    roll = rng.random()
    if roll < 0.80:
        reachable = [module for module in modules if module.reachable]
        if reachable:
            module = rng.choice(reachable)
            index = rng.randrange(len(module.outputs))
            site.set_output(
                module.module_id, index, not module.outputs[index].is_on, user=SIMULATION_USER
            )
    elif roll < 0.90:
        batteries = [module for module in modules if module.kind is ModuleKind.BATTERY]
        if batteries:
            module = rng.choice(batteries)
            assert module.battery_percent is not None
            assert module.battery_minimum_percent is not None
            if module.battery_percent <= module.battery_minimum_percent and rng.random() < 0.2:
                site.charge_battery(module.module_id, 100)
            elif module.battery_percent > 0:
                site.drain_battery(module.module_id, 1)
    elif roll < 0.97:
        linked = [module for module in modules if module.link_quality > 0]
        if linked:
            module = rng.choice(linked)
            jittered = min(255, max(1, module.link_quality + rng.randint(-6, 6)))
            site.set_link_quality(module.module_id, jittered)
    else:
        mains = [m for m in modules if m.kind is not ModuleKind.BATTERY and m.powered]
        if mains:
            module_id = rng.choice(mains).module_id
            site.power_outage([module_id])
            site.power_restore([module_id])
