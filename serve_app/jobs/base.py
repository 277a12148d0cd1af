"""Durable jobs: the records, the store protocol and its exceptions.

A job's life::

    submit ──► queued ──claim──► running ──complete──► succeeded
                 ▲  │              │ │ │
                 │  │ cancel       │ │ └─fail(transient), attempts left──► queued (after a backoff)
                 │  ▼              │ └───fail(transient), none left──────► dead
                 │ cancelled ◄─────┤     fail(permanent)────────────────► failed
                 │   (mark_cancelled, after cancel set cancel_requested)
                 ├── lease expired (the runner died): claimable again; dead if no attempts are left
                 └── release (the runner's replica shuts down): queued at once, the attempt not counted
    queued past its deadline ──expire_deadlines──► failed ("deadline exceeded")
    lease expired past its deadline ──claim──► failed ("deadline exceeded"), never run again

Every transition appends an event to the job's log (gap-free ``seq`` per job) in the same transaction, and
the store hands each committed event to an ``on_event`` hook (the event bus, in the service).

Exceptions::

    JobError
    ├── JobNotFound           no job with that id, or another tenant's (404)
    ├── IdempotencyConflict   the idempotency key was used with a different request (409)
    ├── LeaseLost             the caller no longer holds the job's lease (its result is discarded)
    ├── PermanentJobError     a job failed in a way no retry can fix (it fails at once)
    │    └── UnknownKind      no registered kind handles the job
    └── InvalidCursor         a list cursor that this store did not hand out (422)
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipelines.canonical import canonical_hash, canonical_json
from serve_app.db.models import JobSource, JobStatus
from serve_app.events.base import Event

if TYPE_CHECKING:
    from serve_app.db.models import Image, Job

__all__ = [
    "Clock",
    "EventHook",
    "IdempotencyConflict",
    "InvalidCursor",
    "JobError",
    "JobNotFound",
    "JobPage",
    "JobRecord",
    "JobResult",
    "JobStore",
    "LeaseLost",
    "PermanentJobError",
    "UnknownKind",
    "canonical_hash",
    "canonical_json",
]

#: Returns the current time as an aware UTC datetime; tests inject a fake.
Clock = Callable[[], datetime]
#: Called with each committed event, after its transaction commits.
EventHook = Callable[[Event], Awaitable[None]]


class JobError(Exception):
    """Base class for job store failures."""


class JobNotFound(JobError):
    """No job has this id."""

    def __init__(self, job_id: uuid.UUID | str) -> None:
        super().__init__(job_id)
        self.job_id = str(job_id)

    def __str__(self) -> str:
        return f"no job with id {self.job_id}"


class IdempotencyConflict(JobError):
    """The idempotency key already names a job made from a different request.

    The message (what a client sees, 409) names neither that job nor its request: a key may be another
    client's. ``existing_job_id`` is for the log only.
    """

    def __init__(self, key: str, existing_job_id: uuid.UUID | str | None = None) -> None:
        super().__init__(key, existing_job_id)
        self.key = key
        self.existing_job_id = None if existing_job_id is None else str(existing_job_id)

    def __str__(self) -> str:
        return (
            "this Idempotency-Key was already used with a different request (body, priority or deadline); "
            "use a new key for a new request"
        )


class LeaseLost(JobError):
    """The caller does not hold the job's lease (it expired and was taken, or the job is finished)."""

    def __init__(self, job_id: uuid.UUID | str, owner: str) -> None:
        super().__init__(job_id, owner)
        self.job_id = str(job_id)
        self.owner = owner

    def __str__(self) -> str:
        return f"{self.owner} does not hold the lease on job {self.job_id}"


class PermanentJobError(JobError):
    """A failure no retry can fix (an input found bad late, a stored image that is gone): the job fails at once.

    Attributes:
        message: What went wrong, for the client.
        error_type: The stable error type recorded with the job (``invalid_request`` by default).
        param: The request field at fault, if any.
    """

    def __init__(self, message: str, error_type: str = "invalid_request", param: str | None = None) -> None:
        super().__init__(message, error_type, param)
        self.message = message
        self.error_type = error_type
        self.param = param

    def __str__(self) -> str:
        return self.message


class UnknownKind(PermanentJobError):
    """A job of a kind no registered :class:`~serve_app.jobs.kinds.JobKind` handles."""

    def __init__(self, kind: str, known: tuple[str, ...] = ()) -> None:
        super().__init__(f"no job kind {kind!r} is registered (known: {', '.join(known) or 'none'})", "unknown_kind")
        self.args = (kind, known)
        self.kind = kind
        self.known = known


class InvalidCursor(JobError, ValueError):
    """A pagination cursor that was not produced by this store."""

    def __init__(self, cursor: str) -> None:
        super().__init__(cursor)
        self.cursor = cursor

    def __str__(self) -> str:
        return f"invalid cursor {self.cursor!r:.80}"


