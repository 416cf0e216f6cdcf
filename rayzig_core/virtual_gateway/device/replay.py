"""The replay cache: answers to mutating requests, so that a retried request acts once (§5.3).

Answers are remembered per (client key, request id), least recently used forgotten first. An
unenrolled session's answers (Pair, ChangePassword, RecoverPassword) go to a small cache of their
own, so that a flood of them cannot evict enrolled clients' entries; a retry is looked up in both,
since a Pair retried after it succeeded comes from a key that is enrolled by then.
"""

from __future__ import annotations

from collections import OrderedDict

from rayzig_core.protocol import messages as m
from rayzig_core.virtual_gateway.device.state import ReplayEntry

REPLAY_CACHE_SIZE = 1024
"""Mutating requests of enrolled clients remembered per gateway for idempotent retries."""
PRE_AUTH_REPLAY_CACHE_SIZE = 64
"""Answers to mutating requests of unenrolled sessions, kept apart (see the module docstring)."""

ReplayKey = tuple[bytes, int]
"""(client key, request id)."""


class ReplayCache:
    """The two least-recently-used caches of answers, for enrolled and unenrolled sessions."""

    def __init__(
        self, enrolled: tuple[ReplayEntry, ...] = (), pre_auth: tuple[ReplayEntry, ...] = ()
    ) -> None:
        self.enrolled: OrderedDict[ReplayKey, m.Response] = OrderedDict(
            ((key, request_id), answer) for key, request_id, answer in enrolled
        )
        self.pre_auth: OrderedDict[ReplayKey, m.Response] = OrderedDict(
            ((key, request_id), answer) for key, request_id, answer in pre_auth
        )

    def lookup(self, key: ReplayKey) -> m.Response | None:
        """The answer already sent for this request, if it is remembered (in either cache)."""
        for cache in (self.enrolled, self.pre_auth):
            cached = cache.get(key)
            if cached is not None:
                cache.move_to_end(key)
                return cached
        return None

    def remember(self, key: ReplayKey, answer: m.Response, *, enrolled: bool) -> None:
        """Keep ``answer`` for retries, forgetting the least recently used beyond the limit."""
        cache, limit = (
            (self.enrolled, REPLAY_CACHE_SIZE)
            if enrolled
            else (self.pre_auth, PRE_AUTH_REPLAY_CACHE_SIZE)
        )
        cache[key] = answer
        while len(cache) > limit:
            cache.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer (a factory reset: they name users)."""
        self.enrolled.clear()
        self.pre_auth.clear()

    def entries(self, *, enrolled: bool) -> tuple[ReplayEntry, ...]:
        """One cache's answers as stored, least recently used first."""
        cache = self.enrolled if enrolled else self.pre_auth
        return tuple((key, request_id, answer) for (key, request_id), answer in cache.items())
