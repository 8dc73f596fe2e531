"""The only place private keys are held or used: software (wrapped at rest) and PKCS#11."""

from medsign.keys.base import AllowanceSpentError, KeyRef, KeyStore, SigningAllowance
from medsign.keys.factory import keyring_directory, open_key_store, open_keyring
from medsign.keys.keyring import MasterKeyring
from medsign.keys.pkcs11 import PKCS11KeyStore
from medsign.keys.software import RotationProgress, RotationReport, SoftwareKeyStore
from medsign.keys.usage import KeyUse, key_uses, reservation_covering, reservation_digest

__all__ = [
    "AllowanceSpentError",
    "KeyRef",
    "KeyStore",
    "KeyUse",
    "MasterKeyring",
    "PKCS11KeyStore",
    "RotationProgress",
    "RotationReport",
    "SigningAllowance",
    "SoftwareKeyStore",
    "key_uses",
    "keyring_directory",
    "open_key_store",
    "open_keyring",
    "reservation_covering",
    "reservation_digest",
]
