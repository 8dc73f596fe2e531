"""The only place private keys are held or used: software (wrapped at rest) and PKCS#11."""

from medsign.keys.base import KeyRef, KeyStore
from medsign.keys.factory import keyring_directory, open_key_store, open_keyring
from medsign.keys.keyring import MasterKeyring
from medsign.keys.pkcs11 import PKCS11KeyStore
from medsign.keys.software import RotationProgress, RotationReport, SoftwareKeyStore
from medsign.keys.usage import KeyUse, key_uses

__all__ = [
    "KeyRef",
    "KeyStore",
    "KeyUse",
    "MasterKeyring",
    "PKCS11KeyStore",
    "RotationProgress",
    "RotationReport",
    "SoftwareKeyStore",
    "key_uses",
    "keyring_directory",
    "open_key_store",
    "open_keyring",
]
