"""Several dispatchers claiming from one pool never run a job twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import collections
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.db import make_engine
from serve_app.jobs import JobStatus, LeaseLost, SqlJobStore

# PostgreSQL is the multi-dispatcher database; SQLite (one writer at a time) gets a smaller pool.
JOBS = {"postgresql": 200, "sqlite": 100}


async def _dispatcher(store: SqlJobStore, owner: str, executions: collections.Counter[uuid.UUID]) -> None:
    idle = 0
    while idle < 3:
        claimed = await store.claim(owner, lease_s=60, limit=4)
        if not claimed:
            idle += 1
            await asyncio.sleep(0.01)
            continue
        idle = 0
        for job in claimed:
            executions[job.id] += 1
            await asyncio.sleep(0)  # let the other dispatchers interleave mid-job
            await store.complete(job.id, owner)


async def test_two_dispatchers_never_run_one_job_twice(engine: AsyncEngine, db_url: str) -> None:
    jobs = JOBS[engine.dialect.name]
    producer = SqlJobStore(engine)
    ids = {(await producer.submit("image", {"n": n}, priority=n % 3)).id for n in range(jobs)}

    # Two dispatchers with their own engines (connection pools), four workers each.
    engines = [make_engine(db_url), make_engine(db_url)]
    executions: collections.Counter[uuid.UUID] = collections.Counter()
    try:
        stores = [SqlJobStore(e) for e in engines]
        await asyncio.gather(
            *(_dispatcher(stores[d], f"dispatcher-{d}-worker-{w}", executions) for d in range(2) for w in range(4))
        )
    finally:
        for e in engines:
            await e.dispose()

    assert set(executions) == ids
    assert max(executions.values()) == 1, [j for j, n in executions.items() if n > 1][:5]
    counts = await producer.counts()
    assert counts[JobStatus.SUCCEEDED] == jobs
    owners = {(await producer.get(j)).lease_owner for j in list(ids)[:50]}
    assert len({o.split("-worker")[0] for o in owners if o}) == 2, "both dispatchers should have worked"
    for job_id in list(ids)[:20]:
        types = [e.type for e in await producer.events_since(job_id)]
        assert types == ["queued", "started", "succeeded"]


async def test_racing_completions_record_one_result(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine)
    job = await store.submit("image", {"n": 1})
    await store.claim("d1", lease_s=60)
    results = await asyncio.gather(
        *(store.complete(job.id, "d1", image_id=None) for _ in range(6)), return_exceptions=True
    )
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    assert all(isinstance(r, LeaseLost) for r in results if isinstance(r, BaseException))
    assert [e.type for e in await store.events_since(job.id)].count("succeeded") == 1


@pytest.mark.parametrize("workers", [6])
async def test_concurrent_claims_split_the_pool(engine: AsyncEngine, workers: int) -> None:
    store = SqlJobStore(engine)
    for n in range(30):
        await store.submit("image", {"n": n})
    batches = await asyncio.gather(*(store.claim(f"w{i}", lease_s=60, limit=5) for i in range(workers)))
    claimed = [job.id for batch in batches for job in batch]
    assert len(claimed) == 30 and len(set(claimed)) == 30
