"""The facts a verifier needs about the signatures in a PDF, read with pyHanko in strict mode.

Nothing here decides whether a signature is valid: ``medsign.verify.pdf`` does, with
medsign's own CMS, chain and status checks. This module says, for every signature field
that holds a value (approval, certification, document timestamp):

* what the signature dictionary holds: /Type, /SubFilter, the CMS in /Contents (trimmed of
  its zero padding), the /ByteRange and the digest of the bytes it names;
* whether that byte range is sane: it starts at 0, its only gap is exactly the /Contents hex
  string inside the signature dictionary, and it ends at the %%EOF of the revision the
  signature belongs to, with every cross-reference section up to that revision inside it;
* every revision after the signed one, classified by pyHanko's difference analysis
  (``DEFAULT_DIFF_POLICY``), honouring the DocMDP level of a certification signature and the
  field locks (/FieldMDP, /Lock) of the signature;
* the content of the document security store (DSS), for long-term validation;
* whether anything follows the last %%EOF.

Signature fields are collected from every revision, not only the newest one, so a signature
whose field was removed later is still reported (and its later changes judged).

A file that is not a clean, unencrypted PDF within the size limit raises one of the
``medsign.documents.errors`` input errors; every oddity of a signature itself is a fact
(``problems``, ``coverage_problem``, a change at level ``other``) for the verifier to fail.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import io
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from asn1crypto import cms, tsp
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffResult,
    ModificationLevel,
    SuspiciousModification,
)
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, MDPPerm, enumerate_sig_fields

from medsign.documents.errors import PdfEncryptedError, PdfTooLargeError, PdfUnreadableError
from medsign.errors import InputError

PDF_MAGIC = b"%PDF-"
DEFAULT_MAX_PDF_BYTES = 64 * 1024 * 1024
# The difference analysis runs once per (signature, later revision) pair; a file with more
# revisions than this is refused rather than analysed for minutes.
MAX_REVISIONS = 100

# CMS digest algorithms (by OID) whose byte-range digest is computed.
_DIGESTS = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "1.2.156.10197.1.401": "sm3",
}
_OTHER_DIGEST_NAMES = {"1.3.14.3.2.26": "sha1", "1.2.840.113549.2.5": "md5"}
DEFAULT_DIGEST = "sha256"

SIGNATURE_SUB_FILTERS = frozenset({"/adbe.pkcs7.detached", "/ETSI.CAdES.detached"})
TIMESTAMP_SUB_FILTER = "/ETSI.RFC3161"

_WHITESPACE = b"\x00\t\n\x0c\r "
_HEX = re.compile(rb"\A[0-9A-Fa-f]*\Z")
_EOF_TAIL = re.compile(rb"startxref[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+%%EOF(\r\n|\r|\n)?\Z")

_PARSE_ERRORS = (
    PdfError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    AssertionError,
    RecursionError,
    zlib.error,  # a damaged compressed stream
)

# pyHanko logs every suspicious modification at WARNING with a traceback; here they are
# findings reported to the caller, not operational problems.
logging.getLogger("pyhanko.sign.diff_analysis").setLevel(logging.ERROR)


class SignatureKind(StrEnum):
    APPROVAL = "approval"
    CERTIFICATION = "certification"
    DOCUMENT_TIMESTAMP = "document-timestamp"


class ChangeLevel(StrEnum):
    """pyHanko's ``ModificationLevel``: the least permissive class that explains a change."""

    NONE = "none"
    LTA_UPDATES = "lta-updates"  # DSS and document timestamps (and their signature fields)
    FORM_FILLING = "form-filling"  # field values, their appearances, further signatures
    ANNOTATIONS = "annotations"
    OTHER = "other"  # anything else: never allowed after a signature

    @property
    def rank(self) -> int:
        return list(ChangeLevel).index(self)


class Coverage(StrEnum):
    ENTIRE_FILE = "entire-file"  # the byte range covers every byte but /Contents
    ENTIRE_REVISION = "entire-revision"  # ... up to the end of its revision; more follows
    INVALID = "invalid"  # anything else (see ``coverage_problem``)


@dataclass(frozen=True)
class Revision:
    index: int  # 0 is the original document
    startxref: int  # where its cross-reference section starts
    xref_type: str  # "table" | "stream"


