"""JobService.submit's edge cases and the dispatcher's drain, over the real job store (SQLite and PostgreSQL).

- a submit whose caller is cancelled after the commit still hands the job to the dispatcher (finding 7a);
- a stopping dispatcher hands its running jobs back without counting an attempt (7b);
- idempotency keys: priority and deadline are part of what a replay must match, a mismatch reveals
  nothing, an empty key is refused naming the header, an expired key makes a new job (7e).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.config import JobsConfig
from serve_app.errors import Conflict, InvalidRequest
from serve_app.events import MemoryEventBus
from serve_app.jobs import JobRecord, JobResult, JobStatus, SqlJobStore
from serve_app.jobs.dispatcher import Dispatcher, ProgressFn
from serve_app.jobs.kinds import KindRegistry
from serve_app.jobs.kinds.base import Accepted, KindPayload
from serve_app.jobs.service import JobService, SubmitOptions


class EchoPayload(KindPayload):
    n: int


class Echo:
    """A kind whose run can be held on a gate, and that counts the runs that started."""

    name: ClassVar[str] = "echo"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[str] = []

    async def accept(self, request: Any, stages: Any) -> Accepted:
        return Accepted(EchoPayload(n=request["n"]), identity=dict(request))

    async def run(self, job: JobRecord, stages: Any, progress: ProgressFn) -> JobResult:
        self.started.append(str(job.id))
        await self.gate.wait()
        return JobResult(data={"n": job.payload["n"]})

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return set()


class HeldCommitStore(SqlJobStore):
    """Commits a submit, then holds its answer until released (a caller cancelled in that window)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, progress_interval_s=0)
        self.committed = asyncio.Event()
        self.answer = asyncio.Event()

    async def submit(self, *args: Any, **kwargs: Any) -> JobRecord:
        job = await super().submit(*args, **kwargs)
        self.committed.set()
        await self.answer.wait()
        return job


@pytest.fixture
async def kind() -> Echo:
    return Echo()


@pytest.fixture
async def made(engine: AsyncEngine) -> AsyncIterator[list[Dispatcher]]:
    dispatchers: list[Dispatcher] = []
    yield dispatchers
    for d in dispatchers:
        await d.stop()


def _service(store: SqlJobStore, kind: Echo, made: list[Dispatcher], **config: Any) -> JobService:
    registry = KindRegistry([kind])
    dispatcher = Dispatcher(
        store,
        registry,
        object(),
        lease_s=30,
        heartbeat_s=1,
        poll_interval_s=0.02,
        max_concurrent=2,  # type: ignore[arg-type]
    )
    dispatcher.start()
    made.append(dispatcher)
    return JobService(store, MemoryEventBus(), registry, object(), dispatcher, JobsConfig(**config))  # type: ignore[arg-type]


async def _until(predicate: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


# -- 7a: a cancelled submit -----------------------------------------------------------------------------------


async def test_a_submit_cancelled_after_its_commit_still_hands_the_job_to_the_dispatcher(
    engine: AsyncEngine, kind: Echo, made: list[Dispatcher]
) -> None:
    store = HeldCommitStore(engine)
    service = _service(store, kind, made)
    await asyncio.sleep(0.05)  # the dispatcher's loop is up: the submit claims the job at commit
    caller = asyncio.create_task(service.submit("echo", {"n": 1}))
    await store.committed.wait()
    caller.cancel()  # the client went away between the commit and the answer
    store.answer.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    [job] = (await store.list()).items
    assert job.status is JobStatus.RUNNING and job.lease_owner == made[0].owner  # claimed at commit
    # Without the hand-over nothing would run it until its lease expired (30 s), costing an attempt.
    await _until(lambda: _started(kind))
    kind.gate.set()
    await _until(lambda: _is(store, job.id, JobStatus.SUCCEEDED))
    assert (await store.get(job.id)).attempts == 1


async def _started(kind: Echo) -> bool:
    return bool(kind.started)


async def _is(store: SqlJobStore, job_id: Any, status: JobStatus) -> bool:
    return (await store.get(job_id)).status is status


# -- 7b: drain on shutdown --------------------------------------------------------------------------------


async def test_stopping_hands_running_jobs_back_without_counting_an_attempt(
    engine: AsyncEngine, kind: Echo, made: list[Dispatcher]
) -> None:
    store = SqlJobStore(engine, progress_interval_s=0)
    job = await store.submit("echo", {"n": 1}, max_attempts=2)
    for restart in range(3):  # more restarts than attempts: the job must never die of them
        service = _service(store, kind, made)
        await _until(lambda n=restart: _started_n(kind, n + 1))
        await service.dispatcher.stop()
        back = await store.get(job.id)
        assert back.status is JobStatus.QUEUED and back.attempts == 0 and back.lease_owner is None
        assert service.dispatcher.reserve() is None  # a stopped dispatcher claims nothing, even at commit
    last = _service(store, kind, made)
    kind.gate.set()
    await _until(lambda: _is(store, job.id, JobStatus.SUCCEEDED))
    done = await store.get(job.id)
    assert done.attempts == 1 and last.dispatcher.running == 0
    assert [e.type for e in await store.events_since(job.id)].count("released") == 3


async def _started_n(kind: Echo, n: int) -> bool:
    return len(kind.started) >= n


# -- 7e: idempotency keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "   "])
async def test_an_empty_idempotency_key_is_refused_naming_the_header(
    engine: AsyncEngine, kind: Echo, made: list[Dispatcher], key: str
) -> None:
    store = SqlJobStore(engine)
    service = _service(store, kind, made)
    with pytest.raises(InvalidRequest) as info:
        await service.submit("echo", {"n": 1}, SubmitOptions(idempotency_key=key))
    assert info.value.param == "Idempotency-Key" and info.value.status_code == 422
    assert (await store.list()).items == []
    assert made[0].queued_estimate == 0  # the queue place taken for it was given back


async def test_a_key_replayed_with_another_priority_or_deadline_is_a_conflict_that_reveals_nothing(
    engine: AsyncEngine, kind: Echo, made: list[Dispatcher]
) -> None:
    store = SqlJobStore(engine)
    service = _service(store, kind, made)
    same = SubmitOptions(idempotency_key="k", priority=1, deadline_s=60)
    first, _ = await service.submit("echo", {"n": 1}, same)
    again, _ = await service.submit("echo", {"n": 1}, same)
    assert again.id == first.id
    for other in (
        SubmitOptions(idempotency_key="k", priority=2, deadline_s=60),
        SubmitOptions(idempotency_key="k", priority=1, deadline_s=None),
        SubmitOptions(idempotency_key="k", priority=1, deadline_s=60, source="zmq"),
    ):
        if other.source == "zmq":
            assert (await service.submit("echo", {"n": 1}, other))[0].id == first.id  # the door is not the request
            continue
        with pytest.raises(Conflict) as info:
            await service.submit("echo", {"n": 1}, other)
        assert info.value.param == "Idempotency-Key" and str(first.id) not in info.value.message
    assert len((await store.list()).items) == 1


async def test_an_expired_key_makes_a_new_job(engine: AsyncEngine, kind: Echo, made: list[Dispatcher]) -> None:
    from tests.serve_app.conftest import FakeClock

    clock = FakeClock()
    store = SqlJobStore(engine, clock=clock)
    service = _service(store, kind, made, idempotency_ttl_s=3600)
    first, _ = await service.submit("echo", {"n": 1}, SubmitOptions(idempotency_key="k"))
    clock.advance(3601)
    fresh, _ = await service.submit("echo", {"n": 2}, SubmitOptions(idempotency_key="k"))
    assert fresh.id != first.id
