"""Benchmark of accepting a job: ``job_submit_ms`` on SQLite and on PostgreSQL.

Prints one JSON line per database (``job_submit_ms_sqlite``, ``job_submit_ms_postgres``):

- ``value``: p50 in ms of :meth:`SqlJobStore.submit` for a realistic ``/generate`` payload with a fresh
  idempotency key, i.e. exactly what the service does before it answers 202: the idempotency-key lookup
  (a read transaction), then one transaction inserting the job row and its ``queued`` event, committed when
  ``submit`` returns. One client, one submit at a time.
- ``baseline``: p50 in ms of a bare single-row ``INSERT`` + ``COMMIT`` of a comparable row (uuid key, kind,
  the same JSON payload, request hash, idempotency key, timestamp) into a plain table with only a primary
  key, through raw SQLAlchemy ``text()`` on the same engine (same pool, same SQLite pragmas), measured in
  the same run, interleaved one-for-one with the submits so both see the same conditions.
- ``ratio``: value / baseline, what the job layer costs over the cheapest possible durable write: the extra
  read round trip, the event row, the jobs table's indexes and unique key, and the ORM.
- extra fields: ``p90_ms`` and ``baseline_p90_ms``, ``samples``, ``warmup``, the durability settings in
  force (SQLite runs in WAL mode with ``synchronous=NORMAL`` as the service configures it, so a commit does
  not fsync; PostgreSQL reports its ``synchronous_commit``), and ``rows_committed`` read back on a fresh
  connection as a check that every submit was durable.

SQLite runs on a fresh temporary file, migrated with Alembic. PostgreSQL runs on a fresh, uniquely named
database created through the admin URL ``LIMNER_BENCH_DATABASE_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``), migrated, and dropped afterwards; if the server
cannot be reached, its line says ``"skipped"`` with the reason instead. Target: p50 at most 5 ms.

Run: ``make bench`` or ``python load_tests/bench_jobs.py [--warmup 50] [--samples 500]``.

``--large N`` (not in the default run) measures instead what the dispatcher does every second and the
retention janitor every hour, on a table of N finished jobs (``--large 1000000``): one JSON line per query and
database (``large_<query>_ms_<db>``), whose ``baseline`` is the same query measured in the same run on the
same database before the N finished rows were added (only the live queue: 100 queued and 16 running jobs),
so ``ratio`` is what N finished rows cost. Queries: ``counts_queued`` (the dispatcher's queue count),
``counts_all`` (every status: a scan, for contrast), ``expire_deadlines``, ``claim`` (one job; handed back
untimed), ``delete_finished`` (one retention batch of 1000; the baseline deletes from 1000 finished rows).
Each line carries the query plan (``EXPLAIN QUERY PLAN`` / ``EXPLAIN``) of its main statement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Uuid, bindparam, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_tests._service import emit, percentile
from serve_app.db import Job, make_engine, migrate, to_async_url, utcnow
from serve_app.jobs import SqlJobStore

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
TARGET = "<= 5"
PROMPTS = (
    "a hex-grid battle map of a ruined dwarven forge, lava channels, top-down, detailed",
    "portrait of a dwarf blacksmith, soot on his face, warm rim light",
    "an ancient red dragon coiled on a hoard of gold, cavern, torchlight",
    "a misty elven forest clearing with a stone circle, battle map, top-down",
)

# The plain table of the baseline: a primary key and nothing else (no unique key, no secondary index).
_BARE_DDL = {
    "sqlite": (
        "CREATE TABLE bench_bare (id CHAR(32) PRIMARY KEY, kind VARCHAR(32) NOT NULL, payload JSON NOT NULL, "
        "request_hash VARCHAR(64) NOT NULL, idempotency_key VARCHAR(255), created_at DATETIME NOT NULL)"
    ),
    "postgresql": (
        "CREATE TABLE bench_bare (id UUID PRIMARY KEY, kind VARCHAR(32) NOT NULL, payload JSON NOT NULL, "
        "request_hash VARCHAR(64) NOT NULL, idempotency_key VARCHAR(255), created_at TIMESTAMPTZ NOT NULL)"
    ),
}
# Typed bind parameters: the dialect converts uuid, JSON and aware datetimes as it does for the jobs table.
_BARE_INSERT = text(
    "INSERT INTO bench_bare (id, kind, payload, request_hash, idempotency_key, created_at) "
    "VALUES (:id, :kind, :payload, :request_hash, :idempotency_key, :created_at)"
).bindparams(
    bindparam("id", type_=Uuid()),
    bindparam("payload", type_=JSON()),
    bindparam("created_at", type_=DateTime(timezone=True)),
)


@dataclass(frozen=True)
class Timings:
    """Latencies in seconds of the store's submits and of the bare inserts, and the jobs left committed."""

    submit: list[float]
    bare: list[float]
    rows_committed: int
    durability: str