@dataclass(frozen=True)
class RevisionChange:
    """One revision after a signature, judged against the signed revision."""

    revision: int
    level: ChangeLevel  # everything from the signed revision up to this one
    reason: str | None  # why the changes are not allowed (level OTHER)
    objects: int  # objects written in this revision
    fields: tuple[str, ...]  # form fields first changed by this revision
    signatures: tuple[str, ...]  # signature fields given a value in this revision
    dss: bool  # the document security store was written in this revision


@dataclass(frozen=True)
class DSSContent:
    certificates: tuple[bytes, ...] = ()  # DER
    ocsp_responses: tuple[bytes, ...] = ()  # DER OCSPResponse
    crls: tuple[bytes, ...] = ()  # DER CertificateList
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class PdfSignature:
    field_name: str
    kind: SignatureKind
    docmdp: int | None  # DocMDP permission in force from this signature (1, 2 or 3)
    sub_filter: str | None  # e.g. "/ETSI.CAdES.detached"
    contents: bytes  # the CMS (a TimeStampToken for a document timestamp), padding removed
    byte_range: tuple[int, ...] | None
    digest_algorithm: str  # named by the CMS (the imprint's for a timestamp), else sha256
    digest: bytes | None  # over the byte range; None when it does not lie inside the file
    revision: int | None  # the revision the signature belongs to
    coverage: Coverage
    coverage_problem: str | None
    problems: tuple[str, ...]  # what is wrong with the signature dictionary itself
    changes: tuple[RevisionChange, ...]  # every later revision, oldest first
    claimed_time: dt.datetime | None = None  # /M: the signer's own, unproven signing time

    @property
    def modification_level(self) -> ChangeLevel:
        levels = [c.level for c in self.changes]
        return max(levels, key=lambda level: level.rank, default=ChangeLevel.NONE)

    @property
    def signed_ranges(self) -> tuple[tuple[int, int], ...]:
        """(offset, length) pairs of the byte range; empty when there is no usable one."""
        if self.digest is None or self.byte_range is None:
            return ()
        values = self.byte_range
        return tuple((values[i], values[i + 1]) for i in range(0, len(values), 2))


@dataclass(frozen=True)
class PdfInspection:
    size: int
    revisions: tuple[Revision, ...]
    signatures: tuple[PdfSignature, ...]  # in signing order (by revision)
    dss: DSSContent
    trailing_bytes: int  # bytes after the last %%EOF (and its end-of-line)
    trailing_whitespace_only: bool

    def signed_bytes(self, data: bytes, signature: PdfSignature) -> bytes:
        """The bytes a signature's byte range names (``data`` is the inspected file)."""
        if len(data) != self.size:
            raise InputError("these are not the bytes that were inspected")
        return b"".join(data[start : start + length] for start, length in signature.signed_ranges)


# -- reading -----------------------------------------------------------------------------------


def inspect_pdf(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_PDF_BYTES, analyse_changes: bool = True
) -> PdfInspection:
    """The signature facts of ``data``.

    ``analyse_changes=False`` skips pyHanko's difference analysis (the baseline of the
    benchmark): every later revision is then reported as an unexplained change, so such a
    report can fail a signature but never pass one wrongly.

    Raises ``PdfTooLargeError`` (over ``max_bytes`` or ``MAX_REVISIONS``),
    ``PdfUnreadableError`` (not a PDF, a broken cross-reference table or object structure,
    a hybrid-reference file) or ``PdfEncryptedError``.
    """
    if len(data) > max_bytes:
        raise PdfTooLargeError(f"the PDF is {len(data)} bytes; the limit is {max_bytes}")
    if not data.startswith(PDF_MAGIC):
        raise PdfUnreadableError("not a PDF: the file does not start with %PDF-")
    reader = _open(data)
    try:
        revisions = _revisions(reader)
        signatures = _Inspector(data, reader, analyse_changes).signatures()
        dss = _dss(reader)
    # Walking the form tree of a hostile file fails in pyHanko's own way or with a bare
    # lookup/type error deep inside it; either way the file cannot be read cleanly.
    except _PARSE_ERRORS as exc:
        raise _unreadable(exc) from exc
    trailing = _trailing(data)
    return PdfInspection(
        size=len(data),
        revisions=revisions,
        signatures=signatures,
        dss=dss,
        trailing_bytes=len(trailing),
        trailing_whitespace_only=not trailing.strip(_WHITESPACE),
    )


