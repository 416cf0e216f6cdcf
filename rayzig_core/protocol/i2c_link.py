"""I2C link layer (PROTOCOL.md §11): frames in CRC-checked chunks between an SBC and a gateway MCU.

Sans-I/O: no asyncio, no smbus2, no clocks. Both ends are plain state machines:

* :class:`I2CHostLink` (the SBC, I2C master) says which transaction to perform next
  (:meth:`I2CHostLink.next_transaction`) and interprets what was read back
  (:meth:`I2CHostLink.handle_reply`) or that the bus failed (:meth:`I2CHostLink.handle_failure`).
* :class:`I2CSlaveLink` (the gateway, I2C slave) consumes master writes
  (:meth:`I2CSlaveLink.handle_write`) and answers master reads (:meth:`I2CSlaveLink.handle_read`)
  without ever stretching the clock: when it cannot answer it says BUSY (§11.5).

Every transaction is one write (a command) followed, after a repeated start, by one read (the
reply); on Linux that is one ``I2C_RDWR`` call with two messages (§11.2). Frames stay opaque: the
link never looks inside them, it only cuts them into chunks of the negotiated size (§11.4) and puts
them back together, exactly once and in order (§11.7, §11.8).

One gateway serves up to 16 independent **link channels** (§11.2): the high nibble of every command
byte names the channel, each channel has its own sequence numbers, queues, chunk cache and chunk
size, and a HELLO resets only its own channel. A direct host uses channel 0; the network bridge
gives each TCP client a channel of its own.
"""

from __future__ import annotations

import binascii
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum, IntEnum, IntFlag

from rayzig_core.errors import FrameError, TransportError
from rayzig_core.protocol.frames import MAX_FRAME

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
SEQ_MOD = 256
CHANNELS = 16
"""Link channels per gateway (§11.2): the channel is the high nibble of every command byte."""
CHANNEL_SHIFT = 4
_LOW_NIBBLE = 0x0F
FLOATING = 0xFF
"""What a read returns when the slave has loaded nothing (pull-ups); treated as BUSY (§11.5)."""


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


_STATUS_CODES = frozenset({Reply.IDLE, Reply.RESPONSE_READY, Reply.NOTIFY_PENDING})
_READY_CODES = frozenset({Reply.RESPONSE_READY, Reply.NOTIFY_PENDING})


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


# --- CRC-16/CCITT-FALSE (§11.3) -----------------------------------------------------------


def crc16_ccitt(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR; §11.3).

    ``crc16_ccitt(b"123456789") == 0x29B1``. ``crc`` continues an earlier computation.
    :func:`binascii.crc_hqx` is this very CRC (MSB first, poly 0x1021, no final XOR) with the
    initial value as its second argument, computed in C: a chunk's CRC costs about a
    microsecond instead of tens of microseconds for a table loop in Python.
    """
    return binascii.crc_hqx(data, crc & 0xFFFF)


def _seal(body: bytes | bytearray) -> bytes:
    """Append the big-endian CRC of ``body``."""
    return bytes(body) + crc16_ccitt(body).to_bytes(CRC_LEN, "big")


def _crc_ok(message: bytes, end: int) -> bool:
    """Whether ``message[end:end+2]`` is the CRC of ``message[:end]``."""
    return crc16_ccitt(message[:end]) == int.from_bytes(message[end : end + CRC_LEN], "big")


def _size_code(size: int) -> int:
    if size not in CHUNK_SIZES:
        raise ValueError(f"chunk size {size} is not one of {CHUNK_SIZES}")
    return size.bit_length() - 1


def _valid_code(code: int) -> bool:
    return 5 <= code <= 8


def check_channel(channel: int) -> int:
    """Return ``channel`` if it is a valid link channel (0..15), else raise ValueError."""
    if not isinstance(channel, int) or not 0 <= channel < CHANNELS:
        raise ValueError(f"I2C link channel must be 0..{CHANNELS - 1}, not {channel!r}")
    return channel


def payload_per_chunk(chunk_size: int) -> int:
    """Frame bytes carried by one chunk message of ``chunk_size`` bytes (§11.3)."""
    return chunk_size - CHUNK_OVERHEAD


# --- errors --------------------------------------------------------------------------------


class I2CLinkError(TransportError):
    """The I2C link failed: retries exhausted or the peer broke PROTOCOL.md §11 (reconnect)."""


class I2CLinkResetError(I2CLinkError):
    """The gateway rebooted or ended this channel's link (§11.9): handshake again."""


