"""How the gateway answers: what fits a frame, refusals and the INTERNAL answer (PROTOCOL.md §9).

A handler refuses a request by raising :class:`RequestRefused` with the ErrorResponse to send;
every error message is cut to the limits of §9 so that an answer always fits a frame (§5.1).
"""

from __future__ import annotations

import logging

from rayzig_core.errors import FirmwareError, RequestError
from rayzig_core.protocol import messages as m
from rayzig_core.protocol.frames import MAX_FRAME

_LOGGER = logging.getLogger(__name__)

MAX_PLAINTEXT = MAX_FRAME - 1 - 16
"""Largest answer a frame carries: the frame minus its type byte and the AEAD tag (§2.1, §3.5)."""
MAX_MESSAGE = 1024
"""Longest error message, in code points (§9): the codec's text limit."""
MAX_MESSAGE_BYTES = 2048
"""Longest error message in UTF-8, so that an ErrorResponse always fits one frame."""

INTERNAL = m.ErrorResponse(
    m.ErrorCode.INTERNAL,
    "The gateway failed unexpectedly while handling this request; check the state before "
    "trying again.",
)
"""The answer to a request whose handling failed with a bug; the details go to the log only."""


class RequestRefused(RequestError):  # noqa: N818 - internal control flow carrying an ErrorResponse
    """Raised inside a handler to answer a request with an ErrorResponse."""

    def __init__(
        self,
        code: m.ErrorCode,
        message: str,
        *,
        retry_after: float | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(int(code), message)
        self.response = m.ErrorResponse(code, message, retry_after, reasons)


def bounded(message: str) -> str:
    """Cut an error message to the limits of §9, so that an answer is always decodable."""
    if len(message) <= MAX_MESSAGE and len(message.encode("utf-8", "replace")) <= MAX_MESSAGE_BYTES:
        return message
    cut = message[: MAX_MESSAGE - 1]
    while len(cut.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES - 3:
        cut = cut[: len(cut) * 3 // 4]
    return cut + "…"


def answer_for(error: Exception, request: m.Request) -> m.Response:
    """The answer to a request whose handling raised ``error``.

    A refusal's own ErrorResponse, a firmware or request error's code, else INTERNAL: a bug must
    not cost the client its link (§9).
    """
    if isinstance(error, RequestRefused):
        return error.response
    if isinstance(error, (FirmwareError, RequestError)):
        return m.ErrorResponse(m.ErrorCode(error.code), str(error))
    _LOGGER.error(
        "Unexpected error while handling %s; answering INTERNAL",
        type(request).__name__,
        exc_info=error,
    )
    return INTERNAL
