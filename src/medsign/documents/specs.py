"""From what an application asks ("sign this PDF, next to 医师签名：, B-LT") to the exact
signature specification, checked against the PDF before anyone is asked to sign.

The resolved specification and the PDF's hash form the request's *statement*: its RFC 8785
bytes are the request's content and their digest is what the signer's intention binds, so a
confirmed intention covers this PDF, this field, this place and this level and nothing else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from medsign.documents.errors import PlacementError
from medsign.documents.signing import (
    DEFAULT_MAX_BYTES,
    EmptyField,
    FieldBox,
    Level,
    PdfInfo,
    SignatureSpec,
    check_spec,
    read_pdf,
)
from medsign.errors import InputError

STATEMENT_TYPE = "medsign/pdf-signature"
STATEMENT_VERSION = 1
DEFAULT_WIDTH = 160.0
DEFAULT_HEIGHT = 48.0
MAX_TEXT = 200
MAX_EMPTY_FIELDS = 20


@dataclass(frozen=True)
class DocumentOptions:
    """Where and how to sign, as the application says it (pages count from 1 here)."""

    field_name: str | None = None
    page: int | None = None
    rect: tuple[float, float, float, float] | None = None
    anchor: str | None = None
    anchor_occurrence: int = 1
    width: float = DEFAULT_WIDTH
    height: float = DEFAULT_HEIGHT
    level: Level = Level.B_T
    certify: int | None = None
    reason: str | None = None
    location: str | None = None
    visible: bool = True
    handwriting: bool = True
    qr: bool = True
    # Unsigned fields added with this signature, for the signers after a certification:
    # (name, page counted from 1, rect).
    empty_fields: tuple[tuple[str, int, tuple[float, float, float, float]], ...] = ()


@dataclass(frozen=True)
class ResolvedDocument:
    info: PdfInfo
    spec: SignatureSpec  # without its appearance, which is drawn at signing time
    statement: dict[str, Any]

    @property
    def visible(self) -> bool:
        return bool(self.statement["appearance"]["visible"])


def resolve(
    pdf: bytes,
    options: DocumentOptions,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ResolvedDocument:
    """Check ``pdf`` and ``options`` together; raise a precise ``InputError`` (or
    ``StateError`` for an already signed field) for anything that could not be signed."""
    info = read_pdf(pdf, max_bytes=max_bytes)
    _check_text(options.reason, "reason")
    _check_text(options.location, "location")
    if not 10 <= options.width <= 600 or not 10 <= options.height <= 600:
        raise PlacementError("width and height are 10 to 600 points")
    name = options.field_name or _free_name(info)
    existing = info.field(name)
    new_field: FieldBox | None = None
    if existing is None:
        new_field = _place(pdf, info, options)
    elif options.rect is not None or options.anchor is not None:
        raise PlacementError(f"the field {name!r} exists: give its name without a place")
    if len(options.empty_fields) > MAX_EMPTY_FIELDS:
        raise PlacementError(f"at most {MAX_EMPTY_FIELDS} empty fields at once")
    empty = tuple(
        EmptyField(field, FieldBox(page - 1, _ordered(rect)))
        for field, page, rect in options.empty_fields
    )
    spec = SignatureSpec(
        field_name=name,
        new_field=new_field,
        level=options.level,
        certify=options.certify,
        reason=options.reason,
        location=options.location,
        empty_fields=empty,
    )
    check_spec(info, spec)
    page: int | None
    box: tuple[float, float, float, float] | None
    if new_field is not None:
        page, box = new_field.page, new_field.box
    else:
        assert existing is not None
        page, box = existing.page, existing.box
    visible = options.visible and box is not None and box[2] - box[0] >= 10
    statement = {
        "type": STATEMENT_TYPE,
        "v": STATEMENT_VERSION,
        "pdf_sha256": info.sha256.hex(),
        "pdf_bytes": info.size,
        "pages": len(info.pages),
        "field": name,
        "new_field": new_field is not None,
        "page": None if page is None else page + 1,
        "rect": None if box is None else [round(v, 2) for v in box],
        "level": options.level.value,
        "certify": options.certify,
        "reason": options.reason,
        "location": options.location,
        "empty_fields": [
            {"field": f.name, "page": f.place.page + 1, "rect": [round(v, 2) for v in f.place.box]}
            for f in empty
        ],
        "appearance": {
            "visible": visible,
            "handwriting": visible and options.handwriting,
            "qr": visible and options.qr,
        },
    }
    return ResolvedDocument(info, spec, statement)


def spec_from_statement(statement: dict[str, Any]) -> SignatureSpec:
    """The signature specification a stored statement describes (the inverse of
    ``resolve`` for everything but the appearance image)."""
    new_field = None
    if statement["new_field"]:
        x1, y1, x2, y2 = statement["rect"]
        new_field = FieldBox(int(statement["page"]) - 1, (x1, y1, x2, y2))
    return SignatureSpec(
        field_name=statement["field"],
        new_field=new_field,
        level=Level(statement["level"]),
        certify=statement["certify"],
        reason=statement["reason"],
        location=statement["location"],
        empty_fields=tuple(
            EmptyField(f["field"], FieldBox(int(f["page"]) - 1, tuple(f["rect"])))
            for f in statement.get("empty_fields", ())
        ),
    )


def pdf_sha256(pdf: bytes) -> str:
    return hashlib.sha256(pdf).hexdigest()


def _place(pdf: bytes, info: PdfInfo, options: DocumentOptions) -> FieldBox:
    if options.rect is not None and options.anchor is not None:
        raise PlacementError("give a rect or an anchor, not both")
    if options.anchor is not None:
        return _at_anchor(pdf, info, options)
    if options.rect is None:
        raise PlacementError("a new signature field needs a page and rect, or an anchor text")
    page = options.page if options.page is not None else 1
    return FieldBox(page - 1, _ordered(options.rect))


def _ordered(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = rect
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def _at_anchor(pdf: bytes, info: PdfInfo, options: DocumentOptions) -> FieldBox:
    from medsign.documents.placement import box_after_anchor, find_anchor

    assert options.anchor is not None
    if not 1 <= len(options.anchor) <= 100:
        raise PlacementError("an anchor text is 1 to 100 characters")
    if options.anchor_occurrence < 1:
        raise PlacementError("anchor_occurrence counts from 1")
    anchor = find_anchor(
        pdf,
        options.anchor,
        page=None if options.page is None else options.page - 1,
        occurrence=options.anchor_occurrence,
    )
    box = box_after_anchor(anchor, options.width, options.height, info.pages[anchor.page])
    return FieldBox(anchor.page, box)


def _free_name(info: PdfInfo) -> str:
    taken = {f.name for f in info.fields}
    n = len(taken) + 1
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"


def _check_text(value: str | None, what: str) -> None:
    if value is not None and (not value.strip() or len(value) > MAX_TEXT):
        raise InputError(f"{what} is 1 to {MAX_TEXT} characters")


__all__ = [
    "STATEMENT_TYPE",
    "DocumentOptions",
    "ResolvedDocument",
    "pdf_sha256",
    "resolve",
    "spec_from_statement",
]
