"""Persistence: SQLAlchemy 2 tables, sessions and Alembic migrations."""

from medsign.db.session import Database, rowcount

__all__ = ["Database", "rowcount"]
