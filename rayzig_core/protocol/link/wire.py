"""The I2C link's wire format (PROTOCOL.md §11.2-§11.5): every message's bytes, as pure functions.

Both ends build and read their messages here, so the host (:mod:`.host`) and the gateway
(:mod:`.device`) cannot drift apart. Decoders raise :class:`MalformedMessage` when a message fails
its CRC, length or field checks; the receiver then discards it (§11.8). Nothing here keeps state.
The message records are plain (not frozen) slotted dataclasses: several are built for every
transaction, and a frozen one costs about four times as much to build.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from enum import IntEnum, IntFlag

LINK_VERSION = 1
"""Version byte exchanged in HELLO (§11.4)."""
MIN_CHUNK = 32
"""Smallest chunk size; also the size every message must fit before negotiation (§11.4)."""
MAX_CHUNK = 256
"""Largest chunk size a link may negotiate (§11.4)."""
CHUNK_SIZES = (32, 64, 128, 256)
"""The negotiable chunk sizes: powers of two, sent as their base-2 exponent (5..8)."""

CRC_LEN = 2
CHUNK_HEADER_LEN = 6
"""PUT: cmd ack seq index flags len. CHUNK reply: type epoch seq index flags len (§11.3)."""
CHUNK_OVERHEAD = CHUNK_HEADER_LEN + CRC_LEN
"""Bytes of a chunk message that are not payload; payload per chunk = chunk size - 8."""
CONTROL_LEN = 4
"""Length of a STATUS or GET write: cmd, ack, CRC (§11.3)."""
HELLO_LEN = 5
"""Length of a HELLO write: cmd, version, size exponent, CRC (§11.4)."""
HELLO_ACK_LEN = 8
"""Length of a HELLO_ACK: type, version, slave exponent, chosen exponent, epoch, flags, CRC."""
STATUS_LEN = 11
"""Length of a status block (§11.5)."""
HELLO_READ_LEN = max(HELLO_ACK_LEN, STATUS_LEN)
"""Bytes the host reads after HELLO: a HELLO_ACK, or a status block if the write was rejected."""
SEQ_MOD = 256
CHANNELS = 16
"""Link channels per gateway (§11.2): the channel is the high nibble of every command byte."""
CHANNEL_SHIFT = 4
LOW_NIBBLE = 0x0F
FLOATING = 0xFF
"""What a read returns when the slave has loaded nothing (pull-ups); treated as BUSY (§11.5)."""
_MIN_CODE, _MAX_CODE = 5, 8
"""Valid chunk-size exponents (32..256)."""


class Command(IntEnum):
    """Low nibble of every command byte (the high nibble is the channel, §11.2)."""

    HELLO = 0x01
    STATUS = 0x02
    PUT = 0x03
    GET = 0x04


class Reply(IntEnum):
    """First byte of every slave reply: the status byte (§11.5)."""

    BUSY = 0x00
    """Nothing was done; poll again later (0xFF, an unloaded transmit register, means the same)."""
    IDLE = 0x01
    """Status block: the gateway has nothing to send."""
    RESPONSE_READY = 0x02
    """Status block: a frame (+ its length) is ready to be read."""
    NOTIFY_PENDING = 0x03
    """Status block: an unsolicited frame (a notification) is ready to be read."""
    CHUNK = 0x04
    """A chunk of a gateway→host frame (reply to GET)."""
    HELLO_ACK = 0x05
    """Answer to HELLO with the negotiated chunk size and the link epoch."""


STATUS_CODES = frozenset({Reply.IDLE, Reply.RESPONSE_READY, Reply.NOTIFY_PENDING})
"""Status bytes that begin a status block (§11.5)."""
READY_CODES = frozenset({Reply.RESPONSE_READY, Reply.NOTIFY_PENDING})
"""Status bytes that announce a gateway→host frame (§11.5)."""


class ChunkFlags(IntFlag):
    """Low nibble of the flags byte of a chunk header; the high nibble is the channel (§11.2)."""

    LAST = 0x01
    """This chunk ends its frame."""
    NOTIFY = 0x02
    """Gateway→host only: the frame is a notification (informational)."""
    MORE = 0x04
    """Gateway→host only, with LAST: another frame was queued behind this one."""


class StatusFlags(IntFlag):
    """Low nibble of the flags byte of a status block and of HELLO_ACK (§11.5).

    The high nibble of that byte is the channel the reply belongs to (§11.2).
    """

    LINKED = 0x01
    """A HELLO was accepted on this channel since the gateway booted, and the gateway has not
    ended the channel's link since (§11.9)."""
    WRITE_ERROR = 0x02
    """The write of this transaction was rejected (bad CRC, malformed, out of sequence)."""


