"""Key store fixtures: a master keyring in a private temporary directory and a store on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsign.clock import FixedClock
from medsign.db import Database
from medsign.keys import MasterKeyring, SoftwareKeyStore


def sm2_available() -> bool:
    from medsign.crypto.private import PrivateKey
    from medsign.crypto.types import KeyAlgorithm
    from medsign.errors import KeyUseError

    try:
        PrivateKey.generate(KeyAlgorithm.SM2)
    except KeyUseError:
        return False
    return True


@pytest.fixture
def require_sm2() -> None:
    if not sm2_available():
        pytest.skip("SM2 is still a placeholder in medsign.crypto.sm2")


@pytest.fixture
def keyring_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keystore"


@pytest.fixture
def keyring(keyring_dir: Path) -> MasterKeyring:
    return MasterKeyring.create(keyring_dir)


@pytest.fixture
def store(database: Database, keyring: MasterKeyring, clock: FixedClock) -> SoftwareKeyStore:
    return SoftwareKeyStore(database, keyring, clock)
