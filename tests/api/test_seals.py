"""The hospital seal through the API: rights granted by an administrator, seal jobs (inline
and in the background), B-LTA and the cross-page seal, checked with pyHanko, pdfsig and
qpdf; a resumed job never seals a record twice."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from sqlalchemy import func, select

from medsign.clock import FixedClock
from medsign.db.tables import EvidenceEventRow
from medsign.documents.sealing import LEASE, SealJobs, SealOptions
from medsign.documents.signing import Level
from tests.api.pdf_support import (
    ARTIFACTS,
    context,
    discharge_pdf,
    installation_roots,
    make_nss,
    pdfsig,
    qpdf_check,
)
from tests.identity.support import register_application, signed_client

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def app_ids(client: TestClient, admin_headers: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {
        "archive": register_application(client, admin_headers),
        "other": register_application(client, admin_headers),
    }


@pytest.fixture(scope="module")
def archive(
    client: TestClient, admin_headers: dict[str, str], app_ids: dict[str, tuple[str, str]]
) -> Iterator[Any]:
    app_id, secret = app_ids["archive"]
    granted = client.patch(
        f"/admin/v1/applications/{app_id}",
        headers=admin_headers,
        json={"seal_purposes": ["病案专用章", ""]},
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["seal_purposes"] == ["", "病案专用章"]
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def other(client: TestClient, app_ids: dict[str, tuple[str, str]]) -> Iterator[Any]:
    app_id, secret = app_ids["other"]
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def roots(runtime: Any) -> list[bytes]:
    return installation_roots(runtime)


@pytest.fixture(scope="module")
def nss(tmp_path_factory: pytest.TempPathFactory, roots: list[bytes]) -> str:
    return make_nss(tmp_path_factory.mktemp("nss"), roots)


def records(count: int, pages: int = 1) -> list[dict[str, str]]:
    return [
        {
            "record_id": f"MR-{index:04d}",
            "pdf": base64.b64encode(discharge_pdf(pages, label=f"病案 {index}")).decode(),
        }
        for index in range(count)
    ]


def test_an_application_without_the_right_cannot_seal(other: Any) -> None:
    answer = other.request(
        "POST", "/api/v1/seal-jobs", json={"records": records(1), "purpose": "病案专用章"}
    )
    assert answer.status_code == 403 and answer.json()["code"] == "seal-not-allowed"


def test_archive_records_are_sealed_b_lta_with_a_cross_page_seal(
    archive: Any, runtime: Any, roots: list[bytes], nss: str, tmp_path: Path
) -> None:
    answer = archive.request(
        "POST",
        "/api/v1/seal-jobs?wait=true",
        json={
            "records": records(2, pages=3),
            "purpose": "病案专用章",
            "cross_page": True,
            "idempotency_key": "archive-1",
        },
    )
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["state"] == "done" and job["sealed"] == 2 and job["failed"] == 0
    assert job["level"] == "B-LTA"
    for record in job["records"]:
        assert record["state"] == "sealed"
        pdf = archive.request("GET", record["download_url"].split("8000", 1)[-1]).content
        assert hashlib.sha256(pdf).hexdigest() == record["sealed_sha256"]
        reader = PdfFileReader(io.BytesIO(pdf))
        seal = next(s for s in reader.embedded_signatures if s.field_name == "HospitalSeal")
        status = validate_pdf_signature(seal, context(roots, runtime))
        assert status.intact and status.valid and status.trusted
        assert "示例人民医院" in status.signing_cert.subject.human_friendly
        stamps = [s for s in reader.embedded_signatures if s.sig_object_type == "/DocTimeStamp"]
        assert len(stamps) == 1
        assert validate_pdf_timestamp(stamps[0], validation_context=context(roots, runtime)).valid
        text = pdfsig(nss, tmp_path, pdf)
        assert "Signature Validation: Signature is Valid." in text
        qpdf_check(tmp_path, pdf)
    # The paging seal: one slice on the right edge of each of the three pages.
    path = tmp_path / "check.pdf"
    listed = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    pages_with_images = {line.split()[0] for line in listed.splitlines()[2:] if line.strip()}
    assert pages_with_images == {"1", "2", "3"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for page in (1, 3):
        subprocess.run(
            [
                "pdftoppm",
                "-r",
                "80",
                "-png",
                "-f",
                str(page),
                "-l",
                str(page),
                "-singlefile",
                str(path),
                str(ARTIFACTS / f"sealed-page{page}"),
            ],
            check=True,
        )

    again = archive.request(
        "POST",
        "/api/v1/seal-jobs?wait=true",
        json={
            "records": [{"record_id": r["record_id"], "pdf": ""} for r in job["records"]],
            "purpose": "病案专用章",
            "cross_page": True,
            "idempotency_key": "archive-1",
        },
    )
    assert again.status_code == 422  # an empty PDF is refused before the key is looked up


def test_a_background_job_is_run_by_the_worker_and_visible_only_to_its_owner(
    archive: Any, other: Any, runtime: Any
) -> None:
    answer = archive.request(
        "POST", "/api/v1/seal-jobs", json={"records": records(3), "level": "B-T"}
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["state"] == "queued" and job["pending"] == 3
    assert other.request("GET", f"/api/v1/seal-jobs/{job['id']}").status_code == 404
    assert runtime.run_seal_jobs() >= 3
    polled = archive.get(f"/api/v1/seal-jobs/{job['id']}")
    assert polled["state"] == "done" and polled["sealed"] == 3


def test_bad_records_are_refused_before_the_job_exists(archive: Any) -> None:
    bad = [
        {"record_id": "ok", "pdf": records(1)[0]["pdf"]},
        {"record_id": "bad", "pdf": base64.b64encode(b"not a pdf").decode()},
    ]
    answer = archive.request("POST", "/api/v1/seal-jobs", json={"records": bad})
    assert answer.status_code == 422 and answer.json()["code"] == "pdf-unreadable"
    assert "record 2 (bad)" in answer.json()["detail"]


class Crash(Exception):
    """Stands for the process dying in the middle of a record."""


def test_an_interrupted_job_resumes_without_sealing_a_record_twice(runtime: Any) -> None:
    """A run dies after sealing 2 records and while holding the third; a second run (after
    the lease ran out) finishes the job: every record sealed exactly once, one event each."""
    from medsign.identity.organizations import list_organizations

    organization_id = list_organizations(runtime.database)[0].id
    clock = FixedClock(dt.datetime.now(dt.UTC))
    jobs = SealJobs(runtime.database, clock, max_bytes=runtime.settings.document_max_bytes)
    items = [(f"R{i}", discharge_pdf(label=f"档案 {i}")) for i in range(5)]
    job, _ = jobs.create(
        organization_id=organization_id,
        actor="admin:test",
        items=items,
        options=SealOptions(level=Level.B_T),
    )
    real = runtime.organization_sealer(organization_id)
    calls = {"n": 0}

    def dying(pdf: bytes, options: SealOptions) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash
        return real(pdf, options)

    with pytest.raises(Crash):
        jobs.run(job.id, dying)
    halfway = jobs.get(job.id)
    assert [i.state for i in halfway.items] == ["sealed", "sealed", "pending", "pending", "pending"]
    # Too early: the third record is still leased by the dead run.
    clock.advance(dt.timedelta(seconds=1))
    early = jobs.run(job.id, real)
    assert early.state == "queued" and early.items[2].state == "pending"
    assert [i.state for i in early.items[3:]] == ["sealed", "sealed"]
    clock.advance(LEASE)
    finished = jobs.run(job.id, real)
    assert finished.state == "done" and finished.sealed == 5 and finished.failed == 0
    with runtime.database.session() as session:
        applied = session.scalar(
            select(func.count())
            .select_from(EvidenceEventRow)
            .where(EvidenceEventRow.type == "seal:apply")
            .where(EvidenceEventRow.record.contains(f'"{job.id}"'))
        )
    assert applied == 5


def _scan(png: bytes, *, grey: bool = False) -> str:
    """A seal as a scanner sees it: on white paper, JPEG."""
    from PIL import Image

    seal = Image.open(io.BytesIO(png)).convert("RGBA")
    paper = Image.new("RGBA", seal.size, (250, 250, 246, 255))
    paper.alpha_composite(seal)
    picture = paper.convert("L" if grey else "RGB")
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return base64.b64encode(out.getvalue()).decode()


def test_an_administrator_uploads_the_seal_image_it_then_seals_with(
    client: TestClient, admin_headers: dict[str, str], archive: Any
) -> None:
    from medsign.documents.images import render_seal

    drawn = render_seal("示例人民医院", purpose="处方专用章", dpi=300).png
    uploaded = client.put(
        "/admin/v1/seal-images",
        headers=admin_headers,
        json={"purpose": "处方专用章", "image": _scan(drawn), "width_mm": 40},
    )
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert body["purpose"] == "处方专用章" and body["width_mm"] == 40
    current = client.get(
        "/admin/v1/seal-images/current.png", headers=admin_headers, params={"purpose": "处方专用章"}
    )
    assert hashlib.sha256(current.content).hexdigest() == body["sha256"]

    grey = client.put(
        "/admin/v1/seal-images",
        headers=admin_headers,
        json={"purpose": "处方专用章", "image": _scan(drawn, grey=True)},
    )
    assert grey.status_code == 422 and grey.json()["code"] == "seal-not-red"
    assert client.put("/admin/v1/seal-images", json={"image": _scan(drawn)}).status_code == 401
    # Still the uploaded one: a refused upload changes nothing.
    again = client.get(
        "/admin/v1/seal-images/current.png", headers=admin_headers, params={"purpose": "处方专用章"}
    )
    assert again.content == current.content
