"""Signed PDFs and attacks on them, built for the verification tests.

The documents are made with pyHanko's writer; signatures with pyHanko's ``SimpleSigner``
over keys openssl holds, certified by medsign's CA (so the installation's verifier trusts
them); timestamps come from medsign's own TSA. The attacks follow the published classes:

* incremental saving attacks (ISA): a revision appended after the signature that changes
  page content, adds pages, or re-declares the whole cross-reference table;
* signature wrapping (SWA): the signed bytes moved, the /ByteRange pointing at them, new
  content in the widened gap;
* universal signature forgery (USF): /Contents or /ByteRange missing, null, empty, zero,
  not a CMS; a /SubFilter whose /Cert is missing;
* shadow attacks: content prepared in the signed revision and revealed later by changing an
  XObject, adding an overlay annotation, or pointing the trailer at an unused catalog.

Byte-level edits keep every length unchanged (values padded with spaces) so the rest of the
file, and its cross-reference offsets, stay as the signer wrote them.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.dss import DocumentSecurityStore

from tests.verify.support import OpenSSLSigner, openssl_signer

# -- documents -------------------------------------------------------------------------------

_FONT = generic.DictionaryObject(
    {
        pdf_name("/Type"): pdf_name("/Font"),
        pdf_name("/Subtype"): pdf_name("/Type1"),
        pdf_name("/BaseFont"): pdf_name("/Helvetica"),
    }
)


def _stream(writer: Any, content: bytes, **entries: Any) -> generic.IndirectObject:
    stream = generic.StreamObject(
        {pdf_name(f"/{k}"): v for k, v in entries.items()}, stream_data=content
    )
    return writer.add_object(stream)  # type: ignore[no-any-return]


def _text(line: str, y: int = 720) -> bytes:
    return f"BT /F1 12 Tf 72 {y} Td ({line}) Tj ET".encode()


def _form_xobject(writer: Any, content: bytes, box: tuple[int, int, int, int]) -> Any:
    return _stream(
        writer,
        content,
        Type=pdf_name("/XObject"),
        Subtype=pdf_name("/Form"),
        BBox=generic.ArrayObject(generic.NumberObject(v) for v in box),
        Resources=generic.DictionaryObject(
            {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): _FONT})}
        ),
    )


def base_pdf(*, text_field: str | None = "Diagnosis", shadow: bool = False) -> bytes:
    """A one-page discharge summary with a text field, written with a classic xref table.

    The page draws the form XObject /Cover over a line of text (a shadow "hide" needs
    something to uncover). With ``shadow``, the file also carries an unused catalog with its
    own page tree (a shadow "hide-and-replace" needs a prepared document to switch to).
    """
    writer = PdfFileWriter(stream_xrefs=False)
    cover = _form_xobject(writer, b"1 1 1 rg 60 640 300 30 re f", (0, 0, 612, 792))
    content = _stream(
        writer,
        _text("Discharge summary: patient recovered.")
        + b"\n"
        + _text("Dose: 5 mg", 650)
        + b"\nq /Cover Do Q",
    )
    resources = generic.DictionaryObject(
        {
            pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): _FONT}),
            pdf_name("/XObject"): generic.DictionaryObject({pdf_name("/Cover"): cover}),
        }
    )
    page = PageObject(content, (0, 0, 612, 792), resources)
    writer.insert_page(page)
    if text_field is not None:
        page_ref = writer.root["/Pages"]["/Kids"][0]
        appearance = _form_xobject(writer, b"/Tx BMC EMC", (0, 0, 200, 20))
        field = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name("/Widget"),
                pdf_name("/FT"): pdf_name("/Tx"),
                pdf_name("/T"): generic.TextStringObject(text_field),
                pdf_name("/V"): generic.TextStringObject(""),
                pdf_name("/DA"): generic.TextStringObject("/Helv 10 Tf 0 g"),
                pdf_name("/Rect"): generic.ArrayObject(
                    generic.NumberObject(v) for v in (72, 500, 272, 520)
                ),
                pdf_name("/F"): generic.NumberObject(4),
                pdf_name("/P"): page_ref,
                pdf_name("/AP"): generic.DictionaryObject({pdf_name("/N"): appearance}),
            }
        )
        field_ref = writer.add_object(field)
        page_obj = page_ref.get_object()
        page_obj[pdf_name("/Annots")] = generic.ArrayObject([field_ref])
        writer.root[pdf_name("/AcroForm")] = writer.add_object(
            generic.DictionaryObject(
                {
                    pdf_name("/Fields"): generic.ArrayObject([field_ref]),
                    pdf_name("/DA"): generic.TextStringObject("/Helv 10 Tf 0 g"),
                    pdf_name("/DR"): generic.DictionaryObject(
                        {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/Helv"): _FONT})}
                    ),
                }
            )
        )
    if shadow:
        shadow_content = _stream(writer, _text("Discharge summary: patient deceased."))
        shadow_page = PageObject(shadow_content, (0, 0, 612, 792), resources)
        pages = writer.add_object(
            generic.DictionaryObject(
                {
                    pdf_name("/Type"): pdf_name("/Pages"),
                    pdf_name("/Count"): generic.NumberObject(1),
                    pdf_name("/Kids"): generic.ArrayObject(),
                }
            )
        )
        shadow_page[pdf_name("/Parent")] = pages
        pages.get_object()["/Kids"].append(writer.add_object(shadow_page))
        writer.add_object(
            generic.DictionaryObject(
                {pdf_name("/Type"): pdf_name("/Catalog"), pdf_name("/Pages"): pages}
            )
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def update(data: bytes, change: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    """``data`` with one incremental update made by ``change``."""
    writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=True)
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _field(writer: IncrementalPdfFileWriter, name: str) -> generic.IndirectObject:
    for ref in writer.root["/AcroForm"]["/Fields"]:
        if ref.get_object()["/T"] == name:
            return ref  # type: ignore[no-any-return]
    raise KeyError(name)


def fill_text_field(data: bytes, name: str, value: str) -> bytes:
    """Form filling as a viewer does it: the field's /V and a new appearance stream."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        ref = _field(writer, name)
        field = ref.get_object()
        field[pdf_name("/V")] = generic.TextStringObject(value)
        appearance = _form_xobject(
            writer,
            b"/Tx BMC BT /F1 10 Tf 2 6 Td (" + value.encode() + b") Tj ET EMC",
            (0, 0, 200, 20),
        )
        field[pdf_name("/AP")] = generic.DictionaryObject({pdf_name("/N"): appearance})
        writer.mark_update(ref)

    return update(data, change)


