"""Migrations upgrade, downgrade and upgrade again on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from serve_app.db import Base, UTCDateTime, current_revision, downgrade, head_revision, make_engine, migrate

TABLES = {"images", "job_events", "jobs", "overlays", "subjects", "theme_versions", "themes"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    return str(request.getfixturevalue("empty_postgres_url"))


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _drift(url: str) -> list[object]:
    engine = make_engine(url)

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(diff)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    assert await current_revision(empty_db_url) is None
    await migrate(empty_db_url)
    assert await current_revision(empty_db_url) == head_revision()
    assert TABLES <= await _tables(empty_db_url)

    await downgrade(empty_db_url)
    assert await current_revision(empty_db_url) is None
    assert await _tables(empty_db_url) & TABLES == set()

    await migrate(empty_db_url)
    assert await current_revision(empty_db_url) == head_revision()
    assert TABLES <= await _tables(empty_db_url)


async def test_migrating_twice_is_a_no_op(empty_db_url: str) -> None:
    await migrate(empty_db_url)
    await migrate(empty_db_url)
    assert await current_revision(empty_db_url) == head_revision()


async def test_migrations_match_the_models(empty_db_url: str) -> None:
    await migrate(empty_db_url)
    assert await _drift(empty_db_url) == []


async def test_migrate_works_from_any_directory(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    await migrate(empty_db_url)
    assert await current_revision(empty_db_url) == head_revision()
    assert os.listdir(elsewhere) == []  # no alembic.ini or scripts needed or written here


def _rows(tenant: str | None) -> list[tuple[sa.TableClause, dict[str, object]]]:
    """A job with idempotency key ``key``, a theme ``ink`` and a subject ``mira`` (of ``tenant``; None: no column)."""
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    ts = UTCDateTime()
    job = {
        "id": uuid.uuid4(), "kind": "k", "payload": {}, "body_hash": "h", "status": "queued", "priority": 0,
        "attempts": 0, "max_attempts": 3, "next_attempt_at": now, "progress": 0.0, "source": "http",
        "idempotency_key": "key", "cancel_requested": False, "event_seq": 0, "created_at": now, "updated_at": now,
    }  # fmt: skip
    theme = {"id": uuid.uuid4(), "name": "ink", "style": {}, "version": 1, "builtin": False}
    theme |= {"created_at": now, "updated_at": now}
    subject = {"key": "mira", "kind": "portrait", "seed_base": 1, "descriptors": {}, "created_at": now}
    subject["updated_at"] = now
    types: dict[str, sa.types.TypeEngine[object]] = {
        "id": sa.Uuid(), "payload": sa.JSON(), "style": sa.JSON(), "descriptors": sa.JSON(),
        "next_attempt_at": ts, "created_at": ts, "updated_at": ts, "cancel_requested": sa.Boolean(),
        "builtin": sa.Boolean(),
    }  # fmt: skip
    out = []
    for name, values in (("jobs", job), ("themes", theme), ("subjects", subject)):
        if tenant is not None:
            values["tenant"] = tenant
        table = sa.table(name, *(sa.column(k, types.get(k)) for k in values))
        out.append((table, values))
    return out


async def test_tenants_migration_keeps_rows_and_makes_keys_per_tenant(empty_db_url: str) -> None:
    """0010: rows made before tenants are the open tenant's; theme names, subject keys and idempotency keys become
    unique per tenant; the downgrade folds them back into one namespace."""
    await migrate(empty_db_url, "0009")
    engine = make_engine(empty_db_url)
    try:
        async with engine.begin() as conn:
            for table, values in _rows(None):
                await conn.execute(table.insert().values(**values))
        await engine.dispose()
        await migrate(empty_db_url, "0010")
        async with engine.begin() as conn:
            for name in ("jobs", "themes", "subjects"):
                assert (await conn.execute(sa.text(f"SELECT tenant FROM {name}"))).scalars().all() == [""]
            for table, values in _rows("a"):  # the same keys in another tenant
                await conn.execute(table.insert().values(**values))
        for table, values in _rows("a"):  # but not twice in one tenant
            with pytest.raises(IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(table.insert().values(**values))
        async with engine.begin() as conn:
            for name in ("jobs", "themes", "subjects"):
                await conn.execute(sa.text(f"DELETE FROM {name} WHERE tenant = 'a'"))
        await engine.dispose()
        await downgrade(empty_db_url, "0009")
        async with engine.begin() as conn:
            columns = await conn.run_sync(lambda c: {t: {x["name"] for x in inspect(c).get_columns(t)} for t in TABLES})
            assert not any("tenant" in names for names in columns.values())
            assert (await conn.execute(sa.text("SELECT count(*) FROM subjects"))).scalar() == 1
        for table, values in _rows(None):  # one namespace again
            with pytest.raises(IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(table.insert().values(**values))
    finally:
        await engine.dispose()
