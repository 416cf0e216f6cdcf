"""Plain HTTP to the loopback servers of the rehearsal (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from .processes import LOOPBACK, RehearsalError

LOOPBACK_HTTP = f"http://{LOOPBACK}:"


def _open(
    url: str,
    timeout: float,
    method: str = "GET",
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    if not url.startswith(LOOPBACK_HTTP):
        msg = f"the rehearsal only talks to loopback servers, not {url}"
        raise RehearsalError(msg)
    # S310: the scheme and host are checked above (plain http on loopback only).
    request = urllib.request.Request(  # noqa: S310
        url, data=data, headers=dict(headers or {}), method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def get_text(url: str, timeout: float) -> tuple[int, str]:
    """GET a page: its status and text. Raises URLError/OSError while the server is not up."""
    status, body = _open(url, timeout)
    return status, body.decode("utf-8", errors="replace")


def request_json(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Mapping[str, Any] | None = None,
    form: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    expect: int = 200,
) -> Any:
    """Send a JSON (or form) request, return the decoded JSON answer; any other status fails.

    The request body is never part of an error message: it may hold a password.
    """
    headers = {"Accept": "application/json"}
    data: bytes | None = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, answer = _open(url, timeout, method, data, headers)
    if status != expect:
        text = answer.decode("utf-8", errors="replace")[:2000]
        msg = f"{method} {urllib.parse.urlsplit(url).path} answered {status}: {text}"
        raise RehearsalError(msg)
    return json.loads(answer) if answer else None