def _unreadable(exc: Exception) -> PdfUnreadableError:
    text = str(exc).lower()
    if "xref" in text or "startxref" in text or "trailer" in text:
        why = "broken cross-reference table"
    elif "eof" in text:
        why = "no end-of-file marker"
    elif "header" in text:
        why = "no valid PDF header"
    else:
        why = "malformed object structure"
    # pyHanko's own message may quote document content: logged, not returned.
    return PdfUnreadableError(
        f"the PDF cannot be parsed cleanly: {why} ({type(exc).__name__}: {exc})",
        public=f"the PDF cannot be parsed cleanly: {why}",
    )


def _open(data: bytes) -> PdfFileReader:
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True)
        encrypted = reader.encrypted
    # Untrusted bytes: the parser fails in many ways (its own PdfReadError, but also
    # ValueError, KeyError, IndexError, AssertionError, RecursionError on hostile nesting);
    # each means the file cannot be read cleanly.
    except Exception as exc:
        raise _unreadable(exc) from exc
    if encrypted:
        raise PdfEncryptedError("the PDF is encrypted")
    if reader.xrefs.hybrid_xrefs_present:
        raise PdfUnreadableError(
            "hybrid-reference file (an xref table with /XRefStm): strict reading refuses it"
        )
    if reader.xrefs.total_revisions > MAX_REVISIONS:
        raise PdfTooLargeError(
            f"the PDF has {reader.xrefs.total_revisions} revisions; the limit is {MAX_REVISIONS}"
        )
    return reader


def _revisions(reader: PdfFileReader) -> tuple[Revision, ...]:
    out = []
    for index in range(reader.xrefs.total_revisions):
        info = reader.xrefs.get_xref_container_info(index)
        kind = "stream" if info.stream_ref is not None else "table"
        out.append(Revision(index, int(info.declared_startxref), kind))
    return tuple(out)


def _trailing(data: bytes) -> bytes:
    end = data.rfind(b"%%EOF")
    if end < 0:  # pyHanko found one; kept for completeness
        return data
    end += len(b"%%EOF")
    for eol in (b"\r\n", b"\n", b"\r"):
        if data.startswith(eol, end):
            end += len(eol)
            break
    return data[end:]


def _dss(reader: PdfFileReader) -> DSSContent:
    try:
        dss = _get(reader.root, "/DSS")
    except Exception as exc:  # a malformed catalog entry: reported, not fatal
        return DSSContent(problems=(f"the /DSS entry cannot be read ({type(exc).__name__})",))
    if dss is None:
        return DSSContent()
    problems: list[str] = []

    def streams(key: str) -> tuple[bytes, ...]:
        out: list[bytes] = []
        try:
            entries = _get(dss, key)
            if entries is None:
                return ()
            for entry in entries:
                stream = entry.get_object()
                if not isinstance(stream, generic.StreamObject):
                    problems.append(f"a {key} entry of the DSS is not a stream")
                    continue
                out.append(bytes(stream.data))
        except Exception as exc:
            problems.append(f"the DSS {key} array cannot be read ({type(exc).__name__})")
        return tuple(out)

    if not isinstance(dss, generic.DictionaryObject):
        return DSSContent(problems=("the /DSS entry is not a dictionary",))
    return DSSContent(
        certificates=streams("/Certs"),
        ocsp_responses=streams("/OCSPs"),
        crls=streams("/CRLs"),
        problems=tuple(problems),
    )


# -- signatures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    name: str
    field: generic.DictionaryObject
    value: Any  # the field's /V as stored: usually an IndirectObject
    holder: tuple[int, int]  # the object whose bytes hold the signature dictionary
    key: tuple[int, int] | None  # the signature dictionary's own reference, if indirect

    @property
    def identity(self) -> tuple[int, int]:
        return self.holder


