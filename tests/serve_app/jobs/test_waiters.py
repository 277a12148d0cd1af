"""Waiters wake on the job's events, not on a polling loop (finding 4 of issue 8), over the real job store
(SQLite and PostgreSQL) and the in-process bus.

Database load is measured by counting the statements the engine executes (SQLAlchemy's
``before_cursor_execute``), against what each waiter is expected to read: once when it starts, once more
when the job finishes, and otherwise only every ``wait_poll_s``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.config import JobsConfig
from serve_app.events import Event, MemoryEventBus, SubscriptionLagged
from serve_app.events.memory import MemorySubscription
from serve_app.jobs import JobStatus, SqlJobStore
from serve_app.jobs.service import JobService


class Statements:
    """Counts the statements an engine executes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self._engine = engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1

    async def of(self, call: Callable[[], Awaitable[Any]]) -> int:
        """How many statements ``call`` executes."""
        before = self.count
        await call()
        return self.count - before

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.fixture
async def statements(engine: AsyncEngine) -> AsyncIterator[Statements]:
    counter = Statements(engine)
    yield counter
    counter.close()


def _service(store: SqlJobStore, bus: Any, wait_poll_s: float) -> JobService:
    # Waiting needs only the store and the bus; the kinds, stages and dispatcher serve submit and cancel.
    return JobService(store, bus, object(), object(), object(), JobsConfig(), wait_poll_s=wait_poll_s)  # type: ignore[arg-type]


async def _follow(jobs: JobService, job_id: uuid.UUID) -> list[Event]:
    return [e async for e in jobs.events_of(str(job_id), 0)]


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(3000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


async def test_many_idle_waiters_leave_the_database_alone(engine: AsyncEngine, statements: Statements) -> None:
    bus = MemoryEventBus()
    store = SqlJobStore(engine, on_event=bus.publish)
    jobs = _service(store, bus, wait_poll_s=3600)  # the fallback never comes due in this test
    job = await store.submit("echo", {"n": 1})
    per_get = await statements.of(lambda: store.get(job.id))
    per_log = await statements.of(lambda: store.events_since(job.id, 0))
    n = 100  # of each: 100 waiting for the result, 100 following the SSE events

    start = statements.count
    waiters = [asyncio.create_task(jobs.wait(job.id, timeout_s=3600)) for _ in range(n)]
    followers = [asyncio.create_task(_follow(jobs, job.id)) for _ in range(n)]
    # A waiter reads the job once; a follower reads the job, then its log.
    started = n * per_get + n * (per_get + per_log)
    await _until(lambda: statements.count - start >= started, "every waiter to read the job once")
    await _until(lambda: len(bus._subscribers.get(str(job.id), ())) == 2 * n, "every waiter to subscribe")

    idle = statements.count
    await asyncio.sleep(1.5)  # a window in which a 0.5 s (1 s for SSE) polling loop would read 400 times
    assert statements.count - idle == 0
    assert statements.count - start == started  # nothing beyond the first reads, however many waiters

    finishing = statements.count
    await store.cancel(job.id)  # a queued job: cancelled at once, and its event published
    done = await asyncio.gather(*waiters)
    assert {j.status for j in done} == {JobStatus.CANCELLED}
    streams = await asyncio.gather(*followers)
    assert all([e.type for e in s] == ["queued", "cancelled"] for s in streams)
    # One read per result waiter on the final event (plus the cancel's own few statements); a follower takes
    # the final event from the bus and reads nothing.
    assert n * per_get <= statements.count - finishing <= n * per_get + 10


async def test_without_events_the_fallback_read_finds_the_finished_job(engine: AsyncEngine) -> None:
    bus = MemoryEventBus()
    store = SqlJobStore(engine)  # publishes nowhere: as if the job ran on a replica this bus does not reach
    jobs = _service(store, bus, wait_poll_s=0.1)
    job = await store.submit("echo", {"n": 1})
    waiter = asyncio.create_task(jobs.wait(job.id, timeout_s=60))
    follower = asyncio.create_task(_follow(jobs, job.id))
    await _until(lambda: len(bus._subscribers.get(str(job.id), ())) == 2, "both to subscribe")
    await store.cancel(job.id)
    assert (await waiter).status is JobStatus.CANCELLED
    assert [e.type for e in await follower] == ["queued", "cancelled"]


async def test_live_events_do_not_each_read_the_log(engine: AsyncEngine) -> None:
    bus = MemoryEventBus()
    reads: list[int] = []

    class CountingStore(SqlJobStore):
        async def events_since(self, job_id: Any, after_seq: int = 0, *, limit: int | None = None) -> list[Event]:
            reads.append(after_seq)
            return await super().events_since(job_id, after_seq, limit=limit)

    store = CountingStore(engine, on_event=bus.publish, progress_interval_s=0)
    jobs = _service(store, bus, wait_poll_s=3600)
    job = await store.submit("echo", {"n": 1})
    [claimed] = await store.claim("runner", lease_s=60)
    follower = asyncio.create_task(_follow(jobs, job.id))
    await _until(lambda: len(bus._subscribers.get(str(job.id), ())) == 1, "the follower to subscribe")
    for step in range(1, 21):
        await store.progress(claimed.id, step, 20, owner="runner")
    await store.complete(claimed.id, "runner", result=None)
    events = await follower
    assert [e.type for e in events] == ["queued", "started"] + ["progress"] * 20 + ["succeeded"]
    assert [e.seq for e in events] == list(range(1, 24))
    assert reads == [0]  # the log once, at the start; then every event live


class LaggingBus(MemoryEventBus):
    """A bus whose subscriptions always report that they fell behind (Redis down, say)."""

    def subscribe(self, job_id: str | None = None) -> MemorySubscription:
        sub = super().subscribe(job_id)

        async def lagged(timeout: float | None) -> Event | None:
            raise SubscriptionLagged(job_id, None)

        sub.get = lagged  # type: ignore[method-assign]
        return sub


async def test_a_failing_bus_turns_into_slow_polling_not_a_busy_loop(
    engine: AsyncEngine, statements: Statements
) -> None:
    bus = LaggingBus()
    store = SqlJobStore(engine, on_event=bus.publish)
    poll = 0.2
    jobs = _service(store, bus, wait_poll_s=poll)
    job = await store.submit("echo", {"n": 1})
    per_get = await statements.of(lambda: store.get(job.id))
    loop = asyncio.get_running_loop()
    start, began = statements.count, loop.time()
    waited = await jobs.wait(job.id, timeout_s=1.0)
    elapsed = loop.time() - began
    assert waited.status is JobStatus.QUEUED  # it timed out, as nothing finished it
    reads = (statements.count - start) / per_get
    # At most one read per poll interval that passed, besides the first and the last (as the wait ends): a
    # busy loop would read thousands.
    assert 2 <= reads <= elapsed / poll + 3
