"""`medsign seal archive` killed (SIGKILL) halfway through an archive, then `medsign seal
resume`: every record sealed exactly once, none skipped (issue 6, item 5)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from medsign.db.session import normalise_url
from medsign.db.tables import EvidenceEventRow, SealItemRow
from tests.api.pdf_support import discharge_pdf
from tests.conftest import make_database_url
from tests.live import MEDSIGN, LiveServer, live_server

RECORDS = 12


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[LiveServer]:
    urls = make_database_url(tmp_path)
    with live_server(tmp_path / "data", next(urls)) as running:
        running.stop()  # only the CLI works on this installation
        yield running
    for _ in urls:
        pass


def sealed_count(url: str, job_id: str) -> int:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(SealItemRow)
                    .where(SealItemRow.job_id == job_id, SealItemRow.state == "sealed")
                )
                or 0
            )
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_killed_archive_run_resumes_without_doubles_or_gaps(
    installation: LiveServer, tmp_path: Path
) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    for index in range(RECORDS):
        (folder / f"MR-{index:03d}.pdf").write_bytes(discharge_pdf(2, label=f"病案 {index}"))
    files = sorted(str(p) for p in folder.iterdir())
    data_dir = str(installation.data_dir)
    process = subprocess.Popen(
        [*MEDSIGN, "seal", "archive", *files, "--level", "B-T", "--data-dir", data_dir],
        env=installation.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    job_id = None
    while job_id is None:
        line = process.stderr.readline()
        assert line, "the CLI ended before naming its job"
        found = re.search(r"job (sjob_\S+):", line)
        job_id = found.group(1) if found else None
    deadline = time.monotonic() + 120
    while sealed_count(installation.database_url, job_id) < 3:
        assert process.poll() is None, "the run finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    interrupted = sealed_count(installation.database_url, job_id)
    assert 3 <= interrupted < RECORDS

    out = tmp_path / "sealed"
    # A record the killed run held stays leased for a few minutes: resume is told so and
    # carries on with the rest; the test shortens the wait by running it until done.
    for _ in range(2):
        resumed = installation.cli("seal", "resume", job_id, "--out", str(out))
        summary = json.loads(resumed.stdout)
        if summary["state"] == "done":
            break
        _expire_leases(installation.database_url, job_id)
    assert summary["state"] == "done", summary
    assert summary["sealed"] == RECORDS and summary["failed"] == 0
    assert len(list(out.glob("*.pdf"))) == RECORDS

    engine = create_engine(normalise_url(installation.database_url))
    try:
        with engine.connect() as conn:
            applied = conn.scalar(
                select(func.count())
                .select_from(EvidenceEventRow)
                .where(EvidenceEventRow.type == "seal:apply")
                .where(EvidenceEventRow.record.contains(f'"{job_id}"'))
            )
    finally:
        engine.dispose()
    assert applied == RECORDS  # one seal per record, however many runs it took
    status = json.loads(installation.cli("seal", "status", job_id).stdout)
    assert [r["position"] for r in status["records"]] == list(range(RECORDS))


def _expire_leases(url: str, job_id: str) -> None:
    """What waiting out the lease would do, without the wait."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(
                SealItemRow.__table__.update()  # type: ignore[attr-defined]
                .where(SealItemRow.job_id == job_id, SealItemRow.state == "pending")
                .values(lease_until=None)
            )
    finally:
        engine.dispose()
