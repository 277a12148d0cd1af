"""The job service: accept a job of any kind, follow it, cancel it, wait for its result.

Kind-independent: ``submit(kind, request, options)`` asks the kind to decide the payload (validated and
composed once, before anything is stored), commits the job, and hands it to this replica's dispatcher
(claimed in the committing transaction when a slot is free and nothing runnable comes first). Every door
(HTTP routes, the Experimance bridge) submits through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from serve_app.config import JobsConfig
from serve_app.db.models import JobSource
from serve_app.errors import (
    GatewayTimeout,
    GenerationFailed,
    InvalidRequest,
    NotFound,
    Overloaded,
    ServiceError,
    from_exception,
)
from serve_app.events import Event, SubscriptionLagged
from serve_app.jobs.base import InvalidCursor, JobNotFound, JobPage, JobRecord, JobResult, canonical_hash
from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.kinds.base import Accepted, KindPayload, KindRegistry
from serve_app.jobs.sql import TERMINAL_EVENTS, SqlJobStore
from serve_app.jobs.stages import Stages

__all__ = ["JobService", "SubmitOptions"]


@dataclass(frozen=True)
class SubmitOptions:
    """How a job is queued, whatever its kind.

    Attributes:
        priority: Higher runs first.
        idempotency_key: Stripe's semantics: the same key with the same request (body, priority and
            deadline) returns the first job; with any difference, 409, whose message reveals nothing about
            the other job. A key names its job for ``jobs.idempotency_ttl_s`` (24 h), then makes a new one.
            An empty or whitespace key is refused (422). Keys are global for now: scoping them to the
            client comes with API keys.
        deadline_s: Fail the job unless it starts within this many seconds.
        source: The door it came in through (``http`` or ``zmq``).
        admit: Count it against ``jobs.max_queued`` (503 when full). The installation paces itself, so its
            requests are never refused for queue length.
        webhook_url: Where the job's end is POSTed (serve_app/webhooks); 422 when webhooks are off or the
            target is refused.
        webhook_on_start: Also POST ``job.started`` there when each attempt starts.
    """

    priority: int = 0
    idempotency_key: str | None = None
    deadline_s: float | None = None
    source: JobSource | str = JobSource.HTTP
    admit: bool = True
    webhook_url: str | None = None
    webhook_on_start: bool = False


class JobService:
    """Accepts and tracks jobs of every registered kind.

    Args:
        store: The job store.
        events: The event bus (live job events).
        registry: The kinds.
        stages: The shared steps (acceptance composes through them).
        dispatcher: This replica's dispatcher (woken on submit; runs local cancels).
        config: The ``jobs`` section.
        wait_poll_s: Waiters (``wait``, ``result``, ``events_of``) wake on the job's events; only when none
            came for this long do they read the database (an event published where this bus does not reach,
            such as another replica without Redis), and no more often than this while the bus is failing.
    """

    def __init__(
        self,
        store: SqlJobStore,
        events: Any,
        registry: KindRegistry,
        stages: Stages,
        dispatcher: Dispatcher,
        config: JobsConfig,
        *,
        wait_poll_s: float = 5.0,
        webhook_hosts: tuple[str, ...] | None = None,
        quotas: Any = None,
    ) -> None:
        self.store = store
        self.events = events
        self.registry = registry
        self.stages = stages
        self.dispatcher = dispatcher
        self.config = config
        self.wait_poll_s = wait_poll_s
        self.webhook_hosts = webhook_hosts  # None: webhooks are off (no secret); else the hosts always allowed
        self.quotas = quotas  # serve_app.auth.guard.TenantQuotas: the caller's tenant's day and concurrency

    # -- accept -----------------------------------------------------------------------------------------

    def max_priority(self) -> int:
        """The highest priority the current caller may ask for (``jobs.max_client_priority``, or its key's
        ``max_priority`` when lower)."""
        cap = self.config.max_client_priority
        return cap if self.quotas is None else int(self.quotas.max_priority(cap))

    async def submit(
        self, kind: str, request: Any, options: SubmitOptions = SubmitOptions()
    ) -> tuple[JobRecord, KindPayload]:
        """Validates and composes ``request`` as a job of ``kind``, then commits it.

        Returns:
            The job (``running`` if it was claimed as it was committed) and its payload.

        Raises:
            InvalidRequest: A field is out of range (nothing is stored).
            Conflict: ``idempotency_key`` was used with a different request.
            Overloaded: The queue is full.
            RateLimited: The caller's tenant is at its concurrent jobs or has used its day (``auth.limits``).
        """
        if options.webhook_on_start and options.webhook_url is None:
            raise InvalidRequest("webhook_on_start needs a webhook_url to POST to", param="webhook_on_start")
        if options.webhook_url is not None:
            if self.webhook_hosts is None:
                raise InvalidRequest(
                    "webhook_url is not allowed: webhooks are off on this service (LIMNER_WEBHOOK_SECRET is not set)",
                    param="webhook_url",
                )
            from serve_app.webhooks.targets import check_target

            await check_target(options.webhook_url, allowed_hosts=self.webhook_hosts)
        key = options.idempotency_key
        if key is not None and not key.strip():
            raise InvalidRequest("Idempotency-Key must not be empty or whitespace", param="Idempotency-Key")
        dispatcher = self.dispatcher
        if options.admit and not dispatcher.admit(self.config.max_queued):
            raise Overloaded(
                "The job queue is full; try again shortly.", headers={"Retry-After": str(self.config.retry_after_s)}
            )
        try:
            accepted = await self._accept(kind, request)  # nothing is stored yet: a cancelled caller costs nothing
            if self.quotas is not None:
                await self.quotas.admit()  # RateLimited (429) once the tenant's day or its concurrent jobs are used
        except BaseException:
            if options.admit:
                dispatcher.release()
            raise
        # Commit and hand-over happen even if the caller is cancelled meanwhile: a job committed as claimed
        # for this dispatcher but never adopted would sit ``running`` with no runner until its lease expired,
        # and then lose an attempt.
        record = asyncio.ensure_future(self._commit(kind, accepted, options))
        try:
            return await asyncio.shield(record)
        except asyncio.CancelledError:
            record.add_done_callback(_log_unretrieved)
            raise

    async def _accept(self, kind: str, request: Any) -> Accepted:
        try:
            return await self.registry[kind].accept(request, self.stages)
        except Exception as exc:
            raise from_exception(exc) from exc

    async def _commit(self, kind: str, accepted: Accepted, options: SubmitOptions) -> tuple[JobRecord, KindPayload]:
        """Commits the accepted job, then adopts it if it was claimed for this dispatcher as it was committed."""
        dispatcher = self.dispatcher
        # A slot to claim the job in its committing transaction; not for an idempotency key, whose submit may
        # answer with an earlier job instead (only a job this submit made is ever adopted).
        slot = dispatcher.reserve() if options.idempotency_key is None else None
        try:
            deadline = datetime.now(UTC) + timedelta(seconds=options.deadline_s) if options.deadline_s else None
            # What a replay must match: the request as sent, and how it is to be queued.
            identity = {
                "kind": kind,
                "body": accepted.identity,
                "priority": options.priority,
                "deadline_s": options.deadline_s,
            }
            if options.webhook_url is not None:  # only then: earlier jobs' hashes stay what they were
                identity["webhook_url"] = options.webhook_url
                if options.webhook_on_start:
                    identity["webhook_on_start"] = True
            job = await self.store.submit(
                kind,
                accepted.payload.to_json(),
                priority=options.priority,
                deadline=deadline,
                max_attempts=self.config.max_attempts,
                source=options.source,
                idempotency_key=options.idempotency_key,
                body_hash=canonical_hash(identity),
                claim_for=slot,
                idempotency_ttl_s=self.config.idempotency_ttl_s,
                webhook_url=options.webhook_url,
                webhook_on_start=options.webhook_on_start,
            )
        except BaseException as exc:
            if slot is not None:
                dispatcher.unreserve()
            if options.admit:
                dispatcher.release()
            if isinstance(exc, Exception):
                raise from_exception(exc) from exc
            raise
        if slot is not None and job.status == "running":
            dispatcher.adopt(job)  # claimed as it was committed: nothing was ahead of it, a slot was free
            if options.admit:
                dispatcher.release()
        else:
            if slot is not None:
                dispatcher.unreserve()
            dispatcher.wake()
        return job, accepted.payload

    # -- read -------------------------------------------------------------------------------------------

    async def get(self, job_id: str | uuid.UUID) -> JobRecord:
        """The job (404 for an id that names none)."""
        try:
            return await self.store.get(job_id)
        except JobNotFound as exc:
            raise from_exception(exc) from exc

    async def list(self, status: list[str] | None, limit: int, cursor: str | None) -> JobPage:
        """Jobs newest first, optionally of some statuses (422 for an unknown status or a bad cursor)."""
        try:
            return await self.store.list(status=status or None, limit=limit, cursor=cursor)
        except InvalidCursor as exc:
            raise from_exception(exc) from exc
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="status") from exc

    async def cancel(self, job_id: str | uuid.UUID) -> JobRecord:
        """Cancels a queued job at once; a running one stops at its next denoising step."""
        job = await self.get(job_id)
        record = await self.store.cancel(job.id)
        if record.status == "running":
            self.dispatcher.cancel_running(job.id)  # if it runs here; else its heartbeat notices
        return record

    async def wait(self, job_id: uuid.UUID, timeout_s: float) -> JobRecord:
        """Returns the job once it is finished, or as it is when ``timeout_s`` runs out."""
        job, _ = await self._wait(job_id, timeout_s, read_success=True)
        assert job is not None  # read_success=True always reads the job
        return job

    async def _wait(
        self, job_id: uuid.UUID, timeout_s: float, *, read_success: bool
    ) -> tuple[JobRecord | None, JobResult | None]:
        """Waits for the job to finish: ``(job, result)``.

        With ``read_success=False`` a ``succeeded`` event heard live answers ``(None, result)`` without
        reading the job again; anything else answers the job as the database has it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        poll = self.wait_poll_s
        async with self.events.subscribe(str(job_id)) as sub:
            job = await self.store.get(job_id)
            read_at = loop.time()
            while not job.status.is_final:
                now = loop.time()
                left = deadline - now
                if left <= 0:
                    if now > read_at:
                        job = await self.store.get(job_id)  # answer the job as it is, not as last read
                    break
                # Events wake us: no database read until a final event, or until ``poll`` passed without one.
                event = None
                try:
                    event = await sub.get(timeout=max(0.0, min(left, read_at + poll - now)))
                except SubscriptionLagged:
                    await _pause_if_recent(loop, read_at, poll, deadline)  # a failing bus: fall back to polling
                    event = None
                    read_at = -math.inf  # read now
                if not read_success and event is not None and event.type == "succeeded":
                    images = event.data.get("images")
                    if isinstance(images, list) and images:
                        return None, JobResult(images=tuple(str(i) for i in images))
                if (event is not None and event.type in TERMINAL_EVENTS) or loop.time() >= read_at + poll:
                    job = await self.store.get(job_id)
                    read_at = loop.time()
        return job, result_of(job)

    async def result(self, job_id: uuid.UUID, timeout_s: float) -> JobResult:
        """Waits for a job and returns what it made; cancels the job if the waiter goes away first.

        Raises:
            ServiceError: The job failed (500, or 422 for input found bad late) or did not finish in time (504).
        """
        try:
            job, result = await self._wait(job_id, timeout_s, read_success=False)
        except asyncio.CancelledError:
            # The client went away: nobody wants this result any more.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.cancel(job_id))
            raise
        if job is not None and (job.status != "succeeded" or result is None):
            raise job_error(job)
        assert result is not None  # a succeeded job always has its result
        return result

    async def events_of(self, job_id: str, after_seq: int, *, until: float | None = None) -> AsyncIterator[Event]:
        """The job's events after ``after_seq``: its log first, then live ones, until a terminal event.

        Live events are taken from the bus; the log is read again only to fill a gap, after the bus lagged,
        or when nothing came for ``wait_poll_s`` (so an idle follower costs the database nothing in between).

        Args:
            job_id: The job.
            after_seq: The last event the follower has (0: none).
            until: ``loop.time()`` at which to stop even though the job goes on (the caller can tell: the
                last event it got is not terminal).
        """
        job = await self.get(job_id)
        loop = asyncio.get_running_loop()
        poll = self.wait_poll_s
        sent = after_seq
        async with self.events.subscribe(str(job.id)) as sub:
            read_at = -math.inf
            while True:
                if loop.time() >= read_at + poll:
                    for event in await self.store.events_since(job.id, after_seq=sent):
                        sent = event.seq or sent
                        yield event
                        if event.type in TERMINAL_EVENTS:
                            return
                    if job.status.is_final:
                        return  # finished before we looked, and the follower already has its final event
                    read_at = loop.time()
                now = loop.time()
                if until is not None and now >= until:
                    return
                wait = read_at + poll - now if until is None else min(read_at + poll, until) - now
                try:
                    live = await sub.get(timeout=max(0.0, wait))
                except SubscriptionLagged:
                    await _pause_if_recent(loop, read_at, poll, until)
                    read_at = -math.inf  # catch up from the log
                    continue
                if live is None or live.seq is None or live.seq <= sent:
                    continue  # nothing yet (the log is read once ``poll`` is up), or already sent
                if live.seq != sent + 1:
                    read_at = -math.inf  # a gap: take what was missed from the log, in order
                    continue
                sent = live.seq
                yield live
                if live.type in TERMINAL_EVENTS:
                    return


