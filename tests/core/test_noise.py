"""Noise 25519/ChaChaPoly/SHA256: cacophony vectors and failure behaviour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rayzig_core.errors import DecryptError, HandshakeError, ProtocolError, SessionClosedError
from rayzig_core.protocol.noise import (
    DH_LEN,
    MAX_NOISE_MESSAGE,
    PATTERNS,
    TAG_LEN,
    CipherState,
    HandshakeState,
    generate_keypair,
    public_key_of,
)

VECTORS_FILE = Path(__file__).parent / "vectors" / "noise_25519_chachapoly_sha256.json"
SUITE_SUFFIX = "_25519_ChaChaPoly_SHA256"


def _load_vectors() -> list[dict[str, Any]]:
    data = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    usable = []
    for vector in data["vectors"]:
        name: str = vector["protocol_name"]
        if any("psk" in key for key in vector) or "psk" in name:
            continue
        if not name.startswith("Noise_") or not name.endswith(SUITE_SUFFIX):
            continue
        if name[len("Noise_") : -len(SUITE_SUFFIX)] not in PATTERNS:
            continue
        usable.append(vector)
    return usable


VECTORS = _load_vectors()


def _hex(vector: dict[str, Any], key: str) -> bytes | None:
    value = vector.get(key)
    return bytes.fromhex(value) if value is not None else None


def test_vector_file_covers_every_pattern() -> None:
    names = {v["protocol_name"] for v in VECTORS}
    assert names == {f"Noise_{p}{SUITE_SUFFIX}" for p in PATTERNS}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["protocol_name"] for v in VECTORS])
def test_cacophony_vector(vector: dict[str, Any]) -> None:
    name = vector["protocol_name"]
    initiator = HandshakeState(
        name,
        initiator=True,
        prologue=_hex(vector, "init_prologue") or b"",
        s=_hex(vector, "init_static"),
        rs=_hex(vector, "init_remote_static"),
        e=_hex(vector, "init_ephemeral"),
    )
    responder = HandshakeState(
        name,
        initiator=False,
        prologue=_hex(vector, "resp_prologue") or b"",
        s=_hex(vector, "resp_static"),
        rs=_hex(vector, "resp_remote_static"),
        e=_hex(vector, "resp_ephemeral"),
    )
    messages = vector["messages"]
    handshake_len = len(PATTERNS[name[len("Noise_") : -len(SUITE_SUFFIX)]][2])
    assert len(messages) > handshake_len

    for index, message in enumerate(messages[:handshake_len]):
        writer, reader = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        payload = bytes.fromhex(message["payload"])
        ciphertext = writer.write_message(payload)
        assert ciphertext.hex() == message["ciphertext"], f"handshake message {index}"
        assert reader.read_message(ciphertext) == payload

    assert initiator.complete
    assert responder.complete
    expected_hash = vector["handshake_hash"]
    assert initiator.handshake_hash.hex() == expected_hash
    assert responder.handshake_hash.hex() == expected_hash
    if "resp_static" in vector:
        assert initiator.remote_static == public_key_of(bytes.fromhex(vector["resp_static"]))
    if "init_static" in vector:
        assert responder.remote_static == public_key_of(bytes.fromhex(vector["init_static"]))

    init_send, init_recv = initiator.split()
    resp_send, resp_recv = responder.split()
    for index, message in enumerate(messages[handshake_len:], start=handshake_len):
        if index % 2 == 0:
            sender, receiver = init_send, resp_recv
        else:
            sender, receiver = resp_send, init_recv
        payload = bytes.fromhex(message["payload"])
        ciphertext = sender.encrypt_with_ad(b"", payload)
        assert ciphertext.hex() == message["ciphertext"], f"transport message {index}"
        assert receiver.decrypt_with_ad(b"", ciphertext) == payload


# --- helpers for behaviour tests -----------------------------------------------------------


def _pair(pattern: str) -> tuple[HandshakeState, HandshakeState]:
    init_s, init_pub = generate_keypair()
    resp_s, resp_pub = generate_keypair()
    init_pre, resp_pre, messages = PATTERNS[pattern]
    init_tokens = {t for i, m in enumerate(messages) if i % 2 == 0 for t in m}
    resp_tokens = {t for i, m in enumerate(messages) if i % 2 == 1 for t in m}
    initiator = HandshakeState(
        pattern,
        initiator=True,
        prologue=b"rayzig test",
        s=init_s if ("s" in init_pre or "s" in init_tokens) else None,
        rs=resp_pub if "s" in resp_pre else None,
    )
    responder = HandshakeState(
        pattern,
        initiator=False,
        prologue=b"rayzig test",
        s=resp_s if ("s" in resp_pre or "s" in resp_tokens) else None,
        rs=init_pub if "s" in init_pre else None,
    )
    return initiator, responder


def _handshake(pattern: str) -> tuple[HandshakeState, HandshakeState]:
    initiator, responder = _pair(pattern)
    for index in range(len(PATTERNS[pattern][2])):
        writer, reader = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        payload = f"payload {index}".encode()
        assert reader.read_message(writer.write_message(payload)) == payload
    return initiator, responder


def _transport(pattern: str = "XX") -> tuple[CipherState, CipherState]:
    """Return (initiator send, responder receive)."""
    initiator, responder = _handshake(pattern)
    return initiator.split()[0], responder.split()[1]


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_round_trip_with_random_keys(pattern: str) -> None:
    initiator, responder = _handshake(pattern)
    assert initiator.handshake_hash == responder.handshake_hash
    init_send, init_recv = initiator.split()
    resp_send, resp_recv = responder.split()
    for i in range(3):
        assert resp_recv.decrypt_with_ad(b"ad", init_send.encrypt_with_ad(b"ad", b"i%d" % i))
        assert init_recv.decrypt_with_ad(b"", resp_send.encrypt_with_ad(b"", b"r%d" % i))
    assert init_send.nonce == 3
    assert resp_recv.nonce == 3


def test_full_protocol_name_and_short_name_agree() -> None:
    keys = generate_keypair()
    assert public_key_of(keys[0]) == keys[1]
    assert len(keys[0]) == len(keys[1]) == DH_LEN
    ephemeral = generate_keypair()[0]
    short = HandshakeState("NN", initiator=True, e=ephemeral)
    full = HandshakeState("Noise_NN_25519_ChaChaPoly_SHA256", initiator=True, e=ephemeral)
    assert short.write_message(b"x") == full.write_message(b"x")


def test_xx_learns_remote_static() -> None:
    initiator, responder = _pair("XX")
    assert initiator.remote_static is None
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    assert initiator.remote_static is not None
    assert responder.remote_static is None
    responder.read_message(initiator.write_message())
    assert responder.remote_static is not None


# --- transport failures --------------------------------------------------------------------


def test_tampered_transport_message() -> None:
    send, recv = _transport()
    ciphertext = bytearray(send.encrypt_with_ad(b"", b"switch output 3 on"))
    ciphertext[5] ^= 0x01
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", bytes(ciphertext))
    assert recv.nonce == 0


def test_tampered_associated_data() -> None:
    send, recv = _transport()
    ciphertext = send.encrypt_with_ad(b"header-1", b"hello")
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"header-2", ciphertext)


def test_replayed_transport_message() -> None:
    send, recv = _transport()
    ciphertext = send.encrypt_with_ad(b"", b"once")
    assert recv.decrypt_with_ad(b"", ciphertext) == b"once"
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", ciphertext)
    assert recv.nonce == 1


def test_reordered_transport_messages() -> None:
    send, recv = _transport()
    first = send.encrypt_with_ad(b"", b"first")
    second = send.encrypt_with_ad(b"", b"second")
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", second)
    # the failed attempt did not advance the nonce: the in-order stream still works
    assert recv.decrypt_with_ad(b"", first) == b"first"
    assert recv.decrypt_with_ad(b"", second) == b"second"


@pytest.mark.parametrize("keep", [0, 1, TAG_LEN - 1, TAG_LEN, -1])
def test_truncated_transport_message(keep: int) -> None:
    send, recv = _transport()
    ciphertext = send.encrypt_with_ad(b"", b"a message of some length")
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", ciphertext[:keep])


def test_nonce_exhaustion_closes_session() -> None:
    send, recv = _transport()
    send._n = 2**64 - 2
    recv._n = 2**64 - 2
    assert recv.decrypt_with_ad(b"", send.encrypt_with_ad(b"", b"last")) == b"last"
    with pytest.raises(SessionClosedError):
        send.encrypt_with_ad(b"", b"one too many")
    with pytest.raises(SessionClosedError):
        recv.decrypt_with_ad(b"", bytes(32))


def test_cipher_state_limits() -> None:
    with pytest.raises(ProtocolError):
        CipherState(b"short")
    cipher = CipherState(bytes(32))
    assert cipher.has_key
    assert not CipherState().has_key
    with pytest.raises(ProtocolError):
        cipher.encrypt_with_ad(b"", bytes(MAX_NOISE_MESSAGE - TAG_LEN + 1))
    assert len(cipher.encrypt_with_ad(b"", bytes(MAX_NOISE_MESSAGE - TAG_LEN))) == (
        MAX_NOISE_MESSAGE
    )
    with pytest.raises(ProtocolError):
        cipher.decrypt_with_ad(b"", bytes(MAX_NOISE_MESSAGE + 1))


# --- handshake failures --------------------------------------------------------------------


def test_ik_wrong_responder_static_fails_at_responder() -> None:
    init_s, _ = generate_keypair()
    resp_s, _ = generate_keypair()
    _, wrong_pub = generate_keypair()
    initiator = HandshakeState("IK", initiator=True, s=init_s, rs=wrong_pub)
    responder = HandshakeState("IK", initiator=False, s=resp_s)
    message = initiator.write_message(b"hello")
    with pytest.raises(DecryptError):
        responder.read_message(message)
    # a failed handshake state stays dead
    with pytest.raises(HandshakeError):
        responder.write_message()


@pytest.mark.parametrize("pattern", ["NK", "XX", "IK"])
def test_tampered_handshake_message(pattern: str) -> None:
    initiator, responder = _pair(pattern)
    responder.read_message(initiator.write_message(b"one"))
    message = bytearray(responder.write_message(b"two"))
    message[-1] ^= 0x80
    with pytest.raises(DecryptError):
        initiator.read_message(bytes(message))


def test_prologue_mismatch_fails() -> None:
    initiator = HandshakeState("NN", initiator=True, prologue=b"a")
    responder = HandshakeState("NN", initiator=False, prologue=b"b")
    responder.read_message(initiator.write_message())
    with pytest.raises(DecryptError):
        initiator.read_message(responder.write_message(b"payload"))


def test_out_of_turn_calls() -> None:
    initiator, responder = _pair("XX")
    with pytest.raises(HandshakeError):
        initiator.read_message(bytes(DH_LEN))
    with pytest.raises(HandshakeError):
        responder.write_message()
    message = initiator.write_message()
    with pytest.raises(HandshakeError):
        initiator.write_message()
    responder.read_message(message)
    with pytest.raises(HandshakeError):
        responder.read_message(message)


def test_calls_after_completion_and_split() -> None:
    initiator, responder = _pair("NN")
    with pytest.raises(HandshakeError):
        initiator.split()
    with pytest.raises(HandshakeError):
        _ = initiator.handshake_hash
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    assert initiator.complete
    with pytest.raises(HandshakeError):
        initiator.write_message()
    with pytest.raises(HandshakeError):
        initiator.read_message(bytes(64))
    initiator.split()
    with pytest.raises(HandshakeError):
        initiator.split()


def test_short_handshake_message() -> None:
    initiator, responder = _pair("XX")
    responder.read_message(initiator.write_message())
    message = responder.write_message()
    with pytest.raises(HandshakeError):
        initiator.read_message(message[: DH_LEN + DH_LEN + TAG_LEN])
    with pytest.raises(HandshakeError):
        HandshakeState("NN", initiator=False).read_message(bytes(DH_LEN - 1))


def test_oversized_handshake_payload() -> None:
    initiator, _ = _pair("NN")
    with pytest.raises(HandshakeError):
        initiator.write_message(bytes(MAX_NOISE_MESSAGE - DH_LEN + 1))
    assert len(initiator.write_message(bytes(MAX_NOISE_MESSAGE - DH_LEN))) == MAX_NOISE_MESSAGE


def test_low_order_ephemeral_rejected() -> None:
    resp_s, _ = generate_keypair()
    responder = HandshakeState("NK", initiator=False, s=resp_s)
    with pytest.raises(HandshakeError):
        responder.read_message(bytes(DH_LEN) + bytes(TAG_LEN))
    nn_responder = HandshakeState("NN", initiator=False)
    nn_responder.read_message(bytes(DH_LEN))
    with pytest.raises(HandshakeError):
        nn_responder.write_message()


@pytest.mark.parametrize(
    ("pattern", "initiator", "kwargs"),
    [
        ("XX", True, {}),  # XX initiator needs s
        ("NK", True, {}),  # NK initiator needs rs
        ("KK", False, {"s": bytes(range(32))}),  # KK responder needs rs
        ("NN", True, {"s": bytes(range(32))}),  # NN takes no static key
        ("XX", True, {"s": bytes(range(32)), "rs": bytes(32)}),  # XX takes no pre-known rs
        ("XX", True, {"s": b"short"}),
        ("NK", True, {"rs": b"short"}),
        ("NN", True, {"e": b"short"}),
        ("ZZ", True, {}),
        ("Noise_XX_448_ChaChaPoly_SHA256", True, {}),
    ],
)
def test_bad_construction(pattern: str, initiator: bool, kwargs: dict[str, bytes]) -> None:
    with pytest.raises(HandshakeError):
        HandshakeState(pattern, initiator=initiator, **kwargs)


def test_errors_do_not_leak_key_material() -> None:
    init_s, _ = generate_keypair()
    resp_s, _ = generate_keypair()
    _, wrong_pub = generate_keypair()
    initiator = HandshakeState("IK", initiator=True, s=init_s, rs=wrong_pub)
    responder = HandshakeState("IK", initiator=False, s=resp_s)
    with pytest.raises(DecryptError) as info:
        responder.read_message(initiator.write_message())
    text = str(info.value)
    for key in (init_s, resp_s, wrong_pub):
        assert key.hex() not in text
        assert repr(key) not in text
