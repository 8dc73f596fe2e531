"""PAdES signatures on PDFs, made by a key that stays in the key store.

pyHanko builds the incremental update, the CMS container and the DSS; the signature value
comes from a ``SigningKey.sign`` callable (the workflow binds it to ``KeyStore.sign_digest``,
so every PDF signature leaves a key-use row like any other) and timestamps come from a
``respond`` callable speaking RFC 3161 DER (medsign's own TSA, in process: no HTTP hop).

Levels (ETSI EN 319 142-1): B-T (signature timestamp), B-LT (plus certificates, OCSP
responses and CRLs in the DSS), B-LTA (plus a document timestamp over all of it). The
signing time is the caller's clock, not pyHanko's, so a PDF signature and its evidence
events agree to the microsecond.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from asn1crypto import algos, crl, ocsp, tsp, x509
from PIL import Image
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from medsign.documents.errors import (
    FieldAlreadySignedError,
    PdfEncryptedError,
    PdfTooLargeError,
    PdfUnreadableError,
    PlacementError,
)
from medsign.errors import InputError, StateError

PDF_MAGIC = b"%PDF-"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_FIELD_NAME = 100


class Level(StrEnum):
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"


class DocumentLockedError(StateError):
    code = "pdf-locked"
    title = "The PDF's certification does not allow another signature"


@dataclass(frozen=True)
class FieldBox:
    """Where a new signature field goes: a 0-based page index and (x1, y1, x2, y2) in points
    in the page's user space (origin bottom-left)."""

    page: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class SignatureSpec:
    field_name: str
    new_field: FieldBox | None = None  # None: sign the existing empty field of that name
    level: Level = Level.B_T
    certify: int | None = None  # DocMDP P (1 no changes, 2 form filling, 3 also annotations)
    reason: str | None = None
    location: str | None = None
    signer_name: str | None = None
    appearance_png: bytes | None = None  # drawn into the field's box; None: invisible


@dataclass(frozen=True)
class SigningKey:
    """A signer as pyHanko needs it; ``sign`` turns a digest into a DER signature."""

    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    mechanism: str  # "sha256_rsa" | "sha256_ecdsa"
    signature_size: int  # the longest DER signature the key makes
    sign: Callable[[bytes], bytes]


@dataclass(frozen=True)
class ValidationMaterial:
    """What a B-LT/B-LTA signature carries in the DSS, gathered by the caller (medsign's own
    CA answers in process; nothing is fetched over the network)."""

    trust_roots: tuple[bytes, ...]
    certificates: tuple[bytes, ...] = ()
    ocsp_responses: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class SignedPdf:
    pdf: bytes
    field_name: str
    cms: bytes  # the /Contents SignedData, without padding
    signature_timestamp: bytes | None  # the CAdES signature timestamp token (B-T and up)
    document_digest: bytes  # SHA-256 over the signed byte ranges


@dataclass(frozen=True)
class SignatureField:
    name: str
    signed: bool
    page: int | None
    box: tuple[float, float, float, float] | None


@dataclass(frozen=True)
class PdfInfo:
    """What a PDF offered for signing looks like; raises instead of returning a bad one."""

    size: int
    sha256: bytes
    pages: tuple[tuple[float, float, float, float], ...]  # each page's MediaBox
    fields: tuple[SignatureField, ...]
    docmdp: int | None  # the certification's P, when the document is certified

    def field(self, name: str) -> SignatureField | None:
        return next((f for f in self.fields if f.name == name), None)