class _Glitch(Exception):  # noqa: N818 - internal control flow, never escapes
    """A reply damaged in transit (CRC, short read, unexpected type): retransmit (§11.8)."""


# --- host side -----------------------------------------------------------------------------


class Op(Enum):
    """What a host transaction does (§11.2)."""

    HELLO = "hello"
    STATUS = "status"
    PUT = "put"
    GET = "get"


@dataclass(frozen=True, slots=True)
class Transaction:
    """One I2C transaction for the driver: write ``write``, repeated start, read ``read_len`` bytes.

    ``poll`` is true for a speculative status poll and for a retry after BUSY: the driver should
    wait (its poll interval, backing off while idle) before performing it. A retransmission
    (§11.8) is the same object with the same bytes.
    """

    op: Op
    write: bytes
    read_len: int
    poll: bool = False


class Outcome(Enum):
    """What a reply meant, so the driver can pace its polling (§11.10)."""

    PROGRESS = "progress"
    """Something moved (link up, chunk accepted or received, data announced): go on at once."""
    IDLE = "idle"
    """Nothing to do on either side: back off the poll interval."""
    BUSY = "busy"
    """The gateway answered BUSY: poll the same transaction again soon."""
    RETRY = "retry"
    """The reply was damaged or the write rejected: retransmit the identical transaction now."""


@dataclass(slots=True)
class HostLinkStats:
    """Counters of one host link (for logs, diagnostics and benchmarks)."""

    transactions: int = 0
    bus_errors: int = 0
    link_errors: int = 0
    retransmissions: int = 0
    busy: int = 0
    duplicates: int = 0
    chunks_sent: int = 0
    chunks_received: int = 0
    frames_sent: int = 0
    frames_received: int = 0


