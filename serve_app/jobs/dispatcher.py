"""The dispatcher: claims runnable jobs and runs each through its kind, durably.

One loop per ingress replica. It claims jobs (priority, then deadline, then age) up to ``max_concurrent`` at a
time, runs each through ``registry[job.kind]`` while a heartbeat keeps its lease alive, and records the
outcome exactly once: succeeded (with the kind's :class:`~serve_app.jobs.base.JobResult`), retried after a
backoff (transient failures), failed (permanent ones, an unknown kind included), or cancelled. Whether a
failure is transient is decided by :func:`serve_app.errors.is_transient`. A runner that dies simply stops
heartbeating; its jobs are claimed again when their leases expire (and that counts an attempt). A runner that
shuts down (:meth:`Dispatcher.stop`) stops claiming and hands its jobs back to the queue at once without
counting an attempt: restarting a replica never uses up a job's attempts.

Each attempt runs in its job's tenant scope (``tenant_scope(job.tenant or None)``, serve_app/auth/tenant.py), so
the images, subjects and cache entries it makes and finds are that tenant's, and with the job id and tenant in
the log context. The claim loop itself is unscoped: it serves every tenant's queue (fairly: ``SqlJobStore.claim``).

Metrics (serve_app/observability/metrics.py): ``job_claimed`` as an attempt starts (its queue wait: from the job's
creation to its claim), ``job_finished`` at its outcome (succeeded, failed, retried or cancelled, with the seconds
since the claim), and ``queue_depth`` of queued and running jobs from the periodic count (one GROUP BY on an index
range, about once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from serve_app.auth.tenant import tenant_scope
from serve_app.db.models import JobStatus
from serve_app.errors import describe_failure, is_transient
from serve_app.jobs.base import JobNotFound, JobRecord, JobResult, LeaseLost
from serve_app.jobs.context import CURRENT_ATTEMPT, Attempt
from serve_app.jobs.sql import SqlJobStore
from serve_app.observability.logs import log_context
from serve_app.observability.metrics import metrics

if TYPE_CHECKING:
    from serve_app.jobs.kinds.base import KindRegistry
    from serve_app.jobs.stages import Stages

__all__ = ["Dispatcher", "ProgressFn"]

logger = logging.getLogger("ray.serve.limner.jobs")

# How long a cancelled job waits for its work to stop before its state is settled anyway.
_WORK_GRACE_S = 30.0
# The statuses the periodic count reports as queue depth: index ranges of ix_jobs_claim (status first).
_DEPTH_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
# A failed attempt's outcome, as the metrics name it, by the status the job is left in.
_FAILED_OUTCOME = {JobStatus.QUEUED: "retried", JobStatus.CANCELLED: "cancelled"}

ProgressFn = Callable[[int, int], Awaitable[None]]
"""Reports ``(step, total)`` of the running job."""


class Dispatcher:
    """Claims and runs jobs.

    Args:
        store: The job store.
        registry: The job kinds; a job runs through ``registry[job.kind]``.
        stages: The shared steps the kinds' recipes use.
        is_transient: Whether an exception from a kind is worth a retry (the one table in serve_app/errors).
        lease_s: Lease of a claimed job.
        heartbeat_s: How often a running job's lease is renewed (and a cancel request noticed).
        poll_interval_s: How long the loop sleeps when there is nothing to claim.
        max_concurrent: Most jobs running at once.
        owner: This dispatcher's name on leases.
    """

    def __init__(
        self,
        store: SqlJobStore,
        registry: KindRegistry,
        stages: Stages,
        *,
        is_transient: Callable[[BaseException], bool] = is_transient,
        lease_s: float = 30.0,
        heartbeat_s: float = 5.0,
        poll_interval_s: float = 0.2,
        max_concurrent: int = 16,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._stages = stages
        self._is_transient = is_transient
        self._lease_s = lease_s
        self._heartbeat_s = min(heartbeat_s, lease_s / 3)
        self._poll_s = poll_interval_s
        self._max_concurrent = max_concurrent
        self.owner = owner or f"dispatcher-{uuid.uuid4().hex[:12]}"
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._reserved = 0
        self._cancel_requested: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self._handing_back: set[uuid.UUID] = set()
        self._released: set[uuid.UUID] = set()  # handed back by stop() at once; their tasks skip _release
        self._loop_task: asyncio.Task[None] | None = None
        self._queued = 0
        self._counted_at = 0.0
        self._stopping = False

    @property
    def queued_estimate(self) -> int:
        """Queued jobs as of the last count (refreshed about once a second)."""
        return self._queued

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self) -> None:
        """Starts the claim loop on the running event loop."""
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop(), name="limner-dispatcher")

    async def stop(self) -> None:
        """Stops claiming, then hands every running job back to the queue without counting its attempt.

        Bounded: a job whose hand-back does not finish in time comes back when its lease expires.
        """
        self._stopping = True
        if self._loop_task is not None:
            # Let the loop finish its tick rather than cancel it mid-claim: a claim the database committed but the
            # cancelled tick never registered would stay ``running`` until its lease expired. Jobs claimed after
            # stopping began are handed back by _run. Bounded: a tick stuck on the database is cancelled.
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), timeout=5.0)
            except TimeoutError:
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task
        await asyncio.sleep(0)  # let tasks of the last tick start: they see stopping and hand their job back
        if not self._running:
            return
        # The hand-back first, in one write for every job, so it never waits on the work's cancellation (a
        # render winding down, a remote call): what this replica holds is queued again however slowly the
        # work stops. The work's own writes after this find the lease gone and change nothing.
        try:
            released = await asyncio.wait_for(self._store.release_all(self.owner), timeout=10)
        except Exception:  # the database is gone or locked: each job tries again below, else its lease expires
            logger.exception("could not hand the running jobs back at once; trying one by one")
        else:
            self._released.update(job.id for job in released)
            if released:
                logger.info("%d running jobs handed back to the queue (shutting down)", len(released))
        for job_id, task in list(self._running.items()):
            if job_id not in self._handing_back:  # cancelling one mid-hand-back would lose the hand-back
                task.cancel()
        # Bounded: a shutdown never hangs on a job. What is left is cancelled, so nothing of this dispatcher
        # touches the database once stop() returns (the services close next).
        pending: set[asyncio.Task[None]] = set()
        if self._running:
            _, pending = await asyncio.wait(list(self._running.values()), timeout=10)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)

    def admit(self, max_queued: int) -> bool:
        """Takes a place in the queue for a job about to be submitted; False when the queue is full.

        Counted at once, before the submit's first await, so a burst of concurrent submits cannot all pass
        the check before any of them is counted. Give the place back with :meth:`release` if the submit fails.
        """
        if self._queued >= max_queued:
            return False
        self._queued += 1
        return True

    def release(self) -> None:
        """Gives back a place taken by :meth:`admit` for a job that was not submitted after all."""
        self._queued = max(0, self._queued - 1)

    def reserve(self) -> tuple[str, float] | None:
        """Takes a free slot for a job about to be submitted, so it can be claimed as it is committed (see
        ``SqlJobStore.submit(claim_for=...)``): ``(owner, lease_s)``, or None when every slot is busy.

        Hand the slot on with :meth:`adopt` if the job came back claimed, else give it back with
        :meth:`unreserve`.
        """
        if self._loop_task is None or self._stopping or len(self._running) + self._reserved >= self._max_concurrent:
            return None
        self._reserved += 1
        return self.owner, self._lease_s

    def unreserve(self) -> None:
        """Gives back a slot taken by :meth:`reserve`."""
        self._reserved = max(0, self._reserved - 1)

    def adopt(self, job: JobRecord) -> None:
        """Runs a job claimed for this dispatcher at submit, in the slot :meth:`reserve` took."""
        self.unreserve()
        # While stopping, the job is handed straight back: _run sees the stop before the work starts.
        self._running[job.id] = asyncio.get_running_loop().create_task(self._run(job))

    def wake(self) -> None:
        """A job was just submitted: look now rather than at the next poll."""
        self._wake.set()

    def cancel_running(self, job_id: uuid.UUID) -> bool:
        """Stops a job this dispatcher runs (its cancel was requested); False if it runs elsewhere."""
        task = self._running.get(job_id)
        if task is None:
            return False
        self._cancel_requested.add(job_id)
        task.cancel()
        return True

    async def _loop(self) -> None:
        with tenant_scope(None):  # the queue of every tenant, whatever context started the loop
            await self._claim_loop()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blipped: log and keep going
                logger.exception("dispatcher tick failed")
                await asyncio.sleep(1.0)
            self._wake.clear()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def _tick(self) -> None:
        now = time.monotonic()
        if now - self._counted_at > 1.0:
            expired = await self._store.expire_deadlines()
            if expired:
                logger.info("%d queued jobs passed their deadline", len(expired))
            counts = await self._store.counts(_DEPTH_STATUSES)  # index ranges, not a table scan
            self._queued = counts.get(JobStatus.QUEUED, 0)
            self._counted_at = now
            for status in _DEPTH_STATUSES:
                metrics().queue_depth(status.value, counts.get(status, 0))
        free = self.free_slots
        while free > 0 and not self._stopping:
            claimed = await self._store.claim(self.owner, lease_s=self._lease_s, limit=free)
            for job in claimed:
                self._running[job.id] = asyncio.get_running_loop().create_task(self._run(job))
            free -= len(claimed)
            if len(claimed) == 0:
                break

    @property
    def free_slots(self) -> int:
        """Slots neither running a job nor reserved for one about to be submitted."""
        return self._max_concurrent - len(self._running) - self._reserved

    async def _execute(self, job: JobRecord) -> JobResult:
        kind = self._registry[job.kind]  # UnknownKind: fails the job permanently
        # Its own task (ensure_future in _run), so the attempt is this job's alone.
        CURRENT_ATTEMPT.set(Attempt(job.id, job.attempts, job.source.value))
        return await kind.run(job, self._stages, self._progress_fn(job))

    async def _run(self, job: JobRecord) -> None:
        # Its own task, so the scope and the log context are this attempt's alone (the heartbeat and the work,
        # started inside, inherit them).
        with tenant_scope(job.tenant or None), log_context(job_id=job.id, tenant=job.tenant or None):
            await self._attempt(job)

    async def _attempt(self, job: JobRecord) -> None:
        if self._stopping:  # claimed or adopted after stop() began: hand it back before any work starts
            self._handing_back.add(job.id)
            try:
                await self._release(job)
            finally:
                self._running.pop(job.id, None)
                self._handing_back.discard(job.id)
            return
        started = time.monotonic()
        # The claim wrote updated_at (the store's clock, as created_at is): the wait is created → claimed.
        metrics().job_claimed(job.kind, job.priority, (job.updated_at - job.created_at).total_seconds())
        work = asyncio.ensure_future(self._execute(job))
        beat = asyncio.ensure_future(self._heartbeat(job, work))
        try:
            try:
                result = await asyncio.shield(work)
            except asyncio.CancelledError:
                work.cancel()
                work.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: no warning
                # Waits for the work to wind down (a cancelled render frees its batch slot) but not forever, and
                # a second cancellation of this task (the event loop closing) ends the wait instead of being
                # swallowed: work that ignores its cancellation must not keep this task alive.
                await asyncio.wait([work], timeout=_WORK_GRACE_S)
                if job.id in self._cancel_requested:
                    await self._store.mark_cancelled(job.id, self.owner)
                    self._finished(job, "cancelled", started)
                    logger.info("job %s cancelled", job.id)
                    return
                if self._stopping:
                    await self._release(job)
                    return
                raise
            except Exception as exc:
                transient = self._is_transient(exc)
                message, error_type, param = describe_failure(exc)
                log = logger.warning if transient else logger.info
                # The detail (exception, through Ray a remote traceback) goes to the log only, with the job id:
                # the recorded message is what clients see (errors.describe_failure).
                detail = f"{type(exc).__name__}: {exc}"
                log("job %s (%s) attempt %d failed (%s): %s", job.id, job.kind, job.attempts, error_type, detail)
                after = await self._store.fail(
                    job.id, self.owner, message, transient=transient, error_type=error_type, param=param
                )
                self._finished(job, _FAILED_OUTCOME.get(after.status, "failed"), started)
                return
            await self._store.complete(job.id, self.owner, result=result)
            self._finished(job, "succeeded", started)
        except LeaseLost:
            logger.warning("job %s: lease lost; another runner owns it now", job.id)
        except JobNotFound:
            logger.warning("job %s vanished", job.id)
        finally:
            beat.cancel()
            self._running.pop(job.id, None)
            self._cancel_requested.discard(job.id)
            self._wake.set()

    @staticmethod
    def _finished(job: JobRecord, status: str, started: float) -> None:
        """Records an attempt's outcome (one of the metrics' job statuses) and its seconds since the claim."""
        metrics().job_finished(job.kind, status, job.priority, time.monotonic() - started)

    async def _release(self, job: JobRecord) -> None:
        """Hands ``job`` back to the queue (this dispatcher is stopping); its attempt is not counted."""
        if job.id in self._released:  # stop() handed it back with the others
            return
        try:
            await self._store.release(job.id, self.owner)
            logger.info("job %s handed back to the queue (shutting down)", job.id)
        except (LeaseLost, JobNotFound):
            pass  # finished or taken meanwhile: nothing to hand back
        except Exception:  # the database is gone too: the lease expires and the job comes back anyway
            logger.exception("could not hand job %s back; it returns when its lease expires", job.id)

    async def _heartbeat(self, job: JobRecord, work: asyncio.Future[Any]) -> None:
        while not work.done():
            await asyncio.sleep(self._heartbeat_s)
            try:
                record = await self._store.heartbeat(job.id, self.owner, lease_s=self._lease_s)
            except (LeaseLost, JobNotFound):
                work.cancel()
                return
            except Exception:
                logger.exception("heartbeat of job %s failed", job.id)
                continue
            if record.cancel_requested:
                self.cancel_running(job.id)
                return

    def _progress_fn(self, job: JobRecord) -> ProgressFn:
        async def progress(step: int, total: int) -> None:
            try:
                await self._store.progress(job.id, step, total, owner=self.owner)
            except (LeaseLost, JobNotFound):
                pass

        return progress
