"""Jobs and tenants on SQLite and PostgreSQL: the claim is fair between tenants within a priority, the dispatcher
runs each attempt in its job's tenant scope (so what it stores is that tenant's) with the job in the log context,
the result cache is per tenant, and the dispatcher and the stages record their metrics. Real databases and the real
generate kind over a fake generator of our own streaming interface; no mocks."""

from __future__ import annotations

import asyncio
import collections
import io
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncEngine

import serve_app.jobs.sql as sql_module
from deployments.composer import Composer
from serve_app.auth.tenant import current_tenant, tenant_scope
from serve_app.config import AppConfig, ComposerConfig, Settings
from serve_app.db import make_engine
from serve_app.images import ImageNotFound, ImageRepository
from serve_app.jobs import JobRecord, JobResult, JobStatus, SqlJobStore
from serve_app.jobs.backoff import Backoff
from serve_app.jobs.dispatcher import Dispatcher, ProgressFn
from serve_app.jobs.kinds import GenerateKind, GenerateRequest, KindRegistry
from serve_app.jobs.stages import Stages, result_key
from serve_app.observability.logs import current_context
from serve_app.observability.metrics import RecordingMetrics, use_metrics
from serve_app.schemas import ComposedRequest, GeneratedImage, PartialRequest
from serve_app.services import Services, open_services
from tests.serve_app.conftest import FakeClock

# -- fairness in the store ----------------------------------------------------------------------------------------


async def _submit(store: SqlJobStore, clock: FakeClock, tenant: str, count: int, priority: int = -1) -> list[Any]:
    jobs = []
    with tenant_scope(tenant):
        for i in range(count):
            jobs.append(await store.submit("work", {"tenant": tenant, "i": i}, priority=priority))
            clock.advance(0.001)  # distinct creation times: age order is defined
    return jobs


async def _drain_one_at_a_time(store: SqlJobStore, clock: FakeClock) -> list[uuid.UUID]:
    """Claims one job at a time (one runner slot), finishing each before the next claim; the claim order."""
    order: list[uuid.UUID] = []
    while claimed := await store.claim("runner", lease_s=30):
        (job,) = claimed
        order.append(job.id)
        await store.complete(job.id, "runner")
        clock.advance(1)
    return order


async def test_a_burst_of_one_tenant_does_not_starve_another(engine: AsyncEngine, clock: FakeClock) -> None:
    store = SqlJobStore(engine, clock=clock, progress_interval_s=0)
    burst = await _submit(store, clock, "a", 20)
    late = await _submit(store, clock, "b", 2)
    order = await _drain_one_at_a_time(store, clock)
    # Computed by hand: both tenants wait from the second claim on, so they alternate until b has none left,
    # each tenant's own jobs in age order; the first claim is a's (nothing of either had started: the oldest).
    a, b = [j.id for j in burst], [j.id for j in late]
    assert order == [a[0], b[0], a[1], b[1], *a[2:]]
    assert [order.index(job_id) + 1 for job_id in b] == [2, 4]  # not 21 and 22, as by age alone


async def test_one_claim_of_several_jobs_takes_the_tenants_in_turn(
    engine: AsyncEngine, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_module, "_PROBES", 2)  # three tenants: their last starts are read in two statements
    store = SqlJobStore(engine, clock=clock, progress_interval_s=0)
    with tenant_scope("b"):  # b was served before: its first waiting job comes after c's, which never was
        done = await store.submit("work", {"i": -1}, priority=-1)
    await store.claim("runner", lease_s=30)
    await store.complete(done.id, "runner")
    clock.advance(1)
    a = [j.id for j in await _submit(store, clock, "a", 5)]
    b = [j.id for j in await _submit(store, clock, "b", 2)]
    c = [j.id for j in await _submit(store, clock, "c", 1)]
    claimed = [j.id for j in await store.claim("runner", lease_s=30, limit=6)]
    assert claimed == [a[0], c[0], b[0], a[1], b[1], a[2]]