class _Inspector:
    def __init__(self, data: bytes, reader: PdfFileReader, analyse_changes: bool = True) -> None:
        self.data = data
        self.reader = reader
        self.analyse_changes = analyse_changes
        self.xrefs = reader.xrefs
        self.total = reader.xrefs.total_revisions
        self._written_cache: dict[int, tuple[int, tuple[str, ...], bool]] = {}

    def signatures(self) -> tuple[PdfSignature, ...]:
        found = list(self._fields())
        first = [self._facts(item) for item in found]
        # Which revision gave which field its signature: needed to describe later changes.
        added: dict[int, list[str]] = {}
        for facts in first:
            if facts.revision is not None:
                added.setdefault(facts.revision, []).append(facts.field_name)
        out = []
        for item, facts in zip(found, first, strict=True):
            changes = self._changes(item, facts, added)
            out.append(replace(facts, changes=changes))
        return tuple(sorted(out, key=lambda s: (s.revision is None, s.revision or 0)))

    def _fields(self) -> Iterator[_Found]:
        """Filled signature fields of every revision, newest first, each signature once."""
        seen: set[tuple[int, int]] = set()
        handlers: list[Any] = [self.reader]
        handlers += [self.reader.get_historical_resolver(r) for r in range(self.total - 2, -1, -1)]
        for index, handler in enumerate(handlers):
            try:
                found = self._fields_of(handler, seen)
            except _PARSE_ERRORS:
                if index == 0:
                    raise
                # Older revisions only add signatures whose fields were removed later; one
                # that strict reading cannot resolve on its own (linearised files refer
                # forward) is skipped: its signatures are judged through the newest one.
                continue
            for item in found:
                seen.add(item.identity)
                yield item

    @staticmethod
    def _fields_of(handler: Any, seen: set[tuple[int, int]]) -> list[_Found]:
        out: list[_Found] = []
        for name, value, field_ref in enumerate_sig_fields(handler):
            if value is None or isinstance(value, generic.NullObject):
                continue
            field_key = (field_ref.reference.idnum, field_ref.reference.generation)
            key: tuple[int, int] | None = None
            if isinstance(value, generic.IndirectObject):
                key = (value.reference.idnum, value.reference.generation)
            item = _Found(str(name), field_ref.get_object(), value, key or field_key, key)
            if item.identity not in seen and all(o.identity != item.identity for o in out):
                out.append(item)
        return out

    def _ref(self, key: tuple[int, int]) -> generic.Reference:
        return generic.Reference(key[0], key[1], pdf=self.reader)

    def _facts(self, item: _Found) -> PdfSignature:
        try:
            revision: int | None = self.xrefs.get_last_change(self._ref(item.holder))
        except KeyError:
            return _no_signature(item.name, None, "it is in no cross-reference section")
        try:
            sig = (
                item.value.get_object()
                if isinstance(item.value, generic.IndirectObject)
                else item.value
            )
            if not isinstance(sig, generic.DictionaryObject):
                return _no_signature(item.name, revision, "it is not a dictionary")
            return self._read(item, sig, revision)
        # One signature dictionary that cannot be read makes that signature fail, not the file.
        except _PARSE_ERRORS as exc:
            return _no_signature(item.name, revision, f"it cannot be read ({type(exc).__name__})")

    def _read(
        self, item: _Found, sig: generic.DictionaryObject, revision: int | None
    ) -> PdfSignature:
        problems: list[str] = []
        kind, sub_filter = _kind(sig, item.key, self.reader, problems)
        docmdp = _docmdp(sig, item.field, kind, problems)
        raw_contents = _raw_contents(sig, problems)
        contents = _trim(raw_contents, problems)
        byte_range = _byte_range(sig, problems)
        algorithm = _digest_algorithm(contents, kind, problems)
        digest = _digest(self.data, byte_range, algorithm)
        coverage, coverage_problem = self._coverage(item, byte_range, raw_contents, revision)
        return PdfSignature(
            claimed_time=_claimed_time(sig),
            field_name=item.name,
            kind=kind,
            docmdp=docmdp,
            sub_filter=sub_filter,
            contents=contents,
            byte_range=byte_range,
            digest_algorithm=algorithm,
            digest=digest,
            revision=revision,
            coverage=coverage,
            coverage_problem=coverage_problem,
            problems=tuple(problems),
            changes=(),
        )

    # -- byte range ------------------------------------------------------------------------

    def _coverage(
        self,
        item: _Found,
        byte_range: tuple[int, ...] | None,
        raw_contents: bytes | None,
        revision: int | None,
    ) -> tuple[Coverage, str | None]:
        try:
            self._check_coverage(item, byte_range, raw_contents, revision)
        except _CoverageError as exc:
            return Coverage.INVALID, str(exc)
        assert byte_range is not None
        if byte_range[2] + byte_range[3] == len(self.data):
            return Coverage.ENTIRE_FILE, None
        return Coverage.ENTIRE_REVISION, None

    def _check_coverage(
        self,
        item: _Found,
        byte_range: tuple[int, ...] | None,
        raw_contents: bytes | None,
        revision: int | None,
    ) -> None:
        data = self.data
        if byte_range is None:
            raise _CoverageError("there is no usable /ByteRange")
        if len(byte_range) != 4:
            raise _CoverageError(
                f"the /ByteRange has {len(byte_range)} numbers instead of four (two ranges)"
            )
        start1, length1, start2, length2 = byte_range
        if start1 != 0:
            raise _CoverageError("the /ByteRange does not start at the beginning of the file")
        if start2 < length1 or start2 + length2 > len(data):
            raise _CoverageError("the /ByteRange ranges overlap or go beyond the end of the file")
        if raw_contents is None:
            raise _CoverageError("there is no /Contents hex string for the gap to hold")
        gap = data[length1:start2]
        if (
            len(gap) < 2
            or gap[:1] != b"<"
            or gap[-1:] != b">"
            or not _HEX.match(gap[1:-1])
            or len(gap) != 2 * len(raw_contents) + 2
            or binascii.unhexlify(gap[1:-1]) != raw_contents
        ):
            raise _CoverageError(
                "the gap in the /ByteRange is not exactly the signature's /Contents hex string"
            )
        if revision is None:
            raise _CoverageError("the revision the signature belongs to is unknown")
        location = self.xrefs.get_historical_ref(self._ref(item.holder), revision)
        if not isinstance(location, int):
            raise _CoverageError("the signature dictionary is inside an object stream")
        object_end = data.find(b"endobj", location)
        if not location < length1 or not (object_end < 0 or start2 <= object_end):
            raise _CoverageError("the /Contents the /ByteRange skips is not in this signature")
        end = start2 + length2
        match = _EOF_TAIL.search(data, max(0, end - 256), end)
        if match is None or match.end() != end:
            raise _CoverageError(
                "the /ByteRange does not end at an end-of-file marker: part of the revision"
                " is not covered"
            )
        if int(match.group(1)) != self.xrefs.get_startxref_for_revision(revision):
            raise _CoverageError(
                f"the /ByteRange ends at the end of another revision than the signature's"
                f" (revision {revision})"
            )
        for earlier in range(revision + 1):
            info = self.xrefs.get_xref_container_info(earlier)
            if info.end_location > end or info.declared_startxref >= end:
                raise _CoverageError(
                    f"the cross-reference section of revision {earlier} is not covered"
                )

    # -- later revisions -------------------------------------------------------------------

    def _changes(
        self, item: _Found, facts: PdfSignature, added: dict[int, list[str]]
    ) -> tuple[RevisionChange, ...]:
        if facts.revision is None:
            return ()
        field_mdp = _field_mdp(item.field, item.value)
        doc_mdp = MDPPerm(facts.docmdp) if facts.docmdp in (1, 2, 3) else None
        try:
            base = self.reader.get_historical_resolver(facts.revision)
        except Exception as exc:
            return (
                RevisionChange(
                    revision=facts.revision + 1,
                    level=ChangeLevel.OTHER,
                    reason=f"the signed revision cannot be read ({type(exc).__name__})",
                    objects=0,
                    fields=(),
                    signatures=(),
                    dss=False,
                ),
            )
        out = []
        for index in range(facts.revision + 1, self.total):
            if self.analyse_changes:
                level, reason = self._judge(base, index, field_mdp, doc_mdp)
            else:
                level, reason = ChangeLevel.OTHER, "not analysed"
            objects, fields, dss = self._written(index)
            out.append(
                RevisionChange(
                    revision=index,
                    level=level,
                    reason=reason,
                    objects=objects,
                    fields=fields,
                    signatures=tuple(added.get(index, ())),
                    dss=dss,
                )
            )
        return tuple(out)

    def _written(self, index: int) -> tuple[int, tuple[str, ...], bool]:
        """What revision ``index`` wrote: how many objects, which form fields (by the field
        or widget dictionaries, values and appearance streams written), whether the DSS."""
        cached = self._written_cache.get(index)
        if cached is not None:
            return cached
        written = {(r.idnum, r.generation) for r in self.xrefs.explicit_refs_in_revision(index)}
        try:
            handler = self.reader.get_historical_resolver(index)
            fields = tuple(sorted(name for name, refs in _field_objects(handler) if refs & written))
            root = handler.root
            dss = "/DSS" in root and _key(root.raw_get("/DSS")) in written
        except Exception:  # a description only; the judgement is the difference analysis
            fields, dss = (), False
        result = (len(written), fields, dss)
        self._written_cache[index] = result
        return result

    def _judge(
        self,
        base: HistoricalResolver,
        index: int,
        field_mdp: FieldMDPSpec | None,
        doc_mdp: MDPPerm | None,
    ) -> tuple[ChangeLevel, str | None]:
        try:
            result = DEFAULT_DIFF_POLICY.apply(
                base,
                self.reader.get_historical_resolver(index),
                field_mdp_spec=field_mdp,
                doc_mdp=doc_mdp,
            )
        except SuspiciousModification as exc:
            return ChangeLevel.OTHER, _first_line(str(exc))
        # Fail closed: a revision the analysis cannot even process explains nothing.
        except Exception as exc:
            return (
                ChangeLevel.OTHER,
                f"the revision cannot be analysed ({type(exc).__name__})",
            )
        assert isinstance(result, DiffResult)
        return _LEVELS[result.modification_level], None


