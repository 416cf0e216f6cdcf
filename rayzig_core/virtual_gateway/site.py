"""The simulated Rayzig mesh behind the virtual gateway: modules, outputs, telemetry and event logs.

Pure Python and deterministic given a seed and an injected clock, so the virtual gateway, tests and
demos see the same behaviour as a real installation: per-module event-log rings with never-reused
sequence numbers (PROTOCOL.md §8), restore presets applied after an outage (§4.2), battery-low
events once per crossing (§4.3) and modules that refuse commands while out of reach.

Output indices are 0-based: ``module.outputs[i].index == i`` for every module.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TypeAlias

from rayzig_core.errors import InvalidRequestError, NotFoundError
from rayzig_core.models import (
    MAX_EVENTS_PER_MODULE,
    Event,
    EventKind,
    Module,
    ModuleKind,
    Output,
    RestorePreset,
    Telemetry,
)

_LOGGER = logging.getLogger(__name__)

_NOT_FOUND = 8
_INVALID = 1

MAX_MODULES = 250
"""Most modules one site (one gateway) can hold at a time."""
MAX_MODULE_ID = 65535
"""Largest module id. Ids are handed out in order and never reused within a site's lifetime, so
an id (a client's event cursor, an entity) can never come to mean another module (§4.1)."""
MAX_OUTPUTS = 8
"""Most power outputs one module can have."""
MAX_NAME_LENGTH = 64
"""Longest module name the site accepts."""
CURRENT_FIRMWARE = "3.5.0"
"""Firmware a newly joined module reports."""
SIMULATION_USER = "automation"
"""User recorded on COMMAND events caused by :meth:`Site.simulate_step`."""

_JSON_FORMAT = 1
_MODEL_LETTER = {ModuleKind.MAINS: "M", ModuleKind.DC_12V: "D", ModuleKind.BATTERY: "B"}

# Realistic installation templates: (module name, output names in wiring order).
_MAINS_TEMPLATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Kitchen", ("Kitchen sockets", "Kitchen lights", "Dishwasher", "Extractor fan")),
    ("Garage", ("Garage door", "Garage lights", "EV charger", "Chest freezer")),
    ("Garden", ("Pond pump", "Garden lights", "Fountain", "Patio heater")),
    ("Living room", ("Living room lamps", "TV sockets", "Panel heater", "Ceiling fan")),
    ("Utility room", ("Hot water", "Washing machine", "Tumble dryer", "Heat pump")),
    ("Office", ("Office sockets", "Printer", "Desk lamp", "Space heater")),
    ("Workshop", ("Workshop lights", "Compressor", "Dust extractor", "Bench sockets")),
    ("Bedroom", ("Bedroom lamps", "Bedroom heater", "Electric blanket", "Bedroom fan")),
)
_DC_TEMPLATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Shed", ("Shed lights", "Shed fan")),
    ("Gate", ("Gate motor", "Gate lights")),
    ("Boat", ("Bilge pump", "Cabin lights")),
    ("Caravan", ("Caravan lights", "Water pump")),
    ("Solar shed", ("Solar pump", "Battery fan")),
    ("Aquarium", ("Aquarium filter", "Aquarium lights")),
)
_BATTERY_TEMPLATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Greenhouse", ("Greenhouse vent",)),
    ("Irrigation", ("Irrigation valve",)),
    ("Mailbox", ("Mailbox light",)),
    ("Driveway", ("Driveway marker",)),
    ("Chicken coop", ("Coop door",)),
    ("Water butt", ("Water butt valve",)),
)
_UTILITY_LOADS = frozenset({"Hot water", "Heat pump", "EV charger", "Patio heater", "Pond pump"})
"""Heavy loads an installer typically lets the utility shed (demand response)."""
_FIRMWARES = ("3.4.1", "3.4.2", CURRENT_FIRMWARE)


# --- changes reported to listeners --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """Base of everything a :class:`Site` reports to its listeners after its state changed."""


@dataclass(frozen=True, slots=True)
class OutputChanged(Change):
    """An output's state, preset or utility flag changed; ``cause`` says by command or preset."""

    module_id: int
    output: Output
    cause: EventKind


@dataclass(frozen=True, slots=True)
class EventsAppended(Change):
    """A module's event log gained records up to ``newest_seq``, so readers can fetch them."""

    module_id: int
    newest_seq: int


@dataclass(frozen=True, slots=True)
class TelemetryChanged(Change):
    """A module's telemetry (battery, link quality, reachability) changed."""

    module_id: int
    telemetry: Telemetry