class MalformedMessage(Exception):  # noqa: N818 - internal control flow, never leaves the link
    """A link message failed its CRC, length or field checks: discard it (§11.8)."""


# --- CRC-16/CCITT-FALSE (§11.3) -----------------------------------------------------------


def crc16_ccitt(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR; §11.3).

    ``crc16_ccitt(b"123456789") == 0x29B1``. ``crc`` continues an earlier computation.
    :func:`binascii.crc_hqx` is this very CRC (MSB first, poly 0x1021, no final XOR) with the
    initial value as its second argument, computed in C: a chunk's CRC costs about a
    microsecond instead of tens of microseconds for a table loop in Python.
    """
    return binascii.crc_hqx(data, crc & 0xFFFF)


def seal(body: bytes | bytearray) -> bytes:
    """Append the big-endian CRC of ``body`` (§11.3)."""
    return bytes(body) + crc16_ccitt(body).to_bytes(CRC_LEN, "big")


def crc_ok(message: bytes, end: int) -> bool:
    """Whether ``message[end:end+2]`` is the CRC of ``message[:end]`` (§11.3)."""
    return crc16_ccitt(message[:end]) == int.from_bytes(message[end : end + CRC_LEN], "big")


# --- sizes and channels ---------------------------------------------------------------------


def size_code(size: int) -> int:
    """Return the base-2 exponent that stands for chunk size ``size`` in HELLO (§11.4)."""
    if size not in CHUNK_SIZES:
        raise ValueError(f"chunk size {size} is not one of {CHUNK_SIZES}")
    return size.bit_length() - 1


def valid_code(code: int) -> bool:
    """Whether ``code`` is a chunk-size exponent a link may negotiate (5..8, §11.4)."""
    return _MIN_CODE <= code <= _MAX_CODE


def check_channel(channel: int) -> int:
    """Return ``channel`` if it is a valid link channel (0..15), else raise ValueError."""
    if not isinstance(channel, int) or not 0 <= channel < CHANNELS:
        raise ValueError(f"I2C link channel must be 0..{CHANNELS - 1}, not {channel!r}")
    return channel


def payload_per_chunk(chunk_size: int) -> int:
    """Frame bytes carried by one chunk message of ``chunk_size`` bytes (§11.3)."""
    return chunk_size - CHUNK_OVERHEAD


def chunk_payload_len(frame_len: int, offset: int, chunk_size: int) -> int:
    """Payload bytes of the chunk starting at ``offset`` of a ``frame_len``-byte frame (§11.3)."""
    return min(payload_per_chunk(chunk_size), frame_len - offset)


def get_read_len(payload_len: int) -> int:
    """Bytes the host reads after GET for a chunk of ``payload_len`` bytes (§11.2)."""
    return max(CHUNK_OVERHEAD + payload_len, STATUS_LEN)


def command_byte(channel: int, command: Command) -> int:
    """The first byte of a write: ``channel`` in the high nibble, ``command`` in the low (§11.2)."""
    return (channel << CHANNEL_SHIFT) | command


def split_command(byte: int) -> tuple[int, int]:
    """Return the (channel, command code) a command byte names (§11.2)."""
    return byte >> CHANNEL_SHIFT, byte & LOW_NIBBLE


def write_crc_ok(write: bytes) -> bool:
    """Whether a write ends with the CRC of the rest (the gateway checks writes whole, §11.5)."""
    return len(write) > CRC_LEN and crc_ok(write, len(write) - CRC_LEN)


def write_ack(write: bytes) -> int:
    """The ``ack`` byte of a STATUS, GET or PUT write: the last gateway→host chunk accepted."""
    return write[1]


# --- host → gateway writes (§11.2, §11.4, §11.6) ------------------------------------------


def encode_hello(channel: int, code: int) -> bytes:
    """HELLO on ``channel``, offering chunk sizes up to ``2**code`` (§11.4)."""
    return seal(bytes((command_byte(channel, Command.HELLO), LINK_VERSION, code)))


def decode_hello(write: bytes) -> tuple[int, int]:
    """Return the (version, size exponent) of a HELLO write, whose CRC was checked (§11.4)."""
    if len(write) != HELLO_LEN or not valid_code(write[2]):
        raise MalformedMessage("malformed HELLO")
    return write[1], write[2]


def encode_control(channel: int, command: Command, ack: int) -> bytes:
    """A STATUS or GET write on ``channel`` acknowledging gateway→host chunk ``ack`` (§11.2)."""
    return seal(bytes((command_byte(channel, command), ack)))


@dataclass(slots=True)
class Chunk:
    """One chunk message without its channel and first two bytes (§11.3)."""

    seq: int
    index: int
    flags: int
    """The :class:`ChunkFlags` bits (low nibble of the flags byte)."""
    payload: bytes


@dataclass(slots=True)
class Put:
    """A PUT write (§11.6): one chunk of a host→gateway frame, and the host's ``ack``."""

    channel: int
    ack: int
    chunk: Chunk

    def encode(self) -> bytes:
        """Return the PUT's bytes (the flags byte's high nibble is 0, §11.3)."""
        head = command_byte(self.channel, Command.PUT)
        return _chunk_message(head, self.ack, self.chunk, self.chunk.flags)


