"""Options and error reporting shared by every command."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from medsign.config import Settings, load_settings
from medsign.errors import MedsignError
from medsign.logs import configure_logging

F = TypeVar("F", bound=Callable[..., Any])

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default: $MEDSIGN_DATA_DIR or ./medsign-data).",
)


def reports_errors(func: F) -> F:
    """Turn medsign errors into a one-line message and exit status 1 (2 for bad input)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MedsignError as exc:
            click.echo(f"error: {exc.public_message()} [{exc.code}]", err=True)
            sys.exit(2 if exc.status in (400, 404, 409, 422) else 1)

    return wrapper  # type: ignore[return-value]


def settings_for(data_dir: Path | None, **overrides: Any) -> Settings:
    settings = load_settings(data_dir, **{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_json)
    return settings
