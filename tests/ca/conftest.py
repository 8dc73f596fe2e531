"""CA fixtures: a software key store, a CA on it, and helpers that drive the openssl CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from ca_support import BASE_URL, ORGANIZATION, OpenSSL

from medsign.ca import CertificateAuthority
from medsign.clock import FixedClock
from medsign.crypto import AlgorithmFamily
from medsign.db import Database
from medsign.keys import MasterKeyring, SoftwareKeyStore


@pytest.fixture
def ca_clock() -> FixedClock:
    """Wall-clock time, fixed: ``openssl verify`` checks validity against the real time."""
    return FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1))


@pytest.fixture
def keystore(database: Database, tmp_path: Path, ca_clock: FixedClock) -> SoftwareKeyStore:
    return SoftwareKeyStore(database, MasterKeyring.create(tmp_path / "keyring"), ca_clock)


@pytest.fixture
def authority(
    database: Database, keystore: SoftwareKeyStore, ca_clock: FixedClock
) -> CertificateAuthority:
    return CertificateAuthority(database, keystore, ca_clock, BASE_URL)


@pytest.fixture
def p256_authority(authority: CertificateAuthority) -> CertificateAuthority:
    """A CA with only the P-256 hierarchy: RSA-3072 key generation is slow."""
    authority.initialise_hierarchy(ORGANIZATION, families=[AlgorithmFamily.P256])
    return authority


@pytest.fixture
def run_openssl(tmp_path: Path) -> OpenSSL:
    work = tmp_path / "openssl"
    work.mkdir(exist_ok=True)
    return OpenSSL(work)
