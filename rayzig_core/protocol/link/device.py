"""The gateway (MCU, I2C slave) end of the I2C link (PROTOCOL.md §11): a sans-I/O state machine.

:class:`I2CSlaveLink` models what the gateway firmware does: it consumes master writes, prepares the
reply before the repeated START and never stretches the clock; when it cannot answer it says BUSY
(§11.5). Each of the 16 link channels (§11.2) has its own sequence numbers, queues, chunk cache and
chunk size, and a HELLO resets only its own channel. The bytes are built and read by :mod:`.wire`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rayzig_core.errors import FrameError
from rayzig_core.protocol.frames import MAX_FRAME
from rayzig_core.protocol.link.wire import (
    CHANNELS,
    CONTROL_LEN,
    FLOATING,
    LINK_VERSION,
    MAX_CHUNK,
    MIN_CHUNK,
    SEQ_MOD,
    Chunk,
    ChunkFlags,
    ChunkReply,
    Command,
    HelloAck,
    MalformedMessage,
    Reply,
    StatusBlock,
    StatusFlags,
    check_channel,
    chunk_payload_len,
    decode_hello,
    decode_put,
    size_code,
    split_command,
    write_ack,
    write_crc_ok,
)

_LINKED = int(StatusFlags.LINKED)
_WRITE_ERROR = int(StatusFlags.WRITE_ERROR)
_LAST = int(ChunkFlags.LAST)
_MORE = int(ChunkFlags.MORE)
_NOTIFY = int(ChunkFlags.NOTIFY)
"""Flag bits as plain ints: an int combined with an IntFlag member runs Python-level enum code."""


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
        self._max_code = size_code(max_chunk)
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
        if not data:
            self._reject()
            return
        self._current, command = split_command(data[0])
        if not write_crc_ok(data):
            self._reject()
            return
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
        self._apply_ack(state, write_ack(data))
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
        """The :class:`StatusFlags` bits of ``state`` after the last write (plain int: cheap)."""
        flags = _LINKED if state.linked else 0
        if self._write_error:
            flags |= _WRITE_ERROR
        return flags

    def _unlink(self, state: _SlaveChannel) -> None:
        state.reset()
        state.linked = False
        self.stats.closes += 1

    def _on_hello(self, state: _SlaveChannel, data: bytes) -> None:
        try:
            version, code = decode_hello(data)
        except MalformedMessage:
            self._reject()
            return
        self.stats.hellos += 1
        if version != LINK_VERSION:
            chosen = 0
            state.linked = False
            state.chunk = MIN_CHUNK
        else:
            chosen = min(code, self._max_code)
            state.linked = True
            state.chunk = 1 << chosen
        state.reset()
        ack = HelloAck(
            LINK_VERSION, self._max_code, chosen, self._epoch, self._current, self._flags(state)
        )
        self._reply = ack.encode()
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
            length = chunk_payload_len(len(frame), state.out_offset, state.chunk)
            last = state.out_offset + length == len(frame)
            flags = 0
            if last:
                flags = _LAST | _MORE if len(state.out) > 1 else _LAST
            if notify:
                flags |= _NOTIFY
            payload = frame[state.out_offset : state.out_offset + length]
            chunk = Chunk(state.g2h_seq, state.out_index, flags, payload)
            state.out_chunk = ChunkReply(self._epoch, self._current, chunk).encode()
            state.out_chunk_len = length
            self.stats.chunks_sent += 1
        else:
            self.stats.retransmissions += 1
        return state.out_chunk

    def _on_put(self, state: _SlaveChannel, data: bytes) -> None:
        try:
            chunk = decode_put(data).chunk
        except MalformedMessage:
            self._reject()
            return
        if chunk.seq == state.h2g_last:
            self.stats.duplicates += 1  # retransmission of an accepted chunk: acknowledge again
            return
        if chunk.seq != (state.h2g_last + 1) % SEQ_MOD or chunk.index != state.rx_index:
            self._reject()
            return
        if len(state.rx_buf) + len(chunk.payload) > MAX_FRAME:
            self._reject()
            return
        state.rx_buf += chunk.payload
        state.h2g_last = chunk.seq
        state.rx_index += 1
        self.stats.chunks_received += 1
        if chunk.flags & _LAST:
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
        block = StatusBlock(
            code,
            self._epoch,
            self._current,
            self._flags(state),
            state.h2g_last,
            state.g2h_seq,
            state.out_index,
            frame_len,
            len(state.out),
        )
        return block.encode()
