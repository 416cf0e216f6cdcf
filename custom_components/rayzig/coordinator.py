"""Push-first coordinator of one Rayzig gateway.

Gateway notifications (output, telemetry, event-log, membership and firmware changes) update
the data at once; a slow poll (``list_modules`` + ``get_info``, interval from the options) is only
the safety net, and a push does not postpone it. Listeners are told only about what changed
(:mod:`.site_listeners`): a module's entities when that module's data differ, site listeners when
membership or the gateway's info do, and every listener once when availability flips (the link
lost or restored, a poll failing or recovering). Reconnecting is the client's job: the
coordinator follows its connection state to mark entities unavailable, logs the loss once and the
recovery once, and starts reauthentication when the gateway no longer accepts this client's key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from rayzig_core import (
    PERMISSIONS,
    AuthenticationError,
    ConnectionFailedError,
    ConnectionState,
    EventsAvailable,
    GatewayBusyError,
    GatewayKeyChangedError,
    InvalidRequestError,
    Module,
    NotFoundError,
    Notification,
    Output,
    OutsideLimitationError,
    Permission,
    PermissionDeniedError,
    RayzigClient,
    RayzigError,
    UserLevel,
)

from .const import CONF_POLL_INTERVAL, DEFAULT_POLL_INTERVAL, DOMAIN, MIN_POLL_INTERVAL
from .devices import async_mirror_changes, async_remove_stale_devices
from .events import RayzigEventImporter
from .repairs import async_raise_gateway_key_changed, async_update_weak_password_issue
from .site_data import RayzigSiteData, apply_notice, site_changes, with_module, with_output
from .site_listeners import SiteListeners

_LOGGER = logging.getLogger(__package__)

LEVEL_NAMES: dict[UserLevel, str] = {
    UserLevel.USER: "User",
    UserLevel.ADMINISTRATOR: "Administrator",
    UserLevel.SYSTEM: "System",
    UserLevel.UTILITY: "Utility",
}
"""Level names as the gateway, its display and its manual spell them."""


def required_level(permission: Permission) -> UserLevel:
    """Lowest level in the hierarchy (User < Administrator < System) holding ``permission``."""
    for level in (UserLevel.USER, UserLevel.ADMINISTRATOR, UserLevel.SYSTEM):
        if permission in PERMISSIONS[level]:
            return level
    return UserLevel.SYSTEM  # pragma: no cover - every permission is held by System


class RayzigCoordinator(DataUpdateCoordinator[RayzigSiteData]):
    """Keeps :class:`RayzigSiteData` current, mostly from the gateway's push notifications."""

    config_entry: ConfigEntry

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: RayzigClient) -> None:
        """Set up the coordinator; :meth:`async_start_push` subscribes to the client."""
        interval = max(
            MIN_POLL_INTERVAL, int(entry.options.get(CONF_POLL_INTERVAL, DEFAULT_POLL_INTERVAL))
        )
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=entry.title,  # HA's own logs ("Error fetching Rayzig RG1-… data"): brand once
            update_interval=timedelta(seconds=interval),
            always_update=False,
        )
        self.client = client
        self.events: RayzigEventImporter | None = None
        """Set by setup once the importer is loaded; EventsAvailable schedules a sync on it."""
        self.gateway_device_id: str | None = None
        """Device-registry id of the gateway device (modules are linked to it)."""
        self._connection_lost = False
        """The link is down: catch up once it is back."""
        self._reconnect_tried = False
        """A reconnect attempt started since the link went down (its outcome says why)."""
        self._loss_logged = False
        self._poll_buffers: list[list[Notification]] = []
        self._targets = SiteListeners()
        self._told: RayzigSiteData | None = None
        """The data listeners were last told about."""
        self._told_available: bool | None = None
        """Whether entities could be available when listeners were last told."""

    # --- state ----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the client holds an open session to the gateway."""
        return self.client.state is ConnectionState.CONNECTED

    @callback
    def async_start_push(self) -> None:
        """Follow notifications and connection state until the entry unloads."""
        entry = self.config_entry
        entry.async_on_unload(self.client.subscribe(self._handle_notification))
        entry.async_on_unload(self.client.subscribe_state(self._handle_state))

    # --- targeted updates -----------------------------------------------------------------------

    @callback
    def async_add_listener(
        self, update_callback: CALLBACK_TYPE, context: Any = None
    ) -> Callable[[], None]:
        """Listen for changes of module ``context`` (an id), or of the site if None."""
        remove_target = self._targets.add(update_callback, context)
        remove = super().async_add_listener(update_callback, context)

        @callback
        def remove_listener() -> None:
            remove_target()
            remove()

        return remove_listener

    @callback
    def async_update_listeners(self) -> None:
        """Tell only what changed since the last call; everyone once when availability flips."""
        available = self.last_update_success and self.connected
        old, new = self._told, self.data
        self._told = new
        if available != self._told_available or old is None or new is None:
            self._told_available = available
            super().async_update_listeners()
        elif old is not new:
            self._targets.notify(site_changes(old, new))

    @callback
    def _handle_state(self, state: ConnectionState) -> None:
        """Follow the client's connection state; log each outage once, saying what it is.

        The gateway ends a revoked key's session without a reason, so a loss is logged only once
        the first reconnect attempt has told whether the key was refused (AUTH_FAILED) or the
        gateway is away (the attempt failed): never "reconnecting" for a key that will not work.
        """
        if state is ConnectionState.CLOSED:
            return
        title = self.config_entry.title
        if state is ConnectionState.CONNECTED:
            if self._connection_lost:
                self._connection_lost = self._reconnect_tried = False
                if self._loss_logged:
                    _LOGGER.info("Connection to %s restored", title)
                self._loss_logged = False
                # Nothing was pushed while the link was down: catch up now.
                self.config_entry.async_create_background_task(
                    self.hass, self.async_request_refresh(), f"{DOMAIN} catch-up refresh"
                )
        elif isinstance(error := self.client.auth_error, GatewayKeyChangedError):
            # Never re-pinned silently: the user must check the label and add the gateway again.
            self._connection_lost = self._loss_logged = True
            _LOGGER.warning(
                "%s presented another key than the one Home Assistant pinned; Home Assistant "
                "does not connect to it until it is added again (see Repairs)",
                title,
            )
            async_raise_gateway_key_changed(
                self.hass,
                self.config_entry,
                error.pinned_fingerprint,
                error.presented_fingerprint,
            )
        elif state is ConnectionState.AUTH_FAILED:
            # The client stops reconnecting: only the user can fix this (reauthentication).
            self._connection_lost = self._loss_logged = True
            _LOGGER.warning(
                "%s no longer accepts Home Assistant's key (it was revoked, or its user was "
                "deleted); Home Assistant does not reconnect: re-authenticate the integration",
                title,
            )
            self.config_entry.async_start_reauth(self.hass)
        else:
            self._connection_lost = True
            if state is ConnectionState.CONNECTING:
                self._reconnect_tried = True
            elif self._reconnect_tried and not self._loss_logged:
                self._loss_logged = True
                _LOGGER.warning(
                    "Lost connection to %s; its entities are unavailable until it is back "
                    "(reconnecting in the background)",
                    title,
                )
        self.async_update_listeners()

    # --- polling (safety net) -------------------------------------------------------------------

    async def _async_update_data(self) -> RayzigSiteData:
        if self.data is not None and not self.connected:
            # Entities already show the outage; the client reconnects by itself.
            return self.data
        # Notifications that arrive while the snapshot is read may be newer than (part of) it:
        # they are replayed on top of it, in order. Each carries an absolute state, and the
        # session delivers notifications and answers in order, so the replay is exact.
        received: list[Notification] = []
        self._poll_buffers.append(received)
        try:
            info = await self.client.get_info()
            modules = await self.client.list_modules()
        except AuthenticationError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="auth_failed"
            ) from err
        except RayzigError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        finally:
            self._poll_buffers.remove(received)
        data = RayzigSiteData(info, {module.module_id: module for module in modules})
        for notice in received:
            data = apply_notice(data, notice)
        self._async_track_changes(self.data, data)
        return data

    # --- push -----------------------------------------------------------------------------------

    @callback
    def _handle_notification(self, notice: Notification) -> None:
        for received in self._poll_buffers:
            received.append(notice)
        if isinstance(notice, EventsAvailable) and self.events is not None:
            self.events.async_schedule_sync(notice.module_id)
        data = self.data
        if data is None:
            return  # the first refresh is running: it replays this notification
        updated = apply_notice(data, notice)
        if updated is not data:
            self._async_publish(updated)

    @callback
    def async_apply_output(self, module_id: int, output: Output) -> None:
        """Take an output state the gateway acknowledged."""
        updated = with_output(self.data, module_id, output)
        if updated is not self.data:
            self._async_publish(updated)

    @callback
    def async_apply_module(self, module: Module) -> None:
        """Take a fresher snapshot or telemetry of a known module."""
        if module.module_id in self.data.modules:
            self._async_publish(with_module(self.data, module))

    @callback
    def _async_publish(self, data: RayzigSiteData) -> None:
        """Take pushed data (a push proves the link works); the poll stays on its schedule."""
        self._async_track_changes(self.data, data)
        self.data = data
        self.last_update_success = True
        self.async_update_listeners()

    # --- device registry and repairs ------------------------------------------------------------

    @callback
    def _async_track_changes(self, old: RayzigSiteData | None, new: RayzigSiteData) -> None:
        """Mirror membership, names and firmware in the device registry; raise repairs."""
        if old is None or old.info != new.info:
            async_update_weak_password_issue(self.hass, self.config_entry, new.info)
        if old is not None and old is not new:
            async_mirror_changes(self.hass, self.config_entry, self.gateway_device_id, old, new)

    @callback
    def async_remove_stale_devices(self) -> None:
        """Remove devices of modules that left the mesh while Home Assistant was not looking."""
        async_remove_stale_devices(self.hass, self.config_entry, self.data)

    # --- commands -------------------------------------------------------------------------------

    def module_name(self, module_id: int) -> str:
        """Return a module's name for messages (its id if unknown)."""
        module = self.data.modules.get(module_id)
        return module.name if module is not None else str(module_id)

    async def async_command[T](
        self,
        command: Awaitable[T],
        *,
        permission: Permission,
        module_id: int | None = None,
    ) -> T:
        """Run a gateway command; raise a translated HomeAssistantError if it is refused."""
        try:
            return await command
        except RayzigError as err:
            if isinstance(err, InvalidRequestError) and module_id is not None:
                await self._async_check_reachable(module_id, err)
            raise self.translate_error(err, permission=permission, module_id=module_id) from err

    async def _async_check_reachable(self, module_id: int, err: InvalidRequestError) -> None:
        """Turn a refusal for a module that dropped out of reach into a clear message."""
        try:
            telemetry = await self.client.get_telemetry(module_id)
        except RayzigError:
            return
        module = self.data.modules.get(module_id)
        if module is not None:
            self.async_apply_module(replace(module, telemetry=telemetry))
        if not telemetry.reachable:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="module_unreachable",
                translation_placeholders={"module": self.module_name(module_id)},
            ) from err

    def translate_error(
        self,
        err: RayzigError,
        *,
        permission: Permission | None = None,
        module_id: int | None = None,
    ) -> HomeAssistantError:
        """Return the translated exception for an error of the gateway or the link."""
        placeholders: dict[str, str] = {"error": str(err)}
        if isinstance(err, OutsideLimitationError):  # the account's limitation, not its level
            key = "outside_limitation"
            placeholders["user"] = self.data.info.user
        elif isinstance(err, PermissionDeniedError):
            info = self.data.info
            required = required_level(permission) if permission is not None else None
            needed = LEVEL_NAMES[required] if required is not None else "higher"
            # Home Assistant's own account holds no System right on purpose (.account).
            key = "permission_needs_system" if required is UserLevel.SYSTEM else "permission_denied"
            placeholders = {
                "user": info.user,
                "level": LEVEL_NAMES[info.level],
                "required": needed,
            }
        elif isinstance(err, AuthenticationError):
            key = "auth_failed"
        elif isinstance(err, ConnectionFailedError):
            key = "not_connected"
        elif isinstance(err, NotFoundError):
            key = "not_found"
        elif isinstance(err, GatewayBusyError):
            key = "gateway_busy"
        else:
            key = "request_failed"
        if module_id is not None:
            placeholders["module"] = self.module_name(module_id)
        return HomeAssistantError(
            translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
        )
