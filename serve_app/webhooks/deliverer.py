"""The loop that sends due webhook messages.

Each message's body is ``{"type": "job.succeeded", "timestamp": "<ISO>", "data": <the job document, as GET
/api/v2/images/jobs/{id} answers it>}`` (Standard Webhooks' recommended shape), signed with the job's tenant's
secret (:func:`serve_app.webhooks.signing.tenant_secret`: the service's own for the open tenant);
``webhook-id`` is the outbox row's id, the same on every try. A 2xx answer delivers it; anything else (an error
status, a timeout, a refused connection) is tried again after an exponential backoff with jitter, up to
``webhooks.max_attempts``, then marked ``failed``. The target is checked again before every try (a name can be
re-pointed at an inner address after the job was accepted): a refused target is given up at once. Each try's
outcome (delivered, retry, failed) counts in ``limner_webhook_deliveries_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from serve_app.errors import InvalidRequest
from serve_app.jobs.backoff import Backoff
from serve_app.jobs.base import JobNotFound, JobRecord
from serve_app.observability.metrics import metrics
from serve_app.webhooks.outbox import Delivery, WebhookOutbox
from serve_app.webhooks.signing import signature_headers, tenant_secret
from serve_app.webhooks.targets import check_target

__all__ = ["WebhookDeliverer"]

logger = logging.getLogger("ray.serve.limner.webhooks")


class WebhookDeliverer:
    """Sends what the outbox holds, on this replica's event loop.

    Args:
        outbox: The outbox.
        jobs: The job store (the message's job document is read at send time).
        document: The job's JSON document (the API's ``job_response``).
        secret: The signing secret (``whsec_...``).
        allowed_hosts: Hosts let through :func:`~serve_app.webhooks.targets.check_target` whatever they resolve to.
        timeout_s: One try's time limit.
        max_attempts: Tries before a message is ``failed``.
        backoff: Delays between tries.
        poll_s: How often the outbox is read.
        concurrency: Messages in flight at once.
    """

    def __init__(
        self,
        outbox: WebhookOutbox,
        jobs: Any,
        document: Callable[[JobRecord], dict[str, Any]],
        *,
        secret: str,
        allowed_hosts: tuple[str, ...] = (),
        timeout_s: float = 10.0,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
        poll_s: float = 0.5,
        concurrency: int = 8,
    ) -> None:
        self._outbox = outbox
        self._jobs = jobs
        self._document = document
        self._secret = secret
        self._allowed = allowed_hosts
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=3600.0)
        self._poll_s = poll_s
        self._concurrency = concurrency
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        if self._task is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False)
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="limner-webhooks")

    async def stop(self) -> None:
        """Stops sending; a message mid-send is tried again later (its lease runs out)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run_once(self) -> int:
        """Sends every message due now; returns how many were tried."""
        lease_s = self._timeout_s * 3 + 5
        due = await self._outbox.take_due(self._concurrency * 4, lease_s)
        if due:
            limit = asyncio.Semaphore(self._concurrency)

            async def one(delivery: Delivery) -> None:
                async with limit:
                    await self._send(delivery)

            await asyncio.gather(*(one(d) for d in due))
        return len(due)

    async def _loop(self) -> None:
        while True:
            try:
                tried = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blipped: try again next round
                logger.exception("webhook round failed")
                tried = 0
            if not tried:
                await asyncio.sleep(self._poll_s)

    async def _send(self, delivery: Delivery) -> None:
        try:
            job = await self._jobs.get(delivery.job_id)
        except JobNotFound:  # purged by retention meanwhile: nothing left to report
            await self._outbox.record(delivery.id, ok=False, error="the job is gone", retry_at=None)
            metrics().webhook_delivery("failed")
            return
        try:
            await check_target(delivery.url, allowed_hosts=self._allowed)
        except InvalidRequest as exc:
            logger.warning("webhook %s for job %s refused: %s", delivery.id, delivery.job_id, exc)
            await self._outbox.record(delivery.id, ok=False, error=str(exc), retry_at=None)
            self.failed += 1
            metrics().webhook_delivery("failed")
            return
        body = json.dumps(
            {"type": delivery.event, "timestamp": datetime.now(UTC).isoformat(), "data": self._document(job)},
            separators=(",", ":"),
            default=str,
        ).encode()
        secret = tenant_secret(self._secret, job.tenant)
        headers = signature_headers(secret, str(delivery.id), int(time.time()), body)
        error: str | None = None
        try:
            assert self._client is not None
            response = await self._client.post(delivery.url, content=body, headers=headers)
            if 200 <= response.status_code < 300:
                await self._outbox.record(delivery.id, ok=True, error=None, retry_at=None)
                self.sent += 1
                metrics().webhook_delivery("delivered")
                return
            error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = delivery.attempts + 1
        if attempt >= self._max_attempts:
            logger.warning(
                "webhook %s for job %s failed after %d tries: %s", delivery.id, delivery.job_id, attempt, error
            )
            await self._outbox.record(delivery.id, ok=False, error=error, retry_at=None)
            self.failed += 1
            metrics().webhook_delivery("failed")
            return
        retry_at = datetime.now(UTC) + timedelta(seconds=self._backoff.delay(attempt))
        logger.info(
            "webhook %s for job %s: try %d failed (%s), again at %s",
            delivery.id,
            delivery.job_id,
            attempt,
            error,
            retry_at,
        )
        await self._outbox.record(delivery.id, ok=False, error=error, retry_at=retry_at)
        metrics().webhook_delivery("retry")
