"""documents.inspection: the facts about a PDF's signatures, read with pyHanko in strict mode.

pyHanko's own test PDFs (../shared/corpora/pyhanko-fixtures, MatthiasValvekens/pyHanko @
7db4e6fe, MIT) are read in place: coverage anomalies, "sneaky" form updates that hide an
appearance change, a linearised file signed twice. Signed PDFs of our own come from
``tests.documents.pdf_support``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsign.documents.errors import PdfEncryptedError, PdfTooLargeError, PdfUnreadableError
from medsign.documents.inspection import (
    ChangeLevel,
    Coverage,
    PdfInspection,
    SignatureKind,
    inspect_pdf,
)
from medsign.errors import InputError
from tests.documents import pdf_support as pdfs


@pytest.fixture
def fixtures(corpora: Path) -> Path:
    return corpora / "pyhanko-fixtures"


def _read(fixtures: Path, name: str) -> tuple[bytes, PdfInspection]:
    data = (fixtures / name).read_bytes()
    return data, inspect_pdf(data)


# -- pyHanko's fixtures ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["minimal.pdf", "minimal-with-field.pdf"])
def test_unsigned_files_have_no_signatures(fixtures: Path, name: str) -> None:
    _, facts = _read(fixtures, name)
    assert facts.signatures == ()
    assert facts.trailing_bytes == 0


def test_certification_signature_with_indirect_docmdp(fixtures: Path) -> None:
    data, facts = _read(fixtures, "certified-with-indirect-refs-in-dir.pdf")
    (sig,) = facts.signatures
    assert sig.field_name == "Sig1"
    assert sig.kind is SignatureKind.CERTIFICATION
    assert sig.docmdp == 1  # /P is an indirect object here
    assert sig.sub_filter == "/adbe.pkcs7.detached"
    assert sig.coverage is Coverage.ENTIRE_FILE and sig.coverage_problem is None
    assert sig.revision == 1 and len(facts.revisions) == 2
    assert sig.changes == () and sig.modification_level is ChangeLevel.NONE
    assert sig.problems == ()
    start1, length1, start2, length2 = sig.byte_range or ()
    expected = hashlib.sha256(data[start1:length1] + data[start2 : start2 + length2]).digest()
    assert sig.digest_algorithm == "sha256" and sig.digest == expected
    assert facts.signed_bytes(data, sig) == data[:length1] + data[start2:]
    # The CMS without its zero padding: a complete DER structure.
    assert sig.contents[0] == 0x30 and len(sig.contents) < (start2 - length1 - 2) // 2


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("coverage-anomalies_one-byterange.pdf", "four"),
        ("coverage-anomalies_signature-gap-too-big.pdf", "gap"),
        ("coverage-anomalies_weird-byterange.pdf", "gap"),
        ("coverage-anomalies_tail-uncovered.pdf", "end-of-file marker"),
    ],
)
def test_coverage_anomalies(fixtures: Path, name: str, problem: str) -> None:
    _, facts = _read(fixtures, name)
    (sig,) = facts.signatures
    assert sig.coverage is Coverage.INVALID
    assert sig.coverage_problem is not None and problem in sig.coverage_problem


def test_unfilled_signature_contents(fixtures: Path) -> None:
    _, facts = _read(fixtures, "coverage-anomalies_base.pdf")
    (sig,) = facts.signatures
    assert sig.contents == b""
    assert any("only zero bytes" in p for p in sig.problems)
    # Everything after it: an /Info update, an LTA-level change.
    assert [c.level for c in sig.changes] == [ChangeLevel.LTA_UPDATES]


def test_form_update_overriding_an_appearance_stream(fixtures: Path) -> None:
    _, facts = _read(fixtures, "form-update-override-appearance-stream.pdf")
    first, second = facts.signatures
    assert (first.field_name, first.revision, second.revision) == ("Sig1", 0, 1)
    assert first.coverage is Coverage.ENTIRE_REVISION
    assert second.coverage is Coverage.ENTIRE_FILE
    (change,) = first.changes
    assert change.level is ChangeLevel.FORM_FILLING and change.reason is None
    assert change.signatures == ("Sig2",)


@pytest.mark.parametrize(
    "name",
    [
        "form-update-override-appearance-stream-sneaky.pdf",
        "form-update-ap-indirect-sneaky-trailer.pdf",
    ],
)
def test_sneaky_form_updates_are_other_changes(fixtures: Path, name: str) -> None:
    _, facts = _read(fixtures, name)
    first, second = facts.signatures
    (change,) = first.changes
    assert change.level is ChangeLevel.OTHER
    assert change.reason
    assert first.modification_level is ChangeLevel.OTHER
    assert second.changes == ()


def test_linearised_file_signed_twice(fixtures: Path) -> None:
    # The first signature covers the original, linearised file, whose last cross-reference
    # section sits at its start: revision order is not file order.
    _, facts = _read(fixtures, "minimal-two-fields-signed-twice.pdf")
    assert [(s.field_name, s.revision) for s in facts.signatures] == [("Sig2", 1), ("Sig1", 2)]
    first, second = facts.signatures
    assert first.coverage is Coverage.ENTIRE_REVISION
    assert second.coverage is Coverage.ENTIRE_FILE
    (change,) = first.changes
    assert change.level is ChangeLevel.FORM_FILLING
    assert change.signatures == ("Sig1",)


def test_signature_without_signed_attributes(fixtures: Path) -> None:
    _, facts = _read(fixtures, "sig-no-signed-attrs.pdf")
    (sig,) = facts.signatures
    assert sig.coverage is Coverage.ENTIRE_FILE and sig.problems == ()


# -- what cannot be read ----------------------------------------------------------------------


def test_not_a_pdf() -> None:
    with pytest.raises(PdfUnreadableError) as caught:
        inspect_pdf(b"GIF89a not a document")
    assert caught.value.code == "pdf-unreadable"
    assert "%PDF-" in caught.value.public_message()


def test_too_large(fixtures: Path) -> None:
    data = (fixtures / "minimal.pdf").read_bytes()
    with pytest.raises(PdfTooLargeError) as caught:
        inspect_pdf(data, max_bytes=len(data) - 1)
    assert caught.value.code == "pdf-too-large"


def test_encrypted() -> None:
    with pytest.raises(PdfEncryptedError) as caught:
        inspect_pdf(pdfs.encrypted_pdf())
    assert caught.value.code == "pdf-encrypted"


def test_broken_cross_reference_table() -> None:
    with pytest.raises(PdfUnreadableError) as caught:
        inspect_pdf(pdfs.broken_xref(pdfs.base_pdf()))
    assert "cross-reference" in caught.value.public_message()


def test_hybrid_reference_file() -> None:
    with pytest.raises(PdfUnreadableError) as caught:
        inspect_pdf(pdfs.hybrid_reference_pdf())
    assert "hybrid-reference" in caught.value.public_message()


def test_no_end_of_file_marker(fixtures: Path) -> None:
    data = (fixtures / "certified-with-indirect-refs-in-dir.pdf").read_bytes()
    with pytest.raises(PdfUnreadableError) as caught:
        inspect_pdf(data[: len(data) // 2])
    # pyHanko's own message (which may quote the document) stays out of the public text.
    assert (
        caught.value.public_message() == "the PDF cannot be parsed cleanly: no end-of-file marker"
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_files_are_facts_or_input_errors(fixtures: Path, data: Any) -> None:
    """Whatever the damage, the answer is facts or an ``InputError``, never another error."""
    name = data.draw(
        st.sampled_from(
            [
                "certified-with-indirect-refs-in-dir.pdf",
                "form-update-override-appearance-stream.pdf",
                "minimal-two-fields-signed-twice.pdf",
            ]
        )
    )
    original = bytearray((fixtures / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del original[data.draw(st.integers(1, len(original))) :]
    try:
        facts = inspect_pdf(bytes(original))
    except InputError:
        return
    for sig in facts.signatures:
        assert sig.coverage in Coverage
        assert all(c.level in ChangeLevel for c in sig.changes)


# -- our own signed PDFs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


@pytest.fixture(scope="module")
def key(runtime: Any, tmp_path_factory: pytest.TempPathFactory) -> pdfs.PdfSigningKey:
    return pdfs.signing_key(runtime, tmp_path_factory.mktemp("pdf-keys"))


@pytest.fixture(scope="module")
def signed(key: pdfs.PdfSigningKey) -> bytes:
    return pdfs.sign(pdfs.base_pdf(), key)


def test_pades_signature_facts(signed: bytes) -> None:
    facts = inspect_pdf(signed)
    (sig,) = facts.signatures
    assert sig.kind is SignatureKind.APPROVAL and sig.docmdp is None
    assert sig.sub_filter == "/ETSI.CAdES.detached"
    assert sig.revision == 1 and sig.coverage is Coverage.ENTIRE_FILE
    assert sig.contents == pdfs.contents_of(signed)


def test_form_fill_and_second_signature_are_described(
    signed: bytes, key: pdfs.PdfSigningKey
) -> None:
    filled = pdfs.fill_text_field(signed, "Diagnosis", "Pneumonia")
    twice = pdfs.sign(filled, key, field="Signature2")
    first, second = inspect_pdf(twice).signatures
    fill, signing = first.changes
    assert (fill.revision, fill.level, fill.fields, fill.signatures) == (
        2,
        ChangeLevel.FORM_FILLING,
        ("Diagnosis",),
        (),
    )
    assert signing.signatures == ("Signature2",) and signing.level is ChangeLevel.FORM_FILLING
    assert second.field_name == "Signature2" and second.revision == 3


def test_certification_level_and_lock(key: pdfs.PdfSigningKey) -> None:
    certified = pdfs.sign(pdfs.base_pdf(), key, certify=1)
    (sig,) = inspect_pdf(certified).signatures
    assert sig.kind is SignatureKind.CERTIFICATION and sig.docmdp == 1


def test_document_timestamp_and_dss(runtime: Any, signed: bytes, key: pdfs.PdfSigningKey) -> None:
    with_dss = pdfs.add_dss(signed, runtime, key)
    stamped = pdfs.timestamp_document(with_dss, runtime)
    facts = inspect_pdf(stamped)
    signature, timestamp = facts.signatures
    assert timestamp.kind is SignatureKind.DOCUMENT_TIMESTAMP
    assert timestamp.sub_filter == "/ETSI.RFC3161"
    assert timestamp.coverage is Coverage.ENTIRE_FILE
    assert [(c.level, c.dss, c.signatures) for c in signature.changes] == [
        (ChangeLevel.LTA_UPDATES, True, ()),
        (ChangeLevel.LTA_UPDATES, False, ("DocTimeStamp1",)),
    ]
    assert len(facts.dss.certificates) >= 3  # the signer, its issuing CA and root
    assert len(facts.dss.crls) == 1 and facts.dss.problems == ()


def test_trailing_bytes_are_counted(signed: bytes) -> None:
    assert inspect_pdf(signed).trailing_bytes == 0
    facts = inspect_pdf(signed + b"\r\n \n")
    assert facts.trailing_bytes > 0 and facts.trailing_whitespace_only
    garbage = inspect_pdf(pdfs.with_trailing_garbage(signed))
    assert garbage.trailing_bytes > 0 and not garbage.trailing_whitespace_only


def test_signature_dictionary_changed_later_is_not_covered(signed: bytes) -> None:
    changed = pdfs.isa_rewrite_signature_dictionary(signed)
    (sig,) = inspect_pdf(changed).signatures
    assert sig.revision == 2
    assert sig.coverage is Coverage.INVALID


def test_a_damaged_compressed_stream_is_an_input_error(fixtures: Path) -> None:
    """Found by the property test above: a zeroed byte inside an object stream made zlib's
    own error escape."""
    damaged = bytearray((fixtures / "minimal-two-fields-signed-twice.pdf").read_bytes())
    damaged[2496] = 0
    with pytest.raises(InputError):
        inspect_pdf(bytes(damaged))
