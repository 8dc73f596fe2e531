"""SQLite writers queue in the process instead of polling SQLite's lock: the turn is taken at
a transaction's first write and given back when its connection returns to the pool, whether
it committed or rolled back; readers never take it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from medsign.db.session import Database


@pytest.fixture
def sqlite(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'turns.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return db


def test_the_turn_is_taken_by_a_write_and_given_back_at_commit(sqlite: Database) -> None:
    turns = sqlite.writer_turns
    assert turns is not None
    with sqlite.session() as session:
        session.execute(text("SELECT count(*) FROM t")).scalar_one()
        assert not turns.taken  # reading takes no turn
        session.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert turns.taken
    assert not turns.taken


def test_a_rolled_back_transaction_gives_the_turn_back(sqlite: Database) -> None:
    turns = sqlite.writer_turns
    assert turns is not None
    with pytest.raises(RuntimeError), sqlite.session() as session:
        session.execute(text("INSERT INTO t (v) VALUES ('b')"))
        raise RuntimeError("business rule failed")
    assert not turns.taken
    with sqlite.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_concurrent_writers_all_get_their_turn(sqlite: Database) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                with sqlite.session() as session:
                    session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{n}-{i}"})
                    session.execute(text("SELECT count(*) FROM t")).scalar_one()
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sqlite.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 200
    assert sqlite.writer_turns is not None and not sqlite.writer_turns.taken


def test_postgresql_needs_no_turns(database: Database) -> None:
    if database.dialect == "sqlite":
        pytest.skip("PostgreSQL's row locks queue writers themselves")
    assert database.writer_turns is None
