"""Generated passwords: random, easy to read out, and passing the gateway's policy (§6.2).

Used for a new user's initial password (the ``add_user`` action returns it once) and for Home
Assistant's own account (:mod:`.account`), whose password is used once to pair and then dropped.
"""

from __future__ import annotations

import secrets
from typing import Final

from rayzig_core import RayzigInternalError, check_password

PASSWORD_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # noqa: S105 - an alphabet
"""Lower-case letters and digits without look-alikes (i/l/1, o/0): easy to read out and type."""
PASSWORD_GROUPS: Final = 5
PASSWORD_GROUP_LENGTH: Final = 5
"""25 random characters (about 124 bits) in five dash-separated groups: 29 characters in all."""
PASSWORD_ATTEMPTS: Final = 100
"""Fresh draws before giving up on passing the policy (one draw practically always passes)."""


def generate_password(user_name: str, serial: str) -> str:
    """Return a random initial password that passes the password policy for this user.

    Checked with rayzig_core's policy (the one the gateway applies); runs zxcvbn, so call it in
    the executor.
    """
    for _ in range(PASSWORD_ATTEMPTS):
        password = "-".join(
            "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_LENGTH))
            for _ in range(PASSWORD_GROUPS)
        )
        if not check_password(password, user_name=user_name, serial=serial):
            return password
    raise RayzigInternalError("no generated password passed the password policy")
