"""Prompt recovery: reconnect as soon as the gateway (or its bridge) answers again, no hammering.

The client reconnects by itself with a capped exponential back-off. For Home Assistant the cap is
:data:`RECONNECT_BACKOFF_MAX` (the library's default suits command-line tools), and two things
end a wait early (:meth:`rayzig_core.RayzigClient.reconnect_now`):

* a **zeroconf announcement** of the gateway or bridge (the config flow sees it for an entry that
  is already set up: :func:`async_gateway_seen`);
* a **cheap probe** (:meth:`rayzig_core.RayzigClient.probe`: does the transport open? no session,
  no handshake), every :data:`PROBE_INTERVAL` while the client waits. A success after a failure
  means something answers again. Two successes in a row mean the transport opens but the session
  does not (a bridge whose gateway is away): probing stops until the link is back, and the
  back-off (and zeroconf) decide, so a gateway that stays away is not hammered.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from rayzig_core import ConnectionState, RayzigClient

from .const import DOMAIN

_LOGGER = logging.getLogger(__package__)

RECONNECT_BACKOFF_INITIAL: Final = 0.5
"""Seconds before the first reconnection attempt after a session ends."""
RECONNECT_BACKOFF_MAX: Final = 10.0
"""Longest wait between two reconnection attempts (each is a Noise handshake for the gateway)."""
PROBE_INTERVAL: Final = 1.0
"""Seconds between two probes while the client waits to reconnect."""
PROBE_TIMEOUT: Final = 2.0
"""Longest a probe waits for the transport (a host that drops packets)."""


@callback
def async_gateway_seen(entry: ConfigEntry) -> None:
    """The gateway or its bridge announced itself: if the entry waits to reconnect, try now."""
    if entry.state is ConfigEntryState.LOADED:
        client: RayzigClient = entry.runtime_data.client
        if client.state is ConnectionState.BACKOFF:
            _LOGGER.debug("%s announced itself: reconnecting now", entry.title)
            client.reconnect_now()


class ReconnectProbe:
    """Probes the gateway's transport while the client waits, and nudges it when it answers."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: RayzigClient) -> None:
        """Watch ``client`` of ``entry``; :meth:`async_start` begins."""
        self.hass = hass
        self.entry = entry
        self.client = client
        self.probes = 0
        """Probes made so far (diagnostics, tests)."""
        self._last_ok: bool | None = None
        """The last probe's result in this outage (None: none yet)."""
        self._settled = False
        """The transport opens but the session does not: leave it to the back-off."""
        self._cancel_timer: CALLBACK_TYPE | None = None
        self._probing = False

    @callback
    def async_start(self) -> None:
        """Follow the client's connection state until the entry unloads."""
        self.entry.async_on_unload(self.client.subscribe_state(self._on_state))
        self.entry.async_on_unload(self._async_cancel)

    @callback
    def _on_state(self, state: ConnectionState) -> None:
        if state is ConnectionState.BACKOFF:
            if not self._settled:
                self._async_schedule()
            return
        self._async_cancel()
        if state is ConnectionState.CONNECTED:
            self._last_ok, self._settled = None, False

    @callback
    def _async_schedule(self) -> None:
        if self._cancel_timer is None and not self._probing:
            self._cancel_timer = async_call_later(self.hass, PROBE_INTERVAL, self._async_due)

    @callback
    def _async_cancel(self) -> None:
        if self._cancel_timer is not None:
            self._cancel_timer()
            self._cancel_timer = None

    @callback
    def _async_due(self, _now: datetime) -> None:
        self._cancel_timer = None
        if self.client.state is not ConnectionState.BACKOFF:
            return
        self._probing = True
        self.entry.async_create_background_task(
            self.hass, self._async_probe(), f"{DOMAIN} reconnect probe {self.entry.entry_id}"
        )

    async def _async_probe(self) -> None:
        try:
            ok = await self.client.probe(PROBE_TIMEOUT)
        finally:
            self._probing = False
        self.probes += 1
        waiting = self.client.state is ConnectionState.BACKOFF
        if ok and self._last_ok is True:
            self._settled = True  # the transport opens, the session does not
        elif ok and waiting:
            _LOGGER.debug("%s answers again: reconnecting now", self.entry.title)
            self.client.reconnect_now()
        self._last_ok = ok
        if waiting and not self._settled:
            self._async_schedule()