async def _pause_if_recent(loop: asyncio.AbstractEventLoop, read_at: float, poll: float, until: float | None) -> None:
    """After the bus failed: wait out the rest of ``poll`` since the last read (but not past ``until``), so a
    bus that keeps failing turns into polling every ``poll`` seconds, never a busy loop."""
    resume = read_at + poll if until is None else min(read_at + poll, until)
    if resume > loop.time():
        await asyncio.sleep(resume - loop.time())


def _log_unretrieved(task: asyncio.Future[Any]) -> None:
    """Logs the failure of a commit whose caller was cancelled (nobody else will see it)."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("ray.serve.limner.jobs").warning("commit of a cancelled submit failed: %s", task.exception())


def result_of(job: JobRecord) -> JobResult | None:
    """A finished job's result (rows from before results were kept have only ``result_image_id``)."""
    if job.result is not None:
        return JobResult(images=tuple(job.result.get("images", ())), data=dict(job.result.get("data", {})))
    if job.result_image_id is not None:
        return JobResult(images=(str(job.result_image_id),))
    return None


def job_error(job: JobRecord) -> ServiceError:
    """The error a waiter gets for a job that did not succeed (in time)."""
    if not job.status.is_final:
        return GatewayTimeout(f"job {job.id} is still {job.status}; poll /api/v2/images/jobs/{job.id}", param=None)
    if job.status == "failed" and job.error_type == InvalidRequest.error_type:
        return InvalidRequest(job.error or "invalid request", param=job.error_param)
    if job.status == "failed" and job.error_type == NotFound.error_type:
        return NotFound(job.error or "not found", param=job.error_param)
    return GenerationFailed(f"job {job.id} ended {job.status}: {job.error or 'no error recorded'}")
