"""verify.pdf: every signature of a PDF, its byte range and every change after it.

Signed PDFs are made with pyHanko over keys medsign's CA certified (tests/documents/
pdf_support.py); the attacks are built the same way, after the published incremental saving,
signature wrapping, universal signature forgery and shadow attacks. Each one must give
``failed`` (or, for a file that no longer parses, a ``pdf-unreadable`` input error: the CLI
then exits 1), never ``passed`` and never another exception. pyHanko's own test PDFs
(../shared/corpora/pyhanko-fixtures) are checked too; their signers are not trusted here.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medsign.clock import SystemClock
from medsign.crypto import KeyAlgorithm, message_digest
from medsign.crypto.cms import build_signed_data
from medsign.documents.errors import PdfEncryptedError, PdfTooLargeError, PdfUnreadableError
from medsign.documents.inspection import inspect_pdf
from medsign.verify import (
    CheckName,
    Indication,
    NoStatusSource,
    SubIndication,
    TimeSource,
    TrustStore,
    Verifier,
)
from medsign.verify.pdf import PdfReport, PdfVerifier
from tests.documents import pdf_support as pdfs
from tests.verify.support import store_signer


@pytest.fixture(scope="module")
def key(runtime: Any, work: Path) -> pdfs.PdfSigningKey:
    return pdfs.signing_key(runtime, work)


@pytest.fixture(scope="module")
def verifier(runtime: Any) -> PdfVerifier:
    return PdfVerifier(runtime.verifier)


@pytest.fixture(scope="module")
def signed(key: pdfs.PdfSigningKey) -> bytes:
    return pdfs.sign(pdfs.base_pdf(), key)


@pytest.fixture(scope="module")
def signed_with_shadow(key: pdfs.PdfSigningKey) -> bytes:
    return pdfs.sign(pdfs.base_pdf(shadow=True), key)


@pytest.fixture(scope="module")
def lta(runtime: Any, key: pdfs.PdfSigningKey) -> bytes:
    """B-T signature, then DSS (chain and a fresh CRL) and a document timestamp."""
    stamper = pdfs.MedsignTimeStamper(runtime)
    signed = pdfs.sign(pdfs.base_pdf(), key, timestamper=stamper)
    with_dss = pdfs.add_dss(signed, runtime, key, fresh_crl=True)
    return pdfs.timestamp_document(with_dss, runtime)


def _json_ready(report: PdfReport) -> dict[str, Any]:
    body = report.as_dict()
    json.dumps(body)
    return body


def _failed_checks(report: PdfReport) -> list[str]:
    names = [c.name.value for c in report.checks if c.indication is not Indication.PASSED]
    for sig in report.signatures:
        checks = sig.checks + (sig.signature.checks if sig.signature is not None else ())
        names += [c.name.value for c in checks if c.indication is not Indication.PASSED]
    return names


# -- what passes ------------------------------------------------------------------------------


def test_signed_pdf_passes(verifier: PdfVerifier, signed: bytes) -> None:
    report = verifier.verify(signed)
    assert report.indication is Indication.PASSED, _failed_checks(report)
    assert (report.size, report.revisions) == (len(signed), 2)
    (sig,) = report.signatures
    assert (sig.field_name, sig.type, sig.revision, sig.coverage) == (
        "Signature1",
        "approval",
        1,
        "entire-file",
    )
    assert [c.name for c in sig.checks] == [
        CheckName.FORMAT,
        CheckName.BYTE_RANGE,
        CheckName.MODIFICATIONS,
    ]
    assert sig.signature is not None and sig.signature.kind == "cms"
    assert sig.signature.signer is not None
    assert sig.signature.signer.employee_number == "E4004"
    assert sig.signature.check(CheckName.STATUS) is not None
    assert sig.changes == ()
    body = _json_ready(report)
    assert body["kind"] == "pdf" and body["signatures"][0]["signature"]["indication"] == "passed"


def _fill(pdf: bytes, *_: Any) -> bytes:
    return pdfs.fill_text_field(pdf, "Diagnosis", "Community-acquired pneumonia")


ALLOWED: dict[str, Callable[[bytes, pdfs.PdfSigningKey], bytes]] = {
    "form fill": _fill,
    "second signature": lambda pdf, key: pdfs.sign(pdf, key, field="Signature2"),
    "form fill then second signature": lambda pdf, key: pdfs.sign(
        _fill(pdf), key, field="Signature2"
    ),
}


@pytest.mark.parametrize("change", list(ALLOWED))
def test_allowed_changes_after_signing_pass(
    verifier: PdfVerifier, signed: bytes, key: pdfs.PdfSigningKey, change: str
) -> None:
    report = verifier.verify(ALLOWED[change](signed, key))
    assert report.indication is Indication.PASSED, _failed_checks(report)
    first = report.signatures[0]
    assert first.coverage == "entire-revision"
    assert first.changes and all(c.allowed for c in first.changes)
    assert {c.level for c in first.changes} == {"form-filling"}
    assert "all allowed" in first.checks[-1].message


def test_lta_document_passes(verifier: PdfVerifier, lta: bytes) -> None:
    report = verifier.verify(lta)
    assert report.indication is Indication.PASSED, _failed_checks(report)
    signature, timestamp = report.signatures
    assert signature.signature is not None
    assert signature.signature.signing_time_source is TimeSource.TIMESTAMP
    assert [(c.level, c.dss, c.signatures) for c in signature.changes] == [
        ("lta-updates", True, ()),
        ("lta-updates", False, ("DocTimeStamp1",)),
    ]
    assert timestamp.type == "document-timestamp" and timestamp.coverage == "entire-file"
    stamp = timestamp.signature
    assert stamp is not None and stamp.kind == "document-timestamp"
    assert [c.name for c in stamp.checks] == [
        CheckName.SIGNED_DATA,
        CheckName.TIMESTAMP,
        CheckName.STATUS,
    ]
    assert stamp.timestamp is not None and stamp.signing_time == stamp.timestamp.time
    _json_ready(report)


def test_lta_document_verifies_offline_with_its_dss(
    runtime: Any, lta: bytes, signed: bytes
) -> None:
    """Offline, with only the roots trusted: chains and CRLs come from the DSS."""
    roots = [anchor.certificate.dump() for anchor in runtime.verifier.trust.anchors]
    trust = TrustStore.from_certificates(roots, source="configured")
    offline = PdfVerifier(Verifier(trust, NoStatusSource(), SystemClock()))
    report = offline.verify(lta)
    signature, timestamp = report.signatures
    assert signature.indication is Indication.PASSED, _failed_checks(report)
    assert signature.signature is not None
    status = signature.signature.check(CheckName.STATUS)
    assert status is not None and "document security store" in status.message
    # The DSS's CRL is older than the document timestamp made after it: nothing offline
    # says the time-stamping certificate was not revoked by then (the next LTA round would).
    assert (timestamp.indication, timestamp.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    assert timestamp.signature is not None
    assert [c.indication for c in timestamp.signature.checks][:2] == [Indication.PASSED] * 2
    # Without a DSS nothing says whether the signer's certificate was revoked.
    bare = offline.verify(signed)
    assert (bare.indication, bare.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )


@pytest.mark.parametrize(
    ("certify", "then", "indication"),
    [
        (1, "nothing", Indication.PASSED),
        (1, "lta", Indication.PASSED),
        (1, "form fill", Indication.FAILED),  # pyHanko itself refuses to sign such a file
        (2, "form fill", Indication.PASSED),
        (2, "second signature", Indication.PASSED),
    ],
)
def test_certification_permissions(
    runtime: Any,
    verifier: PdfVerifier,
    key: pdfs.PdfSigningKey,
    certify: int,
    then: str,
    indication: Indication,
) -> None:
    pdf = pdfs.sign(pdfs.base_pdf(), key, certify=certify)
    if then == "lta":
        pdf = pdfs.timestamp_document(pdfs.add_dss(pdf, runtime, key), runtime)
    elif then != "nothing":
        pdf = ALLOWED[then](pdf, key)
    report = verifier.verify(pdf)
    assert report.indication is indication, _failed_checks(report)
    certification = report.signatures[0]
    assert (certification.type, certification.docmdp) == ("certification", certify)
    if indication is Indication.FAILED:
        assert certification.sub_indication is SubIndication.DOCUMENT_MODIFIED
        assert report.sub_indication is SubIndication.DOCUMENT_MODIFIED
        assert "DocMDP P=1" in certification.checks[-1].message
        assert [c.allowed for c in certification.changes] == [False]


def test_sm2_signature_from_medsign_cms_builder(
    runtime: Any, verifier: PdfVerifier, key: pdfs.PdfSigningKey
) -> None:
    """An SM2/SM3 signature (GB/T 35275 CMS made by medsign's builder through the key
    store) in the /Contents of a PAdES signature field: the byte range digested with SM3."""
    signer = store_signer(runtime, KeyAlgorithm.SM2, cn="Dr. Sun", employee="E5005")
    placeholder = pdfs.sign(pdfs.base_pdf(), key, bytes_reserved=16384)
    facts = inspect_pdf(placeholder)
    signed_bytes = facts.signed_bytes(placeholder, facts.signatures[0])
    built = build_signed_data(
        content_digest=hashlib.new("sm3", signed_bytes).digest(),
        digest_name="sm3",
        signer_certificate_der=signer.certificate_der,
        chain_der=runtime.authority.chain(signer.serial),
        scheme=signer.scheme,
        signing_time=runtime.clock.now(),
        sign=lambda attrs: runtime.keystore.sign_digest(
            signer.key_id,
            signer.scheme,
            message_digest(signer.public_key, signer.scheme, attrs),
            actor="test",
            purpose="test",
        ),
    )
    report = verifier.verify(pdfs.with_contents(placeholder, built.der))
    assert report.indication is Indication.PASSED, _failed_checks(report)
    (sig,) = report.signatures
    assert sig.digest_algorithm == "sm3"
    assert sig.signature is not None and sig.signature.scheme == "sm2-sm3"
    assert sig.signature.signer is not None and sig.signature.signer.employee_number == "E5005"
    # The same CMS over other bytes: the SM3 digest no longer matches.
    tampered = verifier.verify(pdfs.tamper_signed_bytes(pdfs.with_contents(placeholder, built.der)))
    assert tampered.sub_indication is SubIndication.HASH_FAILURE


def test_pdf_without_signatures_fails(verifier: PdfVerifier, corpora: Path) -> None:
    for pdf in (
        pdfs.base_pdf(),
        (corpora / "pyhanko-fixtures/minimal-with-field.pdf").read_bytes(),
    ):
        report = verifier.verify(pdf)
        assert (report.indication, report.sub_indication) == (
            Indication.FAILED,
            SubIndication.NOT_SIGNED,
        )
        assert report.signatures == ()
        _json_ready(report)


# -- attacks ----------------------------------------------------------------------------------

Attack = Callable[[bytes, bytes], bytes]

ATTACKS: dict[str, tuple[Attack, set[SubIndication]]] = {
    # incremental saving
    "ISA: page content object replaced": (
        lambda s, _: pdfs.isa_replace_content(s),
        {SubIndication.DOCUMENT_MODIFIED},
    ),
    "ISA: page pointed at new content": (
        lambda s, _: pdfs.isa_new_content(s),
        {SubIndication.DOCUMENT_MODIFIED},
    ),
    "ISA: page added after signing": (
        lambda s, _: pdfs.isa_add_page(s),
        {SubIndication.DOCUMENT_MODIFIED},
    ),
    "ISA: complete xref without /Prev": (
        lambda s, _: pdfs.isa_full_xref(s),
        {SubIndication.FORMAT_FAILURE},
    ),
    "ISA: signature dictionary rewritten": (
        lambda s, _: pdfs.isa_rewrite_signature_dictionary(s),
        {SubIndication.FORMAT_FAILURE},
    ),
    "ISA: signature field removed from the form": (
        lambda s, _: pdfs.isa_remove_signature_field(s),
        {SubIndication.DOCUMENT_MODIFIED},
    ),
    "signed bytes changed in place": (
        lambda s, _: pdfs.tamper_signed_bytes(s),
        {SubIndication.HASH_FAILURE},
    ),
    # signature wrapping
    "SWA: signed bytes relocated, gap widened": (
        lambda s, _: pdfs.swa_relocated(s),
        {SubIndication.FORMAT_FAILURE},
    ),
    "SWA: extra bytes inside the gap": (
        lambda s, _: pdfs.swa_gap_with_extra_bytes(s),
        {SubIndication.FORMAT_FAILURE},
    ),
    # universal signature forgery
    **{
        f"USF: {variant}": (
            lambda s, _, variant=variant: pdfs.usf(s, variant),
            {SubIndication.FORMAT_FAILURE},
        )
        for variant in (
            "contents-missing",
            "contents-null",
            "contents-empty",
            "contents-zero",
            "contents-not-cms",
            "byterange-missing",
            "byterange-zero",
            "byterange-null",
            "no-cert",
        )
    },
    # shadow attacks
    "shadow hide: covering XObject emptied": (
        lambda s, _: pdfs.shadow_hide(s),
        {SubIndication.DOCUMENT_MODIFIED},
    ),
    "shadow replace: overlay annotation": (
        lambda s, _: pdfs.shadow_overlay_annotation(s),
        {SubIndication.DOCUMENT_MODIFIED},
    ),
    "shadow hide-and-replace: trailer to an unused catalog": (
        lambda _, shadow: pdfs.shadow_hide_and_replace(shadow),
        {SubIndication.DOCUMENT_MODIFIED},
    ),
    # whatever follows the last revision
    "trailing bytes after %%EOF": (
        lambda s, _: pdfs.with_trailing_garbage(s),
        {SubIndication.FORMAT_FAILURE},
    ),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_fails(
    verifier: PdfVerifier, signed: bytes, signed_with_shadow: bytes, name: str
) -> None:
    build, expected = ATTACKS[name]
    report = verifier.verify(build(signed, signed_with_shadow))
    assert report.indication is Indication.FAILED, _failed_checks(report)
    assert report.sub_indication in expected, (report.sub_indication, _failed_checks(report))
    _json_ready(report)


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("shadow hide-and-replace: xref entry to an unused object", pdfs.shadow_xref_redirect),
        ("truncated inside the signature", pdfs.truncated_in_signature),
    ],
)
def test_attacks_that_break_parsing_are_unreadable(
    verifier: PdfVerifier,
    signed: bytes,
    signed_with_shadow: bytes,
    name: str,
    build: Callable[[bytes], bytes],
) -> None:
    source = signed_with_shadow if "shadow" in name else signed
    with pytest.raises(PdfUnreadableError) as caught:
        verifier.verify(build(source))
    assert caught.value.code == "pdf-unreadable"


def test_changed_lta_document_fails_every_signature(verifier: PdfVerifier, lta: bytes) -> None:
    report = verifier.verify(pdfs.tamper_signed_bytes(lta))
    assert report.indication is Indication.FAILED
    signature, timestamp = report.signatures
    assert signature.sub_indication is SubIndication.HASH_FAILURE
    assert timestamp.sub_indication is SubIndication.HASH_FAILURE
    assert timestamp.signature is not None
    assert timestamp.signature.checks[0].name is CheckName.SIGNED_DATA


def test_content_changed_after_an_lta_timestamp_fails(verifier: PdfVerifier, lta: bytes) -> None:
    report = verifier.verify(pdfs.isa_replace_content(lta))
    assert report.indication is Indication.FAILED
    assert all(s.sub_indication is SubIndication.DOCUMENT_MODIFIED for s in report.signatures)


def test_bad_input_is_refused(verifier: PdfVerifier, signed: bytes) -> None:
    with pytest.raises(PdfUnreadableError):
        verifier.verify(b"%PDF-1.7\nnothing else")
    with pytest.raises(PdfEncryptedError):
        verifier.verify(pdfs.encrypted_pdf())
    with pytest.raises(PdfUnreadableError):
        verifier.verify(pdfs.broken_xref(signed))
    with pytest.raises(PdfTooLargeError):
        PdfVerifier(verifier.verifier, max_bytes=len(signed) - 1).verify(signed)


# -- pyHanko's fixtures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "indication", "sub_indication"),
    [
        ("minimal.pdf", Indication.FAILED, SubIndication.NOT_SIGNED),
        ("coverage-anomalies_base.pdf", Indication.FAILED, SubIndication.FORMAT_FAILURE),
        ("coverage-anomalies_one-byterange.pdf", Indication.FAILED, SubIndication.FORMAT_FAILURE),
        (
            "coverage-anomalies_signature-gap-too-big.pdf",
            Indication.FAILED,
            SubIndication.FORMAT_FAILURE,
        ),
        ("coverage-anomalies_tail-uncovered.pdf", Indication.FAILED, SubIndication.FORMAT_FAILURE),
        ("coverage-anomalies_weird-byterange.pdf", Indication.FAILED, SubIndication.FORMAT_FAILURE),
        (
            "form-update-override-appearance-stream-sneaky.pdf",
            Indication.FAILED,
            SubIndication.DOCUMENT_MODIFIED,
        ),
        (
            "form-update-ap-indirect-sneaky-trailer.pdf",
            Indication.FAILED,
            SubIndication.DOCUMENT_MODIFIED,
        ),
        # Sound documents whose signers this installation does not trust.
        (
            "form-update-override-appearance-stream.pdf",
            Indication.INDETERMINATE,
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
        ),
        (
            "certified-with-indirect-refs-in-dir.pdf",
            Indication.INDETERMINATE,
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
        ),
        # A linearised file signed twice by an RSA-4096 key, a size medsign does not verify.
        (
            "minimal-two-fields-signed-twice.pdf",
            Indication.INDETERMINATE,
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
        ),
        (
            "sig-no-signed-attrs.pdf",
            Indication.INDETERMINATE,
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
        ),
    ],
)
def test_pyhanko_fixtures(
    verifier: PdfVerifier,
    corpora: Path,
    name: str,
    indication: Indication,
    sub_indication: SubIndication,
) -> None:
    report = verifier.verify((corpora / "pyhanko-fixtures" / name).read_bytes())
    assert (report.indication, report.sub_indication) == (indication, sub_indication), (
        _failed_checks(report)
    )
    if indication is Indication.INDETERMINATE:
        # Only the trust decision (or the key size) is open: the PDF itself is sound.
        for sig in report.signatures:
            assert all(c.indication is Indication.PASSED for c in sig.checks)
            assert sig.signature is not None
            signed_data = sig.signature.check(CheckName.SIGNED_DATA)
            assert signed_data is not None and signed_data.indication is Indication.PASSED


# -- interop: poppler's pdfsig --------------------------------------------------------------

_PDFSIG = shutil.which("pdfsig")


def _pdfsig(path: Path) -> list[dict[str, str]]:
    """pdfsig's findings per signature (its exit status is not a verdict)."""
    out = subprocess.run([_PDFSIG or "pdfsig", str(path)], capture_output=True, text=True).stdout
    found: list[dict[str, str]] = []
    for line in out.splitlines():
        if re.match(r"^Signature #\d+:", line):
            found.append({})
        elif found and (match := re.match(r"^\s+- ([^:]+): (.*)$", line)):
            found[-1][match.group(1)] = match.group(2)
        elif found and line.strip() in ("- Total document signed", "- Not total document signed"):
            found[-1]["coverage"] = line.strip()[2:]
    return found


