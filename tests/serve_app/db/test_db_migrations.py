"""Migrations upgrade, downgrade and upgrade again on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from serve_app.db import Base, current_revision, downgrade, head_revision, make_engine, migrate

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
