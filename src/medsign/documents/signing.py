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
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from asn1crypto import algos, cms, core, crl, ocsp, tsp, x509
from PIL import Image
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import ExternalSigner, PdfCMSSignedAttributes, Signer
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation.dss import async_add_validation_info
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from medsign.crypto import PublicKey
from medsign.crypto.types import KeyAlgorithm
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


# What pyHanko lets escape from a damaged file, besides its own PdfError.
_PARSE_ERRORS = (
    PdfError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    zlib.error,
)


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
class EmptyField:
    """A signature field added, unsigned, in the same revision: later signers of a certified
    document sign it (DocMDP lets them fill fields, not add them)."""

    name: str
    place: FieldBox


@dataclass(frozen=True)
class PageStamp:
    """An image drawn into a page's content in the signed revision (a slice of a cross-page
    seal): covered by the signature, so it cannot be moved or removed unnoticed."""

    place: FieldBox
    png: bytes


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
    empty_fields: tuple[EmptyField, ...] = ()
    page_stamps: tuple[PageStamp, ...] = ()


# pyHanko's mechanism name and the longest DER signature of each key type that signs PDFs.
PDF_MECHANISMS = {
    KeyAlgorithm.RSA_2048: ("sha256_rsa", 256),
    KeyAlgorithm.RSA_3072: ("sha256_rsa", 384),
    KeyAlgorithm.EC_P256: ("sha256_ecdsa", 72),
}


class PdfAlgorithmError(StateError):
    code = "document-algorithm-unsupported"
    title = "PDF signatures need an RSA or P-256 signing certificate"


@dataclass(frozen=True)
class SigningKey:
    """A signer as pyHanko needs it; ``sign`` turns a SHA-256 digest into a DER signature."""

    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    mechanism: str  # "sha256_rsa" | "sha256_ecdsa"
    signature_size: int  # the longest DER signature the key makes
    sign: Callable[[bytes], bytes]

    @classmethod
    def for_certificate(
        cls, certificate_der: bytes, chain_der: Sequence[bytes], sign: Callable[[bytes], bytes]
    ) -> SigningKey:
        spki = x509.Certificate.load(certificate_der).public_key.dump()
        algorithm = PublicKey.from_der(spki).algorithm
        if algorithm not in PDF_MECHANISMS:
            raise PdfAlgorithmError(f"{algorithm} keys cannot sign PDFs yet")
        mechanism, size = PDF_MECHANISMS[algorithm]
        return cls(certificate_der, tuple(chain_der), mechanism, size, sign)


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


def read_pdf(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, digest: bool = True) -> PdfInfo:
    """Parse ``data`` strictly; raise ``PdfUnreadableError`` / ``PdfEncryptedError`` /
    ``PdfTooLargeError`` for anything that should not be signed. ``digest=False`` leaves
    ``sha256`` empty (signing has hashed the PDF already when the request was opened)."""
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
    except _PARSE_ERRORS as exc:
        raise PdfUnreadableError(f"the PDF cannot be parsed cleanly: {_short(exc)}") from exc
    if not pages:
        raise PdfUnreadableError("the PDF has no pages")
    sha256 = hashlib.sha256(data).digest() if digest else b""
    return PdfInfo(len(data), sha256, pages, tuple(found), docmdp)


