"""No secret in Home Assistant's database: rayzig.add_user with the recorder running.

Home Assistant records every action call with its data (the ``call_service`` event), which is why
``add_user`` takes no password. The generated password travels only in the action's response, and
this test reads back every row of every recorder table to show it is nowhere in the database.
"""

from __future__ import annotations

import pytest
from homeassistant.components.recorder import Recorder, get_instance
from homeassistant.components.recorder.db_schema import Base
from homeassistant.components.recorder.util import session_scope
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from sqlalchemy import select

from custom_components.rayzig.const import DOMAIN
from rayzig_core.testing.gateway import GatewayThread

from .runtime_helpers import loaded_entry


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder must come before custom integrations are enabled."""


def _database_rows(hass: HomeAssistant) -> list[str]:
    """Every row of every recorder table, as text (events, event data, states, attributes...)."""
    rows: list[str] = []
    with session_scope(hass=hass, read_only=True) as session:
        for table in Base.metadata.sorted_tables:
            rows.extend(f"{table.name}: {tuple(row)!r}" for row in session.execute(select(table)))
    return rows


async def _recorded(hass: HomeAssistant) -> list[str]:
    await async_wait_recording_done(hass)
    return await get_instance(hass).async_add_executor_job(_database_rows, hass)


async def test_add_user_password_is_not_recorded(
    hass: HomeAssistant,
    gateway: GatewayThread,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The call is recorded (name and level), the generated password in the response is not."""
    async with loaded_entry(hass, config_entry, monkeypatch) as entry:
        response = await hass.services.async_call(
            DOMAIN,
            "add_user",
            {"config_entry_id": entry.entry_id, "name": "ursula", "level": "user"},
            blocking=True,
            return_response=True,
        )
        assert response is not None
        password = str(response["password"])
        rows = await _recorded(hass)
    # The recorder did record the action call with its data ...
    calls = [row for row in rows if '"service":"add_user","service_data"' in row]
    assert len(calls) == 1
    assert '"name":"ursula"' in calls[0]
    assert '"level":"user"' in calls[0]
    # ... and Rayzig states (the site is recorded) ...
    assert any(row.startswith("states_meta:") and "switch." in row for row in rows)
    # ... but the password is in no event, event data, state or attribute row, in any form.
    database = "\n".join(rows)
    for form in (password, password.upper(), password.replace("-", "")):
        assert form not in database
    assert "password" not in calls[0]