@dataclass(frozen=True)
class JobResult:
    """What a finished job made: its images (ids, the first is the main one) and a JSON document.

    Attributes:
        images: Ids of the images the job stored, in the kind's order (a portrait's variations; a map's
            clean background then its overlay render).
        data: JSON-serialisable facts about the result (geometry, costs, prompts, export links).
    """

    images: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def image_id(self) -> str | None:
        """The main image, or None for a job that made none."""
        return self.images[0] if self.images else None

    def as_json(self) -> dict[str, Any]:
        """The document ``jobs.result`` keeps and ``GET /jobs/{id}`` shows."""
        return {"images": list(self.images), "data": dict(self.data)}


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A snapshot of one job row: plain data, safe to pickle across deployment handles."""

    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    body_hash: str
    status: JobStatus
    priority: int
    deadline: datetime | None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    progress: float
    progress_step: int | None
    progress_total: int | None
    error: str | None
    error_type: str | None
    error_param: str | None
    result: dict[str, Any] | None
    result_image_id: uuid.UUID | None
    source: JobSource
    idempotency_key: str | None
    cancel_requested: bool
    last_seq: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    backend: str | None = None
    cost_usd: float | None = None
    # Whose job it is ("" is the open tenant; see serve_app/auth/tenant.py): the dispatcher runs it in that scope.
    tenant: str = ""

    @classmethod
    def from_row(cls, row: Job) -> JobRecord:
        """Copy an ORM ``Job`` into a record."""
        return cls(
            id=row.id,
            kind=row.kind,
            payload=dict(row.payload),
            body_hash=row.body_hash,
            status=JobStatus(row.status),
            priority=row.priority,
            deadline=row.deadline,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            next_attempt_at=row.next_attempt_at,
            lease_owner=row.lease_owner,
            lease_expires_at=row.lease_expires_at,
            progress=row.progress,
            progress_step=row.progress_step,
            progress_total=row.progress_total,
            error=row.error,
            error_type=row.error_type,
            error_param=row.error_param,
            result=None if row.result is None else dict(row.result),
            result_image_id=row.result_image_id,
            source=JobSource(row.source),
            idempotency_key=row.idempotency_key,
            cancel_requested=row.cancel_requested,
            last_seq=row.event_seq,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            updated_at=row.updated_at,
            backend=row.backend,
            cost_usd=row.cost_usd,
            tenant=row.tenant or "",
        )


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of :meth:`JobStore.list`; pass ``next_cursor`` back for the next page (``None``: last)."""

    items: list[JobRecord]
    next_cursor: str | None


@runtime_checkable
class JobStore(Protocol):
    """Durable job queue with leases. See the module docstring for the state machine."""

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
    ) -> JobRecord:
        """Record a new queued job and commit before returning."""
        ...

    async def get(self, job_id: uuid.UUID | str) -> JobRecord:
        """Return the job, or raise :class:`JobNotFound`."""
        ...

    async def list(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Return jobs newest first, optionally of some statuses."""
        ...

    async def claim(self, owner: str, *, lease_s: float, limit: int = 1) -> builtins.list[JobRecord]:
        """Lease up to ``limit`` runnable jobs to ``owner``."""
        ...

    async def heartbeat(self, job_id: uuid.UUID | str, owner: str, *, lease_s: float) -> JobRecord:
        """Extend ``owner``'s lease on a running job."""
        ...

    async def release(self, job_id: uuid.UUID | str, owner: str) -> JobRecord:
        """Hand a job ``owner`` holds back to the queue without counting its attempt (a draining replica)."""
        ...

    async def release_all(self, owner: str) -> builtins.list[JobRecord]:
        """:meth:`release` every job ``owner`` holds, in one transaction; returns the jobs handed back."""
        ...

    async def progress(self, job_id: uuid.UUID | str, step: int, total: int, *, owner: str | None = None) -> bool:
        """Record progress (throttled); return whether it was written."""
        ...

    async def complete(
        self,
        job_id: uuid.UUID | str,
        owner: str,
        image_id: uuid.UUID | str | None = None,
        *,
        image: Image | None = None,
        result: JobResult | None = None,
    ) -> JobRecord:
        """Mark the job succeeded, exactly once, if ``owner`` still holds its lease."""
        ...

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
        """Record a failure: retry later, or fail or die for good."""
        ...

    async def cancel(self, job_id: uuid.UUID | str) -> JobRecord:
        """Cancel a queued job at once, or ask a running one to stop."""
        ...

    async def mark_cancelled(self, job_id: uuid.UUID | str, owner: str) -> JobRecord:
        """A runner acknowledges ``cancel_requested`` and stops."""
        ...

    async def cancel_where(
        self,
        *,
        source: JobSource | str | None = None,
        statuses: Sequence[JobStatus | str] = (JobStatus.QUEUED,),
    ) -> builtins.list[uuid.UUID]:
        """Cancel every job from ``source`` in ``statuses`` (the bridge's ``clear_queue``)."""
        ...

    async def expire_deadlines(self, now: datetime | None = None) -> builtins.list[uuid.UUID]:
        """Fail queued jobs whose deadline passed."""
        ...

    async def append_event(self, job_id: uuid.UUID | str, type: str, data: dict[str, Any]) -> Event:
        """Append an event to the job's log."""
        ...

    async def record_backend(
        self, job_id: uuid.UUID | str, backend: str, *, cost_usd: float | None = None, reason: str | None = None
    ) -> Event:
        """Record which backend ran the current attempt and what it cost (a ``backend`` event)."""
        ...

    async def events_since(
        self, job_id: uuid.UUID | str, after_seq: int = 0, *, limit: int | None = None
    ) -> builtins.list[Event]:
        """Return the job's events with ``seq > after_seq``, oldest first."""
        ...
