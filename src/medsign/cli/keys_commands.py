"""`medsign keys ...`: master-secret rotation and key-use records."""

from __future__ import annotations

from pathlib import Path

import click

from medsign.cli.common import data_dir_option, reports_errors
from medsign.cli.context import runtime_for
from medsign.errors import ConfigurationError


@click.group()
def keys() -> None:
    """Key store operations."""


@keys.command("rotate-master")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=50, show_default=True)
@data_dir_option
@reports_errors
def rotate_master(batch_size: int, data_dir: Path | None) -> None:
    """Create a new master secret; re-wrap every key and re-seal every secret with it, while
    serving goes on."""
    from medsign.keys import SoftwareKeyStore

    with runtime_for(data_dir) as runtime:
        store = runtime.keystore
        if not isinstance(store, SoftwareKeyStore):
            runtime.sealer.keyring_add_version()
            resealed = runtime.sealer.reseal_all(batch_size=batch_size)
            click.echo(f"re-sealed {resealed} value(s); token keys are not affected")
            return
        with click.progressbar(length=1, label="re-wrapping keys") as bar:

            def progress(p: object) -> None:
                done = getattr(p, "done", None)
                total = getattr(p, "total", None)
                if isinstance(done, int) and isinstance(total, int) and total:
                    bar.length = total
                    bar.update(done - bar.pos)

            report = store.rotate_master(batch_size=batch_size, progress=progress)
        resealed = runtime.sealer.reseal_all(batch_size=batch_size)
    click.echo(
        f"master version {report.version}; re-wrapped {report.rewrapped} key(s),"
        f" re-sealed {resealed} value(s)"
    )


@keys.command("retire-master")
@data_dir_option
@reports_errors
def retire_master(data_dir: Path | None) -> None:
    """Delete master-secret versions that no key uses any more."""
    from medsign.keys import SoftwareKeyStore

    with runtime_for(data_dir) as runtime:
        stale = runtime.sealer.versions_in_use() - {runtime.sealer.current_version}
        if stale:
            raise ConfigurationError(
                f"sealed values still use master version(s) {sorted(stale)};"
                " run `medsign keys rotate-master` to completion first"
            )
        store = runtime.keystore
        if isinstance(store, SoftwareKeyStore):
            retired = store.retire_old_versions()
        else:
            retired = runtime.sealer.retire_old_versions()
    click.echo(f"retired versions: {', '.join(map(str, retired)) or 'none'}")


@keys.command("uses")
@click.option("--key-id", default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option(
    "--serial",
    type=click.IntRange(0),
    default=None,
    help="Show only the reservation of --key-id covering this number (a TSA token's serial).",
)
@data_dir_option
@reports_errors
def uses(key_id: str | None, limit: int, serial: int | None, data_dir: Path | None) -> None:
    """Show recent key uses: signatures (digest) and reservations (how many signatures,
    which serials, until when; the TSA reserves its key for a block of tokens at a time)."""
    from medsign.keys import key_uses, reservation_covering

    if serial is not None and key_id is None:
        raise click.UsageError("--serial needs --key-id")
    with runtime_for(data_dir) as runtime:
        if serial is not None and key_id is not None:
            found = [reservation_covering(runtime.database, key_id, serial)]
        else:
            found = key_uses(runtime.database, key_id, limit=limit)
        for use in found:
            click.echo(
                f"{use.at.isoformat()} {use.key_id} {use.scheme} {use.purpose} by {use.actor}"
                f" {use.describe()}"
            )