def read_pdf(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> PdfInfo:
    """Parse ``data`` strictly; raise ``PdfUnreadableError`` / ``PdfEncryptedError`` /
    ``PdfTooLargeError`` for anything that should not be signed."""
    if len(data) > max_bytes:
        raise PdfTooLargeError(f"the PDF is {len(data)} bytes; the limit is {max_bytes}")
    if not data.lstrip(b"\x00\t\n\r ")[:5] == PDF_MAGIC:
        raise PdfUnreadableError("the file does not start with %PDF-")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True)
        if reader.encrypted:
            raise PdfEncryptedError("the PDF is encrypted")
        numbers, boxes = _page_boxes(reader)
        pages = tuple((b[0], b[1], b[2], b[3]) for b in boxes)
        found = []
        for name, value, ref in fields.enumerate_sig_fields(reader, filled_status=None):
            page, box = _widget_place(ref.get_object(), numbers)
            found.append(SignatureField(str(name), value is not None, page, box))
        docmdp = _docmdp_level(reader)
    except (PdfEncryptedError, PdfUnreadableError):
        raise
    except (PdfError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise PdfUnreadableError(f"the PDF cannot be parsed cleanly: {_short(exc)}") from exc
    if not pages:
        raise PdfUnreadableError("the PDF has no pages")
    return PdfInfo(len(data), hashlib.sha256(data).digest(), pages, tuple(found), docmdp)


def check_spec(info: PdfInfo, spec: SignatureSpec) -> None:
    """Everything about ``spec`` that can be checked before anyone signs."""
    name = spec.field_name
    if not name or len(name) > MAX_FIELD_NAME or "." in name or not name.isprintable():
        raise PlacementError(f"a field name is 1 to {MAX_FIELD_NAME} printable characters, no dots")
    existing = info.field(name)
    if existing is not None and existing.signed:
        raise FieldAlreadySignedError(f"the field {name!r} is already signed")
    if existing is None and spec.new_field is None:
        raise PlacementError(f"the PDF has no signature field {name!r}")
    if existing is not None and spec.new_field is not None:
        raise PlacementError(f"the PDF already has a field {name!r}: name another one")
    if spec.new_field is not None:
        page, (x1, y1, x2, y2) = spec.new_field.page, spec.new_field.box
        if not 0 <= page < len(info.pages):
            raise PlacementError(f"page {page + 1} does not exist: the PDF has {len(info.pages)}")
        mx1, my1, mx2, my2 = info.pages[page]
        if not (mx1 <= x1 < x2 <= mx2 and my1 <= y1 < y2 <= my2):
            raise PlacementError("the signature box lies outside the page")
    if spec.certify is not None:
        if spec.certify not in (1, 2, 3):
            raise InputError("certify takes the DocMDP level 1, 2 or 3")
        if any(f.signed for f in info.fields):
            raise DocumentLockedError("only the first signature of a document can certify it")
    if info.docmdp == 1:
        raise DocumentLockedError("the document is certified with no changes allowed")


class _KeyStoreSigner(Signer):
    """pyHanko's view of a medsign key: it hashes, we sign the digest through the store."""

    def __init__(self, key: SigningKey) -> None:
        chain = [x509.Certificate.load(der) for der in key.chain_der]
        super().__init__(
            signing_cert=x509.Certificate.load(key.certificate_der),
            cert_registry=SimpleCertificateStore.from_certs(chain),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": key.mechanism}),
            embed_roots=True,
        )
        self._key = key

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            # Size estimation only: as long as the longest real signature.
            return bytes(self._key.signature_size)
        if digest_algorithm != "sha256":
            raise SigningError(f"medsign signs PDFs with SHA-256, not {digest_algorithm}")
        return self._key.sign(hashlib.sha256(data).digest())


class _InProcessTimeStamper(TimeStamper):
    """RFC 3161 through a callable; the size-estimation token is fetched once and kept."""

    def __init__(self, respond: Callable[[bytes], bytes]) -> None:
        super().__init__(include_nonce=True)
        self._respond = respond

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return tsp.TimeStampResp.load(self._respond(req.dump()))


class PdfSigner:
    """Signs PDFs; one instance per installation (it keeps the timestamper's size probe)."""

    def __init__(
        self, timestamps: Callable[[bytes], bytes], *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.max_bytes = max_bytes
        self._timestamper = _InProcessTimeStamper(timestamps)

    def sign(
        self,
        data: bytes,
        spec: SignatureSpec,
        key: SigningKey,
        *,
        at: dt.datetime,
        validation: ValidationMaterial | None = None,
    ) -> SignedPdf:
        """Sign ``data`` as ``spec`` says; raises the errors of ``read_pdf``/``check_spec``,
        ``DocumentLockedError`` and what ``key.sign`` raises. Nothing is half-done: the
        result is returned whole or not at all."""
        info = read_pdf(data, max_bytes=self.max_bytes)
        check_spec(info, spec)
        if spec.level is not Level.B_T and validation is None:
            raise InputError(f"{spec.level} needs validation material")
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=True)
            meta = signers.PdfSignatureMetadata(
                field_name=spec.field_name,
                md_algorithm="sha256",
                subfilter=fields.SigSeedSubFilter.PADES,
                reason=spec.reason,
                location=spec.location,
                name=spec.signer_name,
                certify=spec.certify is not None,
                docmdp_permissions=fields.MDPPerm(spec.certify or 2),
                embed_validation_info=spec.level is not Level.B_T,
                use_pades_lta=spec.level is Level.B_LTA,
                validation_context=_context(validation, at) if validation else None,
            )
            new_field = None
            if spec.new_field is not None:
                new_field = fields.SigFieldSpec(
                    sig_field_name=spec.field_name,
                    on_page=spec.new_field.page,
                    box=_int_box(spec.new_field.box),
                )
            pdf_signer = signers.PdfSigner(
                meta,
                signer=_KeyStoreSigner(key),
                timestamper=self._timestamper,
                stamp_style=_stamp_style(spec.appearance_png),
                new_field_spec=new_field,
            )
            output = _sign(pdf_signer, writer, at)
        except SigningError as exc:
            raise DocumentLockedError(f"pyHanko refused to sign: {_short(exc)}") from exc
        except PdfError as exc:
            raise PdfUnreadableError(f"the PDF cannot be signed: {_short(exc)}") from exc
        return _result(output, spec.field_name)


def _int_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    # pyHanko takes whole points; round outwards so the field never shrinks.
    x1, y1, x2, y2 = box
    return (math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2))


