"""Retention: what the service forgets, and when (the ``retention`` config section).

:func:`prune` deletes, in short batches:

- finished jobs (succeeded, failed, cancelled, dead) ``retention.jobs_days`` after they ended, with their event
  logs; the conditioning images only they referenced become collectable;
- image rows ``retention.deleted_images_days`` after their soft deletion, so garbage collection no longer keeps
  their blobs. Until then a soft-deleted image answers 404 by id but its content-addressed asset URL keeps
  serving (the same bytes may belong to other images, and CDNs cache assets as immutable); once the row is
  purged and nothing else references the blob, :func:`collect` removes it and the URL answers 404;
- idempotency keys older than ``jobs.idempotency_ttl_s`` (released: the key can name a new job).

:func:`collect` then removes unreferenced blobs. :class:`Janitor` runs both on a schedule inside the service,
one replica at a time: on PostgreSQL the run holds an advisory lock (replicas that do not get it skip the
run); SQLite is one file with a single writer, so every replica just runs (each batch is idempotent).
``python -m serve_app.cli gc`` (``make gc``) runs the same steps once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pipelines.encode import FORMATS
from serve_app.config import AppConfig
from serve_app.db import READ_ONLY, Job, utcnow
from serve_app.images import ImageRepository
from serve_app.jobs.base import Clock
from serve_app.jobs.kinds.base import KindRegistry
from serve_app.jobs.sql import SqlJobStore
from serve_app.services import Services

__all__ = ["ADVISORY_LOCK", "Janitor", "RetentionReport", "collect", "prune", "referenced_hashes"]

logger = logging.getLogger("ray.serve.limner.retention")

#: The PostgreSQL advisory lock key one janitor run holds (any constant distinct from the migration's).
ADVISORY_LOCK = 727275


@dataclass
class RetentionReport:
    """What one run did."""

    jobs_deleted: int = 0
    images_purged: int = 0
    keys_released: int = 0
    blobs_removed: int = 0
    bytes_freed: int = 0
    kept_referenced: int = 0
    kept_recent: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def referenced_hashes(engine: AsyncEngine, registry: KindRegistry) -> set[str]:
    """Every blob something still points at: image rows (soft-deleted ones too, until they are purged) and
    whatever each remaining job's kind says its payload references (init and control images, and so on)."""
    keep = await ImageRepository(engine).referenced_hashes()
    async with engine.connect() as conn:
        conn = await conn.execution_options(**READ_ONLY)  # SQLite: a deferred transaction, no write lock
        for kind, payload in await conn.execute(select(Job.kind, Job.payload)):
            if isinstance(payload, dict):
                keep |= registry.referenced_assets(kind, payload)
    return keep


async def prune(
    store: SqlJobStore, images: ImageRepository, config: AppConfig, *, now: datetime | None = None
) -> RetentionReport:
    """Deletes what the retention settings no longer keep (see the module docstring), in batches.

    Args:
        store: The job store.
        images: The image rows.
        config: The app config (``retention`` and ``jobs.idempotency_ttl_s``).
        now: The time to judge by (tests move it); now by default.
    """
    now = now or utcnow()
    retention, batch = config.retention, config.retention.batch_size
    report = RetentionReport()
    if retention.jobs_days is not None:
        before = now - timedelta(days=retention.jobs_days)
        while (n := await store.delete_finished(before, limit=batch)) > 0:
            report.jobs_deleted += n
            if n < batch:
                break
    if retention.deleted_images_days is not None:
        before = now - timedelta(days=retention.deleted_images_days)
        while hashes := await images.purge_deleted(before, limit=batch):
            report.images_purged += len(hashes)
            if len(hashes) < batch:
                break
    before = now - timedelta(seconds=config.jobs.idempotency_ttl_s)
    while (n := await store.release_idempotency_keys(before, limit=batch)) > 0:
        report.keys_released += n
        if n < batch:
            break
    return report


async def collect(
    services: Services, registry: KindRegistry, *, older_than_s: float, dry_run: bool = False
) -> dict[str, Any]:
    """Removes asset blobs nothing references (older than ``older_than_s``) and drops them from the hot cache."""
    keep = await referenced_hashes(services.engine, registry)
    result = await services.store.collect(keep, older_than_s=older_than_s, dry_run=dry_run)
    if not dry_run:
        for path in result.removed:
            name = path.rstrip("/").rsplit("/", 1)[-1]
            sha = name.split(".", 1)[0]
            for ext in FORMATS:
                with contextlib.suppress(Exception):  # a cache miss later is harmless
                    await services.hot_assets.delete(f"{sha}.{ext}")
    return {
        "removed": len(result.removed),
        "bytes_freed": result.bytes_freed,
        "kept_referenced": result.kept_referenced,
        "kept_recent": result.kept_recent,
    }


class Janitor:
    """Runs :func:`prune` and :func:`collect` every ``retention.interval_s``, one replica at a time.

    Args:
        services: The backends.
        config: The app config.
        registry: The job kinds (what each payload references).
        clock: "Now" for pruning; tests move it.
    """

    def __init__(self, services: Services, config: AppConfig, registry: KindRegistry, *, clock: Clock = utcnow):
        self._services = services
        self._config = config
        self._registry = registry
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def start(self) -> None:
        """Starts the schedule on the running event loop (nothing when retention is disabled)."""
        if self._task is None and self._config.retention.enabled:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="limner-janitor")

    async def stop(self) -> None:
        """Stops the schedule (a run in progress is cancelled between statements; each batch is atomic)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        interval = self._config.retention.interval_s
        # A first run soon after start (jittered so replicas started together do not queue on the lock).
        delay = random.uniform(0.5, 1.0) * min(interval, 60.0)
        while True:
            await asyncio.sleep(delay)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blipped: try again at the next run
                logger.exception("retention run failed")
            delay = interval

    async def run_once(self) -> RetentionReport | None:
        """One run: prune, then collect blobs. None when another replica holds the run (PostgreSQL)."""
        async with self._exclusive() as held:
            if not held:
                return None
            services, config = self._services, self._config
            report = await prune(services.jobs, ImageRepository(services.engine), config, now=self._clock())
            if config.retention.collect_blobs:
                collected = await collect(services, self._registry, older_than_s=config.retention.blob_grace_s)
                report.blobs_removed = collected["removed"]
                report.bytes_freed = collected["bytes_freed"]
                report.kept_referenced = collected["kept_referenced"]
                report.kept_recent = collected["kept_recent"]
            self.runs += 1
            if report.jobs_deleted or report.images_purged or report.blobs_removed:
                logger.info("retention: %s", report.as_dict())
            return report

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[bool]:
        engine = self._services.engine
        if engine.dialect.name != "postgresql":
            yield True  # SQLite: the single writer lock serialises every batch already
            return
        async with engine.connect() as conn:
            held = bool((await conn.execute(text(f"SELECT pg_try_advisory_lock({ADVISORY_LOCK})"))).scalar())
            await conn.commit()
            try:
                yield held
            finally:
                if held:
                    await conn.execute(text(f"SELECT pg_advisory_unlock({ADVISORY_LOCK})"))
                    await conn.commit()
