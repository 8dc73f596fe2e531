"""The spine of a signature, top to bottom:

    open (intake) → challenge (intent) → confirm (PIN / SMS code) → sign (keys, CMS)
    → stamp (tsa) → log (evidence) → notify (webhook outbox)

Stages do not import each other; this module wires them. It owns the transactions: every
state change commits together with its evidence event and its webhook, and the signatures
of one confirmation are stored in a single transaction that also consumes the intention
proof, so a crash leaves each item either fully signed (signature, CMS, timestamp, evidence)
or still pending — never half — and a retry cannot sign twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from medsign.clock import Clock
from medsign.crypto import PublicKey, message_digest, raw_to_der, verify
from medsign.crypto.cms import (
    add_signature_timestamp,
    signature_timestamp_imprint,
    signed_data_template,
)
from medsign.crypto.types import AlgorithmFamily, SignatureScheme
from medsign.db.base import Base
from medsign.db.session import Database
from medsign.db.tables import CertificateRow, DocumentRow, SignRequestRow, StaffRow
from medsign.documents.service import DocumentService, SignerFace, StoredDocument
from medsign.documents.signing import (
    PdfAlgorithmError,
    PreparedSignature,
    SignedPdf,
    SigningKey,
)
from medsign.errors import InputError, MedsignError, NotFoundError, StateError
from medsign.evidence import record_event, record_events
from medsign.ids import KeyId
from medsign.intake.errors import (
    RequestNotPendingError,
    SignerNotAllowedError,
)
from medsign.intake.requests import (
    CANCELLED,
    PENDING,
    REJECTED,
    SIGNED,
    VOIDED,
    Intake,
    ItemInput,
    OpenResult,
    PreparedItem,
    Signer,
    SignRequest,
)
from medsign.intent.challenges import BoundItem, Challenge, IntentChallenges
from medsign.keys.base import KeyStore
from medsign.tsa.token import parse_token

log = logging.getLogger(__name__)


class Caller(Protocol):
    """The authenticated application on whose behalf the workflow acts."""

    @property
    def id(self) -> str: ...

    @property
    def organization_id(self) -> str: ...

    def may_address(self, department: str, staff_id: str) -> bool: ...


class SecretChecker(Protocol):
    """Checks the signer's PIN or SMS code for a challenge; raises ``IntentError`` if wrong.

    Implementations record every attempt themselves (in their own transaction), so a failed
    attempt is never rolled back by the caller."""

    def check(self, challenge: Challenge, secret: str, *, client: str) -> None: ...

    def begin(self, challenge: Challenge) -> None:
        """Called when a challenge starts (e.g. sends the SMS code)."""
        ...


class Stamper(Protocol):
    def stamp_many(
        self, message_imprints: Sequence[bytes], hash_name: str, *, cert_req: bool = True
    ) -> list[bytes]: ...


class Notifier(Protocol):
    def enqueue_many(
        self,
        session: Session,
        at: dt.datetime,
        application_id: str,
        notifications: Sequence[tuple[str, str, dict[str, Any]]],
    ) -> list[str]: ...


@dataclass(frozen=True)
class SignerMaterial:
    """Everything needed to sign for one signer, loaded once per confirmation."""

    staff_id: str
    key_id: str | None  # None: the key is on the signer's phone (``device_id``)
    device_id: str | None
    certificate_id: str
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    public_key: PublicKey
    scheme: SignatureScheme


@dataclass(frozen=True)
class DevicePayload:
    """What a phone holding its own key signs for one item (ECDSA-SHA256 over each): the raw
    message (the record's RFC 8785 bytes, or the application's digest taken as the message)
    and the CMS signed attributes (DER, signing-time = the challenge's creation time)."""

    request_id: str
    message: bytes
    signed_attributes: bytes


@dataclass(frozen=True)
class DeviceSignature:
    """The phone's two signatures for one item, r || s as WebCrypto makes them."""

    raw: bytes
    cms: bytes


class DeviceSignatureError(InputError):
    code = "device-signature-invalid"
    title = "A signature made on the phone does not verify"


class DeviceSignatureRequiredError(StateError):
    code = "device-signature-required"
    title = "The signer's key is on their phone: confirm there"


@dataclass(frozen=True)
class SignedItem:
    request_id: str
    signature: bytes | None  # the raw signature; None for a PDF (its CMS is the signature)
    cms: bytes
    timestamp_token: bytes
    timestamp_time: dt.datetime
    document: SignedPdf | None = None

    @property
    def document_sha256(self) -> str | None:
        return None if self.document is None else hashlib.sha256(self.document.pdf).hexdigest()


class DocumentsUnavailableError(StateError):
    code = "documents-unavailable"
    title = "This installation does not sign PDF documents"


class SigningWorkflow:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        keystore: KeyStore,
        intake: Intake,
        intents: IntentChallenges,
        secrets: dict[str, SecretChecker],
        stamper: Stamper,
        notifier: Notifier,
        chain_for: Any,
        documents: DocumentService | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.keystore = keystore
        self.intake = intake
        self.intents = intents
        self.secrets = secrets
        self.stamper = stamper
        self.notifier = notifier
        self._chain_for = chain_for  # callable(serial_hex) -> list[bytes]
        self.documents = documents

    # -- signers ---------------------------------------------------------------------------

    def resolve_signer(self, session: Session, caller: Caller, employee_no: str) -> Signer:
        staff = session.scalar(
            select(StaffRow).where(
                StaffRow.organization_id == caller.organization_id,
                StaffRow.employee_no == employee_no,
            )
        )
        if staff is None:
            raise NotFoundError(f"no staff member with employee number {employee_no}")
        if not caller.may_address(staff.department, staff.id):
            raise SignerNotAllowedError(f"application {caller.id} may not address staff {staff.id}")
        return self._signer(session, staff)

    def _signer(self, session: Session, staff: StaffRow) -> Signer:
        family: AlgorithmFamily | None = None
        status: str | None = None
        if staff.certificate_id is not None:
            cert = session.get(CertificateRow, staff.certificate_id)
            if cert is not None:
                status = cert.status
                family = PublicKey.from_der(cert.public_key_der).algorithm.family
        return Signer(
            staff_id=staff.id,
            organization_id=staff.organization_id,
            department=staff.department,
            state=staff.state,
            key_id=staff.key_id,
            certificate_id=staff.certificate_id,
            certificate_status=status,
            family=family,
            device_id=staff.signing_device_id,
        )

    # -- opening ---------------------------------------------------------------------------

    def open(
        self,
        caller: Caller,
        employee_no: str,
        items: Sequence[ItemInput],
        *,
        idempotency_key: str,
        as_batch: bool,
        expires_in: dt.timedelta | None = None,
    ) -> OpenResult:
        now = self.clock.now()
        with self.database.session() as session:
            signer = self.resolve_signer(session, caller, employee_no)
            signer.check_can_sign()
            prepared, pdfs = self._prepare(items, signer)
            result = self.intake.open(
                session,
                now,
                application_id=caller.id,
                signer=signer,
                items=prepared,
                idempotency_key=idempotency_key,
                as_batch=as_batch,
                expires_at=self.intake.expiry(now, expires_in),
                requested_ttl=expires_in,
            )
            if not result.replayed:
                for request in result.requests:
                    self._event_open(session, now, request)
                    pdf = pdfs.get(request.position)
                    if pdf is not None:
                        assert self.documents is not None and request.content is not None
                        self.documents.save(session, request.id, pdf, request.content, now)
            return result

    def _prepare(
        self, items: Sequence[ItemInput], signer: Signer
    ) -> tuple[list[PreparedItem], dict[int, bytes]]:
        """Items ready for intake; PDFs are resolved against their options first (every
        placement and size check happens here, before anything is stored)."""
        prepared, pdfs = [], {}
        for position, item in enumerate(items):
            if item.document is None:
                prepared.append(self.intake.prepare(item, signer))
                continue
            if self.documents is None:
                raise DocumentsUnavailableError("this installation does not sign PDFs")
            if signer.family is AlgorithmFamily.SM2:
                raise PdfAlgorithmError(
                    "SM2 signatures inside PDFs are not supported yet: the signer needs an RSA"
                    " or P-256 certificate"
                )
            resolved = self.documents.resolve(item.document, item.document_options)
            prepared.append(self.intake.prepare_document(item, signer, resolved.statement))
            pdfs[position] = item.document
        return prepared, pdfs

    def _event_open(self, session: Session, now: dt.datetime, request: SignRequest) -> None:
        record_event(
            session,
            now,
            "request:open",
            request_id=request.id,
            application_id=request.application_id,
            staff_id=request.staff_id,
            batch_id=request.batch_id,
            kind=request.kind,
            scene=request.scene,
            digest_algorithm=request.digest_algorithm,
            digest=request.digest.hex(),
            record_id_sha256=hashlib.sha256(request.record_id.encode()).hexdigest(),
            voids_request_id=request.voids_request_id,
        )

    def get(self, caller: Caller, request_id: str) -> SignRequest:
        with self.database.session() as session:
            row = self.intake.get_row(session, request_id, application_id=caller.id)
            return SignRequest.from_row(row)

    def document(self, caller: Caller, request_id: str) -> StoredDocument:
        """The PDF of one of the application's own document requests."""
        with self.database.session() as session:
            row = self.intake.get_row(session, request_id, application_id=caller.id)
            return self._document(session, row)

    def signer_document(self, staff_id: str, request_id: str) -> StoredDocument:
        """The PDF of a document request addressed to this signer (what they are asked to
        sign, or what they signed)."""
        with self.database.session() as session:
            row = self.intake.get_row(session, request_id, staff_id=staff_id)
            return self._document(session, row)

    def signed_document_sha256(self, request_id: str) -> str | None:
        with self.database.session() as session:
            return session.scalar(
                select(DocumentRow.signed_sha256).where(DocumentRow.request_id == request_id)
            )

    def _document(self, session: Session, row: SignRequestRow) -> StoredDocument:
        if row.content_kind != "pdf" or self.documents is None:
            raise NotFoundError(f"request {row.id} is not a PDF request")
        return self.documents.get(session, row.id)

    def get_batch(self, caller: Caller, batch_id: str) -> list[SignRequest]:
        with self.database.session() as session:
            rows = self.intake.batch_rows(session, batch_id, application_id=caller.id)
            return [SignRequest.from_row(r) for r in rows]

    def pending(self, caller: Caller, employee_no: str) -> list[SignRequest]:
        now = self.clock.now()
        with self.database.session() as session:
            signer = self.resolve_signer(session, caller, employee_no)
            return [
                SignRequest.from_row(r)
                for r in self.intake.pending_for_signer(session, signer.staff_id, now)
            ]

    # -- cancel, reject, expire, void ------------------------------------------------------

    def cancel(self, caller: Caller, request_id: str) -> SignRequest:
        now = self.clock.now()
        with self.database.session() as session:
            row = self.intake.get_row(session, request_id, application_id=caller.id)
            self.intake.transition(session, row, now, CANCELLED)
            record_event(
                session, now, "request:cancel", request_id=row.id, application_id=caller.id
            )
            self._notify(session, now, row)
            return SignRequest.from_row(row)

    def reject(
        self, caller: Caller, employee_no: str, request_ids: Sequence[str], reason: str
    ) -> list[SignRequest]:
        """The signer refuses (their reason is passed on to the application)."""
        reason = _reason(reason, "a rejection")
        now = self.clock.now()
        with self.database.session() as session:
            signer = self.resolve_signer(session, caller, employee_no)
            rows = [
                self.intake.get_row(
                    session, rid, application_id=caller.id, staff_id=signer.staff_id
                )
                for rid in request_ids
            ]
            return self._reject(session, now, signer.staff_id, rows, reason)

    def _reject(
        self,
        session: Session,
        now: dt.datetime,
        staff_id: str,
        rows: Sequence[SignRequestRow],
        reason: str,
    ) -> list[SignRequest]:
        for row in rows:
            self.intake.transition(session, row, now, REJECTED, reason=reason)
            record_event(
                session,
                now,
                "request:reject",
                request_id=row.id,
                staff_id=staff_id,
                reason_sha256=hashlib.sha256(reason.encode()).hexdigest(),
            )
            self._notify(session, now, row)
        return [SignRequest.from_row(r) for r in rows]

    def expire_due(self) -> int:
        now = self.clock.now()
        with self.database.session() as session:
            ids = self.intake.expire_due(session, now)
            for request_id in ids:
                row = session.get(SignRequestRow, request_id)
                assert row is not None
                record_event(session, now, "request:expire", request_id=request_id)
                self._notify(session, now, row)
            return len(ids)

    def request_void(
        self,
        caller: Caller,
        request_id: str,
        reason: str,
        *,
        idempotency_key: str,
        expires_in: dt.timedelta | None = None,
    ) -> OpenResult:
        """Open a void statement for a signed item, addressed to its signer."""
        reason = _reason(reason, "voiding")
        now = self.clock.now()
        with self.database.session() as session:
            original = self.intake.get_row(session, request_id, application_id=caller.id)
            if original.state != SIGNED:
                raise RequestNotPendingError(
                    f"only signed requests can be voided; {original.id} is {original.state}"
                )
            staff = session.get(StaffRow, original.staff_id)
            assert staff is not None
            signer = self._signer(session, staff)
            signer.check_can_sign()
            prepared = self.intake.prepare_void(original, reason, signer)
            result = self.intake.open(
                session,
                now,
                application_id=caller.id,
                signer=signer,
                items=[prepared],
                idempotency_key=idempotency_key,
                as_batch=False,
                expires_at=self.intake.expiry(now, expires_in),
                requested_ttl=expires_in,
                kind="void",
                voids_request_id=original.id,
            )
            if not result.replayed:
                self._event_open(session, now, result.requests[0])
            return result

    # -- intention -------------------------------------------------------------------------

    def start_intent(
        self, caller: Caller, employee_no: str, request_ids: Sequence[str], method: str
    ) -> Challenge:
        self._check_intent_request(request_ids, method)
        now = self.clock.now()
        with self.database.session() as session:
            signer = self.resolve_signer(session, caller, employee_no)
            rows = [
                self.intake.get_row(
                    session, rid, application_id=caller.id, staff_id=signer.staff_id
                )
                for rid in request_ids
            ]
            challenge = self._start_intent(session, now, signer, rows, method, caller.id)
        self.secrets[method].begin(challenge)
        return challenge

    def _check_intent_request(self, request_ids: Sequence[str], method: str) -> None:
        if not request_ids:
            raise InputError("name at least one request to sign")
        if len(set(request_ids)) != len(request_ids):
            raise InputError("a request is named twice")
        if method not in self.secrets:
            raise InputError(f"method must be one of {', '.join(sorted(self.secrets))}")

    def _start_intent(
        self,
        session: Session,
        now: dt.datetime,
        signer: Signer,
        rows: Sequence[SignRequestRow],
        method: str,
        application_id: str | None,
    ) -> Challenge:
        signer.check_can_sign()
        for row in rows:
            self.intake.require_pending(row, now)
        challenge = self.intents.start(
            session,
            now,
            staff_id=signer.staff_id,
            application_id=application_id,
            method=method,
            items=[_bound(r) for r in rows],
        )
        record_event(
            session,
            now,
            "intent:start",
            challenge_id=challenge.id,
            staff_id=signer.staff_id,
            method=method,
            request_ids=[r.id for r in rows],
            binding=challenge.binding_digest,
        )
        return challenge

    def confirm(
        self, caller: Caller, challenge_id: str, secret: str, *, client: str = ""
    ) -> list[SignRequest]:
        """Check the PIN/SMS code, then sign everything the challenge names."""
        return self._confirm(challenge_id, secret, client, application_id=caller.id)

    def _confirm(
        self,
        challenge_id: str,
        secret: str,
        client: str,
        *,
        application_id: str | None = None,
        staff_id: str | None = None,
        device_signatures: Mapping[str, DeviceSignature] | None = None,
    ) -> list[SignRequest]:
        now = self.clock.now()
        with self.database.session() as session:
            row = self.intents.get(
                session, challenge_id, application_id=application_id, staff_id=staff_id
            )
            self.intents.check_open(row, now)
            challenge = Challenge.from_row(row)
            staff = session.get(StaffRow, challenge.staff_id)
            if staff is not None and staff.signing_device_id and device_signatures is None:
                # Checked before the PIN: nothing could be signed, so no try is spent.
                raise DeviceSignatureRequiredError(
                    "this signer's key is on their phone; they confirm on the phone"
                )
        checker = self.secrets[challenge.method]
        try:
            checker.check(challenge, secret, client=client)
        except Exception:
            with self.database.session() as session:
                row = self.intents.get(session, challenge_id)
                self.intents.record_failure(session, row, now)
                record_event(
                    session,
                    now,
                    "intent:fail",
                    challenge_id=challenge.id,
                    staff_id=challenge.staff_id,
                    method=challenge.method,
                    attempts=row.attempts,
                )
            raise
        with self.database.session() as session:
            row = self.intents.get(session, challenge_id)
            self.intents.mark_confirmed(session, row, now)
            record_event(
                session,
                now,
                "intent:confirm",
                challenge_id=challenge.id,
                staff_id=challenge.staff_id,
                method=challenge.method,
                binding=challenge.binding_digest,
            )
        return self.sign_confirmed(challenge, device_signatures=device_signatures)

    # -- the signer's own side (phone pages): every item addressed to them, any application --

    def signer_pending(self, staff_id: str) -> list[SignRequest]:
        now = self.clock.now()
        with self.database.session() as session:
            return [
                SignRequest.from_row(r)
                for r in self.intake.pending_for_signer(session, staff_id, now)
            ]

    def signer_request(self, staff_id: str, request_id: str) -> SignRequest:
        with self.database.session() as session:
            return SignRequest.from_row(self.intake.get_row(session, request_id, staff_id=staff_id))

    def signer_history(self, staff_id: str, *, limit: int = 50) -> list[SignRequest]:
        """The signer's decided requests (signed, rejected, cancelled, expired, voided),
        newest first."""
        with self.database.session() as session:
            rows = session.scalars(
                select(SignRequestRow)
                .where(SignRequestRow.staff_id == staff_id, SignRequestRow.state != PENDING)
                .order_by(SignRequestRow.updated_at.desc(), SignRequestRow.id)
                .limit(max(1, min(limit, 200)))
            )
            return [SignRequest.from_row(r) for r in rows]

    def signer_start_intent(
        self, staff_id: str, request_ids: Sequence[str], method: str
    ) -> Challenge:
        self._check_intent_request(request_ids, method)
        now = self.clock.now()
        with self.database.session() as session:
            staff = session.get(StaffRow, staff_id)
            if staff is None:
                raise NotFoundError(f"no staff member {staff_id}")
            signer = self._signer(session, staff)
            rows = [self.intake.get_row(session, rid, staff_id=staff_id) for rid in request_ids]
            applications = {r.application_id for r in rows}
            application_id = applications.pop() if len(applications) == 1 else None
            challenge = self._start_intent(session, now, signer, rows, method, application_id)
        self.secrets[method].begin(challenge)
        return challenge

    def signer_confirm(
        self,
        staff_id: str,
        challenge_id: str,
        secret: str,
        *,
        client: str = "",
        device_signatures: Mapping[str, DeviceSignature] | None = None,
    ) -> list[SignRequest]:
        return self._confirm(
            challenge_id, secret, client, staff_id=staff_id, device_signatures=device_signatures
        )

    def device_payloads(self, staff_id: str, challenge_id: str) -> list[DevicePayload]:
        """What the signer's phone must sign for this challenge (empty when the key store
        holds the key)."""
        with self.database.session() as session:
            row = self.intents.get(session, challenge_id, staff_id=staff_id)
            challenge = Challenge.from_row(row)
            staff = session.get(StaffRow, staff_id)
            assert staff is not None
            signer = self._signer(session, staff)
            if signer.device_id is None:
                return []
            material = self._material(session, signer)
            found = {
                r.id: r
                for r in session.scalars(
                    select(SignRequestRow).where(SignRequestRow.id.in_(challenge.request_ids))
                )
            }
            rows = [found[rid] for rid in challenge.request_ids if rid in found]
            prepared = self._prepared_documents(session, staff, material, rows, challenge)
        template = signed_data_template(
            material.certificate_der, list(material.chain_der), material.scheme, "sha256"
        )
        return [
            DevicePayload(
                r.id,
                _raw_message(r),
                prepared[r.id].signed_attributes
                if r.id in prepared
                else template.signed_attributes(r.digest, challenge.created_at),
            )
            for r in rows
        ]

    def _prepared_documents(
        self,
        session: Session,
        staff: StaffRow,
        material: SignerMaterial,
        rows: Sequence[SignRequestRow],
        challenge: Challenge,
    ) -> dict[str, PreparedSignature]:
        """The PDF signatures of this challenge prepared for the phone's key: made once per
        challenge (the appearance shows the challenge's time) and kept, so asking again
        gives the same signed attributes."""
        wanted = [r for r in rows if r.content_kind == "pdf"]
        if not wanted:
            return {}
        assert self.documents is not None
        kept = self.documents.load_prepared(session, [r.id for r in wanted], challenge.id)
        missing = [r for r in wanted if r.id not in kept]
        if missing:
            documents = self.documents.load(session, [r.id for r in missing])
            image = self.documents.active_image(session, "staff", staff.id)
            face = SignerFace("staff", staff.id, staff.name, staff.title or "")
            for row in missing:
                prepared = self.documents.prepare_external(
                    documents[row.id],
                    material.certificate_der,
                    material.chain_der,
                    face,
                    image=image,
                    at=challenge.created_at,
                )
                self.documents.save_prepared(session, row.id, challenge.id, prepared)
                kept[row.id] = prepared
        return kept

    def signer_reject(
        self, staff_id: str, request_ids: Sequence[str], reason: str
    ) -> list[SignRequest]:
        reason = _reason(reason, "a rejection")
        if not request_ids or len(set(request_ids)) != len(request_ids):
            raise InputError("name each request to reject once")
        now = self.clock.now()
        with self.database.session() as session:
            rows = [self.intake.get_row(session, rid, staff_id=staff_id) for rid in request_ids]
            return self._reject(session, now, staff_id, rows, reason)

    # -- signing ---------------------------------------------------------------------------

    def sign_confirmed(
        self,
        challenge: Challenge,
        *,
        device_signatures: Mapping[str, DeviceSignature] | None = None,
    ) -> list[SignRequest]:
        now = self.clock.now()
        with self.database.session() as session:
            found = {
                r.id: r
                for r in session.scalars(
                    select(SignRequestRow).where(SignRequestRow.id.in_(challenge.request_ids))
                )
            }
            if len(found) != len(challenge.request_ids):
                raise NotFoundError("a request of this challenge no longer exists")
            rows = [found[rid] for rid in challenge.request_ids]
            staff = session.get(StaffRow, challenge.staff_id)
            assert staff is not None
            signer = self._signer(session, staff)
            signer.check_can_sign()
            material = self._material(session, signer)
            snapshot = rows
            for row in snapshot:
                self.intake.require_pending(row, now)
            bound = [_bound(r) for r in snapshot]
            data_rows = [r for r in snapshot if r.content_kind != "pdf"]
            document_rows = [r for r in snapshot if r.content_kind == "pdf"]
            documents: dict[str, StoredDocument] = {}
            prepared: dict[str, PreparedSignature] = {}
            image = None
            if document_rows:
                if self.documents is None:
                    raise DocumentsUnavailableError("this installation does not sign PDFs")
                documents = self.documents.load(session, [r.id for r in document_rows])
                image = self.documents.active_image(session, "staff", staff.id)
                if material.key_id is None:
                    prepared = self.documents.load_prepared(
                        session, [r.id for r in document_rows], challenge.id
                    )
            face = SignerFace("staff", staff.id, staff.name, staff.title or "")
        # Signing happens outside any transaction: it is CPU work and the key store records
        # each key use in its own transaction (SQLite allows one writer at a time).
        signed: list[SignedItem] = []
        if material.key_id is None:
            signed += self._accept_device_signatures(
                material, snapshot, challenge, device_signatures or {}, prepared
            )
        else:
            if data_rows:
                signed += self._sign_all(material, data_rows, now)
            for row in document_rows:
                signed.append(self._sign_document(material, documents[row.id], face, image, now))
        order = {rid: i for i, rid in enumerate(challenge.request_ids)}
        signed.sort(key=lambda item: order[item.request_id])
        by_id = {row.id: row for row in snapshot}
        with self.database.session() as session:
            # The certificate may have been revoked or held while the batch was signed.
            status = session.scalar(
                select(CertificateRow.status).where(CertificateRow.id == material.certificate_id)
            )
            replace(signer, certificate_status=status).check_can_sign()
            self.intents.consume(
                session, now, challenge_id=challenge.id, staff_id=challenge.staff_id, items=bound
            )
            # One guarded statement for the whole batch; the count below proves that every
            # item was still pending, otherwise the whole unit rolls back.
            table = Base.metadata.tables[SignRequestRow.__tablename__]
            session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("rid"), table.c.state == PENDING)
                .values(
                    state=SIGNED,
                    signed_at=now,
                    updated_at=now,
                    signature_scheme=material.scheme.value,
                    signature=bindparam("sig"),
                    certificate_id=material.certificate_id,
                    cms=bindparam("cms_der"),
                    timestamp_token=bindparam("token"),
                    timestamp_time=bindparam("token_time"),
                    intent_id=challenge.id,
                ),
                [
                    {
                        "rid": item.request_id,
                        "sig": item.signature,
                        "cms_der": item.cms,
                        "token": item.timestamp_token,
                        "token_time": item.timestamp_time,
                    }
                    for item in signed
                ],
            )
            stored = session.scalar(
                select(func.count())
                .select_from(SignRequestRow)
                .where(SignRequestRow.intent_id == challenge.id, SignRequestRow.state == SIGNED)
            )
            if stored != len(signed):
                raise RequestNotPendingError("a request of this batch changed meanwhile")
            results = [
                replace(
                    SignRequest.from_row(by_id[item.request_id]),
                    state=SIGNED,
                    signed_at=now,
                    signature_scheme=material.scheme.value,
                    signature=item.signature,
                    certificate_id=material.certificate_id,
                    cms=item.cms,
                    timestamp_token=item.timestamp_token,
                    timestamp_time=item.timestamp_time,
                    intent_id=challenge.id,
                )
                for item in signed
            ]
            record_events(
                session,
                now,
                [
                    (
                        "signature:apply",
                        {
                            "request_id": request.id,
                            "challenge_id": challenge.id,
                            "staff_id": challenge.staff_id,
                            "certificate_id": material.certificate_id,
                            "scheme": material.scheme.value,
                            "digest": request.digest.hex(),
                            "signature_sha256": _sha256(item.signature),
                            "cms_sha256": hashlib.sha256(item.cms).hexdigest(),
                            "timestamp_sha256": hashlib.sha256(item.timestamp_token).hexdigest(),
                            "document_sha256": _sha256(
                                item.document.pdf if item.document else None
                            ),
                        },
                    )
                    for request, item in zip(results, signed, strict=True)
                ],
            )
            if self.documents is not None:
                self.documents.save_signed(
                    session, [(i.request_id, i.document) for i in signed if i.document]
                )
            for request in results:
                if request.kind == "void" and request.voids_request_id:
                    self._apply_void(session, now, request)
            # A signer's batch from the phone may span applications: each hears of its own.
            per_application: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
            for request in results:
                per_application.setdefault(request.application_id, []).append(
                    _notification(request)
                )
            for application_id, notifications in per_application.items():
                self.notifier.enqueue_many(session, now, application_id, notifications)
            return results

    def _apply_void(self, session: Session, now: dt.datetime, statement: SignRequest) -> None:
        """The signed void statement voids the original it names."""
        assert statement.voids_request_id is not None
        session.execute(
            update(SignRequestRow)
            .where(SignRequestRow.id == statement.voids_request_id, SignRequestRow.state == SIGNED)
            .values(state=VOIDED, voided_by_request_id=statement.id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        record_event(
            session,
            now,
            "request:void",
            request_id=statement.voids_request_id,
            void_request_id=statement.id,
        )
        original = session.get(SignRequestRow, statement.voids_request_id)
        if original is not None:
            session.refresh(original)
            self._notify(session, now, original)

    def _material(self, session: Session, signer: Signer) -> SignerMaterial:
        assert signer.certificate_id and (signer.key_id or signer.device_id)
        cert = session.get(CertificateRow, signer.certificate_id)
        assert cert is not None
        public_key = PublicKey.from_der(cert.public_key_der)
        return SignerMaterial(
            staff_id=signer.staff_id,
            key_id=signer.key_id if signer.device_id is None else None,
            device_id=signer.device_id,
            certificate_id=cert.id,
            certificate_der=cert.certificate_der,
            chain_der=tuple(self._chain_for(cert.serial_hex)),
            public_key=public_key,
            scheme=public_key.default_scheme,
        )

    def _sign_all(
        self, m: SignerMaterial, rows: Sequence[SignRequestRow], now: dt.datetime
    ) -> list[SignedItem]:
        """Raw signatures, CMS and signature timestamps for one signer's items.

        Each phase is one key-store call (all uses recorded in one transaction), so a batch
        costs little more than its signatures."""
        assert m.key_id is not None
        actor = f"staff:{m.staff_id}"
        key_id = KeyId(m.key_id)
        # The raw signature covers the record itself (JCS bytes), or the digest the
        # application supplied, taken as the message (documented for SM2).
        raw_digests = []
        for row in rows:
            if row.content_kind == "json" and row.content is not None:
                raw_digests.append(message_digest(m.public_key, m.scheme, row.content))
            elif m.scheme is SignatureScheme.SM2_SM3:
                raw_digests.append(message_digest(m.public_key, m.scheme, row.digest))
            else:
                raw_digests.append(row.digest)
        signatures = self.keystore.sign_digests(
            key_id, m.scheme, raw_digests, actor=actor, purpose="data-signature"
        )
        hash_name = m.scheme.hash_name
        template = signed_data_template(m.certificate_der, list(m.chain_der), m.scheme, hash_name)
        attributes = [template.signed_attributes(row.digest, now) for row in rows]
        cms_signatures = self.keystore.sign_digests(
            key_id,
            m.scheme,
            [message_digest(m.public_key, m.scheme, a) for a in attributes],
            actor=actor,
            purpose="cms-signature",
        )
        cms = [template.assemble(a, sig) for a, sig in zip(attributes, cms_signatures, strict=True)]
        return self._stamp(rows, signatures, cms, hash_name)

    def _sign_document(
        self,
        m: SignerMaterial,
        document: StoredDocument,
        face: SignerFace,
        image: bytes | None,
        now: dt.datetime,
    ) -> SignedItem:
        """One PAdES signature: pyHanko hashes the document, the key store signs the digest
        (its use recorded like any other), the TSA stamps the signature value in process."""
        assert self.documents is not None and m.key_id is not None
        key_id, scheme = KeyId(m.key_id), m.scheme
        actor = f"staff:{m.staff_id}"
        key = SigningKey.for_certificate(
            m.certificate_der,
            m.chain_der,
            lambda digest: self.keystore.sign_digest(
                key_id, scheme, digest, actor=actor, purpose="pdf-signature"
            ),
        )
        result = self.documents.sign(document, key, face, image=image, at=now)
        return _document_item(document.request_id, None, result)

    def _stamp(
        self,
        rows: Sequence[SignRequestRow],
        signatures: Sequence[bytes],
        cms: Sequence[bytes],
        hash_name: str,
    ) -> list[SignedItem]:
        """Signature timestamps (CAdES-T) for a batch's CMS, in one TSA call."""
        tokens = self.stamper.stamp_many(
            [signature_timestamp_imprint(c, hash_name) for c in cms], hash_name
        )
        # stamp_many gives every token of one call the same genTime: read it once.
        stamped_at = parse_token(tokens[0]).gen_time
        return [
            SignedItem(
                request_id=row.id,
                signature=signature,
                cms=add_signature_timestamp(c, token),
                timestamp_token=token,
                timestamp_time=stamped_at,
            )
            for row, signature, c, token in zip(rows, signatures, cms, tokens, strict=True)
        ]

    def _accept_device_signatures(
        self,
        m: SignerMaterial,
        rows: Sequence[SignRequestRow],
        challenge: Challenge,
        given: Mapping[str, DeviceSignature],
        prepared: Mapping[str, PreparedSignature],
    ) -> list[SignedItem]:
        """Check the phone's signatures with the certified public key, then build the CMS and
        timestamp them exactly as for a key-store signature (for a PDF: finish the signature
        prepared for this challenge). Nothing is stored unless every signature verifies."""
        if set(given) != {r.id for r in rows}:
            raise DeviceSignatureError("the phone must sign every item of the challenge, once")
        template = signed_data_template(m.certificate_der, list(m.chain_der), m.scheme, "sha256")
        data_rows, raw_signatures, cms = [], [], []
        checked: list[tuple[SignRequestRow, bytes, bytes]] = []
        for row in rows:
            signature = given[row.id]
            if row.content_kind == "pdf":
                if row.id not in prepared:
                    raise DeviceSignatureError(
                        f"no signature was prepared for {row.id} in this challenge: fetch the"
                        " payloads again"
                    )
                attributes = prepared[row.id].signed_attributes
            else:
                attributes = template.signed_attributes(row.digest, challenge.created_at)
            try:
                raw = raw_to_der(signature.raw)
                cms_signature = raw_to_der(signature.cms)
                verify(m.public_key, m.scheme, _raw_message(row), raw)
                verify(m.public_key, m.scheme, attributes, cms_signature)
            except MedsignError as exc:
                raise DeviceSignatureError(
                    f"the phone's signature for {row.id} does not verify"
                ) from exc
            if row.content_kind == "pdf":
                checked.append((row, raw, cms_signature))
            else:
                data_rows.append(row)
                raw_signatures.append(raw)
                cms.append(template.assemble(attributes, cms_signature))
        signed = self._stamp(data_rows, raw_signatures, cms, "sha256") if data_rows else []
        for row, raw, cms_signature in checked:
            assert self.documents is not None
            result = self.documents.finish_external(
                prepared[row.id],
                m.certificate_der,
                m.chain_der,
                cms_signature,
                at=challenge.created_at,
            )
            signed.append(_document_item(row.id, raw, result))
        return signed

    # -- notification ----------------------------------------------------------------------

    def _notify(
        self, session: Session, now: dt.datetime, row: SignRequestRow | SignRequest
    ) -> None:
        self.notifier.enqueue_many(session, now, row.application_id, [_notification(row)])


def _notification(row: SignRequestRow | SignRequest) -> tuple[str, str, dict[str, Any]]:
    return (
        f"request:{row.state}",
        row.id,
        {
            "request_id": row.id,
            "batch_id": row.batch_id,
            "record_id": row.record_id,
            "state": row.state,
            "kind": row.kind,
            "voids_request_id": row.voids_request_id,
            "voided_by_request_id": row.voided_by_request_id,
        },
    )


def _reason(reason: str, what: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise InputError(f"{what} needs a reason of 1 to 500 characters")
    return reason


def _raw_message(row: SignRequestRow) -> bytes:
    """What a phone-held key signs as the raw signature: the record's RFC 8785 bytes, or the
    application's digest taken as the message (WebCrypto cannot sign a precomputed hash)."""
    if row.content_kind in ("json", "pdf") and row.content is not None:
        return row.content
    return row.digest


def _document_item(request_id: str, raw: bytes | None, result: SignedPdf) -> SignedItem:
    if result.signature_timestamp is None:
        raise DocumentsUnavailableError("the PDF signature came back without its timestamp")
    return SignedItem(
        request_id=request_id,
        signature=raw,
        cms=result.cms,
        timestamp_token=result.signature_timestamp,
        timestamp_time=parse_token(result.signature_timestamp).gen_time,
        document=result,
    )


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _bound(row: SignRequestRow) -> BoundItem:
    return BoundItem(row.id, row.digest_algorithm, row.digest)