class I2CHostLink:
    """Master end of the I2C link (PROTOCOL.md §11): chunking, sequencing, CRC, retransmission.

    The driver loop is::

        tx = link.next_transaction()           # HELLO first, then PUT / GET / STATUS
        (wait first if tx.poll)
        try: reply = i2c_rdwr(write(tx.write), read(tx.read_len))
        except OSError: link.handle_failure(tx, reason)      # identical retry next time
        else: outcome = link.handle_reply(tx, reply)
        frames = link.take_frames()

    :meth:`handle_reply` and :meth:`handle_failure` raise :class:`I2CLinkError` when more than
    ``max_retries`` consecutive transactions failed or the gateway broke the protocol, and
    :class:`I2CLinkResetError` when the gateway rebooted (§11.9). After that the link is dead.
    """

    def __init__(
        self, *, channel: int = 0, max_chunk: int = MAX_CHUNK, max_retries: int = 5
    ) -> None:
        self._channel = check_channel(channel)
        self._max_code = _size_code(max_chunk)
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._max_retries = max_retries
        self._chunk: int | None = None
        self._epoch = 0
        self._failed: I2CLinkError | None = None
        self._retry: Transaction | None = None
        self._failures = 0
        self._prefer_rx = True
        self.stats = HostLinkStats()
        # host → gateway
        self._tx_frames: deque[bytes] = deque()
        self._tx_offset = 0
        self._tx_index = 0
        self._tx_seq = 0
        self._tx_chunk: Transaction | None = None
        self._tx_chunk_len = 0
        # gateway → host
        self._rx_ack = SEQ_MOD - 1
        self._rx_buf = bytearray()
        self._rx_len: int | None = None
        self._rx_index = 0
        self._rx_ready = False
        self._rx_more = False
        self._rx_frames: list[bytes] = []

    # --- state ----------------------------------------------------------------------------

    @property
    def channel(self) -> int:
        """The link channel this host end uses (0..15, §11.2)."""
        return self._channel

    @property
    def linked(self) -> bool:
        """Whether HELLO succeeded (§11.4)."""
        return self._chunk is not None

    @property
    def chunk_size(self) -> int | None:
        """The negotiated chunk size, or None before HELLO."""
        return self._chunk

    @property
    def epoch(self) -> int | None:
        """The gateway's link epoch (boot counter) learnt at HELLO, or None before (§11.9)."""
        return self._epoch if self._chunk is not None else None

    @property
    def consecutive_failures(self) -> int:
        """Failed transactions in a row (for the driver's back-off)."""
        return self._failures

    @property
    def frames_sent(self) -> int:
        """Frames completely accepted by the gateway since the link was created (monotonic)."""
        return self.stats.frames_sent

    @property
    def pending_frames(self) -> int:
        """Frames queued by :meth:`send` and not yet completely accepted."""
        return len(self._tx_frames)

    def send(self, frame: bytes) -> None:
        """Queue a frame for the gateway; it goes out in chunks, in order, exactly once."""
        if not 0 < len(frame) <= MAX_FRAME:
            raise FrameError(f"frame length {len(frame)} outside 1..{MAX_FRAME}")
        if self._failed is not None:
            raise self._failed
        self._tx_frames.append(bytes(frame))

    def take_frames(self) -> list[bytes]:
        """Return (and forget) the gateway→host frames completed so far, in order."""
        frames, self._rx_frames = self._rx_frames, []
        return frames

    # --- what to do next ------------------------------------------------------------------

    def next_transaction(self) -> Transaction:
        """Return the transaction to perform now (§11.2); the same bytes after a failure (§11.8)."""
        if self._failed is not None:
            raise self._failed
        if self._retry is not None:
            return self._retry
        if self._chunk is None:
            body = bytes((self._command(Command.HELLO), LINK_VERSION, self._max_code))
            return Transaction(Op.HELLO, _seal(body), max(HELLO_ACK_LEN, STATUS_LEN))
        rx_work = self._rx_ready
        tx_work = bool(self._tx_frames)
        if rx_work and self._rx_index > 0:
            return self._get()
        if tx_work and self._tx_index > 0:
            return self._put()
        if rx_work and tx_work:
            return self._get() if self._prefer_rx else self._put()
        if rx_work:
            return self._get()
        if tx_work:
            return self._put()
        poll = not self._rx_more
        return Transaction(Op.STATUS, self._control(Command.STATUS), STATUS_LEN, poll=poll)

    def _command(self, command: Command) -> int:
        return (self._channel << CHANNEL_SHIFT) | command

    def _control(self, command: Command) -> bytes:
        return _seal(bytes((self._command(command), self._rx_ack)))

    def _get(self) -> Transaction:
        assert self._chunk is not None
        assert self._rx_len is not None
        per = payload_per_chunk(self._chunk)
        length = min(per, self._rx_len - self._rx_index * per)
        read_len = max(CHUNK_OVERHEAD + length, STATUS_LEN)
        return Transaction(Op.GET, self._control(Command.GET), read_len)

    def _put(self) -> Transaction:
        if self._tx_chunk is None:
            assert self._chunk is not None
            frame = self._tx_frames[0]
            length = min(payload_per_chunk(self._chunk), len(frame) - self._tx_offset)
            last = self._tx_offset + length == len(frame)
            header = bytes(
                (
                    self._command(Command.PUT),
                    self._rx_ack,
                    self._tx_seq,
                    self._tx_index,
                    ChunkFlags.LAST if last else 0,
                    length,
                )
            )
            payload = frame[self._tx_offset : self._tx_offset + length]
            self._tx_chunk = Transaction(Op.PUT, _seal(header + payload), STATUS_LEN)
            self._tx_chunk_len = length
        return self._tx_chunk

    # --- results --------------------------------------------------------------------------

    def handle_failure(self, tx: Transaction, reason: str) -> None:
        """Record a bus failure (NACK, timeout, I/O error); the same bytes go again (§11.8)."""
        if self._failed is not None:
            raise self._failed
        self.stats.transactions += 1
        self.stats.bus_errors += 1
        self._count_failure(tx, reason)

    def handle_reply(self, tx: Transaction, reply: bytes) -> Outcome:
        """Interpret the bytes read for ``tx`` (§11.5-§11.9)."""
        if self._failed is not None:
            raise self._failed
        self.stats.transactions += 1
        reply = bytes(reply)
        if reply and reply[0] in (Reply.BUSY, FLOATING):
            self.stats.busy += 1
            self._retry = replace(tx, poll=True)
            return Outcome.BUSY
        try:
            outcome = self._dispatch(tx, reply)
        except _Glitch as glitch:
            self.stats.link_errors += 1
            self._count_failure(tx, str(glitch))
            return Outcome.RETRY
        self._failures = 0
        self._retry = None
        return outcome

    def _dispatch(self, tx: Transaction, reply: bytes) -> Outcome:
        if not reply:
            raise _Glitch("empty read")
        kind = reply[0]
        if kind == Reply.HELLO_ACK:
            return self._on_hello_ack(tx, reply)
        if kind == Reply.CHUNK:
            return self._on_chunk(tx, reply)
        if kind in _STATUS_CODES:
            return self._on_status(tx, reply)
        raise _Glitch(f"unknown reply byte 0x{kind:02x}")

    def _count_failure(self, tx: Transaction, reason: str) -> None:
        self._failures += 1
        if self._failures > self._max_retries:
            self._fail(
                I2CLinkError(
                    f"I2C link gave up after {self._failures} failed {tx.op.value} transactions "
                    f"in a row (last: {reason})"
                )
            )
        self.stats.retransmissions += 1
        self._retry = replace(tx, poll=False)

    def _fail(self, error: I2CLinkError) -> None:
        self._failed = error
        raise error

    def _protocol_error(self, message: str) -> None:
        self._fail(I2CLinkError(f"gateway broke the I2C link protocol: {message}"))

    def _check_epoch(self, epoch: int, linked: bool) -> None:
        if epoch != self._epoch:
            self._fail(
                I2CLinkResetError(
                    f"gateway restarted (I2C link epoch {self._epoch} -> {epoch}); "
                    "the secure session must start again"
                )
            )
        if not linked:
            self._fail(
                I2CLinkResetError(
                    f"gateway ended the link on channel {self._channel} (it closed the session, "
                    "or it restarted); the secure session must start again"
                )
            )

    def _check_channel(self, what: str, flags: int) -> None:
        channel = flags >> CHANNEL_SHIFT
        if channel != self._channel:
            self._protocol_error(f"{what} for channel {channel} on channel {self._channel}")

    def _on_hello_ack(self, tx: Transaction, reply: bytes) -> Outcome:
        if tx.op is not Op.HELLO or len(reply) < HELLO_ACK_LEN:
            raise _Glitch("unexpected or short HELLO_ACK")
        if not _crc_ok(reply, HELLO_ACK_LEN - CRC_LEN):
            raise _Glitch("CRC mismatch in HELLO_ACK")
        version, slave_code, chosen, epoch, flags = reply[1:6]
        self._check_channel("HELLO_ACK", flags)
        if version != LINK_VERSION or chosen == 0:
            self._fail(
                I2CLinkError(
                    f"gateway speaks I2C link version {version}, this host speaks {LINK_VERSION}"
                )
            )
        if not _valid_code(slave_code) or chosen != min(slave_code, self._max_code):
            self._protocol_error(
                f"chunk size negotiation: gateway max 2^{slave_code}, chose 2^{chosen}"
            )
        if not flags & StatusFlags.LINKED:
            self._protocol_error("HELLO_ACK without the LINKED flag")
        self._chunk = 1 << chosen
        self._epoch = epoch
        self._tx_seq = 0
        self._tx_index = self._tx_offset = 0
        self._tx_chunk = None
        self._rx_ack = SEQ_MOD - 1
        self._rx_buf.clear()
        self._rx_len = None
        self._rx_index = 0
        self._rx_ready = self._rx_more = False
        return Outcome.PROGRESS

    def _on_status(self, tx: Transaction, reply: bytes) -> Outcome:
        if len(reply) < STATUS_LEN:
            raise _Glitch("short status block")
        if not _crc_ok(reply, STATUS_LEN - CRC_LEN):
            raise _Glitch("CRC mismatch in status block")
        code, epoch, flags, h2g_ack, g2h_seq, g2h_index = reply[:6]
        frame_len = int.from_bytes(reply[6:8], "big")
        if tx.op is Op.HELLO:
            raise _Glitch("HELLO answered by a status block (write rejected)")
        if flags & StatusFlags.WRITE_ERROR:
            # A rejected write (e.g. damaged in transit) may have named another channel: the
            # rest of the block says nothing reliable about ours. Retransmit (§11.8).
            raise _Glitch(f"gateway rejected the {tx.op.value} write")
        self._check_channel("status block", flags)
        self._check_epoch(epoch, bool(flags & StatusFlags.LINKED))
        self._note_outbound(Reply(code), g2h_seq, g2h_index, frame_len)
        if tx.op is Op.PUT:
            seq = tx.write[2]
            if h2g_ack == seq:
                self._chunk_accepted()
                return Outcome.PROGRESS
            if h2g_ack == (seq - 1) % SEQ_MOD:
                raise _Glitch(f"chunk {seq} not acknowledged")
            self._protocol_error(f"acknowledged chunk {h2g_ack} while chunk {seq} was sent")
        if tx.op is Op.GET:
            self._protocol_error("GET answered by a status block although a chunk was announced")
        if self._rx_ready or self._tx_frames:
            return Outcome.PROGRESS
        return Outcome.IDLE

    def _note_outbound(self, code: Reply, g2h_seq: int, g2h_index: int, frame_len: int) -> None:
        """Learn from a status block what the gateway has to send (§11.5, §11.7)."""
        self._rx_more = False
        if code in _READY_CODES:
            if g2h_seq == (self._rx_ack + 1) % SEQ_MOD:
                if self._rx_len is None:
                    if g2h_index != 0 or not 0 < frame_len <= MAX_FRAME:
                        self._protocol_error(
                            f"new frame announced at chunk {g2h_index} with length {frame_len}"
                        )
                    self._rx_len = frame_len
                    self._rx_index = 0
                    self._rx_buf.clear()
                elif g2h_index != self._rx_index or frame_len != self._rx_len:
                    self._protocol_error("announced chunk does not continue the current frame")
                self._rx_ready = True
            elif g2h_seq == self._rx_ack:
                self._rx_ready = False  # our acknowledgement is not applied yet: ask again
            else:
                self._protocol_error(f"announced chunk {g2h_seq} after chunk {self._rx_ack}")
        else:
            if self._rx_len is not None:
                self._protocol_error("gateway dropped a frame in the middle of its transfer")
            self._rx_ready = False

    def _chunk_accepted(self) -> None:
        self.stats.chunks_sent += 1
        self._tx_offset += self._tx_chunk_len
        self._tx_index += 1
        self._tx_seq = (self._tx_seq + 1) % SEQ_MOD
        self._tx_chunk = None
        if self._tx_offset == len(self._tx_frames[0]):
            self._tx_frames.popleft()
            self._tx_offset = self._tx_index = 0
            self.stats.frames_sent += 1
            self._prefer_rx = True

    def _on_chunk(self, tx: Transaction, reply: bytes) -> Outcome:
        if tx.op is not Op.GET or len(reply) < CHUNK_OVERHEAD:
            raise _Glitch("unexpected or short chunk")
        epoch, seq, index, flags, length = reply[1:CHUNK_HEADER_LEN]
        end = CHUNK_HEADER_LEN + length
        if end + CRC_LEN > len(reply):
            raise _Glitch("short read of a chunk")
        if not _crc_ok(reply, end):
            raise _Glitch("CRC mismatch in chunk")
        self._check_channel("chunk", flags)
        self._check_epoch(epoch, linked=True)
        if seq == self._rx_ack:
            self.stats.duplicates += 1  # already have it (§11.8); the next GET acknowledges it
            return Outcome.PROGRESS
        assert self._chunk is not None
        per = payload_per_chunk(self._chunk)
        if seq != (self._rx_ack + 1) % SEQ_MOD or self._rx_len is None:
            self._protocol_error(f"chunk {seq} arrived after chunk {self._rx_ack}")
        assert self._rx_len is not None
        expected = min(per, self._rx_len - self._rx_index * per)
        if index != self._rx_index or length != expected:
            self._protocol_error(
                f"chunk {seq} has index {index} and {length} bytes, "
                f"expected index {self._rx_index} and {expected} bytes"
            )
        self._rx_buf += reply[CHUNK_HEADER_LEN:end]
        self._rx_ack = seq
        self._rx_index += 1
        self.stats.chunks_received += 1
        complete = len(self._rx_buf) == self._rx_len
        if bool(flags & ChunkFlags.LAST) != complete:
            self._protocol_error("LAST flag does not match the announced frame length")
        if complete:
            self._rx_frames.append(bytes(self._rx_buf))
            self.stats.frames_received += 1
            self._rx_buf.clear()
            self._rx_len = None
            self._rx_index = 0
            self._rx_ready = False
            self._rx_more = bool(flags & ChunkFlags.MORE)
            self._prefer_rx = False
        else:
            self._rx_ready = True
        return Outcome.PROGRESS


