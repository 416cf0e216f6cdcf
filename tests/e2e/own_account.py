"""Home Assistant's own gateway account, as the gateway lists it after the config flow.

The flow signed in as ``installer`` (a System user): Home Assistant created an Administrator
account of its own, ``home-assistant-<6 hex>``, paired under it, and revoked the key the sign-in
enrolled (custom_components/rayzig/account.py). The installer account stays as it was.
"""

from __future__ import annotations

import re

from rayzig_core.models import UserLevel

from .checker import GatewayChecker
from .helpers import Steps

OWN_ACCOUNT = re.compile(r"home-assistant-[0-9a-f]{6}")
CHECKER_NAME = "e2e checker"
"""The client name the checker pairs under (checker.py)."""
HOME_ASSISTANT_CLIENT = "Home Assistant"
"""The client name Home Assistant pairs under (account.py CLIENT_NAME)."""


def own_account(checker: GatewayChecker, steps: Steps) -> GatewayChecker:
    """Check the gateway's accounts and keys; the checker, watching Home Assistant's account."""
    with steps.step("own-account"):
        users = {user.name: user.level for user in checker.users()}
        others = sorted(name for name in users if name != checker.user)
        assert len(others) == 1, f"expected one account besides {checker.user}: {users}"
        own = others[0]
        assert OWN_ACCOUNT.fullmatch(own), f"Home Assistant's account is named {own!r}"
        assert users[own] is UserLevel.ADMINISTRATOR, f"{own} is {users[own].name}"
        # The signer is unchanged: still System, and its password is the one the flow set (the
        # checker paired with it).
        assert users[checker.user] is UserLevel.SYSTEM, f"{checker.user} is {users[checker.user]}"
        keys = checker.clients()
        assert [(key.user, key.name) for key in keys if key.user == own] == [
            (own, HOME_ASSISTANT_CLIENT)
        ], f"{own} should hold Home Assistant's key only: {keys}"
        # The key the flow's System sign-in enrolled was revoked: only the checker's is left.
        signer_keys = [key.name for key in keys if key.user == checker.user]
        assert signer_keys == [CHECKER_NAME], f"{checker.user} still holds keys: {signer_keys}"
        steps.note(f"Home Assistant pairs as {own} (Administrator); {checker.user} stays System")
    return checker.watching(own)
