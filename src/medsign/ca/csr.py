"""PKCS#10 certification requests: load and verify the self-signature; build one via a key store.

SM2 and the signer ID: GM/T 0009 gives 1234567812345678 as the default ID that goes into Z,
but OpenSSL 3.0 signs CSRs (``openssl req -sm3``) with an EMPTY ID unless ``-sigopt distid:``
sets one (verified against OpenSSL 3.0.x; see tests/ca/test_csr.py). So when the caller does
not name an ID, both the GM/T default and the empty ID are accepted; the self-signature only
proves possession of the key, so accepting either costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import algos, core, keys, pem, x509
from asn1crypto import csr as asn1_csr
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from medsign.ca.names import render_name
from medsign.ca.signing import sign_structure
from medsign.crypto import DEFAULT_SM2_ID, PublicKey, SignatureScheme, verify
from medsign.crypto.x509alg import scheme_from_algorithm
from medsign.errors import InputError, MedsignError, VerificationError
from medsign.keys.base import KeyRef, KeyStore

OPENSSL_DEFAULT_SM2_ID = b""

_PSS_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


@dataclass(frozen=True)
class CertificateRequest:
    """A PKCS#10 request whose self-signature verified."""

    der: bytes
    subject: x509.Name
    public_key: PublicKey
    signature_algorithm: str
    sm2_id: bytes | None  # the ID that verified, for SM2 requests

    @property
    def subject_text(self) -> str:
        return render_name(self.subject)


def to_der(data: bytes | str, label: str = "CERTIFICATE REQUEST") -> bytes:
    """DER from PEM text or DER bytes; raises ``InputError`` when it is neither."""
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else bytes(data)
    if pem.detect(raw):
        try:
            found, _headers, der = pem.unarmor(raw)
        except ValueError as exc:
            raise InputError(f"malformed PEM {label.lower()}") from exc
        if label == "CERTIFICATE REQUEST" and found == "NEW CERTIFICATE REQUEST":
            return bytes(der)
        if found != label:
            raise InputError(f"expected a PEM {label}, got {found}")
        return bytes(der)
    return raw


def load_csr(data: bytes | str) -> asn1_csr.CertificationRequest:
    der = to_der(data)
    try:
        request = asn1_csr.CertificationRequest.load(der, strict=True)
        # Parse the parts now: asn1crypto is lazy and would fail later, far from here.
        _ = request.native
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError("malformed certificate request (not PKCS#10)") from exc
    return request


def _verify_pss(
    public_key: PublicKey, params: algos.RSASSAPSSParams, tbs: bytes, sig: bytes
) -> None:
    # CSRs from OpenSSL use the maximum salt length by default, so unlike the CA's own PSS
    # output (fixed salt of 32) a request may carry any salt with a SHA-2 hash.
    hash_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    mgf_hash = mgf["parameters"]["algorithm"].native
    if hash_name not in _PSS_HASHES or mgf["algorithm"].native != "mgf1" or mgf_hash != hash_name:
        raise InputError("RSASSA-PSS requests must use SHA-256/384/512 with matching MGF1")
    try:
        key = serialization.load_der_public_key(public_key.der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError("malformed public key in certificate request") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise InputError("RSASSA-PSS request with a non-RSA key")
    pss = padding.PSS(
        mgf=padding.MGF1(_PSS_HASHES[hash_name]), salt_length=int(params["salt_length"].native)
    )
    try:
        key.verify(sig, tbs, pss, _PSS_HASHES[hash_name])
    except InvalidSignature as exc:
        raise VerificationError("signature does not verify") from exc


def verify_csr(data: bytes | str, *, sm2_id: bytes | None = None) -> CertificateRequest:
    """Load a PKCS#10 request and verify its self-signature; raises ``InputError``."""
    request = load_csr(data)
    info = request["certification_request_info"]
    try:
        public_key = PublicKey.from_der(info["subject_pk_info"].dump())
    except InputError as exc:
        raise InputError(f"unsupported key in certificate request: {exc}") from exc
    tbs = info.dump()
    signature = request["signature"].native
    alg = request["signature_algorithm"]
    alg_name = alg["algorithm"].native
    used_id: bytes | None = None
    try:
        if alg_name == "rsassa_pss":
            params = alg["parameters"]
            if not isinstance(params, algos.RSASSAPSSParams):
                raise InputError("RSASSA-PSS request without parameters")
            _verify_pss(public_key, params, tbs, signature)
        else:
            scheme = scheme_from_algorithm(alg)
            if not public_key.supports(scheme):
                raise InputError("request signature algorithm does not fit its key")
            if scheme is SignatureScheme.SM2_SM3:
                used_id = _verify_sm2(public_key, tbs, signature, sm2_id)
            else:
                verify(public_key, scheme, tbs, signature)
    except VerificationError as exc:
        raise InputError(
            "certificate request self-signature does not verify",
            public="certificate request self-signature does not verify",
        ) from exc
    except InputError as exc:
        raise InputError(f"certificate request rejected: {exc.public_message()}") from exc
    subject = info["subject"]
    if not isinstance(subject, x509.Name):
        raise InputError("malformed certificate request subject")
    return CertificateRequest(
        der=request.dump(),
        subject=subject,
        public_key=public_key,
        signature_algorithm=str(alg_name),
        sm2_id=used_id,
    )


def _verify_sm2(public_key: PublicKey, tbs: bytes, signature: bytes, sm2_id: bytes | None) -> bytes:
    candidates = [sm2_id] if sm2_id is not None else [DEFAULT_SM2_ID, OPENSSL_DEFAULT_SM2_ID]
    last: MedsignError | None = None
    for candidate in candidates:
        try:
            verify(public_key, SignatureScheme.SM2_SM3, tbs, signature, user_id=candidate)
        except VerificationError as exc:
            last = exc
            continue
        return candidate
    assert last is not None
    raise last


def build_csr(keystore: KeyStore, key: KeyRef, subject: x509.Name, *, actor: str) -> bytes:
    """A PKCS#10 request for ``key``, signed through the key store (SM2: default GM/T ID)."""
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": subject,
            "subject_pk_info": keys.PublicKeyInfo.load(key.public_key_der),
            "attributes": asn1_csr.CRIAttributes([]),
        }
    )
    alg, signature = sign_structure(keystore, key, info.dump(), actor=actor, purpose="csr-sign")
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": alg,
            "signature": core.OctetBitString(signature),
        }
    )
    return bytes(request.dump())