# -- signing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PdfSigningKey:
    """A key openssl holds with its medsign-issued certificate, as pyHanko loads them."""

    signer: OpenSSLSigner
    chain: Path  # the issuing CA certificate(s), PEM

    def simple_signer(self) -> signers.SimpleSigner:
        loaded = signers.SimpleSigner.load(
            str(self.signer.key), str(self.signer.certificate), ca_chain_files=(str(self.chain),)
        )
        assert loaded is not None
        return loaded


def signing_key(
    runtime: Any, work: Path, *, subject: str = "/CN=Dr. Zhang/serialNumber=E4004"
) -> PdfSigningKey:
    signer = openssl_signer(runtime, work, subject=subject)
    chain = work / f"chain-{signer.serial}.pem"
    chain.write_text("".join(_pem(der) for der in runtime.authority.chain(signer.serial)[:-1]))
    return PdfSigningKey(signer, chain)


def _pem(der: bytes) -> str:
    from medsign.ca.authority import pem_encode

    return pem_encode(der)


class MedsignTimeStamper(timestamps.TimeStamper):
    """pyHanko's TimeStamper answered by medsign's TSA in process."""

    def __init__(self, runtime: Any) -> None:
        super().__init__(include_nonce=False)
        self.runtime = runtime

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> Any:
        token = self.runtime.tsa.stamp(message_digest, md_algorithm)
        return cms.ContentInfo.load(token)


def sign(
    data: bytes,
    key: PdfSigningKey,
    *,
    field: str = "Signature1",
    certify: int | None = None,
    timestamper: timestamps.TimeStamper | None = None,
    bytes_reserved: int | None = None,
) -> bytes:
    """An approval signature (or a certification one with DocMDP ``certify``) in a new
    invisible field, PAdES (ETSI.CAdES.detached), SHA-256. ``bytes_reserved`` leaves room
    in /Contents for another CMS to be put there later (``with_contents``)."""
    meta = signers.PdfSignatureMetadata(
        field_name=field,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=certify is not None,
        docmdp_permissions=MDPPerm(certify) if certify is not None else MDPPerm.FILL_FORMS,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=True)
    out = signers.sign_pdf(
        writer,
        meta,
        signer=key.simple_signer(),
        timestamper=timestamper,
        new_field_spec=fields.SigFieldSpec(sig_field_name=field),
        bytes_reserved=bytes_reserved,
    )
    return bytes(out.getvalue())


