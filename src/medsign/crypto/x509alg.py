"""Mapping between ``SignatureScheme`` and X.509/CMS ``AlgorithmIdentifier`` values.

Certificates, CRLs, OCSP responses and CMS SignerInfos all name the signature algorithm the
same way, so the CA, TSA and verifier share this one table. Producing is exact (the encodings
OpenSSL writes); parsing accepts only what medsign itself could have produced, plus the
commonly seen NULL-versus-absent variants noted below, so an unexpected PSS hash or salt can
never slip through as "RSA, probably fine".
"""

from __future__ import annotations

from asn1crypto import algos, core

from medsign.crypto import oids
from medsign.crypto.public import PSS_SALT_LENGTH
from medsign.crypto.types import SignatureScheme
from medsign.errors import InputError

oids.register_asn1crypto_oids()

__all__ = ["scheme_from_algorithm", "signature_algorithm"]


def _pss_parameters() -> algos.RSASSAPSSParams:
    return algos.RSASSAPSSParams(
        {
            "hash_algorithm": {"algorithm": "sha256", "parameters": core.Null()},
            "mask_gen_algorithm": {
                "algorithm": "mgf1",
                "parameters": {"algorithm": "sha256", "parameters": core.Null()},
            },
            "salt_length": PSS_SALT_LENGTH,
            # trailer_field 1 is the DEFAULT, so DER omits it.
            "trailer_field": "trailer_field_bc",
        }
    )


def signature_algorithm(scheme: SignatureScheme) -> algos.SignedDigestAlgorithm:
    """The AlgorithmIdentifier to put in a certificate, CRL, OCSP response or SignerInfo."""
    if scheme is SignatureScheme.RSA_PKCS1_SHA256:
        # RFC 4055 §5: parameters MUST be NULL (asn1crypto adds it for sha256_rsa).
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})
    if scheme is SignatureScheme.RSA_PSS_SHA256:
        return algos.SignedDigestAlgorithm(
            {"algorithm": "rsassa_pss", "parameters": _pss_parameters()}
        )
    if scheme is SignatureScheme.ECDSA_SHA256:
        # RFC 5758 §3.2: parameters MUST be absent.
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    if scheme is SignatureScheme.SM2_SM3:
        # GM/T 0015 and OpenSSL: SM2-with-SM3 carries no parameters.
        return algos.SignedDigestAlgorithm({"algorithm": "sm2_sm3"})
    raise InputError(f"no AlgorithmIdentifier for scheme {scheme}")


def _absent(params: object) -> bool:
    return isinstance(params, core.Void)


def _absent_or_null(params: object) -> bool:
    if isinstance(params, core.Void | core.Null):
        return True
    # For OIDs asn1crypto has no parameter spec for (SM2), parameters parse as Any.
    return isinstance(params, core.Asn1Value) and params.dump() == b"\x05\x00"


def _is_sha256(alg: algos.DigestAlgorithm) -> bool:
    return bool(alg["algorithm"].native == "sha256" and _absent_or_null(alg["parameters"]))


def _check_pss(params: object) -> None:
    if not isinstance(params, algos.RSASSAPSSParams):
        raise InputError("RSASSA-PSS without parameters is not supported")
    # Absent fields take the RFC 4055 defaults (SHA-1, MGF1-SHA-1, salt 20), which the
    # comparisons below reject as they should.
    if not _is_sha256(params["hash_algorithm"]):
        raise InputError("RSASSA-PSS hash must be SHA-256")
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1":
        raise InputError("RSASSA-PSS mask generation must be MGF1")
    mgf_hash = mgf["parameters"]
    if not isinstance(mgf_hash, algos.DigestAlgorithm) or not _is_sha256(mgf_hash):
        raise InputError("RSASSA-PSS MGF1 hash must be SHA-256")
    if params["salt_length"].native != PSS_SALT_LENGTH:
        raise InputError(f"RSASSA-PSS salt length must be {PSS_SALT_LENGTH}")
    if params["trailer_field"].native != "trailer_field_bc":
        raise InputError("RSASSA-PSS trailer field must be 1")


def scheme_from_algorithm(alg: algos.SignedDigestAlgorithm) -> SignatureScheme:
    """The scheme an AlgorithmIdentifier names; raises ``InputError`` for anything else."""
    try:
        name = alg["algorithm"].native
        params = alg["parameters"]
        if name == "sha256_rsa":
            # Absent is tolerated: some older encoders omit the NULL and OpenSSL accepts it.
            if not _absent_or_null(params):
                raise InputError("sha256WithRSAEncryption parameters must be NULL")
            return SignatureScheme.RSA_PKCS1_SHA256
        if name == "rsassa_pss":
            _check_pss(params)
            return SignatureScheme.RSA_PSS_SHA256
        if name == "sha256_ecdsa":
            if not _absent(params):
                raise InputError("ecdsa-with-SHA256 parameters must be absent")
            return SignatureScheme.ECDSA_SHA256
        if name == "sm2_sm3":
            # Some Chinese CAs write a NULL here; it carries no information, so accept it.
            if not _absent_or_null(params):
                raise InputError("SM2-with-SM3 parameters must be absent")
            return SignatureScheme.SM2_SM3
    except InputError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError("malformed signature AlgorithmIdentifier") from exc
    raise InputError(f"unsupported signature algorithm {name}")
