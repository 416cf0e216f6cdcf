"""Sans-I/O Noise Protocol Framework (revision 34) for the 25519 / ChaChaPoly / SHA256 suite.

Implements CipherState, SymmetricState and HandshakeState as the Noise specification
(https://noiseprotocol.org/noise.html, sections 5 and 7) defines them, for the interactive
patterns NN, NK, KK, XK, XX and IK. Only bytes go in and out: no sockets, no event loop.
Exception messages never contain key material.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from rayzig_core.errors import DecryptError, HandshakeError, ProtocolError, SessionClosedError

__all__ = [
    "DH_LEN",
    "HASH_LEN",
    "MAX_NOISE_MESSAGE",
    "PATTERNS",
    "SUITE",
    "TAG_LEN",
    "CipherState",
    "HandshakeState",
    "generate_keypair",
    "public_key_of",
]

DH_LEN: Final = 32
"""Length of an X25519 public key, private key and DH output in bytes (Noise DHLEN)."""

HASH_LEN: Final = 32
"""Length of a SHA-256 digest in bytes (Noise HASHLEN)."""

TAG_LEN: Final = 16
"""Length of the ChaCha20-Poly1305 authentication tag appended to every ciphertext."""

MAX_NOISE_MESSAGE: Final = 65535
"""Largest Noise message in bytes (Noise section 3); longer messages are refused."""

SUITE: Final = "25519_ChaChaPoly_SHA256"
"""The only DH/cipher/hash suite this module implements, as spelled in protocol names."""

_KEY_LEN: Final = 32
_MAX_NONCE: Final = 2**64 - 1  # reserved by Noise: never used to encrypt

# pattern -> (initiator pre-message tokens, responder pre-message tokens, message token lists);
# message i is written by the initiator when i is even (Noise sections 7.4 and 7.5).
PATTERNS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, ...], ...]]]] = {
    "NN": ((), (), (("e",), ("e", "ee"))),
    "NK": ((), ("s",), (("e", "es"), ("e", "ee"))),
    "KK": (("s",), ("s",), (("e", "es", "ss"), ("e", "ee", "se"))),
    "XK": ((), ("s",), (("e", "es"), ("e", "ee"), ("s", "se"))),
    "XX": ((), (), (("e",), ("e", "ee", "s", "es"), ("s", "se"))),
    "IK": ((), ("s",), (("e", "es", "s", "ss"), ("e", "ee", "se"))),
}
"""Supported handshake patterns: pre-messages of each side, then the message token table."""


def generate_keypair() -> tuple[bytes, bytes]:
    """Return a fresh raw X25519 key pair ``(private, public)``, 32 bytes each, for static keys."""
    private = X25519PrivateKey.generate()
    return _raw_private(private), _raw_public(private.public_key())


def public_key_of(private_key: bytes) -> bytes:
    """Return the raw 32-byte X25519 public key of a raw private key, to publish or pin it."""
    _check_len(private_key, DH_LEN, "private key")
    return _raw_public(X25519PrivateKey.from_private_bytes(bytes(private_key)).public_key())


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_len(value: bytes, length: int, what: str) -> None:
    if len(value) != length:
        raise HandshakeError(f"{what} must be {length} bytes")


def _dh(private_key: bytes, public_key: bytes) -> bytes:
    """X25519 DH; a low-order peer key (all-zero shared secret) is refused."""
    try:
        shared = X25519PrivateKey.from_private_bytes(private_key).exchange(
            X25519PublicKey.from_public_bytes(public_key)
        )
    except ValueError:
        raise HandshakeError("peer public key is invalid or of low order") from None
    if hmac.compare_digest(shared, bytes(DH_LEN)):
        raise HandshakeError("peer public key is invalid or of low order")
    return shared


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _hkdf(chaining_key: bytes, input_key_material: bytes, num_outputs: int) -> tuple[bytes, ...]:
    """Noise HKDF (section 4.3): HMAC-SHA256 extract, then 2 or 3 chained expand blocks."""
    temp_key = _hmac(chaining_key, input_key_material)
    outputs: list[bytes] = []
    previous = b""
    for index in range(1, num_outputs + 1):
        previous = _hmac(temp_key, previous + bytes([index]))
        outputs.append(previous)
    return tuple(outputs)


class CipherState:
    """ChaCha20-Poly1305 key plus 64-bit counter nonce (Noise section 5.1); one per direction."""

    __slots__ = ("_aead", "_n")

    def __init__(self, key: bytes | None = None) -> None:
        if key is not None and len(key) != _KEY_LEN:
            raise ProtocolError(f"cipher key must be {_KEY_LEN} bytes")
        self._aead: ChaCha20Poly1305 | None = (
            ChaCha20Poly1305(bytes(key)) if key is not None else None
        )
        self._n = 0

    @property
    def has_key(self) -> bool:
        """Whether a key is set; without one, encryption is the identity (handshake start)."""
        return self._aead is not None

    @property
    def nonce(self) -> int:
        """The nonce the next encrypt/decrypt will use; it counts messages in this direction."""
        return self._n

    def _nonce_bytes(self) -> bytes:
        if self._n >= _MAX_NONCE:
            raise SessionClosedError("Noise nonce space exhausted; the session must be renewed")
        return b"\x00\x00\x00\x00" + self._n.to_bytes(8, "little")

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext`` bound to ``ad``, then advance the nonce."""
        overhead = TAG_LEN if self._aead is not None else 0
        if len(plaintext) + overhead > MAX_NOISE_MESSAGE:
            raise ProtocolError("plaintext exceeds the Noise message limit")
        if self._aead is None:
            return bytes(plaintext)
        nonce = self._nonce_bytes()
        ciphertext = self._aead.encrypt(nonce, bytes(plaintext), bytes(ad))
        self._n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Authenticate and decrypt ``ciphertext`` bound to ``ad``; advance the nonce on success."""
        if len(ciphertext) > MAX_NOISE_MESSAGE:
            raise ProtocolError("ciphertext exceeds the Noise message limit")
        if self._aead is None:
            return bytes(ciphertext)
        nonce = self._nonce_bytes()
        if len(ciphertext) < TAG_LEN:
            raise DecryptError("ciphertext shorter than the authentication tag")
        try:
            plaintext = self._aead.decrypt(nonce, bytes(ciphertext), bytes(ad))
        except InvalidTag:
            raise DecryptError("message failed authentication") from None
        self._n += 1
        return plaintext


class _SymmetricState:
    """Chaining key, handshake hash and current handshake cipher (Noise section 5.2)."""

    __slots__ = ("cipher", "ck", "h")

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASH_LEN:
            self.h = protocol_name.ljust(HASH_LEN, b"\x00")
        else:
            self.h = _hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        self.ck, temp_k = _hkdf(self.ck, input_key_material, 2)
        self.cipher = CipherState(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        temp_k1, temp_k2 = _hkdf(self.ck, b"", 2)
        return CipherState(temp_k1), CipherState(temp_k2)


def _parse_pattern(pattern: str) -> str:
    """Accept ``"XX"`` or ``"Noise_XX_25519_ChaChaPoly_SHA256"``; return the short name."""
    name = pattern
    prefix, suffix = "Noise_", "_" + SUITE
    if name.startswith(prefix) and name.endswith(suffix):
        name = name[len(prefix) : -len(suffix)]
    if name not in PATTERNS:
        raise HandshakeError("unsupported Noise pattern or suite")
    return name


class HandshakeState:
    """One party's side of a Noise handshake (Noise section 5.3), driven message by message."""

    __slots__ = (
        "_complete",
        "_e",
        "_failed",
        "_h_final",
        "_index",
        "_initiator",
        "_messages",
        "_re",
        "_rs",
        "_s",
        "_s_pub",
        "_split",
        "_sym",
    )

    def __init__(
        self,
        pattern: str,
        *,
        initiator: bool,
        prologue: bytes = b"",
        s: bytes | None = None,
        rs: bytes | None = None,
        e: bytes | None = None,
    ) -> None:
        name = _parse_pattern(pattern)
        init_pre, resp_pre, messages = PATTERNS[name]
        own_pre, remote_pre = (init_pre, resp_pre) if initiator else (resp_pre, init_pre)
        parity = 0 if initiator else 1
        own_ops = {op for i, m in enumerate(messages) if i % 2 == parity for op in m}
        needs_s = "s" in own_pre or "s" in own_ops
        needs_rs = "s" in remote_pre

        if s is None and needs_s:
            raise HandshakeError(f"pattern {name} needs this party's static key")
        if s is not None and not needs_s:
            raise HandshakeError(f"pattern {name} does not use this party's static key")
        if rs is None and needs_rs:
            raise HandshakeError(f"pattern {name} needs the peer's static public key in advance")
        if rs is not None and not needs_rs:
            raise HandshakeError(f"pattern {name} does not take the peer's static key in advance")
        if s is not None:
            _check_len(s, DH_LEN, "static private key")
        if rs is not None:
            _check_len(rs, DH_LEN, "remote static public key")
        if e is not None:
            _check_len(e, DH_LEN, "ephemeral private key")

        self._initiator = initiator
        self._messages = messages
        self._index = 0
        self._complete = False
        self._failed = False
        self._split = False
        self._h_final = b""
        self._s = bytes(s) if s is not None else None
        self._s_pub = public_key_of(self._s) if self._s is not None else None
        self._e = bytes(e) if e is not None else None
        self._rs = bytes(rs) if rs is not None else None
        self._re: bytes | None = None

        self._sym = _SymmetricState(f"Noise_{name}_{SUITE}".encode("ascii"))
        self._sym.mix_hash(bytes(prologue))
        # Pre-messages: the initiator's keys are hashed first, then the responder's (section 7.1).
        for owner_is_initiator, ops in ((True, init_pre), (False, resp_pre)):
            for _op in ops:  # only "s" occurs in the supported patterns' pre-messages
                mine = owner_is_initiator == initiator
                key = self._s_pub if mine else self._rs
                assert key is not None  # guaranteed by the checks above
                self._sym.mix_hash(key)

    # --- state ----------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Whether every handshake message has been written or read, so split() may be called."""
        return self._complete

    @property
    def handshake_hash(self) -> bytes:
        """The final handshake hash h, a unique session id usable for channel binding."""
        if not self._complete:
            raise HandshakeError("handshake hash is only defined once the handshake is complete")
        return self._h_final

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key: pre-known, learnt in the handshake, or None if unknown."""
        return self._rs

    def _is_my_turn(self) -> bool:
        return (self._index % 2 == 0) == self._initiator

    def _check_usable(self, *, writing: bool) -> None:
        if self._failed:
            raise HandshakeError("handshake already failed")
        if self._complete:
            raise HandshakeError("handshake already complete")
        if self._is_my_turn() != writing:
            raise HandshakeError(
                "out of turn: expected to " + ("read" if writing else "write") + " a message"
            )

    def _overhead(self, ops: tuple[str, ...]) -> int:
        """Bytes the tokens and payload tag add to a message, given the current cipher state."""
        has_key = self._sym.cipher.has_key
        size = 0
        for op in ops:
            if op == "e":
                size += DH_LEN
            elif op == "s":
                size += DH_LEN + (TAG_LEN if has_key else 0)
            else:
                has_key = True
        return size + (TAG_LEN if has_key else 0)

    def _mix_dh(self, op: str) -> None:
        # "es" is the initiator's e with the responder's s; each side maps it to local/remote.
        local_is_e = op[0] == "e" if self._initiator else op[1] == "e"
        remote_is_e = op[1] == "e" if self._initiator else op[0] == "e"
        local = self._e if local_is_e else self._s
        remote = self._re if remote_is_e else self._rs
        if local is None or remote is None:
            raise HandshakeError("a key required by the pattern is missing")
        self._sym.mix_key(_dh(local, remote))

    def _finish_message(self) -> None:
        self._index += 1
        if self._index == len(self._messages):
            self._complete = True
            self._h_final = self._sym.h
            self._e = None
            self._re = None

    # --- messages -------------------------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        """Produce this party's next handshake message carrying ``payload`` (encrypted if keyed)."""
        self._check_usable(writing=True)
        ops = self._messages[self._index]
        if self._overhead(ops) + len(payload) > MAX_NOISE_MESSAGE:
            raise HandshakeError("handshake payload exceeds the Noise message limit")
        try:
            message = self._write_ops(ops, bytes(payload))
        except Exception:
            self._failed = True
            raise
        self._finish_message()
        return message

    def _write_ops(self, ops: tuple[str, ...], payload: bytes) -> bytes:
        out = bytearray()
        for op in ops:
            if op == "e":
                if self._e is None:
                    self._e = _raw_private(X25519PrivateKey.generate())
                e_pub = public_key_of(self._e)
                out += e_pub
                self._sym.mix_hash(e_pub)
            elif op == "s":
                if self._s_pub is None:
                    raise HandshakeError("a key required by the pattern is missing")
                out += self._sym.encrypt_and_hash(self._s_pub)
            else:
                self._mix_dh(op)
        out += self._sym.encrypt_and_hash(payload)
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """Consume the peer's next handshake message and return its authenticated payload."""
        self._check_usable(writing=False)
        if len(message) > MAX_NOISE_MESSAGE:
            raise HandshakeError("handshake message exceeds the Noise message limit")
        ops = self._messages[self._index]
        if len(message) < self._overhead(ops):
            raise HandshakeError("handshake message is too short")
        try:
            payload = self._read_ops(ops, bytes(message))
        except Exception:
            self._failed = True
            raise
        self._finish_message()
        return payload

    def _read_ops(self, ops: tuple[str, ...], data: bytes) -> bytes:
        offset = 0
        for op in ops:
            if op == "e":
                self._re = data[offset : offset + DH_LEN]
                offset += DH_LEN
                self._sym.mix_hash(self._re)
            elif op == "s":
                size = DH_LEN + (TAG_LEN if self._sym.cipher.has_key else 0)
                self._rs = self._sym.decrypt_and_hash(data[offset : offset + size])
                offset += size
            else:
                self._mix_dh(op)
        return self._sym.decrypt_and_hash(data[offset:])

    def split(self) -> tuple[CipherState, CipherState]:
        """Return the transport ciphers ``(send, receive)`` for this party; callable once."""
        if not self._complete:
            raise HandshakeError("cannot split before the handshake is complete")
        if self._split:
            raise HandshakeError("split() was already called")
        self._split = True
        first, second = self._sym.split()
        self._sym.ck = b""
        self._sym.cipher = CipherState()
        self._s = None
        return (first, second) if self._initiator else (second, first)
