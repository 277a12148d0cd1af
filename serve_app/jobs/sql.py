"""The job store on the metadata database: SQLite by default, PostgreSQL at scale.

One code path serves both. Every write is one short transaction that first locks the rows it changes:

- on PostgreSQL with ``SELECT ... FOR UPDATE`` (``SKIP LOCKED`` when claiming, so concurrent dispatchers
  each take different jobs instead of queueing behind one another);
- on SQLite the engine begins every write transaction with ``BEGIN IMMEDIATE`` (see
  :mod:`serve_app.db.engine`), so the whole read-then-write runs under the single writer lock and
  ``FOR UPDATE`` (which SQLite does not have) is simply left out of the SQL.

Time comes from an injectable clock and is written from Python, never from the database's ``now()``, so
tests can move time and both databases compare the same values.

Tenants (serve_app/auth/tenant.py): a job belongs to the tenant it was submitted in (``owner_tenant()``). Scoped to
a tenant, every lookup by id, list, count, cancel and event read sees that tenant's jobs only (another tenant's id
is :class:`JobNotFound`, like a missing one), and idempotency keys are that tenant's own. Unscoped, everything is
visible. The queue itself is shared: :meth:`SqlJobStore.claim` takes jobs of every tenant, fairly within a
priority.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import object_session

from serve_app.auth.tenant import current_tenant, owner_tenant
from serve_app.db.engine import READ_ONLY, make_session_factory
from serve_app.db.models import FINAL_STATUSES, Image, Job, JobEvent, JobSource, JobStatus, WebhookDelivery, utcnow
from serve_app.events.base import Event
from serve_app.jobs.backoff import Backoff
from serve_app.jobs.base import (
    Clock,
    EventHook,
    IdempotencyConflict,
    InvalidCursor,
    JobNotFound,
    JobPage,
    JobRecord,
    JobResult,
    LeaseLost,
    canonical_hash,
    canonical_json,
)

__all__ = ["DEADLINE_EXCEEDED", "TERMINAL_EVENTS", "SqlJobStore"]

_log = logging.getLogger("ray.serve.limner.jobs")

#: The error recorded on a job that was not started before its deadline, and its type.
DEADLINE_EXCEEDED = "deadline exceeded"
DEADLINE_EXCEEDED_TYPE = "deadline_exceeded"
#: Event types after which a job's stream ends.
TERMINAL_EVENTS = frozenset({"succeeded", "failed", "cancelled"})

_S = TypeVar("_S", bound=Select[Any])
_NEVER = datetime.min.replace(tzinfo=UTC)  # "no job of this tenant ever started", first in the fairness order
_PROBES = 200  # tenants whose last start one statement of the fair claim looks up


def _scoped(query: _S) -> _S:
    """``query`` restricted to the current tenant's jobs (unchanged when unscoped)."""
    tenant = current_tenant()
    return query if tenant is None else query.where(Job.tenant == tenant)


def _visible(job: Job | None) -> bool:
    """Whether ``job`` exists and the current scope may see it."""
    tenant = current_tenant()
    return job is not None and (tenant is None or job.tenant == tenant)


