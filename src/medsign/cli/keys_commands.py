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


def _software_store(runtime: object) -> object:
    from medsign.keys import SoftwareKeyStore

    store = getattr(runtime, "keystore", None)
    if not isinstance(store, SoftwareKeyStore):
        raise ConfigurationError("master-secret rotation applies to the software key store only")
    return store


@keys.command("rotate-master")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=50, show_default=True)
@data_dir_option
@reports_errors
def rotate_master(batch_size: int, data_dir: Path | None) -> None:
    """Create a new master secret and re-wrap every key with it, while serving goes on."""
    from medsign.keys import SoftwareKeyStore

    with runtime_for(data_dir) as runtime:
        store = _software_store(runtime)
        assert isinstance(store, SoftwareKeyStore)
        with click.progressbar(length=1, label="re-wrapping keys") as bar:

            def progress(p: object) -> None:
                done = getattr(p, "done", None)
                total = getattr(p, "total", None)
                if isinstance(done, int) and isinstance(total, int) and total:
                    bar.length = total
                    bar.update(done - bar.pos)

            report = store.rotate_master(batch_size=batch_size, progress=progress)
    click.echo(f"master version {report.version}; re-wrapped {report.rewrapped} key(s)")


@keys.command("retire-master")
@data_dir_option
@reports_errors
def retire_master(data_dir: Path | None) -> None:
    """Delete master-secret versions that no key uses any more."""
    from medsign.keys import SoftwareKeyStore

    with runtime_for(data_dir) as runtime:
        store = _software_store(runtime)
        assert isinstance(store, SoftwareKeyStore)
        retired = store.retire_old_versions()
    click.echo(f"retired versions: {', '.join(map(str, retired)) or 'none'}")


@keys.command("uses")
@click.option("--key-id", default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@data_dir_option
@reports_errors
def uses(key_id: str | None, limit: int, data_dir: Path | None) -> None:
    """Show recent key uses (who, which key, which digest, when)."""
    from medsign.keys import key_uses

    with runtime_for(data_dir) as runtime:
        for use in key_uses(runtime.database, key_id, limit=limit):
            click.echo(
                f"{use.at.isoformat()} {use.key_id} {use.scheme} {use.purpose} by {use.actor}"
                f" digest={use.digest_hex}"
            )
