"""One bounded Redis pool per process, shared by the result cache, the hot-asset cache and the event bus
(finding 4 of issue 8). Connections are counted by name on the real Redis (``CLIENT LIST``)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from serve_app.cache import RedisByteCache, RedisResultCache, redis_client
from serve_app.config import AppConfig, CacheConfig, Settings
from serve_app.events import Event, RedisEventBus
from serve_app.services import open_services

pytestmark = pytest.mark.redis


async def _connections(url: str, name: str) -> int:
    admin = aioredis.Redis.from_url(url)
    try:
        return sum(1 for c in await admin.client_list() if c.get("name") == name)
    finally:
        await admin.aclose()


def _named(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


async def test_a_busy_process_stays_within_its_pool(redis_server_url: str, redis_prefix: str) -> None:
    name = f"limner-test-{uuid.uuid4().hex[:12]}"
    client = redis_client(_named(redis_server_url, name), max_connections=3)
    results = RedisResultCache(client, prefix=redis_prefix)
    hot = RedisByteCache(client, max_bytes=2**20, prefix=redis_prefix)
    events = RedisEventBus(client, prefix=redis_prefix)
    try:
        subs = [events.subscribe(f"job-{i}") for i in range(50)]
        for sub in subs:
            await sub.start()

        async def work(i: int) -> None:
            await results.set(f"k{i}", {"i": i})
            assert await results.get(f"k{i}") == {"i": i}
            assert await hot.set(f"b{i}", bytes([i % 256]) * 100)
            await events.publish(Event(job_id=f"job-{i % 50}", type="progress", seq=1))

        await asyncio.gather(*(work(i) for i in range(200)))  # 200 at once: they queue for a connection
        got = [await sub.get(timeout=5) for sub in subs]
        assert all(e is not None for e in got)
        # One held by the shared pub/sub connection, the rest used in turn; never one per caller.
        assert await _connections(redis_server_url, name) <= 3
        # The users are closed first: the shared client stays usable until its maker closes it.
        await results.aclose()
        await hot.aclose()
        await events.aclose()
        assert await client.ping()
    finally:
        await client.aclose()
    assert await _connections(redis_server_url, name) == 0


async def test_open_services_shares_one_bounded_client(redis_server_url: str, tmp_path: Path) -> None:
    config = AppConfig(cache=CacheConfig(redis_max_connections=7))
    services = await open_services(config, Settings(data_dir=str(tmp_path), redis_url=redis_server_url))
    try:
        clients = {id(services.results.client), id(services.hot_assets.client), id(services.events.client)}  # type: ignore[attr-defined]
        assert clients == {id(services.redis)}
        pool = services.redis.connection_pool
        assert isinstance(pool, aioredis.BlockingConnectionPool) and pool.max_connections == 7
    finally:
        await services.aclose()
