from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from medsign.clock import FixedClock
from medsign.config import KeyStoreKind, Settings
from medsign.crypto.types import KeyAlgorithm
from medsign.db import Database
from medsign.errors import ConfigurationError
from medsign.keys import (
    MasterKeyring,
    PKCS11KeyStore,
    SoftwareKeyStore,
    keyring_directory,
    open_key_store,
)


def test_software_from_keyring_directory(
    tmp_path: Path, database: Database, clock: FixedClock
) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="medsign init"):
        open_key_store(settings, database, clock)
    MasterKeyring.create(keyring_directory(settings))
    assert keyring_directory(settings) == tmp_path / "keystore"
    store = open_key_store(settings, database, clock)
    assert isinstance(store, SoftwareKeyStore)
    assert store.kind == "software"
    store.generate(KeyAlgorithm.EC_P256, label="factory")
    store.check()


def test_software_from_configured_secret(
    tmp_path: Path, database: Database, clock: FixedClock
) -> None:
    encoded = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(data_dir=tmp_path, master_secret=SecretStr(encoded))
    store = open_key_store(settings, database, clock)
    assert isinstance(store, SoftwareKeyStore)
    assert store.keyring.directory is None
    assert encoded not in repr(store)


def test_pkcs11_settings(tmp_path: Path, database: Database, clock: FixedClock) -> None:
    incomplete = Settings(data_dir=tmp_path, keystore=KeyStoreKind.PKCS11, pkcs11_module="/x.so")
    with pytest.raises(ConfigurationError, match="pkcs11_token_label, pkcs11_pin"):
        open_key_store(incomplete, database, clock)
    settings = Settings(
        data_dir=tmp_path,
        keystore=KeyStoreKind.PKCS11,
        pkcs11_module="/usr/lib/softhsm/libsofthsm2.so",
        pkcs11_token_label="medsign",
        pkcs11_pin=SecretStr("123456"),
    )
    store = open_key_store(settings, database, clock)
    assert isinstance(store, PKCS11KeyStore)
    assert store.kind == "pkcs11"
    assert "123456" not in repr(store)
