"""``sign_message``: Ed25519 keys in the key store, with the guarantees of ``sign_digest``.

A witness cosignature is an Ed25519 signature over a message, and the witness key lives in
the key store like every other private key. The use is recorded in the signature's own
transaction, by the SHA-256 of the message; the key row is read every time; nothing refused
or failed leaves a record; and the digest and message paths each refuse the other's schemes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select, update

from medsign.clock import FixedClock
from medsign.crypto import PublicKey, verify
from medsign.crypto.private import PrivateKey
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.db.tables import KeyRow
from medsign.errors import InputError, KeyUseError, NotFoundError
from medsign.keys import MasterKeyring, SoftwareKeyStore, key_uses
from medsign.keys.usage import MAX_MESSAGE_SIZE

MESSAGE = b"cosignature/v1\ntime 1700000000\nexample.com/log\n3\n" + b"A" * 43 + b"=\n"
ED = SignatureScheme.ED25519


def _sign(store: SoftwareKeyStore, key_id: str, message: bytes = MESSAGE) -> bytes:
    return store.sign_message(key_id, ED, message, actor="witness:medsign", purpose="cosign")


def test_generate_sign_verify_and_record(
    store: SoftwareKeyStore, database: Database, clock: FixedClock, keyring: MasterKeyring
) -> None:
    assert KeyAlgorithm.ED25519 in store.supported_algorithms()
    ref = store.generate(KeyAlgorithm.ED25519, label="witness")
    assert ref.algorithm is KeyAlgorithm.ED25519
    public = PublicKey.from_der(ref.public_key_der)
    assert public.algorithm is KeyAlgorithm.ED25519

    signature = _sign(store, ref.id)
    verify(public, ED, MESSAGE, signature)
    # A store with an empty cache takes the full path: read the row, unwrap, sign, record.
    fresh = SoftwareKeyStore(database, keyring, clock)
    assert fresh.sign_message(ref.id, ED, MESSAGE, actor="a", purpose="p") == signature

    uses = key_uses(database, ref.id)
    assert [(u.actor, u.purpose, u.scheme) for u in uses] == [
        ("a", "p", ED),
        ("witness:medsign", "cosign", ED),
    ]
    # The record names the message by its SHA-256, like every digest the store signs.
    assert {u.digest_hex for u in uses} == {hashlib.sha256(MESSAGE).hexdigest()}
    assert uses[0].at == clock.now()
    with database.session() as session:
        row = session.get(KeyRow, ref.id)
        assert row is not None and row.wrapped_key is not None
        assert row.public_key_der not in row.wrapped_key  # wrapped, not stored in clear


def test_digest_paths_refuse_ed25519(store: SoftwareKeyStore, database: Database) -> None:
    ref = store.generate(KeyAlgorithm.ED25519, label="witness")
    digest = hashlib.sha256(MESSAGE).digest()
    with pytest.raises(KeyUseError, match=r"signs the message itself.*use sign_message"):
        store.sign_digest(ref.id, ED, digest, actor="a", purpose="p")
    with pytest.raises(KeyUseError, match="use sign_message"):
        store.sign_digests(ref.id, ED, [digest], actor="a", purpose="p")
    # Refused before any key row is read: even a missing key gets the same answer.
    with pytest.raises(KeyUseError, match="use sign_message"):
        store.sign_digest("key_missing", ED, digest, actor="a", purpose="p")  # type: ignore[arg-type]
    assert key_uses(database, ref.id) == []


def test_message_path_refuses_digest_schemes_and_other_keys(
    store: SoftwareKeyStore, database: Database
) -> None:
    p256 = store.generate(KeyAlgorithm.EC_P256, label="log")
    ed = store.generate(KeyAlgorithm.ED25519, label="witness")
    with pytest.raises(KeyUseError, match=r"signs a digest.*use sign_digest"):
        store.sign_message(p256.id, SignatureScheme.ECDSA_SHA256, MESSAGE, actor="a", purpose="p")
    for cached in (True, False):  # the fast path and the full path refuse alike
        if not cached:
            store.clear_cache()
        with pytest.raises(KeyUseError, match="does not fit"):
            _sign(store, p256.id)
    with pytest.raises(KeyUseError, match="does not fit"):
        store.sign_digest(
            ed.id,
            SignatureScheme.ECDSA_SHA256,
            hashlib.sha256(MESSAGE).digest(),
            actor="a",
            purpose="p",
        )
    with pytest.raises(InputError, match="unknown signature scheme"):
        store.sign_message(ed.id, "ed448", MESSAGE, actor="a", purpose="p")  # type: ignore[arg-type]
    assert key_uses(database) == []


def test_request_checks(store: SoftwareKeyStore, database: Database) -> None:
    ref = store.generate(KeyAlgorithm.ED25519, label="witness")
    with pytest.raises(InputError, match="actor"):
        store.sign_message(ref.id, ED, MESSAGE, actor="", purpose="p")
    with pytest.raises(InputError, match="purpose"):
        store.sign_message(ref.id, ED, MESSAGE, actor="a", purpose="x" * 65)
    with pytest.raises(InputError, match="must be bytes"):
        store.sign_message(ref.id, ED, "text", actor="a", purpose="p")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=f"over {MAX_MESSAGE_SIZE} bytes"):
        _sign(store, ref.id, bytes(MAX_MESSAGE_SIZE + 1))
    with pytest.raises(NotFoundError):
        _sign(store, "key_missing")
    assert key_uses(database) == []
    # The bound is inclusive, and an empty message is a message.
    _sign(store, ref.id, bytes(MAX_MESSAGE_SIZE))
    _sign(store, ref.id, b"")
    assert len(key_uses(database, ref.id)) == 2


def test_destroy_elsewhere_stops_a_cached_key(
    store: SoftwareKeyStore, database: Database, keyring: MasterKeyring, clock: FixedClock
) -> None:
    ref = store.generate(KeyAlgorithm.ED25519, label="witness")
    _sign(store, ref.id)
    SoftwareKeyStore(database, keyring, clock).destroy(ref.id)
    with pytest.raises(KeyUseError, match="destroyed"):
        _sign(store, ref.id)
    assert len(key_uses(database, ref.id)) == 1


def test_tampered_row_is_noticed(store: SoftwareKeyStore, database: Database) -> None:
    ref = store.generate(KeyAlgorithm.ED25519, label="witness")
    other = store.generate(KeyAlgorithm.ED25519, label="other")
    _sign(store, ref.id)
    with database.session() as session:
        blob = session.scalar(select(KeyRow.wrapped_key).where(KeyRow.id == other.id))
        session.execute(update(KeyRow).where(KeyRow.id == ref.id).values(wrapped_key=blob))
    # The cached key no longer matches the row, and the moved blob does not unwrap here.
    with pytest.raises(KeyUseError, match="cannot be unwrapped"):
        _sign(store, ref.id)
    assert len(key_uses(database, ref.id)) == 1


def test_failed_signature_leaves_no_record(
    store: SoftwareKeyStore, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = store.generate(KeyAlgorithm.ED25519, label="witness")
    _sign(store, ref.id)

    def broken(self: PrivateKey, scheme: SignatureScheme, message: bytes) -> bytes:
        raise KeyUseError("signing failed")

    monkeypatch.setattr(PrivateKey, "sign_message", broken)
    for _ in range(2):  # cached (fast path) and, after clearing, unwrapped (full path)
        with pytest.raises(KeyUseError, match="signing failed"):
            _sign(store, ref.id)
        store.clear_cache()
    assert len(key_uses(database, ref.id)) == 1


def test_record_is_committed_with_the_signature(
    store: SoftwareKeyStore, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While the signature is being made, the record is not yet visible to anyone else: both
    # are written in one transaction that commits after the signature exists.
    ref = store.generate(KeyAlgorithm.ED25519, label="witness")
    seen: list[int] = []
    original = PrivateKey.sign_message

    def watching(self: PrivateKey, scheme: SignatureScheme, message: bytes) -> bytes:
        seen.append(len(key_uses(database, ref.id)))
        return original(self, scheme, message)

    monkeypatch.setattr(PrivateKey, "sign_message", watching)
    _sign(store, ref.id)  # fast path: the key generated above is cached
    store.clear_cache()
    _sign(store, ref.id)  # full path
    assert seen == [0, 1]
    assert len(key_uses(database, ref.id)) == 2


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_verifies_a_key_store_signature(store: SoftwareKeyStore, tmp_path: Path) -> None:
    ref = store.generate(KeyAlgorithm.ED25519, label="witness")
    (tmp_path / "pub.pem").write_text(PublicKey.from_der(ref.public_key_der).pem())
    (tmp_path / "msg").write_bytes(MESSAGE)
    (tmp_path / "sig").write_bytes(_sign(store, ref.id))
    result = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(tmp_path / "pub.pem"),
            "-rawin",
            "-in",
            str(tmp_path / "msg"),
            "-sigfile",
            str(tmp_path / "sig"),
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert b"Signature Verified Successfully" in result.stdout
