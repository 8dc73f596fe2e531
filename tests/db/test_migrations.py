from __future__ import annotations

from sqlalchemy import inspect

from medsign.db.base import Base
from medsign.db.session import Database


def test_migrations_create_every_table(database: Database) -> None:
    names = set(inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= names
    assert "alembic_version" in names


def test_migrations_match_the_models(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
