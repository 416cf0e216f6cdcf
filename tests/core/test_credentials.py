"""Tests of rayzig_core.virtual_gateway.credentials: verifiers, recovery, label, throttle."""

from __future__ import annotations

import math
import re

import pytest

from rayzig_core.virtual_gateway.credentials import (
    CROCKFORD_ALPHABET,
    MAX_CONSECUTIVE_FAILURES,
    THROTTLE_BASE_SECONDS,
    THROTTLE_FREE_ATTEMPTS,
    THROTTLE_MAX_SECONDS,
    PasswordVerifier,
    Throttle,
    check_verifier,
    generate_default_password,
    generate_recovery_secret,
    locked_out,
    make_verifier,
    normalize_recovery_secret,
    record_failure,
    record_success,
    throttle_delay,
    throttle_remaining,
)
from tests.core.conftest import restored, stored

FAST = 2**10
PASSWORD = "correct horse battery staple"


def fullwidth(text: str) -> str:
    """Spell ASCII text in fullwidth forms (U+FF01..U+FF5E, U+3000), which NFKC undoes."""
    return "".join(
        "\u3000" if char == " " else chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char
        for char in text
    )


# --- password verifier ---------------------------------------------------------------------


def test_verifier_round_trip() -> None:
    verifier = make_verifier(PASSWORD, n=FAST)
    assert check_verifier(verifier, PASSWORD)
    assert (verifier.n, verifier.r, verifier.p) == (FAST, 8, 1)
    assert len(verifier.salt) == 16
    assert len(verifier.digest) == 32


def test_wrong_password_is_false_and_never_raises() -> None:
    verifier = make_verifier(PASSWORD, n=FAST)
    for wrong in ("", "correct horse battery stapl", PASSWORD.upper(), "x" * 10_000, "\ud800"):
        assert check_verifier(verifier, wrong) is False


def test_verifier_uses_nfkc() -> None:
    verifier = make_verifier(fullwidth("correct horse battery staple"), n=FAST)
    assert check_verifier(verifier, PASSWORD)
    assert check_verifier(make_verifier("caf\u00e9 ok", n=FAST), "cafe\u0301 ok")


def test_fresh_salt_each_time() -> None:
    first = make_verifier(PASSWORD, n=FAST)
    second = make_verifier(PASSWORD, n=FAST)
    assert first.salt != second.salt
    assert first.digest != second.digest


def test_default_cost_verifier() -> None:
    verifier = make_verifier(PASSWORD)
    assert (verifier.n, verifier.r, verifier.p) == (2**15, 8, 1)
    assert check_verifier(verifier, PASSWORD)
    assert not check_verifier(verifier, "wrong horse battery staple")


def test_verifier_json_round_trip() -> None:
    verifier = make_verifier(PASSWORD, n=FAST)
    data = stored(verifier)
    assert data == {
        "kdf": "scrypt",
        "salt": verifier.salt.hex(),
        "n": FAST,
        "r": 8,
        "p": 1,
        "digest": verifier.digest.hex(),
    }
    again = restored(PasswordVerifier, data)
    assert again == verifier
    assert check_verifier(again, PASSWORD)


def test_verifier_json_without_kdf_field_is_scrypt() -> None:
    data = stored(make_verifier(PASSWORD, n=FAST))
    del data["kdf"]
    assert check_verifier(restored(PasswordVerifier, data), PASSWORD)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"salt": None}, "field 'salt' has a wrong type"),
        ({"salt": "zz"}, "field 'salt' has a wrong type"),
        ({"salt": "00"}, "salt must be"),
        ({"digest": 5}, "field 'digest' has a wrong type"),
        ({"digest": ""}, "digest must be"),
        ({"n": "1024"}, "field 'n' has a wrong type"),
        ({"n": True}, "field 'n' has a wrong type"),
        ({"n": 1000}, "power of 2"),
        ({"n": 2**30}, "power of 2"),
        ({"r": 0}, "r must be"),
        ({"p": 1.0}, "field 'p' has a wrong type"),
        ({"p": 99}, "p must be"),
        ({"n": 2**20, "r": 32}, "too much memory"),
        ({"kdf": "argon2id"}, "unsupported kdf"),
    ],
)
def test_bad_verifier_json_raises_value_error(change: dict[str, object], fragment: str) -> None:
    data = stored(make_verifier(PASSWORD, n=FAST))
    data.update(change)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        restored(PasswordVerifier, data)


def test_missing_field_and_non_object_raise_value_error() -> None:
    data = stored(make_verifier(PASSWORD, n=FAST))
    del data["digest"]
    with pytest.raises(ValueError, match="missing field 'digest'"):
        restored(PasswordVerifier, data)
    with pytest.raises(ValueError, match="wrong type or value"):
        restored(PasswordVerifier, [])


def test_bad_cost_refused_by_make_verifier() -> None:
    with pytest.raises(ValueError, match="power of 2"):
        make_verifier(PASSWORD, n=1000)


# --- recovery secret -----------------------------------------------------------------------

_RECOVERY = re.compile(rf"^[{CROCKFORD_ALPHABET}]{{5}}(-[{CROCKFORD_ALPHABET}]{{5}}){{4}}$")