class _CoverageError(Exception):
    pass


def _no_signature(name: str, revision: int | None, why: str) -> PdfSignature:
    """A filled signature field whose value is no usable signature dictionary."""
    return PdfSignature(
        field_name=name,
        kind=SignatureKind.APPROVAL,
        docmdp=None,
        sub_filter=None,
        contents=b"",
        byte_range=None,
        digest_algorithm=DEFAULT_DIGEST,
        digest=None,
        revision=revision,
        coverage=Coverage.INVALID,
        coverage_problem="there is no signature dictionary",
        problems=(f"the signature field's value is not a signature dictionary: {why}",),
        changes=(),
    )


_LEVELS = {
    ModificationLevel.NONE: ChangeLevel.NONE,
    ModificationLevel.LTA_UPDATES: ChangeLevel.LTA_UPDATES,
    ModificationLevel.FORM_FILLING: ChangeLevel.FORM_FILLING,
    ModificationLevel.ANNOTATIONS: ChangeLevel.ANNOTATIONS,
    ModificationLevel.OTHER: ChangeLevel.OTHER,
}


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "a change is not allowed"
    return line if len(line) <= 300 else line[:297] + "..."


def _key(value: Any) -> tuple[int, int] | None:
    if isinstance(value, generic.IndirectObject):
        return value.reference.idnum, value.reference.generation
    return None


