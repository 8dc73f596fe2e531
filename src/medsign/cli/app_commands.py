"""`medsign app ...`: register and manage the hospital systems that call medsign."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from medsign.cli.common import data_dir_option, reports_errors
from medsign.cli.context import runtime_for

ACTOR = "cli"


def _scope(all_staff: bool, departments: tuple[str, ...], staff_ids: tuple[str, ...]) -> Any:
    from medsign.apps.registry import SignerScope

    if not departments and not staff_ids:
        return SignerScope.everyone() if all_staff else None
    return SignerScope.from_value({"departments": list(departments), "staff_ids": list(staff_ids)})


def _as_dict(app: Any) -> dict[str, Any]:
    return {
        "id": app.id,
        "code": app.code,
        "name": app.name,
        "description": app.description,
        "organization_id": app.organization_id,
        "state": app.state.value,
        "signer_scope": app.signer_scope.to_value(),
        "rate_limit_per_minute": app.rate_limit_per_minute,
        "webhook_url": app.webhook_url,
        "secret_rotated_at": app.secret_rotated_at.isoformat(),
        "previous_secret_expires_at": (
            app.previous_secret_expires_at.isoformat() if app.previous_secret_expires_at else None
        ),
        "created_at": app.created_at.isoformat(),
        "updated_at": app.updated_at.isoformat(),
    }


def _show(app: Any, as_json: bool) -> None:
    values = _as_dict(app)
    if as_json:
        click.echo(json.dumps(values, ensure_ascii=False, indent=2))
        return
    for key, value in values.items():
        if key == "signer_scope":
            value = json.dumps(value, ensure_ascii=False)
        click.echo(f"{key}: {'' if value is None else value}")


def _secret_notice(app: Any, secret: str) -> None:
    click.echo(f"application_id={app.id}")
    click.echo("secret (shown once, store it in the application's configuration):")
    click.echo(f"  {secret}")


scope_options = [
    click.option("--all-staff", is_flag=True, help="May address every staff member (default)."),
    click.option("--department", "departments", multiple=True, help="Allowed department."),
    click.option("--staff-id", "staff_ids", multiple=True, help="Allowed staff id."),
]


def with_scope_options(func: Any) -> Any:
    for option in reversed(scope_options):
        func = option(func)
    return func


@click.group("app")
def app_group() -> None:
    """Applications (HIS, EMR, LIS, ...) that call medsign with HMAC-signed requests."""


@app_group.command("register")
@click.option("--name", required=True, help="Display name, e.g. 住院医生工作站.")
@click.option("--code", required=True, help="Unique short code, e.g. emr-inpatient.")
@click.option("--description", default="", help="Free text for operators.")
@click.option("--organization", "organization_id", default=None, help="Organization id.")
@with_scope_options
@click.option("--rate-limit", type=int, default=600, show_default=True, help="Requests/minute.")
@click.option("--webhook-url", default=None, help="http(s) URL for result notifications.")
@data_dir_option
@reports_errors
def register(
    name: str,
    code: str,
    description: str,
    organization_id: str | None,
    all_staff: bool,
    departments: tuple[str, ...],
    staff_ids: tuple[str, ...],
    rate_limit: int,
    webhook_url: str | None,
    data_dir: Path | None,
) -> None:
    """Register an application and print its secret (once)."""
    with runtime_for(data_dir) as runtime:
        app, secret = runtime.applications.register(
            name=name,
            code=code,
            description=description,
            organization_id=organization_id,
            signer_scope=_scope(all_staff, departments, staff_ids),
            rate_limit_per_minute=rate_limit,
            webhook_url=webhook_url,
            actor=ACTOR,
        )
    _secret_notice(app, secret)


@app_group.command("list")
@click.option("--state", type=click.Choice(["active", "frozen", "deregistered"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@data_dir_option
@reports_errors
def list_apps(state: str | None, as_json: bool, data_dir: Path | None) -> None:
    """List applications."""
    with runtime_for(data_dir) as runtime:
        apps = runtime.applications.list_applications(state=state)
    if as_json:
        click.echo(json.dumps([_as_dict(a) for a in apps], ensure_ascii=False, indent=2))
        return
    for app in apps:
        click.echo(f"{app.id}  {app.state.value:<12} {app.code:<24} {app.name}")


@app_group.command("show")
@click.argument("app")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@data_dir_option
@reports_errors
def show(app: str, as_json: bool, data_dir: Path | None) -> None:
    """Show one application (by id or code)."""
    with runtime_for(data_dir) as runtime:
        found = runtime.applications.find(app)
    _show(found, as_json)


@app_group.command("edit")
@click.argument("app")
@click.option("--name", default=None)
@click.option("--description", default=None)
@with_scope_options
@click.option("--rate-limit", type=int, default=None, help="Requests per minute.")
@click.option("--webhook-url", default=None, help="New webhook URL; '' removes it.")
@data_dir_option
@reports_errors
def edit(
    app: str,
    name: str | None,
    description: str | None,
    all_staff: bool,
    departments: tuple[str, ...],
    staff_ids: tuple[str, ...],
    rate_limit: int | None,
    webhook_url: str | None,
    data_dir: Path | None,
) -> None:
    """Edit an application; only the given options change."""
    kwargs: dict[str, Any] = {}
    if webhook_url is not None:
        kwargs["webhook_url"] = webhook_url or None
    with runtime_for(data_dir) as runtime:
        found = runtime.applications.find(app)
        updated = runtime.applications.edit(
            found.id,
            name=name,
            description=description,
            signer_scope=_scope(all_staff, departments, staff_ids),
            rate_limit_per_minute=rate_limit,
            actor=ACTOR,
            **kwargs,
        )
    _show(updated, False)


def _state_command(name: str, method: str, help_text: str) -> None:
    @app_group.command(name, help=help_text)
    @click.argument("app")
    @data_dir_option
    @reports_errors
    def command(app: str, data_dir: Path | None) -> None:
        with runtime_for(data_dir) as runtime:
            found = runtime.applications.find(app)
            changed = getattr(runtime.applications, method)(found.id, actor=ACTOR)
        click.echo(f"{changed.id} {changed.state.value}")


_state_command("freeze", "freeze", "Freeze: every call from the application is refused.")
_state_command("unfreeze", "unfreeze", "Unfreeze a frozen application.")


@app_group.command("deregister")
@click.argument("app")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
@reports_errors
def deregister(app: str, yes: bool, data_dir: Path | None) -> None:
    """Deregister for good (its record and history stay)."""
    with runtime_for(data_dir) as runtime:
        found = runtime.applications.find(app)
        if not yes:
            click.confirm(f"deregister {found.code} ({found.id}) for good?", abort=True)
        changed = runtime.applications.deregister(found.id, actor=ACTOR)
    click.echo(f"{changed.id} {changed.state.value}")


@app_group.command("rotate-secret")
@click.argument("app")
@click.option(
    "--grace-hours",
    type=click.FloatRange(0, 24 * 30),
    default=None,
    help="How long the previous secret keeps working (default: app_secret_grace_hours, 24).",
)
@data_dir_option
@reports_errors
def rotate_secret(app: str, grace_hours: float | None, data_dir: Path | None) -> None:
    """Issue a new secret (printed once); the previous one works for a grace period."""
    grace = dt.timedelta(hours=grace_hours) if grace_hours is not None else None
    with runtime_for(data_dir) as runtime:
        found = runtime.applications.find(app)
        rotated, secret = runtime.applications.rotate_secret(found.id, grace=grace, actor=ACTOR)
    _secret_notice(rotated, secret)
    expires = rotated.previous_secret_expires_at
    click.echo(
        f"previous secret valid until {expires.isoformat()}"
        if expires
        else "previous secret no longer valid"
    )


@app_group.command("deliveries")
@click.argument("app")
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@data_dir_option
@reports_errors
def deliveries(app: str, state: str | None, limit: int, data_dir: Path | None) -> None:
    """Webhook deliveries of an application, newest first."""
    with runtime_for(data_dir) as runtime:
        found = runtime.applications.find(app)
        rows = runtime.webhooks.list_deliveries(application_id=found.id, state=state, limit=limit)
    for d in rows:
        outcome = d.last_error or (str(d.last_status) if d.last_status else "")
        click.echo(
            f"{d.id}  {d.state.value:<9} {d.event_type:<24} {d.subject_id}"
            f"  attempts={d.attempts} {outcome}"
        )


@app_group.command("redeliver")
@click.argument("delivery_id")
@data_dir_option
@reports_errors
def redeliver(delivery_id: str, data_dir: Path | None) -> None:
    """Queue a webhook delivery again (the running server sends it)."""
    with runtime_for(data_dir) as runtime:
        delivery = runtime.webhooks.redeliver(delivery_id, actor=ACTOR)
    click.echo(f"{delivery.id} {delivery.state.value}")
