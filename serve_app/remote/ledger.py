"""What the paid APIs cost: one ``remote_calls`` row per paid image, summed for the budgets and the cost report."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from serve_app.db import utcnow
from serve_app.db.models import RemoteCall
from serve_app.observability.metrics import metrics

__all__ = ["CostLedger", "start_of_day"]


def start_of_day(now: datetime | None = None) -> datetime:
    """Midnight UTC of ``now``'s day: where a daily budget starts counting."""
    now = now or utcnow()
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class CostLedger:
    """The ledger over the metadata database.

    Args:
        engine: The metadata database.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def record(
        self,
        backend: str,
        cost_usd: float,
        *,
        job_id: uuid.UUID | None = None,
        image_id: uuid.UUID | str | None = None,
        source: str = "http",
    ) -> None:
        """Adds one paid image, and its cost to the ``limner_remote_cost_usd_total`` counter."""
        row = RemoteCall(
            backend=backend,
            cost_usd=float(cost_usd),
            job_id=job_id,
            image_id=None if image_id is None else uuid.UUID(str(image_id)),
            source=source,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        metrics().remote_cost(backend, row.cost_usd)  # once committed: the counter agrees with the ledger

    async def spent(self, backend: str, since: datetime) -> float:
        """What ``backend`` has cost since ``since``."""
        query = select(func.coalesce(func.sum(RemoteCall.cost_usd), 0.0)).where(
            RemoteCall.backend == backend, RemoteCall.created_at >= since
        )
        async with self._sessions() as session:
            return float((await session.execute(query)).scalar_one())

    async def summary(self, since: datetime) -> dict[str, Any]:
        """``{since, total_usd, by_backend, by_source}`` of every paid image since ``since``."""
        out: dict[str, Any] = {"since": since.isoformat(), "total_usd": 0.0, "by_backend": {}, "by_source": {}}
        async with self._sessions() as session:
            for column, key in ((RemoteCall.backend, "by_backend"), (RemoteCall.source, "by_source")):
                query = (
                    select(column, func.sum(RemoteCall.cost_usd))
                    .where(RemoteCall.created_at >= since)
                    .group_by(column)
                    .order_by(column)
                )
                out[key] = {str(name): round(float(total), 6) for name, total in (await session.execute(query)).all()}
        out["total_usd"] = round(sum(out["by_backend"].values()), 6)
        return out
