"""Transport frames (PROTOCOL.md §2): the unit every transport carries, and TCP length prefixes.

A frame is ``kind (1 byte) ‖ data``; its whole length is at most :data:`MAX_FRAME` bytes. Over TCP
each frame is preceded by its length as a 16-bit big-endian integer (§2.2). The I2C link layer
(§11) carries the same frames in CRC-checked chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from rayzig_core.errors import FrameError

MAX_FRAME = 4096
"""Hard limit of one frame (kind byte included), sized for a small MCU's buffers (§2.1)."""
LENGTH_PREFIX = 2


class FrameKind(IntEnum):
    """First byte of a frame (§2.1)."""

    HELLO_XX = 0x01
    """First handshake message of Noise_XX (first contact, pairing)."""
    HELLO_IK = 0x02
    """First handshake message of Noise_IK (a paired client's key-only session)."""
    HANDSHAKE = 0x03
    """Any later handshake message."""
    TRANSPORT = 0x10
    """An encrypted catalogue message."""


_KINDS = {int(kind): kind for kind in FrameKind}


@dataclass(frozen=True, slots=True)
class Frame:
    """A parsed frame: its kind and its data (Noise message bytes)."""

    kind: FrameKind
    data: bytes

    def to_bytes(self) -> bytes:
        """Serialise as ``kind ‖ data``, refusing oversized frames."""
        if len(self.data) + 1 > MAX_FRAME:
            raise FrameError(f"frame of {len(self.data) + 1} bytes exceeds {MAX_FRAME}")
        return bytes((self.kind,)) + self.data


def parse_frame(raw: bytes) -> Frame:
    """Parse ``kind ‖ data``; FrameError for empty, oversized or unknown-kind frames."""
    if not raw:
        raise FrameError("empty frame")
    if len(raw) > MAX_FRAME:
        raise FrameError(f"frame of {len(raw)} bytes exceeds {MAX_FRAME}")
    kind = _KINDS.get(raw[0])
    if kind is None:
        raise FrameError(f"unknown frame kind 0x{raw[0]:02x}")
    return Frame(kind, bytes(raw[1:]))


def length_prefixed(raw: bytes) -> bytes:
    """Prefix a frame with its 16-bit big-endian length for a byte stream (§2.2)."""
    if not 0 < len(raw) <= MAX_FRAME:
        raise FrameError(f"frame length {len(raw)} outside 1..{MAX_FRAME}")
    return len(raw).to_bytes(LENGTH_PREFIX, "big") + raw


class StreamDeframer:
    """Incremental splitter of a byte stream into frames (sans-I/O; §2.2).

    Feed whatever bytes arrive; complete frames come out. An impossible length poisons the
    deframer: the stream cannot be resynchronised, so the connection must close.
    """

    __slots__ = ("_buffer", "_failed")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the frames completed by them."""
        if self._failed:
            raise FrameError("stream already failed")
        self._buffer += data
        frames: list[bytes] = []
        while len(self._buffer) >= LENGTH_PREFIX:
            length = int.from_bytes(self._buffer[:LENGTH_PREFIX], "big")
            if not 0 < length <= MAX_FRAME:
                self._failed = True
                raise FrameError(f"frame length {length} outside 1..{MAX_FRAME}")
            end = LENGTH_PREFIX + length
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[LENGTH_PREFIX:end]))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a frame (non-zero at EOF means truncation)."""
        return len(self._buffer)