def check_spec(info: PdfInfo, spec: SignatureSpec) -> None:
    """Everything about ``spec`` that can be checked before anyone signs."""
    name = spec.field_name
    _check_name(name)
    existing = info.field(name)
    if existing is not None and existing.signed:
        raise FieldAlreadySignedError(f"the field {name!r} is already signed")
    if existing is None and spec.new_field is None:
        raise PlacementError(f"the PDF has no signature field {name!r}")
    if existing is not None and spec.new_field is not None:
        raise PlacementError(f"the PDF already has a field {name!r}: name another one")
    if spec.new_field is not None:
        _check_place(info, spec.new_field)
    names = [name, *(f.name for f in spec.empty_fields)]
    if len(set(names)) != len(names):
        raise PlacementError("every new field needs its own name")
    for stamp in spec.page_stamps:
        _check_place(info, stamp.place)
    if info.docmdp is not None and spec.page_stamps:
        raise DocumentLockedError("a certified document's pages cannot be stamped")
    for empty in spec.empty_fields:
        _check_name(empty.name)
        if info.field(empty.name) is not None:
            raise PlacementError(f"the PDF already has a field {empty.name!r}")
        _check_place(info, empty.place)
    if info.docmdp is not None and (spec.new_field is not None or spec.empty_fields):
        unsigned = [f.name for f in info.fields if not f.signed]
        raise DocumentLockedError(
            "the document is certified: later signatures go into its empty signature fields"
            + (f" ({', '.join(unsigned)})" if unsigned else ", and it has none left")
        )
    if spec.certify is not None:
        if spec.certify not in (1, 2, 3):
            raise InputError("certify takes the DocMDP level 1, 2 or 3")
        if any(f.signed for f in info.fields):
            raise DocumentLockedError("only the first signature of a document can certify it")
    if info.docmdp == 1:
        raise DocumentLockedError("the document is certified with no changes allowed")


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_FIELD_NAME or "." in name or not name.isprintable():
        raise PlacementError(f"a field name is 1 to {MAX_FIELD_NAME} printable characters, no dots")


def _check_place(info: PdfInfo, place: FieldBox) -> None:
    page, (x1, y1, x2, y2) = place.page, place.box
    if not 0 <= page < len(info.pages):
        raise PlacementError(f"page {page + 1} does not exist: the PDF has {len(info.pages)}")
    mx1, my1, mx2, my2 = info.pages[page]
    if not (mx1 <= x1 < x2 <= mx2 and my1 <= y1 < y2 <= my2):
        raise PlacementError("the signature box lies outside the page")


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
        info = read_pdf(data, max_bytes=self.max_bytes, digest=False)
        check_spec(info, spec)
        if spec.level is not Level.B_T and validation is None:
            raise InputError(f"{spec.level} needs validation material")
        try:
            writer, pdf_signer = self._setup(
                data,
                spec,
                _KeyStoreSigner(key),
                context=_context(validation, at) if validation else None,
                embed=spec.level is not Level.B_T,
            )
            output, cms_der, document_digest = _sign(pdf_signer, writer, at)
        except SigningError as exc:
            raise DocumentLockedError(f"pyHanko refused to sign: {_short(exc)}") from exc
        except PdfError as exc:
            raise PdfUnreadableError(f"the PDF cannot be signed: {_short(exc)}") from exc
        return _result(output, spec.field_name, cms_der, document_digest)

    def prepare_external(
        self,
        data: bytes,
        spec: SignatureSpec,
        certificate_der: bytes,
        chain_der: Sequence[bytes],
        *,
        at: dt.datetime,
    ) -> PreparedSignature:
        """The first half of a signature made by a key medsign does not hold (a phone's):
        the document with its signature dictionary and a reserved /Contents, and the CMS
        signed attributes the key must sign (SHA-256 of their DER). Nothing is stored here;
        the caller keeps the result until ``finish_external``."""
        info = read_pdf(data, max_bytes=self.max_bytes, digest=False)
        check_spec(info, spec)
        key = SigningKey.for_certificate(certificate_der, chain_der, _no_signature)
        external = _external(key, bytes(key.signature_size))
        out: list[PreparedSignature] = []

        async def run() -> None:
            writer, pdf_signer = self._setup(data, spec, external, context=None, embed=False)
            session = pdf_signer.init_signing_session(writer)
            session.system_time = at
            reserved = await session.estimate_signature_container_size(None)
            tbs = session.prepare_tbs_document(validation_info=None, bytes_reserved=reserved)
            prepared, output = tbs.digest_tbs_document(in_place=True)
            assert isinstance(output, io.BytesIO)
            attributes = await external.signed_attrs(
                prepared.document_digest,
                "sha256",
                attr_settings=PdfCMSSignedAttributes(signing_time=at),
                use_pades=True,
            )
            out.append(
                PreparedSignature(
                    pdf=output.getvalue(),
                    signed_attributes=attributes.dump(),
                    document_digest=prepared.document_digest,
                    region=(prepared.reserved_region_start, prepared.reserved_region_end),
                    field_name=spec.field_name,
                    level=spec.level,
                )
            )

        try:
            asyncio.run(run())
        except SigningError as exc:
            raise DocumentLockedError(f"pyHanko refused to sign: {_short(exc)}") from exc
        except PdfError as exc:
            raise PdfUnreadableError(f"the PDF cannot be signed: {_short(exc)}") from exc
        return out[0]

    def finish_external(
        self,
        prepared: PreparedSignature,
        certificate_der: bytes,
        chain_der: Sequence[bytes],
        signature: bytes,
        *,
        at: dt.datetime,
        validation: ValidationMaterial | None = None,
    ) -> SignedPdf:
        """The second half: the CMS around the key's ``signature`` (DER) over
        ``prepared.signed_attributes``, its signature timestamp, embedded in the reserved
        /Contents; then the DSS (B-LT) and the document timestamp (B-LTA). The caller has
        checked the signature against the certificate."""
        if prepared.level is not Level.B_T and validation is None:
            raise InputError(f"{prepared.level} needs validation material")
        key = SigningKey.for_certificate(certificate_der, chain_der, _no_signature)
        external = _external(key, signature)
        out: list[tuple[bytes, bytes]] = []

        async def run() -> None:
            attributes = cms.CMSAttributes.load(prepared.signed_attributes)
            content = await external.async_sign_prescribed_attributes(
                "sha256", attributes, timestamper=self._timestamper
            )
            output = io.BytesIO(prepared.pdf)
            start, end = prepared.region
            digest = PreparedByteRangeDigest(prepared.document_digest, start, end)
            await PdfTBSDocument.async_finish_signing(output, digest, content)
            pdf = output.getvalue()
            if prepared.level is not Level.B_T:
                assert validation is not None
                pdf = await _long_term(pdf, prepared, _context(validation, at), self._timestamper)
            out.append((pdf, content.dump()))

        try:
            asyncio.run(run())
        except PdfError as exc:
            raise PdfUnreadableError(f"the PDF cannot be finished: {_short(exc)}") from exc
        pdf, cms_der = out[0]
        return _result(pdf, prepared.field_name, cms_der, prepared.document_digest)

    def _setup(
        self,
        data: bytes,
        spec: SignatureSpec,
        signer: Signer,
        *,
        context: ValidationContext | None,
        embed: bool,
    ) -> tuple[IncrementalPdfFileWriter, signers.PdfSigner]:
        """The incremental writer (with page stamps and prepared fields added) and pyHanko's
        signer for ``spec``."""
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
            embed_validation_info=embed,
            use_pades_lta=embed and spec.level is Level.B_LTA,
            validation_context=context,
        )
        for stamp in spec.page_stamps:
            _apply_stamp(writer, stamp)
        for empty in spec.empty_fields:
            fields.append_signature_field(
                writer,
                fields.SigFieldSpec(
                    sig_field_name=empty.name,
                    on_page=empty.place.page,
                    box=_int_box(empty.place.box),
                ),
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
            signer=signer,
            timestamper=self._timestamper,
            stamp_style=_stamp_style(spec.appearance_png),
            new_field_spec=new_field,
        )
        return writer, pdf_signer


