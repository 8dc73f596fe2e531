"""Choose and open the configured key store."""

from __future__ import annotations

from pathlib import Path

from medsign.clock import Clock
from medsign.config import KeyStoreKind, Settings
from medsign.db import Database
from medsign.errors import ConfigurationError
from medsign.keys.base import KeyStore
from medsign.keys.keyring import MasterKeyring
from medsign.keys.software import SoftwareKeyStore

KEYRING_DIR_NAME = "keystore"


def keyring_directory(settings: Settings) -> Path:
    """Where the software store's master secrets live: ``<data_dir>/keystore``."""
    return settings.data_dir / KEYRING_DIR_NAME


def open_keyring(settings: Settings) -> MasterKeyring:
    """The configured master secret if one is given, else the keyring directory."""
    if settings.master_secret is not None:
        return MasterKeyring.from_secret(settings.master_secret.get_secret_value())
    return MasterKeyring.load(keyring_directory(settings))


def open_key_store(settings: Settings, database: Database, clock: Clock) -> KeyStore:
    """The key store the settings name; opening it does not yet talk to a token."""
    if settings.keystore is KeyStoreKind.PKCS11:
        from medsign.keys.pkcs11 import PKCS11KeyStore

        missing = [
            name
            for name, value in (
                ("pkcs11_module", settings.pkcs11_module),
                ("pkcs11_token_label", settings.pkcs11_token_label),
                ("pkcs11_pin", settings.pkcs11_pin),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(f"keystore=pkcs11 needs {', '.join(missing)}")
        assert settings.pkcs11_module and settings.pkcs11_token_label and settings.pkcs11_pin
        return PKCS11KeyStore(
            database,
            settings.pkcs11_module,
            settings.pkcs11_token_label,
            settings.pkcs11_pin.get_secret_value(),
            clock,
        )
    return SoftwareKeyStore(database, open_keyring(settings), clock)
