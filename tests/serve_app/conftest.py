"""Fixtures for the service-layer contract suites: databases, Redis, clocks.

Real backends come from ``LIMNER_TEST_DATABASE_URL`` (PostgreSQL, default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) and ``LIMNER_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/15``). A test that needs one that is not reachable is skipped with the reason,
except under ``CI=true``, where it fails: CI must not go green by skipping.

Isolation: each PostgreSQL test module gets its own freshly created and migrated database (dropped at the
end), and each test starts from empty tables; each SQLite test gets its own file; each Redis test gets its
own key prefix, whose keys are deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.db import make_engine, migrate
from tests.services import (  # noqa: F401  (fixtures, re-exported for this folder)
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    _create_database,
    _drop_database,
    _in_thread,
    _pg_dsn,
    _unavailable,
    empty_postgres_url,
    postgres_db_url,
    postgres_server_url,
)

T = TypeVar("T")

# Children first, so deleting never trips a foreign key.
_TABLES = (
    "api_keys",
    "job_events",
    "webhook_deliveries",
    "overlays",
    "jobs",
    "images",
    "subjects",
    "theme_versions",
    "themes",
)


class FakeClock:
    """A controllable clock for the job store: ``clock()`` is now, ``clock.advance(s)`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- SQLite -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "limner.db"
    _in_thread(lambda: migrate(f"sqlite+aiosqlite:///{path}"))
    # Fold the WAL back into the main file so copying the one file copies the whole database.
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


@pytest.fixture
def sqlite_db_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database file of its own for this test."""
    path = tmp_path / "limner.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


# -- either database --------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database URL: SQLite, then PostgreSQL (use ``engine`` for empty tables)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_db_url"))
    return str(request.getfixturevalue("postgres_db_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``db_url`` whose tables start empty."""
    eng = make_engine(db_url)
    try:
        if eng.dialect.name == "postgresql":
            # The module shares one PostgreSQL database; each test starts from empty tables. (DELETE is
            # much faster than TRUNCATE on tables this small.)
            async with eng.begin() as conn:
                for table in _TABLES:
                    await conn.execute(text(f"DELETE FROM {table}"))
        yield eng
    finally:
        await eng.dispose()


# -- Redis ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis URL under test, after checking the server answers."""
    url = os.environ.get("LIMNER_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    import redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        _unavailable("Redis", "LIMNER_TEST_REDIS_URL", url, exc)
    finally:
        client.close()
    return url


@pytest.fixture
def redis_prefix(redis_server_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"limner-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_server_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
