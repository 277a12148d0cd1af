"""Reaching the real PostgreSQL and Redis that tests run against (shared by the test folders).

Real backends come from ``LIMNER_TEST_DATABASE_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) and ``LIMNER_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/15``). A test that needs one that is not reachable is skipped with the reason,
except under ``CI=true``, where it fails: CI must not go green by skipping.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from sqlalchemy.engine import make_url

from serve_app.db import migrate

T = TypeVar("T")

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def _in_thread(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop in another thread.

    Sync fixtures use this so they never touch the event loop that pytest-asyncio runs tests on.
    """

    async def _main() -> T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _main()).result()


def _unavailable(service: str, variable: str, url: str, exc: BaseException) -> None:
    reason = f"{service} not reachable at {url} ({type(exc).__name__}: {exc}); set {variable} to use another"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires {service}: {reason}", pytrace=False)
    pytest.skip(reason)


# -- PostgreSQL -------------------------------------------------------------------------------------------


def _pg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL URL under test, after checking the server answers."""
    url = os.environ.get("LIMNER_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    import asyncpg

    async def _check() -> None:
        conn = await asyncpg.connect(_pg_dsn(url), timeout=3)
        await conn.close()

    try:
        _in_thread(_check)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unavailable("PostgreSQL", "LIMNER_TEST_DATABASE_URL", url, exc)
    return url


def _create_database(server_url: str) -> str:
    import asyncpg

    name = f"limner_test_{uuid.uuid4().hex[:16]}"

    async def _create() -> None:
        conn = await asyncpg.connect(_pg_dsn(server_url, "postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    _in_thread(_create)
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(server_url: str, url: str) -> None:
    import asyncpg

    name = make_url(url).database

    async def _drop() -> None:
        conn = await asyncpg.connect(_pg_dsn(server_url, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _in_thread(_drop)


@pytest.fixture(scope="module")
def postgres_db_url(postgres_server_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own for this test module."""
    url = _create_database(postgres_server_url)
    try:
        _in_thread(lambda: migrate(url))
        yield url
    finally:
        _drop_database(postgres_server_url, url)


@pytest.fixture
def empty_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A new, empty (unmigrated) PostgreSQL database for one test."""
    url = _create_database(postgres_server_url)
    try:
        yield url
    finally:
        _drop_database(postgres_server_url, url)