async def test_the_tenant_with_fewer_running_jobs_goes_first(engine: AsyncEngine, clock: FakeClock) -> None:
    store = SqlJobStore(engine, clock=clock, progress_interval_s=0)
    a = [j.id for j in await _submit(store, clock, "a", 4)]
    assert [j.id for j in await store.claim("runner", lease_s=600, limit=2)] == a[:2]  # a now runs two
    b = [j.id for j in await _submit(store, clock, "b", 2)]
    (first,) = await store.claim("runner", lease_s=600)
    await store.complete(first.id, "runner")
    clock.advance(1)
    # b started a job after a's last start, but a still runs two against b's none: b again.
    (second,) = await store.claim("runner", lease_s=600)
    assert (first.id, second.id) == (b[0], b[1])


async def test_priority_comes_before_fairness(engine: AsyncEngine, clock: FakeClock) -> None:
    store = SqlJobStore(engine, clock=clock, progress_interval_s=0)
    low_b = await _submit(store, clock, "b", 2, priority=0)
    high_a = await _submit(store, clock, "a", 3, priority=5)
    claimed = [j.id for j in await store.claim("runner", lease_s=30, limit=4)]
    assert claimed == [*(j.id for j in high_a), low_b[0].id]


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


async def test_concurrent_fair_claims_never_run_one_job_twice(engine: AsyncEngine, db_url: str) -> None:
    producer = SqlJobStore(engine)
    ids = set()
    for n in range(120 if engine.dialect.name == "postgresql" else 60):
        with tenant_scope(f"t{n % 3}"):
            ids.add((await producer.submit("work", {"n": n}, priority=n % 2)).id)
    engines = [make_engine(db_url), make_engine(db_url)]  # two dispatchers, each its own pool, four workers each
    executions: collections.Counter[uuid.UUID] = collections.Counter()
    try:
        stores = [SqlJobStore(e) for e in engines]
        await asyncio.gather(*(_dispatcher(stores[d], f"d{d}-w{w}", executions) for d in range(2) for w in range(4)))
    finally:
        for e in engines:
            await e.dispose()
    assert set(executions) == ids and max(executions.values()) == 1
    assert (await producer.counts())[JobStatus.SUCCEEDED] == len(ids)


# -- the dispatcher -----------------------------------------------------------------------------------------------


class Recorder:
    """A kind that records the order it ran jobs in, the scope and the log context of each."""

    name: ClassVar[str] = "work"

    def __init__(self) -> None:
        self.ran: list[tuple[uuid.UUID, str | None, dict[str, str]]] = []
        self.gate: asyncio.Event | None = None

    async def accept(self, request: Any, stages: Any) -> Any:  # pragma: no cover - not used here
        raise NotImplementedError

    async def run(self, job: JobRecord, stages: Any, progress: ProgressFn) -> JobResult:
        self.ran.append((job.id, current_tenant(), current_context()))
        if self.gate is not None:
            await self.gate.wait()
        return JobResult()

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return set()


class Flaky:
    """Fails transiently every time."""

    name: ClassVar[str] = "flaky"

    async def accept(self, request: Any, stages: Any) -> Any:  # pragma: no cover - not used here
        raise NotImplementedError

    async def run(self, job: JobRecord, stages: Any, progress: ProgressFn) -> JobResult:
        raise RuntimeError("replica died")

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return set()


@pytest.fixture
async def dispatch() -> AsyncIterator[Any]:
    made: list[Dispatcher] = []

    def make(store: SqlJobStore, *kinds: Any, stages: Any = None, max_concurrent: int = 4) -> Dispatcher:
        d = Dispatcher(
            store,
            KindRegistry(kinds),
            stages,
            lease_s=10,
            heartbeat_s=1,
            poll_interval_s=0.02,
            max_concurrent=max_concurrent,
        )
        d.start()
        made.append(d)
        return d

    yield make
    for d in made:
        await d.stop()


async def _settled(store: SqlJobStore, job_id: Any, timeout: float = 20) -> JobRecord:
    async with asyncio.timeout(timeout):
        while True:
            job = await store.get(job_id)
            if job.status.is_final:
                return job
            await asyncio.sleep(0.02)


