"""Running a bridge (``rayzig bridge``): identify the gateway, listen, advertise, stop cleanly.

The one session the bridge runs of its own is :func:`identify_gateway`, once at start on a spare
channel: a first-contact (XX) handshake that enrols nothing, to learn the gateway's serial and
static-key fingerprint for the zeroconf advertisement. It imports the client lazily, inside the
function, so forwarding loads no session code.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from rayzig_core.admission import AdmissionPolicy
from rayzig_core.bridge.channel import release_channel
from rayzig_core.bridge.forwarder import CLIENT_CHANNELS, DEFAULT_MAX_CLIENTS, DEFAULT_PORT, Bridge
from rayzig_core.errors import RayzigError
from rayzig_core.transport.base import Connector
from rayzig_core.zeroconf_advertiser import GatewayAdvert, ZeroconfAdvertiser, advertised_addresses

_LOGGER = logging.getLogger(__name__)

IDENTIFY_CHANNEL = CLIENT_CHANNELS[-1]
"""Channel of the one identification session at start, before any client is accepted."""
IDENTIFY_TIMEOUT = 15.0


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[IPv6]:PORT``, ``:PORT`` for every address); ValueError if bad."""
    match = re.fullmatch(r"\[([^\]]*)\]:(\d+)|([^:\[\]]*):(\d+)", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 0.0.0.0:7780 or [::]:7780)")
    host = match[1] if match[1] is not None else match[3]
    port = int(match[2] or match[4])
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return host or "0.0.0.0", port  # noqa: S104 - a bridge serves the network by design


async def identify_gateway(
    connector: Connector, *, request_timeout: float = IDENTIFY_TIMEOUT
) -> GatewayAdvert:
    """First contact (an XX handshake that enrols nothing): the gateway's serial and fingerprint.

    The only place the bridge runs a session of its own; its keys are ephemeral and it never sees
    another session's. Raises the client's errors (TransportError and kin, RequestTimeoutError).
    """
    from rayzig_core.client import RayzigClient  # noqa: PLC0415 - forwarding loads no session code

    client = RayzigClient(connector, client_name="rayzig-bridge", request_timeout=request_timeout)
    try:
        identity = await client.identify()
    finally:
        await client.close()
    return GatewayAdvert(identity.serial, identity.fingerprint, identity.protocol_version)


@dataclass(slots=True)
class BridgeConfig:
    """Everything ``rayzig bridge`` needs (see :func:`run_bridge`)."""

    connector_for: Callable[[int], Connector]
    host: str = "0.0.0.0"  # noqa: S104 - a bridge serves the network by design
    port: int = DEFAULT_PORT
    max_clients: int = DEFAULT_MAX_CLIENTS
    zeroconf: bool = True
    zeroconf_interfaces: Sequence[str] | None = None
    identify_timeout: float = IDENTIFY_TIMEOUT
    admission: AdmissionPolicy | None = None
    """Deadlines and the pending pool (None: the bridge's defaults, PROTOCOL.md §3.2)."""


class IdentifyError(RayzigError):
    """The gateway could not be identified at start (nothing answers, or not a gateway)."""


async def run_bridge(
    config: BridgeConfig,
    *,
    wait: Callable[[], Awaitable[object]],
    on_ready: Callable[[Bridge, GatewayAdvert, ZeroconfAdvertiser | None], None] | None = None,
) -> Bridge:
    """Identify the gateway, listen, advertise, run until ``wait()`` returns, then stop cleanly.

    Raises :class:`IdentifyError` if the gateway cannot be identified, OSError if the address
    cannot be listened on. Returns the stopped bridge (its counters).
    """
    identify_connector = config.connector_for(IDENTIFY_CHANNEL)
    try:
        async with asyncio.timeout(config.identify_timeout):
            advert = await identify_gateway(
                identify_connector, request_timeout=config.identify_timeout
            )
    except TimeoutError as err:
        raise IdentifyError(
            f"The gateway at {identify_connector.description} did not complete a handshake "
            f"within {config.identify_timeout:.0f} s."
        ) from err
    except RayzigError as err:
        raise IdentifyError(
            f"Cannot identify the gateway at {identify_connector.description}: {err}"
        ) from err
    await release_channel(identify_connector)
    _LOGGER.info(
        "Gateway %s, fingerprint %s, protocol version %d",
        advert.serial,
        advert.fingerprint,
        advert.protocol_version,
    )
    bridge = Bridge(
        config.connector_for,
        host=config.host,
        port=config.port,
        max_clients=config.max_clients,
        admission=config.admission,
    )
    await bridge.start()
    advertiser: ZeroconfAdvertiser | None = None
    try:
        if config.zeroconf:
            advertiser = ZeroconfAdvertiser(
                advert,
                port=bridge.port,
                addresses=advertised_addresses(config.host, config.zeroconf_interfaces),
                interfaces=config.zeroconf_interfaces,
            )
            try:
                await advertiser.start()
            except (OSError, ValueError) as err:
                # The bridge works without it: clients can still be given the address by hand.
                _LOGGER.warning("Zeroconf advertisement failed (%s); serving without it", err)
                advertiser = None
        if on_ready is not None:
            on_ready(bridge, advert, advertiser)
        await wait()
    finally:
        if advertiser is not None:
            await advertiser.stop()
        await bridge.stop()
    return bridge
