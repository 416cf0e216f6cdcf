"""Targeted updates at a large site: a change writes the states it concerns and nothing else.

Every state write of a Rayzig entity is counted (``Entity.async_write_ha_state`` wrapped; a
write of an unchanged state costs as much as any other, and Home Assistant fires no
``state_changed`` for it). The site is large enough that writing every entity would stand out:
a command must write its switch once, plus what really changed in its module (the event-log fill
sensor, the event entity showing the command's record).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_UNAVAILABLE,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity import Entity
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.const import DOMAIN
from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.models import ConnectionState, Module, ModuleKind
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.transport.tcp import TcpConnector

from .conftest import OWNER, OWNER_PASSWORD
from .runtime_helpers import entry_for, loaded_entry, site_modules, wait_for

pytestmark = pytest.mark.usefixtures("runtime_sensors_enabled")

MODULES = 200
"""Generated modules (1 to 4 outputs each): about 1,450 entities."""


class Writes:
    """Counts the state writes of Rayzig entities by entity id."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def record(self, entity: Entity) -> None:
        platform = entity.platform
        if platform is not None and platform.platform_name == DOMAIN:
            self.counts[entity.entity_id] += 1

    def take(self) -> Counter[str]:
        """The writes since the last call."""
        counts, self.counts = self.counts, Counter()
        return counts


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Writes:
    """Count every Rayzig state write from now on."""
    counter = Writes()
    original = Entity.async_write_ha_state

    def counted(self: Entity) -> None:
        counter.record(self)
        original(self)

    monkeypatch.setattr(Entity, "async_write_ha_state", counted)
    return counter


@pytest.fixture
def large_gateway(tmp_path: Path, socket_enabled: None) -> Iterator[GatewayThread]:
    """A running virtual gateway with :data:`MODULES` modules, out of factory state."""
    gateway = GatewayThread(tmp_path / "gateway.json", module_count=MODULES)
    gateway.start()
    gateway.setup_owner(OWNER_PASSWORD)
    yield gateway
    gateway.stop()


@pytest.fixture
async def large_entry(
    hass: HomeAssistant, large_gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MockConfigEntry]:
    """The large site's entry, loaded, with its first event import done."""
    client = RayzigClient(TcpConnector("127.0.0.1", large_gateway.port))
    credentials: ClientCredentials = await client.pair(
        await client.identify(), OWNER, OWNER_PASSWORD
    )
    await client.close()
    async with loaded_entry(hass, entry_for(large_gateway, credentials), monkeypatch) as entry:
        await imported(hass, entry, large_gateway)
        yield entry


async def imported(hass: HomeAssistant, entry: MockConfigEntry, gateway: GatewayThread) -> None:
    """Wait until every record the gateway logged is imported, and everything settled."""
    newest = gateway.call(lambda gw: {m.module_id: m.event_seq for m in gw.site.modules()})
    importer = entry.runtime_data.events
    await wait_for(
        hass,
        lambda: all(importer.cursors.get(module_id) == seq for module_id, seq in newest.items()),
        seconds=60,
    )
    await hass.async_block_till_done(wait_background_tasks=True)


def entities_of(hass: HomeAssistant, serial: str) -> dict[str, str]:
    """Entity id → unique id of every Rayzig entity of the module with ``serial``."""
    return {
        entry.entity_id: entry.unique_id
        for entry in er.async_get(hass).entities.values()
        if entry.platform == DOMAIN and entry.unique_id.startswith(f"{serial}_")
    }


