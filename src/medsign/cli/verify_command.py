"""`medsign verify FILE`: check a signature offline or against an installation.

Exit status: 0 passed, 1 failed, 3 indeterminate, 2 for a usage error (bad arguments,
unreadable files). The kind of FILE is recognised from its content: a signed PDF (every
signature, the byte ranges and every change made after each signature), CMS (DER or PEM), a
raw signature (with --cert), or an evidence package (a ZIP, checked fully offline against
its own root certificates, or against --trust anchors when given). A file that starts like a
PDF but cannot be read cleanly (broken cross-reference table, encrypted, over the size limit)
is a failed verification (exit 1), not a usage error.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from medsign.cli.common import settings_for
from medsign.clock import SystemClock
from medsign.crypto.types import SignatureEncoding, SignatureScheme
from medsign.documents.inspection import PDF_MAGIC
from medsign.errors import InputError, MedsignError
from medsign.evidence.package import PackageReport, is_package, verify_package
from medsign.verify import (
    Check,
    CMSSignature,
    Indication,
    NoStatusSource,
    RawSignature,
    Report,
    SignedContent,
    SubIndication,
    TrustStore,
    Verifier,
    load_certificates,
)
from medsign.verify.pdf import PdfReport, PdfSignatureReport, PdfVerifier

EXIT = {Indication.PASSED: 0, Indication.FAILED: 1, Indication.INDETERMINATE: 3}
USAGE = 2
SCHEMES = [s.value for s in SignatureScheme]
_PEM_CMS = (b"-----BEGIN CMS-----", b"-----BEGIN PKCS7-----")

readable = click.Path(exists=True, dir_okay=False, path_type=Path)


def _usage(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(USAGE)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _usage(f"cannot read {path}: {exc.strerror}")


def _pem_body(blob: bytes) -> bytes:
    lines = [line for line in blob.strip().splitlines() if not line.startswith(b"-----")]
    try:
        return base64.b64decode(b"".join(lines), validate=True)
    except (binascii.Error, ValueError):
        _usage("malformed PEM")


def _detect(blob: bytes, has_certificate: bool) -> str:
    """ "pdf", "package", "cms" or "raw"."""
    if blob.startswith(PDF_MAGIC):
        return "pdf"
    if is_package(blob):
        return "package"
    if blob.lstrip().startswith(_PEM_CMS):
        return "cms"
    if has_certificate:
        return "raw"
    if blob[:1] == b"\x30":
        return "cms"
    _usage("FILE is not CMS SignedData; for a raw signature give --cert and --scheme")


def _raw_signature_bytes(blob: bytes) -> bytes:
    """Raw signatures are often handed around as base64 or hex text."""
    text = blob.strip()
    if text and all(32 < b < 127 for b in text):
        try:
            return bytes.fromhex(text.decode("ascii"))
        except ValueError:
            pass
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    return blob


def _content(data: Path | None, digest: str | None, digest_alg: str | None) -> SignedContent | None:
    if data is not None and digest is not None:
        _usage("give --data or --digest, not both")
    if data is not None:
        return SignedContent(data=_read(data))
    if digest is not None:
        if digest_alg is None:
            _usage("--digest needs --digest-alg")
        try:
            value = bytes.fromhex(digest)
        except ValueError:
            _usage("--digest must be hex")
        return SignedContent(digest=value, digest_algorithm=digest_alg)
    return None


def _stamp(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds") if value else "-"


def _print(report: Report) -> None:
    click.echo(f"signature: {report.kind}" + (f" ({report.scheme})" if report.scheme else ""))
    signer = report.signer
    if signer is not None:
        click.echo(f"signer: {signer.subject}")
        if signer.employee_number:
            click.echo(f"  employee number: {signer.employee_number}")
        click.echo(f"  certificate serial: {signer.certificate_serial}")
        click.echo(f"  issuer: {signer.issuer}")
        if signer.profile:
            click.echo(f"  profile: {signer.profile}")
    source = {"timestamp": "proven by timestamp", "claimed": "claimed, unproven", "none": ""}
    time_text = _stamp(report.signing_time)
    label = source[report.signing_time_source.value]
    click.echo(f"signing time: {time_text}" + (f" ({label})" if label else ""))
    if report.timestamp is not None:
        click.echo(f"timestamp: {_stamp(report.timestamp.time)} by {report.timestamp.tsa}")
    for subject in report.chain[1:]:
        click.echo(f"  chain: {subject}")
    click.echo("checks:")
    for check in report.checks:
        tag = check.indication.value.upper() if check.indication is not Indication.PASSED else "ok"
        sub = f" {check.sub_indication.value}" if check.sub_indication else ""
        click.echo(f"  [{tag}] {check.name.value}{sub}: {check.message}")
    for note in report.notes:
        click.echo(f"note: {note}")
    result = report.indication.value.upper()
    if report.sub_indication is not None:
        result += f" ({report.sub_indication.value})"
    click.echo(f"result: {result}")


def _print_package(report: PackageReport) -> None:
    click.echo(f"evidence package: request {report.request_id or '-'}")
    if report.signature is not None and report.signature.signer is not None:
        click.echo(f"signer: {report.signature.signer.subject}")
        click.echo(f"signing time: {_stamp(report.signature.signing_time)}")
    click.echo("checks:")
    for check in report.checks:
        tag = check.indication.value.upper() if check.indication is not Indication.PASSED else "ok"
        sub = f" {check.sub_indication.value}" if check.sub_indication else ""
        click.echo(f"  [{tag}] {check.name}{sub}: {check.message}")
    for note in report.notes:
        click.echo(f"note: {note}")
    result = report.indication.value.upper()
    if report.sub_indication is not None:
        result += f" ({report.sub_indication.value})"
    click.echo(f"result: {result}")


def _print_checks(checks: tuple[Check, ...], indent: str = "  ") -> None:
    for check in checks:
        tag = check.indication.value.upper() if check.indication is not Indication.PASSED else "ok"
        sub = f" {check.sub_indication.value}" if check.sub_indication else ""
        click.echo(f"{indent}[{tag}] {check.name.value}{sub}: {check.message}")


def _result(indication: Indication, sub_indication: SubIndication | None) -> str:
    text = indication.value.upper()
    return text + (f" ({sub_indication.value})" if sub_indication is not None else "")


def _print_pdf_signature(number: int, signature: PdfSignatureReport, revisions: int) -> None:
    label = signature.type + (f", DocMDP P={signature.docmdp}" if signature.docmdp else "")
    revision = "-" if signature.revision is None else str(signature.revision)
    click.echo(f"signature {number}: field {signature.field_name} ({label})")
    click.echo(f"  /SubFilter: {signature.sub_filter or '-'}")
    click.echo(
        f"  covers revision {revision} of {revisions - 1}, byte range"
        f" {list(signature.byte_range) if signature.byte_range else '-'} ({signature.coverage})"
    )
    report = signature.signature
    if report is not None:
        if report.signer is not None:
            click.echo(f"  signer: {report.signer.subject}")
            if report.signer.employee_number:
                click.echo(f"    employee number: {report.signer.employee_number}")
            click.echo(f"    certificate serial: {report.signer.certificate_serial}")
            click.echo(f"    issuer: {report.signer.issuer}")
        source = {"timestamp": "proven by timestamp", "claimed": "claimed, unproven", "none": ""}
        label = source[report.signing_time_source.value]
        time_text = _stamp(report.signing_time)
        click.echo(f"  signing time: {time_text}" + (f" ({label})" if label else ""))
        if report.timestamp is not None:
            click.echo(f"  timestamp: {_stamp(report.timestamp.time)} by {report.timestamp.tsa}")
    if signature.claimed_time is not None:
        click.echo(f"  /M: {_stamp(signature.claimed_time)} (claimed in the PDF, unproven)")
    click.echo("  PDF checks:")
    _print_checks(signature.checks, "    ")
    if report is not None:
        click.echo("  signature checks:")
        _print_checks(report.checks, "    ")
        for note in report.notes:
            click.echo(f"    note: {note}")
    if signature.changes:
        click.echo("  changes after it:")
    for change in signature.changes:
        verdict = "allowed" if change.allowed else "NOT ALLOWED"
        what = [f"{change.objects} object(s)"]
        if change.fields:
            what.append("fields " + ", ".join(change.fields))
        if change.signatures:
            what.append("signatures " + ", ".join(change.signatures))
        if change.dss:
            what.append("DSS")
        click.echo(f"    revision {change.revision}: {change.level} ({verdict}): {'; '.join(what)}")
        if change.reason:
            click.echo(f"      {change.reason}")
    click.echo(f"  result: {_result(signature.indication, signature.sub_indication)}")


def _print_pdf(report: PdfReport) -> None:
    click.echo(f"PDF: {report.size} bytes, {report.revisions} revision(s)")
    for number, signature in enumerate(report.signatures, start=1):
        _print_pdf_signature(number, signature, report.revisions)
    click.echo("document:")
    _print_checks(report.checks)
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo(f"result: {_result(report.indication, report.sub_indication)}")


def _verify_pdf(
    blob: bytes, trust_files: tuple[Path, ...], data_dir: Path | None, as_json: bool
) -> NoReturn:
    try:
        anchors = [der for path in trust_files for der in load_certificates(_read(path))]
    except MedsignError as exc:
        _usage(f"{exc.public_message()} [{exc.code}]")
    try:
        report = _pdf_report(blob, anchors, data_dir)
    except InputError as exc:
        # Not a clean, readable PDF: nothing in it can be relied on.
        if as_json:
            problem = {"code": exc.code, "message": exc.public_message()}
            body = {"kind": "pdf", "indication": "failed", "problem": problem}
            click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        else:
            click.echo(f"error: {exc.public_message()} [{exc.code}]", err=True)
            click.echo(f"result: FAILED ({exc.code})")
        sys.exit(EXIT[Indication.FAILED])
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _print_pdf(report)
    sys.exit(EXIT[report.indication])


def _pdf_report(blob: bytes, anchors: list[bytes], data_dir: Path | None) -> PdfReport:
    if data_dir is None:
        trust = TrustStore.from_certificates(anchors, source="configured")
        return PdfVerifier(Verifier(trust, NoStatusSource(), SystemClock())).verify(blob)
    from medsign.runtime import open_runtime

    runtime = open_runtime(settings_for(data_dir))
    try:
        verifier = runtime.verifier
        if anchors:
            verifier = verifier.with_trust(verifier.trust.with_anchors(anchors, source="cli"))
        return PdfVerifier(verifier).verify(blob)
    finally:
        runtime.close()


@click.command("verify")
@click.argument("file", type=readable)
@click.option("--data", "data_file", type=readable, help="The signed data (detached CMS, raw).")
@click.option("--digest", default=None, help="Hex digest instead of --data.")
@click.option("--digest-alg", type=click.Choice(["sha256", "sm3"]), default=None)
@click.option("--cert", "cert_file", type=readable, help="Signer certificate (PEM/DER).")
@click.option("--chain", "chain_files", type=readable, multiple=True, help="Intermediates.")
@click.option("--scheme", type=click.Choice(SCHEMES), default=None, help="Raw signature scheme.")
@click.option(
    "--encoding",
    type=click.Choice(["der", "raw"]),
    default="der",
    show_default=True,
    help="ECDSA/SM2 raw signature encoding.",
)
@click.option("--timestamp", "timestamp_file", type=readable, help="RFC 3161 token (raw).")
@click.option("--signing-time", type=click.DateTime(), default=None, help="Claimed time, UTC.")
@click.option("--trust", "trust_files", type=readable, multiple=True, help="Trust anchors.")
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Use this installation's root CAs and status history (no default: offline).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    file: Path,
    data_file: Path | None,
    digest: str | None,
    digest_alg: str | None,
    cert_file: Path | None,
    chain_files: tuple[Path, ...],
    scheme: str | None,
    encoding: str,
    timestamp_file: Path | None,
    signing_time: dt.datetime | None,
    trust_files: tuple[Path, ...],
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Verify a signed PDF, a signature or an evidence package in FILE and print what was
    checked.

    With --data-dir the installation's root CAs and certificate status history are used;
    without it only --trust anchors and revocation evidence inside the signature (or the
    PDF's document security store) count. An evidence package is always checked offline,
    with what it carries.
    """
    blob = _read(file)
    kind = _detect(blob, cert_file is not None)
    if kind == "pdf":
        given = [data_file, digest, cert_file, scheme, timestamp_file, signing_time]
        if any(option is not None for option in given) or chain_files:
            _usage("a PDF carries its own signatures; only --trust, --data-dir and --json apply")
        _verify_pdf(blob, trust_files, data_dir, as_json)
    if kind == "package":
        given = [data_file, digest, cert_file, scheme, timestamp_file, signing_time, data_dir]
        if any(option is not None for option in given) or chain_files:
            _usage("an evidence package carries its own data; only --trust and --json apply")
        try:
            anchors = [der for path in trust_files for der in load_certificates(_read(path))]
        except MedsignError as exc:
            _usage(f"{exc.public_message()} [{exc.code}]")
        package_report = verify_package(blob, trust_anchors=anchors)
        if as_json:
            click.echo(json.dumps(package_report.as_dict(), ensure_ascii=False, indent=2))
        else:
            _print_package(package_report)
        sys.exit(EXIT[package_report.indication])
    try:
        report = _run(
            file,
            data_file,
            digest,
            digest_alg,
            cert_file,
            chain_files,
            scheme,
            encoding,
            timestamp_file,
            signing_time,
            trust_files,
            data_dir,
        )
    except MedsignError as exc:
        _usage(f"{exc.public_message()} [{exc.code}]")
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _print(report)
    sys.exit(EXIT[report.indication])


