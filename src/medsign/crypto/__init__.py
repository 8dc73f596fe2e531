"""Algorithm suites: RSA (PKCS#1 v1.5, PSS), ECDSA P-256, SM2/SM3 and Ed25519 behind one interface.

Public operations only; private-key operations are in ``medsign.crypto.private``.
"""

from medsign.crypto.public import (
    PublicKey,
    der_to_raw,
    message_digest,
    raw_to_der,
    verify,
    verify_digest,
)
from medsign.crypto.sm2 import sm2_z
from medsign.crypto.types import (
    CA_FAMILIES,
    DEFAULT_SM2_ID,
    AlgorithmFamily,
    KeyAlgorithm,
    SignatureEncoding,
    SignatureScheme,
)

__all__ = [
    "CA_FAMILIES",
    "DEFAULT_SM2_ID",
    "AlgorithmFamily",
    "KeyAlgorithm",
    "PublicKey",
    "SignatureEncoding",
    "SignatureScheme",
    "der_to_raw",
    "message_digest",
    "raw_to_der",
    "sm2_z",
    "verify",
    "verify_digest",
]
