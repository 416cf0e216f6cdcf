"""One simulated module (PROTOCOL.md §4): its live state, how it is stored and how sites are made.

A module is stored in the gateway's state file (§12) with its outputs as short arrays
``[name, is_on, preset, utility_controllable]`` (the index is the position) and its battery as
``[percent, minimum_percent]`` (null without one). :func:`generate_modules` draws a realistic
installation from a seeded RNG.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mashumaro.types import SerializationStrategy

from rayzig_core.models import (
    Event,
    EventKind,
    Module,
    ModuleKind,
    Output,
    RestorePreset,
    Telemetry,
)
from rayzig_core.storage import StoredValueError
from rayzig_core.virtual_gateway.site.limits import MAX_MODULE_ID, MAX_NAME_LENGTH, MAX_OUTPUTS
from rayzig_core.virtual_gateway.site.rings import EventRing, RingState

CURRENT_FIRMWARE = "3.5.0"
"""Firmware a newly joined module reports."""

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


def _output_name(module: str, template: tuple[str, ...], index: int) -> str:
    """The template's name of output ``index``, or ``<module> output <n>`` beyond the template."""
    return template[index] if index < len(template) else f"{module} output {index + 1}"


def model_for(kind: ModuleKind, outputs: int) -> str:
    """The model name of a module, e.g. ``RZ-M4`` for a mains module with 4 outputs (§4.1)."""
    return f"RZ-{_MODEL_LETTER[kind]}{outputs}"


@dataclass(slots=True)
class ModuleState:
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
        """Powered and in radio range: it takes commands (§4.1)."""
        return self.powered and self.link_quality > 0

    def telemetry(self) -> Telemetry:
        """Its telemetry now (§4.3)."""
        return Telemetry(
            link_quality=self.link_quality,
            battery_percent=self.battery_percent,
            battery_minimum_percent=self.battery_minimum_percent,
            reachable=self.reachable,
        )

    def snapshot(self) -> Module:
        """A frozen copy for readers (§4.1)."""
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

    def log(
        self,
        clock: Callable[[], float],
        kind: EventKind,
        *,
        output: int | None = None,
        user: str | None = None,
        is_on: bool | None = None,
    ) -> Event:
        """Append a record to its event log, stamped with ``clock()`` (§8.1)."""
        return self.ring.append(
            module_id=self.module_id,
            timestamp=float(clock()),
            kind=kind,
            output=output,
            user=user,
            is_on=is_on,
        )

    def record(self) -> ModuleRecord:
        """The module as stored."""
        battery = None
        if self.battery_percent is not None and self.battery_minimum_percent is not None:
            battery = (self.battery_percent, self.battery_minimum_percent)
        return ModuleRecord(
            module_id=self.module_id,
            serial=self.serial,
            name=self.name,
            kind=self.kind,
            model=self.model,
            firmware=self.firmware,
            powered=self.powered,
            link_quality=self.link_quality,
            battery=battery,
            outputs=tuple(self.outputs),
            events=self.ring.state(),
        )

    @classmethod
    def restore(cls, record: ModuleRecord) -> ModuleState:
        """The module ``record`` describes."""
        percent, minimum = record.battery if record.battery is not None else (None, None)
        return cls(
            module_id=record.module_id,
            serial=record.serial,
            name=record.name,
            kind=record.kind,
            model=record.model,
            firmware=record.firmware,
            outputs=list(record.outputs),
            link_quality=record.link_quality,
            battery_percent=percent,
            battery_minimum_percent=minimum,
            powered=record.powered,
            ring=EventRing.restore(record.events, record.module_id),
        )


class _CompactOutputs(SerializationStrategy):
    """Outputs as ``[name, is_on, preset, utility_controllable]``; the index is the position."""

    def serialize(self, value: tuple[Output, ...]) -> list[list[object]]:
        return [[o.name, o.is_on, int(o.preset), o.utility_controllable] for o in value]

    def deserialize(self, value: object) -> tuple[Output, ...]:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_OUTPUTS:
            raise StoredValueError(f"a module has 1 to {MAX_OUTPUTS} outputs")
        outputs: list[Output] = []
        for index, raw in enumerate(value):
            if not isinstance(raw, list) or len(raw) != 4:
                raise StoredValueError(
                    f"output {index}: expected [name, is_on, preset, utility_controllable]"
                )
            name, is_on, preset, utility = raw
            if type(name) is not str or not name:
                raise StoredValueError(f"output {index}: the name must be a non-empty string")
            if type(is_on) is not bool or type(utility) is not bool:
                raise StoredValueError(f"output {index}: is_on and the utility flag are booleans")
            if type(preset) is not int or preset not in RestorePreset._value2member_map_:
                raise StoredValueError(f"output {index}: unknown restore preset")
            outputs.append(Output(index, name, is_on, RestorePreset(preset), utility))
        return tuple(outputs)


