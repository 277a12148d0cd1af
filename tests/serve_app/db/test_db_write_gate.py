"""SQLite writers of one process queue for the write lock in arrival order instead of racing in the busy handler.

Each test gives the engines a busy timeout far shorter than the transactions, so any writer that polled for
the lock in SQLite's busy handler would fail with "database is locked": only the in-process queue lets them
all through.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.db import READ_ONLY, make_engine

HOLD_S = 0.05
BUSY_MS = 20  # far below HOLD_S x writers


@pytest.fixture
async def db(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}"
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE log (n INTEGER, at INTEGER)"))
    finally:
        await engine.dispose()
    return url


async def _write(engine: AsyncEngine, n: int, order: list[int]) -> None:
    async with engine.begin() as conn:
        order.append(n)
        await conn.execute(text("INSERT INTO log (n) VALUES (:n)"), {"n": n})
        await asyncio.sleep(HOLD_S)  # the lock stays held across other work, as a slow event loop would do


async def test_writers_of_two_engines_all_get_the_lock(db: str) -> None:
    engines = [make_engine(db, busy_timeout_ms=BUSY_MS), make_engine(db, busy_timeout_ms=BUSY_MS)]
    order: list[int] = []
    try:
        tasks = []
        for n in range(12):
            tasks.append(asyncio.create_task(_write(engines[n % 2], n, order)))
            await asyncio.sleep(0)  # arrive one after another
        await asyncio.gather(*tasks)
        async with engines[0].connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM log"))).scalar() == 12
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(order) == list(range(12))  # nobody gave up with "database is locked"


async def test_readers_do_not_wait_for_writers(db: str) -> None:
    engine = make_engine(db, busy_timeout_ms=BUSY_MS)
    try:
        async with engine.begin() as writer:
            await writer.execute(text("INSERT INTO log (n) VALUES (1)"))
            async with engine.connect() as reader:
                reader = await reader.execution_options(**READ_ONLY)
                count = await asyncio.wait_for(reader.execute(text("SELECT count(*) FROM log")), 1)
                assert count.scalar() == 0  # the writer has not committed
    finally:
        await engine.dispose()


async def test_a_failed_or_cancelled_writer_lets_the_next_one_in(db: str) -> None:
    engine = make_engine(db, busy_timeout_ms=BUSY_MS)
    order: list[int] = []
    try:
        with pytest.raises(OperationalError):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO nowhere VALUES (1)"))  # rolls back

        holder = asyncio.create_task(_write(engine, 1, order))
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(_write(engine, 2, order))  # queued behind the holder...
        await asyncio.sleep(0.01)
        waiting.cancel()  # ...and given up
        holding_cancelled = asyncio.create_task(_write(engine, 3, order))
        await asyncio.sleep(0.01)
        await holder
        while 3 not in order:  # it holds the lock now
            await asyncio.sleep(0.005)
        holding_cancelled.cancel()  # cancelled while it holds the lock: rolled back
        with pytest.raises(asyncio.CancelledError):
            await waiting
        with pytest.raises(asyncio.CancelledError):
            await holding_cancelled
        await asyncio.wait_for(_write(engine, 4, order), 2)
        async with engine.connect() as conn:
            rows = [n for (n,) in await conn.execute(text("SELECT n FROM log ORDER BY n"))]
    finally:
        await engine.dispose()
    assert order == [1, 3, 4]
    assert rows == [1, 4]


async def test_an_invalidated_connection_lets_the_next_writer_in(db: str) -> None:
    engine = make_engine(db, busy_timeout_ms=BUSY_MS)
    try:
        conn = await engine.connect()
        await conn.begin()
        await conn.execute(text("INSERT INTO log (n) VALUES (1)"))
        await conn.invalidate()  # closes the DBAPI connection: SQLite drops its transaction and lock
        await asyncio.wait_for(_write(engine, 2, []), 2)
        await conn.close()
    finally:
        await engine.dispose()


async def test_other_processes_still_meet_the_busy_timeout(db: str) -> None:
    engine = make_engine(db, busy_timeout_ms=BUSY_MS)
    path = db.removeprefix("sqlite+aiosqlite:///")
    other = sqlite3.connect(path, isolation_level=None)  # another writer, outside this event loop's queue
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"):
            await _write(engine, 1, [])
        other.execute("ROLLBACK")
        await asyncio.wait_for(_write(engine, 2, []), 2)  # the failed BEGIN left the queue open
    finally:
        other.close()
        await engine.dispose()
