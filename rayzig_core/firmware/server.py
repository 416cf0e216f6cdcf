"""The small HTTP update server: publishes a catalogue directory made by publish_image (§10.2).

Serves ``/catalogue.json`` and ``/images/<name>`` for exactly the image names the catalogue lists;
anything else, including any attempt at path traversal, is 404. The server needs no keys and is not
trusted: clients verify every manifest signature and image hash themselves. It reads the catalogue
leniently (a broken one serves no images) because checking it is the client's job.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aiohttp import web

from rayzig_core.firmware.catalogue import CATALOGUE_FILE

_LOGGER = logging.getLogger(__name__)

_DIRECTORY_KEY = web.AppKey("directory", Path)


def _listed_images(directory: Path) -> frozenset[str]:
    """Image names the catalogue lists (plain file names only); empty if it is absent or bad."""
    try:
        document = json.loads((directory / CATALOGUE_FILE).read_bytes())
    except (OSError, ValueError) as err:
        _LOGGER.warning("Cannot read %s: %s", directory / CATALOGUE_FILE, err)
        return frozenset()
    entries = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return frozenset()
    names: set[str] = set()
    for entry in entries:
        name = entry.get("image") if isinstance(entry, dict) else None
        if (
            isinstance(name, str)
            and name
            and name == Path(name).name
            and not name.startswith(".")
            and "\\" not in name
            and "\x00" not in name
            and name != CATALOGUE_FILE
        ):
            names.add(name)
    return frozenset(names)


async def _catalogue(request: web.Request) -> web.StreamResponse:
    directory = request.app[_DIRECTORY_KEY]
    try:
        body = (directory / CATALOGUE_FILE).read_bytes()
    except OSError as err:
        raise web.HTTPNotFound(text="no catalogue published\n") from err
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-cache"}
    )


async def _image(request: web.Request) -> web.StreamResponse:
    directory = request.app[_DIRECTORY_KEY]
    name = request.match_info["name"]
    if name not in _listed_images(directory):
        raise web.HTTPNotFound(text="no such image\n")
    path = (directory / name).resolve()
    if path.parent != directory.resolve() or not path.is_file():
        raise web.HTTPNotFound(text="no such image\n")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


def make_app(directory: Path) -> web.Application:
    """Return an aiohttp application serving the catalogue directory ``directory``."""
    app = web.Application()
    app[_DIRECTORY_KEY] = Path(directory)
    app.router.add_get("/" + CATALOGUE_FILE, _catalogue)
    app.router.add_get("/images/{name}", _image)
    return app


async def serve(directory: Path, host: str = "127.0.0.1", port: int = 8765) -> web.AppRunner:
    """Start serving ``directory`` on ``host``:``port``; stop with ``await runner.cleanup()``.

    ``port=0`` picks a free port; the bound address is in ``runner.addresses``.
    """
    runner = web.AppRunner(make_app(directory), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
