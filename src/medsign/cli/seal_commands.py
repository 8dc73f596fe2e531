"""`medsign seal ...`: the hospital seal on archived records, from the operator's console.

`archive` opens a seal job over PDF files and runs it with a progress bar; if the process
stops (Ctrl-C, a crash, a reboot), `resume JOB` carries on where it stopped: no record is
sealed twice and none is skipped. `status JOB` prints the per-record results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from medsign.cli.common import data_dir_option, reports_errors
from medsign.cli.context import runtime_for
from medsign.documents.sealing import SealJob, SealOptions, check_purpose
from medsign.documents.signing import Level
from medsign.errors import InputError
from medsign.identity.organizations import list_organizations
from medsign.runtime import Runtime


@click.group("seal")
def seal_group() -> None:
    """The hospital seal on PDFs (archive sealing)."""


def _organization(runtime: Runtime, code: str | None) -> str:
    organizations = list_organizations(runtime.database)
    if code is not None:
        found = [o for o in organizations if o.code == code]
        if not found:
            raise InputError(f"no organisation with code {code!r}")
        return found[0].id
    if len(organizations) != 1:
        raise InputError("name the organisation with --organization CODE")
    return organizations[0].id


def _run(runtime: Runtime, job: SealJob, out: Path | None) -> SealJob:
    sealer = runtime.organization_sealer(job.organization_id)
    done_before = job.sealed + job.failed
    stderr = sys.stderr
    with click.progressbar(
        length=job.total, label=f"sealing {job.id}", show_pos=True, file=stderr
    ) as bar:
        bar.update(done_before)
        seen = [done_before]

        def progress(now: SealJob) -> None:
            bar.update(now.sealed + now.failed - seen[0])
            seen[0] = now.sealed + now.failed

        finished = runtime.seal_jobs.run(job.id, sealer, progress=progress)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for item in finished.items:
            if item.state == "sealed":
                _, pdf = runtime.seal_jobs.sealed_pdf(job.id, item.position)
                (out / f"{item.position:05d}-{_safe(item.record_id)}.pdf").write_bytes(pdf)
    return finished


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def _summary(job: SealJob) -> None:
    click.echo(
        json.dumps(
            {
                "job": job.id,
                "state": job.state,
                "total": job.total,
                "sealed": job.sealed,
                "failed": job.failed,
                "pending": job.pending,
                "records": [
                    {
                        "position": i.position,
                        "record_id": i.record_id,
                        "state": i.state,
                        "sealed_sha256": i.sealed_sha256,
                        "error_code": i.error_code,
                    }
                    for i in job.items
                ],
            },
            ensure_ascii=False,
            indent=2,
        )
    )


@seal_group.command("archive")
@click.argument(
    "pdfs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--purpose", default="病案专用章", show_default=True, help='Seal purpose ("" official).'
)
@click.option(
    "--level", type=click.Choice([lv.value for lv in Level]), default="B-LTA", show_default=True
)
@click.option("--cross-page", is_flag=True, help="Also a paging seal across the right edges.")
@click.option("--organization", default=None, help="Organisation code (if several).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write sealed PDFs here.",
)
@data_dir_option
@reports_errors
def archive(
    pdfs: tuple[Path, ...],
    purpose: str,
    level: str,
    cross_page: bool,
    organization: str | None,
    out: Path | None,
    data_dir: Path | None,
) -> None:
    """Seal PDFS (record id = file name) with the hospital seal, B-LTA by default."""
    with runtime_for(data_dir) as runtime:
        organization_id = _organization(runtime, organization)
        items = [(path.stem, path.read_bytes()) for path in pdfs]
        job, _ = runtime.seal_jobs.create(
            organization_id=organization_id,
            actor="admin:cli",
            items=items,
            options=SealOptions(
                purpose=check_purpose(purpose), level=Level(level), cross_page=cross_page
            ),
        )
        click.echo(
            f"job {job.id}: {job.total} records (resume with `medsign seal resume {job.id}`)",
            err=True,
        )
        _summary(_run(runtime, job, out))


@seal_group.command("resume")
@click.argument("job_id")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write sealed PDFs here.",
)
@data_dir_option
@reports_errors
def resume(job_id: str, out: Path | None, data_dir: Path | None) -> None:
    """Carry on with an interrupted job."""
    with runtime_for(data_dir) as runtime:
        _summary(_run(runtime, runtime.seal_jobs.get(job_id), out))


@seal_group.command("status")
@click.argument("job_id")
@data_dir_option
@reports_errors
def status(job_id: str, data_dir: Path | None) -> None:
    """Progress and per-record results of a job."""
    with runtime_for(data_dir) as runtime:
        _summary(runtime.seal_jobs.get(job_id))
