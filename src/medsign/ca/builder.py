"""Build, sign and check X.509 v3 certificates.

The TBSCertificate is assembled with asn1crypto and signed through the key store
(``medsign.ca.signing``), so one code path serves every algorithm and every key store. The
result is verified against the issuer key before it is returned: a certificate that does not
verify is never handed out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from asn1crypto import core, keys, x509

from medsign.ca.profiles import Profile
from medsign.ca.signing import default_scheme, sign_structure
from medsign.crypto import DEFAULT_SM2_ID, PublicKey, SignatureScheme, verify
from medsign.crypto.x509alg import scheme_from_algorithm, signature_algorithm
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
    extensions.append(_extension("key_identifier", key_identifier(subject_key_der)))
    extensions.append(
        _extension(
            "authority_key_identifier",
            {"key_identifier": key_identifier(issuer.key.public_key_der)},
        )
    )
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
    """Sign a v3 certificate for ``public_key`` under ``profile``; returns verified DER."""
    if public_key.algorithm not in profile.key_algorithms:
        raise InputError(f"profile {profile.name} does not accept {public_key.algorithm} keys")
    not_before = not_before.astimezone(dt.UTC).replace(microsecond=0)
    not_after = not_before + profile.lifetime
    if issuer.not_after is not None:
        # A certificate outliving its issuer would fail path validation at the end anyway.
        not_after = min(not_after, issuer.not_after)
    if not_after <= not_before:
        raise CertificateError("the issuing CA expires before the certificate could start")
    scheme = default_scheme(issuer.key)
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": signature_algorithm(scheme),
            "issuer": issuer.name,
            "validity": {"not_before": asn1_time(not_before), "not_after": asn1_time(not_after)},
            "subject": subject,
            "subject_public_key_info": keys.PublicKeyInfo.load(public_key.der),
            "extensions": build_extensions(
                profile, subject_key_der=public_key.der, issuer=issuer, urls=urls
            ),
        }
    )
    alg, signature = sign_structure(
        keystore, issuer.key, tbs.dump(), actor=actor, purpose="certificate-issue", scheme=scheme
    )
    certificate = x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": alg, "signature_value": signature}
    )
    der = bytes(certificate.dump())
    verify_certificate_signature(der, issuer.key.public_key_der)
    return der


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
