"""`medsign verify`: exit 0 passed, 1 failed, 3 indeterminate, 2 usage error."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from medsign.ca.authority import pem_encode
from medsign.cli.main import main
from medsign.crypto import KeyAlgorithm
from tests.verify.support import openssl_signer, store_signer

DATA = "手术知情同意书".encode()


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


@pytest.fixture
def run(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    # The installation's database may be PostgreSQL: the CLI finds it through the environment.
    monkeypatch.setenv("MEDSIGN_DATABASE_URL", runtime.settings.resolved_database_url)

    def invoke(*args: str | Path) -> Any:
        return CliRunner().invoke(main, ["verify", *map(str, args)])

    return invoke


@pytest.fixture
def signed(runtime: Any, tmp_path: Path) -> tuple[Path, Path]:
    signer = openssl_signer(runtime, tmp_path)
    data = tmp_path / "consent.txt"
    data.write_bytes(DATA)
    cms_file = tmp_path / "consent.p7s"
    cms_file.write_bytes(signer.sign_cms(DATA, tmp_path))
    return cms_file, data


def test_passed_with_the_installation(run: Any, runtime: Any, signed: tuple[Path, Path]) -> None:
    cms_file, data = signed
    result = run(cms_file, "--data", data, "--data-dir", runtime.settings.data_dir)
    assert result.exit_code == 0, result.output
    assert "result: PASSED" in result.output
    assert "employee number: E1001" in result.output
    assert "claimed, unproven" in result.output


def test_failed(run: Any, runtime: Any, signed: tuple[Path, Path], tmp_path: Path) -> None:
    cms_file, _ = signed
    other = tmp_path / "other.txt"
    other.write_bytes(b"changed")
    result = run(cms_file, "--data", other, "--data-dir", runtime.settings.data_dir)
    assert result.exit_code == 1, result.output
    assert "HASH_FAILURE" in result.output


def test_indeterminate_offline(
    run: Any, runtime: Any, signed: tuple[Path, Path], tmp_path: Path
) -> None:
    cms_file, data = signed
    result = run(cms_file, "--data", data)
    assert result.exit_code == 3, result.output
    assert "NO_CERTIFICATE_CHAIN_FOUND" in result.output
    # Trusting the root offline: the path holds, but nothing says whether it was revoked.
    roots = tmp_path / "roots.pem"
    roots.write_text(
        "".join(pem_encode(a.certificate.dump()) for a in runtime.verifier.trust.anchors)
    )
    chain = tmp_path / "chain.pem"
    chain.write_text("".join(pem_encode(c.dump()) for c in runtime.verifier.trust.intermediates))
    result = run(cms_file, "--data", data, "--trust", roots, "--chain", chain, "--json")
    assert result.exit_code == 3, result.output
    report = json.loads(result.output)
    assert report["sub_indication"] == "TRY_LATER"
    assert report["signer"]["employee_number"] == "E1001"


def test_raw_sm2_signature(run: Any, runtime: Any, tmp_path: Path) -> None:
    signer = store_signer(runtime, KeyAlgorithm.SM2)
    signature = tmp_path / "sig.b64"
    signature.write_text(base64.b64encode(signer.sign(runtime, DATA)).decode())
    cert = tmp_path / "signer.pem"
    cert.write_text(pem_encode(signer.certificate_der))
    data = tmp_path / "data.bin"
    data.write_bytes(DATA)
    args = (
        signature,
        "--cert",
        cert,
        "--scheme",
        "sm2-sm3",
        "--data-dir",
        runtime.settings.data_dir,
    )
    result = run(*args, "--data", data)
    assert result.exit_code == 0, result.output
    data.write_bytes(DATA + b"!")
    assert run(*args, "--data", data).exit_code == 1


def test_usage_errors(run: Any, signed: tuple[Path, Path], tmp_path: Path) -> None:
    cms_file, data = signed
    assert run(tmp_path / "missing.p7s").exit_code == 2
    assert run(cms_file, "--digest", "ab" * 32).exit_code == 2  # no --digest-alg
    assert run(cms_file, "--digest", "zz", "--digest-alg", "sha256").exit_code == 2
    wrong_length = run(cms_file, "--digest", "ab" * 20, "--digest-alg", "sha256")
    assert wrong_length.exit_code == 2
    assert "32 bytes" in wrong_length.output
    assert run(cms_file, "--data", data, "--digest", "ab" * 32).exit_code == 2
    text = tmp_path / "note.txt"
    text.write_text("just text")
    assert run(text).exit_code == 2  # not CMS, and no --cert for a raw signature
    assert run(text, "--cert", text, "--data", data, "--scheme", "sm2-sm3").exit_code == 2
    assert run(cms_file, "--data", data, "--data-dir", tmp_path).exit_code == 2


# -- signed PDFs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_pdf(runtime: Any, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from tests.documents import pdf_support

    key = pdf_support.signing_key(runtime, tmp_path_factory.mktemp("pdf-cli"))
    return pdf_support.sign(pdf_support.base_pdf(), key)


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_pdf_passed_with_the_installation(
    run: Any, runtime: Any, signed_pdf: bytes, tmp_path: Path
) -> None:
    from tests.documents import pdf_support

    filled = pdf_support.fill_text_field(signed_pdf, "Diagnosis", "Pneumonia")
    result = run(_file(tmp_path, "consent.pdf", filled), "--data-dir", runtime.settings.data_dir)
    assert result.exit_code == 0, result.output
    assert "signature 1: field Signature1 (approval)" in result.output
    assert "covers revision 1 of 2" in result.output
    assert "employee number: E4004" in result.output
    assert "revision 2: form-filling (allowed): " in result.output
    assert "fields Diagnosis" in result.output
    assert "[ok] file-end" in result.output
    assert result.output.rstrip().endswith("result: PASSED")


def test_pdf_changed_after_signing_fails(
    run: Any, runtime: Any, signed_pdf: bytes, tmp_path: Path
) -> None:
    from tests.documents import pdf_support

    changed = _file(tmp_path, "changed.pdf", pdf_support.isa_add_page(signed_pdf))
    result = run(changed, "--data-dir", runtime.settings.data_dir)
    assert result.exit_code == 1, result.output
    assert "revision 2: other (NOT ALLOWED)" in result.output
    assert "result: FAILED (DOCUMENT_MODIFIED)" in result.output
    as_json = run(changed, "--data-dir", runtime.settings.data_dir, "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["kind"] == "pdf" and report["signatures"][0]["changes"][0]["allowed"] is False
    unsigned = run(_file(tmp_path, "unsigned.pdf", pdf_support.base_pdf()))
    assert unsigned.exit_code == 1 and "NOT_SIGNED" in unsigned.output


def test_pdf_offline(run: Any, runtime: Any, signed_pdf: bytes, tmp_path: Path) -> None:
    pdf = _file(tmp_path, "consent.pdf", signed_pdf)
    result = run(pdf)
    assert result.exit_code == 3, result.output
    assert "NO_CERTIFICATE_CHAIN_FOUND" in result.output
    roots = tmp_path / "roots.pem"
    roots.write_text(
        "".join(pem_encode(a.certificate.dump()) for a in runtime.verifier.trust.anchors)
    )
    trusted = run(pdf, "--trust", roots)
    assert trusted.exit_code == 3, trusted.output  # the path holds; no revocation information
    assert "TRY_LATER" in trusted.output


def test_unreadable_pdfs_fail(run: Any, signed_pdf: bytes, tmp_path: Path) -> None:
    from tests.documents import pdf_support

    for name, data, code in (
        ("truncated.pdf", pdf_support.truncated_in_signature(signed_pdf), "pdf-unreadable"),
        ("broken.pdf", pdf_support.broken_xref(signed_pdf), "pdf-unreadable"),
        ("sealed.pdf", pdf_support.encrypted_pdf(), "pdf-encrypted"),
    ):
        result = run(_file(tmp_path, name, data))
        assert result.exit_code == 1, (name, result.output)
        assert f"result: FAILED ({code})" in result.output
        as_json = run(_file(tmp_path, name, data), "--json")
        assert json.loads(as_json.stdout)["problem"]["code"] == code


def test_pdf_usage_errors(run: Any, signed_pdf: bytes, tmp_path: Path) -> None:
    pdf = _file(tmp_path, "consent.pdf", signed_pdf)
    assert run(pdf, "--data", pdf).exit_code == 2
    assert run(pdf, "--scheme", "sm2-sm3").exit_code == 2
