"""Signed notes, transparency-log checkpoints and witness cosignatures (C2SP).

Formatting, parsing and verification only. Signing goes through a callback (a message or a
digest in, a signature out), so the private keys stay in ``medsign.keys``::

    line = cosign(body, name, public_key, timestamp,
                  lambda m: keystore.sign_message(key_id, SignatureScheme.ED25519, m, ...))

* c2sp.org/signed-note: UTF-8 text ending in a newline, a blank line, then one or more lines
  ``— <key name> base64(4-byte key id || signature)``; the text is separated from the
  signatures by the *last* blank line.
* c2sp.org/tlog-checkpoint: origin, tree size (decimal, no leading zeros), base64 root hash,
  then optional extension lines.
* c2sp.org/tlog-cosignature v1 (Ed25519): ``u64 timestamp || Ed25519 signature`` over
  ``"cosignature/v1\\ntime <timestamp>\\n"`` followed by the whole checkpoint text.

The signature types medsign reads and writes:

====  =====================  ==================================  ===============================
type  what                   key id (first 4 bytes, big-endian)  signature
====  =====================  ==================================  ===============================
0x01  Ed25519 note key       SHA-256(name || 0x0A || 0x01 || k)  Ed25519 over the text
0x02  ECDSA (P-256)          SHA-256(DER SubjectPublicKeyInfo)   DER ECDSA over SHA-256(text)
0x04  Ed25519 cosigner       SHA-256(name || 0x0A || 0x04 || k)  u64 time || Ed25519 (see above)
====  =====================  ==================================  ===============================

(``k`` is the 32-byte RFC 8032 public key.) The signed-note specification assigns 0x02 to
"ECDSA signatures as implemented by github.com/transparency-dev/witness" and states only its
key id rule; the signature itself follows that implementation (transparency-dev/witness
``internal/note/note_verifier.go`` and transparency-dev/formats ``note/note_verifier.go``,
``NewECDSAVerifier``, "compatible with the signature scheme used by the Sigstore Rekor log"):
ASN.1 DER ECDSA over the SHA-256 digest of the note text, key id over the DER SPKI without
the name. The specification also allows P-384 and P-521; medsign's keys are P-256 only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import assert_never

from medsign.crypto.public import PublicKey, verify
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.errors import InputError, MedsignError, VerificationError

__all__ = [
    "COSIGNATURE_HEADER",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointFormatError",
    "DigestSigner",
    "MessageSigner",
    "Note",
    "NoteFormatError",
    "NoteKeyType",
    "NoteSignature",
    "NoteSignatureError",
    "NoteUnverifiedError",
    "NoteVerifier",
    "VerifiedSignature",
    "check_key_name",
    "check_note_text",
    "cosign",
    "cosignature_message",
    "cosignature_time",
    "ecdsa_key_id",
    "note_key_id",
    "open_note",
    "parse_note",
    "parse_signature_line",
    "sign_checkpoint_ecdsa",
    "sign_note_ecdsa",
    "sign_note_ed25519",
]

SIGNATURE_PREFIX = "\u2014 "  # em dash, space
# The specification asks verifiers to accept at least 16 signatures and recalls that
# post-quantum ones approach 5 kB (6.6 kB of base64 with key id and timestamp): 16 of those
# fit in 128 KiB. Unknown signatures count too, though they are never verified.
MAX_NOTE_SIZE = 128 * 1024
MAX_SIGNATURES = 32
COSIGNATURE_HEADER = b"cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1  # tlog-cosignature: a timestamp MUST NOT exceed 2^63 - 1
MAX_TREE_SIZE = 2**64 - 1
ROOT_HASH_SIZE = 32  # RFC 6962 with SHA-256
ED25519_SIGNATURE_SIZE = 64
TIMESTAMP_SIZE = 8

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")

MessageSigner = Callable[[bytes], bytes]
"""Signs a message whole and returns the signature, e.g. ``KeyStore.sign_message``."""

DigestSigner = Callable[[bytes], bytes]
"""Signs a 32-byte SHA-256 digest and returns the DER signature, e.g. ``KeyStore.sign_digest``
with ``SignatureScheme.ECDSA_SHA256``."""


class NoteFormatError(InputError):
    """The bytes are not a well-formed signed note (or note text, key name, signature line)."""

    code = "note-malformed"
    title = "Malformed signed note"


class CheckpointFormatError(NoteFormatError):
    """The note text is not a checkpoint (c2sp.org/tlog-checkpoint)."""

    code = "checkpoint-malformed"
    title = "Malformed checkpoint"


class NoteSignatureError(VerificationError):
    """A signature by a known key does not verify: the whole note is rejected."""

    code = "note-signature-invalid"
    title = "A signature on the note does not verify"


class NoteUnverifiedError(VerificationError):
    """No signature on the note is by a known key."""

    code = "note-unverified"
    title = "The note has no signature by a known key"


class NoteKeyType(IntEnum):
    """Signature type identifier bytes (c2sp.org/signed-note, "Signature types")."""

    ED25519 = 0x01
    ECDSA = 0x02
    COSIGNATURE_V1 = 0x04

    @property
    def key_algorithm(self) -> KeyAlgorithm:
        match self:
            case NoteKeyType.ED25519 | NoteKeyType.COSIGNATURE_V1:
                return KeyAlgorithm.ED25519
            case NoteKeyType.ECDSA:
                return KeyAlgorithm.EC_P256
        assert_never(self)


# -- text, names, base64 ------------------------------------------------------------------------


def _check_characters(text: str, error: type[NoteFormatError]) -> None:
    if _CONTROL.search(text):
        raise error("control characters other than newline are not allowed")


def _utf8(text: str, error: type[NoteFormatError]) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise error("the text is not valid Unicode") from exc


def check_note_text(text: str) -> bytes:
    """The UTF-8 bytes of ``text`` if it can be a note text; raises ``NoteFormatError``."""
    if not isinstance(text, str) or not text:
        raise NoteFormatError("the note text must be a non-empty string")
    if not text.endswith("\n"):
        raise NoteFormatError("the note text must end with a newline")
    _check_characters(text, NoteFormatError)
    encoded = _utf8(text, NoteFormatError)
    if len(encoded) > MAX_NOTE_SIZE:
        raise NoteFormatError(f"the note text is over {MAX_NOTE_SIZE} bytes")
    return encoded


def check_key_name(name: str) -> str:
    """A key name: non-empty, no Unicode spaces, no plus sign, no control characters."""
    if not isinstance(name, str) or not name:
        raise NoteFormatError("a key name must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name):
        raise NoteFormatError(f"key name {name!r} contains a space or a plus sign")
    _check_characters(name, NoteFormatError)
    _utf8(name, NoteFormatError)
    return name


def _decode_base64(text: str, what: str, error: type[NoteFormatError]) -> bytes:
    # Standard alphabet with padding (RFC 4648 §4), and only its canonical form: one value
    # has one spelling, so a signature line cannot be varied without changing what it says.
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise error(f"{what} is not base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"{what} is not canonical base64")
    return raw


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- key ids -------------------------------------------------------------------------------------


def note_key_id(name: str, key_type: NoteKeyType, key: bytes) -> int:
    """SHA-256(name || 0x0A || type || key)[:4] as a big-endian integer (types 0x01, 0x04)."""
    data = check_key_name(name).encode("utf-8") + b"\n" + bytes([key_type]) + key
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big")


def ecdsa_key_id(public_key: PublicKey) -> int:
    """SHA-256(DER SubjectPublicKeyInfo)[:4]: type 0x02 keys do not hash their name."""
    return int.from_bytes(hashlib.sha256(public_key.der).digest()[:4], "big")


def _key_id(name: str, key_type: NoteKeyType, public_key: PublicKey) -> int:
    match key_type:
        case NoteKeyType.ED25519 | NoteKeyType.COSIGNATURE_V1:
            return note_key_id(name, key_type, public_key.ed25519_raw)
        case NoteKeyType.ECDSA:
            check_key_name(name)
            return ecdsa_key_id(public_key)
    assert_never(key_type)


# -- notes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key id and the signature bytes after the key id."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if isinstance(self.key_id, bool) or not isinstance(self.key_id, int):
            raise NoteFormatError("a key id is an integer")
        if not 0 <= self.key_id < 2**32:
            raise NoteFormatError("a key id is four bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise NoteFormatError("a signature is one byte or more")

    @property
    def key(self) -> str:
        """``name+keyid`` in hex, as notes and verifier keys name a key."""
        return f"{self.name}+{self.key_id:08x}"

    def line(self) -> str:
        """The signature line, with its newline."""
        payload = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {_encode_base64(payload)}\n"


def parse_signature_line(line: str) -> NoteSignature:
    """One signature line (its final newline optional); raises ``NoteFormatError``."""
    if not isinstance(line, str):
        raise NoteFormatError("a signature line is a string")
    if line.endswith("\n"):
        line = line[:-1]
    if "\n" in line:
        raise NoteFormatError("a signature line is one line")
    _check_characters(line, NoteFormatError)
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteFormatError("a signature line starts with an em dash (U+2014) and a space")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise NoteFormatError("a signature line has a key name, a space and a signature")
    check_key_name(name)
    raw = _decode_base64(encoded, "the signature", NoteFormatError)
    if len(raw) < 5:
        raise NoteFormatError("a signature holds a 4-byte key id and at least one byte")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


@dataclass(frozen=True)
class Note:
    """A note text and its signatures, in the order they appear."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        check_note_text(self.text)
        if not isinstance(self.signatures, tuple) or not self.signatures:
            raise NoteFormatError("a signed note has one signature or more")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteFormatError(f"a note may carry at most {MAX_SIGNATURES} signatures")
        if not all(isinstance(s, NoteSignature) for s in self.signatures):
            raise NoteFormatError("signatures must be NoteSignature values")

    def with_signatures(self, *signatures: NoteSignature) -> Note:
        """This note with ``signatures`` appended (e.g. witness cosignatures)."""
        return Note(self.text, (*self.signatures, *signatures))

    def encode(self) -> bytes:
        """The note's bytes; raises ``NoteFormatError`` for one ``parse_note`` would refuse."""
        encoded = (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()
        if len(encoded) > MAX_NOTE_SIZE:
            raise NoteFormatError(f"the note is over {MAX_NOTE_SIZE} bytes")
        return encoded


def parse_note(data: bytes) -> Note:
    """Split a signed note into its text and signature lines, checking every rule of the
    format but no signature; raises ``NoteFormatError``."""
    if not isinstance(data, bytes):
        raise NoteFormatError("a signed note is bytes")
    if len(data) > MAX_NOTE_SIZE:
        raise NoteFormatError(f"the note is over {MAX_NOTE_SIZE} bytes")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteFormatError("the note is not UTF-8") from exc
    _check_characters(decoded, NoteFormatError)
    if not decoded.endswith("\n"):
        raise NoteFormatError("the note must end with a newline")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("no blank line separates the text from the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block:
        raise NoteFormatError("the note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(f"a note may carry at most {MAX_SIGNATURES} signatures")
    return Note(text, tuple(parse_signature_line(line) for line in lines))


# -- checkpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log's tree head (c2sp.org/tlog-checkpoint), the text of a signed note."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.extensions, tuple):
            raise CheckpointFormatError("the extension lines are a tuple")
        for what, line in (("origin", self.origin), *(("extension", e) for e in self.extensions)):
            if not isinstance(line, str) or not line:
                raise CheckpointFormatError(f"the {what} line must be a non-empty string")
            if "\n" in line:
                raise CheckpointFormatError(f"the {what} line must be one line")
            _check_characters(line, CheckpointFormatError)
            _utf8(line, CheckpointFormatError)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointFormatError("the tree size is an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointFormatError("the tree size must fit 64 unsigned bits")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_SIZE:
            raise CheckpointFormatError(f"the root hash is {ROOT_HASH_SIZE} bytes")

    def body(self) -> bytes:
        """The note text: every line followed by a newline."""
        lines = (self.origin, str(self.size), _encode_base64(self.root_hash), *self.extensions)
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def parse(cls, text: str | bytes) -> Checkpoint:
        """A checkpoint from a note text (not a signed note: see ``open_note``)."""
        if isinstance(text, bytes):
            if len(text) > MAX_NOTE_SIZE:
                raise CheckpointFormatError(f"the checkpoint is over {MAX_NOTE_SIZE} bytes")
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CheckpointFormatError("the checkpoint is not UTF-8") from exc
        if not isinstance(text, str):
            raise CheckpointFormatError("a checkpoint is text")
        _check_characters(text, CheckpointFormatError)
        if not text.endswith("\n"):
            raise CheckpointFormatError("the checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointFormatError("a checkpoint has an origin, a tree size and a root hash")
        if not all(lines):
            raise CheckpointFormatError("a checkpoint has no empty lines")
        origin, size_text, hash_text, *extensions = lines
        if not _TREE_SIZE.fullmatch(size_text):
            raise CheckpointFormatError("the tree size must be decimal without leading zeros")
        root_hash = _decode_base64(hash_text, "the root hash", CheckpointFormatError)
        return cls(origin, int(size_text), root_hash, tuple(extensions))


# -- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that verified under a known key; ``timestamp`` for cosignatures."""

    name: str
    key_id: int
    key_type: NoteKeyType
    timestamp: int | None = None


def cosignature_message(checkpoint_body: bytes, timestamp: int) -> bytes:
    """What an Ed25519 cosigner signs: header line, time line, then the checkpoint text."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise InputError("a cosignature timestamp is an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InputError(f"a cosignature timestamp lies between 0 and {MAX_TIMESTAMP}")
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + checkpoint_body


def cosignature_time(signature: NoteSignature) -> int:
    """The POSIX time a v1 cosignature states (unverified: see ``open_note``)."""
    if len(signature.signature) != TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE:
        raise NoteFormatError(f"signature by {signature.key} is not an Ed25519 cosignature")
    return int.from_bytes(signature.signature[:TIMESTAMP_SIZE], "big")


@dataclass(frozen=True)
class NoteVerifier:
    """A key trusted to sign notes: name, key id, public key and signature type.

    The key id must be the one the name and key give (every type medsign supports fixes it),
    so a misconfigured verifier fails when it is made rather than ignoring every signature.
    """

    name: str
    key_id: int
    public_key: PublicKey
    key_type: NoteKeyType

    def __post_init__(self) -> None:
        try:
            key_type = NoteKeyType(self.key_type)
        except ValueError as exc:
            raise InputError(f"unsupported note signature type {self.key_type!r}") from exc
        object.__setattr__(self, "key_type", key_type)
        if not isinstance(self.public_key, PublicKey):
            raise InputError("a note verifier needs a PublicKey")
        if isinstance(self.key_id, bool) or not isinstance(self.key_id, int):
            raise InputError("a key id is an integer")
        if self.public_key.algorithm is not key_type.key_algorithm:
            raise InputError(
                f"a type 0x{key_type:02x} note key is {key_type.key_algorithm},"
                f" not {self.public_key.algorithm}"
            )
        if self.key_id != _key_id(self.name, key_type, self.public_key):
            raise InputError(f"key id {self.key_id:08x} does not belong to {self.name!r}'s key")

    @classmethod
    def for_key(cls, name: str, public_key: PublicKey, key_type: NoteKeyType) -> NoteVerifier:
        return cls(name, _key_id(name, key_type, public_key), public_key, key_type)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """A verifier from ``<name>+<hex key id>+<base64(type || key)>``, the verifier key
        encoding of golang.org/x/mod/sumdb/note (the key is the DER SPKI for type 0x02)."""
        # The base64 key may itself contain "+": only the first two separate fields.
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise InputError("a verifier key is <name>+<8 hex digits>+<base64 key>")
        name, key_id, encoded = parts[0], int(parts[1], 16), parts[2]
        try:
            raw = _decode_base64(encoded, "the verifier key", NoteFormatError)
            key_type = NoteKeyType(raw[0]) if raw else None
        except (NoteFormatError, ValueError) as exc:
            raise InputError("the verifier key is malformed or of an unknown type") from exc
        if key_type is None:
            raise InputError("the verifier key is empty")
        material = raw[1:]
        if key_type is NoteKeyType.ECDSA:
            public_key = PublicKey.from_der(material)
        else:
            public_key = PublicKey.from_ed25519_raw(material)
        return cls(name, key_id, public_key, key_type)

    @property
    def key(self) -> str:
        return f"{self.name}+{self.key_id:08x}"

    def vkey(self) -> str:
        """This verifier in the encoding ``from_vkey`` reads."""
        if self.key_type is NoteKeyType.ECDSA:
            material = self.public_key.der
        else:
            material = self.public_key.ed25519_raw
        return f"{self.key}+{_encode_base64(bytes([self.key_type]) + material)}"

    def verify(self, text: str, signature: NoteSignature) -> VerifiedSignature:
        """Raise ``NoteSignatureError`` unless ``signature`` is this key's over ``text``."""
        if (signature.name, signature.key_id) != (self.name, self.key_id):
            raise NoteSignatureError(f"the signature is by {signature.key}, not {self.key}")
        message = check_note_text(text)
        sig = signature.signature
        timestamp: int | None = None
        try:
            match self.key_type:
                case NoteKeyType.ED25519:
                    verify(self.public_key, SignatureScheme.ED25519, message, sig)
                case NoteKeyType.ECDSA:
                    verify(self.public_key, SignatureScheme.ECDSA_SHA256, message, sig)
                case NoteKeyType.COSIGNATURE_V1:
                    timestamp = cosignature_time(signature)
                    # Refuses a timestamp over 2^63 - 1, which no valid cosignature states.
                    signed = cosignature_message(message, timestamp)
                    verify(self.public_key, SignatureScheme.ED25519, signed, sig[TIMESTAMP_SIZE:])
                case _:
                    assert_never(self.key_type)
        except MedsignError as exc:
            raise NoteSignatureError(f"invalid signature for key {self.key}") from exc
        return VerifiedSignature(self.name, self.key_id, self.key_type, timestamp)


def open_note(
    data: bytes, verifiers: Iterable[NoteVerifier]
) -> tuple[str, tuple[VerifiedSignature, ...]]:
    """The text of a signed note and its verified signatures, in note order.

    As c2sp.org/signed-note asks: signatures by unknown keys are ignored, even when they
    share the name or the key id (not both) of a known key; every signature by a known key
    must verify, else ``NoteSignatureError``; at least one must, else ``NoteUnverifiedError``.
    A known key signing twice is refused (``NoteFormatError``) rather than counted twice.
    Cosignature times are returned, not judged: whether one in the future is refused (the
    specification allows it) is the caller's policy.
    """
    note = parse_note(data)
    known: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        if (verifier.name, verifier.key_id) in known:
            raise InputError(f"two verifiers are configured for key {verifier.key}")
        known[verifier.name, verifier.key_id] = verifier
    verified: list[VerifiedSignature] = []
    seen: set[tuple[str, int]] = set()
    for signature in note.signatures:
        trusted = known.get((signature.name, signature.key_id))
        if trusted is None:
            continue
        if (signature.name, signature.key_id) in seen:
            raise NoteFormatError(f"key {signature.key} signed the note twice")
        seen.add((signature.name, signature.key_id))
        verified.append(trusted.verify(note.text, signature))
    if not verified:
        raise NoteUnverifiedError("the note has no signature by a known key")
    return note.text, tuple(verified)


# -- signing -------------------------------------------------------------------------------------


def sign_note_ed25519(text: str, name: str, public_key: PublicKey, sign: MessageSigner) -> str:
    """A type 0x01 signature line over ``text``; ``sign`` signs the text's bytes whole."""
    verifier = NoteVerifier.for_key(name, public_key, NoteKeyType.ED25519)
    signature = NoteSignature(name, verifier.key_id, sign(check_note_text(text)))
    # Checked before it is handed out, as every signature medsign makes.
    verifier.verify(text, signature)
    return signature.line()


def sign_note_ecdsa(text: str, name: str, public_key: PublicKey, sign: DigestSigner) -> str:
    """A type 0x02 signature line over ``text``; ``sign`` signs SHA-256(text) with ECDSA."""
    verifier = NoteVerifier.for_key(name, public_key, NoteKeyType.ECDSA)
    digest = hashlib.sha256(check_note_text(text)).digest()
    signature = NoteSignature(name, verifier.key_id, sign(digest))
    verifier.verify(text, signature)
    return signature.line()


def sign_checkpoint_ecdsa(
    checkpoint: Checkpoint,
    public_key: PublicKey,
    sign: DigestSigner,
    *,
    name: str | None = None,
) -> bytes:
    """The signed checkpoint note, signed by the log's P-256 key (type 0x02) under ``name``,
    by default the origin (tlog-checkpoint: the key name SHOULD match the origin line)."""
    text = checkpoint.body().decode("utf-8")
    line = sign_note_ecdsa(text, checkpoint.origin if name is None else name, public_key, sign)
    return Note(text, (parse_signature_line(line),)).encode()


def cosign(
    checkpoint_body: bytes,
    name: str,
    public_key: PublicKey,
    timestamp: int,
    sign: MessageSigner,
) -> str:
    """A witness's v1 cosignature line (type 0x04) over a checkpoint text at ``timestamp``.

    ``sign`` signs ``cosignature_message(checkpoint_body, timestamp)`` whole with the Ed25519
    key ``public_key``. The message does not name the cosigner, so one key must serve one
    cosigner name only (tlog-cosignature).
    """
    if not isinstance(checkpoint_body, bytes):
        raise InputError("the checkpoint text to cosign is bytes")
    Checkpoint.parse(checkpoint_body)  # a cosignature speaks of a checkpoint, nothing else
    verifier = NoteVerifier.for_key(name, public_key, NoteKeyType.COSIGNATURE_V1)
    signed = sign(cosignature_message(checkpoint_body, timestamp))
    signature = NoteSignature(name, verifier.key_id, timestamp.to_bytes(8, "big") + signed)
    verifier.verify(checkpoint_body.decode("utf-8"), signature)
    return signature.line()
