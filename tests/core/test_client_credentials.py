"""ClientCredentials as Home Assistant's config entries and the CLI's key file store them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rayzig_core import ClientCredentials, UserLevel

PRIVATE = bytes(range(32))
GATEWAY = bytes(range(32, 64))
STORED = {
    "client_private_key": PRIVATE.hex(),
    "gateway_public_key": GATEWAY.hex(),
    "serial": "RZ-0001",
    "user": "installer",
    "level": 3,
    "client_id": 7,
}


def credentials() -> ClientCredentials:
    return ClientCredentials(PRIVATE, GATEWAY, "RZ-0001", "installer", UserLevel.SYSTEM, 7)


def test_stored_shape_is_exactly_hex_keys_and_plain_values() -> None:
    stored = credentials().to_dict()
    assert stored == STORED
    assert list(stored) == list(STORED)
    assert [type(value) for value in stored.values()] == [str, str, str, str, int, int]
    assert json.loads(json.dumps(stored)) == STORED


def test_round_trip() -> None:
    restored = ClientCredentials.from_dict(json.loads(json.dumps(credentials().to_dict())))
    assert restored == credentials()
    assert restored.level is UserLevel.SYSTEM
    assert PRIVATE.hex() not in repr(restored)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({k: v for k, v in STORED.items() if k != "serial"}, "missing field 'serial'"),
        ({**STORED, "client_private_key": "zz"}, "'client_private_key' has a wrong type"),
        ({**STORED, "gateway_public_key": 5}, "'gateway_public_key' has a wrong type"),
        ({**STORED, "client_private_key": PRIVATE[:31].hex()}, "keys must be 32 bytes"),
        ({**STORED, "gateway_public_key": (GATEWAY + b"\0").hex()}, "keys must be 32 bytes"),
        ({**STORED, "level": 99}, "'level' has a wrong type"),
        (None, "wrong type or value"),
        ("not a mapping", "wrong type or value"),
    ],
)
def test_damaged_data_is_a_value_error_without_the_key(data: Any, why: str) -> None:
    with pytest.raises(ValueError, match=r"^stored Rayzig credentials are damaged") as caught:
        ClientCredentials.from_dict(data)
    assert why in str(caught.value)
    assert PRIVATE.hex() not in str(caught.value)
    assert PRIVATE[:31].hex() not in str(caught.value)
