"""Sealing of secrets and personal data at rest (application secrets, ID numbers, phones).

Blobs are AES-256-GCM under a key derived from the master keyring (the one that wraps the
software store's private keys, kept outside the database), bound to a context string so a
blob cannot be moved to another column or row. Lookup digests (to find a staff member by ID
number without decrypting every row) use an HMAC key that is itself sealed in the database,
so they stay stable when the master secret rotates.

Blob layout: ``b"MS1" || version (4 bytes, big endian) || nonce (12) || ciphertext+tag``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import ColumnElement, select, update

from medsign.db.base import Base
from medsign.db.session import Database
from medsign.db.tables import ApplicationRow, SettingRow, StaffRow
from medsign.errors import KeyUseError
from medsign.keys.keyring import MasterKeyring

MAGIC = b"MS1"
_HEADER = len(MAGIC) + 4
_NONCE = 12
SEAL_INFO = b"medsign data sealing v1/"
LOOKUP_SETTING = "sealing.lookup_key"

# Every column holding sealed blobs: (row class, column). Rotation re-seals them all.
SEALED_COLUMNS: list[tuple[str, str]] = [
    (ApplicationRow.__tablename__, "secret_sealed"),
    (ApplicationRow.__tablename__, "previous_secret_sealed"),
    (StaffRow.__tablename__, "national_id_sealed"),
    (StaffRow.__tablename__, "phone_sealed"),
]


def _column(table_name: str, column: str) -> ColumnElement[Any]:
    return Base.metadata.tables[table_name].c[column]


def _derive(secret: bytes, version: int) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=SEAL_INFO + struct.pack(">I", version)
    )
    return hkdf.derive(secret)


def blob_version(blob: bytes) -> int:
    if len(blob) < _HEADER + _NONCE + 16 or not blob.startswith(MAGIC):
        raise KeyUseError("sealed value is malformed", public="sealed value is unreadable")
    return int(struct.unpack(">I", blob[len(MAGIC) : _HEADER])[0])


class DataSealer:
    """Seal and open small secrets; compute stable keyed lookup digests."""

    def __init__(self, keyring: MasterKeyring, database: Database) -> None:
        self._keyring = keyring
        self._database = database
        self._keys: dict[int, AESGCM] = {}
        self._lookup_key: bytes | None = None

    def __repr__(self) -> str:
        return "<DataSealer>"

    @property
    def current_version(self) -> int:
        return self._keyring.current_version

    def keyring_add_version(self) -> int:
        """Start a rotation when no software key store owns the keyring."""
        return self._keyring.add_version()

    def retire_old_versions(self) -> list[int]:
        """Delete master versions no sealed value uses (only when no key store needs them)."""
        in_use = self.versions_in_use() | {self.current_version}
        retired = [v for v in self._keyring.versions if v not in in_use]
        for version in retired:
            self._keyring.retire(version)
        return retired

    def _aead(self, version: int) -> AESGCM:
        aead = self._keys.get(version)
        if aead is None:
            try:
                secret = self._keyring.secret(version)
            except Exception as exc:
                raise KeyUseError(
                    f"no master secret version {version}", public="sealed value is unreadable"
                ) from exc
            aead = AESGCM(_derive(secret, version))
            self._keys[version] = aead
        return aead

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        version = self._keyring.current_version
        nonce = secrets.token_bytes(_NONCE)
        header = MAGIC + struct.pack(">I", version)
        body = self._aead(version).encrypt(nonce, plaintext, header + context.encode())
        return header + nonce + body

    def open(self, blob: bytes, *, context: str) -> bytes:
        version = blob_version(blob)
        nonce = blob[_HEADER : _HEADER + _NONCE]
        try:
            return self._aead(version).decrypt(
                nonce, blob[_HEADER + _NONCE :], blob[:_HEADER] + context.encode()
            )
        except InvalidTag as exc:
            raise KeyUseError(
                "sealed value failed authentication", public="sealed value is unreadable"
            ) from exc

    def seal_text(self, text: str, *, context: str) -> bytes:
        return self.seal(text.encode("utf-8"), context=context)

    def open_text(self, blob: bytes, *, context: str) -> str:
        return self.open(blob, context=context).decode("utf-8")

    # -- lookup digests --------------------------------------------------------------------

    def lookup_digest(self, value: str, *, context: str) -> str:
        """HMAC-SHA256 hex of ``value``: equal inputs give equal digests, forever."""
        key = self._lookup_key or self._load_lookup_key()
        return hmac.new(
            key, context.encode() + b"\x00" + value.encode(), hashlib.sha256
        ).hexdigest()

    def _load_lookup_key(self) -> bytes:
        with self._database.session() as session:
            row = session.get(SettingRow, LOOKUP_SETTING)
            if row is None:
                key = secrets.token_bytes(32)
                blob = self.seal(key, context=LOOKUP_SETTING)
                session.add(
                    SettingRow(name=LOOKUP_SETTING, value=base64.b64encode(blob).decode("ascii"))
                )
                session.flush()
            else:
                key = self.open(base64.b64decode(row.value), context=LOOKUP_SETTING)
        self._lookup_key = key
        return key

    # -- rotation ----------------------------------------------------------------------------

    def versions_in_use(self) -> set[int]:
        versions: set[int] = set()
        for blob in self._all_blobs():
            versions.add(blob_version(blob))
        return versions

    def _all_blobs(self) -> Iterator[bytes]:
        with self._database.session() as session:
            for table_name, name in SEALED_COLUMNS:
                column = _column(table_name, name)
                yield from session.scalars(select(column).where(column.is_not(None)))
            row = session.get(SettingRow, LOOKUP_SETTING)
            if row is not None:
                yield base64.b64decode(row.value)

    def reseal_all(self, *, batch_size: int = 200) -> int:
        """Re-seal every blob not under the current master version; returns how many."""
        current = self._keyring.current_version
        done = 0
        for table_name, name in SEALED_COLUMNS:
            table = Base.metadata.tables[table_name]
            column = table.c[name]
            key = table.c.id
            while True:
                with self._database.session() as session:
                    rows = session.execute(
                        select(key, column).where(column.is_not(None)).limit(5000)
                    ).all()
                    stale = [(k, b) for k, b in rows if blob_version(b) != current][:batch_size]
                    for row_id, blob in stale:
                        # Context strings name the row, so re-sealing keeps the same context.
                        context = sealing_context(table_name, name, row_id)
                        plain = self.open(blob, context=context)
                        session.execute(
                            update(table)
                            .where(key == row_id)
                            .values({name: self.seal(plain, context=context)})
                        )
                    done += len(stale)
                if len(stale) < batch_size:
                    break
        with self._database.session() as session:
            row = session.get(SettingRow, LOOKUP_SETTING)
            if row is not None:
                blob = base64.b64decode(row.value)
                if blob_version(blob) != current:
                    plain = self.open(blob, context=LOOKUP_SETTING)
                    row.value = base64.b64encode(self.seal(plain, context=LOOKUP_SETTING)).decode(
                        "ascii"
                    )
                    done += 1
        return done


def sealing_context(table_name: str, column: str, row_id: str) -> str:
    """The context a sealed column value is bound to: table, column and row id."""
    return f"{table_name}.{column}:{row_id}"