def entity_of(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert found is not None
    return found


def available_rayzig_entities(hass: HomeAssistant) -> set[str]:
    """Every Rayzig entity whose state is available now."""
    return {
        state.entity_id
        for state in hass.states.async_all()
        if (entry := er.async_get(hass).async_get(state.entity_id)) is not None
        and entry.platform == DOMAIN
        and state.state != STATE_UNAVAILABLE
    }


def reachable_modules(gateway: GatewayThread, count: int) -> list[Module]:
    """``count`` modules in reach, from different kinds where possible."""
    modules = [module for module in site_modules(gateway) if module.telemetry.reachable]
    assert len(modules) >= count
    return modules[:: max(1, len(modules) // count)][:count]


async def test_a_command_writes_its_switch_once(
    hass: HomeAssistant, large_gateway: GatewayThread, large_entry: MockConfigEntry, writes: Writes
) -> None:
    """Acknowledgement, OutputChanged and EventsAvailable: one write of the switch in all."""
    assert len(available_rayzig_entities(hass)) > 1200
    writes.take()
    for module in reachable_modules(large_gateway, 6):
        output = module.outputs[-1]
        switch = entity_of(hass, "switch", f"{module.serial}_output_{output.index}")
        service = SERVICE_TURN_OFF if output.is_on else SERVICE_TURN_ON
        await hass.services.async_call(
            SWITCH_DOMAIN, service, {ATTR_ENTITY_ID: switch}, blocking=True
        )
        await imported(hass, large_entry, large_gateway)
        counts = writes.take()
        assert counts[switch] == 1, counts
        # Besides the switch, only what really changed in the same module: the event entity
        # shows the command's record, the event-log fill may have moved, and the output's own
        # runtime sensors count the switching (no other output's).
        concerned = {
            switch,
            entity_of(hass, "event", f"{module.serial}_event"),
            entity_of(hass, "sensor", f"{module.serial}_event_log_fill"),
            entity_of(hass, "sensor", f"{module.serial}_on_time_{output.index}"),
            entity_of(hass, "sensor", f"{module.serial}_switching_cycles_{output.index}"),
        }
        assert set(counts) <= concerned, counts
        assert all(count == 1 for count in counts.values()), counts


async def test_telemetry_writes_only_its_module(
    hass: HomeAssistant, large_gateway: GatewayThread, large_entry: MockConfigEntry, writes: Writes
) -> None:
    """A module going out of reach writes its own entities whose state changes, once each."""
    module = reachable_modules(large_gateway, 1)[0]
    writes.take()
    large_gateway.call(lambda gw: gw.site.set_link_quality(module.module_id, 0))
    switch = entity_of(hass, "switch", f"{module.serial}_output_0")
    await wait_for(hass, lambda: hass.states.get(switch).state == STATE_UNAVAILABLE)
    await hass.async_block_till_done(wait_background_tasks=True)
    counts = writes.take()
    own = entities_of(hass, module.serial)
    assert set(counts) <= set(own), counts
    assert all(count == 1 for count in counts.values()), counts
    unique_ids = {own[entity_id] for entity_id in counts}
    outputs = range(len(module.outputs))
    # Switches and presets need the module in reach; "reachable" turned off.
    assert {f"{module.serial}_output_{n}" for n in outputs} <= unique_ids
    assert {f"{module.serial}_restore_preset_{n}" for n in outputs} <= unique_ids
    assert f"{module.serial}_reachable" in unique_ids
    # The event entity and the event-log fill did not change.
    assert f"{module.serial}_event" not in unique_ids
    assert f"{module.serial}_event_log_fill" not in unique_ids


async def test_membership_writes_only_the_module_concerned(
    hass: HomeAssistant, large_gateway: GatewayThread, large_entry: MockConfigEntry, writes: Writes
) -> None:
    """A module joining writes its new entities once; one leaving, only its own."""
    before = available_rayzig_entities(hass)
    writes.take()
    new = large_gateway.call(
        lambda gw: gw.site.add_module(kind=ModuleKind.MAINS, name="Workshop", outputs=2)
    )
    await wait_for(hass, lambda: len(entities_of(hass, new.serial)) > 0)
    await imported(hass, large_entry, large_gateway)
    counts = writes.take()
    assert set(counts) == set(entities_of(hass, new.serial)) - disabled(hass), counts
    assert not set(counts) & before

    leaving = reachable_modules(large_gateway, 1)[0]
    own = set(entities_of(hass, leaving.serial))
    large_gateway.call(lambda gw: gw.site.remove_module(leaving.module_id))
    await wait_for(hass, lambda: not entities_of(hass, leaving.serial))
    await hass.async_block_till_done(wait_background_tasks=True)
    counts = writes.take()
    assert set(counts) <= own, counts


def flipped(module: Module) -> Module:
    """``module`` with its first output in the other state."""
    first = module.outputs[0]
    return replace(module, outputs=(replace(first, is_on=not first.is_on), *module.outputs[1:]))


def disabled(hass: HomeAssistant) -> set[str]:
    """Rayzig entities disabled in the registry (never added, never written)."""
    return {
        entry.entity_id
        for entry in er.async_get(hass).entities.values()
        if entry.platform == DOMAIN and entry.disabled
    }


async def test_connection_lost_and_restored_writes_every_entity_once(
    hass: HomeAssistant, large_gateway: GatewayThread, large_entry: MockConfigEntry, writes: Writes
) -> None:
    """Availability flips: every entity that shows it writes exactly once, each way."""
    client = large_entry.runtime_data.client
    available = available_rayzig_entities(hass)
    writes.take()
    large_gateway.stop()
    await wait_for(hass, lambda: not available_rayzig_entities(hass) & available)
    # A few reconnection attempts fail meanwhile: they change nothing entities show.
    attempts = client.stats.connect_failures
    await wait_for(hass, lambda: client.stats.connect_failures >= attempts + 2)
    await hass.async_block_till_done()
    lost = writes.take()
    assert set(lost) >= available
    assert all(count == 1 for count in lost.values()), lost

    large_gateway.start()
    await wait_for(hass, lambda: client.state is ConnectionState.CONNECTED)
    await wait_for(hass, lambda: available_rayzig_entities(hass) == available)
    await imported(hass, large_entry, large_gateway)
    restored = writes.take()
    assert set(restored) >= available
    assert all(count == 1 for count in restored.values()), restored


async def test_poll_writes_only_what_differs(
    hass: HomeAssistant,
    large_gateway: GatewayThread,
    large_entry: MockConfigEntry,
    writes: Writes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The safety-net poll writes nothing when nothing changed, and only what it finds changed."""
    coordinator = large_entry.runtime_data.coordinator
    client = large_entry.runtime_data.client
    writes.take()
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert writes.take() == Counter()

    # The gateway reports one output otherwise than pushed (a lost notification, say).
    module = reachable_modules(large_gateway, 1)[0]
    real_list_modules = client.list_modules

    async def one_output_differs() -> list[Module]:
        modules = await real_list_modules()
        return [
            flipped(found) if found.module_id == module.module_id else found for found in modules
        ]

    monkeypatch.setattr(client, "list_modules", one_output_differs)
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    switch = entity_of(hass, "switch", f"{module.serial}_output_0")
    assert writes.take() == Counter({switch: 1})
