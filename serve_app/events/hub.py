"""The message hub: limner's domain events on a Redis Stream, for the other services of a game platform.

The event bus (:mod:`.redis`, :mod:`.memory`) carries job events between limner's own replicas over pub/sub and
keeps nothing. The hub is the outward face: every committed job transition, every stored image and every theme
change is appended to one capped stream (``limner:events`` by default; ``XADD ... MAXLEN ~ n``), where any number
of consumer groups read it at their own pace. A consumer that was away resumes from the last stream id it
acknowledged (``XREADGROUP`` with ``>`` for new entries, ``0`` for its pending ones), so state resynchronises by
stream id; what fell off the cap is still in limner's own records (``GET /api/v2/images/jobs/{id}/events``).

Each stream entry has two fields: ``type`` (for cheap filtering) and ``event``, a JSON document (docs/EVENTS.md
has the schema)::

    {"schema": "limner.event/1", "id": "<uuid>", "type": "job.succeeded", "time": "<ISO 8601 UTC>",
     "subject": "job/<job id>", "tenant": "<tenant>", "data": {...}}

``tenant`` is whose job, image or theme it is: the tenant the work was scoped to when it happened (the request's
key, or the job's own tenant while it runs; ``""`` with auth off), so a consumer serving one tenant filters on it.

Types: ``job.accepted``, ``job.started``, ``job.progress``, ``job.retrying``, ``job.succeeded``, ``job.failed``,
``job.cancelled``, ``image.created``, ``theme.updated``. Events are appended after their commit, never inside it:
a publish that fails is logged and dropped (the job, the image, the theme are unaffected), so the hub is at most
once per event across a crash between the commit and the append. Enabled whenever ``LIMNER_REDIS_URL`` is set
(``hub.enabled: false`` turns it off).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from serve_app.auth.tenant import owner_tenant
from serve_app.events.base import Event

__all__ = ["EVENT_SCHEMA", "JOB_EVENT_TYPES", "EventHub", "NullHub", "RedisStreamHub", "domain_event"]

logger = logging.getLogger("ray.serve.limner.events")

EVENT_SCHEMA = "limner.event/1"

JOB_EVENT_TYPES: dict[str, str] = {
    "queued": "job.accepted",
    "started": "job.started",
    "progress": "job.progress",
    "retrying": "job.retrying",
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
}
"""Job log event → domain event. The rest (``cancel_requested``, ``released``, ``backend``) stay internal: a
released job is queued again and starts again, which the hub reports."""


def domain_event(type: str, subject: str, data: dict[str, Any], *, time: datetime | None = None) -> dict[str, Any]:
    """The JSON document of one domain event (its ``tenant``: the current scope's, see the module docstring)."""
    return {
        "schema": EVENT_SCHEMA,
        "id": str(uuid.uuid4()),
        "type": type,
        "time": (time or datetime.now(UTC)).isoformat(),
        "subject": subject,
        "tenant": owner_tenant(),
        "data": data,
    }


class EventHub(Protocol):
    """Where domain events go."""

    async def publish(self, type: str, subject: str, data: dict[str, Any], *, time: datetime | None = None) -> None:
        """Appends one event; never raises (a failure is logged)."""
        ...

    async def job_event(self, event: Event) -> None:
        """The domain event of a committed job event, if it has one."""
        ...


class NullHub:
    """No hub (no Redis configured): events go nowhere."""

    async def publish(self, type: str, subject: str, data: dict[str, Any], *, time: datetime | None = None) -> None:
        return None

    async def job_event(self, event: Event) -> None:
        return None


class RedisStreamHub:
    """Appends domain events to a capped Redis Stream.

    Args:
        client: A ``redis.asyncio`` client (the services' shared, bounded pool).
        stream: The stream's key.
        maxlen: About how many entries the stream keeps (approximate trimming: Redis trims whole macro nodes,
            so it may hold up to about a hundred more).
    """

    def __init__(self, client: Any, *, stream: str = "limner:events", maxlen: int = 100_000) -> None:
        self._client = client
        self.stream = stream
        self._maxlen = maxlen

    async def publish(self, type: str, subject: str, data: dict[str, Any], *, time: datetime | None = None) -> None:
        doc = domain_event(type, subject, data, time=time)
        try:
            await self._client.xadd(
                self.stream,
                {"type": type, "event": json.dumps(doc, separators=(",", ":"), default=str)},
                maxlen=self._maxlen,
                approximate=True,
            )
        except Exception:  # the hub is outward news: it never fails what it reports
            logger.exception("hub: could not append %s for %s to %s", type, subject, self.stream)

    async def job_event(self, event: Event) -> None:
        type = JOB_EVENT_TYPES.get(event.type)
        if type is None:
            return
        data = {"job_id": event.job_id, "seq": event.seq, **event.data}
        await self.publish(type, f"job/{event.job_id}", data, time=event.created_at)
