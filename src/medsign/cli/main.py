"""The `medsign` operator CLI: a thin adapter over the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import click

from medsign.cli.admin_commands import admin
from medsign.cli.app_commands import app_group
from medsign.cli.ca_commands import ca
from medsign.cli.common import data_dir_option, reports_errors, settings_for
from medsign.cli.keys_commands import keys
from medsign.cli.log_commands import log_group
from medsign.cli.seal_commands import seal_group
from medsign.cli.staff_commands import sms, staff
from medsign.cli.verify_command import verify
from medsign.config import Settings


@click.group()
@click.version_option(package_name="medsign")
def main() -> None:
    """medsign: electronic signatures and certificates for hospitals."""


@main.command()
@data_dir_option
@click.option("--organization", default=None, help="Hospital name (default: a demo hospital).")
@click.option("--organization-code", default=None, help="Short code of the hospital.")
@click.option("--demo/--no-demo", default=True, show_default=True, help="Create a demo hospital.")
@click.option("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in data dir).")
@click.option("--public-base-url", default=None, help="URL written into certificates.")
@reports_errors
def init(
    data_dir: Path | None,
    organization: str | None,
    organization_code: str | None,
    demo: bool,
    database_url: str | None,
    public_base_url: str | None,
) -> None:
    """Initialise a data directory: database, key store, CA hierarchy, admin token."""
    from medsign.identity.organizations import DEMO_HOSPITAL_CODE, DEMO_HOSPITAL_NAME
    from medsign.runtime import initialise

    settings = settings_for(data_dir, database_url=database_url, public_base_url=public_base_url)
    _write_config_file(settings, database_url=database_url, public_base_url=public_base_url)
    runtime, token = initialise(
        settings,
        organization_name=organization or DEMO_HOSPITAL_NAME,
        organization_code=organization_code or (DEMO_HOSPITAL_CODE if demo else "hospital"),
        demo=demo and organization is None,
    )
    try:
        cas = runtime.authority.list_cas()
        click.echo(f"data directory: {settings.data_dir.resolve()}")
        click.echo(f"database: {runtime.database.dialect}; key store: {runtime.keystore.kind}")
        for ca in cas:
            click.echo(f"  CA {ca.id}  {ca.level:<8} {ca.family:<5} {ca.name}")
        if token:
            click.echo("admin token (shown once, store it safely):")
            click.echo(f"  {token}")
        else:
            click.echo("already initialised; no new admin token (use `medsign admin token`).")
    finally:
        runtime.close()


def _write_config_file(settings: Settings, **values: str | None) -> None:
    path = settings.config_file
    if path.exists():
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# medsign settings; MEDSIGN_* environment variables override these.\n"]
    for key, value in values.items():
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}\n")
    path.write_text("".join(lines), encoding="utf-8")


@main.command()
@data_dir_option
@click.option("--host", default=None, help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@reports_errors
def serve(data_dir: Path | None, host: str | None, port: int | None) -> None:
    """Run the HTTP server."""
    import uvicorn

    from medsign.api.app import create_app
    from medsign.runtime import open_runtime

    settings = settings_for(data_dir, host=host, port=port)
    runtime = open_runtime(settings)
    click.echo(f"medsign serving on http://{settings.host}:{settings.port}  (docs at /docs)")
    try:
        uvicorn.run(
            create_app(runtime),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
        )
    finally:
        runtime.close()


main.add_command(ca)
main.add_command(keys)
main.add_command(admin)
main.add_command(verify)
main.add_command(app_group)
main.add_command(staff)
main.add_command(sms)
main.add_command(log_group)
main.add_command(seal_group)
