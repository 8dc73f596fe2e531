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
        spec = replace(spec, appearance_png=png, signer_name=face.name)
        material = None
        if spec.level is not Level.B_T:
            material = self._material(key.certificate_der, key.chain_der)
        return self.signer.sign(document.original, spec, key, at=at, validation=material)

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
