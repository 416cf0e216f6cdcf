"""I2C link layer (PROTOCOL.md §11): frames in CRC-checked chunks between an SBC and a gateway MCU.

Sans-I/O: no asyncio, no smbus2, no clocks. Both ends are plain state machines:

* :class:`I2CHostLink` (:mod:`.host`; the SBC, I2C master) says which transaction to perform next
  and interprets what was read back or that the bus failed.
* :class:`I2CSlaveLink` (:mod:`.device`; the gateway, I2C slave) consumes master writes and answers
  master reads without ever stretching the clock: when it cannot answer it says BUSY (§11.5).
* :mod:`.wire` builds and reads every message of both: constants, CRC-16/CCITT-FALSE, HELLO,
  control writes, chunks and status blocks, as pure functions.

Every transaction is one write (a command) followed, after a repeated start, by one read (the
reply); on Linux that is one ``I2C_RDWR`` call with two messages (§11.2). Frames stay opaque: the
link never looks inside them, it only cuts them into chunks of the negotiated size (§11.4) and puts
them back together, exactly once and in order (§11.7, §11.8).

One gateway serves up to 16 independent **link channels** (§11.2): the high nibble of every command
byte names the channel, each channel has its own sequence numbers, queues, chunk cache and chunk
size, and a HELLO resets only its own channel. A direct host uses channel 0; the network bridge
gives each TCP client a channel of its own.
"""

from rayzig_core.protocol.link.device import I2CSlaveLink, SlaveLinkStats
from rayzig_core.protocol.link.host import (
    HostLinkStats,
    I2CHostLink,
    I2CLinkError,
    I2CLinkResetError,
    Op,
    Outcome,
    Transaction,
)
from rayzig_core.protocol.link.wire import (
    CHANNELS,
    CHUNK_HEADER_LEN,
    CHUNK_OVERHEAD,
    CHUNK_SIZES,
    CONTROL_LEN,
    CRC_LEN,
    FLOATING,
    HELLO_ACK_LEN,
    HELLO_LEN,
    LINK_VERSION,
    MAX_CHUNK,
    MIN_CHUNK,
    SEQ_MOD,
    STATUS_LEN,
    ChunkFlags,
    Command,
    Reply,
    StatusFlags,
    check_channel,
    crc16_ccitt,
    payload_per_chunk,
)

__all__ = [
    "CHANNELS",
    "CHUNK_HEADER_LEN",
    "CHUNK_OVERHEAD",
    "CHUNK_SIZES",
    "CONTROL_LEN",
    "CRC_LEN",
    "FLOATING",
    "HELLO_ACK_LEN",
    "HELLO_LEN",
    "LINK_VERSION",
    "MAX_CHUNK",
    "MIN_CHUNK",
    "SEQ_MOD",
    "STATUS_LEN",
    "ChunkFlags",
    "Command",
    "HostLinkStats",
    "I2CHostLink",
    "I2CLinkError",
    "I2CLinkResetError",
    "I2CSlaveLink",
    "Op",
    "Outcome",
    "Reply",
    "SlaveLinkStats",
    "StatusFlags",
    "Transaction",
    "check_channel",
    "crc16_ccitt",
    "payload_per_chunk",
]
