from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from medsign.errors import ConfigurationError


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # FULL: a commit survives a power cut, not only a process crash (NORMAL may lose the last
    # transactions, and with them evidence of signatures already handed out). PostgreSQL's
    # default synchronous_commit gives the same promise.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# Longer than SQLite's own busy timeout would never help: past it SQLite gives up anyway.
_TURN_SECONDS = 10.0


class _WriterTurns:
    """SQLite lets one transaction write at a time; the others poll for the lock, sleeping
    up to 100 ms between tries, which under load turns into a long latency tail. Within the
    process, a transaction instead waits for its turn here, from its first write until its
    connection returns to the pool, and is woken the moment the writer before it is done. (Other
    processes, e.g. the CLI, still meet SQLite's own busy handling.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def taken(self) -> bool:
        return self._lock.locked()

    def before_execute(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if conn.info.get("medsign_writer") or not statement.lstrip().upper().startswith(_WRITES):
            return
        if self._lock.acquire(timeout=_TURN_SECONDS):
            conn.info["medsign_writer"] = True
        # else: SQLite's own busy timeout decides, as without this queue

    def checkin(self, _dbapi_connection: Any, record: Any) -> None:
        # The connection is back in the pool, so its transaction has committed or rolled
        # back: SQLite's lock is free. (Connection "commit" events fire before the commit.)
        if record.info.pop("medsign_writer", False):
            self._lock.release()


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched: how a guarded statement tells that it won."""
    return int(getattr(result, "rowcount", 0) or 0)


def normalise_url(url: str) -> str:
    # Operators write postgresql://; we ship psycopg 3, not psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An engine plus a session factory. One per process."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        kwargs: dict[str, Any] = {"future": True}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (SQLAlchemyError, ImportError) as exc:
            raise ConfigurationError(f"cannot open database: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self.writer_turns: _WriterTurns | None = _WriterTurns()
            event.listen(self.engine, "before_cursor_execute", self.writer_turns.before_execute)
            event.listen(self.engine.pool, "checkin", self.writer_turns.checkin)
        else:
            self.writer_turns = None
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception."""
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        from alembic import command

        command.upgrade(alembic_config(self.url), "head")

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    here = Path(__file__).parent / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(here))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
