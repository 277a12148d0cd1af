"""The job event bus: what a job's subscribers (SSE streams, the ZMQ bridge, a cancelling runner) hear.

The database's ``job_events`` table is the record (``serve_app.jobs`` writes it, with a gap-free ``seq``
per job); the bus only fans events out live, so a subscriber that misses something catches up from the
table with ``events_since(seq)``. The safe order for a resumable stream is: subscribe, read history from
the table, then take live events, skipping any whose ``seq`` was already sent.

Exceptions::

    EventBusError
    └── SubscriptionLagged   a subscriber fell too far behind; resume from the database

Backends: :mod:`serve_app.events.memory` (one process) and :mod:`serve_app.events.redis` (Redis pub/sub,
across processes and nodes).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

__all__ = ["Event", "EventBus", "EventBusError", "Subscription", "SubscriptionLagged"]


class EventBusError(Exception):
    """Base class for event bus failures."""


class SubscriptionLagged(EventBusError):
    """The subscriber did not keep up and events were dropped; resume from the job's event log."""

    def __init__(self, job_id: str | None, dropped_after_seq: int | None = None) -> None:
        super().__init__(job_id, dropped_after_seq)
        self.job_id = job_id
        self.dropped_after_seq = dropped_after_seq

    def __str__(self) -> str:
        return f"subscription to job {self.job_id or '*'} fell behind after seq {self.dropped_after_seq}"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a job.

    Attributes:
        job_id: The job's id as a string.
        type: ``queued``, ``started``, ``progress``, ``succeeded``, ``failed``, ``retrying``, ``dead``,
            ``cancel_requested``, ``cancelled``.
        data: JSON-serialisable details (``step`` and ``total`` for progress, ``image_id`` on success...).
        seq: The event's position in the job's log (1, 2, 3, ...); ``None`` for an event not recorded.
        created_at: When it happened (aware UTC).
    """

    job_id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> str:
        """Serialise to a JSON object string."""
        return json.dumps(
            {
                "job_id": self.job_id,
                "type": self.type,
                "data": self.data,
                "seq": self.seq,
                "created_at": self.created_at.isoformat(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Parse what :meth:`to_json` wrote.

        Raises:
            ValueError: ``text`` is not such an object.
        """
        try:
            raw = json.loads(text)
            return cls(
                job_id=str(raw["job_id"]),
                type=str(raw["type"]),
                data=dict(raw["data"]),
                seq=None if raw["seq"] is None else int(raw["seq"]),
                created_at=datetime.fromisoformat(raw["created_at"]),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an event: {text!r:.200}") from exc


class Subscription(AsyncIterator[Event]):
    """A live feed of events, established by ``async with`` before anything is read.

    Iterate it (``async for event in sub``) or call :meth:`get` with a timeout, for example to send SSE
    keep-alives while nothing happens. Iteration raises :class:`SubscriptionLagged` if events were dropped.
    """

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        event = await self.get(None)
        if event is None:  # only a closed subscription answers None without a timeout
            raise StopAsyncIteration
        return event

    async def start(self) -> None:
        """Start listening; events published after this returns are delivered."""
        raise NotImplementedError

    async def get(self, timeout: float | None) -> Event | None:
        """Wait for the next event.

        Args:
            timeout: Seconds to wait; ``None`` waits until an event comes or the subscription closes.

        Returns:
            The event, or ``None`` on timeout or once closed.

        Raises:
            SubscriptionLagged: Events were dropped because this subscriber fell behind.
        """
        raise NotImplementedError

    async def aclose(self) -> None:
        """Stop listening and release resources (idempotent)."""
        raise NotImplementedError


@runtime_checkable
class EventBus(Protocol):
    """Publishes job events and hands out subscriptions."""

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to every current subscriber of its job and of all jobs."""
        ...

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """Return a subscription to one job's events, or to every job's when ``job_id`` is ``None``.

        Use it as ``async with bus.subscribe(job_id) as sub:`` so it is listening before you read history.
        """
        ...

    async def aclose(self) -> None:
        """Close every subscription and release connections."""
        ...