def _as_uuid(job_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(job_id, uuid.UUID):
        return job_id
    try:
        return uuid.UUID(str(job_id))
    except ValueError as exc:
        # A malformed id names no job: callers answer 404 for both.
        raise JobNotFound(job_id) from exc


def _statuses(value: JobStatus | str | Sequence[JobStatus | str]) -> list[JobStatus]:
    if isinstance(value, str):
        return [JobStatus(value)]
    return [JobStatus(v) for v in value]


def _runnable(now: datetime) -> ColumnElement[bool]:
    """What :meth:`SqlJobStore.claim` may take: queued jobs that are due and not past their deadline, and
    running jobs whose lease expired (their runner died) with attempts left, no cancel asked and their
    deadline not passed (a reclaim is a new start: the bridge answered a late job with its fallback already).
    """
    in_time = or_(Job.deadline.is_(None), Job.deadline > now)
    return or_(
        and_(Job.status == JobStatus.QUEUED, Job.next_attempt_at <= now, in_time),
        and_(
            Job.status == JobStatus.RUNNING,
            Job.lease_expires_at < now,
            Job.attempts < Job.max_attempts,
            Job.cancel_requested.is_(False),
            in_time,
        ),
    )


#: The claim order within the runnable jobs: priority (highest first), deadline (soonest, none last), then age.
_CLAIM_ORDER = (Job.priority.desc(), Job.deadline.asc().nulls_last(), Job.created_at.asc(), Job.id.asc())


def _encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), job_id.hex], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        if len(cursor) > 256:  # ours are about 100 characters; a longer one is not worth decoding
            raise ValueError("cursor too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, hex_id = json.loads(raw)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("naive cursor time")
        return at, uuid.UUID(hex_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidCursor(cursor) from exc


class SqlJobStore:
    """Durable job queue with leases, retries, cancellation, deadlines and an event log.

    Args:
        engine: From :func:`serve_app.db.make_engine`, on a migrated database.
        clock: Returns "now" (aware UTC); tests pass a controllable one.
        backoff: Delay policy for transient failures.
        progress_interval_s: Write progress for one job at most this often (the final step always).
        on_event: Awaited with each committed event (publish it on the event bus). Its failures are logged
            and swallowed: the event is already in the log, where subscribers can catch up.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock = utcnow,
        backoff: Backoff | None = None,
        progress_interval_s: float = 0.25,
        on_event: EventHook | None = None,
    ) -> None:
        if progress_interval_s < 0:
            raise ValueError(f"progress_interval_s must be >= 0, got {progress_interval_s}")
        self._engine = engine
        self._sessions = make_session_factory(engine)
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._progress_interval = timedelta(seconds=progress_interval_s)
        self._on_event = on_event
        self._last_progress: dict[uuid.UUID, datetime] = {}

    @property
    def progress_interval_s(self) -> float:
        """How often progress is written per job at most; a runner need not report it more often."""
        return self._progress_interval.total_seconds()

    @property
    def engine(self) -> AsyncEngine:
        """The engine this store writes through."""
        return self._engine

    # -- plumbing -------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _tx(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            if read_only:
                await session.connection(execution_options=READ_ONLY)
            yield session

    async def _emit(self, events: Sequence[Event]) -> None:
        if self._on_event is None:
            return
        for event in events:
            try:
                await self._on_event(event)
            except Exception:
                # The event is committed to the log already; a subscriber that missed it resumes from there.
                _log.exception("publishing %s event for job %s failed", event.type, event.job_id)

    def _append(self, session: AsyncSession, job: Job, type: str, data: dict[str, Any], now: datetime) -> Event:
        # The caller holds the job row lock, so bumping event_seq hands out gap-free, unique numbers.
        job.event_seq += 1
        session.add(JobEvent(job_id=job.id, seq=job.event_seq, type=type, data=data, created_at=now))
        return Event(job_id=str(job.id), type=type, data=data, seq=job.event_seq, created_at=now)

    async def _locked(self, session: AsyncSession, job_id: uuid.UUID) -> Job:
        """The job, row-locked, if the current scope may see it; else :class:`JobNotFound`."""
        query = _scoped(select(Job).where(Job.id == job_id)).with_for_update()
        job = (await session.execute(query)).scalar_one_or_none()
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def _held(self, session: AsyncSession, job_id: uuid.UUID, owner: str, now: datetime) -> Job:
        """The job, row-locked, if ``owner`` holds its live lease; else :class:`LeaseLost`."""
        job = await self._locked(session, job_id)
        if not self._holds(job, owner, now):
            raise LeaseLost(job_id, owner)
        return job

    @staticmethod
    def _holds(job: Job, owner: str, now: datetime) -> bool:
        return (
            job.status == JobStatus.RUNNING
            and job.lease_owner == owner
            and job.lease_expires_at is not None
            and job.lease_expires_at >= now
        )

    def _finish(self, job: Job, status: JobStatus, now: datetime, error: str | None = None) -> None:
        job.status = status
        job.finished_at = now
        job.updated_at = now
        job.lease_expires_at = None
        if error is not None:
            job.error = error
        self._last_progress.pop(job.id, None)
        if job.webhook_url:
            _owe_webhook(job, "job.failed" if status is JobStatus.DEAD else f"job.{status.value}", now)

    # -- accept ---------------------------------------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        priority: int = 0,
        deadline: datetime | None = None,
        max_attempts: int = 3,
        source: JobSource | str = JobSource.HTTP,
        idempotency_key: str | None = None,
        body_hash: str | None = None,
        claim_for: tuple[str, float] | None = None,
        idempotency_ttl_s: float | None = None,
        webhook_url: str | None = None,
        webhook_on_start: bool = False,
    ) -> JobRecord:
        """Record a new queued job; it is committed when this returns.

        Args:
            kind: What to make (``image``, ``map``, ``portrait``...).
            payload: The validated request, JSON-serialisable.
            priority: Higher runs first.
            deadline: Fail the job if it has not started by then (aware datetime).
            max_attempts: Attempts before a transiently failing job is ``dead``.
            source: ``http`` or ``zmq``.
            idempotency_key: A client-chosen key: the same key with the same request returns the first
                job; with a different request it raises :class:`IdempotencyConflict`.
            body_hash: What an idempotency-key replay must match: the hash of the request as the client sent
                it (with its priority and deadline); by default the hash of kind, payload, priority and deadline.
            idempotency_ttl_s: A key names its job for this long after the job was made; then it is released
                and the same key makes a new job. None: keys never expire.
            claim_for: ``(owner, lease_s)`` of a dispatcher with a free slot: when no runnable job comes before
                this one, it is claimed for that owner in the same transaction (``running``, attempt 1), which
                spares an idle service a claim round trip. Otherwise it is queued as usual.
            webhook_url: Where the job's end is POSTed: the transaction that ends it also writes the delivery
                to the outbox (``webhook_deliveries``), which :mod:`serve_app.webhooks` sends.
            webhook_on_start: Also POST ``job.started`` to ``webhook_url`` when each attempt starts (written in
                the transaction that starts it).

        Returns:
            The new job (``running`` if it was claimed), or the existing one for a repeated idempotency key.

        Raises:
            IdempotencyConflict: The key was used for a different request.
            ValueError: An argument is out of range, or the payload is not JSON.
        """
        if not kind:
            raise ValueError("kind must be a non-empty string")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if deadline is not None and deadline.tzinfo is None:
            raise ValueError(f"deadline must be timezone-aware, got {deadline!r}")
        try:
            canonical_json(payload)
        except TypeError as exc:
            raise ValueError(f"payload is not JSON-serialisable: {exc}") from exc
        if idempotency_key is not None and not idempotency_key.strip():
            raise ValueError("idempotency_key must not be empty or whitespace")
        if idempotency_ttl_s is not None and idempotency_ttl_s <= 0:
            raise ValueError(f"idempotency_ttl_s must be > 0, got {idempotency_ttl_s}")
        digest = body_hash or canonical_hash(
            {
                "kind": kind,
                "payload": payload,
                "priority": priority,
                "deadline": None if deadline is None else deadline.isoformat(),
            }
        )
        source = JobSource(source)
        args = (
            kind,
            payload,
            digest,
            priority,
            deadline,
            max_attempts,
            source,
            idempotency_key,
            claim_for,
            webhook_url,
            webhook_on_start,
        )
        # A repeated idempotency key is found by the unique index on insert, not by a lookup first: the
        # common case (a new key) then costs one transaction instead of two.
        for _ in range(3):
            try:
                return await self._insert(*args)
            except IntegrityError:
                if idempotency_key is None:
                    raise
            # The key was used before (or by a concurrent submit): answer with that job, unless its key expired.
            existing = await self._by_idempotency_key(idempotency_key)
            if existing is None:
                continue  # released in between: insert again
            expires = None if idempotency_ttl_s is None else existing.created_at + timedelta(seconds=idempotency_ttl_s)
            if expires is None or expires > self._clock():
                return self._replay(existing, idempotency_key, digest)
            await self._release_key(existing.id, idempotency_key)
        raise IdempotencyConflict(idempotency_key or "")  # the key kept changing hands: let the client retry

    async def _release_key(self, job_id: uuid.UUID, key: str) -> None:
        """Frees an expired idempotency key: the job keeps running and answering under its id."""
        async with self._tx() as session:
            await session.execute(
                update(Job).where(Job.id == job_id, Job.idempotency_key == key).values(idempotency_key=None)
            )

    async def release_idempotency_keys(self, before: datetime, *, limit: int = 1000) -> int:
        """Frees the idempotency keys of jobs made before ``before`` (expired keys); returns how many.

        :meth:`submit` releases an expired key when it is reused anyway; this keeps the unique index small.
        """
        async with self._tx() as session:
            ids = select(Job.id).where(Job.idempotency_key.is_not(None), Job.created_at < before).limit(limit)
            result = await session.execute(
                update(Job).where(Job.id.in_(ids.scalar_subquery())).values(idempotency_key=None)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _insert(
        self,
        kind: str,
        payload: dict[str, Any],
        digest: str,
        priority: int,
        deadline: datetime | None,
        max_attempts: int,
        source: JobSource,
        idempotency_key: str | None,
        claim_for: tuple[str, float] | None,
        webhook_url: str | None = None,
        webhook_on_start: bool = False,
    ) -> JobRecord:
        now = self._clock()
        async with self._tx() as session:
            job = Job(
                webhook_url=webhook_url,
                webhook_on_start=bool(webhook_url) and webhook_on_start,
                id=uuid.uuid4(),
                tenant=owner_tenant(),
                kind=kind,
                payload=payload,
                body_hash=digest,
                status=JobStatus.QUEUED,
                priority=priority,
                deadline=deadline,
                attempts=0,
                max_attempts=max_attempts,
                next_attempt_at=now,
                progress=0.0,
                source=source,
                idempotency_key=idempotency_key,
                cancel_requested=False,
                event_seq=0,
                created_at=now,
                updated_at=now,
            )
            session.add(job)
            events = [self._append(session, job, "queued", {"kind": kind, "priority": priority}, now)]
            if claim_for is not None and not await self._outranked(session, job, now):
                events.append(self._lease(session, job, *claim_for, now))
            await session.flush()
            record = JobRecord.from_row(job)
        await self._emit(events)
        return record

    def _lease(self, session: AsyncSession, job: Job, owner: str, lease_s: float, now: datetime) -> Event:
        """Starts an attempt of ``job`` under ``owner``'s lease (the caller holds the row); returns its event."""
        reclaimed = job.status == JobStatus.RUNNING
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.lease_owner = owner
        job.lease_expires_at = now + timedelta(seconds=lease_s)
        job.started_at = job.started_at or now
        job.updated_at = now
        started = {"attempt": job.attempts, "max_attempts": job.max_attempts, "reclaimed": reclaimed}
        # The backend the request named (``local`` unless it named a paid API or ``auto``); under ``auto`` a
        # ``backend`` event follows with the one chosen (record_backend).
        backend = str((job.payload or {}).get("backend") or "local")
        started["backend"] = backend
        if backend != "auto":
            job.backend = backend
        if job.webhook_url and job.webhook_on_start:
            _owe_webhook(job, "job.started", now)
        return self._append(session, job, "started", started, now)

    @staticmethod
    async def _outranked(session: AsyncSession, new: Job, now: datetime) -> bool:
        """Whether a runnable job would be claimed before the ``new`` one (see :meth:`claim`'s order)."""
        priority, deadline = new.priority, new.deadline
        ahead = Job.priority > priority
        if deadline is None:
            ahead = or_(ahead, Job.priority == priority)  # same priority: an older job, or one with a deadline
        else:
            ahead = or_(ahead, and_(Job.priority == priority, Job.deadline.is_not(None), Job.deadline <= deadline))
        query = select(Job.id).where(Job.id != new.id, _runnable(now), ahead)
        return (await session.execute(query.limit(1))).first() is not None

    async def _by_idempotency_key(self, key: str) -> JobRecord | None:
        """The job that holds ``key`` among the jobs a submit now would own (keys are per tenant)."""
        query = select(Job).where(Job.tenant == owner_tenant(), Job.idempotency_key == key)
        async with self._tx(read_only=True) as session:
            job = (await session.execute(query)).scalar_one_or_none()
            return None if job is None else JobRecord.from_row(job)

    @staticmethod
    def _replay(existing: JobRecord, key: str, digest: str) -> JobRecord:
        if existing.body_hash != digest:
            raise IdempotencyConflict(key, existing.id)
        return existing

    # -- read -----------------------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID | str) -> JobRecord:
        """Return the job.

        Raises:
            JobNotFound: No such job (or a malformed id, or another tenant's job).
        """
        jid = _as_uuid(job_id)
        async with self._tx(read_only=True) as session:
            job = await session.get(Job, jid)
            if job is None or not _visible(job):
                raise JobNotFound(jid)
            return JobRecord.from_row(job)

    async def list(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Return jobs newest first (the current tenant's, when scoped).

        Args:
            status: Only jobs in this status (or these statuses).
            limit: Page size, 1 to 1000.
            cursor: ``next_cursor`` from the previous page.

        Returns:
            The page; its ``next_cursor`` is ``None`` on the last page.

        Raises:
            InvalidCursor: ``cursor`` was not made by this store.
            ValueError: ``limit`` is out of range or ``status`` unknown.
        """
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be between 1 and 1000, got {limit}")
        query = _scoped(select(Job))
        if status is not None:
            query = query.where(Job.status.in_(_statuses(status)))
        if cursor is not None:
            at, jid = _decode_cursor(cursor)
            query = query.where(or_(Job.created_at < at, and_(Job.created_at == at, Job.id < jid)))
        query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        async with self._tx(read_only=True) as session:
            rows = list((await session.execute(query)).scalars())
            items = [JobRecord.from_row(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = _encode_cursor(last.created_at, last.id)
        return JobPage(items=items, next_cursor=next_cursor)

    async def counts(self, statuses: Sequence[JobStatus | str] | None = None) -> dict[JobStatus, int]:
        """Return how many jobs are in each status (every status present, zero included); the current tenant's
        when scoped.

        Args:
            statuses: Count only these (the others read 0). The dispatcher counts ``queued`` and ``running``
                only: those are index ranges on ``ix_jobs_claim``, cheap however many finished jobs the table
                keeps, where counting every status reads the whole table.
        """
        query = _scoped(select(Job.status, func.count()))
        if statuses is not None:
            query = query.where(Job.status.in_(_statuses(statuses)))
        async with self._tx(read_only=True) as session:
            rows = (await session.execute(query.group_by(Job.status))).all()
        counts = dict.fromkeys(JobStatus, 0)
        for status, count in rows:
            counts[JobStatus(status)] = int(count)
        return counts

    # -- dispatch -------------------------------------------------------------------------------------------

    async def claim(self, owner: str, *, lease_s: float, limit: int = 1) -> builtins.list[JobRecord]:
        """Lease up to ``limit`` runnable jobs to ``owner``.

        Runnable: queued jobs whose ``next_attempt_at`` has come and whose deadline has not passed, and
        running jobs whose lease expired (their runner died), taken by priority (highest first), then
        deadline (soonest first, none last), then age. Each claim counts an attempt. In the same
        transaction, expired jobs that cannot run again are settled: ``cancelled`` if a cancel was asked,
        ``failed`` ("deadline exceeded") if their deadline passed, ``dead`` if no attempts are left.

        Fair between tenants: when jobs of more than one tenant are runnable, each job taken at a priority is
        the next (by deadline, then age) of the tenant with the fewest running jobs there, ties going to the
        tenant whose last job started longest ago. So one tenant's burst of jobs is served in turn with the
        others' instead of ahead of them. Priority still comes first. Every tenant's queue is claimed whatever
        the current scope: the dispatcher serves them all.

        Args:
            owner: Identifies the dispatcher (host, process, random suffix); the lease is theirs.
            lease_s: Seconds until the lease expires unless :meth:`heartbeat` extends it.
            limit: Most jobs to take.

        Returns:
            The claimed jobs, now ``running``, in claim order.
        """
        if not owner:
            raise ValueError("owner must be a non-empty string")
        if lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, got {lease_s}")
        if limit < 1:
            return []
        now = self._clock()
        events: list[Event] = []
        claimed: list[JobRecord] = []
        async with self._tx() as session:
            expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
            settle = or_(
                Job.cancel_requested.is_(True),
                Job.attempts >= Job.max_attempts,
                and_(Job.deadline.is_not(None), Job.deadline <= now),
            )
            reap = select(Job).where(expired, settle).with_for_update(skip_locked=True)
            for job in (await session.execute(reap)).scalars():
                if job.cancel_requested:
                    self._finish(job, JobStatus.CANCELLED, now)
                    events.append(self._append(session, job, "cancelled", {"reason": "lease expired"}, now))
                elif job.deadline is not None and job.deadline <= now:
                    events.append(self._expire(session, job, now))
                else:
                    error = f"lease expired on attempt {job.attempts} of {job.max_attempts}"
                    self._finish(job, JobStatus.DEAD, now, error)
                    data = {"status": JobStatus.DEAD.value, "error": error}
                    events.append(self._append(session, job, "failed", data, now))

            # More than one tenant waiting? (DISTINCT ... LIMIT 2 stops at the second: the common case, one tenant,
            # costs one short read, and the fair order is worked out only when it can change anything.)
            tenants = (await session.execute(select(Job.tenant).where(_runnable(now)).distinct().limit(2))).all()
            if len(tenants) > 1:
                # Which tenants wait, at which priorities: one pass over the runnable range of ix_jobs_claim.
                waiting = {
                    (str(tenant), int(priority))
                    for tenant, priority in (
                        await session.execute(
                            select(Job.tenant, Job.priority).where(_runnable(now)).group_by(Job.tenant, Job.priority)
                        )
                    ).all()
                }
                for job in await self._take_fairly(session, waiting, now, limit):
                    events.append(self._lease(session, job, owner, lease_s, now))
                    claimed.append(JobRecord.from_row(job))
            elif tenants:  # one tenant waits: the plain order, in one query
                query = select(Job).where(_runnable(now)).order_by(*_CLAIM_ORDER).limit(limit)
                for job in (await session.execute(query.with_for_update(skip_locked=True))).scalars():
                    events.append(self._lease(session, job, owner, lease_s, now))
                    claimed.append(JobRecord.from_row(job))
        await self._emit(events)
        return claimed

    async def _take_fairly(
        self, session: AsyncSession, waiting: set[tuple[str, int]], now: datetime, limit: int
    ) -> builtins.list[Job]:
        """Row-locks up to ``limit`` runnable jobs in the fair order of :meth:`claim` (several tenants wait).

        ``waiting`` holds each ``(tenant, priority)`` with runnable jobs. Each pick locks one job (``SKIP LOCKED``:
        a concurrent claimer's jobs are passed over, as in the plain order); a pair with nothing left to lock is
        dropped, so the loop ends after at most ``limit`` picks plus one miss per pair.
        """
        tenants = sorted({tenant for tenant, _ in waiting})
        running_rows = await session.execute(
            select(Job.tenant, func.count())
            .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at >= now, Job.tenant.in_(tenants))
            .group_by(Job.tenant)
        )
        running: dict[str, int] = {str(tenant): int(n) for tenant, n in running_rows.all()}
        # One probe of ix_jobs_tenant_started per tenant, a statement per _PROBES tenants (SQLite caps columns).
        last: dict[str, datetime] = {}
        for i in range(0, len(tenants), _PROBES):
            chunk = tenants[i : i + _PROBES]
            probes = [select(func.max(Job.started_at)).where(Job.tenant == t).scalar_subquery() for t in chunk]
            started = (await session.execute(select(*probes))).one()
            last.update({t: at or _NEVER for t, at in zip(chunk, started, strict=True)})
        taken: list[Job] = []
        pending = set(waiting)
        while pending and len(taken) < limit:
            top = max(priority for _, priority in pending)
            at_top = [tenant for tenant, priority in pending if priority == top]
            best = min((running.get(t, 0), last[t]) for t in at_top)
            chosen = [t for t in at_top if (running.get(t, 0), last[t]) == best]
            query = select(Job).where(_runnable(now), Job.priority == top, Job.tenant.in_(chosen))
            if taken:  # leased once this loop ends, not yet
                query = query.where(Job.id.not_in([job.id for job in taken]))
            query = query.order_by(*_CLAIM_ORDER).limit(1).with_for_update(skip_locked=True)
            job = (await session.execute(query)).scalar_one_or_none()
            if job is None:
                pending -= {(t, top) for t in chosen}
                continue
            taken.append(job)
            running[job.tenant] = running.get(job.tenant, 0) + 1
            last[job.tenant] = now
        return taken

    async def heartbeat(self, job_id: uuid.UUID | str, owner: str, *, lease_s: float) -> JobRecord:
        """Extend ``owner``'s lease to ``lease_s`` seconds from now.

        Returns:
            The job (check ``cancel_requested`` to learn of a cancel).

        Raises:
            LeaseLost: ``owner`` does not hold a live lease on the job.
            JobNotFound: No such job.
        """
        if lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, got {lease_s}")
        jid = _as_uuid(job_id)
        now = self._clock()
        async with self._tx() as session:
            job = await self._held(session, jid, owner, now)
            job.lease_expires_at = now + timedelta(seconds=lease_s)
            job.updated_at = now
            return JobRecord.from_row(job)

    async def release(self, job_id: uuid.UUID | str, owner: str) -> JobRecord:
        """Hand a job ``owner`` holds back to the queue at once, without counting its attempt.

        A replica that shuts down releases what it runs: the job did not fail, so a restart (or three)
        must not use up its attempts the way an expired lease does. A job whose cancel was requested ends
        ``cancelled`` instead. Progress starts over with the next attempt.

        Returns:
            The job after the transition (``queued``, or ``cancelled``).

        Raises:
            LeaseLost: ``owner`` does not hold a live lease on the job.
            JobNotFound: No such job.
        """
        jid = _as_uuid(job_id)
        now = self._clock()
        async with self._tx() as session:
            job = await self._held(session, jid, owner, now)
            event = self._hand_back(session, job, now)
            record = JobRecord.from_row(job)
        await self._emit([event])
        return record

    async def release_all(self, owner: str) -> builtins.list[JobRecord]:
        """:meth:`release` for every job ``owner`` holds a live lease on, in one transaction.

        A stopping dispatcher calls this before it cancels its work, so the hand-back is one write that
        does not wait for each job's work to wind down (a write per job, each after its work's cancellation,
        could run past a shutdown's grace period and leave a job ``running`` until its lease expired).
        """
        now = self._clock()
        async with self._tx() as session:
            held = (
                (
                    await session.execute(
                        select(Job)
                        .where(
                            Job.status == JobStatus.RUNNING,
                            Job.lease_owner == owner,
                            Job.lease_expires_at >= now,
                        )
                        .order_by(Job.id)
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            events = [self._hand_back(session, job, now) for job in held]
            records = [JobRecord.from_row(job) for job in held]
        await self._emit(events)
        return records

    def _hand_back(self, session: AsyncSession, job: Job, now: datetime) -> Event:
        """The ``release`` transition of a held, row-locked job."""
        if job.cancel_requested:
            self._finish(job, JobStatus.CANCELLED, now)
            return self._append(session, job, "cancelled", {"reason": "cancelled by request"}, now)
        job.status = JobStatus.QUEUED
        job.attempts = max(0, job.attempts - 1)
        job.lease_owner = job.lease_expires_at = None
        job.next_attempt_at = now
        job.progress, job.progress_step, job.progress_total = 0.0, None, None
        job.updated_at = now
        self._last_progress.pop(job.id, None)
        return self._append(session, job, "released", {"reason": "runner shut down"}, now)

    async def progress(self, job_id: uuid.UUID | str, step: int, total: int, *, owner: str | None = None) -> bool:
        """Record that ``step`` of ``total`` is done, at most once per ``progress_interval_s`` per job.

        The final step (``step == total``) is always written. A written step is also a ``progress`` event.

        Args:
            job_id: The running job.
            step: Steps done, 0 to ``total``.
            total: Steps in all, at least 1.
            owner: When given, the write also checks that ``owner`` holds the lease.

        Returns:
            Whether the step was written (``False``: throttled, or the job is no longer running).

        Raises:
            LeaseLost: ``owner`` was given and does not hold the lease.
            ValueError: ``step`` or ``total`` is out of range.
        """
        if total < 1 or not 0 <= step <= total:
            raise ValueError(f"progress needs 0 <= step <= total and total >= 1, got step={step} total={total}")
        jid = _as_uuid(job_id)
        now = self._clock()
        last = self._last_progress.get(jid)
        if step < total and last is not None and now - last < self._progress_interval:
            return False
        async with self._tx() as session:
            job = await self._locked(session, jid)
            if owner is not None and not self._holds(job, owner, now):
                raise LeaseLost(jid, owner)
            if job.status != JobStatus.RUNNING:
                return False
            job.progress = step / total
            job.progress_step = step
            job.progress_total = total
            job.updated_at = now
            event = self._append(session, job, "progress", {"step": step, "total": total}, now)
        self._last_progress[jid] = now
        await self._emit([event])
        return True

    async def complete(
        self,
        job_id: uuid.UUID | str,
        owner: str,
        image_id: uuid.UUID | str | None = None,
        *,
        image: Image | None = None,
        result: JobResult | None = None,
    ) -> JobRecord:
        """Mark the job ``succeeded``, if ``owner`` still holds its lease.

        A job whose progress was recorded short of its last step gets that step as a ``progress`` event first,
        in the same transaction: runners need not write the last step just before finishing.

        Exactly once: of two runners that both think they own a job (one's lease expired and the job was
        claimed again), only the lease holder's result is recorded; the other gets :class:`LeaseLost`.

        Args:
            job_id: The job.
            owner: The claimant.
            image_id: The result image, already stored.
            image: Alternatively, a new ``Image`` row to insert in the same transaction, so a runner that
                loses its lease leaves no orphan row behind.
            result: The whole result (every image and the data document); its first image is the job's
                ``result_image_id`` unless ``image_id`` or ``image`` is given.

        Returns:
            The finished job.

        Raises:
            LeaseLost: ``owner`` does not hold a live lease on the job.
            JobNotFound: No such job.
        """
        jid = _as_uuid(job_id)
        now = self._clock()
        async with self._tx() as session:
            job = await self._held(session, jid, owner, now)
            if image is not None:
                image.tenant = job.tenant  # the job's image is its tenant's
                session.add(image)
                await session.flush()
                image_id = image.id
            if image_id is None and result is not None:
                image_id = result.image_id
            main = None if image_id is None else _as_uuid(image_id)
            if result is None:
                result = JobResult(images=() if main is None else (str(main),))
            events = []
            if job.progress_total and (job.progress_step or 0) < job.progress_total:
                # The last step is recorded here rather than by a write of its own just before this one.
                job.progress_step = job.progress_total
                final = {"step": job.progress_total, "total": job.progress_total}
                events.append(self._append(session, job, "progress", final, now))
            job.result_image_id = main
            job.result = result.as_json()
            job.progress = 1.0
            job.error = job.error_type = job.error_param = None
            self._finish(job, JobStatus.SUCCEEDED, now)
            data = {
                "image_id": None if main is None else str(main),
                "images": list(result.images),
                "attempt": job.attempts,
            }
            events.append(self._append(session, job, "succeeded", data, now))
            await session.flush()
            record = JobRecord.from_row(job)
        await self._emit(events)
        return record

    async def fail(
        self,
        job_id: uuid.UUID | str,
        owner: str,
        error: str,
        *,
        transient: bool,
        error_type: str | None = None,
        param: str | None = None,
    ) -> JobRecord:
        """Record a failed attempt.

        A transient failure (replica died, timeout, overload) goes back to ``queued`` after a backoff, or
        to ``dead`` when its attempts are used up; a permanent one (bad input found late) is ``failed`` at
        once. A job whose cancel was requested ends ``cancelled`` either way.

        Args:
            job_id: The job.
            owner: The claimant.
            error: What went wrong, for the client.
            transient: Whether another attempt could succeed.
            error_type: The failure's stable type (``serve_app.errors``: ``invalid_request``, ...).
            param: The request field at fault, if any.

        Returns:
            The job after the transition.

        Raises:
            LeaseLost: ``owner`` does not hold a live lease on the job.
            JobNotFound: No such job.
        """
        jid = _as_uuid(job_id)
        now = self._clock()
        async with self._tx() as session:
            job = await self._held(session, jid, owner, now)
            job.error_type, job.error_param = error_type, param
            if job.cancel_requested:
                self._finish(job, JobStatus.CANCELLED, now, error)
                event = self._append(session, job, "cancelled", {"reason": "cancelled by request"}, now)
            elif not transient:
                self._finish(job, JobStatus.FAILED, now, error)
                data = {
                    "status": JobStatus.FAILED.value,
                    "error": error,
                    "error_type": error_type,
                    "param": param,
                    "attempt": job.attempts,
                }
                event = self._append(session, job, "failed", data, now)
            elif job.attempts >= job.max_attempts:
                self._finish(job, JobStatus.DEAD, now, error)
                data = {"status": JobStatus.DEAD.value, "error": error, "attempt": job.attempts}
                event = self._append(session, job, "failed", data, now)
            else:
                delay = self._backoff.delay(job.attempts)
                job.status = JobStatus.QUEUED
                job.error = error
                job.lease_expires_at = None
                job.next_attempt_at = now + timedelta(seconds=delay)
                job.updated_at = now
                data = {
                    "error": error,
                    "attempt": job.attempts,
                    "next_attempt_at": job.next_attempt_at.isoformat(),
                }
                event = self._append(session, job, "retrying", data, now)
            record = JobRecord.from_row(job)
        await self._emit([event])
        return record

    # -- cancel and expire ----------------------------------------------------------------------------------

    def _cancel_one(self, session: AsyncSession, job: Job, now: datetime, reason: str) -> Event | None:
        if job.status == JobStatus.QUEUED:
            self._finish(job, JobStatus.CANCELLED, now)
            return self._append(session, job, "cancelled", {"reason": reason}, now)
        if job.status == JobStatus.RUNNING and not job.cancel_requested:
            job.cancel_requested = True
            job.updated_at = now
            return self._append(session, job, "cancel_requested", {"reason": reason}, now)
        return None

    async def cancel(self, job_id: uuid.UUID | str) -> JobRecord:
        """Cancel a job: a queued one at once; a running one is asked to stop (``cancel_requested``).

        The runner learns of the request from the ``cancel_requested`` event or from :meth:`heartbeat`,
        stops at its next step and calls :meth:`mark_cancelled`. Finished jobs are left as they are.

        Returns:
            The job after the request.

        Raises:
            JobNotFound: No such job.
        """
        jid = _as_uuid(job_id)
        now = self._clock()
        async with self._tx() as session:
            job = await self._locked(session, jid)
            event = self._cancel_one(session, job, now, "cancelled by request")
            record = JobRecord.from_row(job)
        await self._emit([event] if event else [])
        return record

    async def mark_cancelled(self, job_id: uuid.UUID | str, owner: str) -> JobRecord:
        """The runner stopped a job whose cancel was requested; record it ``cancelled``.

        Raises:
            LeaseLost: ``owner`` does not hold a live lease on the job.
            JobNotFound: No such job.
        """
        jid = _as_uuid(job_id)
        now = self._clock()
        async with self._tx() as session:
            job = await self._held(session, jid, owner, now)
            self._finish(job, JobStatus.CANCELLED, now)
            event = self._append(session, job, "cancelled", {"reason": "cancelled by request"}, now)
            record = JobRecord.from_row(job)
        await self._emit([event])
        return record

    async def cancel_where(
        self,
        *,
        source: JobSource | str | None = None,
        statuses: Sequence[JobStatus | str] = (JobStatus.QUEUED,),
    ) -> builtins.list[uuid.UUID]:
        """Cancel every job from ``source`` (any source if ``None``) whose status is in ``statuses`` (the current
        tenant's only, when scoped).

        Queued jobs end ``cancelled`` at once; running ones (if ``running`` is listed) get
        ``cancel_requested``. This is the ZMQ bridge's ``clear_queue``.

        Returns:
            The ids of the jobs that were cancelled or asked to cancel.
        """
        wanted = [s for s in _statuses(statuses) if s in (JobStatus.QUEUED, JobStatus.RUNNING)]
        if not wanted:
            return []
        now = self._clock()
        query = _scoped(select(Job).where(Job.status.in_(wanted)))
        if source is not None:
            query = query.where(Job.source == JobSource(source))
        events: list[Event] = []
        async with self._tx() as session:
            for job in (await session.execute(query.with_for_update())).scalars():
                event = self._cancel_one(session, job, now, "queue cleared")
                if event is not None:
                    events.append(event)
        await self._emit(events)
        return [uuid.UUID(e.job_id) for e in events]

    async def expire_deadlines(self, now: datetime | None = None) -> builtins.list[uuid.UUID]:
        """Fail every queued job whose deadline is at or before ``now`` ("deadline exceeded").

        Args:
            now: The time to judge by; the store's clock by default.

        Returns:
            The ids of the jobs failed.
        """
        now = now or self._clock()
        query = (
            select(Job)
            .where(Job.status == JobStatus.QUEUED, Job.deadline.is_not(None), Job.deadline <= now)
            .with_for_update(skip_locked=True)
        )
        events: list[Event] = []
        async with self._tx() as session:
            for job in (await session.execute(query)).scalars():
                events.append(self._expire(session, job, now))
        await self._emit(events)
        return [uuid.UUID(e.job_id) for e in events]

    def _expire(self, session: AsyncSession, job: Job, now: datetime) -> Event:
        """Fails ``job`` (its row held) as "deadline exceeded"; returns its event."""
        self._finish(job, JobStatus.FAILED, now, DEADLINE_EXCEEDED)
        job.error_type = DEADLINE_EXCEEDED_TYPE
        data = {"status": JobStatus.FAILED.value, "error": DEADLINE_EXCEEDED, "error_type": job.error_type}
        return self._append(session, job, "failed", data, now)

    # -- retention ------------------------------------------------------------------------------------------

    async def delete_finished(self, before: datetime, *, limit: int = 1000) -> int:
        """Deletes up to ``limit`` jobs that finished before ``before``, with their event logs.

        One short transaction per call (call again while it returns ``limit``). What their payloads referenced
        (init and depth images) is no longer kept by garbage collection once they are gone.

        Returns:
            How many jobs were deleted.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        query = (
            select(Job.id)
            .where(Job.finished_at < before, Job.status.in_(sorted(FINAL_STATUSES)))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._tx() as session:
            ids = list((await session.execute(query)).scalars())
            if ids:
                await session.execute(delete(JobEvent).where(JobEvent.job_id.in_(ids)))
                await session.execute(delete(Job).where(Job.id.in_(ids)))
        return len(ids)

    async def record_backend(
        self,
        job_id: uuid.UUID | str,
        backend: str,
        *,
        cost_usd: float | None = None,
        reason: str | None = None,
    ) -> Event:
        """Records that ``backend`` ran (part of) the job's current attempt: the job's ``backend`` becomes it, its
        ``cost_usd`` grows by ``cost_usd``, and a ``backend`` event says so (with ``reason`` under ``auto``: why this
        one, or why the one before it was passed over).

        Raises:
            JobNotFound: No such job.
        """
        jid = _as_uuid(job_id)
        now = self._clock()
        async with self._tx() as session:
            job = await self._locked(session, jid)
            job.backend = backend
            if cost_usd is not None:
                job.cost_usd = (job.cost_usd or 0.0) + cost_usd
            data: dict[str, Any] = {"backend": backend, "attempt": job.attempts}
            if cost_usd is not None:
                data["cost_usd"] = cost_usd
            if reason is not None:
                data["reason"] = reason
            event = self._append(session, job, "backend", data, now)
        await self._emit([event])
        return event

    # -- event log ------------------------------------------------------------------------------------------

    async def append_event(self, job_id: uuid.UUID | str, type: str, data: dict[str, Any]) -> Event:
        """Append a custom event (a stage change, say) to the job's log and publish it.

        Raises:
            JobNotFound: No such job.
        """
        jid = _as_uuid(job_id)
        now = self._clock()
        async with self._tx() as session:
            job = await self._locked(session, jid)
            event = self._append(session, job, type, data, now)
        await self._emit([event])
        return event

    async def events_since(
        self, job_id: uuid.UUID | str, after_seq: int = 0, *, limit: int | None = None
    ) -> builtins.list[Event]:
        """Return the job's logged events with ``seq > after_seq``, oldest first (SSE resume).

        Raises:
            JobNotFound: No such job (or another tenant's).
        """
        jid = _as_uuid(job_id)
        query = select(JobEvent).where(JobEvent.job_id == jid, JobEvent.seq > after_seq).order_by(JobEvent.seq.asc())
        if limit is not None:
            query = query.limit(limit)
        async with self._tx(read_only=True) as session:
            if not _visible(await session.get(Job, jid)):
                raise JobNotFound(jid)
            rows = list((await session.execute(query)).scalars())
        return [
            Event(
                job_id=str(row.job_id),
                type=row.type,
                data=dict(row.data),
                seq=row.seq,
                created_at=row.created_at,
            )
            for row in rows
        ]


def _owe_webhook(job: Job, event: str, now: datetime) -> None:
    """Adds ``event``'s delivery to the outbox in the transaction that holds ``job``: it commits with the change
    it reports, or neither does, so a crash before the delivery still delivers once the service is back
    (serve_app/webhooks)."""
    session = object_session(job)
    assert session is not None, "a job changes inside its transaction"
    assert job.webhook_url is not None
    session.add(WebhookDelivery(job_id=job.id, url=job.webhook_url, event=event, next_attempt_at=now, created_at=now))
