"""The advisory repair in a real browser: a publisher's advisory shows in Settings → Repairs.

The test plays the publisher with the installer CLI, as docs/USER-GUIDE.md's "Try it with the
virtual gateway" does: ``rayzig advisory-publish`` into a catalogue directory (signed with the key
the gateway trusts, made by ``rayzig keygen`` in conftest.py), ``rayzig update-server`` serving it
on loopback. In the browser it sets the update server and its signing key under the Rayzig entry's
Configure → Settings, finds the repair, opens it and reads it; then the publisher withdraws the
advisory, the entry is reloaded from its menu (the next catalogue fetch), and the repair is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Locator, Page, Response, expect

from .checker import GatewayChecker
from .conftest import Gateway, HomeAssistant, PublisherKey
from .helpers import BIN, ManagedProcess, Steps, publish, rayzig, ui_strings, wait_for_json_line

UI_MS = 30_000
FLOW_MS = 60_000

ADVISORY_ID = "RZSA-2026-0001"
SEVERITY = "high"
SUMMARY = "A forged mesh beacon can make the Rayzig radio join a rogue mesh."
ADVISORY_URL = f"https://rayzig.dev/security/{ADVISORY_ID}"
PART = "rayzig"
PART_NAME = "Rayzig"
"""How the integration names the part (repairs.py FIRMWARE_PART_NAMES)."""


@dataclass
class Publisher:
    """The firmware publisher: a signing key, a catalogue directory and its update server."""

    workdir: Path
    key: PublisherKey
    url: str = ""
    server: ManagedProcess | None = field(default=None, repr=False)

    @property
    def catalogue(self) -> Path:
        return self.workdir / "updates"

    def start(self) -> Publisher:
        self.catalogue.mkdir(parents=True, exist_ok=True)  # an empty catalogue to start with
        self.server = ManagedProcess(
            "update server",
            [str(BIN / "rayzig"), "update-server", str(self.catalogue), "--port", "0", "--json"],
            output=self.workdir / "update-server.jsonl",
            errors=self.workdir / "update-server.log",
        ).start()
        self.url = str(wait_for_json_line(self.server, "listening", timeout=60)["url"]).rstrip("/")
        return self

    def publish_advisory(self, installed: str) -> None:
        """Sign an advisory naming every version up to ``installed``, fixed in a newer one."""
        major, minor, _ = installed.split(".")
        rayzig(
            "advisory-publish",
            str(self.catalogue),
            "--signing-key-file",
            str(self.key.file),
            "--id",
            ADVISORY_ID,
            "--part",
            PART,
            "--affected",
            f"..{installed}",
            "--fixed-in",
            f"{major}.{int(minor) + 1}.0",
            "--severity",
            SEVERITY,
            "--summary",
            SUMMARY,
            "--url",
            ADVISORY_URL,
        )

    def withdraw_advisory(self) -> None:
        rayzig("advisory-withdraw", str(self.catalogue), ADVISORY_ID)

    def publish_firmware(self, part: str, version: str, security_version: int) -> None:
        """Sign a release of ``part`` marked as a security fix (any bytes stand in for an image)."""
        image = self.workdir / f"{part}-{version}.bin"
        image.write_bytes(f"{part} {version} e2e image\n".encode() * 1000)
        rayzig(
            "firmware-publish",
            str(self.catalogue),
            str(image),
            "--signing-key-file",
            str(self.key.file),
            "--part",
            part,
            "--version",
            version,
            "--security-version",
            str(security_version),
            "--security-fix",
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=20)
            assert not self.server.running(), "the update server survived its stop"


def open_integration(page: Page, home_assistant: HomeAssistant) -> None:
    """Settings → Devices & services → Rayzig: the integration's page with its entry."""
    page.goto(f"{home_assistant.url}/config/integrations/dashboard")
    page.locator("ha-integration-card").filter(has_text="Rayzig").first.click()
    page.wait_for_url("**/config/integrations/integration/rayzig**", timeout=UI_MS)


def _repairs(page: Page, home_assistant: HomeAssistant) -> None:
    """Settings → System → Repairs."""
    page.goto(f"{home_assistant.url}/config/system")
    page.get_by_text("Repairs", exact=True).first.click()
    page.wait_for_url("**/config/repairs**", timeout=UI_MS)


