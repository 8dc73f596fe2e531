"""The certificate authority: hierarchy, issuance, renewal, revocation, hold and release.

Each operation is one database transaction. Signing goes through the key store, which records
every key use in its own transaction; so signatures are made first and the CA's rows are
written afterwards, in one go (SQLite allows one writer at a time, and a CA transaction
holding the write lock while the key store tries to record a use would wait on itself). If
anything fails before the commit, no certificate row or event exists.

Issuance is a hot path (a certificate per patient signature), so what cannot change is kept in
memory: per algorithm family, the issuing CA's record, its key handle and an
``IssuerContext`` (issuer name, key identifiers, constant extensions per profile, the parsed
issuer key for the post-signing check). CA rows are immutable once created (only their CRL
number moves, which issuance does not use), and a family gets at most one issuing CA from
``initialise_hierarchy``; the cache is still re-read after ``CA_CACHE_SECONDS`` so a CA added
by hand or by another process is picked up. Certificate status is never cached here. An
issuance is then two short transactions: the key store's (key row read, key-use record) and
ours (certificate row and its event, as plain Core inserts).
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import logging
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from asn1crypto import x509
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from medsign.ca.builder import Issuer, IssuerContext, PKIURLs, build_certificate
from medsign.ca.csr import verify_csr
from medsign.ca.names import (
    SubjectInput,
    build_name,
    new_serial,
    parse_serial,
    parse_subject_pairs,
    render_name,
    serial_hex,
)
from medsign.ca.profiles import DEFAULT_PROFILES, Profile, ProfileSet
from medsign.clock import Clock
from medsign.crypto import CA_FAMILIES, AlgorithmFamily, KeyAlgorithm, PublicKey
from medsign.db import Database
from medsign.db.tables import CertificateAuthorityRow, CertificateEventRow, CertificateRow
from medsign.errors import InputError, NotFoundError, StateError
from medsign.ids import KeyId, new_id
from medsign.keys.base import KeyRef, KeyStore

if TYPE_CHECKING:
    from medsign.ca.ra import RegistrationAuthority

log = logging.getLogger(__name__)

GOOD = "good"
REVOKED = "revoked"
HOLD = "hold"

INTERNAL = "internal"
EXTERNAL = "external"

ROOT = "root"
ISSUING = "issuing"

# RFC 5280 §5.3.1 reasons accepted by ``revoke``. certificateHold has its own operation
# (``hold``) because it is reversible; removeFromCRL only exists in delta CRLs.
REVOCATION_REASONS = frozenset(
    {
        "unspecified",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "privilegeWithdrawn",
        "aACompromise",
    }
)
HOLD_REASON = "certificateHold"

CA_PROFILES = frozenset({"root-ca", "issuing-ca"})
OCSP_PROFILE = "ocsp"

_FAMILY_LABEL = {
    AlgorithmFamily.RSA: "RSA",
    AlgorithmFamily.P256: "ECC",
    AlgorithmFamily.SM2: "SM2",
}

StatusListener = Callable[[str], None]


def _check_certifiable(family: AlgorithmFamily) -> None:
    if not family.certifiable:
        raise InputError(
            f"the CA has no hierarchy for {family} keys and does not certify them",
            public=f"{family} keys cannot be certified",
        )


# How long an issuing CA found for a family is used without looking at the database again.
CA_CACHE_SECONDS = 300.0

# Plain Core inserts: issuance writes two rows and needs no ORM unit of work for them.
_CERTIFICATE_INSERT = insert(CertificateRow.__table__)  # type: ignore[arg-type]
_EVENT_INSERT = insert(CertificateEventRow.__table__)  # type: ignore[arg-type]


def pem_encode(der: bytes, label: str = "CERTIFICATE") -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


@dataclass(frozen=True)
class CARecord:
    id: str
    name: str
    family: AlgorithmFamily
    level: str
    parent_id: str | None
    key_id: KeyId
    certificate_der: bytes
    created_at: dt.datetime

    def pem(self) -> str:
        return pem_encode(self.certificate_der)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.Certificate.load(self.certificate_der)


@dataclass(frozen=True)
class CertificateRecord:
    id: str
    serial_hex: str
    profile: str
    subject: str
    status: str
    not_before: dt.datetime
    not_after: dt.datetime
    certificate_der: bytes
    issuer_ca_id: str | None
    key_id: KeyId | None
    revocation_reason: str | None
    revoked_at: dt.datetime | None
    source: str = INTERNAL
    replaces_id: str | None = None

    def pem(self) -> str:
        return pem_encode(self.certificate_der)


@dataclass(frozen=True)
class CertificateEvent:
    action: str
    reason: str | None
    actor: str
    at: dt.datetime


def ca_record(row: CertificateAuthorityRow) -> CARecord:
    return CARecord(
        id=row.id,
        name=row.name,
        family=AlgorithmFamily(row.family),
        level=row.level,
        parent_id=row.parent_id,
        key_id=KeyId(row.key_id),
        certificate_der=row.certificate_der,
        created_at=row.created_at,
    )


def certificate_record(row: CertificateRow) -> CertificateRecord:
    return CertificateRecord(
        id=row.id,
        serial_hex=row.serial_hex,
        profile=row.profile,
        subject=row.subject,
        status=row.status,
        not_before=row.not_before,
        not_after=row.not_after,
        certificate_der=row.certificate_der,
        issuer_ca_id=row.issuer_ca_id,
        key_id=KeyId(row.key_id) if row.key_id is not None else None,
        revocation_reason=row.revocation_reason,
        revoked_at=row.revoked_at,
        source=row.source,
        replaces_id=row.replaces_id,
    )


def certificate_row(
    der: bytes,
    *,
    profile: str,
    issuer_ca_id: str | None,
    key_id: str | None,
    source: str,
    created_at: dt.datetime,
    chain_der: bytes | None = None,
    replaces_id: str | None = None,
) -> CertificateRow:
    """A new row for a certificate; everything else is read from the certificate itself."""
    cert = x509.Certificate.load(der)
    tbs = cert["tbs_certificate"]
    return CertificateRow(
        id=new_id("crt"),
        serial_hex=serial_hex(tbs["serial_number"].native),
        issuer_ca_id=issuer_ca_id,
        issuer_name_der=tbs["issuer"].dump(),
        source=source,
        profile=profile,
        subject=render_name(tbs["subject"])[:500],
        key_id=key_id,
        public_key_der=tbs["subject_public_key_info"].dump(),
        certificate_der=der,
        chain_der=chain_der,
        not_before=tbs["validity"]["not_before"].native,
        not_after=tbs["validity"]["not_after"].native,
        status=GOOD,
        revocation_reason=None,
        revoked_at=None,
        replaces_id=replaces_id,
        created_at=created_at,
    )


@dataclass(frozen=True)
class _IssuingCA:
    """An issuing CA ready to sign: its record and its certificate factory."""

    record: CARecord
    context: IssuerContext
    loaded_at: float


def split_certificates(blob: bytes | None) -> list[bytes]:
    """Concatenated DER certificates (how ``chain_der`` is stored) back into a list."""
    out: list[bytes] = []
    rest = blob or b""
    while rest:
        cert = x509.Certificate.load(rest)
        size = len(cert.dump())
        out.append(rest[:size])
        rest = rest[size:]
    return out


class CertificateAuthority:
    """Issues and manages certificates for every algorithm family's CA hierarchy."""

    def __init__(
        self,
        database: Database,
        keystore: KeyStore,
        clock: Clock,
        base_url: str,
        *,
        profiles: ProfileSet = DEFAULT_PROFILES,
    ) -> None:
        self._database = database
        self._keystore = keystore
        self._clock = clock
        self._urls = PKIURLs(base_url)
        self._profiles = profiles
        self._listeners: list[StatusListener] = []
        self._issuing: dict[AlgorithmFamily, _IssuingCA] = {}
        self._issuing_lock = threading.Lock()

    @property
    def profiles(self) -> ProfileSet:
        return self._profiles

    @property
    def urls(self) -> PKIURLs:
        return self._urls

    @cached_property
    def ra(self) -> RegistrationAuthority:
        """RA mode on the same database, key store and profiles."""
        from medsign.ca.ra import RegistrationAuthority

        return RegistrationAuthority(
            self._database, self._keystore, self._clock, profiles=self._profiles
        )

    def add_status_listener(self, listener: StatusListener) -> None:
        """``listener(ca_id)`` runs after a revoke, hold or release has been committed.

        Issuance and renewal do not notify: they change no CRL, and per-signing certificates
        would otherwise regenerate CRLs on every signature.
        """
        self._listeners.append(listener)

    def _notify(self, ca_id: str | None) -> None:
        if ca_id is None:
            return
        for listener in self._listeners:
            try:
                listener(ca_id)
            except Exception:
                # The change is committed; a failed CRL refresh is retried by the scheduler.
                log.exception("certificate status listener failed", extra={"ca_id": ca_id})

    # -- hierarchy --------------------------------------------------------------------------

    def initialise_hierarchy(
        self,
        organization_name: str,
        *,
        families: Sequence[AlgorithmFamily] | None = None,
        actor: str = "system",
    ) -> list[CARecord]:
        """Root, issuing CA and OCSP responder per family; families already set up are kept."""
        wanted = list(families) if families is not None else list(CA_FAMILIES)
        for family in wanted:
            _check_certifiable(family)
        supported = self._keystore.supported_algorithms()
        for family in wanted:
            if self._cas_of_family(family):
                continue
            if family.default_algorithm not in supported:
                log.warning(
                    "key store cannot hold %s keys; skipping the %s CA hierarchy",
                    family.default_algorithm,
                    family,
                )
                continue
            self._create_family(organization_name, family, actor=actor)
            self.invalidate_cache()
        return self.list_cas()

    def invalidate_cache(self) -> None:
        """Forget the cached issuing CAs (they are re-read on the next issuance)."""
        with self._issuing_lock:
            self._issuing.clear()

    def _cas_of_family(self, family: AlgorithmFamily) -> list[CARecord]:
        return [ca for ca in self.list_cas() if ca.family is family]

    def _create_family(self, organization: str, family: AlgorithmFamily, *, actor: str) -> None:
        label = _FAMILY_LABEL[family]
        algorithm = family.default_algorithm
        now = self._clock.now()
        root_id, issuing_id = new_id("ca"), new_id("ca")
        root_name_text = f"{organization} {label} Root CA"
        issuing_name_text = f"{organization} {label} Issuing CA"
        root_subject = self._subject_for(
            {"CN": root_name_text, "O": organization}, self._profiles.get("root-ca")
        )
        issuing_subject = self._subject_for(
            {"CN": issuing_name_text, "O": organization}, self._profiles.get("issuing-ca")
        )
        root_key = self._keystore.generate(algorithm, label=f"ca:{root_id}")
        issuing_key = self._keystore.generate(algorithm, label=f"ca:{issuing_id}")
        ocsp_key = self._keystore.generate(algorithm, label=f"ocsp:{issuing_id}")
        root_der = build_certificate(
            self._keystore,
            issuer=Issuer(name=root_subject, key=root_key, ca_id=None),
            subject=root_subject,
            public_key=PublicKey.from_der(root_key.public_key_der),
            profile=self._profiles.get("root-ca"),
            serial=new_serial(),
            not_before=now,
            urls=self._urls,
            actor=actor,
        )
        root_issuer = self._issuer(root_id, root_der, root_key, ocsp=False)
        issuing_der = build_certificate(
            self._keystore,
            issuer=root_issuer,
            subject=issuing_subject,
            public_key=PublicKey.from_der(issuing_key.public_key_der),
            profile=self._profiles.get("issuing-ca"),
            serial=new_serial(),
            not_before=now,
            urls=self._urls,
            actor=actor,
        )
        ocsp_profile = self._profiles.get(OCSP_PROFILE)
        ocsp_der = build_certificate(
            self._keystore,
            issuer=self._issuer(issuing_id, issuing_der, issuing_key),
            subject=self._subject_for(
                {"CN": f"{organization} {label} OCSP Responder", "O": organization}, ocsp_profile
            ),
            public_key=PublicKey.from_der(ocsp_key.public_key_der),
            profile=ocsp_profile,
            serial=new_serial(),
            not_before=now,
            urls=self._urls,
            actor=actor,
        )
        with self._database.session() as session:
            session.add(
                CertificateAuthorityRow(
                    id=root_id,
                    name=root_name_text,
                    family=family.value,
                    level=ROOT,
                    parent_id=None,
                    key_id=root_key.id,
                    certificate_der=root_der,
                    crl_number=0,
                    created_at=now,
                )
            )
            session.flush()
            session.add(
                CertificateAuthorityRow(
                    id=issuing_id,
                    name=issuing_name_text,
                    family=family.value,
                    level=ISSUING,
                    parent_id=root_id,
                    key_id=issuing_key.id,
                    certificate_der=issuing_der,
                    crl_number=0,
                    created_at=now,
                )
            )
            session.flush()
            # The issuing CA's and responder's certificates are rows too, so the root's CRL
            # and the issuing CA's OCSP responder can report on them like on any other.
            for der, profile, issuer_id, key in (
                (issuing_der, "issuing-ca", root_id, issuing_key),
                (ocsp_der, OCSP_PROFILE, issuing_id, ocsp_key),
            ):
                row = certificate_row(
                    der,
                    profile=profile,
                    issuer_ca_id=issuer_id,
                    key_id=key.id,
                    source=INTERNAL,
                    created_at=now,
                )
                session.add(row)
                session.flush()
                self._event(session, row.id, "issue", None, actor)
        log.info("created %s CA hierarchy", family, extra={"root": root_id, "issuing": issuing_id})

    def _issuer(self, ca_id: str, der: bytes, key: KeyRef, *, ocsp: bool = True) -> Issuer:
        cert = x509.Certificate.load(der)
        return Issuer(
            name=cert.subject,
            key=key,
            ca_id=ca_id,
            not_after=cert["tbs_certificate"]["validity"]["not_after"].native,
            ocsp=ocsp,
        )

    def list_cas(self) -> list[CARecord]:
        with self._database.session() as session:
            rows = session.scalars(
                select(CertificateAuthorityRow).order_by(
                    CertificateAuthorityRow.family, CertificateAuthorityRow.created_at
                )
            ).all()
            return [ca_record(row) for row in rows]

    def ca(self, ca_id: str) -> CARecord:
        with self._database.session() as session:
            row = session.get(CertificateAuthorityRow, ca_id)
            if row is None:
                raise NotFoundError(f"no certificate authority {ca_id}")
            return ca_record(row)

    def ca_certificate(self, ca_id: str) -> bytes:
        return self.ca(ca_id).certificate_der

    def issuing_ca_ids(self) -> builtins.list[str]:
        return [ca.id for ca in self.list_cas() if ca.level == ISSUING]

    def issuing_ca(self, family: AlgorithmFamily) -> CARecord:
        """The issuing CA for a family (the newest, should there ever be several)."""
        return self._issuing_ca(family).record

    def _issuing_ca(self, family: AlgorithmFamily) -> _IssuingCA:
        cached = self._issuing.get(family)
        if cached is not None and time.monotonic() - cached.loaded_at < CA_CACHE_SECONDS:
            return cached
        record = self._newest_issuing_ca(family)
        if cached is not None and cached.record == record:
            fresh = _IssuingCA(record, cached.context, time.monotonic())
        else:
            key = self._keystore.get(record.key_id)
            issuer = self._issuer(record.id, record.certificate_der, key)
            fresh = _IssuingCA(
                record, IssuerContext(self._keystore, issuer, self._urls), time.monotonic()
            )
        with self._issuing_lock:
            self._issuing[family] = fresh
        return fresh

    def _newest_issuing_ca(self, family: AlgorithmFamily) -> CARecord:
        _check_certifiable(family)
        candidates = [ca for ca in self._cas_of_family(family) if ca.level == ISSUING]
        if not candidates:
            raise StateError(
                f"no {family} issuing CA; initialise the CA hierarchy first",
                public=f"no issuing CA for {family} keys",
            )
        return max(candidates, key=lambda ca: ca.created_at)

    def ocsp_responder(self, ca_id: str) -> CertificateRecord | None:
        """The newest good delegated OCSP responder certificate of an issuing CA."""
        now = self._clock.now()
        with self._database.session() as session:
            row = session.scalars(
                select(CertificateRow)
                .where(
                    CertificateRow.issuer_ca_id == ca_id,
                    CertificateRow.profile == OCSP_PROFILE,
                    CertificateRow.status == GOOD,
                    CertificateRow.not_before <= now,
                    CertificateRow.not_after > now,
                )
                .order_by(CertificateRow.not_after.desc())
                .limit(1)
            ).first()
            return certificate_record(row) if row is not None else None

    def refresh_ocsp_responders(
        self, *, actor: str = "system", min_remaining: dt.timedelta = dt.timedelta(days=7)
    ) -> list[CertificateRecord]:
        """Renew (same key) responder certificates that expire within ``min_remaining``.

        Responder certificates are short-lived on purpose (they are never revocation-checked),
        so a scheduler must call this regularly, e.g. daily.
        """
        renewed = []
        now = self._clock.now()
        for ca in self.list_cas():
            if ca.level != ISSUING:
                continue
            with self._database.session() as session:
                row = session.scalars(
                    select(CertificateRow)
                    .where(
                        CertificateRow.issuer_ca_id == ca.id,
                        CertificateRow.profile == OCSP_PROFILE,
                        CertificateRow.status == GOOD,
                    )
                    .order_by(CertificateRow.not_after.desc())
                    .limit(1)
                ).first()
                current = certificate_record(row) if row is not None else None
            if current is not None and current.not_after - now < min_remaining:
                renewed.append(self.renew(current.serial_hex, rekey=False, actor=actor))
        return renewed

    # -- issuance -----------------------------------------------------------------------------

    def _subject_for(self, subject: SubjectInput, profile: Profile) -> x509.Name:
        pairs = parse_subject_pairs(subject)
        profile.subject.check(pairs, profile.name)
        # Re-encode from the checked pairs so every certificate uses the same string types.
        return build_name(pairs)

    def _leaf_profile(self, name: str) -> Profile:
        profile = self._profiles.get(name)
        if profile.is_ca:
            raise InputError(f"profile {name} is for CA certificates and cannot be requested")
        return profile

    def _issue(
        self,
        *,
        subject: x509.Name,
        public_key: PublicKey,
        profile: Profile,
        key_id: str | None,
        actor: str,
        action: str = "issue",
        replaces_id: str | None = None,
    ) -> CertificateRecord:
        _check_certifiable(public_key.algorithm.family)
        if public_key.algorithm not in profile.key_algorithms:
            raise InputError(f"profile {profile.name} does not accept {public_key.algorithm} keys")
        issuing = self._issuing_ca(public_key.algorithm.family)
        ca = issuing.record
        built = issuing.context.build(
            subject=subject,
            public_key=public_key,
            profile=profile,
            serial=new_serial(),
            not_before=self._clock.now(),
            actor=actor,
        )
        now = self._clock.now()
        record = CertificateRecord(
            id=new_id("crt"),
            serial_hex=serial_hex(built.serial),
            profile=profile.name,
            subject=render_name(subject)[:500],
            status=GOOD,
            not_before=built.not_before,
            not_after=built.not_after,
            certificate_der=built.der,
            issuer_ca_id=ca.id,
            key_id=KeyId(key_id) if key_id is not None else None,
            revocation_reason=None,
            revoked_at=None,
            source=INTERNAL,
            replaces_id=replaces_id,
        )
        # One short transaction for the row and its event; the values are the ones just
        # encoded into the certificate, so nothing is parsed back.
        with self._database.engine.begin() as connection:
            connection.execute(
                _CERTIFICATE_INSERT,
                {
                    "id": record.id,
                    "serial_hex": record.serial_hex,
                    "issuer_ca_id": ca.id,
                    "issuer_name_der": issuing.context.name_der,
                    "source": INTERNAL,
                    "profile": profile.name,
                    "subject": record.subject,
                    "key_id": key_id,
                    "public_key_der": public_key.der,
                    "certificate_der": built.der,
                    "chain_der": None,
                    "not_before": built.not_before,
                    "not_after": built.not_after,
                    "status": GOOD,
                    "revocation_reason": None,
                    "revoked_at": None,
                    "replaces_id": replaces_id,
                    "created_at": now,
                },
            )
            connection.execute(
                _EVENT_INSERT,
                {
                    "certificate_id": record.id,
                    "action": action,
                    "reason": None,
                    "actor": actor[:200],
                    "at": now,
                },
            )
        return record

    def issue_from_csr(
        self,
        csr: bytes | str,
        profile: str,
        *,
        actor: str,
        subject_override: SubjectInput | None = None,
        sm2_id: bytes | None = None,
    ) -> CertificateRecord:
        """Issue from a PKCS#10 request (PEM or DER) whose self-signature verifies."""
        chosen = self._leaf_profile(profile)
        request = verify_csr(csr, sm2_id=sm2_id)
        subject = self._subject_for(
            subject_override if subject_override is not None else request.subject, chosen
        )
        return self._issue(
            subject=subject, public_key=request.public_key, profile=chosen, key_id=None, actor=actor
        )

    def issue_for_public_key(
        self, public_key_der: bytes, subject: SubjectInput, profile: str, *, actor: str
    ) -> CertificateRecord:
        """Issue for a key held outside medsign (a clinician's phone). The caller must have
        checked proof of possession first, as a CSR's self-signature would."""
        chosen = self._leaf_profile(profile)
        return self._issue(
            subject=self._subject_for(subject, chosen),
            public_key=PublicKey.from_der(public_key_der),
            profile=chosen,
            key_id=None,
            actor=actor,
        )

    def issue_for_key(
        self, key_id: str, subject: SubjectInput, profile: str, *, actor: str
    ) -> CertificateRecord:
        """Issue for a key held in the key store (staff, patient, seal, TSA, log keys)."""
        chosen = self._leaf_profile(profile)
        key = self._keystore.get(KeyId(key_id))
        return self._issue(
            subject=self._subject_for(subject, chosen),
            public_key=PublicKey.from_der(key.public_key_der),
            profile=chosen,
            key_id=key.id,
            actor=actor,
        )

    def renew(
        self,
        serial: str | int,
        *,
        rekey: bool = False,
        actor: str,
        csr: bytes | str | None = None,
        sm2_id: bytes | None = None,
    ) -> CertificateRecord:
        """A new certificate with the same subject and profile; the old one stays valid.

        Without ``rekey`` the public key is kept. With ``rekey`` a key held in the key store is
        replaced by a new one of the same algorithm; a certificate issued from a CSR can only
        be re-keyed with a new CSR (``csr=``), since medsign never had its private key.
        """
        old = self.get(serial)
        if old.status == REVOKED:
            raise StateError("a revoked certificate cannot be renewed")
        if old.source != INTERNAL or old.issuer_ca_id is None:
            raise StateError(
                "certificates from an external CA are renewed there: create a new CSR",
            )
        profile = self._profiles.get(old.profile)
        if profile.is_ca:
            raise StateError("CA certificates are not renewed through this operation")
        cert = x509.Certificate.load(old.certificate_der)
        subject = cert.subject
        old_key = PublicKey.from_der(cert["tbs_certificate"]["subject_public_key_info"].dump())
        key_id = old.key_id
        if csr is not None:
            request = verify_csr(csr, sm2_id=sm2_id)
            if request.public_key.der == old_key.der:
                raise InputError("a re-key CSR must carry a new key")
            public_key = request.public_key
            key_id = None
        elif rekey:
            if old.key_id is None:
                raise InputError(
                    "this certificate was issued from a CSR: re-keying needs a new CSR"
                )
            old_ref = self._keystore.get(old.key_id)
            new_ref = self._keystore.generate(KeyAlgorithm(old_ref.algorithm), label=old_ref.label)
            public_key = PublicKey.from_der(new_ref.public_key_der)
            key_id = new_ref.id
        else:
            public_key = old_key
        return self._issue(
            subject=subject,
            public_key=public_key,
            profile=profile,
            key_id=key_id,
            actor=actor,
            action="renew",
            replaces_id=old.id,
        )

    # -- status ----------------------------------------------------------------------------

    def revoke(self, serial: str | int, reason: str, *, actor: str) -> CertificateRecord:
        if reason == HOLD_REASON:
            raise InputError("use hold for certificateHold: it is reversible")
        if reason not in REVOCATION_REASONS:
            raise InputError(f"unknown or unsupported revocation reason {reason!r}")

        def change(row: CertificateRow) -> None:
            if row.status == REVOKED:
                raise StateError("certificate is already revoked")
            row.status = REVOKED
            row.revocation_reason = reason
            # A held certificate turned revoked gets the new time: the CRL entry's reason
            # changes too, and relying parties compare both.
            row.revoked_at = self._clock.now()

        return self._change_status(serial, "revoke", reason, actor, change)

    def hold(self, serial: str | int, *, actor: str) -> CertificateRecord:
        def change(row: CertificateRow) -> None:
            if row.status == REVOKED:
                raise StateError("a revoked certificate cannot be put on hold")
            if row.status == HOLD:
                raise StateError("certificate is already on hold")
            row.status = HOLD
            row.revocation_reason = HOLD_REASON
            row.revoked_at = self._clock.now()

        return self._change_status(serial, "hold", HOLD_REASON, actor, change)

    def release(self, serial: str | int, *, actor: str) -> CertificateRecord:
        def change(row: CertificateRow) -> None:
            if row.status != HOLD:
                raise StateError("only a certificate on hold can be released")
            row.status = GOOD
            row.revocation_reason = None
            row.revoked_at = None

        return self._change_status(serial, "release", None, actor, change)

    def _change_status(
        self,
        serial: str | int,
        action: str,
        reason: str | None,
        actor: str,
        change: Callable[[CertificateRow], None],
    ) -> CertificateRecord:
        with self._database.session() as session:
            row = self._find_row(session, serial, for_update=True)
            change(row)
            self._event(session, row.id, action, reason, actor)
            session.flush()
            record = certificate_record(row)
        self._notify(record.issuer_ca_id)
        return record

    # -- queries ---------------------------------------------------------------------------

    def _find_row(
        self, session: Session, serial: str | int, *, for_update: bool = False
    ) -> CertificateRow:
        canonical = parse_serial(serial)
        query = select(CertificateRow).where(CertificateRow.serial_hex == canonical)
        if for_update:
            # Serialises concurrent status changes on PostgreSQL; SQLite has one writer anyway.
            query = query.with_for_update()
        rows = session.scalars(query.limit(2)).all()
        if not rows:
            raise NotFoundError(f"no certificate with serial {canonical}")
        if len(rows) > 1:
            raise InputError(f"serial {canonical} is ambiguous: several issuers used it")
        return rows[0]

    def get(self, serial: str | int) -> CertificateRecord:
        with self._database.session() as session:
            return certificate_record(self._find_row(session, serial))

    def get_by_id(self, certificate_id: str) -> CertificateRecord:
        with self._database.session() as session:
            row = session.get(CertificateRow, certificate_id)
            if row is None:
                raise NotFoundError(f"no certificate {certificate_id}")
            return certificate_record(row)

    def history(self, serial: str | int) -> list[CertificateEvent]:
        with self._database.session() as session:
            row = self._find_row(session, serial)
            events = session.scalars(
                select(CertificateEventRow)
                .where(CertificateEventRow.certificate_id == row.id)
                .order_by(CertificateEventRow.id)
            ).all()
            return [CertificateEvent(e.action, e.reason, e.actor, e.at) for e in events]

    def list(
        self,
        *,
        status: str | None = None,
        profile: str | None = None,
        issuer_ca_id: str | None = None,
        source: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[CertificateRecord]:
        if not 1 <= limit <= 1000 or offset < 0:
            raise InputError("limit must be 1..1000 and offset non-negative")
        query = select(CertificateRow)
        if status is not None:
            query = query.where(CertificateRow.status == status)
        if profile is not None:
            query = query.where(CertificateRow.profile == profile)
        if issuer_ca_id is not None:
            query = query.where(CertificateRow.issuer_ca_id == issuer_ca_id)
        if source is not None:
            query = query.where(CertificateRow.source == source)
        query = query.order_by(CertificateRow.created_at.desc(), CertificateRow.id)
        with self._database.session() as session:
            rows = session.scalars(query.limit(limit).offset(offset)).all()
            return [certificate_record(row) for row in rows]

    def count(self, *, status: str | None = None) -> int:
        query = select(func.count()).select_from(CertificateRow)
        if status is not None:
            query = query.where(CertificateRow.status == status)
        with self._database.session() as session:
            return int(session.scalar(query) or 0)

    def chain(self, serial: str | int) -> builtins.list[bytes]:
        """Issuer certificates of a certificate, from its issuer up to the root (leaf excluded)."""
        with self._database.session() as session:
            row = self._find_row(session, serial)
            if row.issuer_ca_id is None:
                return split_certificates(row.chain_der)
            out = []
            ca_id: str | None = row.issuer_ca_id
            while ca_id is not None:
                ca = session.get(CertificateAuthorityRow, ca_id)
                if ca is None:  # pragma: no cover - prevented by the foreign key
                    raise NotFoundError(f"no certificate authority {ca_id}")
                out.append(ca.certificate_der)
                ca_id = ca.parent_id
            return out

    def _event(
        self, session: Session, certificate_id: str, action: str, reason: str | None, actor: str
    ) -> None:
        session.add(
            CertificateEventRow(
                certificate_id=certificate_id,
                action=action,
                reason=reason,
                actor=actor[:200],
                at=self._clock.now(),
            )
        )


__all__ = [
    "EXTERNAL",
    "GOOD",
    "HOLD",
    "HOLD_REASON",
    "INTERNAL",
    "REVOCATION_REASONS",
    "REVOKED",
    "CARecord",
    "CertificateAuthority",
    "CertificateEvent",
    "CertificateRecord",
    "certificate_record",
    "certificate_row",
    "split_certificates",
]
