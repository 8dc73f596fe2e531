"""`medsign ca ...`: issue, revoke, hold, release, renew, CRLs, RA mode."""

from __future__ import annotations

from pathlib import Path

import click

from medsign.ca.authority import REVOCATION_REASONS
from medsign.ca.authority import pem_encode as pem
from medsign.ca.names import openssl_serial
from medsign.cli.common import data_dir_option, reports_errors
from medsign.cli.context import runtime_for
from medsign.crypto.types import KeyAlgorithm

REASONS = sorted(REVOCATION_REASONS)
OPERATOR = "cli"


@click.group()
def ca() -> None:
    """Certificate authority operations."""


def _show(record: object) -> None:
    from medsign.ca.authority import CertificateRecord

    assert isinstance(record, CertificateRecord)
    click.echo(
        f"serial={openssl_serial(record.serial_hex)} status={record.status}"
        f" profile={record.profile} subject={record.subject}"
    )


@ca.command("issue")
@click.option("--csr", "csr_file", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--profile", required=True, help="Certificate profile, e.g. staff-signing.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PEM output file.")
@data_dir_option
@reports_errors
def issue(csr_file: Path, profile: str, out: Path, data_dir: Path | None) -> None:
    """Issue a certificate from a PKCS#10 CSR (PEM or DER)."""
    with runtime_for(data_dir) as runtime:
        record = runtime.authority.issue_from_csr(csr_file.read_bytes(), profile, actor=OPERATOR)
    out.write_text(pem(record.certificate_der))
    _show(record)


@ca.command("revoke")
@click.argument("serial")
@click.option("--reason", type=click.Choice(REASONS), default="unspecified", show_default=True)
@data_dir_option
@reports_errors
def revoke(serial: str, reason: str, data_dir: Path | None) -> None:
    """Revoke SERIAL (hex, as `openssl x509 -serial` prints it)."""
    with runtime_for(data_dir) as runtime:
        _show(runtime.authority.revoke(serial, reason, actor=OPERATOR))


@ca.command("hold")
@click.argument("serial")
@data_dir_option
@reports_errors
def hold(serial: str, data_dir: Path | None) -> None:
    """Put SERIAL on hold (certificateHold)."""
    with runtime_for(data_dir) as runtime:
        _show(runtime.authority.hold(serial, actor=OPERATOR))


@ca.command("release")
@click.argument("serial")
@data_dir_option
@reports_errors
def release(serial: str, data_dir: Path | None) -> None:
    """Release SERIAL from hold."""
    with runtime_for(data_dir) as runtime:
        _show(runtime.authority.release(serial, actor=OPERATOR))


@ca.command("renew")
@click.argument("serial")
@click.option("--rekey", is_flag=True, help="Generate a new key (key-store keys only).")
@click.option("--csr", "csr_file", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@data_dir_option
@reports_errors
def renew(
    serial: str, rekey: bool, csr_file: Path | None, out: Path, data_dir: Path | None
) -> None:
    """Renew SERIAL with the same key, a new key-store key, or a new CSR."""
    csr = csr_file.read_bytes() if csr_file else None
    with runtime_for(data_dir) as runtime:
        record = runtime.authority.renew(
            serial, rekey=rekey or csr is not None, csr=csr, actor=OPERATOR
        )
    out.write_text(pem(record.certificate_der))
    _show(record)


@ca.command("show")
@click.argument("serial")
@data_dir_option
@reports_errors
def show(serial: str, data_dir: Path | None) -> None:
    """Show SERIAL and its status history."""
    with runtime_for(data_dir) as runtime:
        _show(runtime.authority.get(serial))
        for event in runtime.authority.history(serial):
            click.echo(
                f"  {event.at.isoformat()} {event.action} {event.reason or ''} by {event.actor}"
            )


@ca.command("list")
@click.option("--status", type=click.Choice(["good", "revoked", "hold"]), default=None)
@click.option("--profile", default=None)
@data_dir_option
@reports_errors
def list_(status: str | None, profile: str | None, data_dir: Path | None) -> None:
    """List certificates."""
    with runtime_for(data_dir) as runtime:
        for record in runtime.authority.list(status=status, profile=profile, limit=1000):
            _show(record)


@ca.command("crl")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PEM output file.")
@click.option("--ca-id", default=None, help="CA (default: every CA, concatenated).")
@data_dir_option
@reports_errors
def crl(out: Path, ca_id: str | None, data_dir: Path | None) -> None:
    """Publish fresh CRLs and write them (PEM)."""
    with runtime_for(data_dir) as runtime:
        ids = [ca_id] if ca_id else [c.id for c in runtime.authority.list_cas()]
        blobs = []
        for one in ids:
            runtime.authority.ca_certificate(one)
            blobs.append(pem(runtime.crls.publish(one), "X509 CRL"))
    out.write_text("".join(blobs))
    click.echo(f"wrote {len(blobs)} CRL(s) to {out}")


@ca.command("cas")
@data_dir_option
@reports_errors
def cas(data_dir: Path | None) -> None:
    """List the certificate authorities."""
    with runtime_for(data_dir) as runtime:
        for one in runtime.authority.list_cas():
            click.echo(f"{one.id}  {one.level:<8} {one.family:<5} {one.name}")


@ca.command("ra-csr")
@click.option("--algorithm", type=click.Choice([a.value for a in KeyAlgorithm]), required=True)
@click.option("--subject", required=True, help="e.g. 'CN=张三,O=示例人民医院,C=CN'")
@click.option("--profile", required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@data_dir_option
@reports_errors
def ra_csr(algorithm: str, subject: str, profile: str, out: Path, data_dir: Path | None) -> None:
    """RA mode: create a key here and a CSR for an external CA."""
    with runtime_for(data_dir) as runtime:
        csr_id, csr_pem = runtime.authority.ra.create_external_csr(
            KeyAlgorithm(algorithm), subject, profile, actor=OPERATOR
        )
    out.write_text(csr_pem)
    click.echo(f"csr_id={csr_id}")


@ca.command("ra-import")
@click.argument("csr_id")
@click.option("--cert", "cert_file", type=click.Path(exists=True, path_type=Path), required=True)
@click.option(
    "--chain",
    "chain_file",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="PEM file: issuer up to the root.",
)
@data_dir_option
@reports_errors
def ra_import(csr_id: str, cert_file: Path, chain_file: Path, data_dir: Path | None) -> None:
    """RA mode: import the certificate issued by the external CA."""
    text = chain_file.read_text()
    end = "-----END CERTIFICATE-----"
    chain = [(part + end).strip().encode() for part in text.split(end) if part.strip()]
    with runtime_for(data_dir) as runtime:
        record = runtime.authority.ra.import_external_certificate(
            csr_id, cert_file.read_bytes(), chain, actor=OPERATOR
        )
    _show(record)