# --- slave side ----------------------------------------------------------------------------


@dataclass(slots=True)
class SlaveLinkStats:
    """Counters of one slave link (all channels together)."""

    writes: int = 0
    reads: int = 0
    write_errors: int = 0
    busy: int = 0
    duplicates: int = 0
    retransmissions: int = 0
    chunks_received: int = 0
    chunks_sent: int = 0
    frames_received: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    """Frames pushed on a channel that was not linked or was being closed (nobody to read them)."""
    hellos: int = 0
    closes: int = 0
    """Channel links ended by the gateway (:meth:`I2CSlaveLink.close_channel`)."""


class _SlaveChannel:
    """The link state of one channel on the slave (§11.2): everything a HELLO resets."""

    __slots__ = (
        "chunk",
        "closing",
        "g2h_seq",
        "h2g_last",
        "linked",
        "out",
        "out_chunk",
        "out_chunk_len",
        "out_index",
        "out_offset",
        "received",
        "rx_buf",
        "rx_index",
    )

    def __init__(self) -> None:
        self.linked = False
        self.closing = False
        self.chunk = MIN_CHUNK
        self.received: list[bytes] = []
        self.h2g_last = SEQ_MOD - 1
        self.rx_buf = bytearray()
        self.rx_index = 0
        self.out: deque[tuple[bytes, bool]] = deque()
        self.out_offset = 0
        self.out_index = 0
        self.g2h_seq = 0
        self.out_chunk: bytes | None = None
        self.out_chunk_len = 0

    def reset(self) -> None:
        """Forget every frame and sequence number of the previous link (§11.4)."""
        self.closing = False
        self.h2g_last = SEQ_MOD - 1
        self.rx_buf.clear()
        self.rx_index = 0
        self.out.clear()
        self.out_offset = self.out_index = 0
        self.g2h_seq = 0
        self.out_chunk = None
        self.out_chunk_len = 0


