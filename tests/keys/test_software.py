from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import select, update

from medsign.clock import FixedClock
from medsign.crypto import PublicKey, message_digest, verify, verify_digest
from medsign.crypto.private import PrivateKey
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.db.tables import KeyRow, KeyUseRow
from medsign.errors import (
    InputError,
    KeyStoreUnavailableError,
    KeyUseError,
    NotFoundError,
    VerificationError,
)
from medsign.ids import KeyId
from medsign.keys import MasterKeyring, SoftwareKeyStore, key_uses
from medsign.keys.software import _KeyCache

CASES = [
    (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PKCS1_SHA256),
    (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PSS_SHA256),
    (KeyAlgorithm.RSA_3072, SignatureScheme.RSA_PKCS1_SHA256),
    (KeyAlgorithm.RSA_3072, SignatureScheme.RSA_PSS_SHA256),
    (KeyAlgorithm.EC_P256, SignatureScheme.ECDSA_SHA256),
    (KeyAlgorithm.SM2, SignatureScheme.SM2_SM3),
]


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return PrivateKey.generate(KeyAlgorithm.RSA_2048)


def _row(database: Database, key_id: str) -> KeyRow:
    with database.session() as session:
        row = session.get(KeyRow, key_id)
        assert row is not None
        return row


@pytest.mark.parametrize(("algorithm", "scheme"), CASES, ids=lambda v: str(v))
def test_generate_sign_verify(
    store: SoftwareKeyStore,
    database: Database,
    algorithm: KeyAlgorithm,
    scheme: SignatureScheme,
    request: pytest.FixtureRequest,
) -> None:
    if algorithm is KeyAlgorithm.SM2:
        request.getfixturevalue("require_sm2")
    ref = store.generate(algorithm, label="Dr. Test")
    assert ref.store == "software"
    assert ref.algorithm is algorithm
    public = PublicKey.from_der(ref.public_key_der)
    assert public.algorithm is algorithm
    message = b"discharge summary v1"
    digest = message_digest(public, scheme, message)

    signature = store.sign_digest(ref.id, scheme, digest, actor="staff:42", purpose="test")

    verify_digest(public, scheme, digest, signature)
    verify(public, scheme, message, signature)
    with pytest.raises(VerificationError):
        verify(public, scheme, b"another message", signature)
    assert store.get(ref.id) == ref

    # A store with an empty cache unwraps from the database and signs the same way.
    fresh = SoftwareKeyStore(database, store.keyring, FixedClock(dt.datetime.now(dt.UTC)))
    verify_digest(
        public, scheme, digest, fresh.sign_digest(ref.id, scheme, digest, actor="a", purpose="p")
    )


