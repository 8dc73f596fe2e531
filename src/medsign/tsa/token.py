"""Reading and verifying RFC 3161 TimeStampTokens (ours and other TSAs').

``parse_token`` only reads; ``verify_token`` checks, and raises ``VerificationError`` on the
first thing that does not hold:

* the token is a SignedData over a TSTInfo with one SignerInfo;
* the message imprint is ``imprint`` under ``hash_name``;
* the signed attributes: content type id-ct-TSTInfo, message digest of the TSTInfo, and an
  ESS signing-certificate (v1 or v2, RFC 2634/RFC 5816) naming the signer certificate;
* the signature, checked with ``medsign.crypto.verify`` (SM2 with the default ID);
* the TSA certificate: valid at genTime, with the one critical id-kp-timeStamping EKU
  (RFC 3161 §2.3), and a chain of verified signatures up to a certificate in ``trust``,
  every issuer valid at genTime and a CA.

Revocation is not checked here: that needs the CRL/OCSP state at genTime, which is
``medsign.verify``'s business.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import cms, core, tsp, x509

from medsign.crypto import PublicKey, SignatureScheme, verify
from medsign.crypto import oids as _oids
from medsign.crypto.cms import DIGEST_SIZES
from medsign.crypto.x509alg import scheme_from_algorithm
from medsign.errors import InputError, VerificationError

_oids.register_asn1crypto_oids()

__all__ = ["TST_INFO_OID", "TokenInfo", "parse_token", "verify_token"]

TST_INFO_OID = "1.2.840.113549.1.9.16.1.4"
_MAX_CHAIN = 6


@dataclass(frozen=True)
class TokenInfo:
    gen_time: dt.datetime
    serial: int
    imprint: bytes
    hash_name: str
    policy: str
    nonce: int | None
    tsa_cert_der: bytes | None  # the signer certificate, when the token carries it
    accuracy_ms: int | None = None


@dataclass(frozen=True)
class _Token:
    info: TokenInfo
    signed: cms.SignedData
    signer_info: cms.SignerInfo
    econtent: bytes
    certificates: tuple[bytes, ...]


def _load(der: bytes) -> _Token:
    try:
        content_info = cms.ContentInfo.load(bytes(der), strict=True)
        if content_info["content_type"].native != "signed_data":
            raise VerificationError("a timestamp token is a SignedData")
        signed = content_info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != TST_INFO_OID:
            raise VerificationError("the token does not carry a TSTInfo")
        econtent_value = encap["content"]
        if isinstance(econtent_value, core.Void):
            raise VerificationError("the token has no TSTInfo content")
        econtent = bytes(econtent_value.contents)
        tst = tsp.TSTInfo.load(econtent, strict=True)
        signers = list(signed["signer_infos"])
        if len(signers) != 1:
            raise VerificationError("a timestamp token has exactly one SignerInfo")
        certificates = tuple(
            bytes(choice.chosen.dump())
            for choice in signed["certificates"]
            if choice.name == "certificate"
        )
        imprint = tst["message_imprint"]
        hash_name = imprint["hash_algorithm"]["algorithm"].native
        nonce = tst["nonce"].native if not isinstance(tst["nonce"], core.Void) else None
        accuracy_ms = None
        if not isinstance(tst["accuracy"], core.Void):
            acc = tst["accuracy"]
            accuracy_ms = (
                (acc["seconds"].native or 0) * 1000
                + (acc["millis"].native or 0)
                + ((acc["micros"].native or 0) + 999) // 1000
            )
        gen_time = tst["gen_time"].native
        signer_der = _signer_certificate(certificates, signers[0]["sid"])
        info = TokenInfo(
            gen_time=gen_time,
            serial=int(tst["serial_number"].native),
            imprint=bytes(imprint["hashed_message"].native),
            hash_name=str(hash_name),
            policy=tst["policy"].dotted,
            nonce=nonce,
            tsa_cert_der=signer_der,
            accuracy_ms=accuracy_ms,
        )
    except VerificationError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise VerificationError(f"malformed timestamp token: {exc}") from exc
    return _Token(info, signed, signers[0], econtent, certificates)


def _matches(certificate_der: bytes, sid: cms.SignerIdentifier) -> bool:
    certificate = x509.Certificate.load(certificate_der)
    if sid.name == "issuer_and_serial_number":
        wanted = sid.chosen
        return bool(
            certificate.serial_number == wanted["serial_number"].native
            and certificate.issuer == wanted["issuer"]
        )
    return bool(certificate.key_identifier == sid.chosen.native)


def _signer_certificate(certificates: Iterable[bytes], sid: cms.SignerIdentifier) -> bytes | None:
    for der in certificates:
        if _matches(der, sid):
            return der
    return None


def parse_token(der: bytes) -> TokenInfo:
    """What a TimeStampToken states, without checking anything."""
    return _load(der).info


def _signer_scheme(signer_info: cms.SignerInfo) -> SignatureScheme:
    alg = signer_info["signature_algorithm"]
    oid = alg["algorithm"].dotted
    if oid in (_oids.SM2_SIGN, _oids.SM2_WITH_SM3):
        return SignatureScheme.SM2_SM3
    if oid == "1.2.840.113549.1.1.1":
        return SignatureScheme.RSA_PKCS1_SHA256
    try:
        return scheme_from_algorithm(alg)
    except InputError as exc:
        raise VerificationError(f"unsupported token signature algorithm: {exc}") from exc


def _check_signer_certificate(certificate: x509.Certificate, at: dt.datetime) -> None:
    validity = certificate["tbs_certificate"]["validity"]
    if not validity["not_before"].native <= at <= validity["not_after"].native:
        raise VerificationError("the TSA certificate was not valid at genTime")
    eku = None
    for extension in certificate["tbs_certificate"]["extensions"]:
        if extension["extn_id"].native == "extended_key_usage":
            eku = extension
    if eku is None or not eku["critical"].native:
        raise VerificationError("the TSA certificate lacks a critical extended key usage")
    if list(eku["extn_value"].parsed.native) != ["time_stamping"]:
        raise VerificationError("the TSA certificate's EKU must be id-kp-timeStamping only")


def _verify_issued(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if child.issuer != issuer.subject:
        return False
    try:
        scheme = scheme_from_algorithm(child["signature_algorithm"])
        public_key = PublicKey.from_der(issuer.public_key.dump())
        verify(
            public_key,
            scheme,
            child["tbs_certificate"].dump(),
            bytes(child["signature_value"].native),
        )
    except (InputError, VerificationError):
        return False
    return True


def _check_chain(
    signer: x509.Certificate, trust: list[bytes], pool: list[bytes], at: dt.datetime
) -> None:
    trusted = set(trust)
    current = signer
    for _ in range(_MAX_CHAIN):
        if current.dump() in trusted:
            return
        candidates = [x509.Certificate.load(der) for der in (*trust, *pool)]
        for candidate in candidates:
            if candidate.dump() == current.dump() or not _verify_issued(current, candidate):
                continue
            validity = candidate["tbs_certificate"]["validity"]
            if not validity["not_before"].native <= at <= validity["not_after"].native:
                continue
            if not candidate.ca:
                continue
            if candidate.dump() in trusted:
                return
            current = candidate
            break
        else:
            raise VerificationError("the TSA certificate does not chain to a trusted certificate")
    raise VerificationError("the TSA certificate chain is too long")


def _check_ess(signer_info: cms.SignerInfo, signer_der: bytes) -> None:
    for attr in signer_info["signed_attrs"]:
        name = attr["type"].native
        if name not in ("signing_certificate", "signing_certificate_v2"):
            continue
        first = attr["values"][0]["certs"][0]
        hash_name = "sha1" if name == "signing_certificate" else None
        if hash_name is None:
            hash_name = first["hash_algorithm"]["algorithm"].native
        if first["cert_hash"].native != hashlib.new(hash_name, signer_der).digest():
            raise VerificationError("the ESS signing certificate names another certificate")
        issuer_serial = first["issuer_serial"]
        if not isinstance(issuer_serial, core.Void):
            certificate = x509.Certificate.load(signer_der)
            if issuer_serial["serial_number"].native != certificate.serial_number:
                raise VerificationError("the ESS issuerSerial names another certificate")
            names = [n.chosen for n in issuer_serial["issuer"] if n.name == "directory_name"]
            if not any(name == certificate.issuer for name in names):
                raise VerificationError("the ESS issuerSerial names another issuer")
        return
    raise VerificationError("the token has no ESS signing-certificate attribute")


def verify_token(
    der: bytes,
    *,
    imprint: bytes,
    hash_name: str,
    trust: Iterable[bytes],
    certificates: Iterable[bytes] = (),
) -> TokenInfo:
    """Verify a TimeStampToken over ``imprint``; returns what it states.

    ``trust``: DER certificates accepted as anchors (a root, or the TSA certificate itself);
    ``certificates``: further untrusted certificates for path building (intermediates, or the
    TSA certificate when the token was requested without certReq).
    """
    token = _load(der)
    info = token.info
    if info.hash_name != hash_name or info.imprint != bytes(imprint):
        raise VerificationError("the token is over another message imprint")
    pool = [*token.certificates, *certificates]
    signer_der = info.tsa_cert_der or _signer_certificate(pool, token.signer_info["sid"])
    if signer_der is None:
        raise VerificationError("the TSA certificate is neither in the token nor supplied")
    try:
        signer_info = token.signer_info
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
        if digest_name not in DIGEST_SIZES:
            raise VerificationError(f"unsupported token digest algorithm {digest_name}")
        attrs = signer_info["signed_attrs"]
        if isinstance(attrs, core.Void):
            raise VerificationError("the token has no signed attributes")
        content_types = [a for a in attrs if a["type"].native == "content_type"]
        digests = [a for a in attrs if a["type"].native == "message_digest"]
        if len(content_types) != 1 or content_types[0]["values"][0].dotted != TST_INFO_OID:
            raise VerificationError("the token's content-type attribute is not id-ct-TSTInfo")
        expected = hashlib.new(digest_name, token.econtent).digest()
        if len(digests) != 1 or digests[0]["values"][0].native != expected:
            raise VerificationError("the token's message digest does not match its TSTInfo")
        scheme = _signer_scheme(signer_info)
        if scheme.hash_name != digest_name:
            raise VerificationError(f"{scheme} does not sign with {digest_name}")
        certificate = x509.Certificate.load(signer_der)
        public_key = PublicKey.from_der(certificate.public_key.dump())
        verify(
            public_key,
            scheme,
            b"\x31" + bytes(attrs.dump())[1:],
            bytes(signer_info["signature"].native),
        )
        _check_ess(signer_info, signer_der)
        _check_signer_certificate(certificate, info.gen_time)
        _check_chain(certificate, list(trust), pool, info.gen_time)
    except VerificationError:
        raise
    except InputError as exc:
        raise VerificationError(f"timestamp token rejected: {exc}") from exc
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise VerificationError(f"malformed timestamp token: {exc}") from exc
    return TokenInfo(
        gen_time=info.gen_time,
        serial=info.serial,
        imprint=info.imprint,
        hash_name=info.hash_name,
        policy=info.policy,
        nonce=info.nonce,
        tsa_cert_der=signer_der,
        accuracy_ms=info.accuracy_ms,
    )
