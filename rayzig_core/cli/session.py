"""The keyed session of a paired command: the key file's key, to where the options say."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from rayzig_core.cli.connection import ClientOptions, make_client, resolve_connection
from rayzig_core.cli.keyfile import KeyFile, require_key_file
from rayzig_core.client import RayzigClient


@contextlib.asynccontextmanager
async def paired_session(
    options: ClientOptions, key: KeyFile | None = None
) -> AsyncIterator[tuple[RayzigClient, KeyFile]]:
    """A connected client with the pairing's key (PROTOCOL.md §3.2, Noise_IK); closed after."""
    key = key or require_key_file(options.key_path)
    client = make_client(options, resolve_connection(options, key.connection), key.credentials)
    try:
        await client.connect()
        yield client, key
    finally:
        await client.close()
