"""Persistence: SQLAlchemy 2 tables, sessions and Alembic migrations."""

from medsign.db.session import Database

__all__ = ["Database"]
