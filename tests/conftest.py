"""Shared fixtures.

The database fixture gives each test a fresh, migrated database: a SQLite file by default,
or a private schema on PostgreSQL when ``MEDSIGN_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from medsign.clock import FixedClock
from medsign.db.session import Database, normalise_url

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPORA = REPO_ROOT.parent / "shared" / "corpora"
PG_URL = os.environ.get("MEDSIGN_TEST_DATABASE_URL")


def pytest_report_header(config: pytest.Config) -> str:
    return f"medsign database: {'postgresql (' + PG_URL + ')' if PG_URL else 'sqlite'}"


@pytest.fixture
def corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.fail(f"external corpora not found at {CORPORA}")
    return CORPORA


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC))


def make_database_url(tmp_path: Path) -> Iterator[str]:
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'medsign.db'}"
        return
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote('-csearch_path=' + schema)}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield from make_database_url(tmp_path)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.upgrade()
    try:
        yield db
    finally:
        db.dispose()


def openssl(*args: str, input: bytes | None = None, check: bool = True) -> str:
    """Run the real OpenSSL CLI; returns stdout+stderr text."""
    import subprocess

    proc = subprocess.run(["openssl", *args], input=input, capture_output=True)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{out}")
    return out


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """An initialised data directory (CA hierarchy, demo hospital) and its admin token.

    Module-scoped: building the hierarchy generates RSA-3072 keys, so tests in a module share
    one and must not depend on each other's certificates.
    """
    from medsign.config import load_settings
    from medsign.runtime import initialise

    data_dir = tmp_path_factory.mktemp("medsign-data")
    urls = make_database_url(data_dir)
    url = next(urls)
    settings = load_settings(data_dir, database_url=url, log_json=True)
    runtime, token = initialise(
        settings, organization_name="示例人民医院", organization_code="demo", demo=True
    )
    assert token is not None
    try:
        yield runtime, token
    finally:
        runtime.close()
        for _ in urls:
            pass
