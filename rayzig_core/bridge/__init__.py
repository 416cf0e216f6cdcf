"""The network bridge: TCP clients on the network ⇄ one gateway on the I2C bus (PROTOCOL.md §11.2).

Runs on the single-board computer wired to the gateway. Every TCP client gets a **link channel** of
its own (1..15, PROTOCOL.md §11.2; channel 0 stays free for a client on the SBC itself, such as Home
Assistant using I2C directly) and its own transport on that channel, made by a
``connector_for(channel)`` factory (an :class:`~rayzig_core.transport.i2c.I2CConnector` in the
field). Frames go both ways unchanged: each length-prefixed TCP frame (§2.2) becomes one link frame
(§11) and back. Every I2C transport takes the bus's fair (first come, first served) lock for each
transaction, so busy clients take turns on the one bus.

**The bridge can read nothing.** The Noise session runs end to end between each client and the
gateway; the bridge holds no key and this package imports no session, Noise or message code (only
frames, errors and transports): it checks a frame's length, never its content. A compromised bridge
can delay, drop or cut sessions, but cannot read, alter or forge one (the AEAD would fail and the
session close). The one exception is :func:`identify_gateway`, run once at start on a spare
channel: a first-contact (XX) handshake that enrols nothing, to learn the gateway's serial and
static-key fingerprint for the zeroconf advertisement
(:class:`~rayzig_core.zeroconf_advertiser.ZeroconfAdvertiser`, service ``_rayzig._tcp.local.``,
TXT ``serial``, ``fingerprint``, ``version``). It imports the client lazily, inside the function.

Connection hygiene (PROTOCOL.md §2.2, §3.2): a client is *pending* until its frame kinds show an
authenticated session (:mod:`.guard`); pending ones share a small pool whose oldest member a
newcomer pushes out, and every connection has deadlines (login grace, half-sent frame, idle), so
silent or stalled sockets cannot lock real clients out.

Failures stay local: a client that vanishes (even in the middle of a frame: the partial frame is
dropped, never forwarded), sends a bad length or stops reading loses only its own link and channel;
a gateway link error closes only the affected client. :meth:`Bridge.stop` cancels every client and
joins every transport (and so every I2C worker thread).

The modules: :mod:`.forwarder` (the TCP server, :class:`Bridge`), :mod:`.channel` (one client on
its link channel: forwarding both ways, clean-up, channel reset), :mod:`.guard` (what the frames
show of a client's authentication) and :mod:`.runner`
(:func:`run_bridge`: identify, listen, advertise). The advertiser lives in
:mod:`rayzig_core.zeroconf_advertiser`, for any gateway endpoint.
"""

from rayzig_core.bridge.channel import BridgeClient, release_channel
from rayzig_core.bridge.forwarder import (
    CLIENT_CHANNELS,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PENDING,
    DEFAULT_PORT,
    Bridge,
)
from rayzig_core.bridge.guard import ClientGuard, SessionWatch
from rayzig_core.bridge.runner import (
    IDENTIFY_CHANNEL,
    BridgeConfig,
    IdentifyError,
    identify_gateway,
    parse_listen,
    run_bridge,
)
from rayzig_core.zeroconf_advertiser import (
    SERVICE_TYPE,
    GatewayAdvert,
    ZeroconfAdvertiser,
    advertised_addresses,
)

__all__ = [
    "CLIENT_CHANNELS",
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_PORT",
    "IDENTIFY_CHANNEL",
    "SERVICE_TYPE",
    "Bridge",
    "BridgeClient",
    "BridgeConfig",
    "ClientGuard",
    "GatewayAdvert",
    "IdentifyError",
    "SessionWatch",
    "ZeroconfAdvertiser",
    "advertised_addresses",
    "identify_gateway",
    "parse_listen",
    "release_channel",
    "run_bridge",
]
