"""Async engines and sessions for SQLite (aiosqlite) and PostgreSQL (asyncpg).

SQLite gets WAL mode (readers never block the writer), a busy timeout (a writer waits for the lock instead
of failing at once) and foreign keys. Its transactions start with ``BEGIN IMMEDIATE`` so a transaction that
reads and then writes holds the write lock from its first statement: a deferred transaction that upgrades
from reading to writing fails at once with "database is locked" when another connection wrote in between,
and the busy timeout does not help there. Pure readers can ask for a deferred transaction with
:data:`READ_ONLY` execution options.

The writers of one process also queue for the write lock in arrival order (:class:`_WriteGate`) instead of
polling for it in SQLite's busy handler, which is unfair: it sleeps between attempts, up to 100 ms at a
time, so a writer that has waited long tries least often and can lose to every later one until its busy
timeout runs out, although each transaction is short. The busy timeout still covers writers in other
processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import in_greenlet

__all__ = ["READ_ONLY", "is_sqlite", "make_engine", "make_session_factory", "to_async_url"]

#: Execution options for a session or connection that only reads (SQLite then begins a deferred transaction).
READ_ONLY: dict[str, Any] = {"limner_read_only": True}

#: How long a writer waits for the writers ahead of it in this process before it tries SQLite's lock anyway
#: (then the busy timeout applies). Only a write transaction left open by a bug takes this long.
GATE_WAIT_S = 30.0

_log = logging.getLogger("ray.serve.limner.db")

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


class _WriteGate:
    """The write transactions of one event loop on one SQLite file, let in one at a time, first come first
    served: an asyncio lock held from ``BEGIN IMMEDIATE`` until the commit or rollback (or until the connection
    is invalidated, closed or checked in, should a transaction end without either)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = asyncio.Lock()
        self._holder: int | None = None  # id() of the DBAPI connection in its write transaction

    def enter(self, owner: int) -> bool:
        """Waits (in SQLAlchemy's greenlet) for the writers ahead; False if it gave up after GATE_WAIT_S."""
        if not await_(self._acquire()):
            _log.warning("waited %.0fs for this process's other SQLite writers; trying the lock anyway", GATE_WAIT_S)
            return False
        self._holder = owner
        return True

    async def _acquire(self) -> bool:
        try:
            async with asyncio.timeout(GATE_WAIT_S):
                await self._lock.acquire()
        except TimeoutError:
            return False
        return True

    def leave(self, owner: int | None) -> None:
        if owner is None or owner != self._holder:
            return
        self._holder = None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._lock.release()
        elif not self._loop.is_closed():  # a connection finalised by the garbage collector in another thread
            self._loop.call_soon_threadsafe(self._lock.release)


# One gate per event loop and database file: every engine of a process on that file shares it.
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _WriteGate]] = weakref.WeakKeyDictionary()


def _gate(path: str | None) -> _WriteGate | None:
    if path is None or not in_greenlet():
        return None
    loop = asyncio.get_running_loop()
    gates = _GATES.setdefault(loop, {})
    gate = gates.get(path)
    if gate is None:
        gate = gates[path] = _WriteGate(loop)
    return gate


def _database_file(url: URL) -> str | None:
    """The file a SQLite URL names, or None for an in-memory database (each connection has its own)."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory" or database.startswith("file:"):
        return None
    return os.path.abspath(database)


def _owner(conn: Connection) -> int | None:
    try:
        return id(conn.connection.dbapi_connection)
    except Exception:  # closed or invalidated: the pool events below release its gate
        return None


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    path = _database_file(engine.url)

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
            conn.exec_driver_sql("BEGIN DEFERRED")  # WAL readers never wait for the writer
            return
        gate, owner = _gate(path), _owner(conn)
        entered = gate is not None and owner is not None and gate.enter(owner)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if entered:
                gate.leave(owner)  # type: ignore[union-attr]
            raise

    def _leave(owner: int | None) -> None:
        gates = [g for gates in list(_GATES.values()) if (g := gates.get(path or "")) is not None]
        for gate in gates:
            gate.leave(owner)

    @event.listens_for(engine.sync_engine, "commit")
    def _on_commit(conn: Connection) -> None:
        _leave(_owner(conn))

    @event.listens_for(engine.sync_engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        _leave(_owner(conn))

    # A connection whose transaction ended without a commit or rollback event (invalidated, or finalised).
    for name in ("checkin", "invalidate", "soft_invalidate", "close"):
        event.listen(engine.sync_engine, name, lambda dbapi_connection, *_: _leave(id(dbapi_connection)))


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory bound to ``engine``.

    Sessions do not expire objects on commit, so rows read in a transaction stay readable after it.

    Args:
        engine: From :func:`make_engine`.

    Returns:
        An :class:`~sqlalchemy.ext.asyncio.async_sessionmaker`.
    """
    return async_sessionmaker(engine, expire_on_commit=False)