@dataclass(frozen=True, slots=True)
class ModuleJoined(Change):
    """A module joined the mesh; carries its full snapshot."""

    module: Module


@dataclass(frozen=True, slots=True)
class ModuleLeft(Change):
    """A module left the mesh; its id is never given to another module."""

    module_id: int


SiteChange: TypeAlias = (
    OutputChanged | EventsAppended | TelemetryChanged | ModuleJoined | ModuleLeft
)
"""Any change a :class:`Site` listener can receive."""


# --- JSON validation helpers -------------------------------------------------------------------


def _expect_dict(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{where}: expected an object")
    return value


def _expect_list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected an array")  # noqa: TRY004 - contract: ValueError
    return value


def _field(data: dict[str, object], key: str, where: str) -> object:
    if key not in data:
        raise ValueError(f"{where}: missing {key!r}")
    return data[key]


def _expect_int(value: object, where: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer")  # noqa: TRY004 - as above
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{where}: {value} is outside {bounds}")
    return value


def _expect_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected a boolean")  # noqa: TRY004 - as above
    return value


def _expect_str(value: object, where: str, *, non_empty: bool = True) -> str:
    if not isinstance(value, str) or (non_empty and not value):
        raise ValueError(f"{where}: expected a non-empty string")
    return value


def _expect_timestamp(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number")  # noqa: TRY004 - as above
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{where}: timestamp is not finite")
    return result


def _event_from_json(raw: object, module_id: int, seq: int) -> Event:
    """Validate and rebuild one compact ring record ``[timestamp, kind, output, user, is_on]``."""
    where = f"event seq {seq}"
    record = _expect_list(raw, where)
    if not 2 <= len(record) <= 5:
        raise ValueError(f"{where}: expected 2 to 5 fields")
    record = record + [None] * (5 - len(record))
    timestamp = _expect_timestamp(record[0], f"{where} timestamp")
    kind_value = _expect_int(record[1], f"{where} kind", 0)
    try:
        kind = EventKind(kind_value)
    except ValueError:
        raise ValueError(f"{where}: unknown event kind {kind_value}") from None
    if kind is EventKind.GAP:
        raise ValueError(f"{where}: GAP records cannot be stored in a ring")
    output = record[2]
    if output is not None:
        output = _expect_int(output, f"{where} output", 0, MAX_OUTPUTS - 1)
    user = record[3]
    if user is not None:
        user = _expect_str(user, f"{where} user")
    is_on = record[4]
    if is_on is not None:
        is_on = _expect_bool(is_on, f"{where} is_on")
    return Event(module_id, seq, timestamp, kind, output, user, is_on)


# --- event log ring ----------------------------------------------------------------------------


class EventRing:
    """A module's event log: a fixed-capacity ring whose sequence numbers are never reused.

    The record with sequence number ``seq`` lives at slot ``(seq - 1 - base) % capacity``, so a
    read is a direct index and a wrap simply overwrites the oldest record; ``base`` is 0 for a new
    ring, and the sequence number before the first record held after :meth:`clear` or a reload.
    """

    __slots__ = ("_base", "_buffer", "_capacity", "_newest_seq")

    def __init__(self, capacity: int = MAX_EVENTS_PER_MODULE) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError("ring capacity must be a positive integer")
        self._capacity = capacity
        self._buffer: list[Event] = []
        self._newest_seq = 0
        self._base = 0

    @property
    def capacity(self) -> int:
        """Most records the ring holds before it overwrites the oldest."""
        return self._capacity

    @property
    def newest_seq(self) -> int:
        """Sequence number of the newest record, 0 if nothing was ever logged."""
        return self._newest_seq

    @property
    def oldest_seq(self) -> int:
        """Sequence number of the oldest record still held (``newest_seq + 1`` when empty)."""
        return self._newest_seq - len(self._buffer) + 1

    @property
    def count(self) -> int:
        """Records currently held (at most ``capacity``)."""
        return len(self._buffer)

    def append(
        self,
        *,
        module_id: int,
        timestamp: float,
        kind: EventKind,
        output: int | None = None,
        user: str | None = None,
        is_on: bool | None = None,
    ) -> Event:
        """Log one record with the next sequence number, overwriting the oldest when full."""
        if kind is EventKind.GAP:
            raise ValueError("GAP records are synthesised by clients, never logged by a module")
        seq = self._newest_seq + 1
        event = Event(
            module_id=module_id,
            seq=seq,
            timestamp=float(timestamp),
            kind=EventKind(kind),
            output=output,
            user=user,
            is_on=is_on,
        )
        if len(self._buffer) < self._capacity:
            self._buffer.append(event)
        else:
            self._buffer[(seq - 1 - self._base) % self._capacity] = event
        self._newest_seq = seq
        return event

    def clear(self) -> int:
        """Erase every record (a factory reset); returns how many were held.

        Sequence numbers go on from :attr:`newest_seq`: they are never reused, so a reader's
        cursor never points past the log, and records it had not read count as lost (§8.2).
        """
        erased = len(self._buffer)
        self._buffer = []
        self._base = self._newest_seq
        return erased

    def read(self, after_seq: int, max_count: int) -> list[Event]:
        """Return records with seq > ``after_seq``, oldest first, at most ``max_count``.

        If ``after_seq`` lies in the overwritten region the read starts at the oldest record held;
        the caller detects the gap by comparing ``after_seq + 1`` with the first seq returned.
        """
        if max_count <= 0:
            return []
        start = max(after_seq + 1, self.oldest_seq)
        stop = min(self._newest_seq, start + max_count - 1)
        capacity = self._capacity
        buffer = self._buffer
        offset = 1 + self._base
        return [buffer[(seq - offset) % capacity] for seq in range(start, stop + 1)]

    def __iter__(self) -> Iterator[Event]:
        """Iterate over the held records, oldest first."""
        return iter(self.read(self.oldest_seq - 1, len(self._buffer)))

    def to_json(self) -> dict[str, object]:
        """Compact JSON-able form: capacity, first seq and one short array per record.

        Each record is ``[timestamp, kind, output, user, is_on]`` with trailing nulls dropped;
        sequence numbers are implied by ``first_seq`` and position.
        """
        records: list[list[object]] = []
        for event in self.read(self.oldest_seq - 1, len(self._buffer)):
            record: list[object] = [
                event.timestamp,
                int(event.kind),
                event.output,
                event.user,
                event.is_on,
            ]
            while len(record) > 2 and record[-1] is None:
                record.pop()
            records.append(record)
        return {"capacity": self._capacity, "first_seq": self.oldest_seq, "events": records}

    @classmethod
    def from_json(cls, data: object, module_id: int) -> EventRing:
        """Rebuild a ring written by :meth:`to_json`; raises ValueError on malformed data."""
        obj = _expect_dict(data, "event ring")
        capacity = _expect_int(_field(obj, "capacity", "event ring"), "ring capacity", 1)
        first_seq = _expect_int(_field(obj, "first_seq", "event ring"), "ring first_seq", 1)
        raw_events = _expect_list(_field(obj, "events", "event ring"), "ring events")
        if len(raw_events) > capacity:
            raise ValueError("event ring: more records than its capacity")
        # A ring that has wrapped is full; one cleared by a factory reset (or a reset and then
        # wrapped) starts after 1 with any number of records: both are laid out from slot 0.
        events: list[Event] = []
        for offset, raw in enumerate(raw_events):
            events.append(_event_from_json(raw, module_id, first_seq + offset))
        ring = cls(capacity)
        ring._buffer = events
        ring._base = first_seq - 1
        ring._newest_seq = first_seq + len(events) - 1
        return ring


# --- modules -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _ModuleState:
    """Mutable state of one simulated module; the site hands out frozen snapshots of it."""

    module_id: int
    serial: str
    name: str
    kind: ModuleKind
    model: str
    firmware: str
    outputs: list[Output]
    link_quality: int
    battery_percent: int | None
    battery_minimum_percent: int | None
    powered: bool
    """Mains/DC: supply present. Battery nodes: battery not flat."""
    ring: EventRing

    @property
    def reachable(self) -> bool:
        return self.powered and self.link_quality > 0

    def telemetry(self) -> Telemetry:
        return Telemetry(
            link_quality=self.link_quality,
            battery_percent=self.battery_percent,
            battery_minimum_percent=self.battery_minimum_percent,
            reachable=self.reachable,
        )

    def snapshot(self) -> Module:
        return Module(
            module_id=self.module_id,
            serial=self.serial,
            name=self.name,
            kind=self.kind,
            model=self.model,
            firmware=self.firmware,
            outputs=tuple(self.outputs),
            telemetry=self.telemetry(),
            event_seq=self.ring.newest_seq,
            event_count=self.ring.count,
        )


def _model_for(kind: ModuleKind, outputs: int) -> str:
    return f"RZ-{_MODEL_LETTER[kind]}{outputs}"


class Site:
    """The simulated mesh of one gateway: behaves like real modules, driven by a seed and a clock.

    Every mutating call updates the state first, then tells each listener synchronously about the
    resulting changes; a listener that raises is logged and skipped.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        serial_prefix: str = "RZ",
    ) -> None:
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        self._serial_prefix = _check_serial_prefix(serial_prefix)
        self._next_serial = self._rng.randint(1_000_000, 8_999_999)
        self._next_module_id = 1
        self._modules: dict[int, _ModuleState] = {}
        self._listeners: list[Callable[[SiteChange], None]] = []

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        *,
        module_count: int = 12,
        serial_prefix: str = "RZ",
        clock: Callable[[], float] = time.time,
        seed: int = 1,
    ) -> Site:
        """Build a realistic site: about half mains, a quarter 12 V DC, a quarter battery nodes."""
        if (
            isinstance(module_count, bool)
            or not isinstance(module_count, int)
            or not 1 <= module_count <= MAX_MODULES
        ):
            raise ValueError(f"module_count must be 1..{MAX_MODULES}, got {module_count!r}")
        site = cls(clock=clock, seed=seed, serial_prefix=serial_prefix)
        rng = site._rng
        mains = max(1, round(module_count * 0.5))
        battery = round(module_count * 0.25)
        dc = module_count - mains - battery
        kinds = [ModuleKind.MAINS] * mains + [ModuleKind.DC_12V] * dc
        kinds += [ModuleKind.BATTERY] * battery
        rng.shuffle(kinds)
        templates = {
            ModuleKind.MAINS: list(_MAINS_TEMPLATES),
            ModuleKind.DC_12V: list(_DC_TEMPLATES),
            ModuleKind.BATTERY: list(_BATTERY_TEMPLATES),
        }
        for pool in templates.values():
            rng.shuffle(pool)
        used_names: set[str] = set()
        per_kind = dict.fromkeys(ModuleKind, 0)
        now = float(clock())
        for position, kind in enumerate(kinds):
            module_id = position + 1
            pool = templates[kind]
            base_name, output_names = pool[per_kind[kind] % len(pool)]
            per_kind[kind] += 1
            name = base_name
            suffix = 2
            while name in used_names:
                name = f"{base_name} {suffix}"
                suffix += 1
            used_names.add(name)
            if kind is ModuleKind.MAINS:
                count = rng.randint(1, 4)
            elif kind is ModuleKind.DC_12V:
                count = rng.randint(1, 2)
            else:
                count = 1
            outputs = [
                Output(
                    index=index,
                    name=output_names[index],
                    is_on=rng.random() < 0.4,
                    preset=rng.choices(
                        (RestorePreset.LAST, RestorePreset.OFF, RestorePreset.ON), (6, 3, 1)
                    )[0],
                    utility_controllable=output_names[index] in _UTILITY_LOADS,
                )
                for index in range(count)
            ]
            if kind is ModuleKind.BATTERY:
                battery_percent: int | None = rng.randint(45, 100)
                battery_minimum: int | None = rng.choice((15, 20, 25))
                link_quality = rng.randint(60, 200)
            else:
                battery_percent = battery_minimum = None
                link_quality = rng.randint(110, 255)
            state = _ModuleState(
                module_id=module_id,
                serial=site._take_serial(),
                name=name,
                kind=kind,
                model=_model_for(kind, count),
                firmware=rng.choice(_FIRMWARES),
                outputs=outputs,
                link_quality=link_quality,
                battery_percent=battery_percent,
                battery_minimum_percent=battery_minimum,
                powered=True,
                ring=EventRing(),
            )
            state.ring.append(module_id=module_id, timestamp=now, kind=EventKind.POWER_ON)
            site._modules[module_id] = state
        site._next_module_id = len(kinds) + 1
        return site

    # -- listeners ----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[SiteChange], None]) -> Callable[[], None]:
        """Call ``listener`` with every change from now on; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, changes: list[SiteChange]) -> None:
        for change in changes:
            for listener in list(self._listeners):
                try:
                    listener(change)
                except Exception:
                    _LOGGER.exception("Site listener %r failed on %r", listener, change)

    # -- queries ------------------------------------------------------------------------------

    def modules(self) -> list[Module]:
        """Snapshots of all modules, ordered by module id."""
        return [self._modules[module_id].snapshot() for module_id in sorted(self._modules)]

    def module(self, module_id: int) -> Module:
        """Snapshot of one module; NotFoundError if there is no such module."""
        return self._state(module_id).snapshot()

    def ring(self, module_id: int) -> EventRing:
        """Return the live event-log ring of one module; NotFoundError if there is none."""
        return self._state(module_id).ring

    def _state(self, module_id: int) -> _ModuleState:
        state = self._modules.get(module_id)
        if state is None:
            raise NotFoundError(_NOT_FOUND, f"Module {module_id} does not exist.")
        return state

    def _output_of(self, state: _ModuleState, output: int) -> Output:
        if (
            isinstance(output, bool)
            or not isinstance(output, int)
            or not 0 <= output < len(state.outputs)
        ):
            raise NotFoundError(_NOT_FOUND, f"Module {state.module_id} has no output {output}.")
        return state.outputs[output]

    def _require_reachable(self, state: _ModuleState) -> None:
        if not state.reachable:
            raise InvalidRequestError(
                _INVALID,
                f"Module {state.module_id} ({state.name}) is out of reach; "
                "try again when it is back.",
            )

    def _log(
        self,
        state: _ModuleState,
        kind: EventKind,
        *,
        output: int | None = None,
        user: str | None = None,
        is_on: bool | None = None,
    ) -> Event:
        return state.ring.append(
            module_id=state.module_id,
            timestamp=float(self._clock()),
            kind=kind,
            output=output,
            user=user,
            is_on=is_on,
        )

    # -- commands -----------------------------------------------------------------------------

    def set_output(self, module_id: int, output: int, on: bool, *, user: str) -> Output:
        """Switch an output on or off as ``user``; logs a COMMAND event."""
        state = self._state(module_id)
        current = self._output_of(state, output)
        if not isinstance(user, str) or not user:
            raise InvalidRequestError(_INVALID, "A command needs the name of the acting user.")
        self._require_reachable(state)
        updated = replace(current, is_on=bool(on))
        state.outputs[output] = updated
        event = self._log(state, EventKind.COMMAND, output=output, user=user, is_on=updated.is_on)
        self._emit(
            [
                OutputChanged(module_id, updated, EventKind.COMMAND),
                EventsAppended(module_id, event.seq),
            ]
        )
        return updated

    def set_preset(
        self, module_id: int, output: int, preset: RestorePreset, *, user: str
    ) -> Output:
        """Set what an output does when power returns; the module must be reachable to store it."""
        state = self._state(module_id)
        current = self._output_of(state, output)
        try:
            preset = RestorePreset(preset)
        except ValueError:
            raise InvalidRequestError(_INVALID, f"Unknown restore preset {preset!r}.") from None
        if not isinstance(user, str) or not user:
            raise InvalidRequestError(_INVALID, "A command needs the name of the acting user.")
        self._require_reachable(state)
        updated = replace(current, preset=preset)
        state.outputs[output] = updated
        self._emit([OutputChanged(module_id, updated, EventKind.COMMAND)])
        return updated

    def set_utility_controllable(self, module_id: int, output: int, controllable: bool) -> Output:
        """Mark whether the Utility user may switch an output (a gateway-side permission)."""
        state = self._state(module_id)
        updated = replace(self._output_of(state, output), utility_controllable=bool(controllable))
        state.outputs[output] = updated
        self._emit([OutputChanged(module_id, updated, EventKind.COMMAND)])
        return updated

    # -- power and radio ----------------------------------------------------------------------

    def _affected(self, module_ids: Iterable[int] | None) -> list[_ModuleState]:
        if module_ids is None:
            return [self._modules[module_id] for module_id in sorted(self._modules)]
        states = {module_id: self._state(module_id) for module_id in module_ids}
        return [states[module_id] for module_id in sorted(states)]

    def power_outage(self, module_ids: Iterable[int] | None = None) -> None:
        """Cut the supply of mains/DC modules (all if None): they go out of reach.

        Battery nodes keep running. Output states are remembered for the LAST preset.
        """
        changes: list[SiteChange] = []
        for state in self._affected(module_ids):
            if state.kind is ModuleKind.BATTERY or not state.powered:
                continue
            state.powered = False
            changes.append(TelemetryChanged(state.module_id, state.telemetry()))
        self._emit(changes)

    def power_restore(self, module_ids: Iterable[int] | None = None) -> None:
        """Bring the supply back to modules hit by an outage (all if None) and apply presets."""
        changes: list[SiteChange] = []
        for state in self._affected(module_ids):
            if state.kind is ModuleKind.BATTERY or state.powered:
                continue
            self._repower(state, changes)
        self._emit(changes)

    def _repower(self, state: _ModuleState, changes: list[SiteChange]) -> None:
        """Boot a module that regained power: REPOWER, then each output's preset applied."""
        state.powered = True
        self._log(state, EventKind.REPOWER)
        changes.append(TelemetryChanged(state.module_id, state.telemetry()))
        for index, current in enumerate(state.outputs):
            if current.preset is RestorePreset.OFF:
                is_on = False
            elif current.preset is RestorePreset.ON:
                is_on = True
            else:
                is_on = current.is_on
            updated = replace(current, is_on=is_on)
            state.outputs[index] = updated
            self._log(state, EventKind.PRESET_APPLIED, output=index, is_on=is_on)
            changes.append(OutputChanged(state.module_id, updated, EventKind.PRESET_APPLIED))
        changes.append(EventsAppended(state.module_id, state.ring.newest_seq))

    def _battery_state(self, module_id: int) -> _ModuleState:
        state = self._state(module_id)
        if state.kind is not ModuleKind.BATTERY:
            raise InvalidRequestError(_INVALID, f"Module {module_id} has no battery.")
        return state

    def _set_battery(self, state: _ModuleState, percent: int) -> Telemetry:
        """Move a battery to ``percent``: log BATTERY_LOW on a downward crossing; die at 0."""
        old = state.battery_percent
        minimum = state.battery_minimum_percent
        assert old is not None
        assert minimum is not None
        if percent == old:
            return state.telemetry()
        changes: list[SiteChange] = []
        state.battery_percent = percent
        logged = False
        if old > minimum >= percent:
            self._log(state, EventKind.BATTERY_LOW)
            logged = True
        if percent == 0 and state.powered:
            state.powered = False  # flat: the node browns out and its outputs lose power
        changes.append(TelemetryChanged(state.module_id, state.telemetry()))
        if logged:
            changes.append(EventsAppended(state.module_id, state.ring.newest_seq))
        if percent > 0 and not state.powered:
            self._repower(state, changes)
        self._emit(changes)
        return state.telemetry()

    def drain_battery(self, module_id: int, percent_points: int) -> Telemetry:
        """Lower a battery node's charge by ``percent_points`` (floored at 0)."""
        state = self._battery_state(module_id)
        if isinstance(percent_points, bool) or percent_points < 0:
            raise InvalidRequestError(_INVALID, "Drain must be zero or more percent points.")
        assert state.battery_percent is not None
        return self._set_battery(state, max(0, state.battery_percent - percent_points))

    def charge_battery(self, module_id: int, percent: int) -> Telemetry:
        """Charge (or swap) a battery node's battery up to ``percent`` (an absolute level)."""
        state = self._battery_state(module_id)
        assert state.battery_percent is not None
        if isinstance(percent, bool) or not state.battery_percent <= percent <= 100:
            raise InvalidRequestError(
                _INVALID,
                f"Charge level must be {state.battery_percent}..100 percent, got {percent}.",
            )
        return self._set_battery(state, percent)

    def set_link_quality(self, module_id: int, lqi: int) -> Telemetry:
        """Set a module's link quality (0-255); 0 means no radio link, so it is out of reach."""
        state = self._state(module_id)
        if isinstance(lqi, bool) or not 0 <= lqi <= 255:
            raise InvalidRequestError(_INVALID, f"Link quality must be 0..255, got {lqi}.")
        if lqi != state.link_quality:
            state.link_quality = lqi
            self._emit([TelemetryChanged(module_id, state.telemetry())])
        return state.telemetry()

    # -- membership ---------------------------------------------------------------------------

    def _take_serial(self) -> str:
        serial = f"{self._serial_prefix}{self._next_serial:07d}"
        self._next_serial += 1
        return serial

    def add_module(self, *, kind: ModuleKind, name: str, outputs: int = 1) -> Module:
        """Join a new factory-fresh module under the next never-used id; logs a JOINED event."""
        try:
            kind = ModuleKind(kind)
        except ValueError:
            raise InvalidRequestError(_INVALID, f"Unknown module kind {kind!r}.") from None
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise InvalidRequestError(
                _INVALID, f"A module name must be 1..{MAX_NAME_LENGTH} characters."
            )
        if isinstance(outputs, bool) or not 1 <= outputs <= MAX_OUTPUTS:
            raise InvalidRequestError(
                _INVALID, f"A module has 1..{MAX_OUTPUTS} outputs, got {outputs}."
            )
        if len(self._modules) >= MAX_MODULES:
            raise InvalidRequestError(_INVALID, f"The site already holds {MAX_MODULES} modules.")
        module_id = self._next_module_id
        if module_id > MAX_MODULE_ID:
            raise InvalidRequestError(
                _INVALID, "Every module id of this site has been used; a factory reset is needed."
            )
        self._next_module_id += 1
        battery = kind is ModuleKind.BATTERY
        state = _ModuleState(
            module_id=module_id,
            serial=self._take_serial(),
            name=name.strip(),
            kind=kind,
            model=_model_for(kind, outputs),
            firmware=CURRENT_FIRMWARE,
            outputs=[
                Output(
                    index=index,
                    name=f"Output {index + 1}",
                    is_on=False,
                    preset=RestorePreset.OFF,
                    utility_controllable=False,
                )
                for index in range(outputs)
            ],
            link_quality=self._rng.randint(120, 230),
            battery_percent=100 if battery else None,
            battery_minimum_percent=20 if battery else None,
            powered=True,
            ring=EventRing(),
        )
        self._modules[module_id] = state
        event = self._log(state, EventKind.JOINED)
        self._emit([ModuleJoined(state.snapshot()), EventsAppended(module_id, event.seq)])
        return state.snapshot()

    def erase_event_logs(self) -> int:
        """Erase every module's event log (a factory reset); returns how many records went.

        Sequence numbers go on where each log stopped (see :meth:`EventRing.clear`). Listeners
        are not told: the gateway closes every session when it resets.
        """
        return sum(state.ring.clear() for state in self._modules.values())

    def remove_module(self, module_id: int) -> None:
        """Remove a module from the mesh (its event log goes with it)."""
        self._state(module_id)
        del self._modules[module_id]
        self._emit([ModuleLeft(module_id)])

    # -- simulation ---------------------------------------------------------------------------

    def simulate_step(self) -> None:
        """One random step of everyday activity, drawn from the seeded RNG.

        Mostly an automation toggling an output; sometimes a battery draining (or being swapped
        once low), link-quality jitter, or a brief power cut and return on one module.
        """
        rng = self._rng
        states = [self._modules[module_id] for module_id in sorted(self._modules)]
        if not states:
            return
        roll = rng.random()
        if roll < 0.80:
            reachable = [state for state in states if state.reachable]
            if reachable:
                state = rng.choice(reachable)
                index = rng.randrange(len(state.outputs))
                self.set_output(
                    state.module_id,
                    index,
                    not state.outputs[index].is_on,
                    user=SIMULATION_USER,
                )
        elif roll < 0.90:
            batteries = [state for state in states if state.kind is ModuleKind.BATTERY]
            if batteries:
                state = rng.choice(batteries)
                assert state.battery_percent is not None
                assert state.battery_minimum_percent is not None
                if state.battery_percent <= state.battery_minimum_percent and rng.random() < 0.2:
                    self.charge_battery(state.module_id, 100)
                elif state.battery_percent > 0:
                    self.drain_battery(state.module_id, 1)
        elif roll < 0.97:
            linked = [state for state in states if state.link_quality > 0]
            if linked:
                state = rng.choice(linked)
                jittered = min(255, max(1, state.link_quality + rng.randint(-6, 6)))
                self.set_link_quality(state.module_id, jittered)
        else:
            mains = [s for s in states if s.kind is not ModuleKind.BATTERY and s.powered]
            if mains:
                module_id = rng.choice(mains).module_id
                self.power_outage([module_id])
                self.power_restore([module_id])

    # -- persistence --------------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        """JSON-able snapshot of the whole site, event rings included (not the RNG state)."""
        modules: list[dict[str, object]] = []
        for module_id in sorted(self._modules):
            state = self._modules[module_id]
            battery: list[int] | None = None
            if state.battery_percent is not None and state.battery_minimum_percent is not None:
                battery = [state.battery_percent, state.battery_minimum_percent]
            modules.append(
                {
                    "id": state.module_id,
                    "serial": state.serial,
                    "name": state.name,
                    "kind": int(state.kind),
                    "model": state.model,
                    "firmware": state.firmware,
                    "powered": state.powered,
                    "link_quality": state.link_quality,
                    "battery": battery,
                    "outputs": [
                        [out.name, out.is_on, int(out.preset), out.utility_controllable]
                        for out in state.outputs
                    ],
                    "events": state.ring.to_json(),
                }
            )
        return {
            "format": _JSON_FORMAT,
            "serial_prefix": self._serial_prefix,
            "next_serial": self._next_serial,
            "next_module_id": self._next_module_id,
            "modules": modules,
        }

    @classmethod
    def from_json(
        cls,
        data: object,
        *,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> Site:
        """Rebuild a site written by :meth:`to_json`; raises ValueError on malformed data."""
        obj = _expect_dict(data, "site")
        version = _expect_int(_field(obj, "format", "site"), "site format", 0)
        if version != _JSON_FORMAT:
            raise ValueError(f"site: unsupported format {version}")
        prefix = _expect_str(_field(obj, "serial_prefix", "site"), "site serial_prefix")
        site = cls(clock=clock, seed=seed, serial_prefix=prefix)
        site._next_serial = _expect_int(_field(obj, "next_serial", "site"), "site next_serial", 0)
        serials: set[str] = set()
        for raw in _expect_list(_field(obj, "modules", "site"), "site modules"):
            state = _module_from_json(raw)
            if state.module_id in site._modules:
                raise ValueError(f"module {state.module_id}: duplicate module id")
            if state.serial in serials:
                raise ValueError(f"module {state.module_id}: duplicate serial {state.serial!r}")
            serials.add(state.serial)
            site._modules[state.module_id] = state
        # Sites saved before the counter existed continue after the highest id in use.
        stored = obj.get("next_module_id", 1)
        site._next_module_id = max(
            _expect_int(stored, "site next_module_id", 1, MAX_MODULE_ID + 1),
            max(site._modules, default=0) + 1,
        )
        return site


def _check_serial_prefix(prefix: object) -> str:
    if (
        not isinstance(prefix, str)
        or not 1 <= len(prefix) <= 8
        or not (prefix.isascii() and prefix.isalnum())
    ):
        raise ValueError(f"serial_prefix must be 1..8 ASCII letters or digits, got {prefix!r}")
    return prefix


def _module_from_json(raw: object) -> _ModuleState:
    """Validate and rebuild one module written by :meth:`Site.to_json`."""
    obj = _expect_dict(raw, "module")
    module_id = _expect_int(_field(obj, "id", "module"), "module id", 1, MAX_MODULE_ID)
    where = f"module {module_id}"
    kind_value = _expect_int(_field(obj, "kind", where), f"{where} kind", 0)
    try:
        kind = ModuleKind(kind_value)
    except ValueError:
        raise ValueError(f"{where}: unknown module kind {kind_value}") from None
    name = _expect_str(_field(obj, "name", where), f"{where} name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{where}: name longer than {MAX_NAME_LENGTH} characters")
    raw_outputs = _expect_list(_field(obj, "outputs", where), f"{where} outputs")
    if not 1 <= len(raw_outputs) <= MAX_OUTPUTS:
        raise ValueError(f"{where}: must have 1..{MAX_OUTPUTS} outputs")
    outputs: list[Output] = []
    for index, raw_output in enumerate(raw_outputs):
        out_where = f"{where} output {index}"
        fields = _expect_list(raw_output, out_where)
        if len(fields) != 4:
            raise ValueError(f"{out_where}: expected [name, is_on, preset, utility_controllable]")
        preset_value = _expect_int(fields[2], f"{out_where} preset", 0)
        try:
            preset = RestorePreset(preset_value)
        except ValueError:
            raise ValueError(f"{out_where}: unknown restore preset {preset_value}") from None
        outputs.append(
            Output(
                index=index,
                name=_expect_str(fields[0], f"{out_where} name"),
                is_on=_expect_bool(fields[1], f"{out_where} is_on"),
                preset=preset,
                utility_controllable=_expect_bool(fields[3], f"{out_where} utility_controllable"),
            )
        )
    powered = _expect_bool(_field(obj, "powered", where), f"{where} powered")
    raw_battery = _field(obj, "battery", where)
    battery_percent: int | None = None
    battery_minimum: int | None = None
    if kind is ModuleKind.BATTERY:
        pair = _expect_list(raw_battery, f"{where} battery")
        if len(pair) != 2:
            raise ValueError(f"{where}: battery must be [percent, minimum_percent]")
        battery_percent = _expect_int(pair[0], f"{where} battery percent", 0, 100)
        battery_minimum = _expect_int(pair[1], f"{where} battery minimum", 0, 100)
        if powered != (battery_percent > 0):
            raise ValueError(f"{where}: battery node powered state contradicts its charge")
    elif raw_battery is not None:
        raise ValueError(f"{where}: only battery nodes have a battery")
    return _ModuleState(
        module_id=module_id,
        serial=_expect_str(_field(obj, "serial", where), f"{where} serial"),
        name=name,
        kind=kind,
        model=_expect_str(_field(obj, "model", where), f"{where} model"),
        firmware=_expect_str(_field(obj, "firmware", where), f"{where} firmware"),
        outputs=outputs,
        link_quality=_expect_int(
            _field(obj, "link_quality", where), f"{where} link_quality", 0, 255
        ),
        battery_percent=battery_percent,
        battery_minimum_percent=battery_minimum,
        powered=powered,
        ring=EventRing.from_json(_field(obj, "events", where), module_id),
    )
