"""Tests of rayzig_core.password_policy (NIST SP 800-63B rev 4 rules)."""

from __future__ import annotations

from typing import Any

import pytest
import zxcvbn
import zxcvbn.matching

from rayzig_core import password_policy
from rayzig_core.password_policy import (
    MAX_LENGTH,
    MIN_LENGTH,
    PRODUCT_NAMES,
    PolicyViolation,
    check_password,
    normalize_password,
    password_acceptable,
)
from rayzig_core.virtual_gateway.credentials import check_verifier, make_verifier

V = PolicyViolation


def fullwidth(text: str) -> str:
    """Spell ASCII text in fullwidth forms (U+FF01..U+FF5E, U+3000), which NFKC undoes."""
    return "".join(
        "\u3000" if char == " " else chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char
        for char in text
    )


GOOD = (
    "correct horse battery staple",
    "Tvåfärgad kaffekopp på balkongen",
    "mauve-otter-juggles-47-kites",
)


# --- constants and codes -------------------------------------------------------------------


def test_constants() -> None:
    assert MIN_LENGTH == 15
    assert MAX_LENGTH == 256
    assert PRODUCT_NAMES == ("rayzig", "raxmega", "raydal", "wbxmega", "raymon")


def test_violation_codes_are_stable() -> None:
    assert [v.value for v in PolicyViolation] == [
        "too_short",
        "too_long",
        "common",
        "repetitive",
        "sequential",
        "default_password",
        "contains_product_name",
        "contains_user_name",
        "contains_serial",
        "control_characters",
    ]
    assert PolicyViolation("too_short") is V.TOO_SHORT
    assert str(V.COMMON) == "common"


def test_every_violation_has_an_english_sentence() -> None:
    for violation in PolicyViolation:
        message = violation.message
        assert message[0].isupper()
        assert message.endswith(".")
    assert len({violation.message for violation in PolicyViolation}) == len(PolicyViolation)


# --- good passwords ------------------------------------------------------------------------


@pytest.mark.parametrize("password", GOOD)
def test_good_examples_pass(password: str) -> None:
    assert check_password(password) == ()
    assert password_acceptable(password)
    assert password_acceptable(password, user_name="alice", serial="RZ-0042-7791")


def test_64_and_256_characters_accepted() -> None:
    words = "mauve otter juggles forty seven kites near the quiet harbour wall "
    p64 = (words * 4)[:63] + "q"
    p256 = (words * 5)[:255] + "q"
    assert len(p64) == 64
    assert len(p256) == 256
    assert check_password(p64) == ()
    assert check_password(p256) == ()


def test_spaces_and_any_unicode_allowed_without_composition_rules() -> None:
    assert check_password("all lower case words here please") == ()
    assert check_password("日本語のとても長いパスワードです今日は") == ()
    assert check_password("🦊 red fox jumps over 🐕 lazy dog") == ()


# --- each violation ------------------------------------------------------------------------


def test_too_short() -> None:
    result = check_password("Kx9#mQ2vLp7")
    assert result == (V.TOO_SHORT,)
    assert V.TOO_SHORT.message == "Use at least 15 characters."


def test_length_counts_code_points_after_nfkc() -> None:
    # 14 code points, each a letter with a combining accent that NFKC composes into one.
    decomposed = "".join(c + "\u0301" for c in "aeiouycnszlrgk")
    assert len(decomposed) == 28
    assert V.TOO_SHORT in check_password(decomposed)
    # 15 astral-plane ideographs (CJK Extension B) are 15 characters, though 30 UTF-16 units.
    astral = "".join(chr(0x20000 + 37 * index) for index in range(15))
    assert normalize_password(astral) == astral
    assert V.TOO_SHORT not in check_password(astral)


def test_too_long() -> None:
    password = ("mauve otter juggles kites " * 10)[:MAX_LENGTH] + "q"
    assert len(password) == MAX_LENGTH + 1
    assert check_password(password) == (V.TOO_LONG,)
    assert V.TOO_LONG.message == "Use at most 256 characters."


