"""NIST SP 800-63B rev 4 password policy, shared by gateway (to refuse) and clients (to explain).

Rules: at least :data:`MIN_LENGTH` and at most :data:`MAX_LENGTH` Unicode code points after NFKC
normalisation (never truncated); any Unicode and spaces allowed, no composition rules; refused are
control characters, common or easily guessed passwords (zxcvbn), repetitive or sequential ones,
the gateway's default password, product names, the user name and the gateway's serial number.
Comparisons ignore case. This module is pure: no I/O, no global state.
"""

from __future__ import annotations

import inspect
import itertools
import math
import unicodedata
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

import zxcvbn
import zxcvbn.matching

MIN_LENGTH: Final = 15
"""Fewest code points a password may have (NIST SP 800-63B rev 4, single-factor password)."""

MAX_LENGTH: Final = 256
"""Most code points a password may have; NIST asks verifiers to accept at least 64."""

PRODUCT_NAMES: Final = ("rayzig", "raxmega", "raydal", "wbxmega", "raymon")
"""Product and brand names a password must not contain (lower case; matched ignoring case)."""

ZXCVBN_MAX_CHARS: Final = 100
"""Only this many leading code points go to zxcvbn, which is slow on long input."""

ZXCVBN_MIN_CHARS: Final = 20
"""zxcvbn always sees at least this many leading code points (or the whole, if shorter)."""

ZXCVBN_WORK_BUDGET: Final = 150_000
"""Bound on l33t substitutions times squared sample length, about 0.3 s of zxcvbn on a small CPU.

zxcvbn re-scans its dictionaries once per combination of l33t substitutions ("4" for "a", "1" for
"i" or "l"...), up to 736 of them, each scan quadratic in length: 100 characters mixing every l33t
symbol take about 9 s. Such passwords are analysed on a shorter prefix, which is never lenient:
whoever guesses the password has guessed its prefix too.
"""

COMMON_MAX_SCORE: Final = 2
"""zxcvbn scores up to this one (fewer than about 1e8 guesses) count as easy to guess."""

SEQUENCE_RUN: Final = 6
"""Length of an ascending/descending or keyboard run that counts as sequential."""

MIN_DISTINCT_CHARACTERS: Final = 5
"""Fewest distinct characters (ignoring case) a password must use not to count as repetitive."""

MIN_IDENTIFIER_LENGTH: Final = 3
"""A user name or serial number shorter than this is not searched for in the password."""

# zxcvbn >= 4.5 refuses input over 72 characters unless given a larger max_length; 4.4 has no limit.
_ZXCVBN_LENGTH_KWARGS: Final[dict[str, int]] = (
    {"max_length": ZXCVBN_MAX_CHARS}
    if "max_length" in inspect.signature(zxcvbn.zxcvbn).parameters
    else {}
)

# Keyboard rows (US QWERTY, German QWERTZ, French AZERTY), unshifted, lower case.
_KEYBOARD_ROWS: Final = (
    "`1234567890-=",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "qwertzuiop",
    "yxcvbnm",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
)

# Control characters (Cc: tab, newline, NUL, DEL...), lone surrogates (Cs: not encodable) and the
# Unicode line and paragraph separators: none can be typed reliably on every device.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})


