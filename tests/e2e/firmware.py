"""The firmware publisher's steps: an advisory's repair, then its fix installed from the browser.

The publisher (tests/e2e/advisory.py) signs with the key the gateway trusts. After the advisory
steps it publishes the fixed Rayzig firmware as a security fix; the entry is reloaded (the next
catalogue fetch) and the update entity offers it. Home Assistant's own account is an
Administrator's, so the install goes through Configure → Install firmware with the System user's
password, typed at the time; the gateway then runs the new version, and the key that sign-in
enrolled is revoked again.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from .advisory import (
    PART,
    PART_NAME,
    Publisher,
    advisory_repair,
    open_integration,
    open_options,
    reload_entry,
)
from .checker import GatewayChecker
from .conftest import Gateway, HomeAssistant
from .helpers import Steps, publish, ui_strings
from .own_account import CHECKER_NAME

FIX_VERSION = "2.5.0"
FIX_SECURITY_VERSION = 4
"""Above the virtual gateway's Rayzig firmware 2.4.1 (security version 3)."""
FLOW_MS = 60_000
INSTALL_MS = 180_000
"""Download, transfer to the gateway and its restart of the part, on two busy cores."""

_OFFERED = (
    "version => Object.values(document.querySelector('home-assistant').hass.states)"
    ".some(s => s.entity_id.startsWith('update.') && s.attributes.latest_version === version)"
)
"""Whether an update entity offers ``version`` (a JavaScript function of it)."""


def firmware_steps(  # noqa: PLR0917 - the test's fixtures, handed on as they are
    page: Page,
    home_assistant: HomeAssistant,
    gateway: Gateway,
    checker: GatewayChecker,
    steps: Steps,
    workdir: Path,
    system_password: str,
) -> None:
    """Run the update server for the advisory's steps and the install of its fix."""
    publisher = Publisher(workdir, gateway.publisher_key).start()
    try:
        advisory_repair(page, home_assistant, gateway, checker, steps, publisher)
        _install_fix(page, home_assistant, checker, steps, publisher, system_password)
    finally:
        publisher.stop()


def _install_fix(  # noqa: PLR0917 - the test's fixtures, handed on as they are
    page: Page,
    home_assistant: HomeAssistant,
    checker: GatewayChecker,
    steps: Steps,
    publisher: Publisher,
    system_password: str,
) -> None:
    """Publish the fix; install it under Configure → Install firmware as the System user."""
    options = ui_strings()["options"]
    form = options["step"]["install_firmware"]

    with steps.step("firmware-fix-offered"):
        publisher.publish_firmware(PART, FIX_VERSION, FIX_SECURITY_VERSION)
        open_integration(page, home_assistant)
        reload_entry(page)
        page.wait_for_function(_OFFERED, arg=FIX_VERSION, timeout=FLOW_MS)

    with steps.step("firmware-install-form"):
        open_options(page, "install_firmware")
        expect(page.get_by_text(form["title"], exact=True).first).to_be_visible(timeout=FLOW_MS)
        # The System user is asked for at the time: a new gateway's, prefilled; its password typed.
        expect(page.get_by_label(form["data"]["username"], exact=True)).to_have_value(checker.user)
        page.get_by_label(form["data"]["password"], exact=True).fill(system_password)
        page.mouse.move(0, 0)
    publish(steps.last(), "options-install-firmware.png")

    with steps.step("firmware-installed"):
        page.get_by_role("button", name="Submit").click()
        done = options["abort"]["firmware_installed"].format(part=PART_NAME, version=FIX_VERSION)
        expect(page.get_by_text(done).first).to_be_visible(timeout=INSTALL_MS)
        installed = checker.firmware_version(PART)
        assert installed == FIX_VERSION, f"the gateway runs Rayzig firmware {installed}"
        signer_keys = [key.name for key in checker.clients() if key.user == checker.user]
        assert signer_keys == [CHECKER_NAME], f"the install's System key is left: {signer_keys}"
        page.mouse.move(0, 0)
