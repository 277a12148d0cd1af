"""The models behave the same on SQLite and PostgreSQL; engines get the right settings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.db import (
    Image,
    Job,
    JobSource,
    JobStatus,
    Overlay,
    Theme,
    make_session_factory,
    to_async_url,
)


async def test_rows_round_trip_portably(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    when = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    theme = Theme(name="grimdark", style={"palette": ["#000", "#300"], "variations": {"night": {"fog": 0.4}}})
    async with sessions() as session, session.begin():
        session.add(theme)
        await session.flush()
        parent = Image(
            kind="map",
            prompt="a ruined keep",
            seed=2**40,
            settings={"steps": 30, "cfg": 6.5},
            theme_id=theme.id,
            width=1024,
            height=768,
            content_hash="f" * 64,
            created_at=when,
        )
        session.add(parent)
        await session.flush()
        child = Image(
            kind="overlay",
            width=1024,
            height=768,
            content_hash="e" * 64,
            parent_id=parent.id,
            version=2,
        )
        session.add(child)
        await session.flush()
        session.add(Overlay(image_id=parent.id, kind="grid", spec={"cell": 70}, result_image_id=child.id))

    async with sessions() as session:
        got = (await session.execute(select(Image).where(Image.id == parent.id))).scalar_one()
        assert isinstance(got.id, uuid.UUID) and got.theme_id == theme.id
        assert got.settings == {"steps": 30, "cfg": 6.5} and got.seed == 2**40
        assert got.created_at == when and got.created_at.tzinfo is not None
        assert got.created_at.utcoffset() == timedelta(0)  # always handed back in UTC
        assert got.format == "png" and got.version == 1 and got.deleted_at is None
        versions = (await session.execute(select(Image).where(Image.parent_id == parent.id))).scalars().all()
        assert [(v.version, v.kind) for v in versions] == [(2, "overlay")]
        overlay = (await session.execute(select(Overlay))).scalar_one()
        assert overlay.spec == {"cell": 70} and overlay.result_image_id == child.id


async def test_job_defaults_and_enums(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        job = Job(kind="image", payload={"a": 1}, body_hash="0" * 64, source=JobSource.ZMQ)
        session.add(job)
    async with sessions() as session:
        got = await session.get(Job, job.id)
        assert got is not None
        assert got.status is JobStatus.QUEUED and got.source is JobSource.ZMQ
        assert (got.attempts, got.max_attempts, got.priority, got.cancel_requested) == (0, 3, 0, False)
        assert got.next_attempt_at.tzinfo is not None


async def test_theme_names_and_idempotency_keys_are_unique(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        session.add(Theme(name="sunny"))
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            session.add(Theme(name="sunny"))
    async with sessions() as session, session.begin():
        session.add(Job(kind="image", payload={}, body_hash="1" * 64, idempotency_key="k"))
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            session.add(Job(kind="image", payload={}, body_hash="2" * 64, idempotency_key="k"))


async def test_status_outside_the_enum_is_refused(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        job = Job(kind="image", payload={}, body_hash="3" * 64)
        session.add(job)
    with pytest.raises(IntegrityError):  # the CHECK constraint, on both databases
        async with sessions() as session, session.begin():
            await session.execute(
                text("UPDATE jobs SET status = 'exploded' WHERE id = :id"),
                {"id": job.id.hex if engine.dialect.name == "sqlite" else job.id},
            )


async def test_naive_datetimes_are_refused(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    with pytest.raises(Exception, match="naive datetime"):
        async with sessions() as session, session.begin():
            session.add(Job(kind="image", payload={}, body_hash="4" * 64, deadline=datetime(2030, 1, 1)))


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_db_url: str) -> None:
    from serve_app.db import make_engine

    engine = make_engine(sqlite_db_url, busy_timeout_ms=1234)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 1234
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        sessions = make_session_factory(engine)
        with pytest.raises(IntegrityError):
            async with sessions() as session, session.begin():
                session.add(Overlay(image_id=uuid.uuid4(), kind="grid"))  # no such image
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_their_async_driver(url: str, driver: str) -> None:
    assert to_async_url(url).drivername == driver


def test_unsupported_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        to_async_url("mysql://u@h/db")


def test_utc_now_is_aware() -> None:
    from serve_app.db import utcnow

    assert utcnow().tzinfo is UTC
