"""Event bus over Redis pub/sub: carries job events between ingress replicas, dispatchers and nodes.

Each job has a channel ``{prefix}events:job:{job_id}``; every event is also published on
``{prefix}events:all`` for all-jobs subscribers (the ZMQ bridge). Pub/sub keeps nothing: a subscriber that
was not listening, or whose connection dropped, catches up from the job's event log in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serve_app.events.base import Event, EventBusError, Subscription, SubscriptionLagged

__all__ = ["RedisEventBus", "RedisSubscription"]

# How long one blocking read waits before checking whether the subscription was closed. A read waits on
# the socket only (no command is sent), so a short interval costs nothing while idle.
_POLL_S = 0.2


class RedisSubscription(Subscription):
    """A subscription to one Redis channel, on its own connection."""

    def __init__(self, bus: RedisEventBus, job_id: str | None, channel: str) -> None:
        self._bus = bus
        self._job_id = job_id
        self._channel = channel
        self._pubsub: Any = None
        self._last_seq: int | None = None
        self._closed = False
        self._readers = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        if self._bus.closed:
            raise EventBusError("event bus is closed")
        self._pubsub = self._bus.client.pubsub()
        await self._pubsub.subscribe(self._channel)
        # SUBSCRIBE is only in effect once Redis confirms it; wait for that so nothing published after
        # start() returns can be missed.
        while True:
            message = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=5.0)
            if message is None:
                await self.aclose()
                raise EventBusError(f"redis did not confirm the subscription to {self._channel}")
            if message["type"] == "subscribe":
                break
        self._bus._track(self)

    async def get(self, timeout: float | None) -> Event | None:
        if self._pubsub is None:
            raise EventBusError("subscription not started: use `async with bus.subscribe(...)`")
        self._readers += 1
        self._idle.clear()
        try:
            return await self._read(timeout)
        finally:
            self._readers -= 1
            if self._readers == 0:
                self._idle.set()

    async def _read(self, timeout: float | None) -> Event | None:
        remaining = timeout
        while not self._closed:
            wait = _POLL_S if remaining is None else min(_POLL_S, max(remaining, 0.0))
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if self._closed:
                    return None
                raise SubscriptionLagged(self._job_id, self._last_seq) from exc
            if message is not None and message.get("type") == "message":
                event = Event.from_json(message["data"])
                if event.seq is not None:
                    self._last_seq = event.seq
                return event
            if remaining is not None:
                remaining -= wait
                if remaining <= 0:
                    return None
        return None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._untrack(self)
        if self._pubsub is not None:
            # Let a reader blocked on the socket notice the close first: closing the connection under it
            # would make redis-py reconnect (and leak) that connection.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), _POLL_S * 5)
            try:
                await self._pubsub.aclose()
            except (RedisConnectionError, RedisTimeoutError):
                pass  # the connection is being thrown away either way


class RedisEventBus:
    """Publish and subscribe to job events through Redis.

    Args:
        url: A Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        prefix: Prepended to every channel name, so several deployments can share one Redis.
    """

    def __init__(self, url: str, *, prefix: str = "limner:") -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(url)
        self._prefix = prefix
        self._subs: set[RedisSubscription] = set()
        self._closed = False

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client."""
        return self._client

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def channel(self, job_id: str | None) -> str:
        """Return the channel for ``job_id``, or the all-jobs channel for ``None``."""
        if job_id is None:
            return f"{self._prefix}events:all"
        return f"{self._prefix}events:job:{job_id}"

    def _track(self, sub: RedisSubscription) -> None:
        self._subs.add(sub)

    def _untrack(self, sub: RedisSubscription) -> None:
        self._subs.discard(sub)

    async def publish(self, event: Event) -> None:
        """Publish ``event`` on its job's channel and on the all-jobs channel."""
        if self._closed:
            raise EventBusError("event bus is closed")
        body = event.to_json()
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.publish(self.channel(event.job_id), body)
            pipe.publish(self.channel(None), body)
            await pipe.execute()

    def subscribe(self, job_id: str | None = None) -> RedisSubscription:
        """Return a subscription (enter it with ``async with``)."""
        key = None if job_id is None else str(job_id)
        return RedisSubscription(self, key, self.channel(key))

    async def aclose(self) -> None:
        """Close every subscription and the client."""
        if self._closed:
            return
        self._closed = True
        for sub in list(self._subs):
            await sub.aclose()
        await self._client.aclose()
