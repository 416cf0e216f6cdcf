"""The simulated Rayzig mesh behind the virtual gateway: modules, outputs, telemetry and event logs.

Pure Python and deterministic given a seed and an injected clock, so the virtual gateway, tests and
demos see the same behaviour as a real installation: per-module event-log rings with never-reused
sequence numbers (PROTOCOL.md §8), restore presets applied after an outage (§4.2), battery-low
events once per crossing (§4.3) and modules that refuse commands while out of reach (§4.1).

Output indices are 0-based: ``module.outputs[i].index == i`` for every module.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from rayzig_core.errors import InvalidRequestError, NotFoundError
from rayzig_core.models import (
    MAX_EVENTS_PER_MODULE,
    EventKind,
    Module,
    ModuleKind,
    Output,
    RestorePreset,
    Telemetry,
)
from rayzig_core.storage import StoredValueError
from rayzig_core.virtual_gateway.site import mesh
from rayzig_core.virtual_gateway.site.changes import (
    EventsAppended,
    ModuleJoined,
    ModuleLeft,
    OutputChanged,
    SiteChange,
    TelemetryChanged,
)
from rayzig_core.virtual_gateway.site.history import prefill_history
from rayzig_core.virtual_gateway.site.limits import (
    MAX_MODULE_ID,
    MAX_MODULES,
    MAX_NAME_LENGTH,
    MAX_OUTPUTS,
)
from rayzig_core.virtual_gateway.site.modules import (
    CURRENT_FIRMWARE,
    ModuleRecord,
    ModuleState,
    generate_modules,
    model_for,
)
from rayzig_core.virtual_gateway.site.rings import EventRing

_LOGGER = logging.getLogger(__name__)

_NOT_FOUND = 8
_INVALID = 1
SITE_FORMAT = 1
"""Version of the site's part of the gateway state file."""