class _Battery(SerializationStrategy):
    """A battery as ``[percent, minimum_percent]``, both 0 to 100."""

    def serialize(self, value: tuple[int, int]) -> list[int]:
        return list(value)

    def deserialize(self, value: object) -> tuple[int, int]:
        if (
            not isinstance(value, list)
            or len(value) != 2
            or any(type(item) is not int or not 0 <= item <= 100 for item in value)
        ):
            raise StoredValueError("battery must be [percent, minimum_percent], both 0 to 100")
        return value[0], value[1]


@dataclass(frozen=True, slots=True)
class ModuleRecord:
    """One module as stored in the gateway's state file (§12)."""

    module_id: int = field(metadata={"alias": "id"})
    serial: str
    name: str
    kind: ModuleKind
    model: str
    firmware: str
    powered: bool
    link_quality: int
    battery: tuple[int, int] | None = field(metadata={"serialization_strategy": _Battery()})
    outputs: tuple[Output, ...] = field(metadata={"serialization_strategy": _CompactOutputs()})
    events: RingState

    def __post_init__(self) -> None:
        """Refuse what no module can be: ids, names and link qualities out of range, batteries."""
        where = f"module {self.module_id}"
        if not 1 <= self.module_id <= MAX_MODULE_ID:
            raise StoredValueError(f"module ids are 1 to {MAX_MODULE_ID}")
        if not 1 <= len(self.name) <= MAX_NAME_LENGTH:
            raise StoredValueError(f"{where}: the name has 1 to {MAX_NAME_LENGTH} characters")
        if not (self.serial and self.model and self.firmware):
            raise StoredValueError(f"{where}: serial, model and firmware must not be empty")
        if not 0 <= self.link_quality <= 255:
            raise StoredValueError(f"{where}: link_quality must be 0 to 255")
        if self.kind is not ModuleKind.BATTERY:
            if self.battery is not None:
                raise StoredValueError(f"{where}: only battery nodes have a battery")
        elif self.battery is None:
            raise StoredValueError(f"{where}: a battery node needs its battery")
        elif self.powered != (self.battery[0] > 0):
            raise StoredValueError(f"{where}: battery node powered state contradicts its charge")


def generate_modules(
    rng: random.Random,
    module_count: int,
    take_serial: Callable[[], str],
    now: float,
    *,
    outputs: int | None = None,
) -> list[ModuleState]:
    """A realistic installation of ``module_count`` modules with ids 1, 2, …, drawn from ``rng``.

    About half are mains modules, a quarter 12 V DC and a quarter battery nodes; each has logged
    POWER_ON at ``now``. ``outputs`` gives every module that many outputs (1 to 8) instead of
    its kind's usual 1 to 4; outputs beyond its template's names are named after the module.
    """
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
    modules: list[ModuleState] = []
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
        if outputs is not None:
            count = outputs
        wired = [
            Output(
                index=index,
                name=_output_name(name, output_names, index),
                is_on=rng.random() < 0.4,
                preset=rng.choices(
                    (RestorePreset.LAST, RestorePreset.OFF, RestorePreset.ON), (6, 3, 1)
                )[0],
                utility_controllable=_output_name(name, output_names, index) in _UTILITY_LOADS,
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
        module = ModuleState(
            module_id=module_id,
            serial=take_serial(),
            name=name,
            kind=kind,
            model=model_for(kind, count),
            firmware=rng.choice(_FIRMWARES),
            outputs=wired,
            link_quality=link_quality,
            battery_percent=battery_percent,
            battery_minimum_percent=battery_minimum,
            powered=True,
            ring=EventRing(),
        )
        module.ring.append(module_id=module_id, timestamp=now, kind=EventKind.POWER_ON)
        modules.append(module)
    return modules
