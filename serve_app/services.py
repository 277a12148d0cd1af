"""Wiring: the one place that picks concrete backends for the service interfaces.

Embedded defaults need no set-up (SQLite and an asset folder under ``LIMNER_DATA_DIR``, in-process cache and
events); the environment scales them out (``LIMNER_DATABASE_URL`` → PostgreSQL, ``LIMNER_REDIS_URL`` →
Redis for the cache and the job events, ``LIMNER_STORE_URL`` → any fsspec URL such as object storage).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.cache import (
    ByteCache,
    MemoryByteCache,
    MemoryResultCache,
    RedisByteCache,
    RedisResultCache,
    ResultCache,
)
from serve_app.config import AppConfig, Settings
from serve_app.db import make_engine, migrate
from serve_app.events import EventBus, MemoryEventBus, RedisEventBus
from serve_app.jobs import Backoff, SqlJobStore
from serve_app.store import AssetStore, FsspecAssetStore

__all__ = ["Services", "database_url", "migrate_once", "open_services"]

logger = logging.getLogger("ray.serve.limner.services")


@dataclass
class Services:
    """Everything the edge talks to. Plain attributes; built by :func:`open_services`."""

    engine: AsyncEngine
    jobs: SqlJobStore
    store: AssetStore
    results: ResultCache
    hot_assets: ByteCache
    events: EventBus
    public_base_url: str | None

    async def aclose(self) -> None:
        for closer in (self.events.aclose, self.results.aclose, self.hot_assets.aclose, self.engine.dispose):
            with contextlib.suppress(Exception):
                await closer()


def database_url(settings: Settings) -> str:
    """The metadata database URL: ``LIMNER_DATABASE_URL``, else SQLite in the data directory."""
    if settings.database_url:
        return settings.database_url
    data = Path(settings.data_dir).expanduser()
    data.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{data.resolve() / 'limner.db'}"


def _store_url(settings: Settings) -> str:
    if settings.store_url:
        return settings.store_url
    assets = Path(settings.data_dir).expanduser().resolve() / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    return str(assets)


async def migrate_once(url: str) -> None:
    """Upgrades the database to the newest schema, once even when several replicas start together.

    PostgreSQL serialises the upgrade with an advisory lock, SQLite with a lock file beside the database.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        lock_path = Path(f"{parsed.database}.migrate.lock")
        with lock_path.open("w") as lock:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            try:
                await migrate(url)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(727274)"))  # any constant; names the migration
            try:
                await migrate(url)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(727274)"))
    finally:
        await engine.dispose()


async def open_services(config: AppConfig, settings: Settings) -> Services:
    """Opens every backend the settings select, migrating the database first."""
    url = database_url(settings)
    await migrate_once(url)
    engine = make_engine(url)
    if settings.redis_url:
        events: EventBus = RedisEventBus(settings.redis_url)
        results: ResultCache = RedisResultCache(settings.redis_url)
        hot: ByteCache = RedisByteCache(
            settings.redis_url,
            max_bytes=max(1, config.cache.hot_asset_bytes),
            max_item_bytes=config.cache.hot_asset_max_item_bytes,
        )
    else:
        events = MemoryEventBus()
        results = MemoryResultCache()
        hot = MemoryByteCache(
            max_bytes=max(1, config.cache.hot_asset_bytes), max_item_bytes=config.cache.hot_asset_max_item_bytes
        )
    jobs = SqlJobStore(
        engine,
        backoff=Backoff(base_s=config.jobs.backoff_base_s, cap_s=config.jobs.backoff_cap_s),
        on_event=events.publish,
    )
    store = FsspecAssetStore(_store_url(settings))
    logger.info(
        "services: database=%s store=%s redis=%s",
        make_url(url).render_as_string(hide_password=True),
        _store_url(settings),
        "yes" if settings.redis_url else "no (in-process cache and events)",
    )
    return Services(engine, jobs, store, results, hot, events, settings.public_base_url)


@contextlib.asynccontextmanager
async def services_for(config: AppConfig, settings: Settings) -> AsyncIterator[Services]:
    """:func:`open_services` as an async context manager."""
    services = await open_services(config, settings)
    try:
        yield services
    finally:
        await services.aclose()
