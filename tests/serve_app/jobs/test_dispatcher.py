"""The dispatcher routes each job to its kind, accounts for its slots, and records each outcome once,
against the real job store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pipelines.errors import InputError
from serve_app.errors import INTERNAL_FAILURE
from serve_app.jobs import JobRecord, JobResult, JobStatus, SqlJobStore
from serve_app.jobs.dispatcher import Dispatcher, ProgressFn
from serve_app.jobs.kinds import KindRegistry

STAGES = object()  # the dispatcher hands its stages to every kind untouched


class Recorder:
    """A kind that records what it ran and can be held on an event."""

    def __init__(self, name: str, *, images: int = 1) -> None:
        self.name = name  # type: ignore[misc]
        self.images = images
        self.ran: list[tuple[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.peak = 0

    async def accept(self, request: Any, stages: Any) -> Any:  # pragma: no cover - not used here
        raise NotImplementedError

    async def run(self, job: JobRecord, stages: Any, progress: ProgressFn) -> JobResult:
        self.ran.append((str(job.id), stages))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await progress(1, 2)
            if self.gate is not None:
                await self.gate.wait()
            return JobResult(images=(), data={"kind": self.name, "n": job.payload["n"]})
        finally:
            self.running -= 1

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return set()


class Failing:
    name: ClassVar[str] = "failing"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def accept(self, request: Any, stages: Any) -> Any:  # pragma: no cover - not used here
        raise NotImplementedError

    async def run(self, job: JobRecord, stages: Any, progress: ProgressFn) -> JobResult:
        raise self.exc

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return set()


@pytest.fixture
async def store(engine: AsyncEngine) -> SqlJobStore:
    return SqlJobStore(engine, progress_interval_s=0)


@pytest.fixture
async def dispatch(store: SqlJobStore) -> AsyncIterator[Any]:
    made: list[Dispatcher] = []

    def make(*kinds: Any, max_concurrent: int = 4) -> Dispatcher:
        d = Dispatcher(
            store,
            KindRegistry(kinds),
            STAGES,
            lease_s=10,
            heartbeat_s=1,
            poll_interval_s=0.02,  # type: ignore[arg-type]
            max_concurrent=max_concurrent,
        )
        d.start()
        made.append(d)
        return d

    yield make
    for d in made:
        await d.stop()


async def _settled(store: SqlJobStore, job_id: Any, timeout: float = 10) -> JobRecord:
    async with asyncio.timeout(timeout):
        while True:
            job = await store.get(job_id)
            if job.status.is_final:
                return job
            await asyncio.sleep(0.02)


async def test_each_job_runs_through_its_own_kind(store: SqlJobStore, dispatch: Any) -> None:
    maps, portraits = Recorder("map"), Recorder("portrait")
    dispatch(maps, portraits)
    a = await store.submit("map", {"n": 1})
    b = await store.submit("portrait", {"n": 2})
    c = await store.submit("map", {"n": 3})
    done = [await _settled(store, j.id) for j in (a, b, c)]
    assert [j.status for j in done] == [JobStatus.SUCCEEDED] * 3
    assert sorted(i for i, _ in maps.ran) == sorted([str(a.id), str(c.id)])
    assert [i for i, _ in portraits.ran] == [str(b.id)]
    assert all(stages is STAGES for _, stages in maps.ran + portraits.ran)
    assert done[1].result == {"images": [], "data": {"kind": "portrait", "n": 2}}


async def test_an_unknown_kind_fails_permanently(store: SqlJobStore, dispatch: Any) -> None:
    dispatch(Recorder("map"))
    job = await _settled(store, (await store.submit("mystery", {"n": 0})).id)
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.error_type == "unknown_kind" and "mystery" in (job.error or "") and "map" in (job.error or "")


@pytest.mark.parametrize(
    ("exc", "status", "error_type", "param"),
    [
        (InputError("width", 100, "a multiple of 8"), JobStatus.FAILED, "invalid_request", "width"),
        (RuntimeError("replica died"), JobStatus.DEAD, "generation_failed", None),
    ],
)
async def test_failures_are_recorded_as_data(
    store: SqlJobStore, dispatch: Any, exc: BaseException, status: JobStatus, error_type: str, param: str | None
) -> None:
    dispatch(Failing(exc))
    job = await store.submit("failing", {"n": 0}, max_attempts=2)
    done = await _settled(store, job.id)
    assert done.status is status and (done.error_type, done.error_param) == (error_type, param)
    # A permanent failure gets one attempt, a transient one all of them.
    assert done.attempts == (1 if status is JobStatus.FAILED else 2)
    # Bad input keeps its own message; anything else records only a safe one (the detail is logged).
    assert done.error == (str(exc) if status is JobStatus.FAILED else INTERNAL_FAILURE)


async def test_slots_bound_the_running_jobs_and_reserve_accounts_for_them(store: SqlJobStore, dispatch: Any) -> None:
    slow = Recorder("slow")
    slow.gate = asyncio.Event()
    d = dispatch(slow, max_concurrent=2)
    jobs = [await store.submit("slow", {"n": i}) for i in range(3)]
    async with asyncio.timeout(10):
        while d.running < 2:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # several claim ticks: the third job must stay queued
    assert d.running == 2 and d.free_slots == 0 and slow.peak == 2
    assert (await store.get(jobs[2].id)).status is JobStatus.QUEUED
    assert d.reserve() is None  # no slot to claim a new job in its committing transaction
    slow.gate.set()
    done = [await _settled(store, j.id) for j in jobs]
    assert all(j.status is JobStatus.SUCCEEDED for j in done) and slow.peak == 2
    async with asyncio.timeout(5):
        while d.running:
            await asyncio.sleep(0.02)
    slot = d.reserve()
    assert slot is not None and slot[0] == d.owner and d.free_slots == 1
    d.unreserve()
    assert d.free_slots == 2


async def test_a_cancelled_running_job_ends_cancelled_not_failed(store: SqlJobStore, dispatch: Any) -> None:
    slow = Recorder("slow")
    slow.gate = asyncio.Event()
    d = dispatch(slow)
    job = await store.submit("slow", {"n": 0})
    async with asyncio.timeout(10):
        while d.running < 1:
            await asyncio.sleep(0.02)
    record = await store.cancel(job.id)
    assert record.status is JobStatus.RUNNING and record.cancel_requested
    assert d.cancel_running(job.id)
    done = await _settled(store, job.id)
    assert done.status is JobStatus.CANCELLED and done.error is None
