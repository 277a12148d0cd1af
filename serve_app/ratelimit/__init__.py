"""Per-key inbound rate limits (GCRA token buckets) in-process or in Redis, and their IETF headers."""

from __future__ import annotations

import redis.asyncio as aioredis

from serve_app.ratelimit.base import Decision, Rate, RateLimiter, headers
from serve_app.ratelimit.memory import MemoryRateLimiter
from serve_app.ratelimit.redis import RedisRateLimiter

__all__ = [
    "Decision",
    "MemoryRateLimiter",
    "Rate",
    "RateLimiter",
    "RedisRateLimiter",
    "headers",
    "open_ratelimiter",
]


def open_ratelimiter(redis_url: str | aioredis.Redis | None, *, prefix: str = "limner:") -> RateLimiter:
    """The limiter for a deployment: in memory without Redis, else shared through Redis.

    Nothing connects here; ``close()`` the limiter when done (it closes a client it made from a URL, not one
    passed in).

    Args:
        redis_url: ``None`` for one process's memory; a Redis URL, or a client to share, for every replica.
        prefix: Redis key prefix (keys are ``{prefix}rl:{key}``).
    """
    if redis_url is None:
        return MemoryRateLimiter()
    return RedisRateLimiter(redis_url, prefix=prefix)
