"""Reading CMS SignedData (RFC 5652) for verification: one SignerInfo at a time.

Used both for data signatures and for the SignedData inside RFC 3161 timestamp tokens. The
SM2 variant follows GM/T 0010: digest algorithm SM3, the message-digest attribute is plain
SM3 of the content, and the signature over the signed attributes covers SM3(Z_A || attrs)
with the standard ID, as ``crypto.message_digest`` computes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, core, x509
from asn1crypto import crl as asn1_crl

from medsign.crypto import oids
from medsign.crypto.public import PublicKey, verify, verify_digest
from medsign.crypto.types import DEFAULT_SM2_ID, SignatureScheme
from medsign.crypto.x509alg import scheme_from_algorithm
from medsign.errors import InputError, MedsignError
from medsign.verify.report import CheckFailure, SubIndication, failed, indeterminate

oids.register_asn1crypto_oids()

# GM/T 0010 / GM/T 0006 name SM2 signatures in a SignerInfo with these as well as sm2_sm3.
_SM2_SIGNATURE_OIDS = frozenset({"1.2.156.10197.1.301.1", "1.2.156.10197.1.301"})
SUPPORTED_DIGESTS = frozenset({"sha256", "sm3"})
# RFC 5652 id-signedData and GB/T 35275 (GM/T 0010) signedData.
SIGNED_DATA_OIDS = frozenset({"1.2.840.113549.1.7.2", "1.2.156.10197.6.1.4.2.2"})


def digest(name: str, data: bytes) -> bytes:
    if name not in SUPPORTED_DIGESTS | {"sha1", "sha384", "sha512"}:
        raise indeterminate(
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE, f"unsupported digest algorithm {name}"
        )
    return hashlib.new(name, data).digest()


@dataclass(frozen=True)
class SignedDataView:
    """The parts of a SignedData the verifier reads, parsed once."""

    signed_data: cms.SignedData
    signer: cms.SignerInfo
    signer_count: int
    content_type: str
    content: bytes | None  # None when detached
    certificates: tuple[x509.Certificate, ...]
    crls: tuple[asn1_crl.CertificateList, ...]


def parse_signed_data(der: bytes) -> SignedDataView:
    """Parse a ContentInfo(SignedData); raises INDETERMINATE/FORMAT_FAILURE on anything else."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].dotted not in SIGNED_DATA_OIDS:
            raise indeterminate(SubIndication.FORMAT_FAILURE, "not a CMS SignedData structure")
        signed = info["content"]
        if not isinstance(signed, cms.SignedData):
            # GB/T 35275 signedData: the same structure under another content type.
            signed = cms.SignedData.load(signed.dump(), strict=True)
        signers = list(signed["signer_infos"])
        if not signers:
            raise indeterminate(SubIndication.FORMAT_FAILURE, "the SignedData has no signer")
        encap = signed["encap_content_info"]
        raw_content = encap["content"]
        content: bytes | None = None
        if isinstance(raw_content, core.OctetString | core.ParsableOctetString):
            # The OCTET STRING's value is what was digested, whatever the content type
            # (for TSTInfo it is the DER encoding of the TSTInfo).
            content = bytes(raw_content)
        certificates = tuple(
            c.chosen for c in (signed["certificates"] or []) if c.name == "certificate"
        )
        crls = tuple(r.chosen for r in (signed["crls"] or []) if r.name == "crl")
        for cert in certificates:
            _ = cert.subject.dump(), cert.serial_number
        view = SignedDataView(
            signed_data=signed,
            signer=signers[0],
            signer_count=len(signers),
            content_type=str(encap["content_type"].native),
            content=content,
            certificates=certificates,
            crls=crls,
        )
        _ = view.signer["sid"].chosen, view.signer["signature"].native
        _ = view.signer["signed_attrs"].native
        return view
    except MedsignError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise indeterminate(
            SubIndication.FORMAT_FAILURE, "not a well-formed CMS SignedData structure"
        ) from exc


def find_certificate(
    signer: cms.SignerInfo, candidates: tuple[x509.Certificate, ...]
) -> x509.Certificate | None:
    sid = signer["sid"]
    for cert in candidates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                cert.serial_number == wanted["serial_number"].native
                and cert.issuer == wanted["issuer"]
            ):
                return cert
        elif sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native:
            return cert
    return None


def signer_scheme(signer: cms.SignerInfo) -> SignatureScheme:
    """The scheme a SignerInfo's digest and signature algorithms name together."""
    digest_name = signer["digest_algorithm"]["algorithm"].native
    algorithm = signer["signature_algorithm"]
    name = algorithm["algorithm"].native
    dotted = algorithm["algorithm"].dotted
    scheme: SignatureScheme | None
    if name in ("rsa", "rsassa_pkcs1v15"):
        scheme = SignatureScheme.RSA_PKCS1_SHA256
    elif name == "ecdsa":
        scheme = SignatureScheme.ECDSA_SHA256
    elif dotted in _SM2_SIGNATURE_OIDS:
        scheme = SignatureScheme.SM2_SM3
    else:
        try:
            scheme = scheme_from_algorithm(algorithm)
        except InputError as exc:
            raise indeterminate(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, str(exc)) from exc
    if digest_name != scheme.hash_name:
        raise indeterminate(
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
            f"digest algorithm {digest_name} is not supported with {scheme}",
        )
    return scheme