def add_dss(data: bytes, runtime: Any, key: PdfSigningKey, *, fresh_crl: bool = False) -> bytes:
    """A DSS update with the signer's chain and its issuing CA's CRL.

    With ``fresh_crl`` the CRL is issued after the signature, so that it speaks for the
    signing time offline; CRL times have one-second resolution, hence the pause.
    """
    record = key.signer.record
    certs = [asn1_x509.Certificate.load(runtime.authority.get(record.serial_hex).certificate_der)]
    certs += [asn1_x509.Certificate.load(der) for der in runtime.authority.chain(record.serial_hex)]
    if fresh_crl:
        time.sleep(1.1)
        crl_der = runtime.crls.publish(record.issuer_ca_id)
    else:
        crl_der = runtime.crls.current(record.issuer_ca_id)
    crl = asn1_crl.CertificateList.load(crl_der)
    stream = io.BytesIO(data)
    DocumentSecurityStore.add_dss(stream, sig_contents=None, certs=certs, crls=[crl])
    return stream.getvalue()


def timestamp_document(data: bytes, runtime: Any, *, field: str = "DocTimeStamp1") -> bytes:
    """A document timestamp (ETSI.RFC3161) from medsign's TSA, as LTA processing adds it."""
    stamper = signers.PdfTimeStamper(MedsignTimeStamper(runtime), field_name=field)
    writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=True)
    out = asyncio.run(stamper.async_timestamp_pdf(writer, "sha256"))
    return bytes(out.getvalue())


# -- reading what a signature wrote ----------------------------------------------------------


@dataclass(frozen=True)
class SignatureBytes:
    """Where the last signature's dictionary sits in the file."""

    contents_start: int  # the '<' of /Contents
    contents_end: int  # just after its '>'
    byte_range_start: int  # the '/' of /ByteRange
    byte_range_end: int  # just after its ']'
    byte_range: tuple[int, int, int, int]


_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def last_signature(data: bytes) -> SignatureBytes:
    matches = list(_BYTE_RANGE.finditer(data))
    match = matches[-1]
    values = tuple(int(v) for v in match.groups())
    _, length1, start2, _ = values
    assert data[length1 : length1 + 1] == b"<" and data[start2 - 1 : start2] == b">"
    return SignatureBytes(
        contents_start=length1,
        contents_end=start2,
        byte_range_start=match.start(),
        byte_range_end=match.end(),
        byte_range=values,  # type: ignore[arg-type]
    )


def patch(data: bytes, start: int, end: int, replacement: bytes) -> bytes:
    """Replace ``data[start:end]`` by ``replacement`` padded with spaces to the same length."""
    assert len(replacement) <= end - start, (replacement, end - start)
    return data[:start] + replacement.ljust(end - start, b" ") + data[end:]


def with_contents(data: bytes, cms_der: bytes) -> bytes:
    """The last signature's /Contents replaced by ``cms_der`` (zero padded, same length)."""
    where = last_signature(data)
    room = (where.contents_end - where.contents_start - 2) // 2
    assert len(cms_der) <= room
    hex_value = cms_der.hex().upper().encode().ljust(room * 2, b"0")
    return data[: where.contents_start + 1] + hex_value + data[where.contents_end - 1 :]


def contents_of(data: bytes) -> bytes:
    where = last_signature(data)
    raw = bytes.fromhex(data[where.contents_start + 1 : where.contents_end - 1].decode())
    # Parsed leniently, the first TLV is the CMS; the zero padding after it is ignored.
    return bytes(cms.ContentInfo.load(raw).dump())


def revisions(data: bytes) -> int:
    return int(PdfFileReader(io.BytesIO(data), strict=True).xrefs.total_revisions)


# -- attacks ---------------------------------------------------------------------------------

_EVIL = "Discharge summary: patient deceased."