def _secret_parts(pkcs8: bytes) -> list[bytes]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    key = load_der_private_key(pkcs8, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return [key.private_numbers().private_value.to_bytes(32, "big")]
    assert isinstance(key, rsa.RSAPrivateKey)
    numbers = key.private_numbers()
    return [n.to_bytes((n.bit_length() + 7) // 8, "big") for n in (numbers.d, numbers.p)]


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048])
def test_no_plaintext_at_rest(
    store: SoftwareKeyStore, database: Database, algorithm: KeyAlgorithm
) -> None:
    ref = store.generate(algorithm, label="at rest")
    row = _row(database, ref.id)
    assert row.wrapped_key is not None
    assert row.master_version == 1
    pkcs8 = store._private_key(row).to_pkcs8_der()
    secrets = [pkcs8, *_secret_parts(pkcs8)]
    assert not any(s in row.wrapped_key for s in secrets)

    if database.dialect == "sqlite":
        database.dispose()  # close connections so the WAL is checkpointed into the file
        db_file = Path(database.url.removeprefix("sqlite:///"))
        stored = b"".join(
            p.read_bytes() for p in db_file.parent.glob(db_file.name + "*") if p.is_file()
        )
        assert row.wrapped_key in stored  # the scan does see what is stored
        assert not any(s in stored for s in secrets)
    else:
        with database.session() as session:
            dumped = b"".join(
                bytes(r.wrapped_key or b"") + r.public_key_der
                for r in session.scalars(select(KeyRow))
            )
        assert not any(s in dumped for s in secrets)


def test_wrapped_blobs_differ_for_same_key(store: SoftwareKeyStore) -> None:
    key = PrivateKey.generate(KeyAlgorithm.EC_P256)
    a = store._wrap("key_a", KeyAlgorithm.EC_P256, 1, key.to_pkcs8_der())
    b = store._wrap("key_a", KeyAlgorithm.EC_P256, 1, key.to_pkcs8_der())
    assert a != b  # fresh nonce each time


def test_key_use_recorded(store: SoftwareKeyStore, clock: FixedClock) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="uses")
    other = store.generate(KeyAlgorithm.EC_P256, label="other")
    digests = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    for d in digests:
        store.sign_digest(
            ref.id, SignatureScheme.ECDSA_SHA256, d, actor="staff:7", purpose="emr-note"
        )
        clock.advance(dt.timedelta(seconds=1))
    store.sign_digest(
        other.id, SignatureScheme.ECDSA_SHA256, digests[0], actor="staff:8", purpose="lab"
    )

    uses = key_uses(store._database, ref.id)
    assert [u.digest_hex for u in uses] == [d.hex() for d in reversed(digests)]
    assert {u.actor for u in uses} == {"staff:7"}
    assert {u.purpose for u in uses} == {"emr-note"}
    assert {u.scheme for u in uses} == {SignatureScheme.ECDSA_SHA256}
    assert uses[0].at == dt.datetime(2026, 11, 23, 8, 0, 2, tzinfo=dt.UTC)
    assert len(key_uses(store._database)) == 4
    assert len(key_uses(store._database, limit=2)) == 2
    with pytest.raises(InputError):
        key_uses(store._database, limit=0)


def test_refusals(store: SoftwareKeyStore, database: Database) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="refusals")
    digest = hashlib.sha256(b"x").digest()
    with pytest.raises(KeyUseError, match="does not fit"):
        store.sign_digest(ref.id, SignatureScheme.RSA_PSS_SHA256, digest, actor="a", purpose="p")
    with pytest.raises(InputError):
        store.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, digest[:20], actor="a", purpose="p")
    with pytest.raises(InputError):
        store.sign_digest(
            ref.id, cast(SignatureScheme, "ecdsa-md5"), digest, actor="a", purpose="p"
        )
    with pytest.raises(InputError):
        store.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, digest, actor="", purpose="p")
    with pytest.raises(NotFoundError):
        store.sign_digest(
            KeyId("key_nope"), SignatureScheme.ECDSA_SHA256, digest, actor="a", purpose="p"
        )
    with pytest.raises(NotFoundError):
        store.get(KeyId("key_nope"))
    with pytest.raises(InputError):
        store.generate(cast(KeyAlgorithm, "dsa-1024"), label="x")
    with pytest.raises(InputError):
        store.generate(KeyAlgorithm.EC_P256, label="")
    assert key_uses(database, ref.id) == []  # refusals leave no record

    store.destroy(ref.id)
    row = _row(database, ref.id)
    assert (row.state, row.wrapped_key, row.master_version) == ("destroyed", None, None)
    with pytest.raises(KeyUseError, match="destroyed"):
        store.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, digest, actor="a", purpose="p")


def test_key_of_another_store_is_not_found(
    store: SoftwareKeyStore, database: Database, clock: FixedClock
) -> None:
    with database.session() as session:
        session.add(
            KeyRow(
                id="key_hsm",
                store="pkcs11",
                algorithm="ec-p256",
                label="hsm",
                public_key_der=b"\x30",
                token_object_id="00",
                created_at=clock.now(),
            )
        )
    with pytest.raises(NotFoundError):
        store.get(KeyId("key_hsm"))


