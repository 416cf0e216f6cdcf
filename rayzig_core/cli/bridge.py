"""``rayzig bridge``: forward encrypted frames between TCP clients and the I2C gateway.

The bridge holds no key and reads nothing (docs/CLI.md, bridge): each client gets a link channel
of its own (PROTOCOL.md §11.2). This module loads the bridge and the I2C transport, not the
session code.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from rayzig_core.admission import AdmissionPolicy
from rayzig_core.bridge import (
    CLIENT_CHANNELS,
    Bridge,
    BridgeConfig,
    GatewayAdvert,
    IdentifyError,
    ZeroconfAdvertiser,
    run_bridge,
)
from rayzig_core.cli.errors import EXIT_CONNECT, EXIT_OK, CliError
from rayzig_core.cli.output import Out
from rayzig_core.cli.signals import wait_for_stop
from rayzig_core.cli.spec import handler
from rayzig_core.transport.base import Connector
from rayzig_core.transport.i2c import I2CConnector


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    """The gateway's bus and address, where to listen, how many clients, zeroconf.

    ``--fake-i2c`` and ``--i2c-clock`` are the dispatcher's: they put a simulated bus under the
    command (see fake_bus.py).
    """

    i2c_bus: int | None
    address: int | None
    listen: tuple[str, int]
    max_clients: int
    no_zeroconf: bool
    zeroconf_interface: list[str] | None
    run_for: float | None
    login_grace: float
    max_pending: int
    frame_timeout: float
    idle_timeout: float | None


@handler(BridgeOptions)
def bridge(options: BridgeOptions, out: Out) -> Coroutine[Any, Any, int]:
    """Forward frames between TCP clients and the I2C gateway until Ctrl-C or SIGTERM."""
    bus, address = options.i2c_bus, options.address
    if bus is None or address is None:
        raise CliError(
            "Give the gateway's --i2c-bus and --address (e.g. --i2c-bus 1 --address 0x42)."
        )
    host, port = options.listen
    if options.max_clients + options.max_pending > len(CLIENT_CHANNELS):
        raise CliError(
            f"--max-clients {options.max_clients} and --max-pending {options.max_pending} add up "
            f"to more than the {len(CLIENT_CHANNELS)} link channels; lower one of them."
        )

    def connector_for(channel: int) -> Connector:
        return I2CConnector(bus, address, channel=channel)

    config = BridgeConfig(
        connector_for,
        host=host,
        port=port,
        max_clients=options.max_clients,
        zeroconf=not options.no_zeroconf,
        zeroconf_interfaces=options.zeroconf_interface,
        admission=AdmissionPolicy(
            login_grace=options.login_grace,
            frame_timeout=options.frame_timeout,
            idle_timeout=options.idle_timeout,
            max_pending=options.max_pending,
        ),
    )
    return _run_bridge(config, out, options.run_for)


async def _run_bridge(config: BridgeConfig, out: Out, run_for: float | None) -> int:
    """Identify the gateway, listen and advertise, then forward until stopped."""

    def ready(bridge: Bridge, advert: GatewayAdvert, advertiser: ZeroconfAdvertiser | None) -> None:
        announced = advertiser.name if advertiser is not None else None
        out.result(
            {
                "event": "listening",
                "host": bridge.host,
                "port": bridge.port,
                "serial": advert.serial,
                "fingerprint": advert.fingerprint,
                "protocol_version": advert.protocol_version,
                "max_clients": bridge.max_clients,
                "max_pending": bridge.max_pending,
                "zeroconf": announced,
            },
            f"Rayzig bridge for gateway {advert.serial} listening on {bridge.host}:{bridge.port} "
            f"(at most {bridge.max_clients} clients"
            + (f"; announced as {announced!r}" if announced else "; not announced")
            + f").\nFingerprint {advert.fingerprint}. Press Ctrl-C to stop.",
        )

    try:
        running = await run_bridge(config, wait=lambda: wait_for_stop(run_for), on_ready=ready)
    except IdentifyError as err:
        raise CliError(str(err), EXIT_CONNECT) from None
    except OSError as err:
        raise CliError(
            str(err) if err.strerror else f"Cannot listen: {err}", EXIT_CONNECT
        ) from None
    if out.json:
        out.record({"event": "stopped", "clients_served": running.accepted}, "")
    else:
        served = running.accepted
        Out.note(f"Bridge stopped; it served {served} connection{'' if served == 1 else 's'}.")
    return EXIT_OK
