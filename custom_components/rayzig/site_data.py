"""What the integration knows about the site, and how a gateway notification changes it.

Pure functions over immutable data (no Home Assistant state): the coordinator keeps the current
:class:`RayzigSiteData` and applies each notification (PROTOCOL.md §5.4) with :func:`apply_notice`;
a notification that changes nothing returns the same object, and :func:`site_changes` tells which
modules two versions differ in, so that only their entities are told. Entities and the device
registry name devices with the identifiers here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rayzig_core import (
    MAX_EVENTS_PER_MODULE,
    EventsAvailable,
    FirmwareChanged,
    FirmwarePart,
    GatewayInfo,
    Module,
    ModuleJoined,
    ModuleLeft,
    Notification,
    Output,
    OutputChanged,
    TelemetryChanged,
)

from .const import DOMAIN


@dataclass(frozen=True, slots=True)
class RayzigSiteData:
    """What the coordinator knows about the site: the gateway and its modules by id."""

    info: GatewayInfo
    modules: dict[int, Module]


@dataclass(frozen=True, slots=True)
class SiteChanges:
    """How two versions of the site data differ."""

    site: bool
    """The gateway's info changed, or a module joined, left or came back under another serial."""
    modules: frozenset[int]
    """Ids of the modules whose data differ (those that joined or left included)."""


def site_changes(old: RayzigSiteData, new: RayzigSiteData) -> SiteChanges:
    """What differs from ``old`` to ``new`` (unchanged modules are compared by identity first)."""
    changed = {
        module_id
        for module_id, module in new.modules.items()
        if (before := old.modules.get(module_id)) is not module and before != module
    }
    left = old.modules.keys() - new.modules.keys()
    members = bool(left) or any(
        (before := old.modules.get(module_id)) is None
        or before.serial != new.modules[module_id].serial
        for module_id in changed
    )
    return SiteChanges(old.info != new.info or members, frozenset(changed | left))


def module_device_identifier(serial: str) -> tuple[str, str]:
    """Device-registry identifier of a module."""
    return (DOMAIN, serial)


def gateway_device_identifier(serial: str) -> tuple[str, str]:
    """Device-registry identifier of the gateway."""
    return (DOMAIN, serial)


def rayzig_firmware(info: GatewayInfo) -> str | None:
    """Version of the gateway's main (Rayzig) firmware."""
    for version in info.firmware:
        if version.part is FirmwarePart.RAYZIG:
            return version.version
    return None


def with_module(data: RayzigSiteData, module: Module) -> RayzigSiteData:
    """Return the site data with ``module`` added or replaced (``data`` itself if it is so)."""
    if data.modules.get(module.module_id) == module:
        return data
    return replace(data, modules={**data.modules, module.module_id: module})


def with_output(data: RayzigSiteData, module_id: int, output: Output) -> RayzigSiteData:
    """Return the site data with one output's new state (``data`` itself if known or unknown)."""
    module = data.modules.get(module_id)
    if module is None or module.output(output.index) is None:
        return data
    if module.output(output.index) == output:
        return data  # e.g. the OutputChanged that follows a command's acknowledgement
    # Replaced by index: a limited user sees only some outputs (PROTOCOL.md §4.1).
    outputs = tuple(output if known.index == output.index else known for known in module.outputs)
    return with_module(data, replace(module, outputs=outputs))


def apply_notice(data: RayzigSiteData, notice: Notification) -> RayzigSiteData:
    """Return the site data after a gateway notification (``data`` itself if nothing changes)."""
    if isinstance(notice, OutputChanged):
        return with_output(data, notice.module_id, notice.output)
    if isinstance(notice, ModuleJoined):
        return with_module(data, notice.module)
    if isinstance(notice, FirmwareChanged):
        if data.info.firmware == notice.versions:
            return data
        return replace(data, info=replace(data.info, firmware=notice.versions))
    if isinstance(notice, ModuleLeft):
        if notice.module_id not in data.modules:
            return data
        modules = {k: v for k, v in data.modules.items() if k != notice.module_id}
        return replace(data, modules=modules)
    module_id = getattr(notice, "module_id", None)
    module = data.modules.get(module_id) if isinstance(module_id, int) else None
    if module is None:
        return data
    if isinstance(notice, TelemetryChanged):
        return with_module(data, replace(module, telemetry=notice.telemetry))
    if isinstance(notice, EventsAvailable) and notice.newest_seq > module.event_seq:
        added = notice.newest_seq - module.event_seq
        return with_module(
            data,
            replace(
                module,
                event_seq=notice.newest_seq,
                event_count=min(MAX_EVENTS_PER_MODULE, module.event_count + added),
            ),
        )
    return data
