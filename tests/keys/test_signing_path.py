"""The software store's signing transaction: the cached-key fast path never outlives the row.

A key unwrapped once is kept in memory, but every signature still checks the key row inside
the transaction that records the use, so a destroy or re-wrap committed elsewhere (another
process, here another store instance on the same database) takes effect at once, and a
refused or failed signature leaves no record.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from medsign.clock import FixedClock
from medsign.crypto.private import PrivateKey
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.errors import KeyUseError
from medsign.keys import MasterKeyring, SoftwareKeyStore, key_uses

DIGEST = hashlib.sha256(b"document").digest()


def _sign(store: SoftwareKeyStore, key_id: str) -> bytes:
    return store.sign_digest(
        key_id, SignatureScheme.ECDSA_SHA256, DIGEST, actor="staff:1", purpose="test"
    )


def test_destroy_elsewhere_stops_a_cached_key(
    store: SoftwareKeyStore, database: Database, keyring: MasterKeyring, clock: FixedClock
) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="cached")
    _sign(store, ref.id)
    other = SoftwareKeyStore(database, keyring, clock)
    other.destroy(ref.id)
    with pytest.raises(KeyUseError, match="destroyed"):
        _sign(store, ref.id)
    assert len(key_uses(database, ref.id)) == 1


def test_rewrap_elsewhere_is_followed(
    store: SoftwareKeyStore,
    database: Database,
    keyring: MasterKeyring,
    keyring_dir: Path,
    clock: FixedClock,
) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="cached")
    _sign(store, ref.id)
    other = SoftwareKeyStore(database, MasterKeyring.load(keyring_dir), clock)
    other.rotate_master()
    keyring.refresh()
    _sign(store, ref.id)  # the blob changed: the full path unwraps the new one
    _sign(store, ref.id)  # and caches it again
    assert len(key_uses(database, ref.id)) == 3


def test_failed_signature_leaves_no_record(
    store: SoftwareKeyStore, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="failing")
    _sign(store, ref.id)

    def broken(self: PrivateKey, scheme: SignatureScheme, digest: bytes) -> bytes:
        raise KeyUseError("token removed")

    monkeypatch.setattr(PrivateKey, "sign_digest", broken)
    for _ in range(2):  # cached (fast path) and, after clearing, unwrapped (full path)
        with pytest.raises(KeyUseError, match="token removed"):
            _sign(store, ref.id)
        store.clear_cache()
    assert len(key_uses(database, ref.id)) == 1


def test_wrong_scheme_for_a_cached_key_is_refused_without_record(
    store: SoftwareKeyStore, database: Database
) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="scheme")
    _sign(store, ref.id)
    with pytest.raises(KeyUseError, match="does not fit"):
        store.sign_digest(
            ref.id, SignatureScheme.RSA_PKCS1_SHA256, DIGEST, actor="staff:1", purpose="test"
        )
    assert len(key_uses(database, ref.id)) == 1