def signed_attribute(signer: cms.SignerInfo, name: str) -> Any:
    """The single value of a signed attribute, or None if absent (several values: error)."""
    attrs = signer["signed_attrs"]
    if isinstance(attrs, core.Void):
        return None
    found = [a for a in attrs if a["type"].native == name]
    if not found:
        return None
    if len(found) > 1 or len(found[0]["values"]) != 1:
        raise indeterminate(
            SubIndication.FORMAT_FAILURE, f"the {name} attribute must occur once with one value"
        )
    return found[0]["values"][0]


def unsigned_attributes(signer: cms.SignerInfo, name: str) -> list[Any]:
    # Never ``attrs.native``: it decodes every timestamp token (certificates and all) into
    # Python objects, about half a second per signature.
    attrs = signer["unsigned_attrs"]
    if isinstance(attrs, core.Void):
        return []
    return [value for a in attrs if a["type"].native == name for value in a["values"]]


def has_signed_attributes(signer: cms.SignerInfo) -> bool:
    return not isinstance(signer["signed_attrs"], core.Void)


def signed_attributes_der(signer: cms.SignerInfo) -> bytes:
    """RFC 5652 §5.4: the signature covers the attributes re-tagged as a SET OF."""
    encoded: bytes = signer["signed_attrs"].dump()
    return b"\x31" + encoded[1:]


def verify_message_digest(signer: cms.SignerInfo, content_type: str, content_digest: bytes) -> None:
    """content-type and message-digest attributes against the content's digest."""
    declared_type = signed_attribute(signer, "content_type")
    if declared_type is None or declared_type.native != content_type:
        raise indeterminate(
            SubIndication.FORMAT_FAILURE, "the content-type attribute is missing or different"
        )
    declared = signed_attribute(signer, "message_digest")
    if declared is None:
        raise indeterminate(SubIndication.FORMAT_FAILURE, "the message-digest attribute is missing")
    if declared.native != content_digest:
        raise failed(SubIndication.HASH_FAILURE, "the data does not match the signed digest")


def verify_signer_signature(
    signer: cms.SignerInfo,
    certificate: x509.Certificate,
    scheme: SignatureScheme,
    *,
    content: bytes | None = None,
    content_digest: bytes | None = None,
) -> None:
    """The SignerInfo's signature value under the certificate's key; raises ``CheckFailure``.

    With signed attributes, the attributes are what was signed. Without them the content is,
    and a digest is enough except for SM2, whose signed digest mixes Z_A into the message.
    """
    try:
        key = PublicKey.from_der(certificate.public_key.dump())
    except InputError as exc:
        raise indeterminate(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, str(exc)) from exc
    if not key.supports(scheme):
        raise failed(
            SubIndication.SIG_CRYPTO_FAILURE,
            f"signature algorithm {scheme} does not fit the certificate's {key.algorithm} key",
        )
    signature = signer["signature"].native
    try:
        if has_signed_attributes(signer):
            verify(key, scheme, signed_attributes_der(signer), signature, user_id=DEFAULT_SM2_ID)
        elif content is not None:
            verify(key, scheme, content, signature, user_id=DEFAULT_SM2_ID)
        elif content_digest is not None and scheme is not SignatureScheme.SM2_SM3:
            verify_digest(key, scheme, content_digest, signature)
        else:
            raise indeterminate(
                SubIndication.SIGNED_DATA_NOT_FOUND,
                "this SM2 signature covers the content directly: the data itself is needed",
            )
    except CheckFailure:
        raise
    except MedsignError as exc:
        raise failed(
            SubIndication.SIG_CRYPTO_FAILURE, "the signature value does not verify"
        ) from exc


def verify_signing_certificate_reference(
    signer: cms.SignerInfo, certificate: x509.Certificate
) -> str:
    """ESS signing-certificate(-v2): the first ESSCertID must be the signer's certificate.

    Returns a description; raises INDETERMINATE/NO_SIGNING_CERTIFICATE_FOUND on a mismatch.
    """
    for name, default_hash in (
        ("signing_certificate_v2", "sha256"),
        ("signing_certificate", "sha1"),
    ):
        value = signed_attribute(signer, name)
        if value is None:
            continue
        certs = value["certs"]
        if len(certs) == 0:
            raise indeterminate(SubIndication.FORMAT_FAILURE, f"empty {name} attribute")
        first = certs[0]
        hash_name = default_hash
        if name == "signing_certificate_v2":
            hash_name = first["hash_algorithm"]["algorithm"].native
        if digest(hash_name, certificate.dump()) != first["cert_hash"].native:
            raise indeterminate(
                SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                f"the {name} attribute names a different certificate",
            )
        label = "signing-certificate-v2" if name.endswith("v2") else "signing-certificate"
        return f"the ESS {label} attribute names this certificate ({hash_name})"
    return "no ESS signing-certificate attribute; the certificate was found by its identifier"


__all__ = [
    "SUPPORTED_DIGESTS",
    "SignedDataView",
    "digest",
    "find_certificate",
    "has_signed_attributes",
    "parse_signed_data",
    "signed_attribute",
    "signed_attributes_der",
    "signer_scheme",
    "unsigned_attributes",
    "verify_message_digest",
    "verify_signer_signature",
    "verify_signing_certificate_reference",
]
