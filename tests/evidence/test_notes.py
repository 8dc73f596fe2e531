"""Signed notes, checkpoints and witness cosignatures (``medsign.evidence.notes``).

Vectors from independent implementations and from the specifications are checked byte for
byte; every literal below names where it comes from. Everything else is round trips, the
refusals of malformed notes, and the key store signing through the callbacks.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from medsign.clock import FixedClock
from medsign.crypto import KeyAlgorithm, PublicKey, SignatureScheme
from medsign.crypto.private import PrivateKey
from medsign.db import Database
from medsign.errors import InputError, MedsignError, VerificationError
from medsign.evidence.notes import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointFormatError,
    Note,
    NoteFormatError,
    NoteKeyType,
    NoteSignature,
    NoteSignatureError,
    NoteUnverifiedError,
    NoteVerifier,
    VerifiedSignature,
    check_key_name,
    cosign,
    cosignature_message,
    cosignature_time,
    ecdsa_key_id,
    note_key_id,
    open_note,
    parse_note,
    parse_signature_line,
    sign_checkpoint_ecdsa,
    sign_note_ecdsa,
    sign_note_ed25519,
)
from medsign.keys import MasterKeyring, SoftwareKeyStore, key_uses

# --- vectors ---------------------------------------------------------------------------------

# golang.org/x/mod, sumdb/note/note_test.go (TestSign, TestOpen): an Ed25519 (type 0x01) key
# pair in the package's vkey/skey encodings, a text, and the signature lines it produces.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6"
    "KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33W"
    "Wd1RvMc+QQ=\n"
)

# transparency-dev/witness, internal/witness/witness_test.go: two logs' Ed25519 keys, three
# checkpoints they signed (origin "Log Checkpoint v0"), and the witness's private key.
MONKEYS_VKEY = "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT"
BANANAS_VKEY = "bananas+cf639f13+AaPjhFnPCQnid/Ql32KWhmh+uk72FVRfK+2DLmO3BI3M"
WITNESS_SKEY = "PRIVATE+KEY+witness+f13a86db+AaLa/dfyBhyo/m0Z7WCi98ENVZWtrP8pxgRNrx7tIWiA"
WITNESS_CHECKPOINTS = [
    (
        MONKEYS_VKEY,
        "Log Checkpoint v0\n5\n41smjBUiAU70EtKlT6lIOIYtRTYxYXsDB+XHfcvu/BE=\n\n— monkeys 202ffu1mJ0"
        "hrPIodgN0YQV7uZk9CAEzh+hOQyRjkf9CDY1IOr/oiH6WkzGIy7aEF0rw/9SHiZztjDiTOb53i6CE/zQ8=\n",
        5,
    ),
    (
        BANANAS_VKEY,
        "Log Checkpoint v0\n5\n41smjBUiAU70EtKlT6lIOIYtRTYxYXsDB+XHfcvu/BE=\n\n— bananas z2OfE18+Nw"
        "UjjJBXH7m+fh67bu29p1Jbypr4GFUQohgQgCeuPJZtGTvfR9Pquh2Iebfq+6bhl3G/77lsKiGIea6NAwE=\n",
        5,
    ),
    (
        MONKEYS_VKEY,
        "Log Checkpoint v0\n8\nV8K9aklZ4EPB+RMOk1/8VsJUdFZR77GDtZUQq84vSbo=\n\n— monkeys 202ffm1n5/"
        "h7F3x0D6CCysNnqiL2WBu7iubseJggohhX6JBbeLts5NWKY/g0r6yNRVN/k+QJJx1Sii0MzbMUTnmO+wA=\n",
        8,
    ),
]

# FiloSottile/litetlog, internal/witness/witness_test.go: a log's raw Ed25519 public key and
# three checkpoints it signed under its origin as key name.
SIGSUM_KEY = "ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f"
SIGSUM_ORIGIN = (
    "sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562"
)
SIGSUM_CHECKPOINTS = [
    (1, "KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "UgIom7fPZTqpxWWhyjWduBvTvGVqsokMbqTArsQil"
     "egKoFBJQjUFAmQ0+YeSPM3wfUQMFSzVnnNuWRTYrajXpNUbIQY="),
    (3, "RcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0=", "UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2O"
     "RV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6go="),
    (5, "QrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY=", "UgIomw/EOJmWi0i1FQsOj+etB7F8IccFam/jgd6wz"
     "Rns4QPVmyEZtdvl1U2KEmLOZ/ASRcWJi0tW90dJWAShei7sDww="),
]  # fmt: skip

# transparency-dev/formats, note/note_verifier_test.go: type 0x02 (ECDSA P-256) verifier keys
# of the Sigstore Rekor and Pixel 6 transparency logs and a checkpoint each signed.
REKOR_VKEY = (
    "rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwB"
    "cK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc="
)
REKOR_NOTE = (
    "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n— rekor.sigstore.dev wNI9ajBE"
    "AiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3+GKVClgqq20uDLet7MCoTURUCRdxwWBHHufk=\n"
)
PIXEL_VKEY = (
    "pixel6_transparency_log+91c16e30+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN+4x0Jk1yTwvLFI9A4NDd"
    "GZcX0aiWVdWM5XJVy0M4VWD3AvyW5Q6Hs9A0mcDkpUoYgn+KKPNzFC0H3nN3q6JQ8="
)
PIXEL_NOTE = (
    "DEFAULT\n10\nbsWRucJU5xJPHb5eBdOm6+DM+VelCZBuvtI3sHERJ9Y=\n\n— pixel6_transparency_log kcFuMD"
    "BFAiEAhqMAP8P6qf6QxtUJhzMhbN+MbZ9dwfUHzGQJmffJHtoCIGD0cNe47dHWBoPwYdgBCepB06/+g5O1FmYjXl06owL4"
    "\n"
)

# transparency-dev/formats, note/note_cosigv1_test.go: verifier keys whose key ids follow the
# type byte (0x04 cosigner, 0x01 note key), and a cosignature whose timestamp is 1727964367.
REMORA_COSIGNER_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
TEST_NOTE_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
FORMATS_COSIGNATURE = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJ"
    "XORmnFBOBA=="
)

# C2SP tlog-checkpoint.md and tlog-cosignature.md: the example checkpoint with the log's and a
# witness's signatures, and the message the witness signed (its "time" line is the timestamp
# inside the cosignature, big-endian).
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_LOG_SIG = (
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2"
    "q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
SPEC_COSIG = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2"
    "oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_COSIGNED_MESSAGE = (
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def seed_of(skey: str) -> bytes:
    """The Ed25519 seed in a golang.org/x/mod note private key (PRIVATE+KEY+name+id+key)."""
    raw = base64.b64decode(skey.split("+", 4)[4])
    assert raw[0] == 1 and len(raw) == 33
    return raw[1:]


def signer_from_seed(seed: bytes) -> tuple[PublicKey, ed25519.Ed25519PrivateKey]:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return PublicKey.from_ed25519_raw(private.public_key().public_bytes_raw()), private


PETER = NoteVerifier.from_vkey(PETER_VKEY)
ENOCH = NoteVerifier.from_vkey(ENOCH_VKEY)


# --- independent vectors ---------------------------------------------------------------------


def test_go_sumdb_note_is_reproduced_byte_for_byte() -> None:
    public, private = signer_from_seed(seed_of(PETER_SKEY))
    assert public == PETER.public_key
    line = sign_note_ed25519(GO_TEXT, "PeterNeumann", public, private.sign)
    assert line == PETER_SIG
    assert (
        Note(GO_TEXT, (parse_signature_line(line),)).encode() == f"{GO_TEXT}\n{PETER_SIG}".encode()
    )
    assert PETER.vkey() == PETER_VKEY
    assert (
        PETER.key_id
        == 0xC74F20A3
        == note_key_id("PeterNeumann", NoteKeyType.ED25519, public.ed25519_raw)
    )


def test_go_sumdb_open() -> None:
    note = f"{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}".encode()
    text, verified = open_note(note, [PETER])
    assert text == GO_TEXT
    assert verified == (VerifiedSignature("PeterNeumann", 0xC74F20A3, NoteKeyType.ED25519),)
    _, both = open_note(note, [ENOCH, PETER])
    assert [v.name for v in both] == ["PeterNeumann", "EnochRoot"]  # note order
    with pytest.raises(NoteUnverifiedError):
        open_note(note, [])
    with pytest.raises(InputError, match="two verifiers"):
        open_note(note, [ENOCH, PETER, ENOCH])
    # A corrupted signature by a known key rejects the whole note.
    corrupted = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteSignatureError, match=r"PeterNeumann\+c74f20a3"):
        open_note(f"{GO_TEXT}\n{corrupted}".encode(), [PETER])
    # Same signature under another name: an unknown key, ignored (and then nothing verifies).
    renamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    with pytest.raises(NoteUnverifiedError):
        open_note(f"{GO_TEXT}\n{renamed}".encode(), [PETER])


@pytest.mark.parametrize(("vkey", "note", "size"), WITNESS_CHECKPOINTS)
def test_transparency_dev_witness_checkpoints(vkey: str, note: str, size: int) -> None:
    text, verified = open_note(note.encode(), [NoteVerifier.from_vkey(vkey)])
    checkpoint = Checkpoint.parse(text)
    assert (checkpoint.origin, checkpoint.size) == ("Log Checkpoint v0", size)
    assert checkpoint.body().decode() == text
    assert verified[0].name == vkey.split("+")[0]
    # The other log's key does not vouch for it.
    other = MONKEYS_VKEY if vkey == BANANAS_VKEY else BANANAS_VKEY
    with pytest.raises(NoteUnverifiedError):
        open_note(note.encode(), [NoteVerifier.from_vkey(other)])


@pytest.mark.parametrize(("size", "root", "signature"), SIGSUM_CHECKPOINTS)
def test_litetlog_checkpoints(size: int, root: str, signature: str) -> None:
    key = PublicKey.from_ed25519_raw(bytes.fromhex(SIGSUM_KEY))
    log = NoteVerifier.for_key(SIGSUM_ORIGIN, key, NoteKeyType.ED25519)
    checkpoint = Checkpoint(SIGSUM_ORIGIN, size, base64.b64decode(root))
    note = checkpoint.body() + f"\n— {SIGSUM_ORIGIN} {signature}\n".encode()
    text, verified = open_note(note, [log])
    assert Checkpoint.parse(text) == checkpoint
    assert verified == (VerifiedSignature(SIGSUM_ORIGIN, log.key_id, NoteKeyType.ED25519),)


@pytest.mark.parametrize(("vkey", "note"), [(REKOR_VKEY, REKOR_NOTE), (PIXEL_VKEY, PIXEL_NOTE)])
def test_ecdsa_type_0x02_vectors(vkey: str, note: str) -> None:
    # The transparency-dev convention: key id over the DER SPKI only, DER ECDSA over SHA-256.
    log = NoteVerifier.from_vkey(vkey)
    assert log.key_type is NoteKeyType.ECDSA
    assert log.public_key.algorithm is KeyAlgorithm.EC_P256
    assert f"{ecdsa_key_id(log.public_key):08x}" == vkey.split("+")[1]
    assert log.vkey() == vkey
    text, verified = open_note(note.encode(), [log])
    assert verified[0].key_type is NoteKeyType.ECDSA
    Checkpoint.parse(text)
    # The name is not in an ECDSA key id, but it still names the key in the note.
    renamed = NoteVerifier.for_key("bananas.sigstore.dev", log.public_key, NoteKeyType.ECDSA)
    assert renamed.key_id == log.key_id
    with pytest.raises(NoteUnverifiedError):
        open_note(note.encode(), [renamed])
    tampered = note.replace("\n10\n", "\n11\n").replace("\n798034\n", "\n798035\n")
    with pytest.raises(NoteSignatureError):
        open_note(tampered.encode(), [log])


def test_key_ids_of_the_formats_vectors() -> None:
    remora = NoteVerifier.from_vkey(REMORA_COSIGNER_VKEY)
    assert remora.key_type is NoteKeyType.COSIGNATURE_V1 and remora.key_id == 0xDA77ADE7
    test = NoteVerifier.from_vkey(TEST_NOTE_VKEY)
    assert test.key_type is NoteKeyType.ED25519 and test.key_id == 0x7997405C
    # One key, two types, two ids: the type byte is hashed (domain separation).
    assert (
        note_key_id("TEST", NoteKeyType.COSIGNATURE_V1, test.public_key.ed25519_raw) != 0x7997405C
    )
    timestamped = NoteSignature("x", 0x646846B9, base64.b64decode(FORMATS_COSIGNATURE)[4:])
    assert cosignature_time(timestamped) == 1727964367


def test_c2sp_examples() -> None:
    checkpoint = Checkpoint.parse(SPEC_BODY)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.body() == SPEC_BODY.encode()
    note = parse_note(f"{SPEC_BODY}\n{SPEC_LOG_SIG}{SPEC_COSIG}".encode())
    assert note.text == SPEC_BODY
    log, witness = note.signatures
    assert (log.name, len(log.signature)) == ("example.com/behind-the-sofa", 64)
    assert witness.key == "witness.example.com/w1+8d66cf3f"
    # The cosignature's timestamp is the "time" line of the specification's signed message.
    time = cosignature_time(witness)
    assert time == 1679315147
    assert cosignature_message(SPEC_BODY.encode(), time) == SPEC_COSIGNED_MESSAGE.encode()
    # The example keys are not published: with none known, the note is rejected.
    with pytest.raises(NoteUnverifiedError):
        open_note(note.encode(), [PETER])


def test_verifier_keys_refuse_manglings() -> None:
    # As golang.org/x/mod's TestNewVerifier: no part of a verifier key and no one-character
    # change of it is accepted.
    for i in range(len(PETER_VKEY)):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(InputError):
                    NoteVerifier.from_vkey(PETER_VKEY[i:j])
    for i, ch in enumerate(PETER_VKEY):
        with pytest.raises(InputError):
            NoteVerifier.from_vkey(PETER_VKEY[:i] + chr(ord(ch) + 1) + PETER_VKEY[i + 1 :])
    with pytest.raises(InputError, match="does not belong"):
        NoteVerifier.from_vkey(REKOR_VKEY.replace("c0d23d6a", "00000000"))
    with pytest.raises(InputError):
        NoteVerifier.from_vkey("rekor.sigstore.dev+12345678+AwEB")  # unknown type 0x03


# --- signed notes: round trips and refusals --------------------------------------------------


def test_round_trip_and_several_signatures() -> None:
    note = parse_note(f"{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}".encode())
    assert note.text == GO_TEXT
    assert [s.key for s in note.signatures] == ["PeterNeumann+c74f20a3", "EnochRoot+af0cfe78"]
    assert note.encode() == f"{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}".encode()
    assert parse_note(note.encode()) == note
    # The text may hold blank lines: the last one separates it from the signatures.
    text = "first\n\nsecond\n\n"
    _, private = signer_from_seed(seed_of(PETER_SKEY))
    line = sign_note_ed25519(text, "PeterNeumann", PETER.public_key, private.sign)
    assert open_note(f"{text}\n{line}".encode(), [PETER])[0] == text
    # So a blank line among signature lines makes the ones above it part of the text.
    split = f"{GO_TEXT}\n{PETER_SIG}\n{ENOCH_SIG}".encode()
    assert parse_note(split).text == f"{GO_TEXT}\n{PETER_SIG}"
    with pytest.raises(NoteUnverifiedError):
        open_note(split, [PETER])


BAD_NOTES = {
    "text only": GO_TEXT,
    "no signatures": GO_TEXT + "\n",
    "no blank line": GO_TEXT + PETER_SIG,
    "no final newline": GO_TEXT + "\n" + PETER_SIG[:-1],
    "control character": "\x01" + GO_TEXT + "\n" + PETER_SIG,
    "carriage return": GO_TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG,
    "tab": "\t" + GO_TEXT + "\n" + PETER_SIG,
    "hyphen": GO_TEXT + "\n" + PETER_SIG.replace("—", "-"),
    "en dash": GO_TEXT + "\n" + PETER_SIG.replace("—", "\u2013"),
    "no space after the dash": GO_TEXT + "\n" + PETER_SIG.replace("— ", "—"),
    "space in name": GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
    "plus in name": GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "a+b"),
    "no-break space in name": GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter\xa0N"),
    "empty name": GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", ""),
    "no signature": GO_TEXT + "\n— PeterNeumann\n",
    "non-alphabet base64": GO_TEXT + "\n" + PETER_SIG.replace("x08g", "x0*g"),
    "unpadded base64": GO_TEXT + "\n" + PETER_SIG.replace("AM=\n", "AM\n"),
    "non-canonical base64": GO_TEXT + "\n" + PETER_SIG.replace("AM=\n", "AN=\n"),
    "space in base64": GO_TEXT + "\n" + PETER_SIG.replace("x08g", "x0 8g"),
    "four bytes only": GO_TEXT + "\n— PeterNeumann x08gow==\n",
    "unexpected line": GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
}


@pytest.mark.parametrize("data", BAD_NOTES.values(), ids=BAD_NOTES.keys())
def test_malformed_notes_are_refused(data: str) -> None:
    with pytest.raises(NoteFormatError) as refused:
        open_note(data.encode(), [PETER])
    assert refused.value.code == "note-malformed"
    assert isinstance(refused.value, InputError)


def test_invalid_utf8_and_size_limits() -> None:
    with pytest.raises(NoteFormatError, match="UTF-8"):
        parse_note(b"\xff" + f"{GO_TEXT}\n{PETER_SIG}".encode())
    with pytest.raises(NoteFormatError, match="bytes"):
        parse_note(f"{GO_TEXT}\n{PETER_SIG}")  # type: ignore[arg-type]
    big = "x" * MAX_NOTE_SIZE + "\n"
    with pytest.raises(NoteFormatError, match="over"):
        parse_note(f"{big}\n{PETER_SIG}".encode())


def test_signature_count_limits() -> None:
    # At least 16 signatures MUST be accepted (signed-note): 16 unknown ones and the known one.
    unknown = [
        NoteSignature(f"witness{n}.example", n, bytes(72)).line() for n in range(MAX_SIGNATURES - 1)
    ]
    assert len(unknown) >= 16
    note = f"{GO_TEXT}\n{''.join(unknown)}{PETER_SIG}".encode()
    assert open_note(note, [PETER])[1][0].name == "PeterNeumann"
    with pytest.raises(NoteFormatError, match=f"at most {MAX_SIGNATURES}"):
        open_note(f"{GO_TEXT}\n{''.join(unknown)}{PETER_SIG}{ENOCH_SIG}".encode(), [PETER])
    with pytest.raises(NoteFormatError, match=f"at most {MAX_SIGNATURES}"):
        Note(GO_TEXT, tuple(parse_signature_line(PETER_SIG) for _ in range(MAX_SIGNATURES + 1)))


def test_unknown_and_duplicate_keys() -> None:
    peter = parse_signature_line(PETER_SIG)
    # Same name, other id; same id, other name: both unknown, ignored (signed-note).
    other_id = NoteSignature("PeterNeumann", peter.key_id ^ 1, peter.signature).line()
    other_name = NoteSignature("PeterNeumann2", peter.key_id, peter.signature).line()
    _, verified = open_note(f"{GO_TEXT}\n{other_id}{other_name}{PETER_SIG}".encode(), [PETER])
    assert len(verified) == 1
    with pytest.raises(NoteUnverifiedError, match="no signature by a known key"):
        open_note(f"{GO_TEXT}\n{other_id}{other_name}".encode(), [PETER])
    # A known key signing twice is refused; an unknown key twice is still just ignored.
    with pytest.raises(NoteFormatError, match="signed the note twice"):
        open_note(f"{GO_TEXT}\n{PETER_SIG}{PETER_SIG}".encode(), [PETER])
    assert open_note(f"{GO_TEXT}\n{ENOCH_SIG}{ENOCH_SIG}{PETER_SIG}".encode(), [PETER])[1]


def test_tampered_text_and_wrong_key_id() -> None:
    tampered = GO_TEXT.replace("answer", "Answer")
    with pytest.raises(NoteSignatureError):
        open_note(f"{tampered}\n{PETER_SIG}".encode(), [PETER])
    with pytest.raises(NoteSignatureError, match="by EnochRoot"):
        PETER.verify(GO_TEXT, parse_signature_line(ENOCH_SIG))
    peter = parse_signature_line(PETER_SIG)
    with pytest.raises(NoteSignatureError):
        PETER.verify(GO_TEXT, NoteSignature(peter.name, peter.key_id, peter.signature[:-1]))
    with pytest.raises(InputError, match="does not belong"):
        NoteVerifier("PeterNeumann", PETER.key_id ^ 1, PETER.public_key, NoteKeyType.ED25519)
    with pytest.raises(InputError, match="is ec-p256, not ed25519"):
        NoteVerifier.for_key("PeterNeumann", PETER.public_key, NoteKeyType.ECDSA)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "a\u2003b", "nul\x00"])
def test_key_names(name: str) -> None:
    with pytest.raises(NoteFormatError):
        check_key_name(name)
    assert check_key_name("example.com/log42") == "example.com/log42"
    assert check_key_name("病历/日志—1") == "病历/日志—1"  # any non-space Unicode is fine


# --- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_round_trip_with_extensions() -> None:
    checkpoint = Checkpoint("medsign.example/log", 0, bytes(32), ("ext one", "ext+2"))
    body = checkpoint.body()
    assert body == b"medsign.example/log\n0\n" + base64.b64encode(bytes(32)) + b"\next one\next+2\n"
    assert Checkpoint.parse(body) == checkpoint
    assert Checkpoint.parse(body.decode()) == checkpoint
    biggest = Checkpoint("o", 2**64 - 1, bytes(32))
    assert Checkpoint.parse(biggest.body()) == biggest


ROOT = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
BAD_CHECKPOINTS = {
    "two lines": "origin\n5\n",
    "no final newline": f"origin\n5\n{ROOT}",
    "empty origin": f"\n5\n{ROOT}\n",
    "empty extension": f"origin\n5\n{ROOT}\n\nx\n",
    "leading zero": f"origin\n05\n{ROOT}\n",
    "plus sign": f"origin\n+5\n{ROOT}\n",
    "negative": f"origin\n-5\n{ROOT}\n",
    "space": f"origin\n 5\n{ROOT}\n",
    "underscore": f"origin\n1_000\n{ROOT}\n",
    "full-width digit": f"origin\n５\n{ROOT}\n",
    "over 64 bits": f"origin\n{2**64}\n{ROOT}\n",
    "short hash": f"origin\n5\n{base64.b64encode(bytes(31)).decode()}\n",
    "hex hash": f"origin\n5\n{'ab' * 32}\n",
    "unpadded hash": f"origin\n5\n{ROOT.rstrip('=')}\n",
    "control character": f"origin\x07\n5\n{ROOT}\n",
}


@pytest.mark.parametrize("text", BAD_CHECKPOINTS.values(), ids=BAD_CHECKPOINTS.keys())
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointFormatError) as refused:
        Checkpoint.parse(text.encode())
    assert refused.value.code == "checkpoint-malformed"


def test_checkpoint_values_are_checked() -> None:
    with pytest.raises(CheckpointFormatError):
        Checkpoint("o", -1, bytes(32))
    with pytest.raises(CheckpointFormatError):
        Checkpoint("o", True, bytes(32))
    with pytest.raises(CheckpointFormatError):
        Checkpoint("o\nx", 1, bytes(32))
    with pytest.raises(CheckpointFormatError):
        Checkpoint("o", 1, bytes(32), ("",))


# --- cosignatures ----------------------------------------------------------------------------


def witness() -> tuple[PublicKey, ed25519.Ed25519PrivateKey]:
    return signer_from_seed(seed_of(WITNESS_SKEY))


def test_cosign_and_open() -> None:
    public, private = witness()
    body = SPEC_BODY.encode()
    line = cosign(body, "witness.example/w1", public, 1679315147, private.sign)
    signature = parse_signature_line(line)
    assert len(signature.signature) == 8 + 64
    assert cosignature_time(signature) == 1679315147
    cosigner = NoteVerifier.for_key("witness.example/w1", public, NoteKeyType.COSIGNATURE_V1)
    assert signature.key_id == cosigner.key_id
    assert signature.key_id == note_key_id(
        "witness.example/w1", NoteKeyType.COSIGNATURE_V1, public.ed25519_raw
    )
    # The Ed25519 part signs the message spelled out in tlog-cosignature.
    private.public_key().verify(signature.signature[8:], SPEC_COSIGNED_MESSAGE.encode())

    note = f"{SPEC_BODY}\n{SPEC_LOG_SIG}{line}".encode()
    text, verified = open_note(note, [cosigner])
    assert text == SPEC_BODY
    assert verified == (
        VerifiedSignature(
            "witness.example/w1", cosigner.key_id, NoteKeyType.COSIGNATURE_V1, 1679315147
        ),
    )
    # The same key as a plain note key (type 0x01) has another key id: the line is unknown.
    plain = NoteVerifier.for_key("witness.example/w1", public, NoteKeyType.ED25519)
    with pytest.raises(NoteUnverifiedError):
        open_note(note, [plain])


def test_cosignature_over_another_body_or_time_is_refused() -> None:
    public, private = witness()
    cosigner = NoteVerifier.for_key("w", public, NoteKeyType.COSIGNATURE_V1)
    body = Checkpoint("medsign.example/log", 7, bytes(range(32)), ("extension",)).body()
    line = cosign(body, "w", public, 1_700_000_000, private.sign)
    text = body.decode()
    assert open_note(f"{text}\n{line}".encode(), [cosigner])
    other_body = text.replace("\n7\n", "\n8\n")
    with pytest.raises(NoteSignatureError):
        open_note(f"{other_body}\n{line}".encode(), [cosigner])
    # Extension lines are signed too.
    with pytest.raises(NoteSignatureError):
        open_note(f"{text.replace('extension', 'extensioN')}\n{line}".encode(), [cosigner])
    signature = parse_signature_line(line)
    for forged_time in (1_700_000_001, 0, 2**63, 2**64 - 1):
        forged = NoteSignature(
            "w", signature.key_id, forged_time.to_bytes(8, "big") + signature.signature[8:]
        )
        with pytest.raises(NoteSignatureError):
            open_note(f"{text}\n{forged.line()}".encode(), [cosigner])
    truncated = NoteSignature("w", signature.key_id, signature.signature[:-1])
    with pytest.raises(NoteSignatureError):
        open_note(f"{text}\n{truncated.line()}".encode(), [cosigner])


def test_cosign_refuses_what_is_not_a_checkpoint() -> None:
    public, private = witness()
    with pytest.raises(CheckpointFormatError):
        cosign(GO_TEXT.encode(), "w", public, 1, private.sign)
    with pytest.raises(InputError, match="bytes"):
        cosign(SPEC_BODY, "w", public, 1, private.sign)  # type: ignore[arg-type]
    for bad in (-1, 2**63, True):
        with pytest.raises(InputError, match="timestamp"):
            cosign(SPEC_BODY.encode(), "w", public, bad, private.sign)
    with pytest.raises(NoteFormatError):
        cosign(SPEC_BODY.encode(), "bad name", public, 1, private.sign)
    assert cosign(SPEC_BODY.encode(), "w", public, 2**63 - 1, private.sign)


def test_signing_helpers_never_return_an_unverified_signature() -> None:
    public, private = witness()
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(NoteSignatureError):
        cosign(SPEC_BODY.encode(), "w", public, 1, other.sign)
    with pytest.raises(NoteSignatureError):
        cosign(SPEC_BODY.encode(), "w", public, 1, lambda message: bytes(64))
    with pytest.raises(NoteSignatureError):
        sign_note_ed25519(GO_TEXT, "PeterNeumann", PETER.public_key, private.sign)
    p256 = PrivateKey.generate(KeyAlgorithm.EC_P256)
    with pytest.raises(NoteSignatureError):
        sign_note_ecdsa(GO_TEXT, "log", p256.public_key(), lambda digest: b"\x30\x00")
    with pytest.raises(NoteFormatError, match="end with a newline"):
        sign_note_ed25519("no newline", "PeterNeumann", PETER.public_key, private.sign)


def test_ecdsa_checkpoint_signature() -> None:
    key = PrivateKey.generate(KeyAlgorithm.EC_P256)
    public = key.public_key()
    checkpoint = Checkpoint("medsign.example/log", 42, hashlib.sha256(b"root").digest())
    digests: list[bytes] = []

    def sign(digest: bytes) -> bytes:
        digests.append(digest)
        return key.sign_digest(SignatureScheme.ECDSA_SHA256, digest)

    note = sign_checkpoint_ecdsa(checkpoint, public, sign)
    assert digests == [hashlib.sha256(checkpoint.body()).digest()]
    log = NoteVerifier.for_key("medsign.example/log", public, NoteKeyType.ECDSA)
    text, verified = open_note(note, [log])
    assert Checkpoint.parse(text) == checkpoint
    assert verified[0].key_id == ecdsa_key_id(public)
    renamed = sign_checkpoint_ecdsa(checkpoint, public, sign, name="medsign-log")
    assert parse_note(renamed).signatures[0].name == "medsign-log"


# --- through the key store -------------------------------------------------------------------


def test_key_store_signs_log_and_witness(
    database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    store = SoftwareKeyStore(database, MasterKeyring.create(tmp_path / "keyring"), clock)
    log_key = store.generate(KeyAlgorithm.EC_P256, label="log")
    witness_key = store.generate(KeyAlgorithm.ED25519, label="witness")
    log_public = PublicKey.from_der(log_key.public_key_der)
    witness_public = PublicKey.from_der(witness_key.public_key_der)
    checkpoint = Checkpoint("medsign.example/log", 3, hashlib.sha256(b"tree").digest())

    signed = sign_checkpoint_ecdsa(
        checkpoint,
        log_public,
        lambda digest: store.sign_digest(
            log_key.id, SignatureScheme.ECDSA_SHA256, digest, actor="log", purpose="checkpoint"
        ),
    )
    line = cosign(
        checkpoint.body(),
        "witness.medsign.example",
        witness_public,
        int(clock.now().timestamp()),
        lambda message: store.sign_message(
            witness_key.id, SignatureScheme.ED25519, message, actor="witness", purpose="cosign"
        ),
    )
    cosigned = parse_note(signed).with_signatures(parse_signature_line(line)).encode()
    verifiers = [
        NoteVerifier.for_key("medsign.example/log", log_public, NoteKeyType.ECDSA),
        NoteVerifier.for_key("witness.medsign.example", witness_public, NoteKeyType.COSIGNATURE_V1),
    ]
    text, verified = open_note(cosigned, verifiers)
    assert text == checkpoint.body().decode()
    assert [v.timestamp for v in verified] == [None, int(clock.now().timestamp())]

    (cosign_use,) = key_uses(database, witness_key.id)
    message = cosignature_message(checkpoint.body(), int(clock.now().timestamp()))
    assert (cosign_use.purpose, cosign_use.scheme) == ("cosign", SignatureScheme.ED25519)
    assert cosign_use.digest_hex == hashlib.sha256(message).hexdigest()
    (log_use,) = key_uses(database, log_key.id)
    assert log_use.digest_hex == hashlib.sha256(checkpoint.body()).hexdigest()


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_verifies_a_cosignature(tmp_path: Path) -> None:
    public, private = witness()
    line = cosign(SPEC_BODY.encode(), "w", public, 1679315147, private.sign)
    (tmp_path / "pub.pem").write_text(public.pem())
    # The message as tlog-cosignature spells it, written here independently of the code.
    (tmp_path / "msg").write_bytes(SPEC_COSIGNED_MESSAGE.encode())
    (tmp_path / "sig").write_bytes(parse_signature_line(line).signature[8:])
    result = subprocess.run(
        [
            "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
            "-rawin", "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig"),
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"Signature Verified Successfully" in result.stdout


# --- properties ------------------------------------------------------------------------------

_text_chars = st.characters(blacklist_categories=("Cs",), min_codepoint=0x20) | st.just("\n")
_names = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="+"),
    min_size=1,
    max_size=20,
).filter(lambda name: not any(ch.isspace() for ch in name))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parser_refuses_garbage_with_its_own_error(data: bytes) -> None:
    with contextlib.suppress(NoteFormatError):
        parse_note(data)


@settings(max_examples=200, deadline=None)
@given(st.text(_text_chars, max_size=200))
def test_parser_refuses_mutated_notes_with_its_own_error(junk: str) -> None:
    for data in (f"{GO_TEXT}\n{junk}", f"{junk}\n{PETER_SIG}", f"{GO_TEXT}{junk}\n{PETER_SIG}"):
        with contextlib.suppress(NoteFormatError, VerificationError):
            open_note(data.encode(), [PETER])


@settings(max_examples=100, deadline=None)
@given(
    st.text(_text_chars, min_size=0, max_size=200).map(lambda text: text + "\n"),
    st.lists(
        st.tuples(_names, st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=80)),
        min_size=1,
        max_size=5,
    ),
)
def test_notes_round_trip(text: str, signatures: list[tuple[str, int, bytes]]) -> None:
    note = Note(text, tuple(NoteSignature(*s) for s in signatures))
    assert parse_note(note.encode()) == note


@settings(max_examples=100, deadline=None)
@given(
    st.text(_text_chars.filter(lambda ch: ch != "\n"), min_size=1, max_size=40),
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(
        st.text(_text_chars.filter(lambda ch: ch != "\n"), min_size=1, max_size=20), max_size=3
    ),
)
def test_checkpoints_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


def test_errors_are_medsign_errors_with_stable_codes() -> None:
    assert issubclass(NoteFormatError, InputError) and NoteFormatError.code == "note-malformed"
    assert issubclass(CheckpointFormatError, NoteFormatError)
    assert issubclass(NoteSignatureError, VerificationError)
    assert NoteSignatureError.code == "note-signature-invalid"
    assert issubclass(NoteUnverifiedError, VerificationError)
    assert NoteUnverifiedError.code == "note-unverified"
    assert all(issubclass(e, MedsignError) for e in (NoteFormatError, NoteSignatureError))
