from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.db.tables import ApplicationRow, OrganizationRow
from medsign.errors import KeyUseError
from medsign.keys.keyring import MasterKeyring
from medsign.keys.sealing import DataSealer, blob_version, sealing_context


@pytest.fixture
def keyring(tmp_path: Path) -> MasterKeyring:
    return MasterKeyring.create(tmp_path / "keystore")


def test_seal_open_and_context_binding(database: Database, keyring: MasterKeyring) -> None:
    sealer = DataSealer(keyring, database)
    blob = sealer.seal_text("110101199003071234", context="staff.national_id_sealed:stf_1")
    assert b"110101199003071234" not in blob
    assert sealer.open_text(blob, context="staff.national_id_sealed:stf_1") == "110101199003071234"
    with pytest.raises(KeyUseError):
        sealer.open(blob, context="staff.national_id_sealed:stf_2")
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(KeyUseError):
        sealer.open(bytes(tampered), context="staff.national_id_sealed:stf_1")
    with pytest.raises(KeyUseError):
        sealer.open(b"garbage", context="x")


def test_lookup_digest_is_stable_and_keyed(database: Database, keyring: MasterKeyring) -> None:
    one = DataSealer(keyring, database).lookup_digest("110101199003071234", context="nid")
    two = DataSealer(keyring, database).lookup_digest("110101199003071234", context="nid")
    assert one == two
    assert DataSealer(keyring, database).lookup_digest("110101199003071235", context="nid") != one
    import hashlib

    assert one != hashlib.sha256(b"110101199003071234").hexdigest()


def test_rotation_reseals_everything(
    database: Database, keyring: MasterKeyring, clock: FixedClock
) -> None:
    sealer = DataSealer(keyring, database)
    digest_before = sealer.lookup_digest("42", context="nid")
    now = clock.now()
    with database.session() as session:
        session.add(OrganizationRow(id="org_1", code="h", name="H", demo=False, created_at=now))
        session.flush()
        for i in range(3):
            app_id = f"app_{i}"
            session.add(
                ApplicationRow(
                    id=app_id,
                    organization_id="org_1",
                    code=f"c{i}",
                    name="n",
                    state="active",
                    secret_sealed=sealer.seal(
                        b"s%d" % i, context=sealing_context("applications", "secret_sealed", app_id)
                    ),
                    secret_rotated_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
    assert sealer.versions_in_use() == {1}
    keyring.add_version()
    assert sealer.reseal_all(batch_size=2) == 4  # three secrets and the lookup key
    assert sealer.versions_in_use() == {2}
    fresh = DataSealer(keyring, database)
    with database.session() as session:
        for row in session.scalars(select(ApplicationRow)):
            assert blob_version(row.secret_sealed) == 2
            assert (
                fresh.open(
                    row.secret_sealed,
                    context=sealing_context("applications", "secret_sealed", row.id),
                )
                == b"s" + row.id[-1].encode()
            )
    assert fresh.lookup_digest("42", context="nid") == digest_before
    assert dt.UTC  # clock is UTC-aware
