"""The newcomer's path in a real browser, against the real demo stack (README, USER-GUIDE.md).

Home Assistant is onboarded through its UI; the virtual gateway, announced over zeroconf as in the
demo, waits under "Discovered" and is added from there (its host and port found, fingerprint →
factory password → refused passwords → a good one), signing in as the System user ``installer``;
the gateway then lists Home Assistant's own Administrator account (tests/e2e/own_account.py). An
output is switched on the default dashboard and the virtual gateway is asked, by a second client
of its own, whether the output changed and whether Home Assistant's account changed it; the
logbook then shows the switch's row, naming the action. Then an automation ("when one output turns
on, turn on another") is built in the automation editor and a scene with an output on in the scene
editor, and the gateway shows both at work. A publisher's security advisory for the installed
firmware then raises a repair, and its fix is installed under Configure → Install firmware with
the System password (tests/e2e/firmware.py); last, one output's on-time is drawn on a Statistics
graph card over the gateway's pre-filled days of history (tests/e2e/statistics.py)."""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from rayzig_core.models import Module
from rayzig_core.password_policy import check_password

from . import editors
from .checker import GatewayChecker
from .conftest import Gateway, HomeAssistant
from .firmware import firmware_steps
from .helpers import Steps, click_until, publish, ui_strings
from .own_account import own_account
from .statistics import statistics_graph

OWNER_NAME = "Demo Owner"
OWNER_USERNAME = "owner"
OWNER_PASSWORD = "e2e-owner-password-for-ha"
GATEWAY_USER = "installer"
WEAK_PASSWORD = "rayzig rayzig rayzig"
GOOD_PASSWORD = "mauve-otter-juggles-47-kites"

FIRST_LOAD_MS = 120_000
"""Home Assistant's first page load (frontend bundles) is slow on two cores."""
UI_MS = 30_000
FLOW_MS = 60_000
"""Config-flow steps talk to the gateway (Noise handshakes, scrypt): allow for a busy machine."""

FINGERPRINT = re.compile(r"^\s*[0-9A-F]{4}(?:-[0-9A-F]{4}){7}\s*$")
AUTOMATION_NAME = "When one output turns on, turn on another"
SCENE_NAME = "Evening"


@dataclass(frozen=True)
class Target:
    """The output the test switches from the dashboard."""

    module: Module
    index: int

    @property
    def output_name(self) -> str:
        return self.module.outputs[self.index].name

    @property
    def entity_name(self) -> str:
        """Its switch entity's name in Home Assistant: the module's name, then the output's."""
        return f"{self.module.name} {self.output_name}"


# --- choosing outputs ----------------------------------------------------------------------------


def _candidates(modules: list[Module]) -> list[Target]:
    """Outputs of reachable multi-output modules, each with a card and entity of its own."""
    return [
        Target(module, output.index)
        for module in sorted(modules, key=lambda module: module.module_id)
        if len(module.outputs) > 1 and module.telemetry.reachable
        for output in module.outputs
        if not output.name.startswith(module.name)
    ]


def _choose_target(modules: list[Module]) -> Target:
    """An output of a multi-output module (it gets a card of its own), preferably off."""
    candidates = _candidates(modules)
    assert candidates, "the virtual gateway has no multi-output module"
    off = [target for target in candidates if not target.module.outputs[target.index].is_on]
    return (off or candidates)[0]


def _outputs_of_distinct_modules(modules: list[Module], count: int) -> list[Target]:
    """One output each of ``count`` different modules (automation trigger, its action, a scene)."""
    chosen: dict[int, Target] = {}
    for target in _candidates(modules):
        chosen.setdefault(target.module.module_id, target)
    assert len(chosen) >= count, f"the virtual gateway has fewer than {count} suitable modules"
    return list(chosen.values())[:count]


# --- page helpers ---------------------------------------------------------------------------------


def _sidebar(page: Page, name: str) -> Locator:
    return page.get_by_role("option", name=name).or_(page.get_by_role("link", name=name)).first


def _submit(page: Page) -> None:
    page.get_by_role("button", name="Submit").click()


def _dialog_title(page: Page, title: str) -> Locator:
    return page.get_by_text(title, exact=True)