def _page(writer: IncrementalPdfFileWriter) -> generic.IndirectObject:
    page_ref = writer.find_page_for_modification(0)[0]
    return generic.IndirectObject(page_ref.idnum, page_ref.generation, writer)


def isa_replace_content(signed: bytes) -> bytes:
    """ISA: a revision that overwrites the page's content stream object (same number)."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        content = _page(writer).get_object().raw_get("/Contents")
        writer.objects[(content.reference.generation, content.reference.idnum)] = (
            generic.StreamObject(stream_data=_text(_EVIL))
        )

    return update(signed, change)


def isa_new_content(signed: bytes) -> bytes:
    """ISA: a revision that points the page at a new content stream."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        page = _page(writer)
        page.get_object()[pdf_name("/Contents")] = _stream(writer, _text(_EVIL))
        writer.mark_update(page)

    return update(signed, change)


def isa_add_page(signed: bytes) -> bytes:
    """Pages added after signing."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        content = _stream(writer, _text("Addendum: dose doubled."))
        writer.insert_page(PageObject(content, (0, 0, 612, 792)))

    return update(signed, change)


def isa_full_xref(signed: bytes) -> bytes:
    """ISA with a complete cross-reference table and no /Prev: the appended section
    re-declares every object, so readers see one revision only."""
    changed = isa_replace_content(signed)
    reader = PdfFileReader(io.BytesIO(changed), strict=True)
    last = reader.last_startxref
    size = int(reader.trailer["/Size"])
    entries = [b"0000000000 65535 f \n"]
    for idnum in range(1, size):
        offset = reader.xrefs[generic.Reference(idnum, 0, reader)]
        if isinstance(offset, int):
            entries.append(b"%010d 00000 n \n" % offset)
        else:
            entries.append(b"0000000000 00001 f \n")
    tail = changed[last:]
    trailer = tail[tail.index(b"trailer") : tail.index(b"startxref")]
    trailer = re.sub(rb"/Prev\s+\d+", b"", trailer)
    table = b"xref\n0 %d\n" % size + b"".join(entries)
    return changed[:last] + table + trailer + b"startxref\n%d\n%%%%EOF\n" % last


def swa_relocated(signed: bytes) -> bytes:
    """SWA: the signed bytes after /Contents moved to the end of the file, the /ByteRange
    pointing at the copy, the widened gap holding the original (now unsigned) bytes."""
    where = last_signature(signed)
    start1, length1, start2, length2 = where.byte_range
    signed_tail = signed[start2 : start2 + length2]
    new_range = b"/ByteRange [%d %d %d %d]" % (start1, length1, len(signed), length2)
    wrapped = patch(signed, where.byte_range_start, where.byte_range_end, new_range)
    return wrapped + signed_tail


def swa_gap_with_extra_bytes(signed: bytes) -> bytes:
    """SWA: /Contents shortened inside an unchanged /ByteRange gap, extra bytes (a second
    hex string) smuggled into the gap the signature does not cover."""
    where = last_signature(signed)
    cms_hex = contents_of(signed).hex().upper().encode()
    gap = where.contents_end - where.contents_start
    extra = b"/Smuggled <"
    filler = gap - len(cms_hex) - 3 - len(extra)
    assert filler > 0
    new_gap = b"<" + cms_hex + b">" + extra + b"0" * filler + b">"
    assert len(new_gap) == gap
    return signed[: where.contents_start] + new_gap + signed[where.contents_end :]


def usf(signed: bytes, variant: str) -> bytes:
    """Universal signature forgery: the signature dictionary's /Contents, /ByteRange or
    /SubFilter replaced in place (same length) by what a forger would write."""
    where = last_signature(signed)
    contents = (where.contents_start - len(b"/Contents "), where.contents_end)
    assert signed[contents[0] : where.contents_start].strip() == b"/Contents"
    byte_range = (where.byte_range_start, where.byte_range_end)
    if variant == "contents-missing":
        return patch(signed, *contents, b"")
    if variant == "contents-null":
        return patch(signed, *contents, b"/Contents null")
    if variant == "contents-empty":
        return patch(signed, *contents, b"/Contents <>")
    if variant == "contents-zero":
        size = where.contents_end - where.contents_start
        return patch(signed, *contents, b"/Contents <" + b"0" * (size - 2) + b">")
    if variant == "contents-not-cms":
        size = where.contents_end - where.contents_start
        junk = (b"DEADBEEF" * size)[: size - 2]
        return patch(signed, *contents, b"/Contents <" + junk + b">")
    if variant == "byterange-missing":
        return patch(signed, *byte_range, b"")
    if variant == "byterange-zero":
        return patch(signed, *byte_range, b"/ByteRange [0 0 0 0]")
    if variant == "byterange-null":
        return patch(signed, *byte_range, b"/ByteRange null")
    if variant == "no-cert":
        # adbe.x509.rsa_sha1 carries the certificate in /Cert, which is not there.
        at = signed.index(b"/SubFilter", where.byte_range_start - 4000)
        end = signed.index(b"/", at + len(b"/SubFilter "))
        end = re.compile(rb"[\s/>]").search(signed, end + 1)
        assert end is not None
        return patch(signed, at, end.start(), b"/SubFilter /adbe.x509.rsa_sha1")
    raise ValueError(variant)


def shadow_hide(signed: bytes) -> bytes:
    """Shadow hide: the /Cover form XObject the signed page draws over a line is emptied."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        resources = _page(writer).get_object()["/Resources"]
        cover = resources["/XObject"].raw_get("/Cover")
        replacement = generic.StreamObject(
            dict(cover.get_object().items()), stream_data=b"% nothing"
        )
        writer.objects[(cover.reference.generation, cover.reference.idnum)] = replacement

    return update(signed, change)


