"""`medsign log ...`: the evidence log's tree, proofs, the audit, evidence packages and reports."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import click

from medsign.cli.common import data_dir_option, reports_errors
from medsign.cli.context import runtime_for


@click.group("log")
def log_group() -> None:
    """The evidence log (RFC 9162 Merkle tree of every event)."""


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


@log_group.command("tree")
@click.option("--size", type=click.IntRange(0), default=None, help="Tree size (default: now).")
@data_dir_option
@reports_errors
def tree(size: int | None, data_dir: Path | None) -> None:
    """Print the size and root hash (base64)."""
    with runtime_for(data_dir) as runtime:
        found, root = runtime.evidence_log.root(size)
    click.echo(json.dumps({"size": found, "root_hash": _b64(root)}))


@log_group.command("prove")
@click.argument("entry")
@click.option("--size", type=click.IntRange(0), default=None, help="Tree size (default: now).")
@data_dir_option
@reports_errors
def prove(entry: str, size: int | None, data_dir: Path | None) -> None:
    """Inclusion proof for ENTRY (an event id or a leaf index)."""
    with runtime_for(data_dir) as runtime:
        log = runtime.evidence_log
        found = log.entry(int(entry) if entry.isdigit() else entry)
        tree_size, proof = log.inclusion(found.leaf_index, size)
        _, root = log.root(tree_size)
    click.echo(
        json.dumps(
            {
                "event_id": found.event_id,
                "leaf_index": found.leaf_index,
                "leaf_hash": _b64(found.leaf_hash),
                "tree_size": tree_size,
                "root_hash": _b64(root),
                "proof": [_b64(p) for p in proof],
            },
            indent=2,
        )
    )


@log_group.command("consistency")
@click.argument("first", type=click.IntRange(1))
@click.argument("second", type=click.IntRange(1), required=False)
@data_dir_option
@reports_errors
def consistency(first: int, second: int | None, data_dir: Path | None) -> None:
    """Consistency proof from tree size FIRST to SECOND (default: now)."""
    with runtime_for(data_dir) as runtime:
        log = runtime.evidence_log
        second_size, proof = log.consistency(first, second)
        roots = [_b64(log.root(first)[1]), _b64(log.root(second_size)[1])]
    click.echo(
        json.dumps(
            {
                "first": first,
                "second": second_size,
                "first_root_hash": roots[0],
                "second_root_hash": roots[1],
                "proof": [_b64(p) for p in proof],
            },
            indent=2,
        )
    )


@log_group.command("audit")
@data_dir_option
@reports_errors
def audit(data_dir: Path | None) -> None:
    """Recompute the whole tree from the stored records and check every stored checkpoint.

    Exit code 0 when everything adds up; 1 naming the first bad leaf index otherwise."""
    with runtime_for(data_dir) as runtime:
        report = runtime.evidence_log.audit()
    if report.ok:
        click.echo(
            f"ok: {report.size} entries, {report.checkpoints} checkpoint(s) recomputed and"
            " consistent"
        )
        return
    click.echo(f"FAILED: first bad index {report.first_bad_index}", err=True)
    for finding in report.findings[:50]:
        click.echo(f"  index {finding.leaf_index}: {finding.problem}", err=True)
    if len(report.findings) > 50:
        click.echo(f"  ... and {len(report.findings) - 50} more", err=True)
    sys.exit(1)


@log_group.command("package")
@click.argument("request_id")
@click.option("--content", is_flag=True, help="Include the signed JSON record itself.")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="Where to write the ZIP.",
)
@data_dir_option
@reports_errors
def package(request_id: str, content: bool, out: Path, data_dir: Path | None) -> None:
    """Write the evidence package of a signed request (check it with `medsign verify OUT`)."""
    from medsign.evidence.package import build_package

    with runtime_for(data_dir) as runtime:
        data = build_package(runtime, request_id, include_content=content)
    try:
        out.write_bytes(data)
    except OSError as exc:
        click.echo(f"error: cannot write {out}: {exc.strerror}", err=True)
        sys.exit(2)
    click.echo(f"wrote {out} ({len(data)} bytes)")


@log_group.command("report")
@click.argument("request_id")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="Where to write the PDF.",
)
@click.option(
    "--package",
    "package_out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the evidence package the report was rendered from (its SHA-256 is in"
    " the report's footer).",
)
@data_dir_option
@reports_errors
def report(request_id: str, out: Path, package_out: Path | None, data_dir: Path | None) -> None:
    """Write the evidence report (PDF) of a signed request: who signed what and when, how,
    the certificate, the events, the hashes and the offline verification result."""
    from medsign.evidence.report import render_report_and_package
    from medsign.web.verify import verification_link

    with runtime_for(data_dir) as runtime:
        pdf, data = render_report_and_package(
            runtime, request_id, verification_url=verification_link(runtime, request_id)
        )
    for path, blob in ((out, pdf), (package_out, data)):
        if path is None:
            continue
        try:
            path.write_bytes(blob)
        except OSError as exc:
            click.echo(f"error: cannot write {path}: {exc.strerror}", err=True)
            sys.exit(2)
        click.echo(f"wrote {path} ({len(blob)} bytes)")
