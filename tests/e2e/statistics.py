"""The statistics graph of one output's on-time, over the virtual gateway's pre-filled history.

The demo's gateway starts with days of event logs (``--prefill-events``); the integration turns
each output's log into hourly long-term statistics of its on-time. A user shows them as a user
does: the dashboard's "Edit dashboard", "Take control", "Add card", the Statistics graph card,
its YAML in the code editor, Save, Done. The step then checks that the card draws a chart (not
"No statistics found.") and that the recorder holds the on-time for several days.
"""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import Page, expect

from .conftest import HomeAssistant
from .helpers import Steps, publish

UI_MS = 30_000

ON_TIME_STATISTIC = re.compile(r"^rayzig:.+_on_time$")
"""The long-term statistic of an output's on-time (hourly, back-filled from its event log)."""
DAYS_TO_SHOW = 14
MIN_DAYS = 5
"""Days with on-time the graph must show: the gateway's history spans about ten."""

_HASS = "document.querySelector('home-assistant').hass"

_SUM_STATISTICS = (
    f"async () => (await {_HASS}.callWS({{type: 'recorder/list_statistic_ids', "
    "statistic_type: 'sum'})).map(s => s.statistic_id).sort()"
)
_DAILY_CHANGES = (
    f"async ([ids, days]) => Object.fromEntries(Object.entries(await {_HASS}.callWS({{type: "
    "'recorder/statistics_during_period', start_time: new Date(Date.now() - days * 86400000)"
    ".toISOString(), statistic_ids: ids, period: 'day', types: ['change']})).map(([id, rows]) "
    "=> [id, rows.map(row => row.change)]))"
)
HISTORY_MS = 120_000
"""How long the integration may take to read the modules' whole logs (in the background)."""


def card_config(statistic_id: str) -> str:
    """The card's YAML, in flow style (the code editor then adds no indentation of its own)."""
    return (
        f"{{type: statistics-graph, title: On-time per day, entities: [{statistic_id}], "
        f"period: day, stat_types: [change], chart_type: bar, days_to_show: {DAYS_TO_SHOW}}}"
    )


def on_time_statistics(page: Page) -> list[str]:
    """The outputs' on-time statistics (the integration records one for every output, whether
    or not its on-time sensor is enabled: the sensors are disabled by default)."""
    statistics: list[str] = page.evaluate(_SUM_STATISTICS)
    matching = [s for s in statistics if ON_TIME_STATISTIC.match(s)]
    assert matching, f"no statistic matches {ON_TIME_STATISTIC.pattern}: {statistics[:10]}"
    return matching


def daily_on_time(page: Page, statistic_ids: list[str]) -> dict[str, list[float]]:
    """Each statistic's change per day over the card's days, as the card asks the recorder."""
    changes: dict[str, list[Any]] = page.evaluate(_DAILY_CHANGES, [statistic_ids, DAYS_TO_SHOW])
    return {
        statistic: [float(change) for change in rows if change is not None]
        for statistic, rows in changes.items()
    }


def _days_on(days: list[float]) -> int:
    return sum(1 for day in days if day > 0)


def most_history(page: Page) -> tuple[str, list[float]]:
    """The on-time statistic with on-time on the most days, and its daily on-time.

    The whole logs are read in the background after the first import: this waits until one
    statistic has MIN_DAYS days (or HISTORY_MS has passed).
    """
    deadline = time.monotonic() + HISTORY_MS / 1000
    while True:
        statistics = on_time_statistics(page)
        daily = daily_on_time(page, statistics)
        best = max(statistics, key=lambda statistic: _days_on(daily.get(statistic, [])))
        days = daily.get(best, [])
        if _days_on(days) >= MIN_DAYS or time.monotonic() > deadline:
            return best, days
        page.wait_for_timeout(1_000)


def _edit_dashboard(page: Page) -> None:
    """Edit dashboard, and take control of the generated default dashboard (keeping its cards)."""
    edit = page.get_by_role("button", name="Edit dashboard")
    if not edit.is_visible():
        page.get_by_role("button", name="Open dashboard menu").click()
        edit = page.get_by_role("menuitem", name="Edit dashboard")
    edit.click()
    take_control = page.get_by_role("button", name="Take control")
    menu_item = page.get_by_role("menuitem", name="Take control")
    expect(take_control.or_(menu_item).first).to_be_visible(timeout=UI_MS)
    if menu_item.is_visible():
        menu_item.click()
    take_control.last.click()
    expect(page.get_by_role("button", name="Add card")).to_be_visible(timeout=UI_MS)


def add_statistics_card(page: Page, statistic_id: str) -> None:
    """Add a Statistics graph card of ``statistic_id`` from the card picker's code editor."""
    _edit_dashboard(page)
    page.get_by_role("button", name="Add card").click()
    page.get_by_placeholder("Search cards").fill("Statistics graph")
    page.locator("hui-card-picker").get_by_text("Statistics graph", exact=True).first.click()
    page.get_by_role("button", name="Show code editor").click()
    editor = page.locator("ha-code-editor .cm-content").first
    expect(editor).to_be_visible(timeout=UI_MS)
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(card_config(statistic_id))
    page.get_by_role("button", name="Save").last.click()
    page.get_by_role("button", name="Done").click()
    expect(page.get_by_role("button", name="Add card")).to_be_hidden(timeout=UI_MS)


def statistics_graph(page: Page, home_assistant: HomeAssistant, steps: Steps) -> None:
    """The on-time of one output per day, on the dashboard: several days of back-filled history."""
    skipped = len(steps.skipped)
    with steps.step("statistics-graph"):
        page.goto(f"{home_assistant.url}/lovelace/0")
        statistic_id, days = most_history(page)
        steps.note(f"{statistic_id}: on-time per day {[round(d, 1) for d in days]}")
        assert _days_on(days) >= MIN_DAYS, (
            f"{statistic_id} has on-time on fewer than {MIN_DAYS} days: {days}"
        )
        add_statistics_card(page, statistic_id)
        card = page.locator("hui-statistics-graph-card")
        expect(card).to_be_visible(timeout=UI_MS)
        expect(card).not_to_contain_text("No statistics found.", timeout=UI_MS)
        expect(card.locator("ha-chart-base, canvas, svg").first).to_be_visible(timeout=UI_MS)
        card.scroll_into_view_if_needed()
        page.mouse.move(0, 0)
    if len(steps.skipped) == skipped:
        publish(steps.last(), "statistics-graph.png")
