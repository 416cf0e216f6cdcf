"""Client side of a firmware install: send a verified image in resumable chunks (§10.3, §10.4).

:func:`install_firmware` checks the image against its signed manifest, then sends
``FirmwareBegin`` (the gateway verifies the signature, hardware and anti-rollback, and answers with
how many bytes it already holds), one ``FirmwareChunk`` of at most :data:`CHUNK_SIZE` bytes with
its CRC-32 per request from that offset on, and ``FirmwareCommit`` (the gateway checks size and
SHA-256 before applying the image). The offset always comes from the gateway, so an interrupted
install resumes where the gateway stopped receiving, across reconnects, restarts of either side and
a fresh call of this function. :func:`install_disruption` says beforehand what an install
interrupts.

Importing this module does not import asyncio: the client is only named in annotations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rayzig_core.errors import FirmwareError, ProtocolError
from rayzig_core.firmware.manifest import check_image, crc32
from rayzig_core.models import FirmwarePart
from rayzig_core.protocol import messages as m

if TYPE_CHECKING:
    from rayzig_core.client import RayzigClient
    from rayzig_core.firmware.catalogue import CatalogueEntry
    from rayzig_core.models import FirmwareVersion

CHUNK_SIZE = 2048
"""Image bytes per FirmwareChunk: fits one protocol frame together with the message overhead."""

FIRMWARE_STATE = 14
"""Error code of a chunk that does not fit the gateway's install state (PROTOCOL.md §9)."""

MAX_RESYNCS = 3
"""How many times an install re-learns the gateway's offset after an out-of-order refusal."""

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(bytes_held_by_gateway, image_size)`` after every acknowledged step."""

PART_NAMES: dict[FirmwarePart, str] = {
    FirmwarePart.RAYZIG: "Rayzig",
    FirmwarePart.RAXMEGA: "Raxmega",
    FirmwarePart.RAYDAL: "Raydal",
    FirmwarePart.WBXMEGA: "WBxMega",
    FirmwarePart.TFT: "TFT",
}
"""How each firmware part is written for people."""

_INSTALL_DISRUPTION: dict[FirmwarePart, str] = {
    FirmwarePart.RAYZIG: (
        "Installing restarts the Rayzig radio: it rejoins the mesh, and until it has, modules "
        "cannot be switched or read. Outputs keep their state."
    ),
    FirmwarePart.TFT: (
        "Installing restarts the TFT display: it stays blank until the new firmware runs. "
        "Outputs keep their state."
    ),
}


def install_disruption(part: FirmwarePart) -> str:
    """What installing ``part`` interrupts, in English, told before installing (5.3-12)."""
    return _INSTALL_DISRUPTION.get(
        part,
        f"Installing restarts the {PART_NAMES[part]} part of the gateway: the gateway may not "
        "answer until it is back. Outputs keep their state.",
    )


async def _begin(client: RayzigClient, entry: CatalogueEntry) -> m.FirmwareProgress:
    response = await client.request(m.FirmwareBegin(entry.signed.manifest, entry.signed.signature))
    return _progress_response(response, entry, "FirmwareBegin")


def _progress_response(
    response: m.Response, entry: CatalogueEntry, what: str
) -> m.FirmwareProgress:
    manifest = entry.manifest
    if not isinstance(response, m.FirmwareProgress):
        raise ProtocolError(f"unexpected answer {type(response).__name__} to {what}")
    if (
        response.part is not manifest.part
        or response.size != manifest.size
        or not 0 <= response.offset <= manifest.size
    ):
        raise ProtocolError(
            f"gateway answered {what} with progress {response.offset}/{response.size} of part "
            f"{response.part.name.lower()}, which does not fit the image being installed"
        )
    return response


async def install_firmware(
    client: RayzigClient,
    entry: CatalogueEntry,
    image: bytes,
    progress: ProgressCallback | None = None,
) -> tuple[FirmwareVersion, ...]:
    """Install ``image`` (described by the verified catalogue ``entry``) on a connected gateway.

    Returns the gateway's installed versions after the commit. Raises FirmwareIntegrityError
    before sending anything if the image does not match its manifest; the gateway's refusals
    (FirmwareSignatureError, FirmwareIntegrityError, FirmwareRollbackError, PermissionDeniedError)
    and link errors propagate. Running firmware is left untouched by every failure; calling this
    again resumes from the offset the gateway holds.
    """
    manifest = entry.manifest
    check_image(manifest, image)
    part = manifest.part
    state = await _begin(client, entry)
    offset = state.offset
    resyncs = 0
    if progress is not None:
        progress(offset, manifest.size)
    while offset < manifest.size:
        chunk = image[offset : offset + CHUNK_SIZE]
        try:
            response = await client.request(m.FirmwareChunk(part, offset, chunk, crc32(chunk)))
        except FirmwareError as err:
            # Out of order: the gateway holds another amount (e.g. it restarted and lost the
            # acknowledgement). FirmwareBegin with the same manifest reports where to resume.
            if err.code != FIRMWARE_STATE or resyncs >= MAX_RESYNCS:
                raise
            resyncs += 1
            offset = (await _begin(client, entry)).offset
            continue
        state = _progress_response(response, entry, "FirmwareChunk")
        if state.offset <= offset:
            raise ProtocolError(
                f"gateway did not advance past offset {offset} after a firmware chunk"
            )
        offset = state.offset
        if progress is not None:
            progress(offset, manifest.size)
    response = await client.request(m.FirmwareCommit(part))
    if not isinstance(response, m.FirmwareList):
        raise ProtocolError(f"unexpected answer {type(response).__name__} to FirmwareCommit")
    return response.versions