class I2CSlaveLink:
    """Slave (gateway) end of the I2C link (PROTOCOL.md §11); models what the MCU firmware does.

    * :meth:`handle_write` — a master write message has ended (STOP or repeated start).
    * :meth:`handle_read` — the master reads ``length`` bytes; returns exactly that many.
    * :meth:`push_frame` — queue a gateway→host frame (a response, or a notification) on a
      channel.
    * Complete host→gateway frames go to ``on_frame(channel, frame)`` (called inside
      :meth:`handle_write`, which may call :meth:`push_frame` re-entrantly) or, without a
      callback, collect for :meth:`frames_received`.
    * ``on_connect(channel)`` is called when a host HELLO (re)starts a channel's link: the
      channel's queued and partial frames of the previous link are discarded, so the application
      must drop that channel's session too (§11.4). Other channels are not touched.
    * :meth:`close_channel` — the application ended a channel's session: once its queued frames
      are read, the channel reports LINKED=0 and its host reconnects (§11.9).

    Set :attr:`busy` while the MCU cannot serve the link: writes are then ignored and reads
    answer BUSY (§11.5). The epoch is per device (per boot), the rest per channel. The object is
    not thread-safe; the caller serialises access.
    """

    def __init__(
        self,
        *,
        max_chunk: int = MAX_CHUNK,
        epoch: int = 0,
        on_frame: Callable[[int, bytes], None] | None = None,
        on_connect: Callable[[int], None] | None = None,
    ) -> None:
        self._max_code = _size_code(max_chunk)
        self._epoch = epoch % SEQ_MOD
        self._on_frame = on_frame
        self._on_connect = on_connect
        self.busy = False
        """While true, writes are ignored and every read answers BUSY."""
        self.stats = SlaveLinkStats()
        self._channels = tuple(_SlaveChannel() for _ in range(CHANNELS))
        # Per transaction: the channel and reply of the last write (one I2C peripheral).
        self._current = 0
        self._reply: bytes | None = None
        self._write_error = False

    # --- state ----------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """Link epoch of this boot (boot counter mod 256, §11.9)."""
        return self._epoch

    @property
    def linked(self) -> bool:
        """Whether any channel has a live link (a HELLO accepted and not ended since)."""
        return any(state.linked for state in self._channels)

    @property
    def linked_channels(self) -> tuple[int, ...]:
        """The channels with a live link, in order."""
        return tuple(n for n, state in enumerate(self._channels) if state.linked)

    def is_linked(self, channel: int = 0) -> bool:
        """Whether ``channel`` has a live link."""
        return self._channels[check_channel(channel)].linked

    def chunk_size(self, channel: int = 0) -> int:
        """Return the chunk size negotiated on ``channel`` (32 before its HELLO)."""
        return self._channels[check_channel(channel)].chunk

    @property
    def pending_frames(self) -> int:
        """Gateway→host frames not yet completely acknowledged, all channels together."""
        return sum(len(state.out) for state in self._channels)

    def pending_on(self, channel: int) -> int:
        """Gateway→host frames of ``channel`` not yet completely acknowledged."""
        return len(self._channels[check_channel(channel)].out)

    def push_frame(self, channel: int, frame: bytes, *, notify: bool = False) -> None:
        """Queue a gateway→host frame on ``channel``; ``notify`` marks an unsolicited one.

        A frame for a channel without a live link, or one being closed, is dropped (counted in
        ``stats.frames_dropped``): no host could ever read it, and the next HELLO would discard it.
        """
        if not 0 < len(frame) <= MAX_FRAME:
            raise FrameError(f"frame length {len(frame)} outside 1..{MAX_FRAME}")
        state = self._channels[check_channel(channel)]
        if not state.linked or state.closing:
            self.stats.frames_dropped += 1
            return
        state.out.append((bytes(frame), notify))

    def close_channel(self, channel: int) -> None:
        """End ``channel``'s link once the host has read every frame queued on it (§11.9).

        Until then the channel works as before (so a last response still arrives); afterwards it
        reports LINKED=0, ignores everything but HELLO, and its host starts a new link.
        """
        state = self._channels[check_channel(channel)]
        if not state.linked or state.closing:
            return
        state.closing = True
        if not state.out:
            self._unlink(state)

    def frames_received(self, channel: int = 0) -> list[bytes]:
        """Return (and forget) host→gateway frames of ``channel`` (when no ``on_frame`` is set)."""
        state = self._channels[check_channel(channel)]
        frames, state.received = state.received, []
        return frames

    # --- bus events -----------------------------------------------------------------------

    def handle_write(self, data: bytes) -> None:
        """Process one master write message (§11.3) and prepare the reply to the next read."""
        self._reply = None
        if self.busy:
            self.stats.busy += 1
            return
        self.stats.writes += 1
        data = bytes(data)
        self._write_error = False
        if data:
            self._current = data[0] >> CHANNEL_SHIFT
        if len(data) < 3 or not _crc_ok(data, len(data) - CRC_LEN):
            self._reject()
            return
        command = data[0] & _LOW_NIBBLE
        state = self._channels[self._current]
        if command == Command.HELLO:
            self._on_hello(state, data)
            return
        if not state.linked:
            return  # the status block says LINKED=0: the host must send HELLO
        if command not in (Command.STATUS, Command.GET, Command.PUT) or len(data) > state.chunk:
            self._reject()
            return
        if command != Command.PUT and len(data) != CONTROL_LEN:
            self._reject()
            return
        self._apply_ack(state, data[1])
        if not state.linked:
            return  # that acknowledgement ended a closing channel
        if command == Command.GET:
            self._reply = self._current_chunk(state)
        elif command == Command.PUT:
            self._on_put(state, data)

    def handle_read(self, length: int) -> bytes:
        """Answer a master read of ``length`` bytes; padded with 0xFF, never stretched (§11.5)."""
        if length <= 0:
            return b""
        if self.busy:
            self.stats.busy += 1
            return bytes((Reply.BUSY,)) + bytes((FLOATING,)) * (length - 1)
        self.stats.reads += 1
        reply = self._reply if self._reply is not None else self._status_block()
        self._reply = None
        if len(reply) < length:
            reply += bytes((FLOATING,)) * (length - len(reply))
        return reply[:length]

    # --- internals ------------------------------------------------------------------------

    def _reject(self) -> None:
        self._write_error = True
        self.stats.write_errors += 1

    def _flags(self, state: _SlaveChannel) -> int:
        flags = StatusFlags(0)
        if state.linked:
            flags |= StatusFlags.LINKED
        if self._write_error:
            flags |= StatusFlags.WRITE_ERROR
        return (self._current << CHANNEL_SHIFT) | flags

    def _unlink(self, state: _SlaveChannel) -> None:
        state.reset()
        state.linked = False
        self.stats.closes += 1

    def _on_hello(self, state: _SlaveChannel, data: bytes) -> None:
        if len(data) != HELLO_LEN or not _valid_code(data[2]):
            self._reject()
            return
        self.stats.hellos += 1
        version = data[1]
        if version != LINK_VERSION:
            chosen = 0
            state.linked = False
            state.chunk = MIN_CHUNK
        else:
            chosen = min(data[2], self._max_code)
            state.linked = True
            state.chunk = 1 << chosen
        state.reset()
        body = bytes(
            (Reply.HELLO_ACK, LINK_VERSION, self._max_code, chosen, self._epoch, self._flags(state))
        )
        self._reply = _seal(body)
        if state.linked and self._on_connect is not None:
            self._on_connect(self._current)

    def _apply_ack(self, state: _SlaveChannel, ack: int) -> None:
        """Drop the current chunk if the host acknowledges it with ``ack`` (§11.7)."""
        if state.out_chunk is None or ack != state.g2h_seq:
            return
        state.out_offset += state.out_chunk_len
        state.out_index += 1
        state.g2h_seq = (state.g2h_seq + 1) % SEQ_MOD
        state.out_chunk = None
        if state.out_offset >= len(state.out[0][0]):
            state.out.popleft()
            state.out_offset = state.out_index = 0
            self.stats.frames_sent += 1
            if state.closing and not state.out:
                self._unlink(state)

    def _current_chunk(self, state: _SlaveChannel) -> bytes | None:
        """Return the chunk the host should read now; built once, served identically until acked."""
        if not state.out:
            return None
        if state.out_chunk is None:
            frame, notify = state.out[0]
            length = min(payload_per_chunk(state.chunk), len(frame) - state.out_offset)
            last = state.out_offset + length == len(frame)
            flags = ChunkFlags(0)
            if last:
                flags |= ChunkFlags.LAST
                if len(state.out) > 1:
                    flags |= ChunkFlags.MORE
            if notify:
                flags |= ChunkFlags.NOTIFY
            header = bytes(
                (
                    Reply.CHUNK,
                    self._epoch,
                    state.g2h_seq,
                    state.out_index,
                    (self._current << CHANNEL_SHIFT) | flags,
                    length,
                )
            )
            payload = frame[state.out_offset : state.out_offset + length]
            state.out_chunk = _seal(header + payload)
            state.out_chunk_len = length
            self.stats.chunks_sent += 1
        else:
            self.stats.retransmissions += 1
        return state.out_chunk

    def _on_put(self, state: _SlaveChannel, data: bytes) -> None:
        if len(data) < CHUNK_OVERHEAD + 1:
            self._reject()
            return
        seq, index, flags, length = data[2:CHUNK_HEADER_LEN]
        if length == 0 or len(data) != CHUNK_OVERHEAD + length:
            self._reject()
            return
        if seq == state.h2g_last:
            self.stats.duplicates += 1  # retransmission of an accepted chunk: acknowledge again
            return
        if seq != (state.h2g_last + 1) % SEQ_MOD or index != state.rx_index:
            self._reject()
            return
        if len(state.rx_buf) + length > MAX_FRAME:
            self._reject()
            return
        state.rx_buf += data[CHUNK_HEADER_LEN : CHUNK_HEADER_LEN + length]
        state.h2g_last = seq
        state.rx_index += 1
        self.stats.chunks_received += 1
        if flags & ChunkFlags.LAST:
            frame = bytes(state.rx_buf)
            state.rx_buf.clear()
            state.rx_index = 0
            self.stats.frames_received += 1
            if self._on_frame is not None:
                self._on_frame(self._current, frame)
            else:
                state.received.append(frame)

    def _status_block(self) -> bytes:
        """Build the status block of the last write's channel (§11.5), after that write."""
        state = self._channels[self._current]
        if state.out:
            frame, notify = state.out[0]
            code = Reply.NOTIFY_PENDING if notify else Reply.RESPONSE_READY
            frame_len = len(frame)
        else:
            code = Reply.IDLE
            frame_len = 0
        body = (
            bytes(
                (
                    code,
                    self._epoch,
                    self._flags(state),
                    state.h2g_last,
                    state.g2h_seq,
                    state.out_index,
                )
            )
            + frame_len.to_bytes(2, "big")
            + bytes((min(len(state.out), 255),))
        )
        return _seal(body)