def _run(
    file: Path,
    data_file: Path | None,
    digest: str | None,
    digest_alg: str | None,
    cert_file: Path | None,
    chain_files: tuple[Path, ...],
    scheme: str | None,
    encoding: str,
    timestamp_file: Path | None,
    signing_time: dt.datetime | None,
    trust_files: tuple[Path, ...],
    data_dir: Path | None,
) -> Report:
    blob = _read(file)
    content = _content(data_file, digest, digest_alg)
    intermediates = tuple(der for path in chain_files for der in load_certificates(_read(path)))
    anchors = [der for path in trust_files for der in load_certificates(_read(path))]
    kind = _detect(blob, cert_file is not None)
    if kind == "cms":
        if scheme is not None or timestamp_file is not None or signing_time is not None:
            _usage("--scheme, --timestamp and --signing-time apply to raw signatures only")
        cms_der = _pem_body(blob) if blob.lstrip().startswith(b"-----") else blob
        extra = intermediates
        if cert_file is not None:
            extra = (*load_certificates(_read(cert_file)), *extra)
        request: CMSSignature | RawSignature = CMSSignature(cms_der, content, extra)
    else:
        assert cert_file is not None
        if scheme is None:
            _usage("a raw signature needs --scheme")
        if content is None:
            _usage("a raw signature needs --data or --digest")
        certificates = load_certificates(_read(cert_file))
        request = RawSignature(
            signature=_raw_signature_bytes(blob),
            scheme=SignatureScheme(scheme),
            certificate=certificates[0],
            content=content,
            encoding=SignatureEncoding(encoding),
            intermediates=(*certificates[1:], *intermediates),
            claimed_signing_time=(
                signing_time.replace(tzinfo=dt.UTC) if signing_time is not None else None
            ),
            timestamp_token=_read(timestamp_file) if timestamp_file is not None else None,
        )
    if data_dir is None:
        trust = TrustStore.from_certificates(anchors, source="configured")
        return Verifier(trust, NoStatusSource(), SystemClock()).verify(request)
    from medsign.runtime import open_runtime

    runtime = open_runtime(settings_for(data_dir))
    try:
        verifier = runtime.verifier
        if anchors:
            verifier = verifier.with_trust(verifier.trust.with_anchors(anchors, source="cli"))
        return verifier.verify(request)
    finally:
        runtime.close()
