"""Master-secret rotation without downtime."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from medsign.clock import FixedClock
from medsign.crypto import PublicKey, verify_digest
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.db.tables import KeyRow
from medsign.errors import ConfigurationError, StateError
from medsign.keys import MasterKeyring, RotationProgress, SoftwareKeyStore, key_uses


def _rows(database: Database) -> dict[str, tuple[int | None, bytes | None]]:
    with database.session() as session:
        return {
            r.id: (r.master_version, r.wrapped_key)
            for r in session.scalars(select(KeyRow).where(KeyRow.store == "software"))
        }


def test_rotation_while_signing(
    store: SoftwareKeyStore, database: Database, clock: FixedClock, keyring_dir: Path
) -> None:
    refs = [store.generate(KeyAlgorithm.EC_P256, label=f"k{i}") for i in range(6)]
    refs.append(store.generate(KeyAlgorithm.RSA_2048, label="rsa"))
    before = _rows(database)
    assert {v for v, _ in before.values()} == {1}

    # The signer has its own keyring (as another process would) loaded before the rotation,
    # and no cache, so every signature unwraps whatever the row holds at that moment.
    signer = SoftwareKeyStore(database, MasterKeyring.load(keyring_dir), clock, cache_size=0)
    stop = threading.Event()
    errors: list[BaseException] = []
    signed: list[int] = [0]
    progress_count: list[int] = [0]

    def sign_loop() -> None:
        n = 0
        while not stop.is_set() or n < 2 * len(refs):
            ref = refs[n % len(refs)]
            scheme = ref.algorithm.family.default_scheme
            digest = hashlib.sha256(n.to_bytes(4, "big")).digest()
            try:
                sig = signer.sign_digest(ref.id, scheme, digest, actor="loop", purpose="rotate")
                verify_digest(PublicKey.from_der(ref.public_key_der), scheme, digest, sig)
            except BaseException as exc:
                errors.append(exc)
                return
            n += 1
            progress_count[0] = n
        signed[0] = n

    reports: list[RotationProgress] = []
    mixed_versions: list[set[int | None]] = []

    def on_progress(step: RotationProgress) -> None:
        reports.append(step)
        if step.done == 3:
            # Half-way: hold the rotation until every key has signed again while rows are
            # split between the old and the new master version.
            mixed_versions.append({v for v, _ in _rows(database).values()})
            target = progress_count[0] + len(refs)
            deadline = time.monotonic() + 30
            while progress_count[0] < target and time.monotonic() < deadline and not errors:
                time.sleep(0.005)
            assert progress_count[0] >= target

    thread = threading.Thread(target=sign_loop)
    thread.start()
    try:
        report = store.rotate_master(batch_size=2, progress=on_progress)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    assert mixed_versions == [{1, 2}]
    assert signed[0] >= 2 * len(refs)
    assert report.version == 2 and report.rewrapped == len(refs)
    assert reports[0].done == 0 and reports[-1].done == len(refs)
    assert [p.done for p in reports] == list(range(len(refs) + 1))

    after = _rows(database)
    for key_id, (version, blob) in after.items():
        assert version == 2
        assert blob != before[key_id][1]
    assert len(key_uses(database, limit=1000)) == signed[0]

    # Old version retired: everything still signs, through a store that never cached anything.
    assert store.retire_old_versions() == [1]
    assert not (keyring_dir / "master-1.key").exists()
    fresh = SoftwareKeyStore(database, MasterKeyring.load(keyring_dir), clock)
    fresh.check()
    for ref in refs:
        scheme = ref.algorithm.family.default_scheme
        sig = fresh.sign_digest(ref.id, scheme, bytes(32), actor="after", purpose="rotate")
        verify_digest(PublicKey.from_der(ref.public_key_der), scheme, bytes(32), sig)
    # New keys go under the new version.
    new = fresh.generate(KeyAlgorithm.EC_P256, label="new")
    assert _rows(database)[new.id][0] == 2


def test_retire_refused_while_rows_use_old_version(
    store: SoftwareKeyStore, database: Database, keyring_dir: Path
) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="old")
    assert store.keyring.add_version() == 2
    assert store.keyring.current_version == 2
    with pytest.raises(StateError, match="version 1: 1 keys"):
        store.retire_old_versions()
    assert (keyring_dir / "master-1.key").exists()
    # Between the new version and the re-wrap, old rows still sign.
    store.clear_cache()
    store.sign_digest(ref.id, SignatureScheme.ECDSA_SHA256, bytes(32), actor="a", purpose="p")

    assert store.rewrap().rewrapped == 1
    assert store.rewrap().rewrapped == 0  # idempotent
    assert store.retire_old_versions() == [1]
    assert store.keyring.versions == (2,)
    with pytest.raises(StateError):
        store.keyring.retire(2)  # the current version is never retired


def test_destroyed_keys_do_not_block_retirement(store: SoftwareKeyStore) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="gone")
    store.destroy(ref.id)
    store.keyring.add_version()
    assert store.retire_old_versions() == [1]


def test_configured_secret_cannot_rotate(database: Database, clock: FixedClock) -> None:
    import base64
    import os

    ring = MasterKeyring.from_secret(base64.b64encode(os.urandom(32)).decode())
    store = SoftwareKeyStore(database, ring, clock)
    with pytest.raises(ConfigurationError, match="cannot be rotated"):
        store.rotate_master()