def generate_payload(i: int) -> dict[str, Any]:
    """A composed ``/generate`` request as the service stores it in a job (distinct seed per job)."""
    return {
        "prompt": PROMPTS[i % len(PROMPTS)],
        "negative_prompt": "blurry, text, watermark, low quality",
        "width": 1024,
        "height": 1024,
        "steps": 30,
        "guidance": 5.0,
        "seed": 1_000_003 * i + 17,
        "scheduler": "dpmpp_2m_karras",
        "mode": "txt2img",
        "strength": 0.75,
        "model": "sdxl-base-1.0",
        "format": "png",
    }


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def _durability(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
            sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, level)
            return f"journal_mode={mode}, synchronous={sync}"
        sync = (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar()
        fsync = (await conn.exec_driver_sql("SHOW fsync")).scalar()
        return f"synchronous_commit={sync}, fsync={fsync}"


async def measure(url: str | URL, warmup: int, samples: int) -> Timings:
    """Migrate the empty database at ``url``, then time ``warmup`` + ``samples`` submits and bare inserts."""
    await migrate(url)
    engine = make_engine(url)
    try:
        store = SqlJobStore(engine)
        async with engine.begin() as conn:
            await conn.execute(text(_BARE_DDL[engine.dialect.name]))

        async def submit(i: int) -> None:
            await store.submit("image", generate_payload(i), idempotency_key=f"bench-{uuid.uuid4()}")

        async def bare(i: int) -> None:
            payload = generate_payload(i)
            row = {
                "id": uuid.uuid4(),
                "kind": "image",
                "payload": payload,
                "request_hash": uuid.uuid4().hex * 2,
                "idempotency_key": f"bench-{uuid.uuid4()}",
                "created_at": utcnow(),
            }
            async with engine.begin() as conn:
                await conn.execute(_BARE_INSERT, row)

        submit_s: list[float] = []
        bare_s: list[float] = []
        for i in range(warmup + samples):
            # Interleaved, so drift (WAL growth, checkpoints, autovacuum) falls on both sides alike.
            s = await _timed(lambda i=i: submit(i))
            b = await _timed(lambda i=i: bare(i))
            if i >= warmup:
                submit_s.append(s)
                bare_s.append(b)
        durability = await _durability(engine)
    finally:
        await engine.dispose()

    # Read back on a brand-new engine: every submit must be there.
    check = make_engine(url)
    try:
        async with check.connect() as conn:
            rows = int((await conn.execute(select(func.count()).select_from(Job))).scalar_one())
    finally:
        await check.dispose()
    return Timings(submit=submit_s, bare=bare_s, rows_committed=rows, durability=durability)


def report(bench: str, timings: Timings, warmup: int) -> None:
    submit_p50 = statistics.median(timings.submit) * 1000
    bare_p50 = statistics.median(timings.bare) * 1000
    emit(
        bench,
        submit_p50,
        "ms",
        bare_p50,
        target=TARGET,
        p90_ms=round(percentile(timings.submit, 0.9) * 1000, 3),
        baseline_p90_ms=round(percentile(timings.bare, 0.9) * 1000, 3),
        samples=len(timings.submit),
        warmup=warmup,
        rows_committed=timings.rows_committed,
        rows_expected=warmup + len(timings.submit),
        durability=timings.durability,
    )


def skipped(bench: str, reason: str) -> None:
    print(json.dumps({"bench": bench, "skipped": reason, "target": TARGET}), flush=True)


async def bench_sqlite(warmup: int, samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="limner-bench-jobs-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'jobs.db'}"
        report("job_submit_ms_sqlite", await measure(url, warmup, samples), warmup)


async def bench_postgres(admin_url: str, warmup: int, samples: int) -> None:
    bench = "job_submit_ms_postgres"
    name = f"limner_bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5})
    try:
        try:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except Exception as exc:  # unreachable, refused, no rights: report it and go on
            skipped(bench, f"PostgreSQL unavailable at {to_async_url(admin_url)!r}: {type(exc).__name__}: {exc}")
            return
        try:
            timings = await measure(to_async_url(admin_url).set(database=name), warmup, samples)
        finally:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        report(bench, timings, warmup)
    finally:
        await admin.dispose()


# -- the large-table case (--large N) -------------------------------------------------------------------

# Bulk rows straight in SQL (an ORM insert of a million rows would take minutes): finished jobs, 30-60 days old.
_FILL = {
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
        "INSERT INTO jobs (id, kind, payload, body_hash, status, priority, attempts, max_attempts, next_attempt_at, "
        "progress, source, cancel_requested, event_seq, created_at, finished_at, updated_at) "
        "SELECT lower(hex(randomblob(16))), 'generate', '{}', lower(hex(randomblob(32))), "
        "CASE i % 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'cancelled' ELSE 'succeeded' END, 0, 1, 3, "
        "datetime('now', '-60 days'), 1.0, 'http', 0, 3, datetime('now', '-60 days'), "
        "datetime('now', '-' || (30 + i % 30) || ' days'), datetime('now', '-30 days') FROM n"
    ),
    "postgresql": (
        "INSERT INTO jobs (id, kind, payload, body_hash, status, priority, attempts, max_attempts, next_attempt_at, "
        "progress, source, cancel_requested, event_seq, created_at, finished_at, updated_at) "
        "SELECT gen_random_uuid(), 'generate', '{}', md5(i::text) || md5((i + 1)::text), "
        "CASE i % 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'cancelled' ELSE 'succeeded' END, 0, 1, 3, "
        "now() - interval '60 days', 1.0, 'http', false, 3, now() - interval '60 days', "
        "now() - (30 + i % 30) * interval '1 day', now() - interval '30 days' FROM generate_series(1, :count) AS i"
    ),
}


async def _plan(engine: AsyncEngine, statement: Any) -> list[str]:
    sql = str(statement.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as conn:
        rows = (await conn.exec_driver_sql(prefix + sql)).all()
    return [str(row[-1]) for row in rows]


async def _median_ms(
    call: Callable[[], Awaitable[object]], samples: int, after: Callable[[], Awaitable[object]] | None = None
) -> float:
    times = []
    for _ in range(samples):
        times.append(await _timed(call))
        if after is not None:
            await after()
    return statistics.median(times) * 1000


async def measure_large(url: str | URL, rows: int, samples: int) -> dict[str, tuple[float, float, list[str]]]:
    """``{query: (ms on N finished rows, ms on the live queue only, plan)}``."""
    from datetime import timedelta

    from sqlalchemy import and_, or_

    from serve_app.db import JobStatus
    from serve_app.jobs.sql import _runnable

    await migrate(url)
    engine = make_engine(url)
    try:
        store = SqlJobStore(engine)
        for i in range(100):
            await store.submit("generate", {"n": i}, deadline=utcnow() + timedelta(days=1) if i % 2 else None)
        held = await store.claim("bench-runner", lease_s=3600, limit=16)
        assert len(held) == 16

        async def claim_one() -> None:
            claimed.extend(await store.claim("bench", lease_s=60, limit=1))

        async def hand_back() -> None:
            while claimed:
                await store.release(claimed.pop().id, "bench")

        claimed: list[Any] = []
        queries: dict[str, tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[object]] | None]] = {
            "counts_queued": (lambda: store.counts([JobStatus.QUEUED]), None),
            "counts_all": (store.counts, None),
            "expire_deadlines": (store.expire_deadlines, None),
            "claim": (claim_one, hand_back),
        }
        now = utcnow()
        plans = {
            "counts_queued": select(Job.status, func.count()).where(Job.status.in_(["queued"])).group_by(Job.status),
            "counts_all": select(Job.status, func.count()).group_by(Job.status),
            "expire_deadlines": select(Job.id).where(
                Job.status == JobStatus.QUEUED, Job.deadline.is_not(None), Job.deadline <= now
            ),
            "claim": select(Job.id).where(_runnable(now)).order_by(Job.priority.desc()).limit(1),
            "reap": select(Job.id).where(
                and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now),
                or_(Job.cancel_requested.is_(True), Job.attempts >= Job.max_attempts),
            ),
            "delete_finished": select(Job.id).where(Job.finished_at < now - timedelta(days=29)).limit(1000),
        }
        small = {name: await _median_ms(call, samples, after) for name, (call, after) in queries.items()}
        # The baseline batch: 1000 finished rows to delete, on the small table.
        async with engine.begin() as conn:
            await conn.execute(text(_FILL[engine.dialect.name]), {"count": 1000})
        small["delete_finished"] = await _median_ms(
            lambda: store.delete_finished(utcnow() - timedelta(days=29), limit=1000), 1
        )
        async with engine.begin() as conn:
            await conn.execute(text(_FILL[engine.dialect.name]), {"count": rows})
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.exec_driver_sql("VACUUM ANALYZE jobs")
        else:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")
        large = {name: await _median_ms(call, samples, after) for name, (call, after) in queries.items()}
        large["delete_finished"] = await _median_ms(
            lambda: store.delete_finished(utcnow() - timedelta(days=29), limit=1000), max(1, samples // 4)
        )
        out = {}
        for name in large:
            out[name] = (large[name], small[name], await _plan(engine, plans[name]))
        out["reap"] = (0.0, 0.0, await _plan(engine, plans["reap"]))
        return out
    finally:
        await engine.dispose()


def report_large(db: str, rows: int, results: dict[str, tuple[float, float, list[str]]]) -> None:
    for name, (value, baseline, plan) in results.items():
        if name == "reap":
            print(json.dumps({"bench": f"large_reap_plan_{db}", "plan": plan}), flush=True)
            continue
        emit(f"large_{name}_ms_{db}", value, "ms", baseline, rows=rows, plan=plan)


async def bench_large(admin_url: str, rows: int, samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="limner-bench-jobs-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'jobs.db'}"
        report_large("sqlite", rows, await measure_large(url, rows, samples))
    name = f"limner_bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5})
    try:
        try:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except Exception as exc:
            skipped("large_postgres", f"PostgreSQL unavailable: {type(exc).__name__}: {exc}")
            return
        try:
            results = await measure_large(to_async_url(admin_url).set(database=name), rows, samples)
        finally:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        report_large("postgres", rows, results)
    finally:
        await admin.dispose()


async def main_async(args: argparse.Namespace) -> None:
    if args.large:
        await bench_large(args.admin_url, args.large, min(args.samples, 50))
        return
    await bench_sqlite(args.warmup, args.samples)
    await bench_postgres(args.admin_url, args.warmup, args.samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=50, help="untimed submits (and bare inserts) first")
    parser.add_argument("--samples", type=int, default=500, help="timed submits (and bare inserts)")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("LIMNER_BENCH_DATABASE_URL", DEFAULT_ADMIN_URL),
        help="PostgreSQL admin database URL (env LIMNER_BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--large", type=int, default=0, metavar="N", help="measure the dispatcher's queries on N finished jobs instead"
    )
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
