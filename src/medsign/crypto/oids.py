"""Object identifiers medsign uses, and their registration with asn1crypto.

asn1crypto does not know the Chinese national algorithms; registering them once lets every
parser (certificates, CSRs, CMS, OCSP) name them instead of handing back dotted strings.
"""

from __future__ import annotations

from asn1crypto import algos, cms, core, keys

SM2_CURVE = "1.2.156.10197.1.301"
SM2_WITH_SM3 = "1.2.156.10197.1.501"
SM3 = "1.2.156.10197.1.401"
# GB/T 35275-2017 (GM/T 0010-2012): SM2-1 signature as SignerInfo digestEncryptionAlgorithm,
# and the SM2 PKCS#7 content types.
SM2_SIGN = "1.2.156.10197.1.301.1"
GM_DATA = "1.2.156.10197.6.1.4.2.1"
GM_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"

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
    algos.SignedDigestAlgorithmId._map[SM2_SIGN] = "sm2_sign"
    cms.ContentType._map[GM_DATA] = "gm_data"
    cms.ContentType._map[GM_SIGNED_DATA] = "gm_signed_data"
    cms.ContentType._reverse_map = None
    cms.ContentInfo._oid_specs["gm_signed_data"] = cms.SignedData
    cms.ContentInfo._oid_specs["gm_data"] = core.OctetString
    cms.EncapsulatedContentInfo._oid_specs["gm_data"] = core.OctetString
    _registered = True


register_asn1crypto_oids()