def _check_count(name: str, value: object, low: int, high: int) -> None:
    """Refuse a count that is not an int from ``low`` to ``high`` (ValueError naming it)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value!r}")


def _check_serial_prefix(prefix: str) -> str:
    if not 1 <= len(prefix) <= 8 or not (prefix.isascii() and prefix.isalnum()):
        raise ValueError(f"serial_prefix must be 1..8 ASCII letters or digits, got {prefix!r}")
    return prefix


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteState:
    """A whole site as stored in the gateway's state file (§12): counters and every module."""

    site_format: int = field(default=SITE_FORMAT, metadata={"alias": "format"})
    serial_prefix: str
    next_serial: int
    next_module_id: int | None = None
    """None in sites saved before the counter existed: they go on after the highest id."""
    modules: tuple[ModuleRecord, ...]

    def __post_init__(self) -> None:
        """Refuse another format, bad counters, and a module id or serial used twice."""
        if self.site_format != SITE_FORMAT:
            raise StoredValueError(f"unsupported site format, expected {SITE_FORMAT}")
        try:
            _check_serial_prefix(self.serial_prefix)
        except ValueError:
            raise StoredValueError("serial_prefix must be 1..8 ASCII letters or digits") from None
        if self.next_serial < 0:
            raise StoredValueError("next_serial must not be negative")
        if self.next_module_id is not None and not 1 <= self.next_module_id <= MAX_MODULE_ID + 1:
            raise StoredValueError(f"next_module_id must be 1 to {MAX_MODULE_ID + 1}")
        if len({module.module_id for module in self.modules}) != len(self.modules):
            raise StoredValueError("a module id is used twice")
        if len({module.serial for module in self.modules}) != len(self.modules):
            raise StoredValueError("a module serial is used twice")


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
        self._modules: dict[int, ModuleState] = {}
        self._listeners: list[Callable[[SiteChange], None]] = []

    # -- construction and persistence ---------------------------------------------------------

    @classmethod
    def generate(
        cls,
        *,
        module_count: int = 12,
        serial_prefix: str = "RZ",
        clock: Callable[[], float] = time.time,
        seed: int = 1,
        outputs_per_module: int | None = None,
        prefill_events: int = 0,
    ) -> Site:
        """Build a realistic site: about half mains, a quarter 12 V DC, a quarter battery nodes.

        For large-site tests and benchmarks: ``outputs_per_module`` (1 to 8) gives every module
        that many outputs instead of its kind's usual 1 to 4, and ``prefill_events`` (up to
        8,192) fills every module's event log with that many records of its past (see
        :mod:`~rayzig_core.virtual_gateway.site.history`) instead of one POWER_ON now. The same
        arguments and seed make the same site.
        """
        _check_count("module_count", module_count, 1, MAX_MODULES)
        if outputs_per_module is not None:
            _check_count("outputs_per_module", outputs_per_module, 1, MAX_OUTPUTS)
        _check_count("prefill_events", prefill_events, 0, MAX_EVENTS_PER_MODULE)
        site = cls(clock=clock, seed=seed, serial_prefix=serial_prefix)
        now = clock()
        modules = generate_modules(
            site._rng, module_count, site._take_serial, now, outputs=outputs_per_module
        )
        for module in modules:
            if prefill_events:
                prefill_history(module, prefill_events, site._rng, now)
            site._modules[module.module_id] = module
        site._next_module_id = module_count + 1
        return site

    def state(self) -> SiteState:
        """The site as stored: counters and every module with its event log (not the RNG)."""
        return SiteState(
            serial_prefix=self._serial_prefix,
            next_serial=self._next_serial,
            modules=tuple(self._modules[module_id].record() for module_id in sorted(self._modules)),
            next_module_id=self._next_module_id,
        )

    @classmethod
    def restore(
        cls,
        state: SiteState,
        *,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> Site:
        """The site :meth:`state` described, simulated from here on with ``seed``."""
        site = cls(clock=clock, seed=seed, serial_prefix=state.serial_prefix)
        site._next_serial = state.next_serial
        for record in state.modules:
            site._modules[record.module_id] = ModuleState.restore(record)
        site._next_module_id = max(state.next_module_id or 1, max(site._modules, default=0) + 1)
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

    def _state(self, module_id: int) -> ModuleState:
        state = self._modules.get(module_id)
        if state is None:
            raise NotFoundError(_NOT_FOUND, f"Module {module_id} does not exist.")
        return state

    def _ordered(self) -> list[ModuleState]:
        return [self._modules[module_id] for module_id in sorted(self._modules)]

    def _output_of(self, state: ModuleState, output: int) -> Output:
        if (
            isinstance(output, bool)
            or not isinstance(output, int)
            or not 0 <= output < len(state.outputs)
        ):
            # Users count outputs from 1 (the protocol's index is 0-based, §4.2).
            number = output + 1 if type(output) is int else repr(output)
            raise NotFoundError(
                _NOT_FOUND,
                f"Module {state.module_id} has no output {number}: it has "
                f"{len(state.outputs)}, numbered from 1.",
            )
        return state.outputs[output]

    def _require_reachable(self, state: ModuleState) -> None:
        if not state.reachable:
            raise InvalidRequestError(
                _INVALID,
                f"Module {state.module_id} ({state.name}) is out of reach; "
                "try again when it is back.",
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
        event = state.log(
            self._clock, EventKind.COMMAND, output=output, user=user, is_on=updated.is_on
        )
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

    # -- power and radio (see mesh) -----------------------------------------------------------

    def _affected(self, module_ids: Iterable[int] | None) -> list[ModuleState]:
        if module_ids is None:
            return self._ordered()
        states = {module_id: self._state(module_id) for module_id in module_ids}
        return [states[module_id] for module_id in sorted(states)]

    def power_outage(self, module_ids: Iterable[int] | None = None) -> None:
        """Cut the supply of mains/DC modules (all if None): they go out of reach.

        Battery nodes keep running. Output states are remembered for the LAST preset.
        """
        self._emit([change for s in self._affected(module_ids) for change in mesh.cut_power(s)])

    def power_restore(self, module_ids: Iterable[int] | None = None) -> None:
        """Bring the supply back to modules hit by an outage (all if None) and apply presets."""
        changes: list[SiteChange] = []
        for state in self._affected(module_ids):
            if state.kind is not ModuleKind.BATTERY and not state.powered:
                changes += mesh.repower(state, self._clock)
        self._emit(changes)

    def _battery_state(self, module_id: int) -> ModuleState:
        state = self._state(module_id)
        if state.kind is not ModuleKind.BATTERY:
            raise InvalidRequestError(_INVALID, f"Module {module_id} has no battery.")
        return state

    def drain_battery(self, module_id: int, percent_points: int) -> Telemetry:
        """Lower a battery node's charge by ``percent_points`` (floored at 0)."""
        state = self._battery_state(module_id)
        if isinstance(percent_points, bool) or percent_points < 0:
            raise InvalidRequestError(_INVALID, "Drain must be zero or more percent points.")
        assert state.battery_percent is not None
        percent = max(0, state.battery_percent - percent_points)
        self._emit(mesh.set_battery(state, percent, self._clock))
        return state.telemetry()

    def charge_battery(self, module_id: int, percent: int) -> Telemetry:
        """Charge (or swap) a battery node's battery up to ``percent`` (an absolute level)."""
        state = self._battery_state(module_id)
        assert state.battery_percent is not None
        if isinstance(percent, bool) or not state.battery_percent <= percent <= 100:
            raise InvalidRequestError(
                _INVALID,
                f"Charge level must be {state.battery_percent}..100 percent, got {percent}.",
            )
        self._emit(mesh.set_battery(state, percent, self._clock))
        return state.telemetry()

    def set_link_quality(self, module_id: int, lqi: int) -> Telemetry:
        """Set a module's link quality (0-255); 0 means no radio link, so it is out of reach."""
        state = self._state(module_id)
        if isinstance(lqi, bool) or not 0 <= lqi <= 255:
            raise InvalidRequestError(_INVALID, f"Link quality must be 0..255, got {lqi}.")
        if lqi != state.link_quality:
            state.link_quality = lqi
            self._emit([TelemetryChanged(module_id, state.telemetry())])
        return state.telemetry()

    def simulate_step(self) -> None:
        """One random step of everyday activity, drawn from the seeded RNG (see mesh)."""
        mesh.simulate_step(self, self._ordered(), self._rng)

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
        state = ModuleState(
            module_id=module_id,
            serial=self._take_serial(),
            name=name.strip(),
            kind=kind,
            model=model_for(kind, outputs),
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
        event = state.log(self._clock, EventKind.JOINED)
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
