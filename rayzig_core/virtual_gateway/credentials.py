"""Secrets a gateway keeps: password verifiers, recovery secret, default password, login throttle.

The gateway never stores a password: only a salted scrypt verifier (:class:`PasswordVerifier`).
Secrets are random per gateway (ETSI EN 303 645 5.1-1, 5.4-3), never derived from a serial
number. The throttle backs off exponentially and caps consecutive failures (NIST SP 800-63B,
EN 303 645 5.1-5); the gateway persists it so a reboot does not reset it.
This module is pure: no I/O, no clock (callers pass ``now``), no global state.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from typing import Final

from rayzig_core.password_policy import normalize_password
from rayzig_core.storage import StoredValueError

SALT_BYTES: Final = 16
"""Length of a fresh scrypt salt."""

DIGEST_BYTES: Final = 32
"""Length of the scrypt output stored in a fresh verifier."""

SCRYPT_MAX_N: Final = 2**20
"""Largest scrypt cost ``n`` a stored verifier may name (bounds work for a tampered store)."""

SCRYPT_MAX_MEMORY: Final = 256 * 1024 * 1024
"""Most memory (128 * n * r bytes) a stored verifier may make scrypt use."""

SCRYPT_MAX_R: Final = 32
"""Largest scrypt block size ``r`` a stored verifier may name."""

SCRYPT_MAX_P: Final = 16
"""Largest scrypt parallelism ``p`` a stored verifier may name."""

VERIFIER_KDF: Final = "scrypt"
"""KDF name stored with a verifier, so a later format (e.g. Argon2id) can be told apart."""

CROCKFORD_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford base32 digits: no I, L, O or U, so a secret read off a screen is not misread."""

RECOVERY_SECRET_CHARS: Final = 25
"""Crockford digits in a recovery secret (125 random bits)."""

RECOVERY_GROUP: Final = 5
"""Digits per dash-separated group of a displayed recovery secret."""

DEFAULT_PASSWORD_ALPHABET: Final = "23456789abcdefghjkmnpqrstuvwxyz"  # noqa: S105 -- an alphabet
"""Lower-case letters and digits of a label password, minus look-alikes 0, 1, i, l and o."""

DEFAULT_PASSWORD_GROUPS: Final = 4
"""Groups of a default (label) password."""

DEFAULT_PASSWORD_GROUP_CHARS: Final = 4
"""Characters per group of a default (label) password (16 in all, about 79 random bits)."""

THROTTLE_FREE_ATTEMPTS: Final = 3
"""Failed attempts allowed before the throttle starts to impose delays."""

THROTTLE_BASE_SECONDS: Final = 1.0
"""Delay after the first throttled failure; it doubles with each further failure."""

THROTTLE_MAX_SECONDS: Final = 3600.0
"""Longest delay between two attempts."""

MAX_CONSECUTIVE_FAILURES: Final = 100
"""Consecutive failures after which password attempts stop until a reset (NIST SP 800-63B)."""

_SCRYPT_MAXMEM: Final = SCRYPT_MAX_MEMORY + 2 * 1024 * 1024
"""OpenSSL's memory limit for one run: the largest verifier allowed, plus its small buffers."""

_MAX_DOUBLINGS: Final = 32  # 2**32 s far exceeds THROTTLE_MAX_SECONDS; bounds the exponent


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordVerifier:
    """Salted scrypt digest of a password: lets the gateway check a password without storing it.

    Stored as it is in the gateway's state file (bytes as hex, PROTOCOL.md §12), with the name of
    its KDF so that a later one (e.g. Argon2id) can be told apart.
    """

    kdf: str = VERIFIER_KDF
    salt: bytes
    n: int
    r: int
    p: int
    digest: bytes

    def __post_init__(self) -> None:
        """Refuse parameters scrypt cannot use or that would cost unbounded time or memory."""
        if self.kdf != VERIFIER_KDF:
            raise StoredValueError(f"Password verifier: unsupported kdf, expected {VERIFIER_KDF!r}")
        if not SALT_BYTES <= len(self.salt) <= 64:
            raise StoredValueError(f"Password verifier: salt must be {SALT_BYTES} to 64 bytes long")
        if not 16 <= len(self.digest) <= 64:
            raise StoredValueError("Password verifier: digest must be 16 to 64 bytes long")
        if not 2 <= self.n <= SCRYPT_MAX_N or self.n & (self.n - 1):
            raise StoredValueError(
                f"Password verifier: n must be a power of 2 from 2 to {SCRYPT_MAX_N}"
            )
        if not 1 <= self.r <= SCRYPT_MAX_R:
            raise StoredValueError(f"Password verifier: r must be from 1 to {SCRYPT_MAX_R}")
        if not 1 <= self.p <= SCRYPT_MAX_P:
            raise StoredValueError(f"Password verifier: p must be from 1 to {SCRYPT_MAX_P}")
        if 128 * self.n * self.r > SCRYPT_MAX_MEMORY:
            raise StoredValueError("Password verifier: n * r needs too much memory")


def _scrypt(password: str, verifier: PasswordVerifier, length: int) -> bytes:
    """Derive ``length`` bytes from the normalised password with a verifier's salt and cost.

    OpenSSL's scrypt through :func:`hashlib.scrypt`, which releases the GIL while it runs, so a
    check on a worker thread leaves the gateway's event loop free (PROTOCOL.md §6.5).
    """
    # surrogatepass: a lone surrogate (never valid on the wire) must not make a check raise.
    secret = normalize_password(password).encode("utf-8", "surrogatepass")
    return hashlib.scrypt(
        secret,
        salt=verifier.salt,
        n=verifier.n,
        r=verifier.r,
        p=verifier.p,
        maxmem=_SCRYPT_MAXMEM,
        dklen=length,
    )


