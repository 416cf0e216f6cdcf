"""rayzig_core.storage: atomic private files and the typed, versioned JSON store."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rayzig_core.storage import (
    InsecureFileError,
    JsonCodec,
    JsonStore,
    StorageError,
    StoredValueError,
    read_private,
    write_atomic,
)


class Level(enum.IntEnum):
    USER = 1
    SYSTEM = 3


@dataclass(frozen=True)
class Key:
    secret: bytes
    level: Level


@dataclass(frozen=True)
class Keyring:
    name: str
    keys: list[Key] = field(default_factory=list)
    note: str | None = None


def test_store_round_trip_uses_hex_bytes_and_enum_values(tmp_path: Path) -> None:
    store = JsonStore(tmp_path / "keys.json", Keyring, format=2)
    assert store.load() is None
    value = Keyring("site", [Key(b"\x00\xab", Level.SYSTEM)])
    store.save(value)
    assert (tmp_path / "keys.json").read_text() == (
        '{"format":2,"name":"site","keys":[{"secret":"00ab","level":3}],"note":null}'
    )
    assert store.load() == value


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_private_files_are_created_0600_and_refused_when_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "new" / "secret.json"
    write_atomic(path, b"x")
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert read_private(path) == b"x"
    path.chmod(0o640)
    with pytest.raises(InsecureFileError, match="chmod 600"):
        read_private(path)
    with pytest.raises(InsecureFileError):
        JsonStore(path, Keyring, format=1).load()


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_public_store_writes_0644(tmp_path: Path) -> None:
    store = JsonStore(tmp_path / "catalogue.json", Keyring, format=1, private=False)
    store.save(Keyring("public"))
    assert ((tmp_path / "catalogue.json").stat().st_mode & 0o777) == 0o644
    assert store.load() == Keyring("public")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"format": 1, "name": "a"}', "format 1, expected 2"),
        (b'{"format": 2, "keys": []}', "missing field 'name'"),
        (b'{"format": 2, "name": "a", "keys": [{"secret": "zz", "level": 3}]}', "'keys.secret'"),
        (b'{"format": 2, "name": "a", "keys": [{"secret": "00", "level": 9}]}', "'keys.level'"),
    ],
)
def test_damaged_files_name_the_file_and_what_to_do(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "keys.json"
    write_atomic(path, content)
    store = JsonStore(path, Keyring, format=2, damaged_hint="pair again")
    with pytest.raises(StorageError) as caught:
        store.load()
    message = str(caught.value)
    assert str(path) in message
    assert why in message
    assert message.endswith("pair again.")
    assert path.read_bytes() == content  # nothing is replaced


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_decode_errors_never_echo_the_stored_value(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_atomic(
        path, b'{"format": 2, "name": "a", "keys": [{"secret": "SECRETVALUE", "level": 1}]}'
    )
    with pytest.raises(StorageError) as caught:
        JsonStore(path, Keyring, format=2).load()
    assert "SECRETVALUE" not in str(caught.value)


@dataclass(frozen=True)
class Verifier:
    salt: bytes
    n: int
    ratio: float = 1.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.n < 2:
            raise StoredValueError("n must be at least 2")


@dataclass(frozen=True)
class Account:
    account_id: int = field(metadata={"alias": "id"})
    verifier: Verifier
    label: str | None = None


def test_an_alias_names_the_key_both_ways() -> None:
    codec = JsonCodec(Account)
    value = Account(7, Verifier(b"\x01", 4))
    encoded = codec.encode(value)
    assert encoded == {
        "id": 7,
        "verifier": {"salt": "01", "n": 4, "ratio": 1.0, "enabled": True},
        "label": None,
    }
    assert codec.decode(encoded) == value


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "7"},
        {"id": True},
        {"id": 7.0},
        {"label": 5},
        {"verifier": {"salt": "01", "n": 4, "enabled": 1}},
        {"verifier": {"salt": "01", "n": 4, "ratio": "1"}},
        {"verifier": {"salt": "01", "n": 4, "ratio": float("nan")}},
    ],
)
def test_scalars_are_taken_as_they_are_never_converted(changes: dict[str, object]) -> None:
    data = {"id": 7, "verifier": {"salt": "01", "n": 4}, **changes}
    with pytest.raises(ValueError, match="wrong type or value"):
        JsonCodec(Account).decode(data)


def test_an_integer_is_a_number_too() -> None:
    decoded = JsonCodec(Verifier).decode({"salt": "01", "n": 2, "ratio": 3})
    assert decoded.ratio == 3.0
    assert isinstance(decoded.ratio, float)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"id": 1, "verifier": {"salt": "zz", "n": 4}}, "field 'verifier.salt' has a wrong type"),
        ({"id": 1, "verifier": {"salt": "01"}}, "missing field 'verifier.n'"),
        (
            {"id": 1, "verifier": {"salt": "01", "n": 1}},
            "field 'verifier' has a wrong type or value: n must be at least 2",
        ),
        ({"id": "SECRETVALUE", "verifier": {"salt": "01", "n": 4}}, "field 'id' has"),
    ],
)
def test_decode_errors_name_the_path_and_the_broken_rule(data: object, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        JsonCodec(Account).decode(data)
    assert why in str(caught.value)
    assert "SECRETVALUE" not in str(caught.value)