def _field_objects(handler: Any) -> Iterator[tuple[str, set[tuple[int, int]]]]:
    """Every terminal non-signature form field with the objects that make it up: the field
    and widget dictionaries, an indirect value, the appearance streams."""
    acro_form = _get(handler.root, "/AcroForm")
    fields = _get(acro_form, "/Fields")
    if not isinstance(fields, generic.ArrayObject):
        return
    pending: list[tuple[Any, str, Any]] = [(ref, "", None) for ref in fields]
    seen: set[tuple[int, int]] = set()
    while pending:
        ref, parent, inherited_type = pending.pop()
        key = _key(ref)
        if key is None or key in seen:
            continue
        seen.add(key)
        node = ref.get_object()
        if not isinstance(node, generic.DictionaryObject):
            continue
        title = _get(node, "/T")
        name = parent if title is None else (f"{parent}.{title}" if parent else str(title))
        field_type = _name(_get(node, "/FT")) or inherited_type
        kids = _get(node, "/Kids")
        named_kids = isinstance(kids, generic.ArrayObject) and any(
            isinstance(k, generic.IndirectObject)
            and isinstance(k.get_object(), generic.DictionaryObject)
            and "/T" in k.get_object()
            for k in kids
        )
        if named_kids:
            pending.extend((kid, name, field_type) for kid in kids)
            continue
        if field_type == "/Sig" or not name:
            continue
        refs = {key}
        widgets = [node] + (
            [k.get_object() for k in kids] if isinstance(kids, generic.ArrayObject) else []
        )
        if isinstance(kids, generic.ArrayObject):
            refs |= {k for k in (_key(kid) for kid in kids) if k is not None}
        value_key = _key(node.raw_get("/V")) if "/V" in node else None
        if value_key is not None:
            refs.add(value_key)
        for widget in widgets:
            appearance = _get(widget, "/AP")
            for state in ("/N", "/R", "/D"):
                entry = (
                    appearance.raw_get(state)
                    if isinstance(appearance, generic.DictionaryObject) and state in appearance
                    else None
                )
                if isinstance(entry, generic.IndirectObject):
                    refs.add((entry.reference.idnum, entry.reference.generation))
                elif isinstance(entry, generic.DictionaryObject):
                    refs |= {k for k in (_key(entry.raw_get(n)) for n in entry) if k is not None}
        yield name, refs


def _get(container: Any, key: str) -> Any:
    """A dictionary entry, dereferenced; None when absent (``dict.get`` does not dereference)."""
    if not isinstance(container, generic.DictionaryObject):
        return None
    try:
        return container[key]
    except KeyError:
        return None


def _name(value: Any) -> str | None:
    return str(value) if isinstance(value, generic.NameObject) else None