class PolicyViolation(StrEnum):
    """Why a password is refused: stable machine codes, also Home Assistant translation keys."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    COMMON = "common"
    REPETITIVE = "repetitive"
    SEQUENTIAL = "sequential"
    DEFAULT_PASSWORD = "default_password"  # noqa: S105 -- a violation code, not a password
    CONTAINS_PRODUCT_NAME = "contains_product_name"
    CONTAINS_USER_NAME = "contains_user_name"
    CONTAINS_SERIAL = "contains_serial"
    CONTROL_CHARACTERS = "control_characters"

    @property
    def message(self) -> str:
        """Plain English sentence telling the user what to do, for UIs without a translation."""
        return _MESSAGES[self]


_MESSAGES: Final[Mapping[PolicyViolation, str]] = {
    PolicyViolation.TOO_SHORT: f"Use at least {MIN_LENGTH} characters.",
    PolicyViolation.TOO_LONG: f"Use at most {MAX_LENGTH} characters.",
    PolicyViolation.COMMON: (
        "Choose a password that is less common and harder to guess, "
        "for example several unrelated words."
    ),
    PolicyViolation.REPETITIVE: "Use more different characters instead of repeating a few.",
    PolicyViolation.SEQUENTIAL: 'Avoid sequences such as "123456", "abcdef" or "qwerty".',
    PolicyViolation.DEFAULT_PASSWORD: (
        "Choose a new password, not the default password printed on the gateway's label."
    ),
    PolicyViolation.CONTAINS_PRODUCT_NAME: (
        'Do not use product names such as "Rayzig" in the password.'
    ),
    PolicyViolation.CONTAINS_USER_NAME: "Do not use your user name in the password.",
    PolicyViolation.CONTAINS_SERIAL: "Do not use the gateway's serial number in the password.",
    PolicyViolation.CONTROL_CHARACTERS: (
        "Remove control characters such as tabs and line breaks from the password."
    ),
}


def normalize_password(password: str) -> str:
    """Return the NFKC form of a password, so equivalent input compares equal; never truncates."""
    return unicodedata.normalize("NFKC", password)


def fold_password(text: str) -> str:
    """Return the normalised, case-folded form of a text, for case-insensitive comparison."""
    return normalize_password(text).casefold()


_fold = fold_password


def _has_refused_characters(password: str) -> bool:
    """Tell whether a password holds a control character, a lone surrogate or a line separator."""
    return any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in password)


def _is_repetitive(folded: str) -> bool:
    """Tell whether a folded password uses fewer than five distinct characters.

    This also covers a unit of one to four characters repeated over the whole password
    ("abcabcabcabcabc"), since such a password has at most four distinct characters.
    """
    return len(set(folded)) < MIN_DISTINCT_CHARACTERS


def _has_code_point_run(folded: str) -> bool:
    """Tell whether a folded password has six consecutive ascending or descending code points."""
    for step in (1, -1):
        run = 1
        for previous, current in itertools.pairwise(folded):
            run = run + 1 if ord(current) - ord(previous) == step else 1
            if run >= SEQUENCE_RUN:
                return True
    return False


def _has_keyboard_run(folded: str) -> bool:
    """Tell whether a folded password has six adjacent keys of one keyboard row, either way."""
    for row in _KEYBOARD_ROWS:
        for reading in (row, row[::-1]):
            for start in range(len(reading) - SEQUENCE_RUN + 1):
                if reading[start : start + SEQUENCE_RUN] in folded:
                    return True
    return False


def _dictionary_coverage(matches: Iterable[Mapping[str, object]]) -> float:
    """Count the characters that zxcvbn matched against its word and password lists."""
    covered = 0.0
    for match in matches:
        pattern = match.get("pattern")
        token = match.get("token")
        if pattern == "dictionary" and isinstance(token, str):
            covered += len(token)
        elif pattern == "repeat":
            base = match.get("base_matches")
            count = match.get("repeat_count")
            if isinstance(base, list) and isinstance(count, int | float):
                covered += _dictionary_coverage(base) * float(count)
    return covered


def _l33t_combinations(sample: str) -> int:
    """Count the l33t substitution combinations zxcvbn will try on a sample (its main cost)."""
    try:
        table = zxcvbn.matching.relevant_l33t_subtable(sample, zxcvbn.matching.L33T_TABLE)
        count = len(zxcvbn.matching.enumerate_l33t_subs(table))
    except (AttributeError, TypeError):  # zxcvbn internals changed: assume the worst case
        return ZXCVBN_WORK_BUDGET
    return max(1, count)


def _zxcvbn_sample(folded: str) -> str:
    """Return the prefix of a folded password that zxcvbn can analyse within the work budget."""
    sample = folded[:ZXCVBN_MAX_CHARS]
    affordable = math.isqrt(ZXCVBN_WORK_BUDGET // _l33t_combinations(sample))
    return sample[: max(ZXCVBN_MIN_CHARS, affordable)]


def _easy_to_guess(folded: str) -> tuple[bool, bool]:
    """Ask zxcvbn about a folded password: (weak, weak mostly because of common words/passwords)."""
    sample = _zxcvbn_sample(folded)
    if not sample:
        return True, False
    result = zxcvbn.zxcvbn(sample, **_ZXCVBN_LENGTH_KWARGS)
    score = result.get("score")
    weak = not isinstance(score, int) or score <= COMMON_MAX_SCORE
    sequence = result.get("sequence")
    matches = sequence if isinstance(sequence, list) else []
    return weak, weak and 2 * _dictionary_coverage(matches) >= len(sample)


def _contains_identifier(folded: str, identifier: str, *, compact: bool = False) -> bool:
    """Tell whether a folded password contains an identifier of at least three characters.

    With ``compact``, the identifier and password are also compared with everything but letters
    and digits removed, so "RZ-0042-77" is found in "xrz004277x".
    """
    wanted = _fold(identifier).strip()
    if len(wanted) < MIN_IDENTIFIER_LENGTH:
        return False
    if wanted in folded:
        return True
    if not compact:
        return False
    wanted_compact = "".join(char for char in wanted if char.isalnum())
    folded_compact = "".join(char for char in folded if char.isalnum())
    return len(wanted_compact) >= MIN_IDENTIFIER_LENGTH and wanted_compact in folded_compact


def check_password(
    password: str,
    *,
    user_name: str = "",
    serial: str = "",
    default_password: str | None = None,
) -> tuple[PolicyViolation, ...]:
    """List every rule a password breaks, in declaration order of :class:`PolicyViolation`.

    An empty tuple means the password is acceptable. ``user_name`` and ``serial`` are searched
    for (ignoring case) only when at least three characters long; ``default_password`` is the
    gateway's label password, which may never become the real one.

    COMMON is reported when zxcvbn rates the password weak (score <= 2, fewer than about 1e8
    guesses) and either common words or passwords make up at least half of it, or no other rule
    explains the weakness; so a weak password is never accepted, and a merely repetitive or
    sequential one is reported as such rather than as common.
    """
    normalized = normalize_password(password)
    folded = normalized.casefold()
    found: set[PolicyViolation] = set()

    if len(normalized) < MIN_LENGTH:
        found.add(PolicyViolation.TOO_SHORT)
    if len(normalized) > MAX_LENGTH:
        found.add(PolicyViolation.TOO_LONG)
    if _is_repetitive(folded):
        found.add(PolicyViolation.REPETITIVE)
    if _has_code_point_run(folded) or _has_keyboard_run(folded):
        found.add(PolicyViolation.SEQUENTIAL)
    if default_password is not None and folded == _fold(default_password):
        found.add(PolicyViolation.DEFAULT_PASSWORD)
    if any(name in folded for name in PRODUCT_NAMES):
        found.add(PolicyViolation.CONTAINS_PRODUCT_NAME)
    if _contains_identifier(folded, user_name):
        found.add(PolicyViolation.CONTAINS_USER_NAME)
    if _contains_identifier(folded, serial, compact=True):
        found.add(PolicyViolation.CONTAINS_SERIAL)
    if _has_refused_characters(normalized):
        found.add(PolicyViolation.CONTROL_CHARACTERS)

    weak, mostly_common = _easy_to_guess(folded)
    if mostly_common or (weak and not found):
        found.add(PolicyViolation.COMMON)

    return tuple(violation for violation in PolicyViolation if violation in found)


def password_acceptable(
    password: str,
    *,
    user_name: str = "",
    serial: str = "",
    default_password: str | None = None,
) -> bool:
    """Tell whether a password breaks no rule of :func:`check_password` (same arguments)."""
    return not check_password(
        password, user_name=user_name, serial=serial, default_password=default_password
    )
