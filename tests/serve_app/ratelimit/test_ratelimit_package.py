"""The package surface: ``__all__``, ``open_ratelimiter``, and no connection before the first call."""

from __future__ import annotations

import importlib
import inspect

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from serve_app.ratelimit import MemoryRateLimiter, Rate, RateLimiter, RedisRateLimiter, open_ratelimiter

MODULES = ["serve_app.ratelimit", "serve_app.ratelimit.base", "serve_app.ratelimit.memory", "serve_app.ratelimit.redis"]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_real_documented_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for attr in exported:
        value = getattr(module, attr)  # AttributeError fails the test
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name}.{attr} has no docstring"


@pytest.mark.parametrize("name", MODULES)
def test_public_classes_and_functions_are_exported(name: str) -> None:
    module = importlib.import_module(name)
    for attr, value in vars(module).items():
        if attr.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if value.__module__ == name:
            assert attr in module.__all__, f"{name}.{attr} is public but not in __all__"


async def test_open_ratelimiter_without_redis_is_in_memory() -> None:
    limiter = open_ratelimiter(None)
    assert isinstance(limiter, MemoryRateLimiter) and isinstance(limiter, RateLimiter)
    await limiter.close()


async def test_nothing_connects_before_the_first_call() -> None:
    # Port 1 refuses connections: constructing must not notice, the first hit must.
    limiter = open_ratelimiter("redis://127.0.0.1:1/0")
    assert isinstance(limiter, RedisRateLimiter)
    try:
        with pytest.raises(RedisConnectionError):
            await limiter.hit("client", Rate("requests", 5, 60))
    finally:
        await limiter.close()


@pytest.mark.redis
async def test_open_ratelimiter_with_a_url_shares_one_quota(redis_server_url: str, redis_prefix: str) -> None:
    one = open_ratelimiter(redis_server_url, prefix=redis_prefix)
    client = aioredis.Redis.from_url(redis_server_url)
    two = open_ratelimiter(client, prefix=redis_prefix)
    rate = Rate("requests", 3, 60)
    try:
        assert (await one.hit("client", rate, cost=2)).remaining == 1
        assert (await two.hit("client", rate)).remaining == 0
        assert not (await one.hit("client", rate)).allowed
    finally:
        await one.close()
        await two.close()
        await client.aclose()
