"""A local package index (pypiserver) on a loopback port, standing in for PyPI before release."""

from __future__ import annotations

import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from .environment import DISTRIBUTION, Tools, clean_env
from .http_client import get_text
from .processes import LOOPBACK, Service, free_port, wait_until

START_TIMEOUT = 60.0
_DOWNLOAD = re.compile(r'"GET /packages/(?P<file>[^ ?#]+)[^ ]* HTTP/1\.\d" 200 ')


@dataclass(frozen=True)
class PackageIndex:
    """The running index: its simple-API URL and its request log."""

    url: str
    service: Service

    def downloads(self) -> list[str]:
        """File names downloaded from the index so far, in order (from its access log)."""
        text = self.service.output.read_text(encoding="utf-8", errors="replace")
        return [match["file"] for match in _DOWNLOAD.finditer(text)]


def start(tools: Tools, packages: Path, log: Path, workdir: Path) -> PackageIndex:
    """Serve ``packages``: no uploads, and no fallback to PyPI.

    Without the fallback, a package it does not hold is looked up on the next index, exactly as
    if it were missing.
    """
    port = free_port()
    service = Service(
        "package index",
        [
            str(tools.pypi_server),
            "run",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--authenticate",
            ".",
            "--passwords",
            ".",
            "--disable-fallback",
            "--hash-algo",
            "sha256",
            "--verbose",
            str(packages),
        ],
        output=log,
        env=clean_env(),
        cwd=workdir,
    ).start()
    base = f"http://{LOOPBACK}:{port}"
    project = f"{base}/simple/{DISTRIBUTION}/"
    wheels = sorted(p.name for p in packages.glob("*.whl"))

    def lists_the_wheel() -> bool | None:
        try:
            status, page = get_text(project, timeout=2)
        except (urllib.error.URLError, OSError):
            return None
        return True if status == 200 and all(name in page for name in wheels) else None

    wait_until(f"{project} listing {wheels}", lists_the_wheel, timeout=START_TIMEOUT, alive=service)
    return PackageIndex(url=f"{base}/simple/", service=service)