@pytest.mark.skipif(_PDFSIG is None, reason="poppler's pdfsig is not installed")
def test_pdfsig_agrees_on_valid_documents(
    verifier: PdfVerifier,
    signed: bytes,
    key: pdfs.PdfSigningKey,
    lta: bytes,
    tmp_path: Path,
) -> None:
    documents = {
        "signed": signed,
        "filled": _fill(signed),
        "twice": pdfs.sign(_fill(signed), key, field="Signature2"),
        "certified": pdfs.sign(pdfs.base_pdf(), key, certify=2),
        "lta": lta,
    }
    for name, pdf in documents.items():
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(pdf)
        report = verifier.verify(pdf)
        assert report.passed, (name, _failed_checks(report))
        theirs = _pdfsig(path)
        assert [s.get("Signature Field Name") for s in theirs] == [
            s.field_name for s in report.signatures
        ], name
        for ours, seen in zip(report.signatures, theirs, strict=True):
            assert ours.byte_range is not None
            start1, length1, start2, length2 = ours.byte_range
            assert seen["Signed Ranges"] == (
                f"[{start1} - {length1}], [{start2} - {start2 + length2}]"
            ), name
            total = "Total document signed" if ours.coverage == "entire-file" else None
            assert (seen.get("coverage") == "Total document signed") == (total is not None)
            if ours.type != "document-timestamp":  # pdfsig does not check RFC 3161 tokens
                assert seen["Signature Validation"] == "Signature is Valid.", name


@pytest.mark.skipif(_PDFSIG is None, reason="poppler's pdfsig is not installed")
def test_pdfsig_sees_a_broken_hash_too(
    verifier: PdfVerifier, signed: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "tampered.pdf"
    path.write_bytes(pdfs.tamper_signed_bytes(signed))
    (theirs,) = _pdfsig(path)
    assert theirs["Signature Validation"] != "Signature is Valid."
    assert verifier.verify(path.read_bytes()).sub_indication is SubIndication.HASH_FAILURE
