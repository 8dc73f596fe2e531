"""A PDF signed in two halves by a key medsign does not hold (as a phone's WebCrypto key):
prepare → the key signs the signed attributes → finish; at every PAdES level the result is
accepted by pyHanko's validator and medsign's own PDF verifier."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature

from medsign.documents.signing import FieldBox, Level, PdfSigner, SignatureSpec
from medsign.verify.pdf import PdfVerifier
from tests.api.pdf_support import context, discharge_pdf


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


@pytest.fixture(scope="module")
def phone(runtime: Any) -> Iterator[tuple[ec.EllipticCurvePrivateKey, bytes, tuple[bytes, ...]]]:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = runtime.authority.issue_for_public_key(
        spki, {"CN": "李四", "serialNumber": "E2002"}, "staff-signing", actor="test"
    )
    yield key, record.certificate_der, tuple(runtime.authority.chain(record.serial_hex))


@pytest.mark.parametrize("level", list(Level))
def test_prepare_then_finish_with_the_phones_signature(
    runtime: Any, phone: tuple[Any, bytes, tuple[bytes, ...]], level: Level
) -> None:
    key, certificate, chain = phone
    documents = runtime.workflow.documents
    signer: PdfSigner = documents.signer
    spec = SignatureSpec("Signature1", FieldBox(0, (330, 100, 530, 160)), level=level)
    at = runtime.clock.now()
    prepared = signer.prepare_external(discharge_pdf(), spec, certificate, chain, at=at)
    assert prepared.pdf[prepared.region[0] : prepared.region[1]].strip(b"<0>") == b""

    signature = key.sign(prepared.signed_attributes, ec.ECDSA(hashes.SHA256()))
    material = documents._material(certificate, chain) if level is not Level.B_T else None
    signed = signer.finish_external(
        prepared, certificate, chain, signature, at=at, validation=material
    )
    assert signed.signature_timestamp is not None
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    embedded = next(s for s in reader.embedded_signatures if s.field_name == "Signature1")
    roots = [ca.certificate_der for ca in runtime.authority.list_cas() if ca.level == "root"]
    status = validate_pdf_signature(embedded, context(roots, runtime))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    report = PdfVerifier(runtime.verifier).verify(signed.pdf)
    assert report.passed, report.as_dict()
    if level is Level.B_LTA:
        assert any(s.sig_object_type == "/DocTimeStamp" for s in reader.embedded_signatures)


def test_a_signature_over_other_attributes_does_not_verify(
    runtime: Any, phone: tuple[Any, bytes, tuple[bytes, ...]]
) -> None:
    key, certificate, chain = phone
    signer: PdfSigner = runtime.workflow.documents.signer
    spec = SignatureSpec("Signature1", FieldBox(0, (330, 100, 530, 160)))
    at = runtime.clock.now()
    prepared = signer.prepare_external(discharge_pdf(), spec, certificate, chain, at=at)
    wrong = key.sign(prepared.signed_attributes + b"x", ec.ECDSA(hashes.SHA256()))
    signed = signer.finish_external(prepared, certificate, chain, wrong, at=at)
    report = PdfVerifier(runtime.verifier).verify(signed.pdf)
    assert report.indication.value == "failed"
