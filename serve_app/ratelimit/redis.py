"""Rate limits in Redis, shared by every ingress replica and node.

Each key is one hash ``{prefix}rl:{key}`` (``limner:rl:...`` by default) holding, per rate, the bucket's
debt and the server time it was last written (fields ``{name}:{limit}:{window_ms}:d`` and ``...:t``). One
Lua script reads and updates it, so a hit is atomic across processes, and it reads the clock with the
server's ``TIME``, so replicas with skewed clocks still share one timeline. The arithmetic is
:func:`serve_app.ratelimit.base.gcra`, line for line, on integers kept below 2**50 (exact in Lua's doubles).

Every write sets the hash to expire when its fullest bucket has drained (never sooner than it already
would), so idle keys vanish. The script touches one key, so it also runs on a cluster.

Why not the ``limits`` package: since 4.2 it can drive redis-py's asyncio client, but it offers fixed,
moving and sliding windows, not a continuously refilling bucket; its moving window stores one list entry
per unit and stamps hits with the client's clock; and it builds its own client from a URI, where here the
process shares one bounded pool (:func:`serve_app.cache.redis.redis_client`).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from serve_app.ratelimit.base import Decision, Rate, check_cost, to_decision

__all__ = ["RedisRateLimiter"]

# KEYS[1]: the key's hash. ARGV: bucket id, limit, window in ms, cost (0 = peek: read only).
# Returns {allowed (0/1), remaining, debt after, retry debt (-2 none, -1 cost over the limit)}.
# Numbers go back to Redis through string.format('%d'): tostring() would print 1e+15 for large ones.
_GCRA = """
local d_field, t_field = ARGV[1] .. ':d', ARGV[1] .. ':t'
local limit, period, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cap = limit * period
local debt = 0
local state = redis.call('HMGET', KEYS[1], d_field, t_field)
if state[1] and state[2] then
  local elapsed = math.min(math.max(0, now - tonumber(state[2])), period)
  debt = math.max(0, tonumber(state[1]) - elapsed * limit)
end
if cost == 0 then
  local available = math.floor((cap - debt) / period)
  if available >= 1 then return {1, available, debt, -2} end
  return {0, 0, debt, debt + period - cap}
end
if cost > limit then return {0, 0, debt, -1} end
local new = debt + cost * period
if new > cap then return {0, 0, debt, new - cap} end
redis.call('HSET', KEYS[1], d_field, string.format('%d', new), t_field, string.format('%d', now))
local ttl = math.ceil(new / limit)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl)) end
return {1, math.floor((cap - new) / period), new, -2}
"""


class RedisRateLimiter:
    """GCRA buckets in Redis, one quota across every process sharing ``prefix``.

    Nothing connects until the first call.

    Args:
        redis: A client to share (:func:`serve_app.cache.redis.redis_client`; whoever made it closes it), or
            a Redis URL (the limiter then owns its client and closes it).
        prefix: Prepended to every key, before ``rl:``.
    """

    def __init__(self, redis: aioredis.Redis | str, *, prefix: str = "limner:") -> None:
        self._owns_client = isinstance(redis, str)
        self._client: aioredis.Redis = aioredis.Redis.from_url(redis) if isinstance(redis, str) else redis
        self._prefix = f"{prefix}rl:"
        self._gcra = self._client.register_script(_GCRA)

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client."""
        return self._client

    def redis_key(self, key: str) -> str:
        """The Redis key holding ``key``'s buckets."""
        return f"{self._prefix}{key}"

    async def _run(self, key: str, rate: Rate, cost: int) -> Decision:
        args = [rate.bucket_id, rate.limit, rate.window_ms, cost]
        reply: Any = await self._gcra(keys=[self.redis_key(key)], args=args)
        allowed, remaining, debt, retry = (int(v) for v in reply)
        return to_decision(rate, bool(allowed), remaining, debt, None if retry == -2 else retry)

    async def hit(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Atomically consume ``cost`` units of ``key``'s ``rate`` across processes, or refuse, consuming nothing.

        Raises:
            ValueError: ``cost`` is not an int >= 1.
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        check_cost(cost)
        return await self._run(key, rate, cost)

    async def peek(self, key: str, rate: Rate) -> Decision:
        """The state of ``key``'s ``rate`` without consuming (``allowed``: one unit is available now).

        Raises:
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        return await self._run(key, rate, 0)

    async def reset(self, key: str) -> None:
        """Forget ``key`` (every rate of it)."""
        await self._client.delete(self.redis_key(key))

    async def close(self) -> None:
        """Close the client, if the limiter made it."""
        if self._owns_client:
            await self._client.aclose()
