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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

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
    redis_client,
)
from serve_app.config import AppConfig, Settings
from serve_app.db import make_engine, migrate
from serve_app.events import Event, EventBus, EventHub, MemoryEventBus, NullHub, RedisEventBus, RedisStreamHub
from serve_app.jobs import Backoff, SqlJobStore
from serve_app.store import AssetStore, FsspecAssetStore

__all__ = ["Services", "database_url", "migrate_once", "open_services", "redact_url"]

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
    redis: Any = None  # the client (one bounded pool) the Redis backends share; closed after them
    hub: EventHub = field(default_factory=NullHub)  # domain events for other services (a Redis Stream)

    async def aclose(self) -> None:
        for closer in (self.events.aclose, self.results.aclose, self.hot_assets.aclose, self.engine.dispose):
            with contextlib.suppress(Exception):
                await closer()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()


def redact_url(url: str) -> str:
    """``url`` fit for a log line: the password and every query value (tokens, keys) replaced by ``***``.

    A URL that does not parse is replaced whole: it may still hold a secret.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" in url and "@" not in parts.netloc:  # credentials with an unescaped '/' or '?': do not guess
        return f"{parts.scheme}://<redacted>"
    out = url.split("#", 1)[0]
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        out = out.replace(parts.netloc, f"{user}{':***' if colon else ''}@{host}", 1)
    if parts.query:
        redacted = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
        out = out[: out.rindex("?") + 1] + redacted
    return out


def database_url(settings: Settings) -> str:
    """The metadata database URL: ``LIMNER_DATABASE_URL``, else SQLite in the data directory."""
    if settings.database_url is not None and settings.database_url.get_secret_value():
        return settings.database_url.get_secret_value()
    data = Path(settings.data_dir).expanduser()
    data.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{data.resolve() / 'limner.db'}"


def _store_url(settings: Settings) -> str:
    if settings.store_url is not None and settings.store_url.get_secret_value():
        return settings.store_url.get_secret_value()
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
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url is not None else ""
    redis = None
    hub: EventHub = NullHub()
    if redis_url:
        redis = redis_client(redis_url, max_connections=config.cache.redis_max_connections)
        events: EventBus = RedisEventBus(redis)
        if config.hub.enabled:
            hub = RedisStreamHub(redis, stream=config.hub.stream, maxlen=config.hub.maxlen)
        results: ResultCache = RedisResultCache(redis)
        hot: ByteCache = RedisByteCache(
            redis,
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
        on_event=events.publish if isinstance(hub, NullHub) else _fan_out(events.publish, hub.job_event),
    )
    store_url = _store_url(settings)
    store = FsspecAssetStore(store_url)
    logger.info(
        "services: database=%s store=%s redis=%s",
        redact_url(url),
        redact_url(store_url),
        redact_url(redis_url) if redis_url else "no (in-process cache and events)",
    )
    return Services(engine, jobs, store, results, hot, events, settings.public_base_url, redis, hub)


def _fan_out(bus: Callable[[Event], Awaitable[None]], hub: Callable[[Event], Awaitable[None]]) -> Any:
    """The job store's event hook: the bus (limner's own replicas) first, then the hub (which never raises)."""

    async def publish(event: Event) -> None:
        try:
            await bus(event)
        finally:
            await hub(event)

    return publish


@contextlib.asynccontextmanager
async def services_for(config: AppConfig, settings: Settings) -> AsyncIterator[Services]:
    """:func:`open_services` as an async context manager."""
    services = await open_services(config, settings)
    try:
        yield services
    finally:
        await services.aclose()