def _find_logbook_row(page: Page, *texts: str, timeout_s: float) -> Locator:
    """The logbook row showing all ``texts``, scrolling its virtual list if needed."""
    row = page.locator(".entry")
    for text in texts:
        row = row.filter(has_text=text)
    row = row.first
    deadline = time.monotonic() + timeout_s
    scrolled = 0
    while time.monotonic() < deadline:
        if row.count() > 0:
            row.scroll_into_view_if_needed()
            return row
        page.mouse.move(760, 600)  # over the list of entries
        if scrolled < 40:
            page.mouse.wheel(0, 500)
            scrolled += 1
        else:  # back to the top: new rows arrive live, and ours may not be imported yet
            page.mouse.wheel(0, -100_000)
            scrolled = 0
        page.wait_for_timeout(500)
    msg = f"no logbook row showing {texts} within {timeout_s:.0f} s"
    raise AssertionError(msg)


# --- the test -------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_newcomer_path_in_a_real_browser(
    virtual_gateway: Gateway, home_assistant: HomeAssistant, page: Page, tmp_path: Path
) -> None:
    """Onboard, add Rayzig through the UI, switch an output, see it in the logbook.

    (Fixture order matters for teardown: the browser closes first, then Home Assistant stops,
    then the gateway, so Home Assistant never sees its gateway vanish.)
    """
    steps = Steps(page)
    start = time.monotonic()
    try:
        _newcomer_path(page, home_assistant, virtual_gateway, steps, tmp_path / "publisher")
    finally:
        steps.note(f"total in the browser: {time.monotonic() - start:.1f} s")
        steps.write_summary()
    for skipped in steps.skipped:  # shown in pytest's summary; the other steps passed
        warnings.warn(f"e2e step skipped: {skipped}", UserWarning, stacklevel=1)


