"""In-process event bus over asyncio queues (the default on one machine)."""

from __future__ import annotations

import asyncio

from serve_app.events.base import Event, EventBusError, Subscription, SubscriptionLagged

__all__ = ["MemoryEventBus", "MemorySubscription"]

_ALL = object()


class MemorySubscription(Subscription):
    """A subscription fed by :class:`MemoryEventBus`."""

    def __init__(self, bus: MemoryEventBus, job_id: str | None, max_pending: int) -> None:
        self._bus = bus
        self._job_id = job_id
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._max_pending = max_pending
        self._lagged_after: int | None = None
        self._lagged = False
        self._closed = False

    @property
    def key(self) -> object:
        """The registry key: the job id, or a sentinel for all jobs."""
        return _ALL if self._job_id is None else self._job_id

    async def start(self) -> None:
        self._bus._register(self)

    def _offer(self, event: Event) -> None:
        if self._closed or self._lagged:
            return
        if self._queue.qsize() >= self._max_pending:
            # Never block the publisher on a slow reader: mark it lagged, and let it resume from the log.
            self._lagged = True
            self._queue.put_nowait(None)
            return
        self._lagged_after = event.seq if event.seq is not None else self._lagged_after
        self._queue.put_nowait(event)

    def _close_from_bus(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def get(self, timeout: float | None) -> Event | None:
        if self._queue.empty():
            if self._closed:
                return None
            if self._lagged:
                raise SubscriptionLagged(self._job_id, self._lagged_after)
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if item is None:
            if self._lagged and not self._closed:
                raise SubscriptionLagged(self._job_id, self._lagged_after)
            return None
        return item

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._unregister(self)
        self._queue.put_nowait(None)


class MemoryEventBus:
    """Fan events out to subscribers in this process.

    Args:
        max_pending: How many undelivered events one subscriber may hold before it is marked lagged.
    """

    def __init__(self, *, max_pending: int = 1000) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._max_pending = max_pending
        self._subscribers: dict[object, set[MemorySubscription]] = {}
        self._closed = False

    def _register(self, sub: MemorySubscription) -> None:
        if self._closed:
            raise EventBusError("event bus is closed")
        self._subscribers.setdefault(sub.key, set()).add(sub)

    def _unregister(self, sub: MemorySubscription) -> None:
        subs = self._subscribers.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.key]

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to the job's subscribers and to all-jobs subscribers."""
        if self._closed:
            raise EventBusError("event bus is closed")
        for key in (event.job_id, _ALL):
            for sub in list(self._subscribers.get(key, ())):
                sub._offer(event)

    def subscribe(self, job_id: str | None = None) -> MemorySubscription:
        """Return a subscription (enter it with ``async with``)."""
        return MemorySubscription(self, None if job_id is None else str(job_id), self._max_pending)

    async def aclose(self) -> None:
        """Close every subscription."""
        self._closed = True
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub._close_from_bus()
        self._subscribers.clear()