@pytest.mark.parametrize(
    "password", ["password1password2", "passwordpassword1", "iloveyouiloveyou", "trustno1trustno1"]
)
def test_common(password: str) -> None:
    assert V.COMMON in check_password(password)


def test_common_is_case_insensitive() -> None:
    assert V.COMMON in check_password("PassWordPASSWORD1")
    assert "less common" in V.COMMON.message


def test_weak_password_is_never_accepted() -> None:
    # A keyboard pattern none of the explicit rules names: zxcvbn's weak score still refuses it.
    assert check_password("1qaz2wsx3edc4rfv") == (V.COMMON,)


@pytest.mark.parametrize("password", ["aaaaaaaaaaaaaaa", "abcabcabcabcabc", "abababababababab"])
def test_repetitive(password: str) -> None:
    assert check_password(password) == (V.REPETITIVE,)
    assert V.REPETITIVE.message == "Use more different characters instead of repeating a few."


def test_repetitive_ignores_case() -> None:
    assert V.REPETITIVE in check_password("AbCaBcAbCaBcAbC")


@pytest.mark.parametrize(
    "password",
    [
        "zebra lamp 123456 rocks",
        "zebra lamp abcdef rocks",
        "zebra lamp FEDCBA rocks",
        "zebra qwertyuiop lamp",
        "zebra lamp asdfghjkl!",
        "zebra lamp 567890 rocks",
    ],
)
def test_sequential(password: str) -> None:
    assert check_password(password) == (V.SEQUENTIAL,)
    assert "123456" in V.SEQUENTIAL.message


def test_five_long_sequence_is_fine() -> None:
    assert check_password("zebra lamp 12345 rocks") == ()


def test_default_password() -> None:
    default = "kf63-z5dp-txv6-gdxy"
    assert check_password(default, default_password=default) == (V.DEFAULT_PASSWORD,)
    assert check_password(default.upper(), default_password=default) == (V.DEFAULT_PASSWORD,)
    assert check_password(default) == ()
    assert V.DEFAULT_PASSWORD.message == (
        "Choose a new password, not the default password printed on the gateway's label."
    )


def test_default_password_compared_after_nfkc() -> None:
    default = "kf63-z5dp-txv6-gdxy"
    wide = fullwidth(default)
    assert wide != default
    assert wide[0] == "\uff4b"
    assert normalize_password(wide) == default
    assert check_password(wide, default_password=default) == (V.DEFAULT_PASSWORD,)
    assert check_password(default, default_password=wide) == (V.DEFAULT_PASSWORD,)


@pytest.mark.parametrize("name", PRODUCT_NAMES)
def test_contains_product_name(name: str) -> None:
    password = f"mauve otter {name.upper()} kites"
    assert check_password(password) == (V.CONTAINS_PRODUCT_NAME,)
    assert V.CONTAINS_PRODUCT_NAME.message == (
        'Do not use product names such as "Rayzig" in the password.'
    )


def test_contains_user_name() -> None:
    password = "mauve otter Alice juggles kites"
    assert check_password(password, user_name="alice") == (V.CONTAINS_USER_NAME,)
    assert check_password(password, user_name="ALICE") == (V.CONTAINS_USER_NAME,)
    assert V.CONTAINS_USER_NAME.message == "Do not use your user name in the password."


def test_short_user_name_is_not_searched() -> None:
    assert check_password("mauve otter al juggles kites", user_name="al") == ()
    assert check_password("mauve otter juggles kites", user_name="") == ()


def test_contains_serial() -> None:
    serial = "RZ-0042-7791"
    assert check_password("mauve otter rz-0042-7791 k", serial=serial) == (V.CONTAINS_SERIAL,)
    assert check_password("mauve otter rz00427791 kites", serial=serial) == (V.CONTAINS_SERIAL,)
    assert check_password("mauve otter juggles kites", serial=serial) == ()
    assert check_password("mauve otter rz juggles kites", serial="RZ") == ()
    assert V.CONTAINS_SERIAL.message == "Do not use the gateway's serial number in the password."


