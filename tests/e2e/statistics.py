"""The statistics graph of one output's on-time, over the virtual gateway's pre-filled history.

The demo's gateway starts with days of event logs (``--prefill-events``); the integration turns
each output's log into hourly long-term statistics of its on-time. The step checks that the
recorder holds the on-time for several days, puts a Statistics graph card of it on a dashboard of
its own (saved through the frontend's own websocket calls, as the dashboard editor saves it), opens
that dashboard in the browser and checks that the card draws a chart, not "No statistics found.".
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


DASHBOARD = "rayzig-statistics"
"""URL path of the dashboard the step creates for the card."""


def card_config(statistic_id: str) -> dict[str, Any]:
    """The Statistics graph card of ``statistic_id``: on-time per day, as bars."""
    return {
        "type": "statistics-graph",
        "title": "On-time per day",
        "entities": [statistic_id],
        "period": "day",
        "stat_types": ["change"],
        "chart_type": "bar",
        "days_to_show": DAYS_TO_SHOW,
    }


_SAVE_DASHBOARD = (
    f"async ([path, card]) => {{ const hass = {_HASS}; "
    "await hass.callWS({type: 'lovelace/dashboards/create', url_path: path, "
    "title: 'Runtime', icon: 'mdi:chart-bar', show_in_sidebar: true}); "
    "await hass.callWS({type: 'lovelace/config/save', url_path: path, "
    "config: {views: [{title: 'Runtime', path: 'runtime', cards: [card]}]}}); }"
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


def add_statistics_card(page: Page, home_assistant: HomeAssistant, statistic_id: str) -> None:
    """A dashboard "Runtime" holding the Statistics graph card of ``statistic_id``, opened."""
    page.evaluate(_SAVE_DASHBOARD, [DASHBOARD, card_config(statistic_id)])
    page.emulate_media(reduced_motion="reduce")  # the chart draws at once, without growing bars
    page.goto(f"{home_assistant.url}/{DASHBOARD}/runtime")


def statistics_graph(page: Page, home_assistant: HomeAssistant, steps: Steps) -> None:
    """The on-time of one output per day, on the dashboard: several days of back-filled history."""
    skipped = len(steps.skipped)
    with steps.step("statistics-graph"):
        page.goto(f"{home_assistant.url}/lovelace/0")
        page.wait_for_function("document.querySelector('home-assistant')?.hass?.connected")
        statistic_id, days = most_history(page)
        steps.note(f"{statistic_id}: on-time per day {[round(d, 1) for d in days]}")
        assert _days_on(days) >= MIN_DAYS, (
            f"{statistic_id} has on-time on fewer than {MIN_DAYS} days: {days}"
        )
        add_statistics_card(page, home_assistant, statistic_id)
        card = page.locator("hui-statistics-graph-card")
        expect(card).to_be_visible(timeout=UI_MS)
        expect(card).not_to_contain_text("No statistics found.", timeout=UI_MS)
        expect(card.locator("ha-chart-base, canvas, svg").first).to_be_visible(timeout=UI_MS)
        card.scroll_into_view_if_needed()
        page.mouse.move(0, 0)
    if len(steps.skipped) == skipped:
        publish(steps.last(), "statistics-graph.png")
