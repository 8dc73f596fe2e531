"""Serial numbers stay unique across threads and across allocators (as separate processes
would have), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from medsign.db.session import Database
from medsign.tsa import SerialAllocator, parse_token


def test_allocators_never_collide(database: Database) -> None:
    # Five "processes" with small blocks, four threads each.
    allocators = [SerialAllocator(database, block=7) for _ in range(5)]
    seen: list[int] = []
    lock = threading.Lock()

    def work(allocator: SerialAllocator) -> None:
        values = [allocator.next() for _ in range(60)]
        with lock:
            seen.extend(values)

    with ThreadPoolExecutor(max_workers=20) as pool:
        for future in [pool.submit(work, a) for a in allocators for _ in range(4)]:
            future.result()
    assert len(seen) == 5 * 4 * 60
    assert len(set(seen)) == len(seen)
    assert min(seen) >= 1


def test_separate_databases_handles(database_url: str) -> None:
    """Two Database objects (two engines, as two processes have) on one schema."""
    first, second = Database(database_url), Database(database_url)
    first.upgrade()
    try:
        a = SerialAllocator(first, block=3)
        b = SerialAllocator(second, block=3)
        values = [a.next(), b.next(), a.next(), a.next(), a.next(), b.next()]
        assert len(set(values)) == len(values)
    finally:
        first.dispose()
        second.dispose()


def test_concurrent_tokens_have_unique_serials(runtime: Any) -> None:
    imprint = hashlib.sha256(b"x").digest()

    def stamp(_: int) -> int:
        return parse_token(runtime.tsa.stamp(imprint, "sha256")).serial

    with ThreadPoolExecutor(max_workers=8) as pool:
        serials = list(pool.map(stamp, range(200)))
    assert len(set(serials)) == 200