def make_verifier(password: str, *, n: int = 2**15, r: int = 8, p: int = 1) -> PasswordVerifier:
    """Make a verifier for a new password (NFKC-normalised, fresh random salt, scrypt n/r/p)."""
    salt = secrets.token_bytes(SALT_BYTES)
    template = PasswordVerifier(salt=salt, n=n, r=r, p=p, digest=bytes(DIGEST_BYTES))  # validates
    digest = _scrypt(password, template, DIGEST_BYTES)
    return PasswordVerifier(salt=salt, n=n, r=r, p=p, digest=digest)


def check_verifier(verifier: PasswordVerifier, password: str) -> bool:
    """Tell in constant time whether a password matches a verifier; a wrong one never raises."""
    candidate = _scrypt(password, verifier, len(verifier.digest))
    return hmac.compare_digest(candidate, verifier.digest)


def _random_string(alphabet: str, length: int) -> str:
    """Return ``length`` characters drawn uniformly from ``alphabet`` by the OS CSPRNG."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _grouped(text: str, size: int) -> str:
    """Split ``text`` into dash-separated groups of ``size`` characters."""
    return "-".join(text[start : start + size] for start in range(0, len(text), size))


def generate_recovery_secret() -> str:
    """Return a new random recovery secret, 25 Crockford base32 digits in dashed groups of 5.

    Drawn from :func:`secrets.token_bytes`, never derived from a serial number or other identifier.
    """
    bits = RECOVERY_SECRET_CHARS * 5
    value = int.from_bytes(secrets.token_bytes((bits + 7) // 8), "big") >> (-bits % 8)
    digits = "".join(
        CROCKFORD_ALPHABET[(value >> (5 * index)) & 0x1F]
        for index in reversed(range(RECOVERY_SECRET_CHARS))
    )
    return _grouped(digits, RECOVERY_GROUP)


def normalize_recovery_secret(text: str) -> str:
    """Return a typed recovery secret in canonical form, so human variations still compare equal.

    Upper-cases, drops spaces and dashes, and reads O as 0 and I or L as 1 (Crockford decoding).
    """
    compact = "".join(normalize_password(text).upper().replace("-", " ").split())
    return compact.translate(str.maketrans("OIL", "011"))


def generate_default_password() -> str:
    """Return a new random label password, 4 dash-separated groups of 4 letters/digits.

    Unique per gateway (ETSI EN 303 645 5.1-1); it is printed on the label and only lets the owner
    set a real password.
    """
    raw = _random_string(
        DEFAULT_PASSWORD_ALPHABET, DEFAULT_PASSWORD_GROUPS * DEFAULT_PASSWORD_GROUP_CHARS
    )
    return _grouped(raw, DEFAULT_PASSWORD_GROUP_CHARS)


@dataclass(slots=True)
class Throttle:
    """Login failure state of one account or secret; mutable, persisted by the gateway."""

    failures: int = 0
    blocked_until: float = 0.0

    def __post_init__(self) -> None:
        """Refuse a negative count or a time that is not a finite, non-negative number."""
        if self.failures < 0:
            raise StoredValueError("Throttle: 'failures' must not be negative")
        if not math.isfinite(self.blocked_until) or self.blocked_until < 0:
            raise StoredValueError(
                "Throttle: 'blocked_until' must be a finite, non-negative number"
            )


def locked_out(throttle: Throttle) -> bool:
    """Tell whether MAX_CONSECUTIVE_FAILURES was reached: no attempt until a success or reset."""
    return throttle.failures >= MAX_CONSECUTIVE_FAILURES


def throttle_remaining(throttle: Throttle, now: float) -> float:
    """Return the seconds until another attempt is allowed (0 if allowed now).

    Always finite and at most THROTTLE_MAX_SECONDS, even if the clock was set back, so it can go
    on the wire. When :func:`locked_out`, it stays THROTTLE_MAX_SECONDS however much time passes:
    only :func:`record_success` (e.g. after recovery) allows attempts again.
    """
    if locked_out(throttle):
        return THROTTLE_MAX_SECONDS
    return max(0.0, min(throttle.blocked_until - now, THROTTLE_MAX_SECONDS))


def throttle_delay(failures: int) -> float:
    """Return the delay imposed after the given number of consecutive failures (0 while free)."""
    throttled = failures - THROTTLE_FREE_ATTEMPTS
    if throttled <= 0:
        return 0.0
    delay = THROTTLE_BASE_SECONDS * 2.0 ** min(throttled - 1, _MAX_DOUBLINGS)
    return min(delay, THROTTLE_MAX_SECONDS)


def record_failure(throttle: Throttle, now: float) -> None:
    """Count a failed attempt and, past the free attempts, block until ``now`` + the delay."""
    throttle.failures += 1
    delay = throttle_delay(throttle.failures)
    if delay > 0:
        throttle.blocked_until = now + delay


def record_success(throttle: Throttle) -> None:
    """Reset the throttle after a successful attempt."""
    throttle.failures = 0
    throttle.blocked_until = 0.0
