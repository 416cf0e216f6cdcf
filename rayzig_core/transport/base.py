"""What a transport is to the client: an async pipe of whole frames (PROTOCOL.md §2).

Transports move opaque frames and know nothing of their content, so the bridge and the I2C link
can never read a session. A :class:`Connector` makes a fresh transport for every (re)connection.
"""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    """A connected, ordered, reliable pipe of frames (each at most MAX_FRAME bytes)."""

    @property
    def description(self) -> str:
        """Where this transport leads, for logs and errors (e.g. ``tcp://127.0.0.1:7780``)."""
        ...

    async def send(self, frame: bytes) -> None:
        """Send one frame; raise TransportError if the link is gone."""
        ...

    async def receive(self) -> bytes:
        """Wait for the next frame; raise TransportError (or a subclass) when the link ends."""
        ...

    async def close(self) -> None:
        """Close the link and release every resource (tasks, threads, sockets) it holds."""
        ...


class Connector(Protocol):
    """Opens transports to one gateway; the client calls it again for every reconnection."""

    @property
    def description(self) -> str:
        """Where connections go, for logs and errors."""
        ...

    async def connect(self) -> Transport:
        """Open a new transport; raise TransportError subclasses that say what to do on failure."""
        ...
