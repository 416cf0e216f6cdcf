"""Entity names of outputs: no module name twice ("Caravan Caravan lights"), none for the module.

Entity names follow the device (module) name. An output named after its module loses that prefix
("Caravan lights" on "Caravan" → "Lights"), and a module's one output named like the module itself
takes the device name alone. Switches and power-restore preset selects follow the same rules.
"""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.const import ATTR_FRIENDLY_NAME
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.rayzig.entity import is_module_output, output_label
from rayzig_core.models import Module, ModuleKind, Output, RestorePreset, Telemetry
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import entity_id, loaded_entry, site_modules


def _module(name: str, *outputs: str) -> Module:
    """A mains module called ``name`` whose outputs have the names ``outputs``."""
    return Module(
        module_id=1,
        serial="RZ-00000001",
        name=name,
        kind=ModuleKind.MAINS,
        model=f"RZ-M{len(outputs)}",
        firmware="3.5.0",
        outputs=tuple(
            Output(index, output, is_on=False, preset=RestorePreset.OFF, utility_controllable=False)
            for index, output in enumerate(outputs)
        ),
        telemetry=Telemetry(200, None, None, reachable=True),
        event_seq=0,
        event_count=0,
    )


@pytest.mark.parametrize(
    ("module", "outputs", "labels"),
    [
        ("Caravan", ("Caravan lights", "Water pump"), ["Lights", "Water pump"]),
        ("Caravan", ("CARAVAN lights",), ["Lights"]),
        ("Living room", ("living room  lamps",), ["Lamps"]),
        ("Porch", ("Porch - door", "Porch: bell", "Porch/light"), ["Door", "Bell", "Light"]),
        ("Porch", ("Porchlight", "Porch2", "Porch TV"), ["Porchlight", "Porch2", "TV"]),
        ("Porch", ("Output 1", "Output 3", " Porch "), [None, "Output 3", None]),
        ("Shed", ("Shed", "shed"), [None, None]),
        ("Greenhouse", ("Greenhouse vent",), ["Vent"]),
    ],
)
def test_output_label(module: str, outputs: tuple[str, ...], labels: list[str | None]) -> None:
    """The module's name in front (ignoring case, up to a word boundary) is dropped."""
    site_module = _module(module, *outputs)
    assert [output_label(site_module, output) for output in site_module.outputs] == labels


@pytest.mark.parametrize(
    ("module", "outputs", "expected"),
    [
        ("Mailbox", ("Mailbox",), [True]),
        ("Mailbox", (" mailbox ",), [True]),
        ("Porch", ("Porch", "Porch light"), [True, False]),
        ("Shed", ("Shed", "shed"), [False, False]),  # two alike: neither is the module
        ("Caravan", ("Caravan lights",), [False]),
    ],
)
def test_is_module_output(module: str, outputs: tuple[str, ...], expected: list[bool]) -> None:
    site_module = _module(module, *outputs)
    assert [is_module_output(site_module, output) for output in site_module.outputs] == expected


RENAMED: dict[str, tuple[str, list[str]]] = {
    # default site's module → (new module name, new output names); output counts stay.
    "Mailbox": ("Mailbox", ["Mailbox"]),
    "Aquarium": ("Pantry", ["Pantry", "pantry"]),
    "Living room": ("Porch", ["porch", "PORCH - door", "Porchlight", "Output 4"]),
}


def _rename(data: dict[str, Any]) -> None:
    modules = data["site"]["modules"]
    names = {module["name"] for module in modules}
    assert set(RENAMED) <= names, names
    for module in modules:
        if module["name"] in RENAMED:
            new_name, output_names = RENAMED[module["name"]]
            assert len(module["outputs"]) == len(output_names)
            module["name"] = new_name
            for output, name in zip(module["outputs"], output_names, strict=True):
                output[0] = name


def _names(hass: HomeAssistant, gateway: GatewayThread, platform: str, key: str) -> dict[str, str]:
    """Friendly name per entity id of every ``platform`` entity, keyed by module and output."""
    names = {}
    for module in site_modules(gateway):
        for output in module.outputs:
            found = entity_id(hass, platform, f"{module.serial}_{key}_{output.index}")
            state = hass.states.get(found)
            assert state is not None
            names[found] = state.attributes[ATTR_FRIENDLY_NAME]
    return names


async def test_switch_and_select_names(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the virtual gateway's site, with some modules renamed."""
    gateway.stop()
    gateway.edit_state(_rename)
    gateway.start()
    async with loaded_entry(hass, config_entry, monkeypatch):
        switches = _names(hass, gateway, "switch", "output")
        selects = _names(hass, gateway, "select", "restore_preset")
    expected_switches = {
        # "Caravan lights" on the module "Caravan" (its only output): not "Caravan Caravan lights".
        "switch.caravan_lights": "Caravan Lights",
        "switch.workshop_lights": "Workshop Lights",
        "switch.utility_room_hot_water": "Utility room Hot water",
        # The one output named like its module: the device's name.
        "switch.mailbox": "Mailbox",
        "switch.porch": "Porch",
        "switch.porch_door": "Porch Door",
        "switch.porch_porchlight": "Porch Porchlight",
        "switch.porch_output_4": "Porch Output 4",
        # Two outputs named like the module: numbered, so they can be told apart.
        "switch.pantry_output_1": "Pantry Output 1",
        "switch.pantry_output_2": "Pantry Output 2",
    }
    assert expected_switches.items() <= switches.items()
    assert not any(
        "Caravan Caravan" in name or "Porch Porch " in name for name in switches.values()
    )
    expected_selects = {
        "select.caravan_lights_power_restore_preset": "Caravan Lights power-restore preset",
        "select.mailbox_power_restore_preset": "Mailbox Power-restore preset",
        "select.porch_power_restore_preset": "Porch Power-restore preset",
        "select.porch_door_power_restore_preset": "Porch Door power-restore preset",
        "select.porch_output_4_power_restore_preset": "Porch Output 4 power-restore preset",
        "select.pantry_output_2_power_restore_preset": "Pantry Output 2 power-restore preset",
    }
    assert expected_selects.items() <= selects.items()


async def test_module_output_select_in_german(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The module's own output's preset select is translated like the others."""
    hass.config.language = "de"
    gateway.stop()
    gateway.edit_state(_rename)
    gateway.start()
    mailbox = next(module for module in site_modules(gateway) if module.name == "Mailbox")
    async with loaded_entry(hass, config_entry, monkeypatch):
        select = hass.states.get(entity_id(hass, "select", f"{mailbox.serial}_restore_preset_0"))
        switch = hass.states.get(entity_id(hass, "switch", f"{mailbox.serial}_output_0"))
    assert select is not None
    assert select.attributes[ATTR_FRIENDLY_NAME] == "Mailbox Verhalten nach Stromausfall"
    assert switch is not None
    assert switch.attributes[ATTR_FRIENDLY_NAME] == "Mailbox"
