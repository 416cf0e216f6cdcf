"""Update entity per firmware part of the gateway, fed by the update server from the options.

Before installing, the entity says what installing interrupts: the first line of the release
summary (and of the release notes) warns that the part restarts (the Rayzig radio rejoins the mesh,
the TFT display goes blank) and that outputs keep their state, in the user's language
(EN 303 645 5.3-12). When the release settles security advisories that name the installed version,
the summary says so next (their identifiers) and the release notes list each with its summary and
link (5.3-11). Installing is refused up front (nothing is contacted) unless Home Assistant is
paired as a System-level user. Otherwise the image is downloaded, checked against its signed
manifest and sent to the gateway in chunks with progress; the gateway verifies it again and refuses
a bad signature, a tampered image or a rollback, each with its own message, leaving the running
firmware as it was.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityFeature,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from rayzig_core import (
    CatalogueEntry,
    FirmwareAdvisory,
    FirmwareError,
    FirmwareIntegrityError,
    FirmwarePart,
    FirmwareRollbackError,
    FirmwareSignatureError,
    Permission,
    RayzigError,
    install_disruption,
)

from .const import DOMAIN
from .coordinator import RayzigCoordinator
from .data import RayzigConfigEntry
from .firmware import RayzigFirmwareCoordinator, is_newer
from .site_data import gateway_device_identifier

PARALLEL_UPDATES = 1
"""The gateway installs one image at a time."""

RELEASE_SUMMARY_MAX = 255
"""Longest release summary Home Assistant shows."""
INSTALL_WARNING_KEY = "install_restarts"
"""Translation of the warning: ``entity.update.<translation key>.state_attributes.release_summary
.state.install_restarts`` (Home Assistant's table for translated attribute values)."""
FIXES_ADVISORIES_KEY = "fixes_advisories"
"""Translation of the line naming the advisories a release settles (placeholder ``{advisories}``),
beside the warning."""
DEFAULT_FIXES_ADVISORIES = "Fixes security advisories: {advisories}."


def default_install_warning(part: FirmwarePart) -> str:
    """English warning of what installing ``part`` interrupts (the library's wording)."""
    return install_disruption(part)


_FIRMWARE_ERRORS: tuple[tuple[type[FirmwareError], str], ...] = (
    (FirmwareSignatureError, "firmware_signature"),
    (FirmwareRollbackError, "firmware_rollback"),
    (FirmwareIntegrityError, "firmware_integrity"),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RayzigConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add an update entity per firmware part the gateway reports (needs an update server)."""
    runtime = entry.runtime_data
    firmware = runtime.firmware
    if firmware is None:
        return
    site = runtime.coordinator
    async_add_entities(
        RayzigFirmwareUpdate(site, firmware, version.part) for version in site.data.info.firmware
    )


class RayzigFirmwareUpdate(CoordinatorEntity[RayzigFirmwareCoordinator], UpdateEntity):
    """One firmware part of the gateway: installed version, newest signed release, install."""

    _attr_has_entity_name = True
    _attr_device_class = UpdateDeviceClass.FIRMWARE
    _attr_supported_features = (
        UpdateEntityFeature.INSTALL
        | UpdateEntityFeature.PROGRESS
        | UpdateEntityFeature.RELEASE_NOTES
    )

    def __init__(
        self, site: RayzigCoordinator, firmware: RayzigFirmwareCoordinator, part: FirmwarePart
    ) -> None:
        """Create the entity for ``part`` on the gateway device."""
        super().__init__(firmware)
        self.site = site
        self.part = part
        serial = site.data.info.serial
        self._attr_translation_key = f"firmware_{part.name.lower()}"
        self._attr_unique_id = f"{serial}_firmware_{part.name.lower()}"
        self._attr_device_info = DeviceInfo(identifiers={gateway_device_identifier(serial)})

    async def async_added_to_hass(self) -> None:
        """Follow the gateway's installed versions as well as the catalogue."""
        await super().async_added_to_hass()
        self.async_on_remove(self.site.async_add_listener(self._handle_coordinator_update))

    @property
    def available(self) -> bool:
        """Available while the gateway is connected and the last catalogue fetch worked.

        Not before the first catalogue has arrived (setup fetches it in the background).
        """
        return (
            super().available
            and self.coordinator.data is not None
            and self.site.connected
            and self.installed_version is not None
        )

    @property
    def _entry(self) -> CatalogueEntry | None:
        """The newest release of this part, if it is newer than what is installed."""
        entry = (self.coordinator.data or {}).get(self.part)
        if entry is None or not is_newer(entry, self.coordinator.installed(self.part)):
            return None
        return entry

    @property
    def installed_version(self) -> str | None:
        """Version the gateway reports as installed."""
        installed = self.coordinator.installed(self.part)
        return installed.version if installed is not None else None

    @property
    def latest_version(self) -> str | None:
        """Newest signed release (the installed version when nothing newer is published).

        Unknown (None) until a catalogue has been fetched.
        """
        if self.coordinator.data is None:
            return None
        entry = self._entry
        return entry.manifest.version if entry is not None else self.installed_version

    def _translated(self, key: str, default: str) -> str:
        """A release-summary text of this entity in Home Assistant's language (else ``default``)."""
        # The platform's loaded translations: on the entity's ``platform_data`` from HA 2026
        # (EntityPlatform no longer has them), on its platform before.
        source: Any = getattr(self, "platform_data", None) or self.platform
        if source is not None and self.translation_key is not None:
            path = (
                f"component.{source.platform_name}.entity.{source.domain}"
                f".{self.translation_key}.state_attributes.release_summary.state.{key}"
            )
            tables: tuple[dict[str, str], dict[str, str]] = (
                source.platform_translations,
                source.default_language_platform_translations,
            )
            for table in tables:
                if text := table.get(path):
                    return text
        return default

    @property
    def install_warning(self) -> str:
        """What installing this part interrupts, in Home Assistant's language (5.3-12)."""
        return self._translated(INSTALL_WARNING_KEY, default_install_warning(self.part))

    @property
    def _fixed_advisories(self) -> list[FirmwareAdvisory]:
        """The advisories naming the installed version that the newer release settles."""
        entry = self._entry
        return [] if entry is None else self.coordinator.advisories_fixed_by(entry)

    def _fixes_line(self, advisories: list[FirmwareAdvisory]) -> str:
        """The translated line naming ``advisories`` by their identifiers."""
        template = self._translated(FIXES_ADVISORIES_KEY, DEFAULT_FIXES_ADVISORIES)
        return template.replace("{advisories}", ", ".join(a.identifier for a in advisories))

    @property
    def release_summary(self) -> str | None:
        """The install warning, the advisories it fixes, then the start of the release notes."""
        entry = self._entry
        if entry is None:
            return None
        summary = self.install_warning
        if fixed := self._fixed_advisories:
            summary = f"{summary}\n\n{self._fixes_line(fixed)}"
        if entry.manifest.release_notes:
            summary = f"{summary}\n\n{entry.manifest.release_notes}"
        if len(summary) > RELEASE_SUMMARY_MAX:
            summary = summary[: RELEASE_SUMMARY_MAX - 1] + "…"
        return summary

    async def async_release_notes(self) -> str | None:
        """The install warning, the advisories it fixes (linked), then the full release notes.

        Home Assistant's update dialog shows these notes instead of the summary, so the warning
        leads them too.
        """
        entry = self._entry
        if entry is None:
            return None
        parts = [f"**{self.install_warning}**"]
        if fixed := self._fixed_advisories:
            listed = "\n".join(f"- [{a.identifier}]({a.url}): {a.summary}" for a in fixed)
            parts.append(f"{self._fixes_line(fixed)}\n\n{listed}")
        if entry.manifest.release_notes:
            parts.append(entry.manifest.release_notes)
        return "\n\n".join(parts)

    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Install the newest release; refused below System level before anything is contacted.

        Home Assistant's own account is an Administrator's: the error says where to install
        with a System user's password instead (the options flow, :mod:`.config_flow_system`).
        """
        if not self.coordinator.can_install:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="firmware_needs_system",
                translation_placeholders={"user": self.site.data.info.user},
            )
        entry = self._entry
        if entry is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="firmware_up_to_date",
                translation_placeholders={"version": self.installed_version or "?"},
            )
        self._attr_in_progress = True
        self._attr_update_percentage = 0
        self.async_write_ha_state()
        try:
            await self.coordinator.async_install(self.part, self._async_progress)
        except RayzigError as err:
            raise self._error(err) from err
        finally:
            self._attr_in_progress = False
            self._attr_update_percentage = None
        if self.installed_version != entry.manifest.version:
            # The gateway pushes FirmwareChanged; ask once in case that got lost on the way.
            await self.site.async_refresh()
        self.coordinator.async_check_installed()

    @callback
    def _async_progress(self, percent: int) -> None:
        if percent != self._attr_update_percentage:
            self._attr_update_percentage = percent
            self.async_write_ha_state()

    def _error(self, err: RayzigError) -> HomeAssistantError:
        """Return the translated exception for a refused or failed install."""
        for error_type, key in _FIRMWARE_ERRORS:
            if isinstance(err, error_type):
                return HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key=key,
                    translation_placeholders={"error": str(err)},
                )
        return self.site.translate_error(err, permission=Permission.FIRMWARE)
