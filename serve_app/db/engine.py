"""Async engines and sessions for SQLite (aiosqlite) and PostgreSQL (asyncpg).

SQLite gets WAL mode (readers never block the writer), a busy timeout (a writer waits for the lock instead
of failing at once) and foreign keys. Its transactions start with ``BEGIN IMMEDIATE`` so a transaction that
reads and then writes holds the write lock from its first statement: a deferred transaction that upgrades
from reading to writing fails at once with "database is locked" when another connection wrote in between,
and the busy timeout does not help there. Pure readers can ask for a deferred transaction with
:data:`READ_ONLY` execution options.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

__all__ = ["READ_ONLY", "is_sqlite", "make_engine", "make_session_factory", "to_async_url"]

#: Execution options for a session or connection that only reads (SQLite then begins a deferred transaction).
READ_ONLY: dict[str, Any] = {"limner_read_only": True}

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


def to_async_url(url: str | URL) -> URL:
    """Return ``url`` with its async driver: ``sqlite://`` → aiosqlite, ``postgresql://`` → asyncpg.

    Args:
        url: A database URL, with or without a driver.

    Returns:
        The parsed URL naming ``sqlite+aiosqlite`` or ``postgresql+asyncpg``.

    Raises:
        ValueError: The URL is for a database limner does not support.
    """
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    if driver not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(
            f"database url driver {parsed.drivername!r} is not supported; "
            "use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"
        )
    return parsed.set(drivername=driver)


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether ``engine`` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str | URL, *, busy_timeout_ms: int = 5000, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    """Create an async engine for ``url`` with limner's connection settings.

    Args:
        url: ``sqlite+aiosqlite:///path/to/file.db`` or ``postgresql+asyncpg://user@host:port/db``; a URL
            without a driver gets the async one.
        busy_timeout_ms: SQLite only: how long a writer waits for the database lock.
        echo: Log every statement.
        **kwargs: Passed to :func:`sqlalchemy.ext.asyncio.create_async_engine` (pool sizes, for example).

    Returns:
        The engine. Nothing connects until it is first used.
    """
    async_url = to_async_url(url)
    engine = create_async_engine(async_url, echo=echo, **kwargs)
    if async_url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver so the "begin" hook below decides how to begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("limner_read_only"):
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory bound to ``engine``.

    Sessions do not expire objects on commit, so rows read in a transaction stay readable after it.

    Args:
        engine: From :func:`make_engine`.

    Returns:
        An :class:`~sqlalchemy.ext.asyncio.async_sessionmaker`.
    """
    return async_sessionmaker(engine, expire_on_commit=False)
