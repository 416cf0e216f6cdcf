"""Home Assistant's automation and scene editors, driven as a newcomer uses them.

Selectors are the frontend's accessible names (Home Assistant 2025.4's frontend). Entity pickers
filter as one types, so a name is typed key by key and the option that carries the entity id is
chosen. Dialogs are found by their element (``ha-dialog``, ``ha-more-info-dialog``): their content
is slotted, outside the subtree of the element that has the dialog role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from playwright.sync_api import Locator, Page, expect

UI_MS = 30_000

_STATES = "Object.values(document.querySelector('home-assistant').hass.states)"
"""Every entity's state as the frontend holds it (a JavaScript expression)."""


@dataclass(frozen=True)
class SwitchEntity:
    """A Rayzig output's switch entity as Home Assistant names it."""

    entity_id: str
    name: str


def switch_entity(page: Page, name: str) -> SwitchEntity:
    """The switch entity whose friendly name is ``name`` (as the frontend knows it)."""
    script = (
        f"name => {_STATES}.find(s => s.entity_id.startsWith('switch.') "
        "&& s.attributes.friendly_name === name)?.entity_id ?? null"
    )
    page.wait_for_function(script, arg=name, timeout=UI_MS)
    return SwitchEntity(str(page.evaluate(script, name)), name)


def wait_for_state(page: Page, entity: SwitchEntity, state: str, timeout_ms: int = UI_MS) -> None:
    """Wait until the frontend shows ``entity`` in ``state`` ("on"/"off")."""
    script = f"([id, state]) => {_STATES}.some(s => s.entity_id === id && s.state === state)"
    page.wait_for_function(script, arg=[entity.entity_id, state], timeout=timeout_ms)


def _pick_entity(page: Page, combobox: Locator, entity: SwitchEntity) -> None:
    combobox.click()
    combobox.press_sequentially(entity.entity_id, delay=10)
    page.get_by_role("option").filter(has_text=entity.entity_id).first.click()


def create_automation(page: Page, trigger: SwitchEntity, action: SwitchEntity) -> None:
    """From the automation list: "when ``trigger`` turns on, turn on ``action``", saved."""
    page.get_by_role("button", name="Create automation").first.click()
    page.get_by_role("option", name=re.compile(r"^Create new automation")).click()
    page.wait_for_url("**/config/automation/edit/new**", timeout=UI_MS)

    page.get_by_role("button", name="Add trigger").click()
    page.get_by_text("When something happens to an entity.").click()
    page.get_by_text("When the state of an entity (or attribute) changes.").click()
    _pick_entity(page, page.get_by_role("combobox", name="Entity*"), trigger)
    page.get_by_role("combobox", name="To (optional)").click()
    page.get_by_role("option", name="On", exact=True).click()

    page.get_by_role("button", name="Add action").click()
    page.get_by_role("textbox", name="Search action").press_sequentially("Turn on", delay=10)
    page.get_by_text("Turns a switch on.").click()
    page.get_by_role("button", name="Choose entity").click()
    _pick_entity(page, page.get_by_role("combobox", name="Choose entity"), action)
    expect(page.get_by_text(f"Switch 'Turn on' on {action.name}")).to_be_visible()
    page.mouse.move(0, 0)


def fill_name(page: Page, field: Locator, name: str, attempts: int = 5) -> None:
    """Type ``name`` into an editor's name field, again if the editor put its own in after us.

    The editor fills in a name of its own (a suggestion, "New scene") as the field appears; on a
    busy machine that can land after our text and replace it.
    """
    for _ in range(attempts):
        field.fill(name)
        page.wait_for_timeout(500)
        if field.input_value() == name:
            return
    expect(field).to_have_value(name)


def save_automation(page: Page, name: str) -> None:
    """Save the open automation under ``name`` (the editor then shows it under its id)."""
    page.get_by_role("button", name="Save").click()
    fill_name(page, page.get_by_role("textbox", name="Name*"), name)
    page.locator("ha-dialog").get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/config/automation/edit/[0-9a-z_]+$"), timeout=UI_MS)


def create_scene(page: Page, name: str, device: str, entity: SwitchEntity) -> None:
    """From the scene list: a scene of ``device`` with ``entity`` on, saved, back on the list.

    The editor applies what it shows (live edit), so ``entity`` is switched on here if it is off.
    """
    page.get_by_role("button", name="Create scene").first.click()
    page.wait_for_url("**/config/scene/edit/new**", timeout=UI_MS)
    devices = page.get_by_role("combobox", name="Add a device")
    devices.click()
    devices.press_sequentially(device, delay=10)
    page.get_by_role("option").filter(has_text=device).first.click()  # the best match first
    page.locator("ha-scene-editor").get_by_text(entity.name, exact=True).click()
    info = page.locator("ha-more-info-dialog")
    toggle = info.get_by_role("switch", name="Toggle")
    expect(toggle).to_be_visible(timeout=UI_MS)
    if not toggle.is_checked():
        toggle.click()
    expect(toggle).to_be_checked()
    info.get_by_role("button", name="Close").click()
    # Closing the dialog stores the entity's state in the scene: a name typed before that is lost.
    expect(info.get_by_role("switch", name="Toggle")).to_be_hidden(timeout=UI_MS)
    fill_name(page, page.get_by_role("textbox", name="Name"), name)
    page.mouse.move(0, 0)


def save_scene(page: Page) -> None:
    """Save the open scene (the editor then shows it under its id)."""
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/config/scene/edit/[0-9a-z_]+$"), timeout=UI_MS)


def saved_scene_state(config_dir: Path, name: str, entity: SwitchEntity) -> str:
    """The state the saved scene ``name`` sets ``entity`` to, from scenes.yaml as it was saved."""
    scenes: list[dict[str, Any]] = yaml.safe_load(
        (config_dir / "scenes.yaml").read_text(encoding="utf-8")
    )
    scene = next(scene for scene in scenes if scene.get("name") == name)
    return str(scene["entities"][entity.entity_id]["state"])


def apply_scene(page: Page, name: str) -> None:
    """Apply a scene from its row on the scene list (the row's menu, "Apply")."""
    row = page.get_by_role("row").filter(has_text=name)
    row.get_by_role("button", name="Overflow menu").click()
    page.get_by_role("menuitem", name="Apply").click()
    expect(page.get_by_text(f"Activated scene {name}.")).to_be_visible(timeout=UI_MS)
    expect(row).not_to_contain_text("Never", timeout=UI_MS)  # "Last activated" is set
