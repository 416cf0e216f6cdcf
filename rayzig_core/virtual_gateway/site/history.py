"""Pre-filled event logs for large simulated sites: a module's past, drawn quickly (PROTOCOL.md §8).

:func:`prefill_history` gives a generated module ``count`` records it could have logged before now,
drawn from the site's seeded RNG: its first POWER_ON, then mostly COMMANDs by the automation or the
installer, and now and then a power cut, logged as REPOWER followed by each output's PRESET_APPLIED
(§4.2). Sequence numbers run from 1, timestamps strictly increase and the newest lies in the past,
and the outputs are left in the states last logged, so a reader of the log and of the module agree.
A site of 250 modules with 8,192 records each is drawn in seconds: the records are built as plain
tuples in one pass and the ring is laid out from them at once.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from rayzig_core.models import MAX_EVENTS_PER_MODULE, EventKind, RestorePreset
from rayzig_core.virtual_gateway.site.modules import ModuleState
from rayzig_core.virtual_gateway.site.rings import EventRecord, EventRing, RingState

HISTORY_USERS = ("automation", "installer")
"""Who switched outputs in a pre-filled history."""
AUTOMATION_SHARE = 0.7
"""Share of the commands in a pre-filled history that the automation gave."""
REPOWER_RATE = 0.01
"""Chance that the next entry of a pre-filled history is a power cut and its return."""
MIN_GAP = 1.0
MAX_GAP = 900.0
"""Seconds between two entries of a pre-filled history (drawn uniformly): 8,192 span some weeks."""
PRESET_SPACING = 0.05
"""Seconds between a REPOWER and each PRESET_APPLIED after it (applied output by output)."""


def prefill_history(module: ModuleState, count: int, rng: random.Random, now: float) -> None:
    """Replace ``module``'s event log with ``count`` records logged before ``now``, oldest first.

    ``count`` is 1 to :data:`~rayzig_core.models.MAX_EVENTS_PER_MODULE` (the ring's capacity).
    """
    if isinstance(count, bool) or not 1 <= count <= MAX_EVENTS_PER_MODULE:
        raise ValueError(f"a pre-filled event log holds 1..{MAX_EVENTS_PER_MODULE} records")
    rand = rng.random
    span = MAX_GAP - MIN_GAP
    offsets = list(itertools.accumulate(MIN_GAP + span * rand() for _ in range(count)))
    base = now - offsets[-1] - (MIN_GAP + span * rand())  # the newest record lies in the past
    presets = [output.preset for output in module.outputs]
    outputs = len(presets)
    states = [False] * outputs  # a module leaves the factory with its outputs off
    automation, installer = HISTORY_USERS
    command, repower, applied = EventKind.COMMAND, EventKind.REPOWER, EventKind.PRESET_APPLIED
    records: list[EventRecord] = [(base + offsets[0], EventKind.POWER_ON, None, None, None)]
    append = records.append
    logged = 1
    while logged < count:
        roll = rand()
        timestamp = base + offsets[logged]
        if roll < REPOWER_RATE and count - logged > outputs:
            append((timestamp, repower, None, None, None))
            for index, preset in enumerate(presets):
                if preset is not RestorePreset.LAST:
                    states[index] = preset is RestorePreset.ON
                step = PRESET_SPACING * (index + 1)  # well below MIN_GAP: still in order
                append((timestamp + step, applied, index, None, states[index]))
            logged += 1 + outputs
            continue
        index = int(rand() * outputs)
        states[index] = not states[index]
        user = automation if roll < REPOWER_RATE + AUTOMATION_SHARE else installer
        append((timestamp, command, index, user, states[index]))
        logged += 1
    module.ring = EventRing.restore(
        RingState(capacity=module.ring.capacity, first_seq=1, events=tuple(records)),
        module.module_id,
    )
    module.outputs = [
        replace(output, is_on=state) for output, state in zip(module.outputs, states, strict=True)
    ]
