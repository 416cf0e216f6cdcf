"""The replay cache: answers to mutating requests, so that a retried request acts once (§5.3).

Answers are remembered per (client key, request id), least recently used forgotten first, with a
fingerprint of the request they answer: a retry (the same request) gets the remembered answer, a
different request under a remembered id is refused (``REQUEST_ID_REUSED``). The fingerprint leaves
out secrets (passwords, the recovery secret): the gateway derives nothing from a secret but its
verifiers. An unenrolled session's answers (Pair, ChangePassword, RecoverPassword) go to a small
cache of their own, so that a flood of them cannot evict enrolled clients' entries; a retry is
looked up in both, since a Pair retried after it succeeded comes from a key that is enrolled by
then. A request still being handled (waiting for password work, §6.5) is *in flight*: a retry of
it gets the same answer when it comes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from rayzig_core.protocol import messages as m
from rayzig_core.virtual_gateway.device.state import ReplayEntry

REPLAY_CACHE_SIZE = 1024
"""Mutating requests of enrolled clients remembered per gateway for idempotent retries."""
PRE_AUTH_REPLAY_CACHE_SIZE = 64
"""Answers to mutating requests of unenrolled sessions, kept apart (see the module docstring)."""
FINGERPRINT_BYTES = 16
"""Length of a request's fingerprint (BLAKE2b)."""
SECRET_FIELDS = ("password", "secret")
"""Request fields whose name ends so hold secrets, which fingerprints leave out."""

ReplayKey = tuple[bytes, int]
"""(client key, request id)."""
Reply = Callable[[m.Response], None]
"""Sends an answer on the link that asked."""


def request_fingerprint(request_id: int, request: m.Request) -> bytes:
    """What tells a retry from another request under the same id (§5.3).

    A digest of the request's encoding with its secret fields emptied.
    """
    secret = {
        item.name: ""
        for item in dataclasses.fields(request)  # type: ignore[arg-type]
        if item.name.endswith(SECRET_FIELDS)
    }
    blanked = dataclasses.replace(request, **secret)  # type: ignore[type-var]
    return hashlib.blake2b(m.encode(request_id, blanked), digest_size=FINGERPRINT_BYTES).digest()


@dataclass(frozen=True, slots=True)
class Remembered:
    """An answer in the cache and the fingerprint of the request it answered.

    None for an entry stored before fingerprints existed: any request under its id gets it.
    """

    answer: m.Response
    fingerprint: bytes | None

    def answers(self, fingerprint: bytes) -> bool:
        """Whether a request with ``fingerprint`` is a retry of the one remembered."""
        return self.fingerprint is None or self.fingerprint == fingerprint


@dataclass(slots=True)
class InFlight:
    """A mutating request being handled, and the retries of it waiting for its answer."""

    fingerprint: bytes
    retries: list[Reply] = field(default_factory=list)


class ReplayCache:
    """The two least-recently-used caches of answers, for enrolled and unenrolled sessions."""

    def __init__(
        self, enrolled: tuple[ReplayEntry, ...] = (), pre_auth: tuple[ReplayEntry, ...] = ()
    ) -> None:
        self.enrolled: OrderedDict[ReplayKey, Remembered] = OrderedDict(
            ((key, request_id), Remembered(answer, print_))
            for key, request_id, answer, print_ in enrolled
        )
        self.pre_auth: OrderedDict[ReplayKey, Remembered] = OrderedDict(
            ((key, request_id), Remembered(answer, print_))
            for key, request_id, answer, print_ in pre_auth
        )
        self.in_flight: dict[ReplayKey, InFlight] = {}

    def lookup(self, key: ReplayKey) -> Remembered | None:
        """The answer already sent for this id, if it is remembered (in either cache)."""
        for cache in (self.enrolled, self.pre_auth):
            cached = cache.get(key)
            if cached is not None:
                cache.move_to_end(key)
                return cached
        return None

    def remember(
        self, key: ReplayKey, print_: bytes, answer: m.Response, *, enrolled: bool
    ) -> None:
        """Keep ``answer`` for retries, forgetting the least recently used beyond the limit."""
        cache, limit = (
            (self.enrolled, REPLAY_CACHE_SIZE)
            if enrolled
            else (self.pre_auth, PRE_AUTH_REPLAY_CACHE_SIZE)
        )
        cache[key] = Remembered(answer, print_)
        while len(cache) > limit:
            cache.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer (a factory reset: they name users)."""
        self.enrolled.clear()
        self.pre_auth.clear()
        self.in_flight.clear()

    def entries(self, *, enrolled: bool) -> tuple[ReplayEntry, ...]:
        """One cache's answers as stored, least recently used first."""
        cache = self.enrolled if enrolled else self.pre_auth
        return tuple(
            (key, request_id, entry.answer, entry.fingerprint)
            for (key, request_id), entry in cache.items()
        )