def decode_put(write: bytes) -> Put:
    """Decode a PUT write of exactly one non-empty chunk, whose CRC was checked (§11.6)."""
    chunk = _decode_chunk(write, "PUT", crc_checked=True)
    if not chunk.payload or len(write) != CHUNK_OVERHEAD + len(chunk.payload):
        raise MalformedMessage("PUT of the wrong length")
    return Put(write[0] >> CHANNEL_SHIFT, write_ack(write), chunk)


# --- gateway → host replies (§11.3-§11.5) -------------------------------------------------


def flags_byte(channel: int, flags: int) -> int:
    """A reply's flags byte: ``channel`` in the high nibble, ``flags`` in the low (§11.2)."""
    return (channel << CHANNEL_SHIFT) | int(flags)  # int(): an IntFlag operand is 20x slower


@dataclass(slots=True)
class HelloAck:
    """The answer to HELLO (§11.4): the gateway's maximum, the chosen size and the link epoch."""

    version: int
    gateway_code: int
    chosen: int
    """The negotiated size exponent; 0 when the link versions differ."""
    epoch: int
    channel: int
    flags: int
    """The :class:`StatusFlags` bits (low nibble of the flags byte)."""

    def encode(self) -> bytes:
        """Return the HELLO_ACK's bytes."""
        flags = flags_byte(self.channel, self.flags)
        return seal(
            bytes(
                (Reply.HELLO_ACK, self.version, self.gateway_code, self.chosen, self.epoch, flags)
            )
        )


def decode_hello_ack(reply: bytes) -> HelloAck:
    """Decode a HELLO_ACK read (read padding after its CRC is ignored, §11.4)."""
    if len(reply) < HELLO_ACK_LEN:
        raise MalformedMessage("unexpected or short HELLO_ACK")
    if not crc_ok(reply, HELLO_ACK_LEN - CRC_LEN):
        raise MalformedMessage("CRC mismatch in HELLO_ACK")
    version, gateway_code, chosen, epoch, flags = reply[1:6]
    return HelloAck(
        version,
        gateway_code,
        chosen,
        epoch,
        flags >> CHANNEL_SHIFT,
        flags & LOW_NIBBLE,
    )


