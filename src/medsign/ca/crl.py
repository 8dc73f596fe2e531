"""Certificate revocation lists (RFC 5280 §5) for the CAs medsign runs.

A CRL is built with asn1crypto and signed through the key store (``medsign.ca.signing``), so
RSA, P-256 and SM2 CAs share one path and no private key object is ever handled here.

Numbering: the CRL number is reserved by one atomic ``UPDATE … SET crl_number = crl_number + 1
… RETURNING`` in the same transaction that reads the revoked certificates, so concurrent
publishers never share a number and a higher number always reflects a later view of the
certificate statuses. The signature is made after that transaction commits, because the key
store records each key use in its own transaction and SQLite allows only one writer: signing
while holding the write lock would wait on ourselves. A failed signature therefore leaves a
gap in the numbering, which RFC 5280 permits (numbers need only increase).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from asn1crypto import core, x509
from asn1crypto import crl as asn1_crl
from sqlalchemy import func, select, update

from medsign.ca import builder
from medsign.ca.builder import asn1_time
from medsign.ca.signing import default_scheme, sign_structure
from medsign.clock import Clock, ensure_utc
from medsign.crypto.types import SignatureScheme
from medsign.crypto.x509alg import signature_algorithm
from medsign.db import Database
from medsign.db.tables import CertificateAuthorityRow, CertificateRow, CRLRow
from medsign.errors import CertificateError, NotFoundError
from medsign.ids import KeyId
from medsign.keys.base import KeyRef, KeyStore

__all__ = [
    "ASN1_REASONS",
    "CRLPublisher",
    "key_identifier",
    "revocation_reason",
]

log = logging.getLogger(__name__)

CRL_ACTOR = "ca:crl"
CRL_PURPOSE = "crl"

# RFC 5280 §5.3.1 reason names as stored in ``CertificateRow.revocation_reason`` → asn1crypto.
ASN1_REASONS: dict[str, str] = {
    "unspecified": "unspecified",
    "keyCompromise": "key_compromise",
    "cACompromise": "ca_compromise",
    "affiliationChanged": "affiliation_changed",
    "superseded": "superseded",
    "cessationOfOperation": "cessation_of_operation",
    "certificateHold": "certificate_hold",
    "removeFromCRL": "remove_from_crl",
    "privilegeWithdrawn": "privilege_withdrawn",
    "aACompromise": "aa_compromise",
}

REVOKED = "revoked"
HOLD = "hold"


def revocation_reason(status: str, reason: str | None) -> str | None:
    """The asn1crypto reason to publish, or None when it should be left out.

    Held certificates always say certificateHold whatever the row records. ``unspecified`` is
    omitted as RFC 5280 §5.3.1 recommends, and so is an unrecognised stored value: publishing
    no reason is always true, publishing a guessed one may not be.
    """
    if status == HOLD:
        return "certificate_hold"
    if reason is None:
        return None
    name = ASN1_REASONS.get(reason)
    if name is None or name == "unspecified":
        return None
    return name


def key_identifier(certificate: x509.Certificate) -> bytes:
    """The subject key identifier, or the RFC 5280 §4.2.1.2 method-1 value when absent."""
    ski = certificate.key_identifier
    if ski is not None:
        return bytes(ski)
    return builder.key_identifier(certificate.public_key.dump())


@dataclass(frozen=True)
class _Issuer:
    """What signing a CRL needs from a CA; cached because it never changes for a CA id."""

    name: x509.Name
    key_identifier: bytes
    key: KeyRef
    scheme: SignatureScheme


@dataclass(frozen=True)
class _Revoked:
    serial: int
    revoked_at: dt.datetime
    reason: str | None


class CRLPublisher:
    """Builds, signs, stores and serves the CRLs of every CA in the database."""

    def __init__(
        self,
        database: Database,
        keystore: KeyStore,
        clock: Clock,
        *,
        validity: dt.timedelta = dt.timedelta(hours=24),
    ) -> None:
        if validity <= dt.timedelta(0):
            raise ValueError("CRL validity must be positive")
        self._db = database
        self._keystore = keystore
        self._clock = clock
        self._validity = validity
        self._issuers: dict[str, _Issuer] = {}

    @property
    def validity(self) -> dt.timedelta:
        return self._validity

    def publish(self, ca_id: str) -> bytes:
        """Build, sign and store a new CRL for ``ca_id``; returns its DER."""
        this_update = ensure_utc(self._clock.now()).replace(microsecond=0)
        next_update = this_update + self._validity
        with self._db.session() as session:
            number = session.execute(
                update(CertificateAuthorityRow)
                .where(CertificateAuthorityRow.id == ca_id)
                .values(crl_number=CertificateAuthorityRow.crl_number + 1)
                .returning(CertificateAuthorityRow.crl_number)
            ).scalar_one_or_none()
            if number is None:
                raise NotFoundError(f"no certificate authority {ca_id}")
            issuer = self._issuers.get(ca_id)
            if issuer is None:
                ca_row = session.get(CertificateAuthorityRow, ca_id)
                assert ca_row is not None
                issuer = self._load_issuer(ca_row)
            rows = session.execute(
                select(
                    CertificateRow.serial_hex,
                    CertificateRow.status,
                    CertificateRow.revocation_reason,
                    CertificateRow.revoked_at,
                    CertificateRow.created_at,
                ).where(
                    CertificateRow.issuer_ca_id == ca_id,
                    CertificateRow.status.in_((REVOKED, HOLD)),
                )
            ).all()
        revoked = sorted(
            (
                _Revoked(
                    serial=int(serial_hex, 16),
                    # A status row without a time would be a bug upstream; the creation time
                    # is the only honest lower bound we have.
                    revoked_at=ensure_utc(revoked_at or created_at),
                    reason=revocation_reason(status, reason),
                )
                for serial_hex, status, reason, revoked_at, created_at in rows
            ),
            key=lambda item: item.serial,
        )
        der = self._sign(issuer, number, this_update, next_update, revoked)
        with self._db.session() as session:
            session.add(
                CRLRow(
                    ca_id=ca_id,
                    crl_number=number,
                    this_update=this_update,
                    next_update=next_update,
                    der=der,
                )
            )
        log.info("published CRL %s for %s with %d entries", number, ca_id, len(revoked))
        return der

    def current(self, ca_id: str) -> bytes:
        """The newest stored CRL, publishing a fresh one when none exists or it has expired."""
        now = ensure_utc(self._clock.now())
        with self._db.session() as session:
            latest = session.execute(
                select(CRLRow.der, CRLRow.next_update)
                .where(CRLRow.ca_id == ca_id)
                .order_by(CRLRow.crl_number.desc())
                .limit(1)
            ).first()
        if latest is not None and ensure_utc(latest.next_update) > now:
            return bytes(latest.der)
        return self.publish(ca_id)

    def refresh_due(self, now: dt.datetime | None = None) -> list[str]:
        """Republish every CRL whose nextUpdate is within half the validity, or that is missing.

        Returns the ids of the CAs whose CRL was republished; failures are logged and skipped.

        Meant for a periodic scheduler: republishing at half-life means relying parties that
        cache until nextUpdate always find a successor long before their copy expires.
        """
        moment = ensure_utc(now or self._clock.now())
        horizon = moment + self._validity / 2
        with self._db.session() as session:
            ca_ids = list(
                session.execute(
                    select(CertificateAuthorityRow.id).order_by(CertificateAuthorityRow.id)
                ).scalars()
            )
            # The newest CRL has the latest nextUpdate (validity is fixed per publisher), so
            # max() finds it without a correlated subquery.
            newest = {
                ca_id: next_update
                for ca_id, next_update in session.execute(
                    select(CRLRow.ca_id, func.max(CRLRow.next_update)).group_by(CRLRow.ca_id)
                )
            }
        refreshed: list[str] = []
        for ca_id in ca_ids:
            next_update = newest.get(ca_id)
            if next_update is None or ensure_utc(next_update) <= horizon:
                try:
                    self.publish(ca_id)
                except Exception:
                    # One CA whose key is unavailable (an offline root, a token not plugged
                    # in) must not keep the others' CRLs from being refreshed.
                    log.exception("CRL refresh failed for %s", ca_id)
                    continue
                refreshed.append(ca_id)
        return refreshed

    def on_status_change(self, ca_id: str) -> None:
        """Authority listener: a status change must reach the CRL without waiting for expiry."""
        self.publish(ca_id)

    def _load_issuer(self, row: CertificateAuthorityRow) -> _Issuer:
        try:
            certificate = x509.Certificate.load(row.certificate_der)
            name = certificate.subject
            ski = key_identifier(certificate)
        except (ValueError, TypeError, KeyError) as exc:
            raise CertificateError(f"CA {row.id} has a malformed certificate") from exc
        key = self._keystore.get(KeyId(row.key_id))
        issuer = _Issuer(name=name, key_identifier=ski, key=key, scheme=default_scheme(key))
        self._issuers[row.id] = issuer
        return issuer

    def _sign(
        self,
        issuer: _Issuer,
        number: int,
        this_update: dt.datetime,
        next_update: dt.datetime,
        revoked: list[_Revoked],
    ) -> bytes:
        algorithm = signature_algorithm(issuer.scheme)
        entries = []
        for item in revoked:
            entry: dict[str, object] = {
                "user_certificate": item.serial,
                "revocation_date": asn1_time(item.revoked_at),
            }
            if item.reason is not None:
                entry["crl_entry_extensions"] = [
                    {"extn_id": "crl_reason", "critical": False, "extn_value": item.reason}
                ]
            entries.append(entry)
        tbs_fields: dict[str, object] = {
            "version": "v2",
            "signature": algorithm,
            "issuer": issuer.name,
            "this_update": asn1_time(this_update),
            "next_update": asn1_time(next_update),
            "crl_extensions": [
                {"extn_id": "crl_number", "critical": False, "extn_value": number},
                {
                    "extn_id": "authority_key_identifier",
                    "critical": False,
                    "extn_value": {"key_identifier": issuer.key_identifier},
                },
            ],
        }
        # RFC 5280 §5.1.2.6: an empty list is omitted, not encoded as an empty SEQUENCE.
        if entries:
            tbs_fields["revoked_certificates"] = entries
        tbs = asn1_crl.TbsCertList(tbs_fields)
        used_algorithm, signature = sign_structure(
            self._keystore,
            issuer.key,
            tbs.dump(),
            actor=CRL_ACTOR,
            purpose=CRL_PURPOSE,
            scheme=issuer.scheme,
        )
        if used_algorithm.dump() != algorithm.dump():
            raise CertificateError("signature algorithm changed while signing a CRL")
        certificate_list = asn1_crl.CertificateList(
            {
                "tbs_cert_list": tbs,
                "signature_algorithm": algorithm,
                "signature": core.OctetBitString(signature),
            }
        )
        return bytes(certificate_list.dump())
