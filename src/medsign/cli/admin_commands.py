from __future__ import annotations

from pathlib import Path

import click

from medsign.cli.common import data_dir_option, reports_errors
from medsign.cli.context import runtime_for


@click.group()
def admin() -> None:
    """Operator credentials."""


@admin.command("token")
@click.option("--name", default="operator", show_default=True)
@data_dir_option
@reports_errors
def token(name: str, data_dir: Path | None) -> None:
    """Create a new admin API token (printed once)."""
    from medsign.identity.admin_tokens import create_admin_token

    with runtime_for(data_dir) as runtime:
        token_id, value = create_admin_token(runtime.database, runtime.clock, name=name)
    click.echo(f"token_id={token_id}")
    click.echo(value)


@admin.command("revoke-token")
@click.argument("token_id")
@data_dir_option
@reports_errors
def revoke_token(token_id: str, data_dir: Path | None) -> None:
    """Revoke an admin API token."""
    from medsign.identity.admin_tokens import revoke_admin_token

    with runtime_for(data_dir) as runtime:
        revoke_admin_token(runtime.database, runtime.clock, token_id)
    click.echo("revoked")
