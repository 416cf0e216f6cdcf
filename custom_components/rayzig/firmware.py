"""Firmware catalogue of the configured update server, and signed installs over the gateway link.

:class:`RayzigFirmwareCoordinator` fetches the update server's catalogue every six hours with the
aiohttp session Home Assistant injects; every entry's Ed25519 signature is verified against the
signing key from the options before it is offered. :meth:`RayzigFirmwareCoordinator.async_install`
downloads an image (checked against the SHA-256 in its signed manifest) and sends it to the
gateway in resumable CRC-checked chunks with :func:`rayzig_core.install_firmware`;
the gateway verifies signature, hash and anti-rollback again before it applies anything.

When the catalogue offers a newer image flagged as a security fix, a repair issue asks the user to
install it. The catalogue's signed security advisories (verified like the images, PROTOCOL.md §10.2)
raise a repair issue for every installed part whose version one of them names, cleared when a
version outside it is installed (by anyone: FirmwareChanged) or the advisory is withdrawn. A
catalogue that does not verify, because of one bad image entry or advisory, is refused whole: the
issues raised from the last verified catalogue stay, and the failure is logged and shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from rayzig_core import (
    CatalogueEntry,
    ErrorCode,
    FirmwareAdvisory,
    FirmwareChanged,
    FirmwareError,
    FirmwarePart,
    FirmwareVersion,
    NotFoundError,
    Notification,
    Permission,
    PermissionDeniedError,
    RayzigClient,
    RayzigError,
    UpdateServerClient,
    UserLevel,
    affecting,
    allowed,
    install_firmware,
    version_key,
)

from .const import CONF_UPDATE_SERVER_URL, DOMAIN
from .repairs import (
    async_clear_security_update,
    async_raise_security_update,
    async_update_advisory_issues,
)

_LOGGER = logging.getLogger(__name__)

FIRMWARE_POLL_INTERVAL = timedelta(hours=6)

type FirmwareCatalogue = dict[FirmwarePart, CatalogueEntry | None]


def newest(entries: list[CatalogueEntry], part: FirmwarePart) -> CatalogueEntry | None:
    """Return the newest entry for ``part``: highest security version, then highest version."""
    candidates = [entry for entry in entries if entry.manifest.part is part]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda e: (e.manifest.security_version, version_key(e.manifest.version)),
    )


def is_newer(entry: CatalogueEntry, installed: FirmwareVersion | None) -> bool:
    """Whether ``entry`` is newer than the installed firmware of its part."""
    if installed is None:
        return True
    manifest = entry.manifest
    return (manifest.security_version, version_key(manifest.version)) > (
        installed.security_version,
        version_key(installed.version),
    )


class RayzigFirmwareCoordinator(DataUpdateCoordinator[FirmwareCatalogue]):
    """The newest verified catalogue entry per firmware part (None: nothing published)."""

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: RayzigClient,
        url: str,
        signing_key: bytes,
    ) -> None:
        """Watch the update server at ``url``, trusting catalogues signed with ``signing_key``.

        Setup fetches the first catalogue with ``async_refresh()`` in a background task of the
        entry: a slow or unreachable update server must not hold up or stop the entry's loading.
        """
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{entry.title} firmware catalogue",
            update_interval=FIRMWARE_POLL_INTERVAL,
        )
        self.client = client
        self.server = UpdateServerClient(async_get_clientsession(hass), url, (signing_key,))
        self.entries: list[CatalogueEntry] = []
        """Every verified entry of the last catalogue fetched."""
        self.advisories: list[FirmwareAdvisory] = []
        """Every verified security advisory of the last catalogue fetched."""
        self._advisories_known = False
        """Whether a catalogue has verified since setup: until then the repairs stay as they are."""
        # Firmware installed by anyone (another client, the CLI) settles the security repairs.
        entry.async_on_unload(client.subscribe(self._on_notification))
        entry.async_on_unload(self._async_forget_repairs)

    @callback
    def _on_notification(self, notice: Notification) -> None:
        if isinstance(notice, FirmwareChanged):
            self.async_check_installed(notice.versions)

    @callback
    def _async_forget_repairs(self) -> None:
        """On unload after the update server was removed from the options, clear its repairs.

        On any other unload (a reload, Home Assistant stopping) they stay until the next catalogue
        that verifies says otherwise.
        """
        if self.config_entry.options.get(CONF_UPDATE_SERVER_URL):
            return
        async_update_advisory_issues(self.hass, self.config_entry, ())
        for part in FirmwarePart:
            async_clear_security_update(self.hass, self.config_entry, part)

    # --- what is installed -----------------------------------------------------------------------

    def installed(self, part: FirmwarePart) -> FirmwareVersion | None:
        """Return the installed firmware of ``part``, as the gateway last reported it."""
        runtime = getattr(self.config_entry, "runtime_data", None)
        data = getattr(getattr(runtime, "coordinator", None), "data", None)
        info = data.info if data is not None else self.client.info
        if info is None:
            return None
        return next((version for version in info.firmware if version.part is part), None)

    @property
    def level(self) -> UserLevel | None:
        """Access level of this client's gateway user."""
        if self.client.info is not None:
            return self.client.info.level
        if self.client.credentials is not None:
            return self.client.credentials.level
        return None

    @property
    def can_install(self) -> bool:
        """Whether this client's user may install firmware (System level)."""
        level = self.level
        return level is not None and allowed(level, Permission.FIRMWARE)

    # --- catalogue -------------------------------------------------------------------------------

    async def _async_update_data(self) -> FirmwareCatalogue:
        try:
            catalogue = await self.server.fetch()
        except RayzigError as err:
            # A catalogue that does not verify is refused whole (PROTOCOL.md §10.2): what was
            # raised from the last verified one stays, rather than a tampered advisory passing
            # for a withdrawn one.
            refused = isinstance(err, FirmwareError)
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key=(
                    "firmware_catalogue_refused" if refused else "firmware_catalogue_failed"
                ),
                translation_placeholders={"error": str(err)},
            ) from err
        self.entries = catalogue.entries
        self.advisories = catalogue.advisories
        self._advisories_known = True
        self.async_check_installed()
        return {part: newest(catalogue.entries, part) for part in FirmwarePart}

    @callback
    def async_check_installed(self, versions: Iterable[FirmwareVersion] | None = None) -> None:
        """Settle every firmware repair against the installed versions: fixes and advisories.

        ``versions`` are the installed versions when the caller knows them first-hand (a
        FirmwareChanged notice), otherwise the gateway's last report is used.
        """
        versions = list(versions or ())
        self.async_check_security_fixes(versions)
        self.async_check_advisories(versions)

    def installed_versions(self, versions: Iterable[FirmwareVersion] = ()) -> list[FirmwareVersion]:
        """Installed version of every part: from ``versions`` first, else the gateway's report."""
        known = {version.part: version for version in versions}
        found = (known.get(part) or self.installed(part) for part in FirmwarePart)
        return [version for version in found if version is not None]

    @callback
    def async_check_advisories(self, versions: Iterable[FirmwareVersion] = ()) -> None:
        """Raise a repair per advisory naming an installed version; clear the others."""
        installed = self.installed_versions(versions)
        if not installed or not self._advisories_known:
            return  # nothing known of the gateway or the advisories: leave the repairs alone
        found = affecting(self.advisories, installed)
        async_update_advisory_issues(self.hass, self.config_entry, found)

    def advisories_fixed_by(self, entry: CatalogueEntry) -> list[FirmwareAdvisory]:
        """Advisories naming the installed version of ``entry``'s part that ``entry`` settles."""
        manifest = entry.manifest
        offered = FirmwareVersion(manifest.part, manifest.version, manifest.security_version)
        return [
            advisory
            for advisory, _ in affecting(self.advisories, self.installed_versions())
            if advisory.part is manifest.part and not advisory.affects(offered)
        ]

    @callback
    def async_check_security_fixes(self, versions: Iterable[FirmwareVersion] | None = None) -> None:
        """Raise a repair per part with a newer image fixing a security problem; clear the rest.

        ``versions`` are the installed versions when the caller knows them first-hand (a
        FirmwareChanged notice), otherwise the gateway's last report is used.
        """
        entries = self.entries
        known = {version.part: version for version in versions or ()}
        for part in FirmwarePart:
            installed = known.get(part) or self.installed(part)
            if installed is None:
                continue
            fixes = [
                entry
                for entry in entries
                if entry.manifest.part is part
                and entry.manifest.security_fix
                and is_newer(entry, installed)
            ]
            if fixes:
                latest = newest(entries, part)
                assert latest is not None
                async_raise_security_update(
                    self.hass, self.config_entry, part, latest.manifest.version
                )
            else:
                async_clear_security_update(self.hass, self.config_entry, part)

    # --- install ---------------------------------------------------------------------------------

    async def async_install(
        self,
        part: FirmwarePart,
        progress: Callable[[int], None],
        client: RayzigClient | None = None,
    ) -> None:
        """Install the newest catalogue image of ``part``; ``progress`` gets whole percents.

        ``client`` is a System user's session opened for this one install (Home Assistant's own
        key is an Administrator's, :mod:`.account`). Raises PermissionDeniedError without
        contacting anything if the installing user is below System level; otherwise the update
        server's and gateway's errors (RayzigError subclasses: FirmwareSignatureError,
        FirmwareIntegrityError, FirmwareRollbackError, link errors) propagate, and the running
        firmware stays as it was.
        """
        installer = client or self.client
        if client is None and not self.can_install:
            raise PermissionDeniedError(
                int(ErrorCode.PERMISSION_DENIED),
                "Installing firmware needs a gateway user of System level.",
            )
        entry = (self.data or {}).get(part)
        if entry is None:
            entry = await self.server.latest_for(part)
        if entry is None:
            raise NotFoundError(
                int(ErrorCode.NOT_FOUND),
                f"The update server offers no {part.name.lower()} firmware.",
            )
        image = await self.server.fetch_image(entry)

        def report(held: int, size: int) -> None:
            progress(held * 100 // size)

        await install_firmware(installer, entry, image, report)
