"""Object identifiers medsign uses, and their registration with asn1crypto.

asn1crypto does not know the Chinese national algorithms; registering them once lets every
parser (certificates, CSRs, CMS, OCSP) name them instead of handing back dotted strings.
"""

from __future__ import annotations

from asn1crypto import algos, keys

SM2_CURVE = "1.2.156.10197.1.301"
SM2_WITH_SM3 = "1.2.156.10197.1.501"
SM3 = "1.2.156.10197.1.401"

_registered = False


def register_asn1crypto_oids() -> None:
    global _registered
    if _registered:
        return
    keys.NamedCurve.register("sm2p256v1", SM2_CURVE, 32)
    algos.SignedDigestAlgorithmId._map[SM2_WITH_SM3] = "sm2_sm3"
    algos.SignedDigestAlgorithmId._reverse_map = None
    algos.DigestAlgorithmId._map[SM3] = "sm3"
    algos.DigestAlgorithmId._reverse_map = None
    _registered = True


register_asn1crypto_oids()