def test_tampered_blob_is_refused(store: SoftwareKeyStore, database: Database) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="tamper")
    digest = hashlib.sha256(b"x").digest()
    store.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, digest, actor="a", purpose="p")
    blob = bytearray(_row(database, ref.id).wrapped_key or b"")
    blob[-5] ^= 0x01
    with database.session() as session:
        session.execute(update(KeyRow).where(KeyRow.id == ref.id).values(wrapped_key=bytes(blob)))
    # No cache clearing: the cache is tied to the blob, so the altered row is unwrapped anew.
    with pytest.raises(KeyUseError, match="altered") as info:
        store.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, digest, actor="a", purpose="p")
    assert "master" not in info.value.public_message()
    assert len(key_uses(database, ref.id)) == 1


def test_blob_moved_to_another_row_is_refused(store: SoftwareKeyStore, database: Database) -> None:
    a = store.generate(KeyAlgorithm.EC_P256, label="a")
    b = store.generate(KeyAlgorithm.EC_P256, label="b")
    with database.session() as session:
        blob = session.scalar(select(KeyRow.wrapped_key).where(KeyRow.id == a.id))
        session.execute(update(KeyRow).where(KeyRow.id == b.id).values(wrapped_key=blob))
    store.clear_cache()
    with pytest.raises(KeyUseError, match="cannot be unwrapped"):
        store.sign_digest(b.id, SignatureScheme.ECDSA_SHA256, bytes(32), actor="a", purpose="p")


def test_wrong_master_secret(
    store: SoftwareKeyStore, database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="wrong master")
    store.check()
    other = SoftwareKeyStore(database, MasterKeyring.create(tmp_path / "other"), clock)
    with pytest.raises(KeyUseError, match="wrong master secret"):
        other.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, bytes(32), actor="a", purpose="p")
    with pytest.raises(KeyStoreUnavailableError):
        other.check()


def test_missing_master_version(
    store: SoftwareKeyStore, database: Database, clock: FixedClock
) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="v")
    with database.session() as session:
        session.execute(update(KeyRow).where(KeyRow.id == ref.id).values(master_version=9))
    with pytest.raises(KeyUseError, match="version 9 is not available"):
        store.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, bytes(32), actor="a", purpose="p")


def test_configured_master_secret(database: Database, clock: FixedClock) -> None:
    import base64
    import os

    encoded = base64.b64encode(os.urandom(32)).decode()
    store = SoftwareKeyStore(database, MasterKeyring.from_secret(encoded), clock)
    ref = store.generate(KeyAlgorithm.EC_P256, label="configured")
    again = SoftwareKeyStore(database, MasterKeyring.from_secret(encoded), clock)
    sig = again.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, bytes(32), actor="a", purpose="p")
    verify_digest(
        PublicKey.from_der(ref.public_key_der), SignatureScheme.ECDSA_SHA256, bytes(32), sig
    )
    assert encoded not in repr(store) and encoded not in repr(store.keyring)


def test_cache_is_bounded_and_tied_to_blob(rsa_key: PrivateKey) -> None:
    cache = _KeyCache(2)
    cache.put("a", b"1", rsa_key)
    cache.put("b", b"2", rsa_key)
    assert cache.get("a", b"1") is rsa_key  # a becomes most recent
    cache.put("c", b"3", rsa_key)
    assert cache.get("b", b"2") is None
    assert cache.get("a", b"1") is rsa_key
    assert cache.get("a", b"other") is None
    cache.rebind("a", b"1", b"9")
    assert cache.get("a", b"9") is rsa_key
    cache.drop("a")
    assert cache.get("a", b"9") is None
    assert "PRIVATE" not in repr(cache) and "<PrivateKey" in repr(rsa_key)


def test_store_repr_has_no_secret(store: SoftwareKeyStore, keyring_dir: Path) -> None:
    secret_text = (keyring_dir / "master-1.key").read_text().strip()
    assert secret_text not in repr(store)
    assert secret_text not in repr(store.keyring)


def test_key_use_rows_reference_keys(store: SoftwareKeyStore, database: Database) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="fk")
    store.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, bytes(32), actor="a", purpose="p")
    with database.session() as session:
        rows = session.scalars(select(KeyUseRow)).all()
    assert [(r.key_id, r.digest_hex) for r in rows] == [(ref.id, "00" * 32)]
