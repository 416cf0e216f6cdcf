"""Firmware security advisories: signed notices that firmware versions are vulnerable (§10.2).

An *advisory* names an identifier (``RZSA-2026-0001``), the hardware and firmware part, the
affected versions (inclusive ranges in :func:`~rayzig_core.firmware.manifest.version_key` order),
the first version that fixes it, a severity, a one-paragraph summary and a link to the full text
(ETSI EN 303 645 provisions 5.2 and 5.3-11). It is canonical CBOR like a manifest and signed with
Ed25519 over :data:`ADVISORY_DOMAIN` ‖ advisory bytes, by the same publisher keys; receivers
verify the signature before parsing a byte of it. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rayzig_core.errors import FirmwareIntegrityError, FirmwareSignatureError
from rayzig_core.firmware.manifest import (
    HARDWARE_RE,
    KEY_SIZE,
    VERSION_RE,
    decode_canonical,
    signature_verifies,
    version_key,
)
from rayzig_core.models import FirmwarePart, FirmwareVersion
from rayzig_core.protocol import codec

ADVISORY_DOMAIN = b"rayzig-firmware-advisory-v1\x00"
"""Domain-separation prefix: Ed25519 signs ``ADVISORY_DOMAIN + advisory bytes``."""

MAX_ADVISORY_BYTES = 4096
"""Largest encoded advisory accepted."""

MAX_AFFECTED_RANGES = 32
MAX_SUMMARY = 500
"""Longest summary, in characters: one paragraph, shown in full in Home Assistant's Repairs."""
MAX_URL = 512

ADVISORY_ID_RE = re.compile(r"[A-Z][A-Z0-9]{1,15}-[0-9]{4}-[0-9]{4,7}")
"""An advisory identifier such as ``RZSA-2026-0001`` (or a ``CVE-2026-12345``)."""
_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/?#-]*)?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AdvisorySeverity(IntEnum):
    """How bad a vulnerability is, as its advisory rates it (PROTOCOL.md §10.2)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True, slots=True)
class VersionRange:
    """Versions from ``first`` to ``last``, both included; no ``first``: every version up to it."""

    first: str | None
    last: str

    def __contains__(self, version: object) -> bool:
        """Whether the version string ``version`` lies in the range (§10.1 version order)."""
        if not isinstance(version, str):
            return False
        key = version_key(version)
        return (self.first is None or version_key(self.first) <= key) and key <= version_key(
            self.last
        )

    def __str__(self) -> str:
        """As the CLI takes it: ``2.4.1``, ``2.0.0..2.4.1`` or ``..2.4.1``."""
        if self.first == self.last:
            return self.last
        return f"{self.first or ''}..{self.last}"


def parse_version_range(text: str) -> VersionRange:
    """``V``, ``FIRST..LAST`` or ``..LAST`` as a range; ValueError with a sentence if malformed."""
    first, separator, last = text.strip().partition("..")
    if not separator:
        first = last = text.strip()
    for version in (first, last) if first else (last,):
        if not VERSION_RE.fullmatch(version):
            raise ValueError(
                f"{version!r} is not a version (1-64 letters, digits, '.', '+', '_' or '-'); "
                "give V, FIRST..LAST or ..LAST"
            )
    if first and version_key(first) > version_key(last):
        raise ValueError(f"{first} comes after {last}: give the lower version first")
    return VersionRange(first or None, last)


@dataclass(frozen=True, slots=True)
class FirmwareAdvisory:
    """A published vulnerability of some versions of one firmware part, and what fixes it."""

    identifier: str
    hardware: str
    part: FirmwarePart
    affected: tuple[VersionRange, ...]
    fixed_in: str
    """The first version without the vulnerability; installing it (or newer) settles the notice."""
    severity: AdvisorySeverity
    summary: str
    url: str

    def affects(self, installed: FirmwareVersion) -> bool:
        """Whether ``installed`` (a part and its version) is one the advisory names."""
        return installed.part is self.part and any(
            installed.version in versions for versions in self.affected
        )

    def to_bytes(self) -> bytes:
        """Encode as canonical CBOR (a fixed-order array); FirmwareIntegrityError if invalid."""
        _validate_advisory(self)
        data = codec.dumps(_ADVISORY_ENCODER(self))
        if len(data) > MAX_ADVISORY_BYTES:
            raise FirmwareIntegrityError(
                12, f"Firmware advisory is {len(data)} bytes, more than {MAX_ADVISORY_BYTES}."
            )
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> FirmwareAdvisory:
        """Decode and validate advisory bytes; FirmwareIntegrityError if malformed.

        Only call this on bytes whose signature has been verified (see :func:`verify_advisory`).
        """
        document: FirmwareAdvisory = decode_canonical(
            data, _ADVISORY_DECODER, _validate_advisory, FirmwareAdvisory.to_bytes, "advisory"
        )
        return document


_ADVISORY_ENCODER = codec.encoder_for(FirmwareAdvisory)
_ADVISORY_DECODER = codec.decoder_for(FirmwareAdvisory)


def _validate_advisory(advisory: FirmwareAdvisory) -> None:
    """Raise FirmwareIntegrityError naming the first field outside PROTOCOL.md §10.2's limits."""
    problem = _advisory_problem(advisory)
    if problem is not None:
        raise FirmwareIntegrityError(
            12, f"Firmware advisory {advisory.identifier!r} is invalid: {problem}."
        )