def _newcomer_path(
    page: Page, home_assistant: HomeAssistant, gateway: Gateway, steps: Steps, publisher: Path
) -> None:
    strings = ui_strings()["config"]
    flow = strings["step"]
    errors = strings["error"]

    with steps.step("onboarding"):
        page.goto(home_assistant.url, timeout=FIRST_LOAD_MS)
        page.get_by_role("button", name="Create my smart home").click(timeout=FIRST_LOAD_MS)
        page.get_by_label("Name", exact=True).fill(OWNER_NAME)
        page.get_by_label("Username", exact=True).fill(OWNER_USERNAME)
        page.get_by_label("Password", exact=True).fill(OWNER_PASSWORD)
        page.get_by_label("Confirm password", exact=True).fill(OWNER_PASSWORD)
        steps.shot("user")
        page.get_by_role("button", name="Create account").click()
        # Location, then analytics (both left as they are), then the "compatible devices" page.
        next_button = page.get_by_role("button", name="Next")
        expect(page.get_by_text("Home location", exact=True)).to_be_visible(timeout=UI_MS)
        click_until(next_button, page.get_by_text("Help us help you", exact=True))
        click_until(next_button, page.get_by_role("button", name="Finish"))
        page.get_by_role("button", name="Finish").click()
        page.wait_for_url("**/lovelace/**", timeout=FLOW_MS)
        expect(_sidebar(page, "Settings")).to_be_visible(timeout=UI_MS)

    with steps.step("discovered"):
        # The gateway announced itself (zeroconf on loopback): Rayzig waits under "Discovered".
        assert gateway.zeroconf, "the virtual gateway was not announced over zeroconf"
        _sidebar(page, "Settings").click()
        page.get_by_text("Devices & services", exact=True).first.click()
        page.wait_for_url("**/config/integrations/**", timeout=UI_MS)
        card = page.locator("ha-config-flow-card").filter(has_text=f"Rayzig {gateway.serial}")
        expect(card).to_be_visible(timeout=FLOW_MS)
        steps.shot("card")
        card.get_by_role("button", name="Add").click()
        expect(_dialog_title(page, flow["zeroconf_confirm"]["title"])).to_be_visible(
            timeout=FLOW_MS
        )
        # Host and port come from the announcement: nothing to type.
        found_at = flow["zeroconf_confirm"]["description"].format(
            serial=gateway.serial, host=f"{gateway.host}:{gateway.port}"
        )
        expect(page.get_by_text(found_at)).to_be_visible()

    with steps.step("fingerprint"):
        _submit(page)
        expect(_dialog_title(page, flow["confirm_fingerprint"]["title"])).to_be_visible(
            timeout=FLOW_MS
        )
        shown = page.get_by_text(FINGERPRINT)
        expect(shown).to_have_count(1)
        assert shown.inner_text().strip() == gateway.fingerprint, (
            "the config flow shows another fingerprint than the one the gateway printed"
        )
        expect(page.get_by_text(gateway.serial).first).to_be_visible()
    publish(steps.last(), "config-flow-fingerprint.png")

    with steps.step("credentials"):
        _submit(page)
        expect(_dialog_title(page, flow["credentials"]["title"])).to_be_visible(timeout=FLOW_MS)
        data = flow["credentials"]["data"]
        page.get_by_label(data["username"], exact=True).fill(GATEWAY_USER)
        page.get_by_label(data["password"], exact=True).fill(gateway.default_password)

    new_password = flow["new_password"]["data"]

    def try_new_password(password: str) -> None:
        page.get_by_label(new_password["new_password"], exact=True).fill(password)
        page.get_by_label(new_password["confirm_password"], exact=True).fill(password)
        _submit(page)

    with steps.step("new-password-required"):
        # The default password signs in only to set a new one: the flow asks for it.
        _submit(page)
        expect(_dialog_title(page, flow["new_password"]["title"])).to_be_visible(timeout=FLOW_MS)

    with steps.step("default-password-refused"):
        try_new_password(gateway.default_password)
        expect(page.get_by_text(errors["default_password"])).to_be_visible(timeout=FLOW_MS)
        expect(_dialog_title(page, flow["new_password"]["title"])).to_be_visible()

    with steps.step("weak-password-refused"):
        codes = [
            str(code)
            for code in check_password(
                WEAK_PASSWORD,
                user_name=GATEWAY_USER,
                serial=gateway.serial,
                default_password=gateway.default_password,
            )
        ]
        assert codes, f"{WEAK_PASSWORD!r} passes the policy: choose another weak password"
        try_new_password(WEAK_PASSWORD)
        for code in codes:  # every reason is shown, in words
            expect(page.get_by_text(errors[code]).first).to_be_visible(timeout=FLOW_MS)
        expect(_dialog_title(page, flow["new_password"]["title"])).to_be_visible()
    publish(steps.last(), "config-flow-password-refused.png")

    with steps.step("entry-created"):
        try_new_password(GOOD_PASSWORD)
        expect(
            page.get_by_text(f"Created configuration for Rayzig {gateway.serial}")
        ).to_be_visible(timeout=FLOW_MS)
        checker = GatewayChecker.pair(gateway, GATEWAY_USER, GOOD_PASSWORD)
        modules = checker.modules()
        for module in modules:  # every module became a device
            expect(page.get_by_text(module.name, exact=True).first).to_be_attached()
    checker = own_account(checker, steps)

    with steps.step("dashboard-toggle"):
        page.get_by_role("button", name="Finish").click()
        _sidebar(page, "Overview").click()
        page.wait_for_url("**/lovelace/**", timeout=UI_MS)
        target = _choose_target(checker.modules())
        module_id, index = target.module.module_id, target.index
        toggle = page.get_by_role(
            "switch",
            name=re.compile(
                rf"^Toggle {re.escape(target.module.name)} {re.escape(target.output_name)} "
                r"(on|off)$"
            ),
        )
        expect(toggle).to_be_visible(timeout=FLOW_MS)
        before = checker.module(module_id)
        # The simulation may switch this output too: the browser's state right now decides.
        want_on = toggle.get_attribute("aria-checked") != "true"
        steps.note(
            f"switched {target.module.name} / {target.output_name} (output {index + 1}) "
            f"{'on' if want_on else 'off'} from the dashboard"
        )
        toggle.click()
        expect(toggle).to_have_attribute("aria-checked", "true" if want_on else "false")

        # The gateway itself says the output changed, and that Home Assistant's account did it.
        commands = checker.await_command(module_id, index, want_on, before.event_seq, 20)
        ours = commands.index((index, checker.home_assistant, want_on))
        later = [c for c in commands[ours + 1 :] if c[0] == index]
        now_on = checker.module(module_id).outputs[index].is_on
        if not later:  # unless the simulation switched it again since, it is still as set
            assert now_on is want_on, "the gateway's output is not in the state set from the UI"
        page.mouse.move(0, 0)  # no hover highlight in the screenshot
    publish(steps.last(), "dashboard.png")

    with steps.step("logbook"):
        _sidebar(page, "Logbook").click()
        page.wait_for_url("**/logbook**", timeout=UI_MS)
        # A command from Home Assistant is the switch's own row, naming the action that caused
        # it (and the user, on its second line); the gateway's record of it gets no row of its
        # own (custom_components/rayzig/logbook_entries.py).
        row = _find_logbook_row(
            page,
            f"{target.module.name} {target.output_name}",
            "turned on" if want_on else "turned off",
            "triggered by action",
            timeout_s=60,
        )
        expect(row).to_be_visible()
        page.mouse.move(0, 0)
    publish(steps.last(), "logbook.png")

    _automation_and_scene(page, home_assistant, checker, steps)
    firmware_steps(page, home_assistant, gateway, checker, steps, publisher, GOOD_PASSWORD)
    statistics_graph(page, home_assistant, steps)

    errors_logged = [
        line
        for line in home_assistant.log().splitlines()
        if " ERROR " in line and "rayzig" in line.lower()
    ]
    assert not errors_logged, "Home Assistant logged errors of the integration:\n" + "\n".join(
        errors_logged
    )


