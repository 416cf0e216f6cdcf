"""A real Home Assistant in this process, built the way its bootstrap builds one, for benchmarks.

:func:`home_assistant` follows ``bootstrap.async_from_config_dict`` step by step, minus the
default integrations (frontend, backup, analytics...) that a benchmark does not need: a
``HomeAssistant`` on a temporary configuration directory, the custom integrations found (this
repository's ``custom_components/rayzig``), the registries loaded from real storage, the core
integrations and core configuration, then only what the benchmark asks for, and
``async_start``. Nothing is patched: storage writes, registries and the event loop (HA's own
``HassEventLoopPolicy``, asyncio debug off, see :func:`run`) are the real ones.

* ``recorder=True`` adds the recorder on a **file** SQLite database in that directory, with its
  default commit interval (5 s).
* ``comparison=True`` adds two entities of Home Assistant's own to compare with: an
  ``input_boolean`` and a ``DemoSwitch`` (the class of the ``demo`` integration's switch
  platform, from ``homeassistant.components.demo.switch``), added to the ``switch`` component
  directly. Setting up the ``demo`` integration itself would also set up ``http`` (a web server)
  through ``conversation``, and thirty demo platforms.

:func:`rayzig_entry` builds the config entry the config flow would have made (TCP to the
gateway, a freshly paired client key); ``hass.config_entries.async_add`` sets it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from homeassistant import bootstrap, loader
from homeassistant.components.demo.switch import DemoSwitch
from homeassistant.components.switch import DATA_COMPONENT as SWITCH_COMPONENT
from homeassistant.config_entries import SOURCE_USER, ConfigEntries, ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import recorder as recorder_helper
from homeassistant.runner import HassEventLoopPolicy
from homeassistant.setup import async_setup_component

from custom_components.rayzig.const import (
    CONF_CONNECTION,
    CONF_CREDENTIALS,
    CONF_HOST,
    CONF_PORT,
    CONNECTION_TCP,
    DOMAIN,
)
from rayzig_core.client import ClientCredentials

_T = TypeVar("_T")

INPUT_BOOLEAN = "input_boolean.bench"
"""The comparison ``input_boolean``."""
DATABASE = "home-assistant_v2.db"
QUIET_LOGGERS = (
    "homeassistant.loader",  # "We found a custom integration rayzig which has not been tested"
    "homeassistant.setup",
)


@dataclass(slots=True)
class BenchHome:
    """A running Home Assistant and what the benchmark set up in it."""

    hass: HomeAssistant
    config_dir: Path
    database: Path | None
    """The recorder's SQLite file, if the recorder runs."""
    demo_switch: str
    """Entity id of the comparison DemoSwitch (empty without comparison entities)."""
    input_boolean: str


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` on an event loop made by Home Assistant's own policy (debug off).

    Like ``homeassistant.runner.run``: HA's executor and exception handler, and at the end the
    remaining tasks cancelled, async generators and the executor shut down, the loop closed.
    """
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    loop = HassEventLoopPolicy(debug=False).new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=10))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


@contextlib.asynccontextmanager
async def home_assistant(
    *, recorder: bool = False, comparison: bool = True
) -> AsyncIterator[BenchHome]:
    """A started Home Assistant on a temporary configuration directory; stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="rayzig-ha-bench-") as tmp:
        config_dir = Path(tmp)
        hass = HomeAssistant(str(config_dir))
        try:
            home = await _set_up(hass, config_dir, recorder=recorder, comparison=comparison)
            await hass.async_start()
            await hass.async_block_till_done()
            yield home
        finally:
            await hass.async_stop()


async def _set_up(
    hass: HomeAssistant, config_dir: Path, *, recorder: bool, comparison: bool
) -> BenchHome:
    # bootstrap.async_setup_hass → async_from_config_dict, without the default integrations.
    loader.async_setup(hass)
    hass.config.skip_pip = True  # never install anything; rayzig-core is installed already
    hass.config_entries = ConfigEntries(hass, {})
    await loader.async_get_custom_components(hass)
    await bootstrap.async_load_base_functionality(hass)
    for domain in sorted(bootstrap.CORE_INTEGRATIONS):
        if not await async_setup_component(hass, domain, {}):
            raise RuntimeError(f"Home Assistant's {domain} did not set up")
    await async_process_ha_core_config(hass, {})
    database: Path | None = None
    if recorder:
        database = config_dir / DATABASE
        recorder_helper.async_initialize_recorder(hass)  # as bootstrap does before stage 0
        recorder_config = {"recorder": {"db_url": f"sqlite:///{database}"}}
        if not await async_setup_component(hass, "recorder", recorder_config):
            raise RuntimeError("the recorder did not set up")
    demo_switch = input_boolean = ""
    if comparison:
        boolean_config = {"input_boolean": {INPUT_BOOLEAN.split(".")[1]: {"name": "Bench"}}}
        if not await async_setup_component(hass, "input_boolean", boolean_config):
            raise RuntimeError("input_boolean did not set up")
        input_boolean = INPUT_BOOLEAN
        if not await async_setup_component(hass, "switch", {}):
            raise RuntimeError("switch did not set up")
        switch = DemoSwitch("rayzig_bench_demo", "Bench demo", state=False, assumed=False)
        await hass.data[SWITCH_COMPONENT].async_add_entities([switch])
        demo_switch = switch.entity_id
    return BenchHome(hass, config_dir, database, demo_switch, input_boolean)


def rayzig_entry(
    port: int, credentials: ClientCredentials, options: dict[str, Any] | None = None
) -> ConfigEntry:
    """The config entry the config flow makes for a network bridge (here the virtual gateway)."""
    return ConfigEntry(
        data={
            CONF_CONNECTION: CONNECTION_TCP,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: port,
            CONF_CREDENTIALS: credentials.to_dict(),
        },
        discovery_keys=MappingProxyType({}),
        domain=DOMAIN,
        minor_version=1,
        options=options or {},
        source=SOURCE_USER,
        subentries_data=(),
        title=f"Rayzig {credentials.serial}",
        unique_id=credentials.serial,
        version=1,
    )


def entities_of(hass: HomeAssistant, entry: ConfigEntry, domain: str | None = None) -> list[str]:
    """Enabled entity ids of ``entry`` (of one ``domain`` if given), sorted.

    Entities disabled by default (the link-quality sensors) are registered but have no state.
    """
    return sorted(
        item.entity_id
        for item in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if item.disabled_by is None and (domain is None or item.domain == domain)
    )