async def test_one_runner_slot_serves_a_late_tenant_between_a_burst(engine: AsyncEngine, dispatch: Any) -> None:
    store = SqlJobStore(engine, progress_interval_s=0)
    kind = Recorder()
    with tenant_scope("a"):
        burst = [(await store.submit("work", {"i": i}, priority=-1)).id for i in range(20)]
    with tenant_scope("b"):
        late = [(await store.submit("work", {"i": i}, priority=-1)).id for i in range(2)]
    dispatch(store, kind, max_concurrent=1)
    for job_id in burst + late:
        assert (await _settled(store, job_id)).status is JobStatus.SUCCEEDED
    order = [job_id for job_id, _, _ in kind.ran]
    assert sorted(order) == sorted(burst + late)
    assert [order.index(job_id) + 1 for job_id in late] == [2, 4]
    # Each attempt ran in its job's tenant scope, with the job and the tenant in the log context.
    tenants = {job_id: "a" for job_id in burst} | {job_id: "b" for job_id in late}
    for job_id, scope, context in kind.ran:
        assert scope == tenants[job_id]
        assert context.get("job_id") == str(job_id) and context.get("tenant") == tenants[job_id]


async def test_an_open_tenant_job_runs_unscoped(engine: AsyncEngine, dispatch: Any) -> None:
    store = SqlJobStore(engine, progress_interval_s=0)
    kind = Recorder()
    job = await store.submit("work", {"i": 0})
    dispatch(store, kind)
    await _settled(store, job.id)
    ((_, scope, context),) = kind.ran
    assert job.tenant == "" and scope is None and "tenant" not in context and context["job_id"] == str(job.id)


async def test_the_dispatcher_records_each_attempts_outcome(engine: AsyncEngine, dispatch: Any) -> None:
    store = SqlJobStore(engine, progress_interval_s=0, backoff=Backoff(base_s=0.01, cap_s=0.01))
    held = Recorder()
    held.gate = asyncio.Event()
    with use_metrics(RecordingMetrics()) as rec:
        assert isinstance(rec, RecordingMetrics)
        d = dispatch(store, held, Flaky())
        flaky = await store.submit("flaky", {}, max_attempts=2, priority=3)
        ok = await store.submit("work", {"i": 0}, priority=-2)
        assert (await _settled(store, flaky.id)).status is JobStatus.DEAD
        async with asyncio.timeout(10):
            while len(held.ran) < 1:
                await asyncio.sleep(0.02)
        stopped = await store.submit("work", {"i": 1})
        async with asyncio.timeout(10):
            while len(held.ran) < 2:
                await asyncio.sleep(0.02)
        await store.cancel(stopped.id)
        assert d.cancel_running(stopped.id)
        assert (await _settled(store, stopped.id)).status is JobStatus.CANCELLED
        held.gate.set()
        assert (await _settled(store, ok.id)).status is JobStatus.SUCCEEDED
        async with asyncio.timeout(10):  # the outcome is recorded just after the store commits it
            while rec.count("limner_jobs_finished_total", kind="work", status="succeeded") < 1:
                await asyncio.sleep(0.02)
        async with asyncio.timeout(5):  # the periodic count runs about once a second
            while rec.gauge("limner_queue_depth", status="running") is None:
                await asyncio.sleep(0.05)
    finished = "limner_jobs_finished_total"
    assert rec.count(finished, kind="flaky", status="retried", priority="high") == 1
    assert rec.count(finished, kind="flaky", status="failed", priority="high") == 1
    assert rec.count(finished, kind="work", status="cancelled", priority="normal") == 1
    assert rec.count(finished, kind="work", status="succeeded", priority="low") == 1
    assert rec.count(finished) == 4
    # A claim per attempt, with its wait; a run time per outcome.
    assert len(rec.observed("limner_job_queue_wait_seconds", kind="flaky", priority="high")) == 2
    waits = rec.observed("limner_job_queue_wait_seconds")
    assert len(waits) == 4 and all(0 <= w < 30 for w in waits)
    runs = rec.observed("limner_job_run_seconds")
    assert len(runs) == 4 and all(0 <= r < 30 for r in runs)
    assert rec.gauge("limner_queue_depth", status="queued") is not None


# -- the stages: images, the result cache and stage times, per tenant ----------------------------------------------