def _automation_and_scene(
    page: Page, home_assistant: HomeAssistant, checker: GatewayChecker, steps: Steps
) -> None:
    """Build an automation and a scene in the UI; the gateway's outputs show them at work.

    The simulation may switch these outputs too: each check looks for a command by Home
    Assistant's account after the test's own last command.
    """
    trigger, action, lit = _outputs_of_distinct_modules(checker.modules(), 3)
    steps.note(
        f"automation: when {trigger.entity_name} turns on, turn on {action.entity_name}; "
        f"scene {SCENE_NAME!r}: {lit.entity_name} on"
    )

    def listed(kind: str) -> None:  # the automation or scene list, where the editors start
        page.goto(f"{home_assistant.url}/config/{kind}/dashboard")

    with steps.step("automation-created"):
        _sidebar(page, "Settings").click()
        page.get_by_text("Automations & scenes", exact=True).first.click()
        page.wait_for_url("**/config/automation/dashboard**", timeout=UI_MS)
        trigger_entity = editors.switch_entity(page, trigger.entity_name)
        action_entity = editors.switch_entity(page, action.entity_name)
        editors.create_automation(page, trigger_entity, action_entity)
        steps.shot("editor")
        editors.save_automation(page, AUTOMATION_NAME)
        listed("automation")
        # Saved into automations.yaml, which the configuration includes: it is loaded and listed.
        row = page.get_by_role("row").filter(has_text=AUTOMATION_NAME)
        expect(row).to_be_visible(timeout=UI_MS)

    with steps.step("automation-runs"):
        after = checker.set_output(action.module.module_id, action.index, False)
        checker.set_output(trigger.module.module_id, trigger.index, False)
        checker.set_output(trigger.module.module_id, trigger.index, True)
        # The gateway told Home Assistant; the automation answered with a command of its own.
        checker.await_command(action.module.module_id, action.index, True, after)
        expect(row).not_to_contain_text("Never", timeout=UI_MS)  # "Last triggered" is set

    with steps.step("scene-created"):
        page.get_by_role("tab", name="Scenes").click()
        page.wait_for_url("**/config/scene/dashboard**", timeout=UI_MS)
        lit_entity = editors.switch_entity(page, lit.entity_name)
        editors.create_scene(page, SCENE_NAME, lit.module.name, lit_entity)
        steps.shot("editor")
        editors.save_scene(page)
        listed("scene")
        expect(page.get_by_role("row").filter(has_text=SCENE_NAME)).to_be_visible(timeout=UI_MS)
        # What the scene sets is what the editor showed when it was saved.
        saved = editors.saved_scene_state(home_assistant.config_dir, SCENE_NAME, lit_entity)
        assert saved in {"on", "off"}, f"the scene saved {lit_entity.entity_id} as {saved!r}"

    with steps.step("scene-applied"):
        want_on = saved == "on"
        # The other state first, seen by Home Assistant (a scene skips what is already as set).
        after = checker.set_output(lit.module.module_id, lit.index, not want_on)
        editors.wait_for_state(page, lit_entity, "off" if want_on else "on")
        editors.apply_scene(page, SCENE_NAME)
        checker.await_command(lit.module.module_id, lit.index, want_on, after)
