"""Contract suite for the job store, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.db import Image, make_engine, make_session_factory
from serve_app.events import Event
from serve_app.jobs import (
    DEADLINE_EXCEEDED,
    Backoff,
    IdempotencyConflict,
    InvalidCursor,
    JobNotFound,
    JobSource,
    JobStatus,
    LeaseLost,
    SqlJobStore,
    canonical_hash,
)

PAYLOAD = {"prompt": "a red dragon on a hoard", "seed": 7, "width": 64, "height": 64}


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def store(engine: AsyncEngine, clock: Any, events: list[Event]) -> SqlJobStore:
    async def record(event: Event) -> None:
        events.append(event)

    return SqlJobStore(
        engine,
        clock=clock,
        backoff=Backoff(base_s=2.0, cap_s=30.0, rng=random.Random(1)),
        progress_interval_s=0.25,
        on_event=record,
    )


async def _image_count(engine: AsyncEngine) -> int:
    async with make_session_factory(engine)() as session:
        return int((await session.execute(select(func.count()).select_from(Image))).scalar_one())


# -- accept -------------------------------------------------------------------------------------------------


async def test_submit_commits_before_returning(store: SqlJobStore, db_url: str, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD, priority=3)
    assert job.status is JobStatus.QUEUED
    assert job.attempts == 0 and job.priority == 3 and job.source is JobSource.HTTP
    # By default a replay must match how the job is queued too (priority, deadline), not only its payload.
    expected = {"kind": "image", "payload": PAYLOAD, "priority": 3, "deadline": None}
    assert job.body_hash == canonical_hash(expected)
    assert job.created_at == clock.now and job.next_attempt_at == clock.now
    # A second engine (another process, in effect) sees the row at once.
    other = make_engine(db_url)
    try:
        seen = await SqlJobStore(other).get(job.id)
    finally:
        await other.dispose()
    assert seen.id == job.id and seen.payload == PAYLOAD and seen.status is JobStatus.QUEUED


async def test_submit_records_a_queued_event(store: SqlJobStore, events: list[Event]) -> None:
    job = await store.submit("image", PAYLOAD)
    logged = await store.events_since(job.id)
    assert [(e.seq, e.type) for e in logged] == [(1, "queued")]
    assert events == logged
    assert job.last_seq == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"deadline": datetime(2030, 1, 1)}, "timezone-aware"),
    ],
)
async def test_submit_rejects_bad_arguments(store: SqlJobStore, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await store.submit("image", PAYLOAD, **kwargs)


async def test_submit_rejects_payload_that_is_not_json(store: SqlJobStore) -> None:
    with pytest.raises(ValueError, match="JSON"):
        await store.submit("image", {"when": object()})
    assert (await store.list()).items == []


async def test_idempotency_same_key_same_payload_returns_the_same_job(store: SqlJobStore) -> None:
    first = await store.submit("image", PAYLOAD, idempotency_key="k-1")
    again = await store.submit("image", dict(reversed(list(PAYLOAD.items()))), idempotency_key="k-1")
    assert again.id == first.id
    assert len((await store.list()).items) == 1


async def test_idempotency_same_key_different_payload_conflicts(store: SqlJobStore) -> None:
    first = await store.submit("image", PAYLOAD, idempotency_key="k-2")
    with pytest.raises(IdempotencyConflict) as info:
        await store.submit("image", {**PAYLOAD, "seed": 8}, idempotency_key="k-2")
    assert info.value.existing_job_id == str(first.id)
    with pytest.raises(IdempotencyConflict):
        await store.submit("map", PAYLOAD, idempotency_key="k-2")
    assert len((await store.list()).items) == 1


async def test_idempotency_same_key_different_priority_or_deadline_conflicts(store: SqlJobStore, clock: Any) -> None:
    soon = clock.now + timedelta(seconds=60)
    first = await store.submit("image", PAYLOAD, priority=1, deadline=soon, idempotency_key="k-q")
    assert (await store.submit("image", PAYLOAD, priority=1, deadline=soon, idempotency_key="k-q")).id == first.id
    for kwargs in ({"priority": 2, "deadline": soon}, {"priority": 1, "deadline": None}, {"priority": 1}):
        with pytest.raises(IdempotencyConflict) as info:
            await store.submit("image", PAYLOAD, idempotency_key="k-q", **kwargs)  # type: ignore[arg-type]
        # What a client sees names neither the other job nor its request.
        assert str(first.id) not in str(info.value) and "dragon" not in str(info.value)
    assert len((await store.list()).items) == 1


@pytest.mark.parametrize("key", ["", " ", "\t \n"])
async def test_an_empty_or_blank_idempotency_key_is_refused(store: SqlJobStore, key: str) -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        await store.submit("image", PAYLOAD, idempotency_key=key)
    assert (await store.list()).items == []


async def test_an_expired_idempotency_key_makes_a_new_job(store: SqlJobStore, clock: Any) -> None:
    first = await store.submit("image", PAYLOAD, idempotency_key="k-ttl", idempotency_ttl_s=3600)
    clock.advance(3599)
    assert (await store.submit("image", PAYLOAD, idempotency_key="k-ttl", idempotency_ttl_s=3600)).id == first.id
    clock.advance(2)
    # Expired: even a different request is not a conflict, it is simply a new job under the key.
    fresh = await store.submit("image", {**PAYLOAD, "seed": 9}, idempotency_key="k-ttl", idempotency_ttl_s=3600)
    assert fresh.id != first.id and fresh.idempotency_key == "k-ttl"
    old = await store.get(first.id)
    assert old.idempotency_key is None and old.payload == PAYLOAD  # the first job still answers by id
    again = await store.submit("image", {**PAYLOAD, "seed": 9}, idempotency_key="k-ttl", idempotency_ttl_s=3600)
    assert again.id == fresh.id


async def test_expired_idempotency_keys_are_released_in_bulk(store: SqlJobStore, clock: Any) -> None:
    old = [await store.submit("image", {"n": i}, idempotency_key=f"old-{i}") for i in range(3)]
    clock.advance(100)
    young = await store.submit("image", {"n": 9}, idempotency_key="young")
    assert await store.release_idempotency_keys(clock.now - timedelta(seconds=50), limit=2) == 2
    assert await store.release_idempotency_keys(clock.now - timedelta(seconds=50), limit=2) == 1
    assert [(await store.get(j.id)).idempotency_key for j in old] == [None, None, None]
    assert (await store.get(young.id)).idempotency_key == "young"


async def test_idempotency_holds_under_concurrent_submits(store: SqlJobStore) -> None:
    results = await asyncio.gather(*(store.submit("image", PAYLOAD, idempotency_key="k-race") for _ in range(8)))
    assert len({job.id for job in results}) == 1
    assert len((await store.list()).items) == 1


async def test_submit_claims_for_an_idle_dispatcher_in_the_same_transaction(
    store: SqlJobStore, clock: Any, events: list[Event]
) -> None:
    job = await store.submit("image", PAYLOAD, claim_for=("d1", 30.0))
    assert job.status is JobStatus.RUNNING and job.attempts == 1 and job.lease_owner == "d1"
    assert job.started_at == job.created_at == clock.now
    assert [(e.seq, e.type) for e in await store.events_since(job.id)] == [(1, "queued"), (2, "started")]
    assert [e.type for e in events] == ["queued", "started"]
    assert await store.claim("d2", lease_s=30) == []  # nobody else takes it
    assert (await store.complete(job.id, "d1", None)).status is JobStatus.SUCCEEDED


async def test_submit_does_not_claim_past_a_job_that_comes_first(store: SqlJobStore, clock: Any) -> None:
    first = await store.submit("image", {**PAYLOAD, "n": 1}, priority=5)
    clock.advance(1)
    same = await store.submit("image", {**PAYLOAD, "n": 2}, priority=5, claim_for=("d1", 30.0))
    lower = await store.submit("image", {**PAYLOAD, "n": 3}, priority=1, claim_for=("d1", 30.0))
    assert same.status is JobStatus.QUEUED and lower.status is JobStatus.QUEUED  # an older job of equal rank
    soon = clock.now + timedelta(seconds=60)
    urgent = await store.submit("image", {**PAYLOAD, "n": 4}, priority=5, deadline=soon, claim_for=("d1", 30.0))
    higher = await store.submit("image", {**PAYLOAD, "n": 5}, priority=9, claim_for=("d1", 30.0))
    assert urgent.status is JobStatus.RUNNING  # same priority, but a deadline goes before none
    assert higher.status is JobStatus.RUNNING
    assert [j.id for j in await store.claim("d2", lease_s=30, limit=5)] == [first.id, same.id, lower.id]


async def test_submit_with_a_repeated_key_never_claims_the_earlier_job(store: SqlJobStore) -> None:
    first = await store.submit("image", PAYLOAD, idempotency_key="k")
    again = await store.submit("image", PAYLOAD, idempotency_key="k", claim_for=("d1", 30.0))
    assert again.id == first.id and again.status is JobStatus.QUEUED and again.lease_owner is None


async def test_get_unknown_or_malformed_id_is_not_found(store: SqlJobStore) -> None:
    with pytest.raises(JobNotFound):
        await store.get(uuid.uuid4())
    with pytest.raises(JobNotFound):
        await store.get("not-a-uuid")


# -- claim ----------------------------------------------------------------------------------------------------


async def test_claim_orders_by_priority_then_deadline_then_age(store: SqlJobStore, clock: Any) -> None:
    soon = clock.now + timedelta(hours=1)
    later = clock.now + timedelta(hours=2)
    made: dict[str, uuid.UUID] = {}
    for name, priority, deadline in [
        ("low-old", 0, None),
        ("high-no-deadline", 5, None),
        ("high-later", 5, later),
        ("low-new", 0, None),
        ("high-soon", 5, soon),
        ("mid", 2, None),
    ]:
        made[name] = (await store.submit("image", {"n": name}, priority=priority, deadline=deadline)).id
        clock.advance(1)
    claimed = await store.claim("d1", lease_s=30, limit=10)
    order = {v: k for k, v in made.items()}
    assert [order[j.id] for j in claimed] == [
        "high-soon",
        "high-later",
        "high-no-deadline",
        "mid",
        "low-old",
        "low-new",
    ]
    assert all(j.status is JobStatus.RUNNING and j.attempts == 1 and j.lease_owner == "d1" for j in claimed)
    assert all(j.lease_expires_at == clock.now + timedelta(seconds=30) for j in claimed)
    assert await store.claim("d2", lease_s=30, limit=10) == []


async def test_claim_respects_limit(store: SqlJobStore) -> None:
    for n in range(5):
        await store.submit("image", {"n": n})
    assert len(await store.claim("d1", lease_s=30, limit=2)) == 2
    assert len(await store.claim("d1", lease_s=30, limit=10)) == 3
    assert await store.claim("d1", lease_s=30, limit=0) == []


async def test_claim_records_a_started_event(store: SqlJobStore) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=30)
    logged = await store.events_since(job.id)
    assert [e.type for e in logged] == ["queued", "started"]
    assert logged[1].data == {"attempt": 1, "max_attempts": 3, "reclaimed": False, "backend": "local"}


async def test_lease_expiry_makes_a_job_claimable_again(store: SqlJobStore, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD)
    [first] = await store.claim("dead-runner", lease_s=10)
    clock.advance(9)
    assert await store.claim("d2", lease_s=10) == []  # lease still live
    clock.advance(2)
    [again] = await store.claim("d2", lease_s=10)
    assert again.id == job.id == first.id
    assert again.attempts == 2 and again.lease_owner == "d2"
    assert (await store.events_since(job.id))[-1].data["reclaimed"] is True
    # The runner that lost its lease cannot finish the job; the new holder can, once.
    with pytest.raises(LeaseLost):
        await store.complete(job.id, "dead-runner")
    done = await store.complete(job.id, "d2")
    assert done.status is JobStatus.SUCCEEDED


async def test_expired_lease_without_attempts_left_is_dead(store: SqlJobStore, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD, max_attempts=2)
    await store.claim("d1", lease_s=5)
    clock.advance(6)
    await store.claim("d1", lease_s=5)
    clock.advance(6)
    assert await store.claim("d1", lease_s=5) == []
    dead = await store.get(job.id)
    assert dead.status is JobStatus.DEAD
    assert dead.attempts == 2
    assert "lease expired" in (dead.error or "")
    last = (await store.events_since(job.id))[-1]
    assert (last.type, last.data["status"]) == ("failed", "dead")


async def test_an_expired_lease_past_the_deadline_fails_instead_of_running_again(
    store: SqlJobStore, clock: Any, events: list[Event]
) -> None:
    """A runner died after its job started; by the time the lease expires the deadline has passed (the bridge
    answered with its fallback already): the job fails "deadline exceeded" instead of running again."""
    late = await store.submit("image", {"n": 1}, deadline=clock.now + timedelta(seconds=15))
    timely = await store.submit("image", {"n": 2}, deadline=clock.now + timedelta(seconds=60))
    [a, b] = await store.claim("dead-runner", lease_s=10, limit=2)
    assert {a.id, b.id} == {late.id, timely.id}
    clock.advance(20)  # both leases expired; only the first job's deadline passed
    [again] = await store.claim("d2", lease_s=10, limit=5)
    assert again.id == timely.id and again.attempts == 2
    failed = await store.get(late.id)
    assert failed.status is JobStatus.FAILED and failed.error == DEADLINE_EXCEEDED and failed.attempts == 1
    assert failed.error_type == "deadline_exceeded" and failed.lease_expires_at is None
    last = (await store.events_since(late.id))[-1]
    assert (last.type, last.data["error"]) == ("failed", DEADLINE_EXCEEDED)
    with pytest.raises(LeaseLost):
        await store.complete(late.id, "dead-runner")


async def test_release_hands_a_job_back_without_counting_its_attempt(store: SqlJobStore, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD, max_attempts=2)
    for _ in range(3):  # three restarts of the runner's replica: more than max_attempts
        [claimed] = await store.claim("d1", lease_s=10)
        await store.progress(job.id, 1, 4, owner="d1")
        released = await store.release(job.id, "d1")
        assert released.status is JobStatus.QUEUED and released.attempts == 0
        assert released.lease_owner is None and released.progress_step is None
        assert released.next_attempt_at == clock.now  # runnable at once, by another replica
    [claimed] = await store.claim("d2", lease_s=10)
    assert claimed.attempts == 1
    assert (await store.complete(job.id, "d2")).status is JobStatus.SUCCEEDED
    types = [e.type for e in await store.events_since(job.id)]
    assert types.count("released") == 3 and types[-1] == "succeeded"
    with pytest.raises(LeaseLost):
        await store.release(job.id, "d2")  # finished: nothing to hand back


async def test_release_of_a_job_whose_cancel_was_asked_cancels_it(store: SqlJobStore) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=10)
    await store.cancel(job.id)
    assert (await store.release(job.id, "d1")).status is JobStatus.CANCELLED
    with pytest.raises(LeaseLost):
        await store.release((await store.submit("image", {"n": 1})).id, "d1")  # queued: not held


async def test_release_all_hands_back_only_what_the_owner_holds_live(store: SqlJobStore, clock: Any) -> None:
    mine = [await store.submit("image", {"n": n}) for n in range(3)]
    await store.claim("d1", lease_s=10, limit=3)
    theirs = await store.submit("image", {"n": 9})
    await store.claim("d2", lease_s=30, limit=1)
    await store.cancel(mine[2].id)
    finished = await store.submit("image", {"n": 10})
    [done] = await store.claim("d1", lease_s=10)
    await store.complete(done.id, "d1")
    released = await store.release_all("d1")
    assert sorted(str(r.id) for r in released) == sorted(str(j.id) for j in mine)
    statuses = {str(r.id): r.status for r in released}
    assert statuses[str(mine[0].id)] is JobStatus.QUEUED and statuses[str(mine[2].id)] is JobStatus.CANCELLED
    assert all(r.attempts == 0 and r.lease_owner is None for r in released if r.status is JobStatus.QUEUED)
    assert (await store.get(theirs.id)).status is JobStatus.RUNNING  # another owner's lease: untouched
    assert (await store.get(finished.id)).status is JobStatus.SUCCEEDED
    assert [e.type for e in await store.events_since(mine[0].id)][-1] == "released"
    assert await store.release_all("d1") == []  # nothing held any more
    clock.advance(60)  # d2's lease expired: an expired lease is not d2's to hand back
    assert await store.release_all("d2") == []


async def test_counts_of_some_statuses(store: SqlJobStore) -> None:
    for n in range(3):
        await store.submit("image", {"n": n})
    await store.claim("d1", lease_s=10)
    assert (await store.counts([JobStatus.QUEUED]))[JobStatus.QUEUED] == 2
    assert (await store.counts([JobStatus.QUEUED]))[JobStatus.RUNNING] == 0  # not counted
    assert (await store.counts())[JobStatus.RUNNING] == 1


async def test_heartbeat_extends_the_lease(store: SqlJobStore, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=10)
    clock.advance(8)
    beat = await store.heartbeat(job.id, "d1", lease_s=10)
    assert beat.lease_expires_at == clock.now + timedelta(seconds=10)
    clock.advance(8)
    assert await store.claim("d2", lease_s=10) == []
    with pytest.raises(LeaseLost):
        await store.heartbeat(job.id, "d2", lease_s=10)
    clock.advance(3)
    with pytest.raises(LeaseLost):
        await store.heartbeat(job.id, "d1", lease_s=10)  # expired: no longer held


async def test_claim_skips_jobs_not_yet_due_or_past_deadline(store: SqlJobStore, clock: Any) -> None:
    late = await store.submit("image", {"n": 1}, deadline=clock.now + timedelta(seconds=5))
    clock.advance(10)
    assert await store.claim("d1", lease_s=10) == []
    assert (await store.get(late.id)).status is JobStatus.QUEUED


# -- finish ---------------------------------------------------------------------------------------------------


async def test_complete_is_exactly_once(store: SqlJobStore, engine: AsyncEngine) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=30)
    image = Image(kind="image", width=64, height=64, content_hash="ab" * 32, format="png", prompt="x")
    done = await store.complete(job.id, "d1", image=image)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result_image_id == image.id and done.progress == 1.0 and done.finished_at is not None
    with pytest.raises(LeaseLost):
        await store.complete(job.id, "d1", image_id=uuid.uuid4())
    assert (await store.get(job.id)).result_image_id == image.id
    assert await _image_count(engine) == 1
    assert [e.type for e in await store.events_since(job.id)] == ["queued", "started", "succeeded"]


async def test_complete_without_the_lease_leaves_no_image_row(
    store: SqlJobStore, engine: AsyncEngine, clock: Any
) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=5)
    clock.advance(6)
    await store.claim("d2", lease_s=5)
    image = Image(kind="image", width=64, height=64, content_hash="cd" * 32, format="png")
    with pytest.raises(LeaseLost):
        await store.complete(job.id, "d1", image=image)
    assert await _image_count(engine) == 0


async def test_transient_failures_retry_with_backoff_then_die(store: SqlJobStore, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD, max_attempts=3)
    for attempt in (1, 2):
        [claimed] = await store.claim("d1", lease_s=30)
        assert claimed.attempts == attempt
        failed_at = clock.now
        retry = await store.fail(job.id, "d1", "replica died", transient=True)
        assert retry.status is JobStatus.QUEUED and retry.error == "replica died"
        ceiling = Backoff(base_s=2.0, cap_s=30.0).ceiling(attempt)
        assert failed_at <= retry.next_attempt_at <= failed_at + timedelta(seconds=ceiling)
        # Not runnable before its backoff is over.
        if retry.next_attempt_at > clock.now:
            clock.now = retry.next_attempt_at - timedelta(milliseconds=1)
            assert await store.claim("d1", lease_s=30) == []
        clock.now = retry.next_attempt_at
    await store.claim("d1", lease_s=30)
    dead = await store.fail(job.id, "d1", "replica died again", transient=True)
    assert dead.status is JobStatus.DEAD and dead.attempts == 3 and dead.error == "replica died again"
    assert [e.type for e in await store.events_since(job.id)] == [
        "queued",
        "started",
        "retrying",
        "started",
        "retrying",
        "started",
        "failed",
    ]
    assert await store.claim("d1", lease_s=30) == []


async def test_permanent_failure_fails_at_once(store: SqlJobStore) -> None:
    job = await store.submit("image", PAYLOAD, max_attempts=5)
    await store.claim("d1", lease_s=30)
    failed = await store.fail(job.id, "d1", "width must be a multiple of 8", transient=False)
    assert failed.status is JobStatus.FAILED and failed.attempts == 1
    assert failed.error == "width must be a multiple of 8"
    last = (await store.events_since(job.id))[-1]
    assert (last.type, last.data["status"], last.data["error"]) == ("failed", "failed", failed.error)
    with pytest.raises(LeaseLost):
        await store.fail(job.id, "d1", "again", transient=True)


async def test_backoff_delays_are_full_jitter_within_the_cap() -> None:
    backoff = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(3))
    assert [backoff.ceiling(n) for n in (1, 2, 3, 4, 5, 100)] == [1, 2, 4, 8, 8, 8]
    delays = [backoff.delay(4) for _ in range(500)]
    assert all(0 <= d <= 8 for d in delays)
    assert min(delays) < 1 and max(delays) > 7  # spread over the whole range, not clustered at the top
    with pytest.raises(ValueError):
        backoff.ceiling(0)


# -- cancel and deadlines -------------------------------------------------------------------------------------


async def test_cancel_queued_is_immediate(store: SqlJobStore) -> None:
    job = await store.submit("image", PAYLOAD)
    cancelled = await store.cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None
    assert await store.claim("d1", lease_s=30) == []
    assert [e.type for e in await store.events_since(job.id)] == ["queued", "cancelled"]


async def test_cancel_running_asks_the_runner_to_stop(store: SqlJobStore, events: list[Event]) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=30)
    asked = await store.cancel(job.id)
    assert asked.status is JobStatus.RUNNING and asked.cancel_requested
    assert events[-1].type == "cancel_requested"
    assert (await store.cancel(job.id)).cancel_requested  # asking twice is harmless
    assert (await store.heartbeat(job.id, "d1", lease_s=30)).cancel_requested
    stopped = await store.mark_cancelled(job.id, "d1")
    assert stopped.status is JobStatus.CANCELLED
    assert [e.type for e in await store.events_since(job.id)] == [
        "queued",
        "started",
        "cancel_requested",
        "cancelled",
    ]


async def test_a_failure_after_cancel_ends_cancelled(store: SqlJobStore) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=30)
    await store.cancel(job.id)
    ended = await store.fail(job.id, "d1", "interrupted", transient=True)
    assert ended.status is JobStatus.CANCELLED


async def test_a_cancelled_job_whose_runner_died_is_settled_on_claim(store: SqlJobStore, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=5)
    await store.cancel(job.id)
    clock.advance(6)
    assert await store.claim("d2", lease_s=5) == []
    assert (await store.get(job.id)).status is JobStatus.CANCELLED


async def test_cancel_leaves_finished_jobs_alone(store: SqlJobStore) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=30)
    await store.complete(job.id, "d1")
    assert (await store.cancel(job.id)).status is JobStatus.SUCCEEDED
    with pytest.raises(JobNotFound):
        await store.cancel(uuid.uuid4())


async def test_cancel_where_clears_one_source(store: SqlJobStore) -> None:
    zmq_running = await store.submit("image", {"n": 0}, source="zmq", priority=9)
    await store.claim("bridge", lease_s=30)
    zmq_queued = [(await store.submit("image", {"n": n}, source=JobSource.ZMQ)).id for n in (1, 2)]
    http_queued = await store.submit("image", {"n": 3})

    cleared = await store.cancel_where(source="zmq")
    assert sorted(cleared) == sorted(zmq_queued)
    assert (await store.get(zmq_running.id)).status is JobStatus.RUNNING
    assert (await store.get(http_queued.id)).status is JobStatus.QUEUED

    asked = await store.cancel_where(source="zmq", statuses=("queued", "running"))
    assert asked == [zmq_running.id]
    assert (await store.get(zmq_running.id)).cancel_requested


async def test_expire_deadlines_fails_late_queued_jobs(store: SqlJobStore, clock: Any) -> None:
    late = await store.submit("image", {"n": 1}, deadline=clock.now + timedelta(seconds=30))
    running = await store.submit("image", {"n": 2}, deadline=clock.now + timedelta(seconds=30), priority=9)
    await store.claim("d1", lease_s=300)
    open_ended = await store.submit("image", {"n": 3})
    clock.advance(29)
    assert await store.expire_deadlines() == []
    clock.advance(2)
    assert await store.expire_deadlines() == [late.id]
    expired = await store.get(late.id)
    assert expired.status is JobStatus.FAILED and expired.error == DEADLINE_EXCEEDED
    assert (await store.get(running.id)).status is JobStatus.RUNNING  # started in time
    assert (await store.get(open_ended.id)).status is JobStatus.QUEUED
    last = (await store.events_since(late.id))[-1]
    assert (last.type, last.data["error"]) == ("failed", DEADLINE_EXCEEDED)


# -- progress and events --------------------------------------------------------------------------------------


async def test_progress_writes_are_throttled_but_the_last_step_always_lands(store: SqlJobStore, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=30)
    assert await store.progress(job.id, 1, 10, owner="d1")
    assert not await store.progress(job.id, 2, 10)
    clock.advance(0.1)
    assert not await store.progress(job.id, 3, 10)
    clock.advance(0.2)
    assert await store.progress(job.id, 4, 10)
    assert await store.progress(job.id, 10, 10)
    row = await store.get(job.id)
    assert (row.progress_step, row.progress_total, row.progress) == (10, 10, 1.0)
    steps = [e.data["step"] for e in await store.events_since(job.id) if e.type == "progress"]
    assert steps == [1, 4, 10]


async def test_complete_records_the_last_step_when_progress_stopped_short(store: SqlJobStore) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=30)
    assert await store.progress(job.id, 3, 8, owner="d1")
    done = await store.complete(job.id, "d1", None)
    assert (done.progress_step, done.progress_total, done.progress) == (8, 8, 1.0)
    tail = [(e.type, e.data.get("step")) for e in await store.events_since(job.id)][-3:]
    assert tail == [("progress", 3), ("progress", 8), ("succeeded", None)]
    # A job that never reported progress (answered from the cache) gets no invented progress event.
    other = await store.submit("image", {**PAYLOAD, "n": 2})
    await store.claim("d1", lease_s=30)
    await store.complete(other.id, "d1", None)
    assert [e.type for e in await store.events_since(other.id)] == ["queued", "started", "succeeded"]


async def test_progress_checks_owner_and_state(store: SqlJobStore, clock: Any) -> None:
    job = await store.submit("image", PAYLOAD)
    assert not await store.progress(job.id, 1, 10)  # not running yet
    await store.claim("d1", lease_s=30)
    with pytest.raises(LeaseLost):
        await store.progress(job.id, 1, 10, owner="someone-else")
    with pytest.raises(ValueError, match="step"):
        await store.progress(job.id, 11, 10)
    with pytest.raises(ValueError, match="total"):
        await store.progress(job.id, 0, 0)


async def test_events_resume_from_a_seq(store: SqlJobStore, clock: Any, events: list[Event]) -> None:
    job = await store.submit("image", PAYLOAD)
    await store.claim("d1", lease_s=30)
    for step in (1, 2, 3):
        clock.advance(1)
        await store.progress(job.id, step, 3)
    await store.append_event(job.id, "stage", {"stage": "enhance"})
    await store.complete(job.id, "d1")
    logged = await store.events_since(job.id)
    assert [e.seq for e in logged] == list(range(1, 8))  # gap-free
    assert [e.type for e in logged] == [
        "queued",
        "started",
        "progress",
        "progress",
        "progress",
        "stage",
        "succeeded",
    ]
    assert logged == events  # the hook saw exactly what the log holds, in order
    resumed = await store.events_since(job.id, after_seq=4)
    assert [e.seq for e in resumed] == [5, 6, 7]
    assert [e.seq for e in await store.events_since(job.id, after_seq=4, limit=2)] == [5, 6]
    assert await store.events_since(job.id, after_seq=7) == []
    assert (await store.get(job.id)).last_seq == 7
    with pytest.raises(JobNotFound):
        await store.events_since(uuid.uuid4())


async def test_a_failing_event_hook_does_not_undo_the_transition(engine: AsyncEngine, clock: Any) -> None:
    async def broken(event: Event) -> None:
        raise RuntimeError("bus down")

    store = SqlJobStore(engine, clock=clock, on_event=broken)
    job = await store.submit("image", PAYLOAD)
    assert (await store.get(job.id)).status is JobStatus.QUEUED
    assert [e.type for e in await store.events_since(job.id)] == ["queued"]


async def test_concurrent_events_get_unique_sequence_numbers(store: SqlJobStore) -> None:
    job = await store.submit("image", PAYLOAD)
    await asyncio.gather(*(store.append_event(job.id, "note", {"i": i}) for i in range(20)))
    seqs = [e.seq for e in await store.events_since(job.id)]
    assert seqs == list(range(1, 22))


# -- listing ---------------------------------------------------------------------------------------------------


async def test_list_pages_newest_first_with_an_opaque_cursor(store: SqlJobStore, clock: Any) -> None:
    made = []
    for n in range(7):
        made.append((await store.submit("image", {"n": n})).id)
        if n % 2:  # some jobs share a creation time: the cursor must still not skip or repeat any
            clock.advance(1)
    seen: list[uuid.UUID] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list(limit=3, cursor=cursor)
        seen += [j.id for j in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert sorted(seen) == sorted(made) and len(seen) == 7
    created = [(await store.get(i)).created_at for i in seen]
    assert created == sorted(created, reverse=True)


async def test_list_filters_by_status(store: SqlJobStore) -> None:
    a = await store.submit("image", {"n": 1}, priority=1)
    b = await store.submit("image", {"n": 2})
    await store.claim("d1", lease_s=30)
    assert [j.id for j in (await store.list(status="running")).items] == [a.id]
    assert [j.id for j in (await store.list(status=JobStatus.QUEUED)).items] == [b.id]
    both = await store.list(status=["queued", "running"])
    assert {j.id for j in both.items} == {a.id, b.id}
    counts = await store.counts()
    assert counts[JobStatus.RUNNING] == 1 and counts[JobStatus.QUEUED] == 1 and counts[JobStatus.DEAD] == 0


@pytest.mark.parametrize("cursor", ["garbage", "e30", "WyJ4IiwgInkiXQ"])
async def test_list_rejects_a_foreign_cursor(store: SqlJobStore, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await store.list(cursor=cursor)


async def test_list_rejects_bad_limits(store: SqlJobStore) -> None:
    for limit in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            await store.list(limit=limit)