def _kind(
    sig: generic.DictionaryObject,
    key: tuple[int, int] | None,
    reader: PdfFileReader,
    problems: list[str],
) -> tuple[SignatureKind, str | None]:
    sig_type = _name(_get(sig, "/Type")) if "/Type" in sig else "/Sig"
    sub_filter = _name(_get(sig, "/SubFilter"))
    if sub_filter is None:
        problems.append("the signature dictionary has no /SubFilter name")
    if sig_type not in ("/Sig", "/DocTimeStamp"):
        problems.append(f"the signature dictionary's /Type is {sig_type or 'not a name'}")
    timestamp = sig_type == "/DocTimeStamp" or (
        "/Type" not in sig and sub_filter == TIMESTAMP_SUB_FILTER
    )
    if timestamp:
        if sub_filter is not None and sub_filter != TIMESTAMP_SUB_FILTER:
            problems.append(f"a document timestamp with /SubFilter {sub_filter}")
        return SignatureKind.DOCUMENT_TIMESTAMP, sub_filter
    if sub_filter is not None and sub_filter not in SIGNATURE_SUB_FILTERS:
        problems.append(f"unsupported /SubFilter {sub_filter}")
    certified = _has_transform(sig, "/DocMDP")
    try:
        perms = _get(reader.root, "/Perms")
        docmdp_ref = (
            perms.raw_get("/DocMDP") if isinstance(perms, generic.DictionaryObject) else None
        )
    except (KeyError, PdfError, ValueError, TypeError):
        docmdp_ref = None
    if (
        key is not None
        and isinstance(docmdp_ref, generic.IndirectObject)
        and (docmdp_ref.reference.idnum, docmdp_ref.reference.generation) == key
    ):
        certified = True
    return (SignatureKind.CERTIFICATION if certified else SignatureKind.APPROVAL), sub_filter


def _transforms(sig: generic.DictionaryObject) -> Iterator[generic.DictionaryObject]:
    references = _get(sig, "/Reference")
    if not isinstance(references, generic.ArrayObject):
        return
    for entry in references:
        entry = entry.get_object() if isinstance(entry, generic.IndirectObject) else entry
        if isinstance(entry, generic.DictionaryObject):
            yield entry


def _has_transform(sig: generic.DictionaryObject, method: str) -> bool:
    return any(_name(_get(t, "/TransformMethod")) == method for t in _transforms(sig))


def _docmdp(
    sig: generic.DictionaryObject,
    field: generic.DictionaryObject,
    kind: SignatureKind,
    problems: list[str],
) -> int | None:
    if kind is SignatureKind.DOCUMENT_TIMESTAMP:
        return None
    value: Any = None
    for transform in _transforms(sig):
        if _name(_get(transform, "/TransformMethod")) == "/DocMDP":
            params = _get(transform, "/TransformParams")
            value = _get(params, "/P") if isinstance(params, generic.DictionaryObject) else None
            value = 2 if value is None else value
            break
    else:
        if kind is SignatureKind.CERTIFICATION:
            value = 2  # ISO 32000-2 Table 257: the default permission
        else:
            lock = _get(field, "/Lock")
            if isinstance(lock, generic.DictionaryObject) and "/P" in lock:
                value = _get(lock, "/P")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value not in (1, 2, 3):
        problems.append("the DocMDP permission /P is not 1, 2 or 3")
        return 1  # judge changes as strictly as possible
    return int(value)


def _field_mdp(field: generic.DictionaryObject, value: Any) -> FieldMDPSpec | None:
    """The field lock of a signature: its /FieldMDP transform, else the field's /Lock."""
    sig = value.get_object() if isinstance(value, generic.IndirectObject) else value
    candidates: list[Any] = []
    if isinstance(sig, generic.DictionaryObject):
        for transform in _transforms(sig):
            if _name(_get(transform, "/TransformMethod")) == "/FieldMDP":
                candidates.append(_get(transform, "/TransformParams"))
    candidates.append(_get(field, "/Lock"))
    for candidate in candidates:
        candidate = (
            candidate.get_object() if isinstance(candidate, generic.IndirectObject) else candidate
        )
        if isinstance(candidate, generic.DictionaryObject) and "/Action" in candidate:
            try:
                return FieldMDPSpec.from_pdf_object(candidate)
            except (PdfError, ValueError, KeyError, TypeError):
                # An unreadable lock locks everything: every field change is then judged.
                return FieldMDPSpec(action=FieldMDPAction.ALL)
    return None


