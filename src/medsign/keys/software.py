"""The software key store: private keys wrapped at rest, unwrapped only to sign.

Wrapping (see docs/adr/0002-key-wrapping.md):

* key-encryption key (KEK) = HKDF-SHA256(master secret of version N, info = label || N);
* ``wrapped_key`` = format byte || 96-bit random nonce || AES-256-GCM(KEK, PKCS#8, AAD);
* AAD binds the key id, the algorithm and the master version, so a blob copied onto another
  row, or a row whose version was edited, fails authentication instead of yielding a key.

Rotation re-wraps one row per transaction; a row always names the version that wrapped it, so
signing never waits for a rotation to finish.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from medsign.clock import Clock
from medsign.crypto.private import PrivateKey
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.db.tables import KeyRow
from medsign.errors import (
    ConfigurationError,
    KeyStoreUnavailableError,
    KeyUseError,
    MedsignError,
    StateError,
)
from medsign.ids import KeyId, new_id
from medsign.keys.base import Claim, KeyRef, SigningAllowance
from medsign.keys.keyring import MasterKeyring
from medsign.keys.usage import (
    ACTIVE,
    DESTROYED,
    Allowance,
    AllowanceRegistry,
    SigningKey,
    check_label,
    check_message_request,
    check_reservation_request,
    check_signing_request,
    insert_key_use,
    insert_key_use_if_current,
    insert_key_uses,
    key_ref,
    load_key_row,
    load_signing_key,
    parse_algorithm,
    parse_digest_scheme,
    parse_message_scheme,
    record_reservation,
)

KIND = "software"
WRAP_FORMAT = b"\x01"
NONCE_SIZE = 12
KEK_INFO = b"medsign/keystore/kek/v1"
AAD_LABEL = b"medsign/keystore/wrap/v1"
DEFAULT_CACHE_SIZE = 256

ProgressCallback = Callable[["RotationProgress"], None]


def derive_kek(secret: bytes, version: int) -> bytes:
    # The version is in the info so two versions never share a KEK even if an operator
    # restored the same secret under a new number.
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=KEK_INFO + struct.pack(">I", version),
    )
    return hkdf.derive(secret)


def wrap_aad(key_id: str, algorithm: KeyAlgorithm, version: int) -> bytes:
    parts = (AAD_LABEL, key_id.encode("ascii"), str(algorithm).encode("ascii"))
    return b"\x00".join(parts) + struct.pack(">I", version)


class WrappedKey(Protocol):
    """What unwrapping reads from a key row (an ORM ``KeyRow`` or a ``SigningKey``)."""

    @property
    def id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    @property
    def public_key_der(self) -> bytes: ...

    @property
    def wrapped_key(self) -> bytes | None: ...

    @property
    def master_version(self) -> int | None: ...


@dataclass(frozen=True)
class RotationProgress:
    """Reported after each re-wrapped row (and once at the start)."""

    version: int
    done: int
    total: int


@dataclass(frozen=True)
class RotationReport:
    version: int
    rewrapped: int


class _KeyCache:
    """A bounded LRU of unwrapped keys, each tied to the exact row state it came from.

    Entries carry a fingerprint (master version and wrapped blob), so a re-wrap, a tampered
    row or a destroyed key is never served from a stale entry: any change is a miss and the
    row is unwrapped (and authenticated) anew.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[bytes, PrivateKey]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<_KeyCache {len(self._entries)}/{self._size}>"

    def get(self, key_id: str, fingerprint: bytes) -> PrivateKey | None:
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is None or entry[0] != fingerprint:
                return None
            self._entries.move_to_end(key_id)
            return entry[1]

    def put(self, key_id: str, fingerprint: bytes, key: PrivateKey) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._entries[key_id] = (fingerprint, key)
            self._entries.move_to_end(key_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def peek(self, key_id: str) -> tuple[int, bytes, PrivateKey] | None:
        """(master version, wrapped blob, key) of the cached entry, to be checked by the caller."""
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is None:
                return None
            self._entries.move_to_end(key_id)
        fingerprint, key = entry
        (version,) = struct.unpack(">I", fingerprint[:4])
        return version, fingerprint[4:], key

    def rebind(self, key_id: str, old: bytes, new: bytes) -> None:
        """After a re-wrap the key is unchanged: keep it cached under its new fingerprint."""
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is not None and entry[0] == old:
                self._entries[key_id] = (new, entry[1])

    def drop(self, key_id: str) -> None:
        with self._lock:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# OpenSSL releases the GIL while it signs, so a batch spread over a few threads uses every
# core of the host; small batches are not worth the hand-off.
_PARALLEL_FROM = 8
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="medsign-sign"
            )
        return _POOL


