"""User limitations as the gateway enforces them (PROTOCOL.md §7.4): what a limited account sees.

A limitation narrows a User account to some modules and outputs and may make it read-only. A
request outside it is refused with OUTSIDE_LIMITATION before anything is looked up, so a limited
account cannot probe which modules exist; module lists, event batches and notifications show it
only what lies inside. No request handling here: the handlers call these checks and filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from rayzig_core.models import Event, Module, UserLimitation
from rayzig_core.protocol import messages as m
from rayzig_core.virtual_gateway.device.answers import RequestRefused

if TYPE_CHECKING:
    from rayzig_core.virtual_gateway.device.state import UserAccount
    from rayzig_core.virtual_gateway.site.rings import EventRing
    from rayzig_core.virtual_gateway.site.site import Site

MAX_LIMITATION_ENTRIES = 256
"""Most modules and outputs one limitation names together, so that it always fits a frame."""
_WHO_CHANGES = "an Administrator or System user can change the limitation."
_SCAN = 512
"""Records read from a ring at a time while looking for the ones a limited account sees."""


def _refused(text: str) -> RequestRefused:
    return RequestRefused(m.ErrorCode.OUTSIDE_LIMITATION, f"{text}; {_WHO_CHANGES}")


def refuse_module(account: UserAccount, module_id: int) -> None:
    """Refuse a request about a module the account's limitation does not cover."""
    limitation = account.limitation
    if limitation is not None and not limitation.covers_module(module_id):
        raise _refused(f"Module {module_id} is outside the limitation of user {account.name!r}")


def refuse_switching(account: UserAccount, module_id: int, output: int) -> None:
    """Refuse changing an output outside the limitation, or any output of a read-only account."""
    limitation = account.limitation
    if limitation is None:
        return
    refuse_module(account, module_id)
    if not limitation.covers_output(module_id, output):
        raise _refused(
            f"Output {output + 1} (index {output}) of module {module_id} is outside the "
            f"limitation of user {account.name!r}"
        )
    if limitation.read_only:
        raise _refused(
            f"User {account.name!r} is limited to reading: switching is outside its limitation"
        )


def visible_module(limitation: UserLimitation | None, module: Module) -> Module | None:
    """The module as the account sees it: only the outputs it covers; None if it sees none."""
    if limitation is None or limitation.all_modules or module.module_id in limitation.modules:
        return module
    if not limitation.covers_module(module.module_id):
        return None
    outputs = tuple(
        o for o in module.outputs if limitation.covers_output(module.module_id, o.index)
    )
    return replace(module, outputs=outputs)


def visible_modules(limitation: UserLimitation | None, modules: Sequence[Module]) -> list[Module]:
    """The modules the account sees, each with only the outputs it covers (§4.1, §7.4)."""
    if limitation is None:
        return list(modules)
    seen = (visible_module(limitation, module) for module in modules)
    return [module for module in seen if module is not None]


def visible_events(
    limitation: UserLimitation | None, ring: EventRing, after_seq: int, wanted: int
) -> list[Event]:
    """Up to ``wanted`` records after ``after_seq`` that the account sees, oldest first (§8.2).

    A record about an output outside the limitation is left out; module-wide records (outputs
    null) stay. The whole rest of the ring is searched if need be, so an empty answer means that
    nothing the account sees follows ``after_seq``.
    """
    if limitation is None or limitation.all_modules:
        return ring.read(after_seq, wanted)
    found: list[Event] = []
    cursor = after_seq
    while len(found) < wanted:
        chunk = ring.read(cursor, _SCAN)
        if not chunk:
            break
        found.extend(
            event
            for event in chunk
            if event.output is None or limitation.covers_output(event.module_id, event.output)
        )
        cursor = chunk[-1].seq
    return found[:wanted]


def visible_notice(limitation: UserLimitation, notice: m.Notification) -> m.Notification | None:
    """The notification as a limited session gets it, or None if it concerns nothing it sees."""
    if isinstance(notice, m.OutputChanged):
        covered = limitation.covers_output(notice.module_id, notice.output.index)
        return notice if covered else None
    if isinstance(notice, m.EventsAvailable | m.TelemetryChanged | m.ModuleLeft):
        return notice if limitation.covers_module(notice.module_id) else None
    if isinstance(notice, m.ModuleJoined):
        module = visible_module(limitation, notice.module)
        return None if module is None else m.ModuleJoined(module)
    return notice  # FirmwareChanged: the gateway's own, not a module's


def checked_limitation(site: Site, limitation: UserLimitation | None) -> UserLimitation | None:
    """The limitation to store: checked against the site and sorted, duplicates dropped (§7.4).

    BAD_REQUEST for too many entries or a whole-site scope that also names modules or limits
    nothing; NOT_FOUND for a module or output the site does not have.
    """
    if limitation is None:
        return None
    if len(limitation.modules) + len(limitation.outputs) > MAX_LIMITATION_ENTRIES:
        raise RequestRefused(
            m.ErrorCode.BAD_REQUEST,
            f"A limitation names at most {MAX_LIMITATION_ENTRIES} modules and outputs together.",
        )
    if limitation.all_modules and (limitation.modules or limitation.outputs):
        raise RequestRefused(
            m.ErrorCode.BAD_REQUEST,
            "A limitation to every module names no single modules or outputs.",
        )
    if limitation.all_modules and not limitation.read_only:
        raise RequestRefused(
            m.ErrorCode.BAD_REQUEST,
            "A limitation to every module that is not read-only limits nothing: lift the "
            "limitation instead (none).",
        )
    modules = sorted(set(limitation.modules))
    for module_id in modules:
        site.module(module_id)  # NotFoundError for a module the site does not have
    whole = set(modules)
    outputs = sorted(
        {ref for ref in limitation.outputs if ref.module_id not in whole},
        key=lambda ref: (ref.module_id, ref.output),
    )
    for ref in outputs:
        if site.module(ref.module_id).output(ref.output) is None:
            raise RequestRefused(
                m.ErrorCode.NOT_FOUND,
                f"Module {ref.module_id} has no output {ref.output + 1} (index {ref.output}).",
            )
    return UserLimitation(
        tuple(modules), tuple(outputs), limitation.read_only, limitation.all_modules
    )
