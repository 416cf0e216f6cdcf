"""A request id reused for a different request is refused; a true retry is answered (§5.3).

The replay cache remembers a fingerprint of each mutating request with its answer, so a retry
(same client key, id and content) gets the cached answer without acting again, while another
request under a remembered id gets ``REQUEST_ID_REUSED`` (``RequestIdReusedError``) and changes
nothing, also after a gateway restart.
"""

from __future__ import annotations

import pytest

from rayzig_core import ErrorCode, RequestError, RequestIdReusedError
from rayzig_core.client import error_from_response
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from tests.core.conftest import (
    OWNER,
    OWNER_PASSWORD,
    RawSession,
    commands,
    output_state,
    pair,
    switchable_output,
)

WRONG = "wrong wrong wrong wrong"


async def test_a_reused_id_with_other_content_is_refused_and_a_retry_is_answered(
    owned: GatewayThread,
) -> None:
    _, owner = await pair(owned)
    module_id, index = switchable_output(owned)
    session = await RawSession.keyed(owned.port, owner)
    try:
        switched = await session.request(5, m.SetOutput(module_id, index, on=True))
        assert isinstance(switched, m.OutputResponse)
        acted = len(commands(owned, module_id))
        # The same request again: the cached answer, not a second command.
        assert await session.request(5, m.SetOutput(module_id, index, on=True)) == switched
        # Another request under the same id: refused, and nothing happens.
        reused = await session.request(5, m.SetOutput(module_id, index, on=False))
        assert isinstance(reused, m.ErrorResponse)
        assert reused.code is ErrorCode.REQUEST_ID_REUSED
        assert "new request id" in reused.message
        assert output_state(owned, module_id, index) is True
        assert len(commands(owned, module_id)) == acted
        # Another mutating request type under the id: refused as well.
        other = await session.request(5, m.SetUtilityOutput(module_id, index, controllable=True))
        assert isinstance(other, m.ErrorResponse)
        assert other.code is ErrorCode.REQUEST_ID_REUSED
        # The refusal was not remembered in place of the answer: the retry still gets it.
        assert await session.request(5, m.SetOutput(module_id, index, on=True)) == switched
    finally:
        await session.close()

    # Remembered across a restart.
    owned.restart()
    session = await RawSession.keyed(owned.port, owner)
    try:
        assert await session.request(5, m.SetOutput(module_id, index, on=True)) == switched
        reused = await session.request(5, m.SetOutput(module_id, index, on=False))
        assert isinstance(reused, m.ErrorResponse)
        assert reused.code is ErrorCode.REQUEST_ID_REUSED
    finally:
        await session.close()


async def test_the_client_raises_a_typed_error_for_a_reused_id() -> None:
    error = error_from_response(m.ErrorResponse(ErrorCode.REQUEST_ID_REUSED, "reused"))
    assert isinstance(error, RequestIdReusedError)
    assert isinstance(error, RequestError)
    assert error.code == ErrorCode.REQUEST_ID_REUSED
    with pytest.raises(RequestIdReusedError):
        raise error


async def test_an_unenrolled_sessions_reused_id_is_refused_and_secrets_are_not_kept(
    owned: GatewayThread,
) -> None:
    session = await RawSession.open(owned.port)
    try:
        first = await session.request(7, m.Pair("nobody", WRONG, "x"))
        assert isinstance(first, m.ErrorResponse)
        assert first.code is ErrorCode.INVALID_CREDENTIALS
        assert await session.request(7, m.Pair("nobody", WRONG, "x")) == first
        reused = await session.request(7, m.Pair(OWNER, OWNER_PASSWORD, "x"))
        assert isinstance(reused, m.ErrorResponse)
        assert reused.code is ErrorCode.REQUEST_ID_REUSED
    finally:
        await session.close()
    # Passwords are left out of the fingerprint: only a verifier is ever derived from one.
    assert owned.call(lambda g: g.users[OWNER].throttle.failures) == 0
    assert owned.call(lambda g: len(g.clients)) == 0