def _advisory_problem(advisory: FirmwareAdvisory) -> str | None:
    """What is wrong with ``advisory``'s fields, the first problem only, or None."""
    if not ADVISORY_ID_RE.fullmatch(advisory.identifier):
        return "the identifier must look like RZSA-2026-0001"
    if not HARDWARE_RE.fullmatch(advisory.hardware):
        return "hardware must be 1-64 letters, digits, '.', '_' or '-'"
    if (problem := _ranges_problem(advisory.affected)) is not None:
        return problem
    if not VERSION_RE.fullmatch(advisory.fixed_in):
        return "the fixed-in version must be 1-64 letters, digits, '.', '+', '_' or '-'"
    if any(advisory.fixed_in in versions for versions in advisory.affected):
        return f"the fixed-in version {advisory.fixed_in} is among the affected versions"
    if not 0 < len(advisory.summary) <= MAX_SUMMARY or _CONTROL_RE.search(advisory.summary):
        return f"the summary must be one paragraph of 1-{MAX_SUMMARY} characters"
    if len(advisory.url) > MAX_URL or not _URL_RE.fullmatch(advisory.url):
        return f"the link must be an http(s) address of at most {MAX_URL} characters"
    return None


def _ranges_problem(affected: tuple[VersionRange, ...]) -> str | None:
    """What is wrong with the affected ranges, or None."""
    if not 0 < len(affected) <= MAX_AFFECTED_RANGES:
        return f"it must name 1-{MAX_AFFECTED_RANGES} affected version ranges"
    for versions in affected:
        if not VERSION_RE.fullmatch(versions.last) or (
            versions.first is not None and not VERSION_RE.fullmatch(versions.first)
        ):
            return "affected versions must be 1-64 letters, digits, '.', '+', '_' or '-'"
        if versions.first is not None and version_key(versions.first) > version_key(versions.last):
            return f"the affected range {versions} runs backwards"
    return None


@dataclass(frozen=True, slots=True)
class SignedAdvisory:
    """Advisory bytes exactly as signed, with their Ed25519 signature."""

    advisory: bytes
    signature: bytes


def sign_advisory(private_key: bytes, advisory: FirmwareAdvisory) -> SignedAdvisory:
    """Encode ``advisory`` and sign ``ADVISORY_DOMAIN + bytes`` with a raw Ed25519 private key."""
    if len(private_key) != KEY_SIZE:
        raise ValueError("an Ed25519 private key is 32 raw bytes")
    data = advisory.to_bytes()
    signature = Ed25519PrivateKey.from_private_bytes(private_key).sign(ADVISORY_DOMAIN + data)
    return SignedAdvisory(advisory=data, signature=signature)


def verify_advisory(signed: SignedAdvisory, trusted_keys: Sequence[bytes]) -> FirmwareAdvisory:
    """Check the signature against the trusted keys, then parse the advisory (§10.2).

    Raises FirmwareSignatureError if no trusted key verifies it (before a byte is parsed),
    FirmwareIntegrityError if a correctly signed advisory is malformed.
    """
    if len(signed.advisory) <= MAX_ADVISORY_BYTES and signature_verifies(
        ADVISORY_DOMAIN, signed.advisory, signed.signature, trusted_keys
    ):
        return FirmwareAdvisory.from_bytes(signed.advisory)
    raise FirmwareSignatureError(
        11,
        "Firmware advisory signature does not verify with any trusted key: it is not from a "
        "trusted publisher or was modified.",
    )


def affecting(
    advisories: Iterable[FirmwareAdvisory], installed: Iterable[FirmwareVersion]
) -> list[tuple[FirmwareAdvisory, FirmwareVersion]]:
    """Each advisory that names an installed part's version, with that part's version.

    In the order of ``installed`` (part order), then most severe first, then by identifier.
    """
    advisories = list(advisories)
    found: list[tuple[FirmwareAdvisory, FirmwareVersion]] = []
    for version in installed:
        matching = [advisory for advisory in advisories if advisory.affects(version)]
        matching.sort(key=lambda advisory: (-advisory.severity, advisory.identifier))
        found.extend((advisory, version) for advisory in matching)
    return found