def open_options(page: Page, choice: str) -> None:
    """The entry's Configure menu, then ``choice`` (a menu option's id: ``settings``, ...)."""
    menu = ui_strings()["options"]["step"]["init"]
    page.get_by_role("button", name="Configure").first.click()
    expect(page.get_by_text(menu["title"], exact=True)).to_be_visible(timeout=FLOW_MS)
    # Scoped to the dialog's menu: the sidebar has a "Settings" too.
    page.locator("step-flow-menu").get_by_text(menu["menu_options"][choice], exact=True).click()


def _set_update_server(page: Page, publisher: Publisher) -> None:
    """Configure → Settings: the update server and its signing key (applied at once)."""
    labels = ui_strings()["options"]["step"]["settings"]["data"]
    open_options(page, "settings")
    expect(page.get_by_label(labels["update_server_url"], exact=True)).to_be_visible(
        timeout=FLOW_MS
    )
    page.get_by_label(labels["update_server_url"], exact=True).fill(publisher.url)
    page.get_by_label(labels["update_signing_key"], exact=True).fill(publisher.key.public)
    page.get_by_role("button", name="Submit").click()
    # Home Assistant 2025.4 says the options were saved (Finish closes the dialog); the
    # Configure button stays visible behind the dialog, so it cannot tell the two apart.
    finish = page.get_by_role("button", name="Finish")
    expect(finish).to_be_visible(timeout=FLOW_MS)
    finish.click()


def reload_entry(page: Page) -> None:
    """The entry's menu (⋮) → Reload: the integration fetches the catalogue again."""
    page.locator("ha-config-entry-row, ha-integration-list-item, ha-md-list-item").filter(
        has=page.get_by_role("button", name="Configure")
    ).first.get_by_role("button", name="Menu").click()

    # Home Assistant answers once the entry is set up again; leaving the page earlier would
    # cancel the request, and with it the entry's setup.
    def is_reload(response: Response) -> bool:
        return "/config/config_entries/entry/" in response.url and response.url.endswith("/reload")

    with page.expect_response(is_reload, timeout=FLOW_MS) as reloaded:
        page.get_by_role("menuitem", name="Reload").click()
    assert reloaded.value.ok, f"reloading the entry failed: HTTP {reloaded.value.status}"
    # Home Assistant then says "The integration was reloaded" in a dialog over the page.
    ok = page.locator("dialog-box").get_by_role("button", name="OK")
    expect(ok).to_be_visible(timeout=UI_MS)
    ok.click()
    expect(ok).to_be_hidden(timeout=UI_MS)


def advisory_repair(  # noqa: PLR0917 - the test's fixtures, handed on as they are
    page: Page,
    home_assistant: HomeAssistant,
    gateway: Gateway,
    checker: GatewayChecker,
    steps: Steps,
    publisher: Publisher,
) -> None:
    """Publish an advisory for the installed Rayzig firmware; its repair appears, then clears."""
    installed = checker.firmware_version(PART)
    issue = ui_strings()["issues"][f"firmware_advisory_{SEVERITY}"]
    title_text = issue["title"].format(
        part=PART_NAME, title=f"Rayzig {gateway.serial}", advisory=ADVISORY_ID
    )
    with steps.step("advisory-published"):
        publisher.publish_advisory(installed)
        steps.note(f"advisory {ADVISORY_ID} ({SEVERITY}) for Rayzig firmware {installed}")
        open_integration(page, home_assistant)
        _set_update_server(page, publisher)

    with steps.step("advisory-repair"):
        _repairs(page, home_assistant)
        title: Locator = page.get_by_text(title_text, exact=True)
        expect(title).to_be_visible(timeout=FLOW_MS)
        title.click()
        dialog = page.locator("ha-dialog, ha-md-dialog").filter(has_text=SUMMARY)
        expect(dialog).to_be_visible(timeout=UI_MS)
        for text in (
            ADVISORY_ID,
            f"version {installed} is installed and affected",
            SUMMARY,
            "fixes it",
            "Configure > Install firmware, with a System user's password",
            ADVISORY_URL,
        ):
            expect(dialog.get_by_text(text).first).to_be_visible()
        # "Learn more" opens the full advisory.
        expect(dialog.locator(f'a[href="{ADVISORY_URL}"]').first).to_be_attached()
        page.mouse.move(0, 0)
    publish(steps.last(), "advisory-repair.png")

    with steps.step("advisory-withdrawn"):
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden(timeout=UI_MS)
        publisher.withdraw_advisory()
        open_integration(page, home_assistant)
        reload_entry(page)
        _repairs(page, home_assistant)
        expect(page.get_by_text(title_text, exact=True)).to_have_count(0, timeout=FLOW_MS)
