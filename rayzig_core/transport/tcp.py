"""TCP transport (PROTOCOL.md §2.2): length-prefixed frames over asyncio streams.

Used to reach the virtual gateway and the bridge on a single-board computer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno

from rayzig_core.errors import DeviceNotFoundError, FrameError, TransportError
from rayzig_core.protocol.frames import StreamDeframer, length_prefixed

READ_SIZE = 65536
DEFAULT_CONNECT_TIMEOUT = 10.0


class TcpTransport:
    """One TCP connection carrying length-prefixed frames."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, description: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._description = description
        self._deframer = StreamDeframer()
        self._ready: list[bytes] = []

    @property
    def description(self) -> str:
        """Where this transport leads."""
        return self._description

    async def send(self, frame: bytes) -> None:
        """Send one frame, waiting for the socket buffer to drain."""
        if self._writer.is_closing():
            raise TransportError(f"connection to {self._description} is closed")
        try:
            self._writer.write(length_prefixed(frame))
            await self._writer.drain()
        except (ConnectionError, OSError) as err:
            raise TransportError(f"connection to {self._description} lost: {err}") from err

    async def receive(self) -> bytes:
        """Return the next frame; TransportError at EOF (FrameError if EOF cut a frame)."""
        while not self._ready:
            try:
                data = await self._reader.read(READ_SIZE)
            except (ConnectionError, OSError) as err:
                raise TransportError(f"connection to {self._description} lost: {err}") from err
            if not data:
                if self._deframer.pending:
                    raise FrameError(f"{self._description} closed in the middle of a frame")
                raise TransportError(f"{self._description} closed the connection")
            self._ready.extend(self._deframer.feed(data))
        return self._ready.pop(0)

    async def close(self) -> None:
        """Close the socket and wait for it to finish closing."""
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class TcpConnector:
    """Opens TCP transports to a host and port (virtual gateway or bridge)."""

    def __init__(self, host: str, port: int, *, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    @property
    def description(self) -> str:
        """``tcp://host:port``."""
        return f"tcp://{self.host}:{self.port}"

    async def connect(self) -> TcpTransport:
        """Connect, mapping failures to errors that say what to check."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError as err:
            raise TransportError(
                f"No answer from {self.description} within {self.timeout:.0f} s: check the host "
                "and port, and that the gateway or bridge is running."
            ) from err
        except OSError as err:
            if err.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                raise DeviceNotFoundError(
                    f"Nothing listens at {self.description}: start the virtual gateway or the "
                    "bridge, or correct the host and port."
                ) from err
            raise TransportError(f"Cannot connect to {self.description}: {err}") from err
        return TcpTransport(reader, writer, self.description)