def _png(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


class FakeGenerator:
    """Streams a progress step, then an image whose colour encodes the seed; records the scope of each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[ComposedRequest, str | None]] = []

    async def stream(self, composed: ComposedRequest) -> AsyncIterator[dict[str, Any]]:
        self.calls.append((composed, current_tenant()))
        request = composed.request
        yield {"type": "progress", "step": 1, "total": 1}
        png = _png((request.seed % 256, 0, 0), (request.width, request.height))
        yield {
            "type": "image",
            "image": GeneratedImage(png, request.seed, request.width, request.height, composed.request_hash, 1),
        }


@pytest.fixture
async def services(engine: AsyncEngine, db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    opened = await open_services(AppConfig(), Settings(data_dir=str(tmp_path), database_url=db_url))
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
def generator() -> FakeGenerator:
    return FakeGenerator()


@pytest.fixture
def stages(services: Services, generator: FakeGenerator) -> Stages:
    composer = Composer.func_or_class(ComposerConfig(width=64, height=64, steps=3), "tiny")
    return Stages(services, composer.compose, generator.stream)


async def _no_progress(step: int, total: int) -> None:
    return None


async def test_a_dispatched_job_stores_its_images_as_its_tenants(
    services: Services, stages: Stages, generator: FakeGenerator, dispatch: Any
) -> None:
    kind = GenerateKind()
    with use_metrics(RecordingMetrics()) as rec:
        assert isinstance(rec, RecordingMetrics)
        with tenant_scope("a"):
            accepted = await kind.accept(GenerateRequest(PartialRequest(prompt="a keep", seed=5)), stages)
            job = await services.jobs.submit("generate", accepted.payload.to_json())
        dispatch(services.jobs, kind, stages=stages)
        done = await _settled(services.jobs, job.id)
    assert done.status is JobStatus.SUCCEEDED and done.tenant == "a"
    assert [scope for _, scope in generator.calls] == ["a"]
    images = ImageRepository(services.engine)
    image_id = done.result_image_id
    assert image_id is not None and (await images.get(image_id)).tenant == "a"
    with tenant_scope("b"), pytest.raises(ImageNotFound):
        await images.get(image_id)
    # compose at acceptance; generate and store in the attempt.
    for stage in ("compose", "generate", "store"):
        assert len(rec.observed("limner_stage_seconds", stage=stage)) == 1, stage


async def test_the_result_cache_never_hands_one_tenant_anothers_image(
    services: Services, stages: Stages, generator: FakeGenerator
) -> None:
    kind = GenerateKind()
    request = GenerateRequest(PartialRequest(prompt="a gem", seed=300))  # seeded: cacheable
    ran: dict[str | None, str] = {}
    for tenant in ("a", "b", None, "a"):
        with tenant_scope(tenant):
            accepted = await kind.accept(request, stages)
            payload = accepted.payload.to_json()
            result = await kind.run(_job(payload, tenant or ""), stages, _no_progress)
            assert result.image_id is not None
            if tenant in ran:
                assert result.image_id == ran[tenant]  # its own earlier image answers it again
            ran[tenant] = result.image_id
    assert len(set(ran.values())) == 3 and len(generator.calls) == 3
    digest = str(payload["request_hash"])
    # Unscoped keys are the hash as before; scoped ones carry the tenant.
    assert result_key(digest) == digest
    with tenant_scope("a"):
        assert result_key(digest) != digest
        assert await services.results.get(result_key(digest)) == ran["a"]
    # Even a cache entry planted under b's key for a's image is not handed to b: b cannot see that image.
    with tenant_scope("b"):
        await services.results.set(result_key(digest), ran["a"])
        images = ImageRepository(services.engine)
        await images.soft_delete(ran["b"])  # b's own image gone: the cache is all that is left
        again = await kind.run(_job(payload, "b"), stages, _no_progress)
    assert again.image_id not in (ran["a"], ran["b"]) and len(generator.calls) == 4


def _job(payload: dict[str, Any], tenant: str) -> JobRecord:
    from datetime import UTC, datetime

    from serve_app.jobs import JobSource

    now = datetime.now(UTC)
    return JobRecord(
        id=uuid.uuid4(), kind="generate", payload=payload, body_hash="0" * 64, status=JobStatus.RUNNING,
        priority=0, deadline=None, attempts=1, max_attempts=3, next_attempt_at=now, lease_owner="t",
        lease_expires_at=now, progress=0.0, progress_step=None, progress_total=None, error=None, error_type=None,
        error_param=None, result=None, result_image_id=None, source=JobSource.HTTP, idempotency_key=None,
        cancel_requested=False, last_seq=0, created_at=now, started_at=now, finished_at=None, updated_at=now,
        tenant=tenant,
    )  # fmt: skip