def shadow_overlay_annotation(signed: bytes) -> bytes:
    """Shadow replace via overlay: a new annotation whose appearance covers the page text."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        page_ref = _page(writer)
        page = page_ref.get_object()
        appearance = _form_xobject(
            writer, b"1 1 1 rg 0 0 400 30 re f 0 g " + _text(_EVIL, 10), (0, 0, 400, 30)
        )
        annotation = writer.add_object(
            generic.DictionaryObject(
                {
                    pdf_name("/Type"): pdf_name("/Annot"),
                    pdf_name("/Subtype"): pdf_name("/FreeText"),
                    pdf_name("/Rect"): generic.ArrayObject(
                        generic.NumberObject(v) for v in (60, 705, 460, 735)
                    ),
                    pdf_name("/Contents"): generic.TextStringObject(_EVIL),
                    pdf_name("/DA"): generic.TextStringObject("/Helv 12 Tf 0 g"),
                    pdf_name("/AP"): generic.DictionaryObject({pdf_name("/N"): appearance}),
                }
            )
        )
        annots = page.get("/Annots")
        if isinstance(annots, generic.ArrayObject):
            annots.append(annotation)
        else:
            page[pdf_name("/Annots")] = generic.ArrayObject([annotation])
        writer.mark_update(page_ref)

    return update(signed, change)


def _trailer_update(
    signed: bytes, entries: bytes, xref_body: bytes = b"0 1\n0000000000 65535 f \n"
) -> bytes:
    reader = PdfFileReader(io.BytesIO(signed), strict=True)
    trailer = reader.trailer
    ids = b" ".join(b"<" + bytes(v.original_bytes).hex().encode() + b">" for v in trailer["/ID"])
    start = len(signed)
    section = (
        b"xref\n"
        + xref_body
        + b"trailer\n<< /Size %d /Prev %d /ID [%s] %s >>\n"
        % (int(trailer["/Size"]), reader.last_startxref, ids, entries)
    )
    return signed + section + b"startxref\n%d\n%%%%EOF\n" % start


def shadow_hide_and_replace(signed_shadow: bytes) -> bytes:
    """Shadow hide-and-replace: the signed revision carries an unused catalog with another
    page; the appended section holds no object at all, only a trailer pointing at it."""
    reader = PdfFileReader(io.BytesIO(signed_shadow), strict=True)
    catalog = reader.trailer.raw_get("/Root").reference
    shadow = None
    for idnum in range(1, int(reader.trailer["/Size"])):
        if idnum == catalog.idnum:
            continue
        try:
            obj = reader.get_object(generic.Reference(idnum, 0, reader))
        except Exception:
            continue
        if isinstance(obj, generic.DictionaryObject) and obj.get("/Type") == "/Catalog":
            shadow = idnum
    assert shadow is not None
    return _trailer_update(signed_shadow, b"/Root %d 0 R" % shadow)


def shadow_xref_redirect(signed_shadow: bytes) -> bytes:
    """Shadow hide-and-replace through the xref: the catalog's number redirected to the
    offset of the unused catalog prepared in the signed revision."""
    reader = PdfFileReader(io.BytesIO(signed_shadow), strict=True)
    catalog = reader.trailer.raw_get("/Root").reference
    for idnum in range(1, int(reader.trailer["/Size"])):
        ref = generic.Reference(idnum, 0, reader)
        obj = reader.get_object(ref)
        if (
            idnum != catalog.idnum
            and isinstance(obj, generic.DictionaryObject)
            and obj.get("/Type") == "/Catalog"
        ):
            offset = reader.xrefs[ref]
            break
    else:
        raise AssertionError("no shadow catalog")
    body = b"0 1\n0000000000 65535 f \n%d 1\n%010d 00000 n \n" % (catalog.idnum, offset)
    root = b"/Root %d 0 R" % catalog.idnum
    return _trailer_update(signed_shadow, root, body)


def truncated_in_signature(signed: bytes) -> bytes:
    where = last_signature(signed)
    return signed[: where.contents_start + 200]


def tamper_signed_bytes(pdf: bytes) -> bytes:
    """One word of the page text changed in place, inside every signature's byte range."""
    at = pdf.index(b"patient recovered")
    return patch(pdf, at, at + len(b"patient recovered"), b"patient RECOVERED")


