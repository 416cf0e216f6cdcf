"""Fetching and verifying catalogues and images from an update server over HTTP(S) (§10.2).

Importing this module does not import asyncio or aiohttp; :class:`UpdateServerClient` imports
aiohttp when it first fetches something.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rayzig_core.errors import ConnectionFailedError
from rayzig_core.firmware.catalogue import (
    CATALOGUE_FILE,
    IMAGE_NAME_RE,
    MAX_CATALOGUE_BYTES,
    Catalogue,
    CatalogueEntry,
    bad_catalogue,
    verify_catalogue,
)
from rayzig_core.firmware.manifest import check_image, version_key
from rayzig_core.models import FirmwarePart

if TYPE_CHECKING:
    import aiohttp


class UpdateServerClient:
    """Fetches and verifies catalogues and images from an update server over HTTP(S).

    The aiohttp session is injected (Home Assistant passes its shared one) and never closed here.
    """

    CATALOGUE_TIMEOUT = 30.0
    IMAGE_TIMEOUT = 300.0

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, trusted_keys: Sequence[bytes]
    ) -> None:
        """Use ``session`` to talk to the server at ``base_url``, trusting ``trusted_keys``."""
        if not trusted_keys:
            raise ValueError("at least one trusted firmware signing key is required")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._trusted_keys = tuple(trusted_keys)

    @property
    def base_url(self) -> str:
        """The update server's base URL (without a trailing slash)."""
        return self._base_url

    async def _get(self, url: str, limit: int, time_limit: float) -> bytes:
        """GET ``url`` and return at most ``limit`` + 1 bytes of its body."""
        import aiohttp  # noqa: PLC0415 - keep aiohttp (and asyncio) out of module import

        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=time_limit)
            ) as response:
                if response.status != 200:
                    raise ConnectionFailedError(
                        f"Update server answered HTTP {response.status} for {url}; check the "
                        "update server URL and that the server publishes this file."
                    )
                body = bytearray()
                async for block in response.content.iter_chunked(65536):
                    body += block
                    if len(body) > limit:
                        break
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ConnectionFailedError(
                f"Could not fetch {url} from the update server ({type(err).__name__}); check "
                "the update server URL, that the server is running and the network connection."
            ) from err

    async def fetch(self) -> Catalogue:
        """Download ``catalogue.json`` and return it verified: image entries and advisories."""
        url = f"{self._base_url}/{CATALOGUE_FILE}"
        data = await self._get(url, MAX_CATALOGUE_BYTES, self.CATALOGUE_TIMEOUT)
        return verify_catalogue(data, self._trusted_keys)

    async def fetch_catalogue(self) -> list[CatalogueEntry]:
        """Download ``catalogue.json`` and return its verified image entries."""
        return (await self.fetch()).entries

    async def fetch_image(self, entry: CatalogueEntry) -> bytes:
        """Download an entry's image; FirmwareIntegrityError on a size or SHA-256 mismatch."""
        from urllib.parse import quote  # noqa: PLC0415

        if not IMAGE_NAME_RE.fullmatch(entry.image_name):
            raise bad_catalogue(f"invalid image file name {entry.image_name!r}")
        url = f"{self._base_url}/images/{quote(entry.image_name, safe='')}"
        image = await self._get(url, entry.manifest.size, self.IMAGE_TIMEOUT)
        check_image(entry.manifest, image)
        return image

    async def latest_for(self, part: FirmwarePart) -> CatalogueEntry | None:
        """Newest entry for ``part``: highest security version, then highest version (§10.2)."""
        candidates = [e for e in await self.fetch_catalogue() if e.manifest.part is part]
        if not candidates:
            return None
        return max(
            candidates,
            key=lambda e: (e.manifest.security_version, version_key(e.manifest.version)),
        )
