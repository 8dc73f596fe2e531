"""PDF helpers for the API tests: a small hospital record to sign, an NSS database for
poppler's pdfsig, and the independent checks (pdfsig, qpdf, pyHanko's validator)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

from asn1crypto import x509
from pyhanko_certvalidator import ValidationContext
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "documents"


def discharge_pdf(pages: int = 1, *, label: str = "出院记录") -> bytes:
    """A small PDF in the style of a hospital record, with the anchor text 医师签名：."""
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True)
    for page in range(pages):
        canvas.setFont("STSong-Light", 16)
        canvas.drawString(72, 770, f"示例人民医院 {label}")
        canvas.setFont("STSong-Light", 11)
        canvas.drawString(72, 740, f"患者：张某某  住院号：A1234  第 {page + 1} 页")
        canvas.drawString(72, 120, "医师签名：")
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def make_nss(directory: Path, roots: list[bytes]) -> str:
    """An NSS database trusting ``roots``, for pdfsig."""
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True)
    for index, der in enumerate(roots):
        path = directory / f"root{index}.der"
        path.write_bytes(der)
        subprocess.run(
            [
                "certutil",
                "-A",
                "-n",
                f"root{index}",
                "-t",
                "CT,C,C",
                "-i",
                str(path),
                "-d",
                f"sql:{directory}",
            ],
            check=True,
        )
    return f"sql:{directory}"


def installation_roots(runtime: Any) -> list[bytes]:
    return [ca.certificate_der for ca in runtime.authority.list_cas() if ca.level == "root"]


def pdfsig(nss: str, tmp: Path, pdf: bytes) -> str:
    path = tmp / "signed.pdf"
    path.write_bytes(pdf)
    # Offline: the OCSP URL in the certificates points at a server this test does not run.
    proc = subprocess.run(
        ["pdfsig", "-no-ocsp", "-nssdir", nss, str(path)], capture_output=True, text=True
    )
    return proc.stdout + proc.stderr


def qpdf_check(tmp: Path, pdf: bytes) -> None:
    path = tmp / "check.pdf"
    path.write_bytes(pdf)
    proc = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No syntax or stream encoding errors found" in proc.stdout


def context(roots: list[bytes], runtime: Any) -> ValidationContext:
    intermediates = [
        ca.certificate_der for ca in runtime.authority.list_cas() if ca.level != "root"
    ]
    return ValidationContext(
        trust_roots=[x509.Certificate.load(d) for d in roots],
        other_certs=[x509.Certificate.load(d) for d in intermediates],
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
