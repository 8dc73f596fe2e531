"""RA mode: keys generated here, certificates issued by an external (licensed) CA.

Some hospitals must use certificates from a licensed third-party CA. medsign then acts as the
registration authority: it generates the key in its key store, hands out a PKCS#10 request,
and later imports the certificate the external CA returns, after checking that it is for that
key and that its chain verifies up to a root supplied with it. Once imported the certificate
is used exactly like an internally issued one (``CertificateAuthority.get``/``chain``, signing
through its ``key_id``).

The chain check here is structural (signatures, validity dates, CA constraints); whether that
root is trusted is the operator's decision when importing, recorded with the actor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from asn1crypto import pem, x509

from medsign.ca.authority import (
    EXTERNAL,
    CertificateRecord,
    certificate_record,
    certificate_row,
    pem_encode,
)
from medsign.ca.builder import verify_certificate_signature
from medsign.ca.csr import OPENSSL_DEFAULT_SM2_ID, build_csr, load_csr, to_der
from medsign.ca.names import build_name, parse_subject_pairs
from medsign.ca.profiles import DEFAULT_PROFILES, ProfileSet
from medsign.clock import Clock
from medsign.crypto import DEFAULT_SM2_ID, KeyAlgorithm
from medsign.db import Database
from medsign.db.tables import CertificateEventRow, ExternalCSRRow
from medsign.errors import CertificateError, InputError, NotFoundError, StateError
from medsign.ids import new_id
from medsign.keys.base import KeyStore

PENDING = "pending"
IMPORTED = "imported"

MAX_CHAIN = 8
# A certificate fetched straight from the external CA may start a little "in the future" by
# our clock; refusing it for a few seconds of skew would only make operators retry.
CLOCK_SKEW = dt.timedelta(minutes=5)
# External CAs built on OpenSSL sign SM2 with an empty ID; GM/T-conformant ones use the default.
_EXTERNAL_SM2_IDS = (DEFAULT_SM2_ID, OPENSSL_DEFAULT_SM2_ID)


def _load_certificate(data: bytes | str, what: str) -> tuple[bytes, x509.Certificate]:
    der = to_der(data, "CERTIFICATE")
    try:
        cert = x509.Certificate.load(der, strict=True)
        _ = cert.native  # parse everything now, not somewhere later
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"{what} is not a valid X.509 certificate") from exc
    return bytes(cert.dump()), cert


def _split_pem_bundle(item: bytes | str) -> list[bytes | str]:
    raw = item.encode("ascii", errors="replace") if isinstance(item, str) else item
    if not pem.detect(raw):
        return [item]
    try:
        return [bytes(der) for _label, _headers, der in pem.unarmor(raw, multiple=True)]
    except ValueError as exc:
        raise InputError("malformed PEM in the certificate chain") from exc


def _check_validity(cert: x509.Certificate, now: dt.datetime, what: str) -> None:
    validity = cert["tbs_certificate"]["validity"]
    if not validity["not_before"].native - CLOCK_SKEW <= now <= validity["not_after"].native:
        raise InputError(f"{what} is not valid at the current time")


def _check_ca(cert: x509.Certificate, below: int, what: str) -> None:
    """``below`` = how many CA certificates sit between this one and the leaf."""
    constraints = cert.basic_constraints_value
    if constraints is None or not constraints["ca"].native:
        raise InputError(f"{what} is not a CA certificate (basicConstraints)")
    path_len = constraints["path_len_constraint"].native
    if path_len is not None and below > path_len:
        raise InputError(f"{what} forbids a chain this long (pathLenConstraint)")
    usage = cert.key_usage_value
    if usage is not None and "key_cert_sign" not in usage.native:
        raise InputError(f"{what} may not sign certificates (keyUsage)")


def verify_external_chain(
    leaf: x509.Certificate, chain: Sequence[x509.Certificate], now: dt.datetime
) -> list[x509.Certificate]:
    """Order ``chain`` from the leaf's issuer up to a self-signed root and verify each link.

    Returns the ordered issuer certificates; raises ``InputError`` naming the failing link.
    """
    remaining = list(chain)
    ordered: list[x509.Certificate] = []
    current = leaf
    _check_validity(leaf, now, "the certificate")
    while True:
        if current.subject == current.issuer and current is not leaf:
            break
        issuer = next((c for c in remaining if c.subject == current.issuer), None)
        if issuer is None:
            raise InputError("the chain does not reach a self-signed root")
        remaining.remove(issuer)
        what = f"chain certificate {render_subject(issuer)}"
        try:
            verify_certificate_signature(
                current.dump(), issuer.public_key.dump(), sm2_ids=_EXTERNAL_SM2_IDS
            )
        except CertificateError as exc:
            raise InputError(f"the chain does not verify at {what}: {exc}") from exc
        _check_validity(issuer, now, what)
        _check_ca(issuer, len(ordered), what)
        ordered.append(issuer)
        current = issuer
        if len(ordered) > MAX_CHAIN:
            raise InputError("the chain is too long")
    # The root's self-signature: a corrupted root would otherwise pass unnoticed.
    try:
        verify_certificate_signature(
            current.dump(), current.public_key.dump(), sm2_ids=_EXTERNAL_SM2_IDS
        )
    except CertificateError as exc:
        raise InputError("the root certificate's self-signature does not verify") from exc
    return ordered


def render_subject(cert: x509.Certificate) -> str:
    from medsign.ca.names import render_name

    try:
        return render_name(cert.subject)
    except (ValueError, TypeError):
        return "(unreadable subject)"


class RegistrationAuthority:
    def __init__(
        self,
        database: Database,
        keystore: KeyStore,
        clock: Clock,
        *,
        profiles: ProfileSet = DEFAULT_PROFILES,
    ) -> None:
        self._database = database
        self._keystore = keystore
        self._clock = clock
        self._profiles = profiles

    def create_external_csr(
        self,
        algorithm: KeyAlgorithm | str,
        subject: str | dict[str, str],
        profile: str,
        *,
        actor: str,
    ) -> tuple[str, str]:
        """Generate a key in the key store and a CSR for it; returns (csr_id, CSR PEM)."""
        chosen = self._profiles.get(profile)
        if chosen.is_ca:
            raise InputError(f"profile {profile} is for CA certificates")
        try:
            key_algorithm = KeyAlgorithm(algorithm)
        except ValueError:
            raise InputError(f"unknown key algorithm {algorithm!r}") from None
        if key_algorithm not in chosen.key_algorithms:
            raise InputError(f"profile {profile} does not accept {key_algorithm} keys")
        pairs = parse_subject_pairs(subject)
        chosen.subject.check(pairs, profile)
        name = build_name(pairs)
        csr_id = new_id("csr")
        key = self._keystore.generate(key_algorithm, label=f"ra:{csr_id}")
        der = build_csr(self._keystore, key, name, actor=actor)
        with self._database.session() as session:
            session.add(
                ExternalCSRRow(
                    id=csr_id,
                    key_id=key.id,
                    profile=profile,
                    subject=",".join(f"{k}={v}" for k, v in reversed(pairs))[:500],
                    csr_der=der,
                    state=PENDING,
                    certificate_id=None,
                    created_at=self._clock.now(),
                )
            )
        return csr_id, pem_encode(der, "CERTIFICATE REQUEST")

    def get_csr_pem(self, csr_id: str) -> str:
        with self._database.session() as session:
            row = session.get(ExternalCSRRow, csr_id)
            if row is None:
                raise NotFoundError(f"no external CSR {csr_id}")
            return pem_encode(row.csr_der, "CERTIFICATE REQUEST")

    def import_external_certificate(
        self,
        csr_id: str,
        certificate: bytes | str,
        chain: Sequence[bytes | str],
        *,
        actor: str = "system",
    ) -> CertificateRecord:
        """Store the external CA's certificate for a pending CSR after checking key and chain.

        ``chain`` holds the issuer certificates up to and including the root (PEM, DER, or PEM
        bundles), in any order.
        """
        with self._database.session() as session:
            pending = session.get(ExternalCSRRow, csr_id)
            if pending is None:
                raise NotFoundError(f"no external CSR {csr_id}")
            if pending.state != PENDING:
                raise StateError("a certificate was already imported for this CSR")
            csr_der, key_id, profile = pending.csr_der, pending.key_id, pending.profile
        der, cert = _load_certificate(certificate, "the certificate")
        requested = load_csr(csr_der)["certification_request_info"]["subject_pk_info"].dump()
        if cert["tbs_certificate"]["subject_public_key_info"].dump() != requested:
            raise InputError("the certificate's public key does not match the CSR's key")
        links = [
            _load_certificate(part, "a chain certificate")[1]
            for item in chain
            for part in _split_pem_bundle(item)
        ]
        if not links:
            raise InputError("the issuer chain up to the root is required")
        ordered = verify_external_chain(cert, links, self._clock.now())
        chain_der = b"".join(bytes(c.dump()) for c in ordered)
        now = self._clock.now()
        with self._database.session() as session:
            pending = session.get(ExternalCSRRow, csr_id, with_for_update=True)
            if pending is None or pending.state != PENDING:
                raise StateError("a certificate was already imported for this CSR")
            row = certificate_row(
                der,
                profile=profile,
                issuer_ca_id=None,
                key_id=key_id,
                source=EXTERNAL,
                created_at=now,
                chain_der=chain_der,
            )
            session.add(row)
            session.flush()
            pending.state = IMPORTED
            pending.certificate_id = row.id
            session.add(
                CertificateEventRow(
                    certificate_id=row.id, action="issue", reason=None, actor=actor[:200], at=now
                )
            )
            session.flush()
            return certificate_record(row)