def with_trailing_garbage(signed: bytes) -> bytes:
    return signed + b"% unsigned trailing bytes: patient deceased\n"


# -- files that are not clean PDFs -----------------------------------------------------------


def encrypted_pdf() -> bytes:
    writer = PdfFileWriter(stream_xrefs=False)
    writer.insert_page(PageObject(_stream(writer, _text("Sealed")), (0, 0, 612, 792)))
    writer.encrypt("owner-secret", "user-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def broken_xref(pdf: bytes) -> bytes:
    """The last cross-reference table's keyword and first entry overwritten."""
    at = pdf.rindex(b"xref\n0 ")
    return patch(pdf, at, at + 30, b"broken cross-reference table")


def isa_rewrite_signature_dictionary(signed: bytes, field: str = "Signature1") -> bytes:
    """ISA on the signature itself: a revision that rewrites the signature dictionary."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        value = _field(writer, field).get_object().raw_get("/V")
        value.get_object()[pdf_name("/Reason")] = generic.TextStringObject("approved")
        writer.mark_update(value)

    return update(signed, change)


def isa_remove_signature_field(signed: bytes, field: str = "Signature1") -> bytes:
    """ISA that hides the signature: its field taken out of the form and the page."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        target = _field(writer, field).reference
        acro_form = writer.root.raw_get("/AcroForm")
        fields = acro_form.get_object()["/Fields"]
        kept = [ref for ref in fields if ref.reference != target]
        acro_form.get_object()[pdf_name("/Fields")] = generic.ArrayObject(kept)
        writer.mark_update(acro_form)
        page = _page(writer)
        annots = page.get_object().get("/Annots")
        if isinstance(annots, generic.ArrayObject):
            page.get_object()[pdf_name("/Annots")] = generic.ArrayObject(
                ref for ref in annots if getattr(ref, "reference", None) != target
            )
            writer.mark_update(page)

    return update(signed, change)


def hybrid_reference_pdf() -> bytes:
    """A hybrid-reference file: a classic xref table whose trailer's /XRefStm names an xref
    stream too (readers that know streams and readers that do not see different files)."""
    out = bytearray(b"%PDF-1.5\n")
    offsets = {}
    bodies = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    }
    for number, body in bodies.items():
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    stream_at = len(out)
    entry = bytes([1]) + stream_at.to_bytes(2, "big") + bytes([0])
    out += b"4 0 obj\n<< /Type /XRef /Size 5 /W [1 2 1] /Index [4 1] /Length %d >>\nstream\n" % (
        len(entry)
    )
    out += entry + b"\nendstream\nendobj\n"
    table_at = len(out)
    out += b"xref\n0 4\n0000000000 65535 f \n"
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in (1, 2, 3))
    out += b"trailer\n<< /Size 5 /Root 1 0 R /XRefStm %d >>\n" % stream_at
    out += b"startxref\n%d\n%%%%EOF\n" % table_at
    return bytes(out)
