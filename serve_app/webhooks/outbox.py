"""The webhook outbox: ``webhook_deliveries`` rows. The job store writes one in the transaction that ends a job
that carries a ``webhook_url`` (serve_app/jobs/sql.py ``_finish``); :class:`WebhookOutbox` hands out what is due
and records each try. Taking a row pushes its next attempt a lease ahead, so two replicas never send the same
message at once (and a replica that dies mid-send leaves it to be taken again: at least once)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.db.engine import make_session_factory
from serve_app.db.models import WebhookDelivery, utcnow

__all__ = ["Delivery", "WebhookOutbox"]


@dataclass(frozen=True)
class Delivery:
    """One message: ``id`` is its ``webhook-id``."""

    id: uuid.UUID
    job_id: uuid.UUID
    url: str
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @staticmethod
    def from_row(row: WebhookDelivery) -> Delivery:
        return Delivery(
            row.id,
            row.job_id,
            row.url,
            row.event,
            row.status,
            row.attempts,
            row.next_attempt_at,
            row.last_error,
            row.created_at,
            row.delivered_at,
        )


class WebhookOutbox:
    """Reads and updates the outbox.

    Args:
        engine: The metadata database (migrated).
        clock: Now, aware UTC (tests move it).
    """

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = make_session_factory(engine)
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"

    async def take_due(self, limit: int, lease_s: float) -> list[Delivery]:
        """Up to ``limit`` pending messages whose time has come, oldest first, each pushed ``lease_s`` ahead."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            query = (
                select(WebhookDelivery)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list(await session.scalars(query))
            for row in rows:
                row.next_attempt_at = now + timedelta(seconds=lease_s)
            return [Delivery.from_row(row) for row in rows]

    async def record(self, delivery_id: uuid.UUID, *, ok: bool, error: str | None, retry_at: datetime | None) -> None:
        """One try: delivered (``ok``), to be tried again at ``retry_at``, or given up (``retry_at`` None)."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            row = await session.get(WebhookDelivery, delivery_id)
            if row is None or row.status != "pending":
                return
            row.attempts += 1
            row.last_error = None if ok else (error or "")[:2000]
            if ok:
                row.status, row.delivered_at = "delivered", now
            elif retry_at is None:
                row.status = "failed"
            else:
                row.next_attempt_at = retry_at

    async def for_job(self, job_id: uuid.UUID | str) -> list[Delivery]:
        """A job's messages, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.job_id == uuid.UUID(str(job_id)))
                .order_by(WebhookDelivery.created_at)
            )
            return [Delivery.from_row(row) for row in rows]
