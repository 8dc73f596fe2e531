"""RFC 3161 signature timestamps: a token over the signature value proves the signing time.

A token counts only if its imprint is the hash of exactly the signature value, its SignedData
signature verifies, the signer's certificate is a time-stamping certificate (RFC 3161 §2.3:
critical EKU with id-kp-timeStamping only) that chains to a trust anchor and was valid at the
token's genTime. Anything less leaves the signing time unproven.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import tsp, x509

from medsign.ca.names import render_name
from medsign.clock import ensure_utc
from medsign.verify.chain import CertificationPath, TrustStore, first_invalid, verify_path
from medsign.verify.report import (
    CheckFailure,
    Indication,
    SubIndication,
    failed,
    indeterminate,
)
from medsign.verify.signed_data import (
    digest,
    find_certificate,
    parse_signed_data,
    signer_scheme,
    verify_message_digest,
    verify_signer_signature,
    verify_signing_certificate_reference,
)


@dataclass(frozen=True)
class VerifiedTimestamp:
    time: dt.datetime
    tsa_certificate: x509.Certificate
    path: CertificationPath
    serial_number: int
    policy: str
    hash_algorithm: str


def _check_tsa_usage(cert: x509.Certificate) -> None:
    usage = cert.extended_key_usage_value
    if usage is None or list(usage.native) != ["time_stamping"]:
        raise failed(
            SubIndication.TIMESTAMP_FAILURE,
            "the token's signer is not a time-stamping certificate (extended key usage)",
        )
    critical = {
        e["extn_id"].native: e["critical"].native for e in cert["tbs_certificate"]["extensions"]
    }
    if not critical.get("extended_key_usage"):
        raise failed(
            SubIndication.TIMESTAMP_FAILURE,
            "the time-stamping certificate's extended key usage is not critical",
        )


def _verify(
    token: bytes,
    signature_value: bytes,
    trust: TrustStore,
    extra_certificates: Sequence[x509.Certificate],
) -> VerifiedTimestamp:
    view = parse_signed_data(token)
    if view.content_type != "tst_info" or view.content is None:
        raise indeterminate(SubIndication.FORMAT_FAILURE, "the token carries no TSTInfo")
    try:
        info = tsp.TSTInfo.load(view.content, strict=True)
        imprint = info["message_imprint"]
        imprint_algorithm = str(imprint["hash_algorithm"]["algorithm"].native)
        hashed = imprint["hashed_message"].native
        gen_time = ensure_utc(info["gen_time"].native)
        serial = int(info["serial_number"].native)
        policy = str(info["policy"].dotted)
    except (ValueError, TypeError, KeyError) as exc:
        raise indeterminate(SubIndication.FORMAT_FAILURE, "malformed TSTInfo") from exc
    if digest(imprint_algorithm, signature_value) != hashed:
        raise failed(
            SubIndication.TIMESTAMP_FAILURE, "the token's imprint is not the signature value's hash"
        )
    candidates = (*view.certificates, *extra_certificates)
    certificate = find_certificate(view.signer, candidates)
    if certificate is None:
        raise indeterminate(
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND, "the TSA certificate is not available"
        )
    scheme = signer_scheme(view.signer)
    verify_message_digest(view.signer, "tst_info", digest(scheme.hash_name, view.content))
    verify_signer_signature(view.signer, certificate, scheme)
    verify_signing_certificate_reference(view.signer, certificate)
    _check_tsa_usage(certificate)
    path = verify_path(certificate, candidates, trust)
    invalid = first_invalid(path.certificates, gen_time)
    if invalid is not None:
        raise indeterminate(
            SubIndication.OUT_OF_BOUNDS_NO_POE,
            f"{render_name(invalid[0].subject)} was {invalid[1]} at the token's time",
        )
    return VerifiedTimestamp(gen_time, certificate, path, serial, policy, imprint_algorithm)


def verify_timestamp_token(
    token: bytes,
    signature_value: bytes,
    trust: TrustStore,
    extra_certificates: Sequence[x509.Certificate] = (),
) -> VerifiedTimestamp:
    """The verified token, or ``CheckFailure``: FAILED/TIMESTAMP_FAILURE when the token is
    wrong (imprint, signature, usage), INDETERMINATE when it cannot be checked here."""
    try:
        return _verify(token, signature_value, trust, extra_certificates)
    except CheckFailure as exc:
        message = f"timestamp: {exc}"
        if exc.indication is Indication.FAILED:
            raise failed(SubIndication.TIMESTAMP_FAILURE, message) from exc
        raise indeterminate(exc.sub_indication, message) from exc


__all__ = ["VerifiedTimestamp", "verify_timestamp_token"]
