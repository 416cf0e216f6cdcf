"""``rayzig update-server``: serve a signed firmware catalogue directory over HTTP (§10.2)."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayzig_core.cli.errors import EXIT_CONNECT, EXIT_OK, CliError
from rayzig_core.cli.output import Out
from rayzig_core.cli.signals import wait_for_stop
from rayzig_core.cli.spec import handler
from rayzig_core.firmware import CATALOGUE_FILE, serve


@dataclass(frozen=True, slots=True)
class UpdateServerOptions:
    """The catalogue directory, where to listen, and how long (None: until stopped)."""

    directory: str
    host: str
    port: int
    run_for: float | None


@handler(UpdateServerOptions)
def update_server(options: UpdateServerOptions, out: Out) -> Coroutine[Any, Any, int]:
    """Check the catalogue directory, then serve it until Ctrl-C or SIGTERM."""
    directory = Path(options.directory)
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory.")
    if not (directory / CATALOGUE_FILE).is_file():
        Out.note(
            f"{directory} has no {CATALOGUE_FILE} yet; publish an image with "
            "`rayzig firmware-publish`."
        )
    return _serve_updates(directory, options, out)


async def _serve_updates(directory: Path, options: UpdateServerOptions, out: Out) -> int:
    """Serve ``directory`` until stopped."""
    host, port = options.host, options.port
    try:
        runner = await serve(directory, host, port)
    except OSError as err:
        raise CliError(
            f"Cannot listen on {host}:{port} ({err.strerror or err}); choose another "
            "port with --port or stop the program using it.",
            EXIT_CONNECT,
        ) from None
    try:
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}/"
        out.result(
            {
                "event": "listening",
                "url": url,
                "host": bound_host,
                "port": bound_port,
                "directory": str(directory),
            },
            f"Serving the firmware catalogue in {directory} at {url}. Press Ctrl-C to stop.",
        )
        await wait_for_stop(options.run_for)
    finally:
        await runner.cleanup()
    if out.json:
        out.record({"event": "stopped"}, "")
    else:
        Out.note("Update server stopped.")
    return EXIT_OK
