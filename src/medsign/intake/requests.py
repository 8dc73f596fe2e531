"""Signature requests: validation, digests, idempotency, the state machine and expiry.

Every method works inside a session handed in by the workflow, which owns the transaction:
a state change, its evidence event and its webhook commit together or not at all.

States: pending → signed | rejected | cancelled | expired; signed → voided (once the signer
has signed a void statement that references it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medsign.crypto.types import AlgorithmFamily
from medsign.db.tables import SignBatchRow, SignRequestRow
from medsign.errors import InputError, NotFoundError
from medsign.ids import new_id
from medsign.intake.errors import (
    BatchTooLargeError,
    DigestAlgorithmError,
    DigestLengthError,
    IdempotencyConflictError,
    RecordTooLargeError,
    RequestExpiredError,
    RequestNotPendingError,
    SignerCertificateHeldError,
    SignerCertificateRevokedError,
    SignerDeregisteredError,
    SignerFrozenError,
    SignerNotEnrolledError,
)
from medsign.intake.scenes import VOID_SCENE, SceneRegistry

PENDING, SIGNED, REJECTED, CANCELLED, EXPIRED, VOIDED = (
    "pending",
    "signed",
    "rejected",
    "cancelled",
    "expired",
    "voided",
)
DIGEST_SIZES = {"sha256": 32, "sm3": 32}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Signer:
    """What intake needs to know about the addressed signer (resolved by the workflow)."""

    staff_id: str
    organization_id: str
    department: str
    state: str
    key_id: str | None
    certificate_id: str | None
    certificate_status: str | None
    family: AlgorithmFamily | None
    # The enrolled phone holding the signing key, when the key store does not.
    device_id: str | None = None

    @property
    def digest_algorithm(self) -> str:
        return "sm3" if self.family is AlgorithmFamily.SM2 else "sha256"

    def check_can_sign(self) -> None:
        if self.state == "frozen":
            raise SignerFrozenError(f"signer {self.staff_id} is frozen")
        if self.state == "deregistered":
            raise SignerDeregisteredError(f"signer {self.staff_id} is deregistered")
        has_key = self.key_id is not None or self.device_id is not None
        if not has_key or self.certificate_id is None or self.family is None:
            raise SignerNotEnrolledError(f"signer {self.staff_id} has not enrolled")
        if not self.family.certifiable:
            # Data signatures are digests signed into CMS: a key of a family the CA does not
            # certify (Ed25519) cannot make them, whoever issued its certificate.
            raise SignerNotEnrolledError(f"signer {self.staff_id} has no usable signing key")
        if self.certificate_status == "revoked":
            raise SignerCertificateRevokedError(f"certificate of {self.staff_id} is revoked")
        if self.certificate_status == "hold":
            raise SignerCertificateHeldError(f"certificate of {self.staff_id} is on hold")


@dataclass(frozen=True)
class ItemInput:
    """One item as an application submits it: a JSON record, its own digest, or a PDF
    (``document``, with ``document_options`` saying where and how to sign it)."""

    scene: str
    summary: str
    record_id: str
    record: Any = None
    digest: bytes | None = None
    digest_algorithm: str | None = None
    document: bytes | None = None
    document_options: Any = None


@dataclass(frozen=True)
class SignRequest:
    id: str
    application_id: str
    staff_id: str
    batch_id: str | None
    position: int
    kind: str
    voids_request_id: str | None
    voided_by_request_id: str | None
    scene: str
    summary: str
    record_id: str
    content_kind: str
    content: bytes | None
    digest_algorithm: str
    digest: bytes
    state: str
    reject_reason: str | None
    expires_at: dt.datetime
    created_at: dt.datetime
    signed_at: dt.datetime | None
    signature_scheme: str | None
    signature: bytes | None
    certificate_id: str | None
    cms: bytes | None
    timestamp_token: bytes | None
    timestamp_time: dt.datetime | None
    intent_id: str | None

    @classmethod
    def from_row(cls, row: SignRequestRow) -> SignRequest:
        return cls(
            id=row.id,
            application_id=row.application_id,
            staff_id=row.staff_id,
            batch_id=row.batch_id,
            position=row.position,
            kind=row.kind,
            voids_request_id=row.voids_request_id,
            voided_by_request_id=row.voided_by_request_id,
            scene=row.scene,
            summary=row.summary,
            record_id=row.record_id,
            content_kind=row.content_kind,
            content=row.content,
            digest_algorithm=row.digest_algorithm,
            digest=row.digest,
            state=row.state,
            reject_reason=row.reject_reason,
            expires_at=row.expires_at,
            created_at=row.created_at,
            signed_at=row.signed_at,
            signature_scheme=row.signature_scheme,
            signature=row.signature,
            certificate_id=row.certificate_id,
            cms=row.cms,
            timestamp_token=row.timestamp_token,
            timestamp_time=row.timestamp_time,
            intent_id=row.intent_id,
        )


@dataclass(frozen=True)
class PreparedItem:
    scene: str
    summary: str
    record_id: str
    content_kind: str
    content: bytes | None
    digest_algorithm: str
    digest: bytes

    def canonical(self) -> dict[str, Any]:
        return {
            "scene": self.scene,
            "summary": self.summary,
            "record_id": self.record_id,
            "digest_algorithm": self.digest_algorithm,
            "digest": self.digest.hex(),
            "content_kind": self.content_kind,
        }


@dataclass(frozen=True)
class OpenResult:
    batch_id: str | None
    requests: list[SignRequest]
    replayed: bool = False


@dataclass
class IntakeLimits:
    max_record_bytes: int = 64 * 1024
    max_summary_chars: int = 2000
    max_batch_items: int = 500
    default_ttl: dt.timedelta = field(default_factory=lambda: dt.timedelta(hours=24))
    max_ttl: dt.timedelta = field(default_factory=lambda: dt.timedelta(days=30))


def content_digest(algorithm: str, data: bytes) -> bytes:
    return hashlib.new(algorithm, data).digest()


class Intake:
    def __init__(self, scenes: SceneRegistry, limits: IntakeLimits | None = None) -> None:
        self.scenes = scenes
        self.limits = limits or IntakeLimits()

    # -- preparation (no database) ---------------------------------------------------------

    def prepare(self, item: ItemInput, signer: Signer) -> PreparedItem:
        scene = self.scenes.get(item.scene)
        summary = self._summary(item)
        algorithm = signer.digest_algorithm
        given_contents = [c for c in (item.record, item.digest, item.document) if c is not None]
        if len(given_contents) != 1:
            raise InputError("give exactly one of record (JSON), digest or document (PDF)")
        if item.document is not None:
            raise InputError("a document is prepared with prepare_document")
        if item.record is not None:
            if not isinstance(item.record, dict):
                raise InputError("record must be a JSON object")
            try:
                content = rfc8785.dumps(item.record)
            except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
                raise InputError(f"record cannot be canonicalised (RFC 8785): {exc}") from exc
            if len(content) > self.limits.max_record_bytes:
                raise RecordTooLargeError(
                    f"record is {len(content)} bytes; the limit is {self.limits.max_record_bytes}"
                )
            return PreparedItem(
                scene.code,
                summary,
                item.record_id,
                "json",
                content,
                algorithm,
                content_digest(algorithm, content),
            )
        assert item.digest is not None
        given = (item.digest_algorithm or "").lower()
        if given not in DIGEST_SIZES:
            raise DigestAlgorithmError(f"digest_algorithm must be one of {sorted(DIGEST_SIZES)}")
        if given != algorithm:
            raise DigestAlgorithmError(
                f"the signer's {signer.family} key signs {algorithm} digests, not {given}"
            )
        if len(item.digest) != DIGEST_SIZES[given]:
            raise DigestLengthError(
                f"a {given} digest is {DIGEST_SIZES[given]} bytes, not {len(item.digest)}"
            )
        return PreparedItem(
            scene.code, summary, item.record_id, "digest", None, given, bytes(item.digest)
        )

    def prepare_document(
        self, item: ItemInput, signer: Signer, statement: dict[str, Any]
    ) -> PreparedItem:
        """A PDF item: its content is the statement (the PDF's hash and the resolved signature
        specification, RFC 8785), so the intention binds the PDF and where and how it is
        signed."""
        scene = self.scenes.get(item.scene)
        summary = self._summary(item)
        content = rfc8785.dumps(statement)
        return PreparedItem(
            scene.code,
            summary,
            item.record_id,
            "pdf",
            content,
            "sha256",
            content_digest("sha256", content),
        )

    def _summary(self, item: ItemInput) -> str:
        summary = item.summary.strip()
        if not summary:
            raise InputError("summary must say what is signed")
        if len(summary) > self.limits.max_summary_chars:
            raise RecordTooLargeError(f"summary over {self.limits.max_summary_chars} characters")
        if not item.record_id.strip() or len(item.record_id) > 200:
            raise InputError("record_id must be 1 to 200 characters")
        if _CONTROL.search(item.record_id) or _CONTROL.search(summary.replace("\n", "")):
            raise InputError("summary and record_id must not contain control characters")
        return summary

    def prepare_void(self, original: SignRequestRow, reason: str, signer: Signer) -> PreparedItem:
        """The void statement for a signed item: a JSON record naming the original, its
        digest and the hash of its signature, signed by the original signer."""
        content = rfc8785.dumps(void_statement(original, reason))
        algorithm = signer.digest_algorithm
        return PreparedItem(
            VOID_SCENE.code,
            f"作废 / Void: {original.summary}"[: self.limits.max_summary_chars],
            original.record_id,
            "json",
            content,
            algorithm,
            content_digest(algorithm, content),
        )

    def expiry(self, now: dt.datetime, expires_in: dt.timedelta | None) -> dt.datetime:
        ttl = expires_in if expires_in is not None else self.limits.default_ttl
        if ttl <= dt.timedelta(0) or ttl > self.limits.max_ttl:
            raise InputError(f"expiry must be within (0, {self.limits.max_ttl}]")
        return now + ttl

    # -- opening ---------------------------------------------------------------------------

    def open(
        self,
        session: Session,
        now: dt.datetime,
        *,
        application_id: str,
        signer: Signer,
        items: Sequence[PreparedItem],
        idempotency_key: str,
        as_batch: bool,
        expires_at: dt.datetime,
        kind: str = "sign",
        voids_request_id: str | None = None,
        requested_ttl: dt.timedelta | None = None,
    ) -> OpenResult:
        """Create pending requests, or return the ones an identical earlier call created."""
        if not items:
            raise InputError("no items to sign")
        if len(items) > self.limits.max_batch_items:
            raise BatchTooLargeError(f"at most {self.limits.max_batch_items} items per batch")
        body = {
            "staff_id": signer.staff_id,
            "kind": kind,
            "voids": voids_request_id,
            "batch": as_batch,
            # The requested lifetime, not the computed expiry: a retry later must match.
            "ttl": None if requested_ttl is None else requested_ttl.total_seconds(),
            "items": [i.canonical() for i in items],
        }
        body_digest = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
        existing = self._replay(session, application_id, idempotency_key, body_digest, as_batch)
        if existing is not None:
            return existing
        batch_id = new_id("bat") if as_batch else None
        try:
            with session.begin_nested():
                if batch_id is not None:
                    session.add(
                        SignBatchRow(
                            id=batch_id,
                            application_id=application_id,
                            staff_id=signer.staff_id,
                            idempotency_key=idempotency_key,
                            body_digest=body_digest,
                            item_count=len(items),
                            created_at=now,
                        )
                    )
                    session.flush()
                rows = [
                    SignRequestRow(
                        id=new_id("sig"),
                        application_id=application_id,
                        staff_id=signer.staff_id,
                        batch_id=batch_id,
                        position=position,
                        idempotency_key=None if as_batch else idempotency_key,
                        body_digest=body_digest,
                        kind=kind,
                        voids_request_id=voids_request_id,
                        scene=item.scene,
                        summary=item.summary,
                        record_id=item.record_id,
                        content_kind=item.content_kind,
                        content=item.content,
                        digest_algorithm=item.digest_algorithm,
                        digest=item.digest,
                        state=PENDING,
                        expires_at=expires_at,
                        created_at=now,
                        updated_at=now,
                    )
                    for position, item in enumerate(items)
                ]
                session.add_all(rows)
                session.flush()
        except IntegrityError:
            # A concurrent identical call won the race: answer as a replay (or a conflict).
            replay = self._replay(session, application_id, idempotency_key, body_digest, as_batch)
            if replay is None:
                raise
            return replay
        return OpenResult(batch_id, [SignRequest.from_row(r) for r in rows])

    def _replay(
        self, session: Session, application_id: str, key: str, body_digest: str, as_batch: bool
    ) -> OpenResult | None:
        batch = session.scalar(
            select(SignBatchRow).where(
                SignBatchRow.application_id == application_id,
                SignBatchRow.idempotency_key == key,
            )
        )
        single = session.scalar(
            select(SignRequestRow).where(
                SignRequestRow.application_id == application_id,
                SignRequestRow.idempotency_key == key,
            )
        )
        if batch is None and single is None:
            return None
        stored = batch.body_digest if batch is not None else single.body_digest  # type: ignore[union-attr]
        if stored != body_digest or (batch is not None) != as_batch:
            raise IdempotencyConflictError(
                f"idempotency key {key!r} was used for a different request"
            )
        if batch is not None:
            rows = session.scalars(
                select(SignRequestRow)
                .where(SignRequestRow.batch_id == batch.id)
                .order_by(SignRequestRow.position)
            ).all()
            return OpenResult(batch.id, [SignRequest.from_row(r) for r in rows], replayed=True)
        assert single is not None
        return OpenResult(None, [SignRequest.from_row(single)], replayed=True)

    # -- reading ---------------------------------------------------------------------------

    def get_row(
        self,
        session: Session,
        request_id: str,
        *,
        application_id: str | None = None,
        staff_id: str | None = None,
        for_update: bool = False,
    ) -> SignRequestRow:
        """A request visible to this application (or signer); others look like not found."""
        query = select(SignRequestRow).where(SignRequestRow.id == request_id)
        if application_id is not None:
            query = query.where(SignRequestRow.application_id == application_id)
        if staff_id is not None:
            query = query.where(SignRequestRow.staff_id == staff_id)
        if for_update:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFoundError(f"no signature request {request_id}")
        return row

    def batch_rows(
        self, session: Session, batch_id: str, *, application_id: str
    ) -> list[SignRequestRow]:
        rows = session.scalars(
            select(SignRequestRow)
            .where(
                SignRequestRow.batch_id == batch_id,
                SignRequestRow.application_id == application_id,
            )
            .order_by(SignRequestRow.position)
        ).all()
        if not rows:
            raise NotFoundError(f"no batch {batch_id}")
        return list(rows)

    def pending_for_signer(
        self, session: Session, staff_id: str, now: dt.datetime, *, limit: int = 200
    ) -> list[SignRequestRow]:
        return list(
            session.scalars(
                select(SignRequestRow)
                .where(
                    SignRequestRow.staff_id == staff_id,
                    SignRequestRow.state == PENDING,
                    SignRequestRow.expires_at > now,
                )
                .order_by(SignRequestRow.created_at, SignRequestRow.position)
                .limit(limit)
            )
        )

    # -- transitions -----------------------------------------------------------------------

    @staticmethod
    def require_pending(row: SignRequestRow, now: dt.datetime) -> None:
        if row.state != PENDING:
            raise RequestNotPendingError(f"request {row.id} is {row.state}")
        if row.expires_at <= now:
            raise RequestExpiredError(f"request {row.id} expired at {row.expires_at.isoformat()}")

    def transition(
        self,
        session: Session,
        row: SignRequestRow,
        now: dt.datetime,
        state: str,
        *,
        reason: str | None = None,
    ) -> None:
        """pending → rejected/cancelled, guarded so a concurrent change cannot be overwritten."""
        self.require_pending(row, now)
        result = session.execute(
            update(SignRequestRow)
            .where(SignRequestRow.id == row.id, SignRequestRow.state == PENDING)
            .values(state=state, reject_reason=reason, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise RequestNotPendingError(f"request {row.id} changed concurrently")
        session.refresh(row)

    def expire_due(self, session: Session, now: dt.datetime, *, limit: int = 500) -> list[str]:
        """Mark overdue pending requests expired; returns their ids."""
        ids = list(
            session.scalars(
                select(SignRequestRow.id)
                .where(SignRequestRow.state == PENDING, SignRequestRow.expires_at <= now)
                .limit(limit)
            )
        )
        if ids:
            session.execute(
                update(SignRequestRow)
                .where(SignRequestRow.id.in_(ids), SignRequestRow.state == PENDING)
                .values(state=EXPIRED, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        return ids


def void_statement(original: SignRequestRow, reason: str) -> dict[str, Any]:
    """The JSON record a signer signs to void an earlier signature."""
    return {
        "type": "void-statement",
        "voids_request_id": original.id,
        "record_id": original.record_id,
        "scene": original.scene,
        "original_digest_algorithm": original.digest_algorithm,
        "original_digest": original.digest.hex(),
        "original_signature_sha256": hashlib.sha256(original.signature or b"").hexdigest(),
        "reason": reason,
    }


VOID_SCENE_CODE = VOID_SCENE.code
