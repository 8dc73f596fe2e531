"""PDF requests as the workflow sees them: resolve and keep the PDF when a request opens,
sign it (appearance included) when the signer confirms, keep the signed PDF with the
signature in the same transaction.

The workflow owns the transactions; this module only reads and writes the ``documents`` and
``signature_images`` rows inside the session it is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from medsign.db.tables import DocumentRow, SignatureImageRow
from medsign.documents.appearance import AppearanceSpec, render_appearance
from medsign.documents.sealing import SealOptions, seal_image, seal_spec
from medsign.documents.signing import (
    Level,
    PdfSigner,
    PreparedSignature,
    SignatureSpec,
    SignedPdf,
    SigningKey,
    ValidationMaterial,
    read_pdf,
)
from medsign.documents.specs import DocumentOptions, ResolvedDocument, resolve, spec_from_statement
from medsign.errors import InputError, NotFoundError

ACTIVE = "active"


@dataclass(frozen=True)
class StoredDocument:
    request_id: str
    original: bytes
    statement: dict[str, Any]
    signed: bytes | None


@dataclass(frozen=True)
class SignerFace:
    """What the appearance says about the signer."""

    owner_kind: str  # staff | organization
    owner_id: str
    name: str
    title: str


class DocumentService:
    def __init__(
        self,
        signer: PdfSigner,
        *,
        validation_material: Callable[[bytes, Sequence[bytes]], ValidationMaterial],
        verification_url: Callable[[str], str],
        zone: ZoneInfo,
    ) -> None:
        self.signer = signer
        self._material = validation_material
        self._url = verification_url
        self._zone = zone

    @property
    def max_bytes(self) -> int:
        return self.signer.max_bytes

    # -- opening -----------------------------------------------------------------------------

    def resolve(self, pdf: bytes, options: Any) -> ResolvedDocument:
        if not isinstance(options, DocumentOptions):
            raise InputError("a document needs its signing options")
        return resolve(pdf, options, max_bytes=self.signer.max_bytes)

    @staticmethod
    def save(
        session: Session, request_id: str, pdf: bytes, statement: bytes, now: dt.datetime
    ) -> None:
        """Keep the PDF with its statement (the request's content, RFC 8785 bytes)."""
        session.add(
            DocumentRow(
                request_id=request_id,
                original=pdf,
                original_sha256=hashlib.sha256(pdf).hexdigest(),
                spec=statement.decode(),
                created_at=now,
            )
        )

    @staticmethod
    def load(session: Session, request_ids: Sequence[str]) -> dict[str, StoredDocument]:
        rows = session.scalars(select(DocumentRow).where(DocumentRow.request_id.in_(request_ids)))
        return {
            row.request_id: StoredDocument(
                row.request_id, row.original, json.loads(row.spec), row.signed
            )
            for row in rows
        }

    @staticmethod
    def get(session: Session, request_id: str) -> StoredDocument:
        row = session.get(DocumentRow, request_id)
        if row is None:
            raise NotFoundError(f"request {request_id} has no document")
        return StoredDocument(row.request_id, row.original, json.loads(row.spec), row.signed)

    # -- signing -----------------------------------------------------------------------------

    def sign(
        self,
        document: StoredDocument,
        key: SigningKey,
        face: SignerFace,
        *,
        image: bytes | None,
        at: dt.datetime,
    ) -> SignedPdf:
        """Sign one stored document, ``image`` (the signer's handwriting or seal) in its
        appearance. Writes nothing: ``save_signed`` does, in the transaction that stores
        the signature."""
        spec = self._spec(document, face, image, at)
        material = None
        if spec.level is not Level.B_T:
            material = self._material(key.certificate_der, key.chain_der)
        return self.signer.sign(document.original, spec, key, at=at, validation=material)

    def prepare_external(
        self,
        document: StoredDocument,
        certificate_der: bytes,
        chain_der: Sequence[bytes],
        face: SignerFace,
        *,
        image: bytes | None,
        at: dt.datetime,
    ) -> PreparedSignature:
        """The first half of a signature by the signer's phone-held key (see ``sign``)."""
        spec = self._spec(document, face, image, at)
        return self.signer.prepare_external(
            document.original, spec, certificate_der, chain_der, at=at
        )

    def finish_external(
        self,
        prepared: PreparedSignature,
        certificate_der: bytes,
        chain_der: Sequence[bytes],
        signature: bytes,
        *,
        at: dt.datetime,
    ) -> SignedPdf:
        material = None
        if prepared.level is not Level.B_T:
            material = self._material(certificate_der, chain_der)
        return self.signer.finish_external(
            prepared, certificate_der, chain_der, signature, at=at, validation=material
        )

    @staticmethod
    def save_prepared(
        session: Session, request_id: str, challenge_id: str, prepared: PreparedSignature
    ) -> None:
        """Keep a prepared signature for the challenge it was made for; a later challenge
        prepares its own (the appearance shows its time)."""
        session.execute(
            update(DocumentRow)
            .where(DocumentRow.request_id == request_id, DocumentRow.signed.is_(None))
            .values(
                prepared=prepared.pdf,
                prepared_state=json.dumps(
                    {
                        "challenge_id": challenge_id,
                        "signed_attributes": prepared.signed_attributes.hex(),
                        "document_digest": prepared.document_digest.hex(),
                        "region": list(prepared.region),
                        "field": prepared.field_name,
                        "level": prepared.level.value,
                    }
                ),
            )
        )

    @staticmethod
    def load_prepared(
        session: Session, request_ids: Sequence[str], challenge_id: str
    ) -> dict[str, PreparedSignature]:
        """The signatures prepared for ``challenge_id``, by request."""
        found = {}
        rows = session.execute(
            select(DocumentRow.request_id, DocumentRow.prepared, DocumentRow.prepared_state).where(
                DocumentRow.request_id.in_(request_ids)
            )
        )
        for request_id, pdf, raw in rows:
            if pdf is None or raw is None:
                continue
            state = json.loads(raw)
            if state["challenge_id"] != challenge_id:
                continue
            start, end = state["region"]
            found[request_id] = PreparedSignature(
                pdf=pdf,
                signed_attributes=bytes.fromhex(state["signed_attributes"]),
                document_digest=bytes.fromhex(state["document_digest"]),
                region=(start, end),
                field_name=state["field"],
                level=Level(state["level"]),
            )
        return found

    def _spec(
        self, document: StoredDocument, face: SignerFace, image: bytes | None, at: dt.datetime
    ) -> SignatureSpec:
        """The request's specification with its appearance drawn for ``face`` at ``at``."""
        statement = document.statement
        spec = spec_from_statement(statement)
        appearance = statement["appearance"]
        png = None
        if appearance["visible"]:
            rect = statement["rect"]
            png = render_appearance(
                AppearanceSpec(
                    width_pt=rect[2] - rect[0],
                    height_pt=rect[3] - rect[1],
                    lines=self._lines(face, at),
                    image_png=image if appearance["handwriting"] else None,
                    qr_url=self._url(document.request_id) if appearance["qr"] else None,
                )
            )
        return replace(spec, appearance_png=png, signer_name=face.name)

    def seal(
        self, pdf: bytes, options: SealOptions, key: SigningKey, *, seal_png: bytes, at: dt.datetime
    ) -> SignedPdf:
        """The organisation's seal on ``pdf`` as ``options`` say (its image ``seal_png``)."""
        info = read_pdf(pdf, max_bytes=self.signer.max_bytes)
        spec = seal_spec(info, options, seal_image(seal_png), appearance=seal_png)
        material = None
        if spec.level is not Level.B_T:
            material = self._material(key.certificate_der, key.chain_der)
        return self.signer.sign(pdf, spec, key, at=at, validation=material)

    @staticmethod
    def save_signed(session: Session, signed: Sequence[tuple[str, SignedPdf]]) -> None:
        for request_id, result in signed:
            session.execute(
                update(DocumentRow)
                .where(DocumentRow.request_id == request_id, DocumentRow.signed.is_(None))
                .values(signed=result.pdf, signed_sha256=hashlib.sha256(result.pdf).hexdigest())
            )

    @staticmethod
    def active_image(session: Session, owner_kind: str, owner_id: str) -> bytes | None:
        return session.scalar(
            select(SignatureImageRow.png).where(
                SignatureImageRow.owner_kind == owner_kind,
                SignatureImageRow.owner_id == owner_id,
                SignatureImageRow.state == ACTIVE,
            )
        )

    def _lines(self, face: SignerFace, at: dt.datetime) -> tuple[str, ...]:
        local = at.astimezone(self._zone)
        head = f"{face.name} {face.title}".strip()
        return (head, local.strftime("%Y-%m-%d %H:%M:%S %z"))


__all__ = ["DocumentService", "SignerFace", "StoredDocument"]
