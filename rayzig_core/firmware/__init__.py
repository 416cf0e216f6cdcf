"""Signed software updates: manifests, catalogues, the update server and its client (§10).

Callers import every name from here (``from rayzig_core.firmware import install_firmware``):

- :mod:`~rayzig_core.firmware.manifest`: manifests, Ed25519 signatures, keys, CRC-32 (§10.2);
- :mod:`~rayzig_core.firmware.advisory`: security advisories and their signatures (§10.2);
- :mod:`~rayzig_core.firmware.catalogue`: ``catalogue.json``, read and verified (§10.2);
- :mod:`~rayzig_core.firmware.publish`: signing images and advisories into a catalogue directory;
- :mod:`~rayzig_core.firmware.client`: :class:`UpdateServerClient`, over aiohttp;
- :mod:`~rayzig_core.firmware.install`: the resumable chunked install (§10.3, §10.4);
- :mod:`~rayzig_core.firmware.server`: the small HTTP update server.

Importing this package imports neither asyncio nor aiohttp (the gateway's firmware store and the
CLI's signing commands need neither): :func:`serve` and :func:`make_app` load the server, and with
it aiohttp, when they are first asked for, and the client imports aiohttp when it first fetches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rayzig_core.firmware.advisory import (
    ADVISORY_DOMAIN,
    MAX_ADVISORY_BYTES,
    AdvisorySeverity,
    FirmwareAdvisory,
    SignedAdvisory,
    VersionRange,
    affecting,
    parse_version_range,
    sign_advisory,
    verify_advisory,
)
from rayzig_core.firmware.catalogue import (
    CATALOGUE_FILE,
    CATALOGUE_FORMAT,
    MAX_CATALOGUE_BYTES,
    Catalogue,
    CatalogueEntry,
    image_file_name,
    parse_catalogue,
    verify_catalogue,
)
from rayzig_core.firmware.client import UpdateServerClient
from rayzig_core.firmware.install import (
    CHUNK_SIZE,
    PART_NAMES,
    ProgressCallback,
    install_disruption,
    install_firmware,
)
from rayzig_core.firmware.manifest import (
    KEY_SIZE,
    MANIFEST_DOMAIN,
    MAX_IMAGE_SIZE,
    MAX_MANIFEST_BYTES,
    SHA256_SIZE,
    SIGNATURE_SIZE,
    FirmwareManifest,
    SignedManifest,
    build_manifest,
    check_image,
    crc32,
    generate_signing_key,
    public_key_of,
    sign_manifest,
    verify_manifest,
    version_key,
)
from rayzig_core.firmware.publish import publish_advisory, publish_image, withdraw_advisory

if TYPE_CHECKING:
    from rayzig_core.firmware.server import make_app, serve
else:
    _SERVER_NAMES = frozenset({"make_app", "serve"})

    def __getattr__(name: str) -> object:
        """Load the update server (and aiohttp) only when one of its names is asked for."""
        if name in _SERVER_NAMES:
            from rayzig_core.firmware import server  # noqa: PLC0415 - aiohttp only on demand

            return getattr(server, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ADVISORY_DOMAIN",
    "CATALOGUE_FILE",
    "CATALOGUE_FORMAT",
    "CHUNK_SIZE",
    "KEY_SIZE",
    "MANIFEST_DOMAIN",
    "MAX_ADVISORY_BYTES",
    "MAX_CATALOGUE_BYTES",
    "MAX_IMAGE_SIZE",
    "MAX_MANIFEST_BYTES",
    "PART_NAMES",
    "SHA256_SIZE",
    "SIGNATURE_SIZE",
    "AdvisorySeverity",
    "Catalogue",
    "CatalogueEntry",
    "FirmwareAdvisory",
    "FirmwareManifest",
    "ProgressCallback",
    "SignedAdvisory",
    "SignedManifest",
    "UpdateServerClient",
    "VersionRange",
    "affecting",
    "build_manifest",
    "check_image",
    "crc32",
    "generate_signing_key",
    "image_file_name",
    "install_disruption",
    "install_firmware",
    "make_app",
    "parse_catalogue",
    "parse_version_range",
    "public_key_of",
    "publish_advisory",
    "publish_image",
    "serve",
    "sign_advisory",
    "sign_manifest",
    "verify_advisory",
    "verify_catalogue",
    "verify_manifest",
    "version_key",
    "withdraw_advisory",
]
