from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medsign.runtime import Runtime, open_runtime


@contextmanager
def runtime_for(data_dir: Path | None) -> Iterator[Runtime]:
    from medsign.cli.common import settings_for

    runtime = open_runtime(settings_for(data_dir))
    try:
        yield runtime
    finally:
        runtime.close()
