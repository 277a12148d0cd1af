"""Retention (serve_app/jobs/retention.py) over the real job store, image rows and asset folder."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.config import AppConfig, RetentionConfig, Settings
from serve_app.db import Image, JobEvent, make_engine, make_session_factory, utcnow
from serve_app.errors import NotFound
from serve_app.image_service import ImageService
from serve_app.images import ImageNotFound, ImageRepository
from serve_app.jobs import SqlJobStore
from serve_app.jobs.kinds import GeneratePayload, KindRegistry, default_kinds
from serve_app.jobs.retention import ADVISORY_LOCK, Janitor, prune
from serve_app.services import open_services

DAY = 86400.0


def _config(**retention: Any) -> AppConfig:
    return AppConfig(retention=RetentionConfig(**retention))


async def _event_rows(engine: AsyncEngine, job_id: uuid.UUID) -> int:
    async with make_session_factory(engine)() as session:
        query = select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)
        return int((await session.execute(query)).scalar_one())


async def _finish(store: SqlJobStore, job_id: uuid.UUID) -> None:
    await store.claim("d1", lease_s=30, limit=100)
    await store.complete(job_id, "d1")


async def test_finished_jobs_and_their_events_go_after_n_days(engine: AsyncEngine, clock: Any) -> None:
    store = SqlJobStore(engine, clock=clock)
    old = [await store.submit("image", {"n": n}) for n in range(5)]
    for job in old:
        await _finish(store, job.id)
    cancelled = await store.submit("image", {"n": 5})
    await store.cancel(cancelled.id)
    waiting = await store.submit("image", {"n": 6})  # queued for a long time: never pruned
    clock.advance(10 * DAY)
    recent = await store.submit("image", {"n": 7})
    await _finish(store, recent.id)
    clock.advance(1)
    # Batches of two: three short transactions, each deleting what the last left.
    report = await prune(store, ImageRepository(engine), _config(jobs_days=5, batch_size=2), now=clock.now)
    assert report.jobs_deleted == 6
    left = {j.id for j in (await store.list()).items}
    assert left == {waiting.id, recent.id}
    assert [await _event_rows(engine, j.id) for j in old] == [0] * 5
    assert await _event_rows(engine, recent.id) == 3  # queued, started, succeeded
    assert (await prune(store, ImageRepository(engine), _config(jobs_days=5), now=clock.now)).jobs_deleted == 0
    kept = await prune(store, ImageRepository(engine), _config(jobs_days=None), now=clock.now + timedelta(days=999))
    assert kept.jobs_deleted == 0


async def test_soft_deleted_images_are_purged_after_the_grace_period(engine: AsyncEngine, clock: Any) -> None:
    images = ImageRepository(engine)
    parent = await images.get_or_create(Image(kind="image", width=8, height=8, content_hash="a" * 64, settings={}))
    child = await images.get_or_create(
        Image(kind="image", width=8, height=8, content_hash="b" * 64, settings={}, parent_id=parent.id, version=2)
    )
    kept = await images.get_or_create(Image(kind="image", width=8, height=8, content_hash="c" * 64, settings={}))
    store = SqlJobStore(engine, clock=clock)
    job = await store.submit("image", {"n": 1})
    await store.claim("d1", lease_s=30)
    await store.complete(job.id, "d1", parent.id)
    await images.soft_delete(parent.id)
    report = await prune(store, images, _config(deleted_images_days=7), now=utcnow() + timedelta(days=6))
    assert report.images_purged == 0
    assert (await images.get(parent.id, include_deleted=True)).deleted_at is not None
    assert "a" * 64 in await images.referenced_hashes()  # within the grace period its blob is kept

    report = await prune(store, images, _config(deleted_images_days=7), now=utcnow() + timedelta(days=8))
    assert report.images_purged == 1
    with pytest.raises(ImageNotFound):
        await images.get(parent.id, include_deleted=True)
    assert "a" * 64 not in await images.referenced_hashes()
    assert (await images.get(child.id)).parent_id is None  # the derived image stays, as a root
    assert (await images.get(kept.id)).id == kept.id
    assert (await store.get(job.id)).result_image_id is None  # the job stays; its image is gone


async def test_a_janitor_run_prunes_then_collects_blobs_and_the_asset_url_stops_serving(tmp_path: Path) -> None:
    """A depth map referenced only by an old finished job, and a soft-deleted image's bytes: both are kept
    until retention lets them go, then removed from disk and from the hot cache; the asset URL answers 404."""
    settings = Settings(data_dir=str(tmp_path))
    config = _config(jobs_days=30, deleted_images_days=7)
    services = await open_services(config, settings)
    try:
        depth = await services.store.put(b"depth map of an old job", "png")
        gone = await services.store.put(b"an image its owner deleted", "png")
        live = await services.store.put(b"an image still in use", "png")
        payload = GeneratePayload(
            request={"prompt": "a ruin", "seed": 1},
            cacheable=True,
            request_hash="v1:" + "0" * 64,
            generation={"prompt": "a ruin", "seed": 1},
            control_image=depth,
        )
        job = await services.jobs.submit("generate", payload.to_json())
        await services.jobs.claim("d1", lease_s=30)
        await services.jobs.complete(job.id, "d1")
        repo = ImageRepository(services.engine)
        deleted = await repo.get_or_create(Image(kind="image", width=8, height=8, content_hash=gone, settings={}))
        await repo.get_or_create(Image(kind="image", width=8, height=8, content_hash=live, settings={}))
        await repo.soft_delete(deleted.id)
        old = time.time() - 2 * 3600
        for sha in (depth, gone, live):
            os.utime(services.store.path(sha, "png"), (old, old))  # type: ignore[attr-defined]
        images = ImageService(services)
        # Soft-deleted: 404 by id at once, but its content-addressed asset still serves during the grace period.
        with pytest.raises(NotFound):
            await images.image(str(deleted.id))
        assert (await images.asset(gone, "png")).data == b"an image its owner deleted"
        assert await services.hot_assets.get(f"{gone}.png") is not None

        registry = KindRegistry(default_kinds())
        soon = Janitor(services, config, registry, clock=lambda: utcnow() + timedelta(days=1))
        report = await soon.run_once()
        assert report is not None and (report.jobs_deleted, report.images_purged, report.blobs_removed) == (0, 0, 0)
        assert {depth, gone, live} <= {p.stem for p in (tmp_path / "assets").rglob("*.png")}

        later = Janitor(services, config, registry, clock=lambda: utcnow() + timedelta(days=31))
        report = await later.run_once()
        assert report is not None
        assert (report.jobs_deleted, report.images_purged, report.blobs_removed) == (1, 1, 2)
        names = {p.stem for p in (tmp_path / "assets").rglob("*.png")}
        assert live in names and depth not in names and gone not in names
        assert await services.hot_assets.get(f"{gone}.png") is None
        with pytest.raises(NotFound):
            await images.asset(gone, "png")
        assert (await images.asset(live, "png")).data == b"an image still in use"
    finally:
        await services.aclose()


@pytest.mark.postgres
async def test_on_postgres_one_janitor_runs_at_a_time(postgres_db_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), database_url=postgres_db_url)
    config = _config(collect_blobs=False)
    services = await open_services(config, settings)
    holder = make_engine(postgres_db_url)
    try:
        janitor = Janitor(services, config, KindRegistry(default_kinds()))
        async with holder.connect() as conn:  # another replica's run holds the lock
            assert (await conn.execute(text(f"SELECT pg_try_advisory_lock({ADVISORY_LOCK})"))).scalar() is True
            assert await janitor.run_once() is None
            await conn.execute(text(f"SELECT pg_advisory_unlock({ADVISORY_LOCK})"))
        assert await janitor.run_once() is not None
        assert await janitor.run_once() is not None  # the lock was given back after each run
        assert janitor.runs == 2
    finally:
        await holder.dispose()
        await services.aclose()


async def test_the_janitor_runs_on_its_own_schedule(tmp_path: Path) -> None:
    import asyncio

    services = await open_services(AppConfig(), Settings(data_dir=str(tmp_path)))
    try:
        store = services.jobs
        job = await store.submit("image", {"n": 1})
        await store.cancel(job.id)
        config = _config(interval_s=0.05, jobs_days=1)
        janitor = Janitor(services, config, KindRegistry(default_kinds()), clock=lambda: utcnow() + timedelta(days=2))
        janitor.start()
        try:
            async with asyncio.timeout(30):
                while janitor.runs < 2:
                    await asyncio.sleep(0.02)
        finally:
            await janitor.stop()
        assert (await store.list()).items == []
        off = Janitor(services, _config(enabled=False), KindRegistry(default_kinds()))
        off.start()
        assert off._task is None
    finally:
        await services.aclose()


def test_default_result_ttl_is_a_week() -> None:
    assert AppConfig().cache.result_ttl_s == 7 * DAY
    assert AppConfig(cache={"result_ttl_s": None}).cache.result_ttl_s is None  # still configurable: forever
