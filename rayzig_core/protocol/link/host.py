"""The host (SBC, I2C master) end of the I2C link (PROTOCOL.md §11): a sans-I/O state machine.

:class:`I2CHostLink` says which transaction to perform next (:meth:`I2CHostLink.next_transaction`)
and interprets what was read back (:meth:`I2CHostLink.handle_reply`) or that the bus failed
(:meth:`I2CHostLink.handle_failure`). It cuts frames into chunks of the negotiated size (§11.4),
retransmits identical bytes after a failure (§11.8) and hands back every gateway→host frame exactly
once and in order (§11.7). The bytes themselves are built and read by :mod:`.wire`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from enum import Enum

from rayzig_core.errors import FrameError, TransportError
from rayzig_core.protocol.frames import MAX_FRAME
from rayzig_core.protocol.link.wire import (
    FLOATING,
    HELLO_READ_LEN,
    LINK_VERSION,
    MAX_CHUNK,
    READY_CODES,
    SEQ_MOD,
    STATUS_CODES,
    STATUS_LEN,
    Chunk,
    ChunkFlags,
    Command,
    MalformedMessage,
    Put,
    Reply,
    StatusBlock,
    StatusFlags,
    check_channel,
    chunk_payload_len,
    decode_chunk_reply,
    decode_hello_ack,
    decode_status,
    encode_control,
    encode_hello,
    get_read_len,
    payload_per_chunk,
    size_code,
    valid_code,
)

_LINKED = int(StatusFlags.LINKED)
_WRITE_ERROR = int(StatusFlags.WRITE_ERROR)
_LAST = int(ChunkFlags.LAST)
_MORE = int(ChunkFlags.MORE)
_NOTIFY = int(ChunkFlags.NOTIFY)
"""Flag bits as plain ints: an int combined with an IntFlag member runs Python-level enum code."""
_NOT_READY = frozenset({Reply.BUSY, FLOATING})
_CONTROL_CACHE = 1024
"""Most STATUS and GET transactions kept for reuse (every ack, poll flag and common length)."""


class I2CLinkError(TransportError):
    """The I2C link failed: retries exhausted or the peer broke PROTOCOL.md §11 (reconnect)."""


class I2CLinkResetError(I2CLinkError):
    """The gateway rebooted or ended this channel's link (§11.9): handshake again."""


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
    notifications_received: int = 0
    """Frames received flagged ``NOTIFY`` (§11.3): unsolicited, not an answer to a frame sent."""


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
        self._max_code = size_code(max_chunk)
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._max_retries = max_retries
        self._chunk: int | None = None
        self._epoch = 0
        self._failed: I2CLinkError | None = None
        self._retry: Transaction | None = None
        self._failures = 0
        self._prefer_rx = True
        self._controls: dict[tuple[Op, int, int, bool], Transaction] = {}
        """STATUS and GET transactions by (op, ack, read length, poll): built once, reused."""
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
    def answers_received(self) -> int:
        """Frames received not flagged ``NOTIFY``: answers to frames sent (monotonic, §11.3)."""
        return self.stats.frames_received - self.stats.notifications_received

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
            return Transaction(
                Op.HELLO, encode_hello(self._channel, self._max_code), HELLO_READ_LEN
            )
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
        return self._control(Op.STATUS, STATUS_LEN, poll=not self._rx_more)

    def _control(self, op: Op, read_len: int, *, poll: bool = False) -> Transaction:
        """The STATUS or GET transaction acknowledging the last chunk received (§11.2)."""
        key = (op, self._rx_ack, read_len, poll)
        tx = self._controls.get(key)
        if tx is None:
            command = Command.STATUS if op is Op.STATUS else Command.GET
            write = encode_control(self._channel, command, self._rx_ack)
            if len(self._controls) >= _CONTROL_CACHE:
                self._controls.clear()
            tx = self._controls[key] = Transaction(op, write, read_len, poll)
        return tx

    def _get(self) -> Transaction:
        assert self._chunk is not None
        assert self._rx_len is not None
        offset = self._rx_index * payload_per_chunk(self._chunk)
        length = chunk_payload_len(self._rx_len, offset, self._chunk)
        return self._control(Op.GET, get_read_len(length))

    def _put(self) -> Transaction:
        if self._tx_chunk is None:
            assert self._chunk is not None
            frame = self._tx_frames[0]
            length = chunk_payload_len(len(frame), self._tx_offset, self._chunk)
            last = self._tx_offset + length == len(frame)
            payload = frame[self._tx_offset : self._tx_offset + length]
            flags = _LAST if last else 0
            chunk = Chunk(self._tx_seq, self._tx_index, flags, payload)
            put = Put(self._channel, self._rx_ack, chunk)
            self._tx_chunk = Transaction(Op.PUT, put.encode(), STATUS_LEN)
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
        if type(reply) is not bytes:
            reply = bytes(reply)
        if reply and reply[0] in _NOT_READY:
            self.stats.busy += 1
            self._retry = replace(tx, poll=True)
            return Outcome.BUSY
        try:
            outcome = self._dispatch(tx, reply)
        except MalformedMessage as damage:
            # Damaged in transit (CRC, short read, unexpected type) or rejected: retransmit (§11.8).
            self.stats.link_errors += 1
            self._count_failure(tx, str(damage))
            return Outcome.RETRY
        self._failures = 0
        self._retry = None
        return outcome

    def _dispatch(self, tx: Transaction, reply: bytes) -> Outcome:
        if not reply:
            raise MalformedMessage("empty read")
        kind = reply[0]
        if kind == Reply.HELLO_ACK:
            return self._on_hello_ack(tx, reply)
        if kind == Reply.CHUNK:
            return self._on_chunk(tx, reply)
        if kind in STATUS_CODES:
            return self._on_status(tx, reply)
        raise MalformedMessage(f"unknown reply byte 0x{kind:02x}")

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

    def _check_channel(self, what: str, channel: int) -> None:
        if channel != self._channel:
            self._protocol_error(f"{what} for channel {channel} on channel {self._channel}")

    def _on_hello_ack(self, tx: Transaction, reply: bytes) -> Outcome:
        if tx.op is not Op.HELLO:
            raise MalformedMessage("unexpected or short HELLO_ACK")
        ack = decode_hello_ack(reply)
        self._check_channel("HELLO_ACK", ack.channel)
        if ack.version != LINK_VERSION or ack.chosen == 0:
            self._fail(
                I2CLinkError(
                    f"gateway speaks I2C link version {ack.version}, "
                    f"this host speaks {LINK_VERSION}"
                )
            )
        if not valid_code(ack.gateway_code) or ack.chosen != min(ack.gateway_code, self._max_code):
            self._protocol_error(
                f"chunk size negotiation: gateway max 2^{ack.gateway_code}, chose 2^{ack.chosen}"
            )
        if not ack.flags & _LINKED:
            self._protocol_error("HELLO_ACK without the LINKED flag")
        self._chunk = 1 << ack.chosen
        self._epoch = ack.epoch
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
        block = decode_status(reply)
        if tx.op is Op.HELLO:
            raise MalformedMessage("HELLO answered by a status block (write rejected)")
        if block.flags & _WRITE_ERROR:
            # A rejected write (e.g. damaged in transit) may have named another channel: the
            # rest of the block says nothing reliable about ours. Retransmit (§11.8).
            raise MalformedMessage(f"gateway rejected the {tx.op.value} write")
        self._check_channel("status block", block.channel)
        self._check_epoch(block.epoch, bool(block.flags & _LINKED))
        self._note_outbound(block)
        if tx.op is Op.PUT:
            seq = tx.write[2]
            if block.h2g_ack == seq:
                self._chunk_accepted()
                return Outcome.PROGRESS
            if block.h2g_ack == (seq - 1) % SEQ_MOD:
                raise MalformedMessage(f"chunk {seq} not acknowledged")
            self._protocol_error(f"acknowledged chunk {block.h2g_ack} while chunk {seq} was sent")
        if tx.op is Op.GET:
            self._protocol_error("GET answered by a status block although a chunk was announced")
        if self._rx_ready or self._tx_frames:
            return Outcome.PROGRESS
        return Outcome.IDLE

    def _note_outbound(self, block: StatusBlock) -> None:
        """Learn from a status block what the gateway has to send (§11.5, §11.7)."""
        self._rx_more = False
        if block.code in READY_CODES:
            if block.g2h_seq == (self._rx_ack + 1) % SEQ_MOD:
                if self._rx_len is None:
                    if block.g2h_index != 0 or not 0 < block.frame_len <= MAX_FRAME:
                        self._protocol_error(
                            f"new frame announced at chunk {block.g2h_index} "
                            f"with length {block.frame_len}"
                        )
                    self._rx_len = block.frame_len
                    self._rx_index = 0
                    self._rx_buf.clear()
                elif block.g2h_index != self._rx_index or block.frame_len != self._rx_len:
                    self._protocol_error("announced chunk does not continue the current frame")
                self._rx_ready = True
            elif block.g2h_seq == self._rx_ack:
                self._rx_ready = False  # our acknowledgement is not applied yet: ask again
            else:
                self._protocol_error(f"announced chunk {block.g2h_seq} after chunk {self._rx_ack}")
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
        if tx.op is not Op.GET:
            raise MalformedMessage("unexpected or short chunk")
        received = decode_chunk_reply(reply)
        chunk = received.chunk
        self._check_channel("chunk", received.channel)
        self._check_epoch(received.epoch, linked=True)
        if chunk.seq == self._rx_ack:
            self.stats.duplicates += 1  # already have it (§11.8); the next GET acknowledges it
            return Outcome.PROGRESS
        assert self._chunk is not None
        if chunk.seq != (self._rx_ack + 1) % SEQ_MOD or self._rx_len is None:
            self._protocol_error(f"chunk {chunk.seq} arrived after chunk {self._rx_ack}")
        assert self._rx_len is not None
        offset = self._rx_index * payload_per_chunk(self._chunk)
        expected = chunk_payload_len(self._rx_len, offset, self._chunk)
        if chunk.index != self._rx_index or len(chunk.payload) != expected:
            self._protocol_error(
                f"chunk {chunk.seq} has index {chunk.index} and {len(chunk.payload)} bytes, "
                f"expected index {self._rx_index} and {expected} bytes"
            )
        self._rx_buf += chunk.payload
        self._rx_ack = chunk.seq
        self._rx_index += 1
        self.stats.chunks_received += 1
        complete = len(self._rx_buf) == self._rx_len
        if bool(chunk.flags & _LAST) != complete:
            self._protocol_error("LAST flag does not match the announced frame length")
        if complete:
            self._rx_frames.append(bytes(self._rx_buf))
            self.stats.frames_received += 1
            if chunk.flags & _NOTIFY:
                self.stats.notifications_received += 1
            self._rx_buf.clear()
            self._rx_len = None
            self._rx_index = 0
            self._rx_ready = False
            self._rx_more = bool(chunk.flags & _MORE)
            self._prefer_rx = False
        else:
            self._rx_ready = True
        return Outcome.PROGRESS
