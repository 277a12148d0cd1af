"""Contract suite for the job event bus, in memory and over Redis pub/sub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from serve_app.events import Event, EventBus, EventBusError, MemoryEventBus, RedisEventBus, SubscriptionLagged

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], EventBus]]:
    """Makes buses that share one channel space (for Redis: separate connections, like separate processes)."""
    made: list[EventBus] = []
    shared = MemoryEventBus()

    def factory() -> EventBus:
        if request.param == "memory":
            return shared
        bus = RedisEventBus(request.getfixturevalue("redis_server_url"), prefix=request.getfixturevalue("redis_prefix"))
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        await bus.aclose()
    await shared.aclose()


def _ev(job: str, seq: int, type: str = "progress", **data: object) -> Event:
    return Event(job_id=job, type=type, data=dict(data), seq=seq)


async def _take(sub: AsyncIterator[Event], n: int) -> list[Event]:
    out = []
    async for event in sub:
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_subscribers_receive_their_jobs_events_in_order(make_bus: Callable[[], EventBus]) -> None:
    publisher, listener = make_bus(), make_bus()
    async with listener.subscribe("job-1") as sub, listener.subscribe("job-1") as twin:
        for seq in (1, 2, 3):
            await publisher.publish(_ev("job-1", seq, step=seq, total=3))
        await publisher.publish(_ev("job-2", 1))  # someone else's job
        await publisher.publish(_ev("job-1", 4, "succeeded", image_id="img"))
        got = await asyncio.wait_for(_take(sub, 4), 5)
        assert [e.seq for e in got] == [1, 2, 3, 4]
        assert got[0].data == {"step": 1, "total": 3} and got[0].job_id == "job-1"
        assert got[-1].type == "succeeded"
        assert [e.seq for e in await asyncio.wait_for(_take(twin, 4), 5)] == [1, 2, 3, 4]
        assert await sub.get(timeout=0.05) is None  # job-2's event never arrives here


async def test_events_round_trip_intact(make_bus: Callable[[], EventBus]) -> None:
    publisher, listener = make_bus(), make_bus()
    event = Event(job_id="j", type="failed", data={"error": "ünïcode ✓", "nested": {"a": [1, 2.5, None]}}, seq=9)
    async with listener.subscribe("j") as sub:
        await publisher.publish(event)
        assert await sub.get(timeout=5) == event


async def test_all_jobs_subscription(make_bus: Callable[[], EventBus]) -> None:
    publisher, listener = make_bus(), make_bus()
    async with listener.subscribe(None) as everything:
        await publisher.publish(_ev("a", 1))
        await publisher.publish(_ev("b", 1))
        got = await asyncio.wait_for(_take(everything, 2), 5)
    assert [e.job_id for e in got] == ["a", "b"]


async def test_nothing_published_before_subscribing_is_delivered(make_bus: Callable[[], EventBus]) -> None:
    publisher, listener = make_bus(), make_bus()
    await publisher.publish(_ev("j", 1))
    async with listener.subscribe("j") as sub:
        await publisher.publish(_ev("j", 2))
        first = await sub.get(timeout=5)
    assert first is not None and first.seq == 2


async def test_get_times_out_and_closing_ends_iteration(make_bus: Callable[[], EventBus]) -> None:
    bus = make_bus()
    sub = bus.subscribe("quiet")
    async with sub:
        assert await sub.get(timeout=0.05) is None
    assert await sub.get(timeout=0.05) is None
    assert [e async for e in sub] == []


async def test_closing_the_bus_ends_open_subscriptions(make_bus: Callable[[], EventBus]) -> None:
    bus = make_bus()
    async with bus.subscribe("j") as sub:
        waiting = asyncio.ensure_future(sub.get(timeout=None))
        await asyncio.sleep(0.05)
        await bus.aclose()
        assert await asyncio.wait_for(waiting, 5) is None
    with pytest.raises(EventBusError):
        await bus.publish(_ev("j", 1))


async def test_memory_subscriber_that_falls_behind_is_told_to_resume() -> None:
    bus = MemoryEventBus(max_pending=3)
    async with bus.subscribe("j") as sub:
        for seq in range(1, 7):
            await bus.publish(_ev("j", seq))
        got = [await sub.get(timeout=1) for _ in range(3)]
        assert [e.seq for e in got if e] == [1, 2, 3]
        with pytest.raises(SubscriptionLagged) as info:
            await sub.get(timeout=1)
        assert info.value.dropped_after_seq == 3  # resume from the log after seq 3
        with pytest.raises(SubscriptionLagged):
            await sub.get(timeout=1)  # and it stays lagged: no silent gap
    await bus.aclose()


def test_event_json_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        Event.from_json(b'{"type": "x"}')
    with pytest.raises(ValueError):
        Event.from_json("not json")


# -- Redis: one shared pub/sub connection per bus -------------------------------------------------------------


def _named_client(url: str, name: str, max_connections: int = 8) -> Any:
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, client_name=name)
    return aioredis.Redis.from_pool(pool)


async def _connections(url: str, name: str) -> int:
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(url)
    try:
        return sum(1 for c in await admin.client_list() if c.get("name") == name)
    finally:
        await admin.aclose()


@pytest.mark.redis
async def test_redis_subscriptions_share_one_connection(redis_server_url: str, redis_prefix: str) -> None:
    import uuid

    name = f"limner-test-{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in redis_server_url else "?"
    listener = RedisEventBus(f"{redis_server_url}{sep}client_name={name}", prefix=redis_prefix)
    publisher = RedisEventBus(redis_server_url, prefix=redis_prefix)
    jobs = [f"job-{i}" for i in range(100)]
    try:
        subs = [listener.subscribe(job) for job in jobs for _ in range(2)]  # 200 subscriptions, 100 channels
        for sub in subs:
            await sub.start()
        assert listener.channels == 100
        assert await _connections(redis_server_url, name) == 1  # not one per subscription
        for i, job in enumerate(jobs):
            await publisher.publish(_ev(job, 1, step=i))
        for sub, job in zip(subs, [j for j in jobs for _ in range(2)], strict=True):
            got = await sub.get(timeout=5)
            assert got is not None and got.job_id == job
        for sub in subs[::2]:
            await sub.aclose()
        assert listener.channels == 100  # each channel still has a subscriber
        for sub in subs[1::2]:
            await sub.aclose()
        assert listener.channels == 0
    finally:
        await listener.aclose()
        await publisher.aclose()
    assert await _connections(redis_server_url, name) == 0


@pytest.mark.redis
async def test_redis_subscribers_resume_after_the_shared_connection_drops(
    redis_server_url: str, redis_prefix: str
) -> None:
    import uuid

    name = f"limner-test-{uuid.uuid4().hex[:12]}"
    client = _named_client(redis_server_url, name)
    listener = RedisEventBus(client, prefix=redis_prefix)
    publisher = RedisEventBus(redis_server_url, prefix=redis_prefix)
    try:
        async with listener.subscribe("job-r") as sub:
            [link] = [c for c in await publisher.client.client_list() if c.get("name") == name]
            await publisher.client.client_kill_filter(_id=link["id"])  # drop the bus's shared connection
            with pytest.raises(SubscriptionLagged):
                for _ in range(100):  # the reader notices the drop on its next read
                    await sub.get(timeout=0.1)
            # Told once; it listens on: after the reconnect (and re-subscribe) new events arrive.
            for seq in range(1, 200):
                await publisher.publish(_ev("job-r", seq))
                got = await sub.get(timeout=0.1)
                if got is not None:
                    break
            assert got is not None and got.job_id == "job-r"
    finally:
        await listener.aclose()
        await publisher.aclose()
        await client.aclose()