def _claimed_time(sig: generic.DictionaryObject) -> dt.datetime | None:
    value = _get(sig, "/M")
    if not isinstance(value, str):
        return None
    try:
        parsed = generic.parse_pdf_date(value, strict=True)
    except (PdfError, ValueError):
        return None
    if parsed.tzinfo is None:  # a PDF date without an offset: taken as UTC
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _raw_contents(sig: generic.DictionaryObject, problems: list[str]) -> bytes | None:
    try:
        value = sig.raw_get("/Contents")
    except KeyError:
        problems.append("the signature dictionary has no /Contents")
        return None
    if not isinstance(value, generic.ByteStringObject | generic.TextStringObject):
        problems.append("/Contents is not a (direct) string")
        return None
    raw: bytes = value.original_bytes
    if not raw:
        problems.append("/Contents is empty")
    return raw


def _trim(raw: bytes | None, problems: list[str]) -> bytes:
    """The DER structure at the start of /Contents; what follows must be zero padding."""
    if not raw:
        return b""
    length = _der_length(raw)
    if length is None:
        if not raw.strip(b"\x00"):
            problems.append("/Contents holds only zero bytes: nothing was signed")
            return b""
        problems.append("/Contents does not hold a DER structure")
        return raw
    if raw[length:].strip(b"\x00"):
        problems.append("/Contents has data after the CMS structure that is not zero padding")
    return raw[:length]


def _der_length(raw: bytes) -> int | None:
    if len(raw) < 2 or raw[0] != 0x30:
        return None
    first = raw[1]
    if first < 0x80:
        total = 2 + first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(raw) < 2 + count:
            return None
        total = 2 + count + int.from_bytes(raw[2 : 2 + count], "big")
    return total if total <= len(raw) else None


def _byte_range(sig: generic.DictionaryObject, problems: list[str]) -> tuple[int, ...] | None:
    try:
        value = sig.raw_get("/ByteRange")
    except KeyError:
        problems.append("the signature dictionary has no /ByteRange")
        return None
    if not isinstance(value, generic.ArrayObject):
        problems.append("/ByteRange is not a (direct) array")
        return None
    numbers: list[int] = []
    for entry in value:
        if not isinstance(entry, int) or isinstance(entry, bool) or entry < 0:
            problems.append("/ByteRange holds something other than non-negative integers")
            return None
        numbers.append(int(entry))
    if not numbers or len(numbers) % 2:
        problems.append("/ByteRange does not hold (offset, length) pairs")
        return None
    return tuple(numbers)


def _digest_algorithm(contents: bytes, kind: SignatureKind, problems: list[str]) -> str:
    """The digest the CMS names for the byte range; SHA-256 when it names none readably."""
    if not contents:
        return DEFAULT_DIGEST
    try:
        info = cms.ContentInfo.load(contents)
        signed = info["content"]
        if not isinstance(signed, cms.SignedData):
            # GB/T 35275 (SM2) names the same structure with its own content type.
            signed = cms.SignedData.load(signed.dump())
        if kind is SignatureKind.DOCUMENT_TIMESTAMP:
            tst = tsp.TSTInfo.load(bytes(signed["encap_content_info"]["content"]))
            oid = tst["message_imprint"]["hash_algorithm"]["algorithm"].dotted
        else:
            oid = signed["signer_infos"][0]["digest_algorithm"]["algorithm"].dotted
    # The CMS is checked properly by the verifier; here any malformation means "no name".
    except Exception:
        return DEFAULT_DIGEST
    name = _DIGESTS.get(str(oid))
    if name is None:
        label = _OTHER_DIGEST_NAMES.get(str(oid), str(oid))
        problems.append(f"the signature's digest algorithm {label} is not supported")
        return DEFAULT_DIGEST
    return name


def _digest(data: bytes, byte_range: tuple[int, ...] | None, algorithm: str) -> bytes | None:
    if byte_range is None:
        return None
    hasher = hashlib.new(algorithm)
    view = memoryview(data)
    for i in range(0, len(byte_range), 2):
        start, length = byte_range[i], byte_range[i + 1]
        if start + length > len(data):
            return None
        hasher.update(view[start : start + length])
    return hasher.digest()


__all__ = [
    "DEFAULT_MAX_PDF_BYTES",
    "MAX_REVISIONS",
    "ChangeLevel",
    "Coverage",
    "DSSContent",
    "PdfInspection",
    "PdfSignature",
    "Revision",
    "RevisionChange",
    "SignatureKind",
    "inspect_pdf",
]