def _sign(
    pdf_signer: signers.PdfSigner, writer: IncrementalPdfFileWriter, at: dt.datetime
) -> bytes:
    """``PdfSigner.sign_pdf`` step by step, so the signing time is ours."""

    async def run() -> bytes:
        session = pdf_signer.init_signing_session(writer)
        session.system_time = at
        validation_info = await session.perform_presign_validation(writer)
        reserved = await session.estimate_signature_container_size(validation_info)
        tbs = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=reserved)
        buffer = io.BytesIO()
        prepared, _ = tbs.digest_tbs_document(output=buffer)
        post = await tbs.perform_signature(
            document_digest=prepared.document_digest,
            pdf_cms_signed_attrs=PdfCMSSignedAttributes(
                signing_time=at,
                adobe_revinfo_attr=(
                    None if validation_info is None else validation_info.adobe_revinfo_attr
                ),
            ),
        )
        await post.post_signature_processing(buffer)
        return buffer.getvalue()

    return asyncio.run(run())


def _result(output: bytes, field_name: str) -> SignedPdf:
    reader = PdfFileReader(io.BytesIO(output), strict=True)
    signature = next(s for s in reader.embedded_regular_signatures if s.field_name == field_name)
    token = None
    attrs = signature.signer_info["unsigned_attrs"]
    if attrs.native is not None:
        for attr in attrs:
            if attr["type"].native == "signature_time_stamp_token":
                token = bytes(attr["values"][0].dump())
    return SignedPdf(
        pdf=output,
        field_name=field_name,
        cms=bytes(signature.pkcs7_content),
        signature_timestamp=token,
        document_digest=bytes(signature.compute_digest()),
    )


def _context(material: ValidationMaterial, at: dt.datetime) -> ValidationContext:
    return ValidationContext(
        trust_roots=[x509.Certificate.load(der) for der in material.trust_roots],
        other_certs=[x509.Certificate.load(der) for der in material.certificates],
        ocsps=[ocsp.OCSPResponse.load(der) for der in material.ocsp_responses],
        crls=[crl.CertificateList.load(der) for der in material.crls],
        allow_fetching=False,
        moment=at,
        revocation_mode="hard-fail",
    )


def _stamp_style(png: bytes | None) -> StaticStampStyle | None:
    if png is None:
        return None
    image = Image.open(io.BytesIO(png))
    image.load()
    return StaticStampStyle(
        background=PdfImage(image),
        background_opacity=1.0,
        border_width=0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(0),
            inner_content_scaling=layout.InnerScaling.SHRINK_TO_FIT,
        ),
    )


def _page_boxes(
    reader: PdfFileReader,
) -> tuple[dict[int, int], list[tuple[float, float, float, float]]]:
    """Object number → page index, and each page's MediaBox (inherited if need be)."""
    count = int(reader.root["/Pages"]["/Count"])
    numbers: dict[int, int] = {}
    boxes = []
    for index in range(count):
        ref, _ = reader.find_page_for_modification(index)
        numbers[ref.idnum] = index
        page = ref.get_object()
        x1, y1, x2, y2 = (float(v) for v in _inherited(page, "/MediaBox"))
        boxes.append((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    return numbers, boxes


def _inherited(node: Any, key: str) -> Any:
    for _ in range(64):  # page trees are shallow; a cycle must not spin forever
        if key in node:
            return node[key]
        if "/Parent" not in node:
            break
        node = node["/Parent"]
    raise KeyError(f"no {key} on the page or its parents")


def _widget_place(
    widget: Any, pages: dict[int, int]
) -> tuple[int | None, tuple[float, float, float, float] | None]:
    rect = widget.get("/Rect")
    box = None
    if rect is not None and len(rect) == 4:
        x1, y1, x2, y2 = (float(v) for v in rect)
        box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    page = None
    if "/P" in widget:
        page = pages.get(widget.get_value_as_reference("/P").idnum)
    return page, box


def _docmdp_level(reader: PdfFileReader) -> int | None:
    perms = reader.root.get("/Perms")
    if perms is None or "/DocMDP" not in perms:
        return None
    sig = perms["/DocMDP"]
    for ref in sig.get("/Reference", ()):
        params = ref.get("/TransformParams")
        if params is not None and "/P" in params:
            return int(params["/P"])
    return 2


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = [
    "DEFAULT_MAX_BYTES",
    "DocumentLockedError",
    "FieldBox",
    "Level",
    "PdfInfo",
    "PdfSigner",
    "SignatureField",
    "SignatureSpec",
    "SignedPdf",
    "SigningKey",
    "ValidationMaterial",
    "check_spec",
    "read_pdf",
]