@pytest.mark.parametrize("char", ["\t", "\n", "\r", "\x00", "\x7f", "\u2028"])
def test_control_characters(char: str) -> None:
    password = f"mauve otter{char}juggles kites"
    assert check_password(password) == (V.CONTROL_CHARACTERS,)
    assert V.CONTROL_CHARACTERS.message == (
        "Remove control characters such as tabs and line breaks from the password."
    )


def test_all_violations_reported_in_stable_order() -> None:
    result = check_password("abc\tabc", user_name="abc\tabc", default_password="ABC\tABC")
    assert result == (
        V.TOO_SHORT,
        V.REPETITIVE,
        V.DEFAULT_PASSWORD,
        V.CONTAINS_USER_NAME,
        V.CONTROL_CHARACTERS,
    )
    assert check_password("iloveyou123456") == (V.TOO_SHORT, V.COMMON, V.SEQUENTIAL)
    assert check_password("password123456rayzig") == (V.SEQUENTIAL, V.CONTAINS_PRODUCT_NAME)
    assert check_password("") == (V.TOO_SHORT, V.REPETITIVE)


def test_password_acceptable_matches_check_password() -> None:
    assert not password_acceptable("short")
    assert not password_acceptable("mauve otter bob kites", user_name="bob")
    assert not password_acceptable("mauve otter sn123 kites", serial="SN123")
    assert not password_acceptable("abcd-efgh-jkmn-pqrs", default_password="abcd-efgh-jkmn-pqrs")
    assert password_acceptable("mauve otter juggles kites", default_password="abcd-efgh-jkmn-pqrs")


# --- normalisation -------------------------------------------------------------------------


def test_normalize_password_is_nfkc() -> None:
    assert normalize_password(fullwidth("correct horse")) == "correct horse"
    assert normalize_password("e\u0301") == "\u00e9"
    assert normalize_password("\u00a0") == " "
    assert normalize_password("ﬁ") == "fi"


def test_normalize_password_never_truncates() -> None:
    password = "x" * 1000 + "y"
    assert normalize_password(password) == password


def test_fullwidth_good_password_passes_like_ascii() -> None:
    wide = fullwidth("correct horse battery staple")
    assert check_password(wide) == check_password("correct horse battery staple") == ()


def test_no_truncation_in_verifiers() -> None:
    base = "mauve otter juggles forty seven kites near the quiet harbour wall at noon"
    assert len(base) > 70
    first = base + " one"
    second = base + " two"
    verifier = make_verifier(first, n=2**10)
    assert check_verifier(verifier, first)
    assert not check_verifier(verifier, second)
    assert make_verifier(second, n=2**10).digest != verifier.digest


# --- cost ----------------------------------------------------------------------------------


def test_pathological_input_is_bounded_in_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every l33t symbol at once makes zxcvbn try 736 substitution sets; 100 of them took ~9 s.
    # zxcvbn's cost is its l33t combinations times the squared sample length: that product, not
    # a stopwatch, is what stays within the budget (timings belong in benchmarks/).
    samples: list[str] = []
    analyse = zxcvbn.zxcvbn

    def recording(sample: str, *args: Any, **kwargs: Any) -> Any:
        samples.append(sample)
        return analyse(sample, *args, **kwargs)

    monkeypatch.setattr(zxcvbn, "zxcvbn", recording)
    l33t = ("4@8({[<3691!|70$5+%2" * 13)[:MAX_LENGTH]
    check_password(l33t)
    check_password("ab" * 128)
    assert len(samples) == 2
    for sample in samples:
        table = zxcvbn.matching.relevant_l33t_subtable(sample, zxcvbn.matching.L33T_TABLE)
        combinations = max(1, len(zxcvbn.matching.enumerate_l33t_subs(table)))
        assert len(sample) <= password_policy.ZXCVBN_MIN_CHARS or (
            combinations * len(sample) ** 2 <= password_policy.ZXCVBN_WORK_BUDGET
        )
    assert len(samples[0]) < len(l33t)  # the l33t one is analysed on a prefix
