"""Announcing a Rayzig gateway endpoint on the local network over zeroconf (mDNS/DNS-SD).

Whatever serves the gateway over TCP (the network bridge, or a virtual gateway) registers
``_rayzig._tcp.local.`` with the gateway's public identity in the TXT record (``serial``,
``fingerprint``, ``version``): the Home Assistant integration browses for that service and pins the
fingerprint it learns. Nothing announced is secret. ``zeroconf`` and ``ifaddr`` are imported only
when announcing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_rayzig._tcp.local."
"""The zeroconf service type of a gateway endpoint (the Home Assistant integration browses it)."""
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names of "every address"


@dataclass(frozen=True, slots=True)
class GatewayAdvert:
    """What is announced about a gateway (all of it public)."""

    serial: str
    fingerprint: str
    protocol_version: int

    def txt(self) -> dict[str, str]:
        """Return the zeroconf TXT record (the keys the Home Assistant integration reads)."""
        return {
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "version": str(self.protocol_version),
        }


def advertised_addresses(listen_host: str, interfaces: Sequence[str] | None = None) -> list[str]:
    """Return the addresses to announce for a server listening on ``listen_host``.

    A specific listen address is announced alone. For a wildcard, the addresses of the chosen
    zeroconf interfaces (IP addresses), else every IPv4 address of the host but loopback (loopback
    only if there is nothing else).
    """
    if listen_host not in WILDCARD_HOSTS:
        return [listen_host]
    if interfaces:
        chosen = [name for name in interfaces if _is_ip(name)]
        if chosen:
            return chosen
    import ifaddr  # noqa: PLC0415 - zeroconf's own interface lister, only when advertising

    found = [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and _is_ip(str(ip.ip))
    ]
    outside = [a for a in found if not ipaddress.ip_address(a).is_loopback]
    return outside or found or ["127.0.0.1"]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ZeroconfAdvertiser:
    """Announces a gateway endpoint as ``_rayzig._tcp.local.`` with its serial and fingerprint.

    ``interfaces``: IP addresses of the interfaces to use (None: all, as a real SBC would).
    """

    def __init__(
        self,
        advert: GatewayAdvert,
        *,
        port: int,
        addresses: Sequence[str],
        interfaces: Sequence[str] | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("a zeroconf advertisement needs at least one address")
        self.advert = advert
        self.port = port
        self.addresses = list(addresses)
        self.interfaces = list(interfaces) if interfaces else None
        label = _dns_label(advert.serial)
        self.name = f"Rayzig {advert.serial}.{SERVICE_TYPE}"
        self.server = f"rayzig-{label}.local."
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def start(self) -> None:
        """Register the service (probing for a free name first)."""
        from zeroconf import InterfaceChoice, IPVersion  # noqa: PLC0415
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf  # noqa: PLC0415

        v6 = any(ipaddress.ip_address(a).version == 6 for a in self.addresses)
        interfaces: Any = self.interfaces if self.interfaces is not None else InterfaceChoice.All
        ip_version = IPVersion.All if v6 else IPVersion.V4Only
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            self.name,
            parsed_addresses=self.addresses,
            port=self.port,
            properties=self.advert.txt(),
            server=self.server,
        )
        zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=ip_version)
        try:
            await zeroconf.async_register_service(info, allow_name_change=True)
        except BaseException:
            await zeroconf.async_close()
            raise
        self._zeroconf, self._info = zeroconf, info
        self.name = info.name
        _LOGGER.info(
            "Announcing %s on %s port %d over zeroconf",
            self.name,
            ", ".join(self.addresses),
            self.port,
        )

    async def stop(self) -> None:
        """Withdraw the service (goodbye packets) and close zeroconf."""
        zeroconf, info = self._zeroconf, self._info
        self._zeroconf = self._info = None
        if zeroconf is None:
            return
        try:
            if info is not None:
                with contextlib.suppress(Exception):
                    # The goodbye packets go out in the task it returns: wait for them, or
                    # closing cancels them and browsers keep the service until its TTL ends.
                    await (await zeroconf.async_unregister_service(info))
        finally:
            await zeroconf.async_close()


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:50] or "gateway"
