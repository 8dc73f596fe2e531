"""`medsign staff ...` (directory, PIN unlock) and `medsign sms outbox`.

Operators act for an organization chosen by ``--organization`` (its code); with a single
organization, that one. Output shows masked numbers only; the development outbox prints
message texts because reading codes without a phone is its whole purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from medsign.cli.common import data_dir_option, reports_errors
from medsign.cli.context import runtime_for
from medsign.errors import InputError, NotFoundError
from medsign.runtime import Runtime

OPERATOR = "cli"

organization_option = click.option(
    "--organization",
    "organization_code",
    default=None,
    help="Organization code (default: the only organization).",
)


def _organization_id(runtime: Runtime, code: str | None) -> str:
    from medsign.identity.organizations import list_organizations

    organizations = list_organizations(runtime.database)
    if code is not None:
        for organization in organizations:
            if organization.code == code:
                return organization.id
        raise NotFoundError(f"no organization with code {code!r}")
    if len(organizations) != 1:
        raise InputError("several organizations exist: name one with --organization")
    return organizations[0].id


def _line(staff: object) -> str:
    from medsign.identity.staff import Staff

    assert isinstance(staff, Staff)
    return (
        f"{staff.employee_no}\t{staff.id}\t{staff.state}\t{staff.name}\t{staff.department}"
        f"\tphone={staff.phone_masked or '-'}\tid={staff.national_id_masked or '-'}"
        f"\tpin={'set' if staff.pin_set else 'unset'}\tcert={staff.certificate_id or '-'}"
    )


@click.group()
def staff() -> None:
    """Staff directory (synchronised from HIS) and signing PINs."""


@staff.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["auto", "csv", "json"]),
    default="auto",
    show_default=True,
)
@organization_option
@data_dir_option
@reports_errors
def import_staff(
    source: Path, file_format: str, organization_code: str | None, data_dir: Path | None
) -> None:
    """Import staff from a CSV (header row) or JSON (list) file; reports refused rows."""
    data = source.read_bytes()
    if file_format == "auto":
        file_format = "json" if source.suffix.lower() == ".json" else "csv"
    with runtime_for(data_dir) as runtime:
        organization_id = _organization_id(runtime, organization_code)
        if file_format == "json":
            try:
                records = json.loads(data)
            except ValueError as exc:
                raise InputError("the file is not JSON") from exc
            if not isinstance(records, list):
                raise InputError("the JSON file must hold a list of staff records")
            report = runtime.staff.import_records(organization_id, records, actor=OPERATOR)
        else:
            report = runtime.staff.import_csv(organization_id, data, actor=OPERATOR)
    click.echo(
        f"created={report.created} updated={report.updated} unchanged={report.unchanged}"
        f" refused={len(report.errors)}"
    )
    for error in report.errors:
        click.echo(f"  row {error.row}: {error.field or '-'} [{error.code}] {error.message}")


@staff.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@organization_option
@data_dir_option
@reports_errors
def list_staff(limit: int, organization_code: str | None, data_dir: Path | None) -> None:
    """List staff members (numbers masked)."""
    with runtime_for(data_dir) as runtime:
        for member in runtime.staff.list(_organization_id(runtime, organization_code), limit=limit):
            click.echo(_line(member))


@staff.command("show")
@click.argument("employee_no")
@organization_option
@data_dir_option
@reports_errors
def show_staff(employee_no: str, organization_code: str | None, data_dir: Path | None) -> None:
    """Show one staff member."""
    with runtime_for(data_dir) as runtime:
        click.echo(
            _line(runtime.staff.get(_organization_id(runtime, organization_code), employee_no))
        )


@staff.command("set-state")
@click.argument("employee_no")
@click.argument("action", type=click.Choice(["freeze", "unfreeze", "deregister"]))
@organization_option
@data_dir_option
@reports_errors
def set_state(
    employee_no: str, action: str, organization_code: str | None, data_dir: Path | None
) -> None:
    """Freeze, unfreeze or deregister (final; revokes the signing certificate)."""
    with runtime_for(data_dir) as runtime:
        organization_id = _organization_id(runtime, organization_code)
        operation = {
            "freeze": runtime.staff.freeze,
            "unfreeze": runtime.staff.unfreeze,
            "deregister": runtime.staff.deregister,
        }[action]
        click.echo(_line(operation(organization_id, employee_no, actor=OPERATOR)))


@staff.command("unlock-pin")
@click.argument("staff_id")
@data_dir_option
@reports_errors
def unlock_pin(staff_id: str, data_dir: Path | None) -> None:
    """Clear a PIN lock-out after too many wrong tries (the PIN itself stays)."""
    with runtime_for(data_dir) as runtime:
        runtime.pins.unlock_pin(staff_id, actor=OPERATOR)
    click.echo("unlocked")


@click.group()
def sms() -> None:
    """SMS messages handed to the provider."""


@sms.command("outbox")
@click.option("--phone-last4", default=None, help="Only messages to numbers ending in these.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@data_dir_option
@reports_errors
def outbox(phone_last4: str | None, limit: int, data_dir: Path | None) -> None:
    """Newest messages first; texts only exist for the development provider."""
    from medsign.identity.providers import list_outbox

    with runtime_for(data_dir) as runtime:
        rows = list_outbox(runtime.database, phone_last4=phone_last4, limit=limit)
    for row in rows:
        click.echo(
            f"{row.created_at.isoformat()}  {row.phone_masked}  {row.provider}  {row.state}"
            f"  {row.body if row.body is not None else '(text not kept)'}"
        )