@dataclass(frozen=True)
class PreparedSignature:
    """A PDF waiting for a signature from a key elsewhere: the document with a zero-filled
    /Contents at ``region``, and the DER signed attributes that key signs."""

    pdf: bytes
    signed_attributes: bytes
    document_digest: bytes
    region: tuple[int, int]
    field_name: str
    level: Level


def _no_signature(digest: bytes) -> bytes:
    raise AssertionError("an external signature is made outside medsign")


def _external(key: SigningKey, signature: bytes) -> ExternalSigner:
    return ExternalSigner(
        signing_cert=x509.Certificate.load(key.certificate_der),
        cert_registry=SimpleCertificateStore.from_certs(
            [x509.Certificate.load(der) for der in key.chain_der]
        ),
        signature_value=signature,
        signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": key.mechanism}),
    )


async def _long_term(
    pdf: bytes, prepared: PreparedSignature, context: ValidationContext, timestamper: TimeStamper
) -> bytes:
    """B-LT: the DSS for the signature (and its timestamp); B-LTA: a document timestamp."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    signature = next(
        s for s in reader.embedded_regular_signatures if s.field_name == prepared.field_name
    )
    output = io.BytesIO()
    await async_add_validation_info(signature, context, output=output)
    pdf = output.getvalue()
    if prepared.level is Level.B_LTA:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
        stamped = io.BytesIO()
        await signers.PdfTimeStamper(timestamper).async_timestamp_pdf(
            writer, "sha256", validation_context=context, output=stamped
        )
        pdf = stamped.getvalue()
    return pdf


def _apply_stamp(writer: IncrementalPdfFileWriter, stamp: PageStamp) -> None:
    x1, y1, x2, y2 = _int_box(stamp.place.box)
    style = _stamp_style(stamp.png)
    assert style is not None
    box = layout.BoxConstraints(width=x2 - x1, height=y2 - y1)
    style.create_stamp(writer, box, {}).apply(stamp.place.page, x1, y1)


def _int_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    # pyHanko takes whole points; round outwards so the field never shrinks.
    x1, y1, x2, y2 = box
    return (math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2))


def _sign(
    pdf_signer: signers.PdfSigner, writer: IncrementalPdfFileWriter, at: dt.datetime
) -> tuple[bytes, bytes, bytes]:
    """``PdfSigner.sign_pdf`` step by step, so the signing time is ours. Returns the signed
    PDF, the CMS in its /Contents and the digest of the signed byte ranges."""

    # The coroutine hands its result over through ``out`` rather than returning it: on the
    # main thread Python 3.11's asyncio.run formats repr(task) (result included) while
    # restoring the SIGINT handler, which for a 50 MB PDF costs a quarter of a second.
    out: list[tuple[bytes, bytes, bytes]] = []

    async def run() -> None:
        session = pdf_signer.init_signing_session(writer)
        session.system_time = at
        validation_info = await session.perform_presign_validation(writer)
        reserved = await session.estimate_signature_container_size(validation_info)
        tbs = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=reserved)
        # In place: the update is appended to the input stream instead of copying a large
        # PDF into a new buffer in 4 KiB chunks first.
        prepared, output = tbs.digest_tbs_document(in_place=True)
        assert isinstance(output, io.BytesIO)
        post = await tbs.perform_signature(
            document_digest=prepared.document_digest,
            pdf_cms_signed_attrs=PdfCMSSignedAttributes(
                signing_time=at,
                adobe_revinfo_attr=(
                    None if validation_info is None else validation_info.adobe_revinfo_attr
                ),
            ),
        )
        await post.post_signature_processing(output)
        out.append(
            (output.getvalue(), _without_padding(post.sig_contents), prepared.document_digest)
        )

    asyncio.run(run())
    return out[0]


_SIGNATURE_TIMESTAMP = "1.2.840.113549.1.9.16.2.14"


def _result(output: bytes, field_name: str, cms_der: bytes, document_digest: bytes) -> SignedPdf:
    """Read back only what is needed: walking asn1crypto's ``native`` views of a CMS with
    certificates costs about a second, the targeted lookups a few microseconds."""
    token = None
    signer = cms.ContentInfo.load(cms_der)["content"]["signer_infos"][0]
    attrs = signer["unsigned_attrs"]
    if not isinstance(attrs, core.Void):
        for attr in attrs:
            if attr["type"].dotted == _SIGNATURE_TIMESTAMP:
                token = bytes(attr["values"][0].dump())
    return SignedPdf(
        pdf=output,
        field_name=field_name,
        cms=cms_der,
        signature_timestamp=token,
        document_digest=document_digest,
    )


def _without_padding(contents: bytes) -> bytes:
    """/Contents is reserved larger than the CMS and zero-filled; keep the DER value only."""
    if len(contents) < 2 or contents[0] != 0x30:
        raise PdfUnreadableError("the signature's /Contents is not a DER SignedData")
    first = contents[1]
    if first < 0x80:
        return contents[: 2 + first]
    count = first & 0x7F
    length = int.from_bytes(contents[2 : 2 + count], "big")
    return contents[: 2 + count + length]


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
    "PDF_MECHANISMS",
    "DocumentLockedError",
    "EmptyField",
    "FieldBox",
    "Level",
    "PageStamp",
    "PdfAlgorithmError",
    "PdfInfo",
    "PdfSigner",
    "PreparedSignature",
    "SignatureField",
    "SignatureSpec",
    "SignedPdf",
    "SigningKey",
    "ValidationMaterial",
    "check_spec",
    "read_pdf",
]
