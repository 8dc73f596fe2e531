"""Build, sign and check X.509 v3 certificates.

The TBSCertificate is signed through the key store (``medsign.ca.signing``), so one code path
serves every algorithm and every key store. The result is verified against the issuer key
before it is returned: a certificate that does not verify is never handed out.

``IssuerContext`` is the fast path for an issuer that signs many certificates: everything that
is the same in each of them (issuer name, signature AlgorithmIdentifier, authority key
identifier, the extensions of each profile except the subject key identifier, the parsed
issuer public key for the final check) is encoded once and spliced into the DER of each
TBSCertificate. The extensions are still produced by ``build_extensions`` (asn1crypto); the
splicing is checked byte for byte against a TBSCertificate built wholly by asn1crypto in
tests/ca/test_builder.py.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from asn1crypto import core, keys, x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from medsign.ca.profiles import Profile
from medsign.ca.signing import StructureSigner, der_tlv
from medsign.crypto import DEFAULT_SM2_ID, PublicKey, SignatureScheme, verify, verify_digest
from medsign.crypto.x509alg import scheme_from_algorithm
from medsign.errors import CertificateError, InputError, VerificationError
from medsign.keys.base import KeyRef, KeyStore

# RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
_UTC_TIME_LIMIT = dt.datetime(2050, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PKIURLs:
    """Where relying parties find the issuer's certificate, CRL and OCSP responder."""

    base_url: str

    @property
    def ocsp(self) -> str:
        return f"{self.base_url.rstrip('/')}/pki/ocsp"

    def ca_certificate(self, ca_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/pki/ca/{ca_id}.crt"

    def crl(self, ca_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/pki/crl/{ca_id}.crl"


@dataclass(frozen=True)
class Issuer:
    """The signing side of an issuance. ``ca_id`` is None only for a self-signed root."""

    name: x509.Name
    key: KeyRef
    ca_id: str | None
    not_after: dt.datetime | None = None
    # Certificates a root issues are CA certificates: they get CRL DP and caIssuers but no
    # OCSP pointer, since OCSP responders serve the issuing CAs only.
    ocsp: bool = True


def asn1_time(value: dt.datetime) -> x509.Time:
    value = value.astimezone(dt.UTC).replace(microsecond=0)
    if value < _UTC_TIME_LIMIT:
        return x509.Time(name="utc_time", value=value)
    return x509.Time(name="general_time", value=value)


def key_identifier(public_key_der: bytes) -> bytes:
    """RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value."""
    return bytes(keys.PublicKeyInfo.load(public_key_der).sha1)


def _uri(url: str) -> x509.GeneralName:
    return x509.GeneralName(name="uniform_resource_identifier", value=url)


def _extension(name: str, value: Any, critical: bool = False) -> x509.Extension:
    return x509.Extension({"extn_id": name, "critical": critical, "extn_value": value})


def build_extensions(
    profile: Profile,
    *,
    subject_key_der: bytes,
    issuer: Issuer,
    urls: PKIURLs,
) -> list[x509.Extension]:
    """Every extension of a certificate under ``profile``, in the order medsign encodes them."""
    return [
        *_extensions_before_ski(profile),
        _extension("key_identifier", key_identifier(subject_key_der)),
        *_extensions_after_ski(profile, issuer, urls),
    ]


def _extensions_before_ski(profile: Profile) -> list[x509.Extension]:
    extensions = [
        _extension(
            "basic_constraints",
            {"ca": True, "path_len_constraint": profile.path_length}
            if profile.is_ca
            else {"ca": False},
            critical=True,
        ),
        _extension("key_usage", x509.KeyUsage(set(profile.key_usage)), critical=True),
    ]
    if profile.extended_key_usage:
        extensions.append(
            _extension(
                "extended_key_usage",
                list(profile.extended_key_usage),
                critical=profile.extended_key_usage_critical,
            )
        )
    return extensions


def _extensions_after_ski(profile: Profile, issuer: Issuer, urls: PKIURLs) -> list[x509.Extension]:
    extensions = [
        _extension(
            "authority_key_identifier",
            {"key_identifier": key_identifier(issuer.key.public_key_der)},
        )
    ]
    if profile.policies:
        extensions.append(
            _extension(
                "certificate_policies",
                [{"policy_identifier": oid} for oid in profile.policies],
            )
        )
    if profile.revocation_pointers and issuer.ca_id is not None:
        access = []
        # A responder whose certificate carries ocsp-nocheck is never itself checked by OCSP.
        if issuer.ocsp and not profile.ocsp_no_check:
            access.append({"access_method": "ocsp", "access_location": _uri(urls.ocsp)})
        access.append(
            {
                "access_method": "ca_issuers",
                "access_location": _uri(urls.ca_certificate(issuer.ca_id)),
            }
        )
        extensions.append(_extension("authority_information_access", access))
        extensions.append(
            _extension(
                "crl_distribution_points",
                [
                    {
                        "distribution_point": x509.DistributionPointName(
                            name="full_name", value=[_uri(urls.crl(issuer.ca_id))]
                        )
                    }
                ],
            )
        )
    if profile.ocsp_no_check:
        extensions.append(_extension("ocsp_no_check", core.Null()))
    return extensions


@dataclass(frozen=True)
class BuiltCertificate:
    """A signed and verified certificate, with the fields a certificate row stores."""

    der: bytes
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime


# DER pieces that never change.
_VERSION_V3 = b"\xa0\x03\x02\x01\x02"  # [0] EXPLICIT INTEGER 2
_OID_SUBJECT_KEY_IDENTIFIER = b"\x06\x03\x55\x1d\x0e"  # 2.5.29.14


def _der_integer(value: int) -> bytes:
    if value < 0:
        raise InputError("serial numbers must be positive")
    # bit_length + 8 leaves room for the 0x00 octet that keeps a high first bit positive.
    return der_tlv(0x02, value.to_bytes((value.bit_length() + 8) // 8, "big"))


def _der_time(value: dt.datetime) -> bytes:
    """The RFC 5280 §4.1.2.5 form of ``asn1_time``: UTCTime before 2050, then GeneralizedTime."""
    value = value.astimezone(dt.UTC)
    if value < _UTC_TIME_LIMIT:
        return der_tlv(0x17, value.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return der_tlv(0x18, value.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def _subject_key_identifier_der(subject_key_der: bytes) -> bytes:
    extn_value = der_tlv(0x04, key_identifier(subject_key_der))
    # critical is FALSE, the DEFAULT, so DER leaves it out.
    return der_tlv(0x30, _OID_SUBJECT_KEY_IDENTIFIER + der_tlv(0x04, extn_value))


class _SignatureCheck:
    """Verifies the issuer's signatures with a public key parsed once."""

    def __init__(self, signer: StructureSigner) -> None:
        self._signer = signer
        self._key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None = None
        if signer.scheme in (SignatureScheme.ECDSA_SHA256, SignatureScheme.RSA_PKCS1_SHA256):
            try:
                loaded = serialization.load_der_public_key(signer.public_key.der)
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise CertificateError("the issuer public key cannot be loaded") from exc
            if not isinstance(loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                raise CertificateError("unsupported issuer public key")
            self._key = loaded

    def check(self, tbs_der: bytes, signature: bytes) -> None:
        """Raise ``CertificateError`` unless ``signature`` over ``tbs_der`` verifies."""
        signer = self._signer
        try:
            if isinstance(self._key, ec.EllipticCurvePublicKey):
                prehashed = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
                self._key.verify(signature, signer.digest(tbs_der), prehashed)
            elif isinstance(self._key, rsa.RSAPublicKey):
                self._key.verify(
                    signature,
                    signer.digest(tbs_der),
                    padding.PKCS1v15(),
                    utils.Prehashed(hashes.SHA256()),
                )
            elif signer.scheme is SignatureScheme.SM2_SM3:
                verify_digest(signer.public_key, signer.scheme, signer.digest(tbs_der), signature)
            else:
                verify(signer.public_key, signer.scheme, tbs_der, signature)
        except (InvalidSignature, VerificationError) as exc:
            raise CertificateError("certificate signature does not verify") from exc


@dataclass(frozen=True)
class _Template:
    """The DER of a profile's extensions before and after the subject key identifier."""

    before_ski: bytes
    after_ski: bytes


class IssuerContext:
    """One issuer's certificate factory: constant DER encoded once, the issuer key parsed once.

    Safe to share between threads. It holds no private key and caches nothing that could
    change: the issuer's name, key and validity are fixed for the issuer's certificate, and
    every signature still goes through the key store (which checks the key is active).
    """

    def __init__(self, keystore: KeyStore, issuer: Issuer, urls: PKIURLs) -> None:
        self.issuer = issuer
        self.urls = urls
        self.signer = StructureSigner(keystore, issuer.key)
        self.name_der = bytes(issuer.name.dump())
        self._check = _SignatureCheck(self.signer)
        self._templates: dict[Profile, _Template] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<IssuerContext {self.issuer.ca_id} {self.signer.scheme}>"

    def _template(self, profile: Profile) -> _Template:
        template = self._templates.get(profile)
        if template is None:
            before = b"".join(bytes(e.dump()) for e in _extensions_before_ski(profile))
            after = b"".join(
                bytes(e.dump()) for e in _extensions_after_ski(profile, self.issuer, self.urls)
            )
            template = _Template(before_ski=before, after_ski=after)
            with self._lock:
                self._templates[profile] = template
        return template

    def tbs_der(
        self,
        *,
        subject_der: bytes,
        public_key: PublicKey,
        profile: Profile,
        serial: int,
        not_before: dt.datetime,
        not_after: dt.datetime,
    ) -> bytes:
        """DER TBSCertificate (RFC 5280 §4.1), fields in the order of the ASN.1 module."""
        template = self._template(profile)
        extensions = (
            template.before_ski + _subject_key_identifier_der(public_key.der) + template.after_ski
        )
        return der_tlv(
            0x30,
            _VERSION_V3
            + _der_integer(serial)
            + self.signer.algorithm_der
            + self.name_der
            + der_tlv(0x30, _der_time(not_before) + _der_time(not_after))
            + subject_der
            + public_key.der
            + der_tlv(0xA3, der_tlv(0x30, extensions)),
        )

    def build(
        self,
        *,
        subject: x509.Name,
        public_key: PublicKey,
        profile: Profile,
        serial: int,
        not_before: dt.datetime,
        actor: str,
    ) -> BuiltCertificate:
        """Sign a v3 certificate for ``public_key`` under ``profile``; the result verified."""
        if public_key.algorithm not in profile.key_algorithms:
            raise InputError(f"profile {profile.name} does not accept {public_key.algorithm} keys")
        if serial <= 0:
            raise InputError("serial numbers must be positive")
        not_before = not_before.astimezone(dt.UTC).replace(microsecond=0)
        not_after = not_before + profile.lifetime
        if self.issuer.not_after is not None:
            # A certificate outliving its issuer would fail path validation at the end anyway.
            not_after = min(not_after, self.issuer.not_after.astimezone(dt.UTC))
        if not_after <= not_before:
            raise CertificateError("the issuing CA expires before the certificate could start")
        tbs = self.tbs_der(
            subject_der=bytes(subject.dump()),
            public_key=public_key,
            profile=profile,
            serial=serial,
            not_before=not_before,
            not_after=not_after,
        )
        signature = self.signer.sign(tbs, actor=actor, purpose="certificate-issue")
        der = der_tlv(0x30, tbs + self.signer.algorithm_der + der_tlv(0x03, b"\x00" + signature))
        self.check(der, tbs, signature)
        return BuiltCertificate(der=der, serial=serial, not_before=not_before, not_after=not_after)

    def check(self, der: bytes, tbs_der: bytes, signature: bytes) -> None:
        """Never hand out a certificate that does not verify or does not parse back."""
        self._check.check(tbs_der, signature)
        try:
            loaded = x509.Certificate.load(der, strict=True)
            parsed_tbs = bytes(loaded["tbs_certificate"].dump())
        except (ValueError, TypeError, KeyError) as exc:
            raise CertificateError("the built certificate does not parse") from exc
        if parsed_tbs != tbs_der:
            raise CertificateError("the built certificate does not parse back to what was signed")


def build_certificate(
    keystore: KeyStore,
    *,
    issuer: Issuer,
    subject: x509.Name,
    public_key: PublicKey,
    profile: Profile,
    serial: int,
    not_before: dt.datetime,
    urls: PKIURLs,
    actor: str,
) -> bytes:
    """Sign a v3 certificate for ``public_key`` under ``profile``; returns verified DER.

    For one certificate; an issuer that signs many keeps an ``IssuerContext`` instead.
    """
    context = IssuerContext(keystore, issuer, urls)
    return context.build(
        subject=subject,
        public_key=public_key,
        profile=profile,
        serial=serial,
        not_before=not_before,
        actor=actor,
    ).der


def verify_certificate_signature(
    certificate_der: bytes,
    issuer_public_key_der: bytes,
    *,
    sm2_ids: tuple[bytes, ...] = (DEFAULT_SM2_ID,),
) -> None:
    """Raise ``CertificateError`` unless the certificate's signature verifies under the key.

    ``sm2_ids`` lists the SM2 signer IDs to try: medsign signs with the GM/T default, but
    certificates from OpenSSL-based CAs carry signatures made with an empty ID.
    """
    try:
        certificate = x509.Certificate.load(certificate_der)
        tbs = certificate["tbs_certificate"]
        outer = certificate["signature_algorithm"]
        if outer.dump() != tbs["signature"].dump():
            raise CertificateError("certificate signature algorithms disagree")
        scheme = scheme_from_algorithm(outer)
        key = PublicKey.from_der(issuer_public_key_der)
        ids = (sm2_ids or (DEFAULT_SM2_ID,)) if scheme is SignatureScheme.SM2_SM3 else (b"",)
        signature = certificate["signature_value"].native
        for position, user_id in enumerate(ids):
            try:
                verify(key, scheme, tbs.dump(), signature, user_id=user_id)
                return
            except VerificationError:
                if position == len(ids) - 1:
                    raise
    except CertificateError:
        raise
    except VerificationError as exc:
        raise CertificateError("certificate signature does not verify") from exc
    except InputError as exc:
        raise CertificateError(f"certificate cannot be checked: {exc.public_message()}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError("malformed certificate") from exc