def _sign_many(
    private: PrivateKey, scheme: SignatureScheme, digests: Sequence[bytes]
) -> list[bytes]:
    workers = os.cpu_count() or 1
    if len(digests) < _PARALLEL_FROM or workers < 2:
        return [private.sign_digest(scheme, digest) for digest in digests]
    # One task per core rather than per digest: the hand-offs cost GIL round trips.
    size = -(-len(digests) // workers)
    chunks = [digests[i : i + size] for i in range(0, len(digests), size)]
    done = _pool().map(lambda chunk: [private.sign_digest(scheme, d) for d in chunk], chunks)
    return [signature for chunk in done for signature in chunk]


class SoftwareKeyStore:
    """Keys in the database, wrapped under a master secret held outside it."""

    kind = KIND

    def __init__(
        self,
        database: Database,
        keyring: MasterKeyring,
        clock: Clock,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self._database = database
        self._keyring = keyring
        self._clock = clock
        self._cache = _KeyCache(cache_size)
        self._keks: dict[int, AESGCM] = {}
        self._kek_lock = threading.Lock()
        self._rotation_lock = threading.Lock()
        self._allowances = AllowanceRegistry()

    def __repr__(self) -> str:
        return f"<SoftwareKeyStore {self._keyring!r}>"

    @property
    def keyring(self) -> MasterKeyring:
        return self._keyring

    def supported_algorithms(self) -> frozenset[KeyAlgorithm]:
        return frozenset(KeyAlgorithm)

    # -- keys ---------------------------------------------------------------------------

    def generate(self, algorithm: KeyAlgorithm, *, label: str) -> KeyRef:
        algorithm = parse_algorithm(algorithm)
        check_label(label)
        private = PrivateKey.generate(algorithm)
        key_id = KeyId(new_id("key"))
        self._keyring.refresh()  # wrap under the newest version even if another node rotated
        version = self._keyring.current_version
        blob = self._wrap(key_id, algorithm, version, private.to_pkcs8_der())
        row = KeyRow(
            id=key_id,
            store=KIND,
            algorithm=str(algorithm),
            label=label,
            public_key_der=private.public_key().der,
            wrapped_key=blob,
            master_version=version,
            token_object_id=None,
            state=ACTIVE,
            created_at=self._clock.now(),
        )
        with self._database.session() as session:
            session.add(row)
            ref = key_ref(row)
        self._cache.put(key_id, _fingerprint(version, blob), private)
        return ref

    def get(self, key_id: KeyId) -> KeyRef:
        with self._database.session() as session:
            return key_ref(load_key_row(session, key_id, KIND))

    def sign_digest(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        digest: bytes,
        *,
        actor: str,
        purpose: str,
    ) -> bytes:
        scheme = parse_digest_scheme(scheme)
        check_signing_request(digest, actor=actor, purpose=purpose)
        return self._sign_recorded(
            key_id,
            scheme,
            digest,
            lambda private: private.sign_digest(scheme, digest),
            actor=actor,
            purpose=purpose,
        )

    def sign_message(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        message: bytes,
        *,
        actor: str,
        purpose: str,
    ) -> bytes:
        """Sign ``message`` whole (Ed25519); the use is recorded with the message's SHA-256."""
        scheme = parse_message_scheme(scheme)
        recorded = check_message_request(message, actor=actor, purpose=purpose)
        return self._sign_recorded(
            key_id,
            scheme,
            recorded,
            lambda private: private.sign_message(scheme, message),
            actor=actor,
            purpose=purpose,
        )

    def _sign_recorded(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        recorded: bytes,
        sign: Callable[[PrivateKey], bytes],
        *,
        actor: str,
        purpose: str,
    ) -> bytes:
        """One signature and its key-use row (``recorded`` is the digest the row names)."""
        cached = self._cache.peek(key_id)
        # One short transaction on a plain connection, committed only after the signature was
        # made: a signature is never handed out without its record, and a refused or failed
        # request leaves none. The key row is consulted inside it every time, so a destroy or
        # re-wrap committed by another process takes effect at once.
        with self._database.engine.begin() as connection:
            if cached is not None and scheme.family is cached[2].algorithm.family:
                # Fast path: the record is inserted only if the row is still active and holds
                # exactly the blob the cached key was unwrapped from.
                version, blob, private = cached
                if insert_key_use_if_current(
                    connection,
                    self._clock,
                    key_id,
                    scheme,
                    recorded,
                    actor=actor,
                    purpose=purpose,
                    store=KIND,
                    algorithm=private.algorithm,
                    master_version=version,
                    wrapped_key=blob,
                ):
                    return sign(private)
            # Full path: read the row (precise errors), unwrap if needed, record.
            row = load_signing_key(
                connection, key_id, KIND, scheme, recorded, actor=actor, purpose=purpose
            )
            private = self._private_key(row)
            signature = sign(private)
            # Same transaction: a signature is never handed out without its record.
            insert_key_use(
                connection, self._clock, key_id, scheme, recorded, actor=actor, purpose=purpose
            )
        return signature

    def sign_digests(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        digests: Sequence[bytes],
        *,
        actor: str,
        purpose: str,
    ) -> list[bytes]:
        """Sign many digests with one key: one transaction records every use.

        All or nothing: if any signature fails, no record is kept and nothing is returned.
        """
        scheme = parse_digest_scheme(scheme)
        if not digests:
            return []
        for digest in digests:
            check_signing_request(digest, actor=actor, purpose=purpose)
        with self._database.engine.begin() as connection:
            row = load_signing_key(
                connection, key_id, KIND, scheme, digests[0], actor=actor, purpose=purpose
            )
            private = self._private_key(row)
            signatures = _sign_many(private, scheme, digests)
            insert_key_uses(
                connection,
                self._clock,
                key_id,
                scheme,
                list(digests),
                actor=actor,
                purpose=purpose,
            )
        return signatures

    def reserve(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        count: int,
        *,
        actor: str,
        purpose: str,
        seconds: float,
        claim: Claim,
    ) -> SigningAllowance:
        """Record one key-use row for up to ``count`` signatures (``KeyStore.reserve``).

        The key row is read and the key unwrapped (or taken from the cache, checked against
        the row's blob) inside the transaction that claims the numbers and writes the row; the
        allowance is handed out only after it commits, and then signs with the unwrapped key
        in memory.
        """
        scheme = parse_digest_scheme(scheme)
        check_reservation_request(count, seconds, actor=actor, purpose=purpose, claim=claim)
        unwrapped: list[PrivateKey] = []

        def prepare(row: SigningKey) -> None:
            unwrapped.append(self._private_key(row))

        with self._database.engine.begin() as connection:
            reservation = record_reservation(
                connection,
                self._clock,
                key_id,
                KIND,
                scheme,
                count,
                actor=actor,
                purpose=purpose,
                seconds=seconds,
                claim=claim,
                prepare=prepare,
            )
            private = unwrapped[0]
            allowance = Allowance(
                reservation,
                self._clock,
                functools.partial(private.sign_digest, scheme),
                lambda digests: _sign_many(private, scheme, digests),
            )
            # Registered before the commit: a destroy that commits after it revokes it.
            self._allowances.add(allowance)
        return allowance

    def destroy(self, key_id: KeyId) -> None:
        """Crypto-shred a key: its wrapped blob is erased and it can never sign again."""
        with self._database.session() as session:
            row = load_key_row(session, key_id, KIND)
            row.state = DESTROYED
            row.wrapped_key = None
            row.master_version = None
        self._cache.drop(key_id)
        self._allowances.revoke(key_id, "is destroyed")

    def check(self) -> None:
        """The database answers, and one key per master version in use unwraps."""
        try:
            self._keyring.refresh()
            self._keyring.secret(self._keyring.current_version)
            with self._database.session() as session:
                versions = session.scalars(
                    select(KeyRow.master_version)
                    .where(KeyRow.store == KIND, KeyRow.wrapped_key.is_not(None))
                    .distinct()
                ).all()
                for version in versions:
                    if version is None:
                        continue
                    sample = session.scalars(
                        select(KeyRow)
                        .where(KeyRow.store == KIND, KeyRow.master_version == version)
                        .limit(1)
                    ).one()
                    self._unwrap_row(sample)
        except (KeyUseError, ConfigurationError) as exc:
            raise KeyStoreUnavailableError(f"software key store unusable: {exc}") from exc
        except SQLAlchemyError as exc:
            raise KeyStoreUnavailableError("software key store: database unavailable") from exc

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- rotation -----------------------------------------------------------------------

    def rotate_master(
        self, *, batch_size: int = 50, progress: ProgressCallback | None = None
    ) -> RotationReport:
        """Add a master version, make it current, then re-wrap every row under it.

        Signing keeps working throughout: each row is re-wrapped in its own short
        transaction and always names the version that can open it.
        """
        self._keyring.add_version()
        return self.rewrap(batch_size=batch_size, progress=progress)

    def rewrap(
        self, *, batch_size: int = 50, progress: ProgressCallback | None = None
    ) -> RotationReport:
        """Re-wrap every row not yet under the current version; resumes an interrupted run."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        with self._rotation_lock:
            self._keyring.refresh()
            version = self._keyring.current_version
            pending = (
                KeyRow.store == KIND,
                KeyRow.wrapped_key.is_not(None),
                KeyRow.master_version != version,
            )
            with self._database.session() as session:
                total = session.scalar(select(func.count()).select_from(KeyRow).where(*pending))
            done = 0
            if progress is not None:
                progress(RotationProgress(version, done, total or 0))
            while True:
                with self._database.session() as session:
                    ids = session.scalars(
                        select(KeyRow.id).where(*pending).order_by(KeyRow.id).limit(batch_size)
                    ).all()
                if not ids:
                    break
                for key_id in ids:
                    if self._rewrap_one(key_id, version):
                        done += 1
                        if progress is not None:
                            progress(RotationProgress(version, done, max(total or 0, done)))
            return RotationReport(version=version, rewrapped=done)

    def _rewrap_one(self, key_id: str, version: int) -> bool:
        with self._database.session() as session:
            # FOR UPDATE on PostgreSQL: a concurrent destroy or rotation waits for us.
            row = session.scalars(
                select(KeyRow).where(KeyRow.id == key_id).with_for_update()
            ).one_or_none()
            if row is None or row.wrapped_key is None or row.master_version is None:
                return False
            if row.master_version == version:
                return False
            old = _fingerprint(version=row.master_version, blob=row.wrapped_key)
            try:
                pkcs8 = self._unwrap(row)
            except KeyUseError as exc:
                raise KeyUseError(
                    f"rotation stopped at key {key_id}: {exc}; fix it, then run rewrap again"
                ) from exc
            algorithm = KeyAlgorithm(row.algorithm)
            new_blob = self._wrap(key_id, algorithm, version, pkcs8)
            row.wrapped_key = new_blob
            row.master_version = version
        self._cache.rebind(key_id, old, _fingerprint(version, new_blob))
        return True

    def retire_old_versions(self) -> list[int]:
        """Delete every master version but the current one, once no row uses it."""
        with self._rotation_lock:
            self._keyring.refresh()
            current = self._keyring.current_version
            old = [v for v in self._keyring.versions if v != current]
            with self._database.session() as session:
                rows = session.execute(
                    select(KeyRow.master_version, func.count())
                    .where(KeyRow.store == KIND, KeyRow.master_version.in_(old))
                    .group_by(KeyRow.master_version)
                ).all()
            busy = {int(v): int(n) for v, n in rows if v is not None and n}
            if busy:
                detail = ", ".join(f"version {v}: {n} keys" for v, n in sorted(busy.items()))
                raise StateError(f"master versions still in use ({detail}); run rewrap first")
            for version in old:
                self._keyring.retire(version)
                with self._kek_lock:
                    self._keks.pop(version, None)
            return old

    # -- wrapping -----------------------------------------------------------------------

    def _aead(self, version: int) -> AESGCM:
        with self._kek_lock:
            aead = self._keks.get(version)
        if aead is None:
            aead = AESGCM(derive_kek(self._keyring.secret(version), version))
            with self._kek_lock:
                self._keks[version] = aead
        return aead

    def _wrap(self, key_id: str, algorithm: KeyAlgorithm, version: int, pkcs8: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._aead(version).encrypt(nonce, pkcs8, wrap_aad(key_id, algorithm, version))
        return WRAP_FORMAT + nonce + sealed

    def _unwrap(self, row: WrappedKey) -> bytes:
        blob, version = row.wrapped_key, row.master_version
        if blob is None or version is None:
            raise KeyUseError(f"key {row.id} has no key material")
        if blob[:1] != WRAP_FORMAT or len(blob) < 1 + NONCE_SIZE + 16:
            raise KeyUseError(f"key {row.id}: wrapped key has an unknown format")
        nonce, sealed = blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :]
        aad = wrap_aad(row.id, KeyAlgorithm(row.algorithm), version)
        try:
            return self._aead(version).decrypt(nonce, sealed, aad)
        except InvalidTag as exc:
            raise KeyUseError(
                f"key {row.id} cannot be unwrapped with master version {version}:"
                " wrong master secret, or the stored key was altered or moved",
                public="The signing key could not be used",
            ) from exc

    def _unwrap_row(self, row: WrappedKey) -> PrivateKey:
        pkcs8 = self._unwrap(row)
        try:
            private = PrivateKey.from_pkcs8_der(pkcs8)
        except MedsignError as exc:
            raise KeyUseError(f"key {row.id}: unwrapped key is unreadable") from exc
        if private.algorithm != row.algorithm or private.public_key().der != row.public_key_der:
            raise KeyUseError(f"key {row.id}: unwrapped key does not match its public key")
        return private

    def _private_key(self, row: WrappedKey) -> PrivateKey:
        if row.wrapped_key is None or row.master_version is None:
            raise KeyUseError(f"key {row.id} has no key material")
        fingerprint = _fingerprint(row.master_version, row.wrapped_key)
        cached = self._cache.get(row.id, fingerprint)
        if cached is not None:
            return cached
        private = self._unwrap_row(row)
        self._cache.put(row.id, fingerprint, private)
        return private


def _fingerprint(version: int, blob: bytes) -> bytes:
    # What a cache entry is valid for: exactly this version and ciphertext.
    return struct.pack(">I", version) + blob