@dataclass(slots=True)
class StatusBlock:
    """The 11-byte status block (§11.5); every field but the epoch is about ``channel``."""

    code: Reply
    """IDLE, RESPONSE_READY or NOTIFY_PENDING."""
    epoch: int
    channel: int
    flags: int
    """The :class:`StatusFlags` bits (low nibble of the flags byte)."""
    h2g_ack: int
    """``seq`` of the last host→gateway chunk accepted."""
    g2h_seq: int
    """``seq`` of the gateway's current outbound chunk."""
    g2h_index: int
    """Its index within its frame."""
    frame_len: int
    """Length of the frame being sent (0 when IDLE)."""
    queued: int
    """Frames queued on the channel (sent saturated at 255)."""

    def encode(self) -> bytes:
        """Return the status block's bytes."""
        flags = flags_byte(self.channel, self.flags)
        head = (self.code, self.epoch, flags, self.h2g_ack, self.g2h_seq, self.g2h_index)
        body = bytes(head) + self.frame_len.to_bytes(2, "big") + bytes((min(self.queued, 255),))
        return seal(body)


def decode_status(reply: bytes) -> StatusBlock:
    """Decode a status block read (read padding after its CRC is ignored, §11.5)."""
    if len(reply) < STATUS_LEN:
        raise MalformedMessage("short status block")
    if not crc_ok(reply, STATUS_LEN - CRC_LEN):
        raise MalformedMessage("CRC mismatch in status block")
    if reply[0] not in STATUS_CODES:
        raise MalformedMessage(f"status block with status byte 0x{reply[0]:02x}")
    code, epoch, flags, h2g_ack, g2h_seq, g2h_index = reply[:6]
    return StatusBlock(
        Reply(code),
        epoch,
        flags >> CHANNEL_SHIFT,
        flags & LOW_NIBBLE,
        h2g_ack,
        g2h_seq,
        g2h_index,
        int.from_bytes(reply[6:8], "big"),
        reply[8],
    )


@dataclass(slots=True)
class ChunkReply:
    """A CHUNK reply to GET (§11.7): one chunk of a gateway→host frame on ``channel``."""

    epoch: int
    channel: int
    chunk: Chunk

    def encode(self) -> bytes:
        """Return the CHUNK reply's bytes."""
        flags = flags_byte(self.channel, self.chunk.flags)
        return _chunk_message(Reply.CHUNK, self.epoch, self.chunk, flags)


def decode_chunk_reply(reply: bytes) -> ChunkReply:
    """Decode a CHUNK read (read padding after its CRC is ignored, §11.7)."""
    chunk = _decode_chunk(reply, "chunk", crc_checked=False)
    return ChunkReply(reply[1], reply[4] >> CHANNEL_SHIFT, chunk)


# --- the chunk message both directions share (§11.3) --------------------------------------


def _chunk_message(first: int, second: int, chunk: Chunk, flags: int) -> bytes:
    header = (first, second, chunk.seq, chunk.index, flags, len(chunk.payload))
    return seal(bytes(header) + chunk.payload)


def _decode_chunk(message: bytes, what: str, *, crc_checked: bool) -> Chunk:
    if len(message) < CHUNK_OVERHEAD:
        raise MalformedMessage(f"unexpected or short {what}")
    seq, index, flags, length = message[2:CHUNK_HEADER_LEN]
    end = CHUNK_HEADER_LEN + length
    if end + CRC_LEN > len(message):
        raise MalformedMessage(f"short read of a {what}")
    if not crc_checked and not crc_ok(message, end):
        raise MalformedMessage(f"CRC mismatch in {what}")
    return Chunk(seq, index, flags & LOW_NIBBLE, message[CHUNK_HEADER_LEN:end])
