"""Event bus over Redis pub/sub: carries job events between ingress replicas, dispatchers and nodes.

Each job has a channel ``{prefix}events:job:{job_id}``; every event is also published on
``{prefix}events:all`` for all-jobs subscribers (the ZMQ bridge). Pub/sub keeps nothing: a subscriber that
was not listening, or whose connection dropped, catches up from the job's event log in the database.

Connections are bounded: every subscription of one bus shares **one** pub/sub connection (a reader task
fans its messages out to the subscriptions of each channel, subscribing a channel in Redis while anyone
here listens to it), and publishing uses the client's pool, which :func:`serve_app.cache.redis.redis_client`
bounds and shares with the caches. A thousand SSE streams hold one Redis connection, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serve_app.events.base import Event, EventBusError, Subscription, SubscriptionLagged

__all__ = ["RedisEventBus", "RedisSubscription"]

logger = logging.getLogger("ray.serve.limner.events")

# How long one read of the shared connection waits before looking again (a read sends nothing).
_READ_S = 1.0
# How long a new channel's SUBSCRIBE may take to be confirmed.
_CONFIRM_S = 5.0
# Waits between reads while the connection is down (doubling up to the second).
_RETRY_S, _RETRY_MAX_S = 0.1, 2.0


class RedisSubscription(Subscription):
    """A subscription to one channel, fed by its bus's shared pub/sub connection.

    Args:
        bus: The bus.
        job_id: The job, or ``None`` for every job.
        channel: Its channel.
        max_pending: Undelivered events held before the subscription is marked lagged.
    """

    def __init__(self, bus: RedisEventBus, job_id: str | None, channel: str, max_pending: int = 1000) -> None:
        self._bus = bus
        self._job_id = job_id
        self.channel = channel
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._max_pending = max_pending
        self._last_seq: int | None = None
        self._lagged = False
        self._started = False
        self._closed = False

    async def start(self) -> None:
        if self._bus.closed:
            raise EventBusError("event bus is closed")
        await self._bus._hub().add(self)
        self._started = True

    def _offer(self, event: Event) -> None:
        if self._closed or self._lagged:
            return
        if self._queue.qsize() >= self._max_pending:
            self._lag()  # never block the shared reader on a slow subscriber
            return
        self._queue.put_nowait(event)

    def _lag(self) -> None:
        if not self._closed and not self._lagged:
            self._lagged = True
            self._queue.put_nowait(None)

    def _close_from_bus(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def get(self, timeout: float | None) -> Event | None:
        if not self._started:
            raise EventBusError("subscription not started: use `async with bus.subscribe(...)`")
        if self._closed and self._queue.empty():
            return None
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if item is None:
            if self._lagged and not self._closed:
                # Tell the reader once, then carry on listening: it catches up from the database.
                while not self._queue.empty():
                    self._queue.get_nowait()
                self._lagged = False
                raise SubscriptionLagged(self._job_id, self._last_seq)
            return None
        if item.seq is not None:
            self._last_seq = item.seq
        return item

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if self._started:
            await self._bus._hub().remove(self)


class _Hub:
    """One pub/sub connection shared by every subscription of a bus."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._pubsub: Any = client.pubsub()
        self._subs: dict[str, set[RedisSubscription]] = {}
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._commands = asyncio.Lock()  # SUBSCRIBE and UNSUBSCRIBE one at a time, in order
        self._reader: asyncio.Task[None] | None = None

    @property
    def channels(self) -> int:
        """Channels subscribed for someone here."""
        return len(self._subs)

    async def add(self, sub: RedisSubscription) -> None:
        channel = sub.channel
        async with self._commands:
            subs = self._subs.setdefault(channel, set())
            subs.add(sub)
            confirmed = self._confirming.get(channel)
            if len(subs) == 1:
                confirmed = asyncio.get_running_loop().create_future()
                self._confirming[channel] = confirmed
                try:
                    await self._pubsub.subscribe(channel)
                except RedisError as exc:
                    self._forget(sub)
                    raise EventBusError(f"could not subscribe to {channel}: {exc}") from exc
                if self._reader is None or self._reader.done():
                    self._reader = asyncio.get_running_loop().create_task(self._read())
        if confirmed is not None:
            # SUBSCRIBE is only in effect once Redis confirms it: nothing published after start() is missed.
            try:
                await asyncio.wait_for(asyncio.shield(confirmed), _CONFIRM_S)
            except TimeoutError:
                await self.remove(sub)
                raise EventBusError(f"redis did not confirm the subscription to {channel}") from None

    def _forget(self, sub: RedisSubscription) -> bool:
        """Drops ``sub``; True if it was its channel's last subscriber here."""
        subs = self._subs.get(sub.channel)
        if subs is None:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self._subs[sub.channel]
        self._confirming.pop(sub.channel, None)
        return True

    async def remove(self, sub: RedisSubscription) -> None:
        async with self._commands:
            if self._forget(sub):
                with contextlib.suppress(RedisError):
                    await self._pubsub.unsubscribe(sub.channel)

    async def _read(self) -> None:
        retry = _RETRY_S
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=_READ_S)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # Whatever was published meanwhile is lost: every subscriber catches up from the database.
                logger.warning("redis event connection failed (%s); subscribers resume from the log", exc)
                for subs in self._subs.values():
                    for sub in subs:
                        sub._lag()
                await asyncio.sleep(retry)  # the next read reconnects and subscribes every channel again
                retry = min(retry * 2, _RETRY_MAX_S)
                continue
            retry = _RETRY_S
            if message is None:
                continue
            kind = message.get("type")
            channel = _text(message.get("channel", b""))
            if kind == "subscribe":
                confirmed = self._confirming.pop(channel, None)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
            elif kind == "message":
                try:
                    event = Event.from_json(message["data"])
                except ValueError:
                    logger.warning("ignoring a message on %s that is not an event", channel)
                    continue
                for sub in list(self._subs.get(channel, ())):
                    sub._offer(event)

    async def aclose(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub._close_from_bus()
        self._subs.clear()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await self._reader
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class RedisEventBus:
    """Publish and subscribe to job events through Redis.

    Args:
        redis: A Redis URL (``redis://127.0.0.1:6379/0``; the bus then owns its client) or a client to share
            (:func:`serve_app.cache.redis.redis_client`; whoever made it closes it).
        prefix: Prepended to every channel name, so several deployments can share one Redis.
        max_pending: Undelivered events one subscription may hold before it is told to resume from the log.
    """

    def __init__(self, redis: str | aioredis.Redis, *, prefix: str = "limner:", max_pending: int = 1000) -> None:
        self._owns_client = isinstance(redis, str)
        self._client: aioredis.Redis = aioredis.Redis.from_url(redis) if isinstance(redis, str) else redis
        self._prefix = prefix
        self._max_pending = max_pending
        self._shared: _Hub | None = None
        self._closed = False

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client."""
        return self._client

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def channels(self) -> int:
        """Channels this bus listens to in Redis now (one however many subscriptions each has)."""
        return 0 if self._shared is None else self._shared.channels

    def _hub(self) -> _Hub:
        if self._shared is None:
            self._shared = _Hub(self._client)
        return self._shared

    def channel(self, job_id: str | None) -> str:
        """Return the channel for ``job_id``, or the all-jobs channel for ``None``."""
        if job_id is None:
            return f"{self._prefix}events:all"
        return f"{self._prefix}events:job:{job_id}"

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
        return RedisSubscription(self, key, self.channel(key), self._max_pending)

    async def aclose(self) -> None:
        """Close every subscription, the shared pub/sub connection and (if the bus made it) the client."""
        if self._closed:
            return
        self._closed = True
        if self._shared is not None:
            await self._shared.aclose()
        if self._owns_client:
            await self._client.aclose()