def test_recovery_secret_format() -> None:
    for _ in range(50):
        secret = generate_recovery_secret()
        assert _RECOVERY.match(secret), secret
        assert len(secret) == 29


def test_recovery_secrets_are_unique_and_use_the_whole_alphabet() -> None:
    secrets = {generate_recovery_secret() for _ in range(500)}
    assert len(secrets) == 500
    used = set("".join(secrets).replace("-", ""))
    assert used == set(CROCKFORD_ALPHABET)


def test_recovery_secret_first_digit_is_not_biased() -> None:
    firsts = {generate_recovery_secret()[0] for _ in range(500)}
    assert len(firsts) > 20


def test_normalize_recovery_secret() -> None:
    secret = generate_recovery_secret()
    compact = secret.replace("-", "")
    assert normalize_recovery_secret(secret) == compact
    assert normalize_recovery_secret(secret.lower()) == compact
    assert normalize_recovery_secret(" ".join(secret.split("-"))) == compact
    assert normalize_recovery_secret("k7q2m-o1il0 abcd") == "K7Q2M01110ABCD"
    assert normalize_recovery_secret(fullwidth("k7q2m")) == "K7Q2M"
    assert normalize_recovery_secret(" \tk7q2m -\n") == "K7Q2M"


# --- default (label) password --------------------------------------------------------------


def test_default_password_format_and_uniqueness() -> None:
    passwords = {generate_default_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        assert re.fullmatch(r"[a-z0-9]{4}(-[a-z0-9]{4}){3}", password), password


# --- throttle ------------------------------------------------------------------------------


def test_throttle_constants() -> None:
    assert THROTTLE_FREE_ATTEMPTS == 3
    assert THROTTLE_BASE_SECONDS == 1.0
    assert THROTTLE_MAX_SECONDS == 3600.0
    assert MAX_CONSECUTIVE_FAILURES == 100


def test_throttle_schedule_failures_1_to_10() -> None:
    throttle = Throttle()
    now = 1_000_000.0
    expected = [0, 0, 0, 1, 2, 4, 8, 16, 32, 64]
    for failures, delay in enumerate(expected, start=1):
        assert throttle_remaining(throttle, now) == 0.0
        record_failure(throttle, now)
        assert throttle.failures == failures
        assert throttle_delay(failures) == delay
        assert throttle_remaining(throttle, now) == delay
        if delay:
            assert throttle.blocked_until == now + delay
            assert throttle_remaining(throttle, now + delay / 2) == delay / 2
        now += delay


def test_throttle_caps_at_one_hour() -> None:
    assert throttle_delay(15) == 2048.0
    assert throttle_delay(16) == 3600.0
    assert throttle_delay(99) == 3600.0
    assert throttle_delay(10**9) == 3600.0
    throttle = Throttle(failures=40)
    record_failure(throttle, 5.0)
    assert throttle.blocked_until == 3605.0
    assert throttle_remaining(throttle, 5.0) == 3600.0


def test_throttle_remaining_bounded_if_clock_goes_back() -> None:
    throttle = Throttle(failures=20, blocked_until=10_000.0)
    assert throttle_remaining(throttle, 0.0) == THROTTLE_MAX_SECONDS
    assert throttle_remaining(throttle, 20_000.0) == 0.0


def test_lockout_after_max_consecutive_failures() -> None:
    throttle = Throttle()
    for _ in range(MAX_CONSECUTIVE_FAILURES - 1):
        record_failure(throttle, 0.0)
    assert not locked_out(throttle)
    assert throttle_remaining(throttle, 10**9) == 0.0
    record_failure(throttle, 0.0)
    assert locked_out(throttle)
    assert throttle_remaining(throttle, 10**9) == THROTTLE_MAX_SECONDS
    assert throttle_remaining(throttle, 10**12) == THROTTLE_MAX_SECONDS


def test_success_resets() -> None:
    throttle = Throttle()
    for _ in range(MAX_CONSECUTIVE_FAILURES):
        record_failure(throttle, 100.0)
    record_success(throttle)
    assert throttle == Throttle()
    assert throttle_remaining(throttle, 100.0) == 0.0
    record_failure(throttle, 100.0)
    assert throttle_remaining(throttle, 100.0) == 0.0


def test_throttle_json_round_trip() -> None:
    throttle = Throttle()
    for _ in range(5):
        record_failure(throttle, 1234.5)
    data = stored(throttle)
    assert data == {"failures": 5, "blocked_until": 1236.5}
    assert restored(Throttle, data) == throttle
    assert restored(Throttle, {"failures": 0, "blocked_until": 0}) == Throttle()


@pytest.mark.parametrize(
    "data",
    [
        {"failures": "1", "blocked_until": 0.0},
        {"failures": -1, "blocked_until": 0.0},
        {"failures": True, "blocked_until": 0.0},
        {"failures": None, "blocked_until": 0.0},
        {"failures": 1, "blocked_until": "soon"},
        {"failures": 1, "blocked_until": math.inf},
        {"failures": 1, "blocked_until": -5.0},
    ],
)
def test_bad_throttle_json_raises_value_error(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"failures|blocked_until"):
        restored(Throttle, data)
