"""Caches in Redis, shared by every ingress replica and node.

Single-flight works on two levels: callers in one process share one task (as in the memory backend), and
processes share through a lock key ``{prefix}lock:{key}`` taken with ``SET NX PX``. The lock holder
computes and stores the value (refreshing the lock while it works); the others poll for the value with
backoff. If the holder fails, its lock is released and a waiter takes over; if the holder vanishes
without releasing, the lock expires; and a waiter that has waited ``wait_timeout_s`` computes anyway, so
a stuck lock can slow a request but never hang it. When every caller in the holder's process gives up, its
computation is cancelled and its lock released at once (a waiter elsewhere then takes over).

The byte cache keeps its least-recently-used order in a sorted set and its byte total in a counter, both
updated atomically by Lua scripts. The scripts build key names from the prefix, so they need one Redis
(or one hash slot), not a cluster spread.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as aioredis

from serve_app.cache.base import CacheStats, ComputeFactory, JsonValue, dump_value, load_value
from serve_app.cache.singleflight import SingleFlight
from serve_app.observability.metrics import metrics

__all__ = ["RedisByteCache", "RedisResultCache", "redis_client"]


def redis_client(url: str, *, max_connections: int, wait_s: float = 20.0) -> aioredis.Redis:
    """One client over a bounded pool, for a process to share between its caches and its event bus.

    A caller that finds every connection busy waits for one (up to ``wait_s``, then ``ConnectionError``)
    instead of opening another, so the process never holds more than ``max_connections`` to Redis.
    ``aclose()`` on the client closes the pool: its maker does that, after the users are closed.

    Args:
        url: A Redis URL.
        max_connections: The bound (the event bus keeps one for its shared pub/sub connection).
        wait_s: Longest wait for a free connection.
    """
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=wait_s)
    return aioredis.Redis.from_pool(pool)


# Delete the lock only if we still hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Extend the lock only if we still hold it.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_BYTES_GET = """
local v = redis.call('GET', ARGV[1] .. 'data:' .. ARGV[2])
if v then
  redis.call('ZADD', ARGV[1] .. 'lru', redis.call('INCR', ARGV[1] .. 'tick'), ARGV[2])
end
return v
"""
# ARGV: prefix, key, data, max_bytes. Returns the number of entries evicted.
_BYTES_SET = """
local prefix, key, data, max = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local dkey = prefix .. 'data:' .. key
local old = redis.call('STRLEN', dkey)
redis.call('SET', dkey, data)
redis.call('ZADD', prefix .. 'lru', redis.call('INCR', prefix .. 'tick'), key)
local total = redis.call('INCRBY', prefix .. 'total', string.len(data) - old)
local evicted = 0
while total > max do
  local oldest = redis.call('ZRANGE', prefix .. 'lru', 0, 0)
  if #oldest == 0 then break end
  local okey = prefix .. 'data:' .. oldest[1]
  local len = redis.call('STRLEN', okey)
  redis.call('DEL', okey)
  redis.call('ZREM', prefix .. 'lru', oldest[1])
  total = redis.call('INCRBY', prefix .. 'total', -len)
  evicted = evicted + 1
end
return evicted
"""
_BYTES_DEL = """
local dkey = ARGV[1] .. 'data:' .. ARGV[2]
local len = redis.call('STRLEN', dkey)
redis.call('DEL', dkey)
redis.call('ZREM', ARGV[1] .. 'lru', ARGV[2])
if len > 0 then redis.call('INCRBY', ARGV[1] .. 'total', -len) end
return len
"""


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class RedisResultCache:
    """Result cache in Redis with cross-process single-flight.

    Args:
        url: A Redis URL, e.g. ``redis://127.0.0.1:6379/0`` (the cache then owns its client), or a client to
            share (:func:`redis_client`; whoever made it closes it).
        prefix: Prepended to every key.
        lock_ttl_s: How long a computation's lock lives unless refreshed (it is refreshed every third of
            this while the computation runs, so it only lapses if the process dies).
        wait_timeout_s: How long a caller waits for another process's computation before computing itself.
        poll_interval_s: First wait between polls for another process's result (doubling up to
            ``poll_max_s``).
        poll_max_s: Longest wait between polls.
    """

    def __init__(
        self,
        url: str | aioredis.Redis,
        *,
        prefix: str = "limner:",
        lock_ttl_s: float = 30.0,
        wait_timeout_s: float = 300.0,
        poll_interval_s: float = 0.01,
        poll_max_s: float = 0.25,
    ) -> None:
        if lock_ttl_s <= 0 or wait_timeout_s < 0 or poll_interval_s <= 0 or poll_max_s < poll_interval_s:
            raise ValueError("lock_ttl_s and poll_interval_s must be > 0, poll_max_s >= poll_interval_s")
        self._owns_client = isinstance(url, str)
        self._client: aioredis.Redis = aioredis.Redis.from_url(url) if isinstance(url, str) else url
        self._prefix = prefix
        self._lock_ttl_ms = int(lock_ttl_s * 1000)
        self._wait_timeout_s = wait_timeout_s
        self._poll_interval_s = poll_interval_s
        self._poll_max_s = poll_max_s
        self._release = self._client.register_script(_RELEASE)
        self._extend = self._client.register_script(_EXTEND)
        self._flight: SingleFlight[tuple[str, bool]] = SingleFlight()
        self._stats = CacheStats()

    def waiting(self, key: str) -> int:
        """Callers in this process waiting for the computation of ``key`` now (0 when none runs)."""
        return self._flight.waiters(key)

    @property
    def stats(self) -> CacheStats:
        """Hit and miss counters (this process's)."""
        return self._stats

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client."""
        return self._client

    def _value_key(self, key: str) -> str:
        return f"{self._prefix}result:{key}"

    def _lock_key(self, key: str) -> str:
        return f"{self._prefix}lock:{key}"

    async def _lookup(self, key: str) -> JsonValue | None:
        raw = await self._client.get(self._value_key(key))
        return None if raw is None else load_value(raw)

    async def get(self, key: str) -> JsonValue | None:
        """Return the cached value, or ``None``."""
        value = await self._lookup(key)
        if value is None:
            self._stats.misses += 1
            metrics().cache_lookup("result", "miss")
        else:
            self._stats.hits += 1
            metrics().cache_lookup("result", "hit")
        return value

    async def set(self, key: str, value: JsonValue, *, ttl_s: float | None = None) -> None:
        """Cache ``value``.

        Raises:
            CacheValueError: ``value`` is ``None`` or not JSON.
        """
        text = dump_value(value)
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        await self._client.set(self._value_key(key), text, px=px)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await self._client.delete(self._value_key(key))

    async def get_or_compute(self, key: str, factory: ComputeFactory, *, ttl_s: float | None = None) -> JsonValue:
        """Return the cached value, or compute it once across processes and cache it.

        The computation stops (is cancelled, and its lock released) when the last caller in this process
        waiting for it is cancelled; a caller in another process then takes the lock and computes afresh.

        Raises:
            Exception: Whatever ``factory`` raised, to the callers in this process that shared it.
            CacheValueError: ``factory`` returned something that cannot be cached.
        """
        value = await self._lookup(key)
        if value is not None:
            self._stats.hits += 1
            metrics().cache_lookup("result", "hit")
            return value
        # The flight hands out JSON text, so each caller gets its own copy of the value.
        (text, computed_here), shared = await self._flight.run(key, lambda: self._compute(key, factory, ttl_s))
        if computed_here and not shared:
            self._stats.misses += 1
            metrics().cache_lookup("result", "miss")
        else:
            self._stats.coalesced += 1
            metrics().cache_lookup("result", "coalesced")
        return load_value(text)

    async def _compute(self, key: str, factory: ComputeFactory, ttl_s: float | None) -> tuple[str, bool]:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._wait_timeout_s
        delay = self._poll_interval_s
        lock = self._lock_key(key)
        while True:
            token = uuid.uuid4().hex
            if await self._client.set(lock, token, nx=True, px=self._lock_ttl_ms):
                try:
                    # Another process may have finished between our lookup and our lock.
                    raw = await self._client.get(self._value_key(key))
                    if raw is not None:
                        return _text(raw), False
                    return await self._compute_holding(lock, token, key, factory, ttl_s), True
                finally:
                    await self._release(keys=[lock], args=[token])
            raw = await self._client.get(self._value_key(key))
            if raw is not None:
                return _text(raw), False
            if loop.time() >= give_up_at:
                # The holder is taking too long (or its lock is stuck): compute rather than wait forever.
                result = await factory()
                await self.set(key, result, ttl_s=ttl_s)
                return dump_value(result), True
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._poll_max_s)

    async def _compute_holding(
        self, lock: str, token: str, key: str, factory: ComputeFactory, ttl_s: float | None
    ) -> str:
        keeper = asyncio.get_running_loop().create_task(self._keep_lock(lock, token))
        try:
            result = await factory()
        finally:
            keeper.cancel()
            try:
                await keeper
            except asyncio.CancelledError:
                pass
        await self.set(key, result, ttl_s=ttl_s)
        return dump_value(result)

    async def _keep_lock(self, lock: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lock_ttl_ms / 3000)
            if not await self._extend(keys=[lock], args=[token, self._lock_ttl_ms]):
                return  # lost it (expired during a stall): the value still gets written, harmlessly

    async def aclose(self) -> None:
        """Close the client, if the cache made it."""
        if self._owns_client:
            await self._client.aclose()


class RedisByteCache:
    """Hot asset bytes in Redis within ``max_bytes``, least recently used evicted first.

    Args:
        url: A Redis URL (the cache then owns its client), or a client to share (:func:`redis_client`).
        max_bytes: The budget across every process sharing ``prefix``.
        prefix: Prepended to every key.
        max_item_bytes: Larger items are not cached (default: a quarter of the budget).
    """

    def __init__(
        self, url: str | aioredis.Redis, *, max_bytes: int, prefix: str = "limner:", max_item_bytes: int | None = None
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self._owns_client = isinstance(url, str)
        self._client: aioredis.Redis = aioredis.Redis.from_url(url) if isinstance(url, str) else url
        self._prefix = f"{prefix}bytes:"
        self._max_bytes = max_bytes
        self._max_item = max_item_bytes if max_item_bytes is not None else max(1, max_bytes // 4)
        self._get = self._client.register_script(_BYTES_GET)
        self._set = self._client.register_script(_BYTES_SET)
        self._del = self._client.register_script(_BYTES_DEL)
        self._stats = CacheStats()

    @property
    def stats(self) -> CacheStats:
        """Hit, miss and eviction counters (this process's)."""
        return self._stats

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client."""
        return self._client

    @property
    def max_bytes(self) -> int:
        """The budget."""
        return self._max_bytes

    async def get(self, key: str) -> bytes | None:
        """Return the bytes, or ``None``."""
        data: Any = await self._get(args=[self._prefix, key])
        if data is None:
            self._stats.misses += 1
            metrics().cache_lookup("asset", "miss")
            return None
        self._stats.hits += 1
        metrics().cache_lookup("asset", "hit")
        return bytes(data)

    async def set(self, key: str, data: bytes) -> bool:
        """Cache ``data``; return ``False`` if it is larger than the item limit."""
        if len(data) > self._max_item or len(data) > self._max_bytes:
            return False
        evicted = await self._set(args=[self._prefix, key, bytes(data), self._max_bytes])
        self._stats.evictions += int(evicted)
        return True

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await self._del(args=[self._prefix, key])

    async def total_bytes(self) -> int:
        """Bytes held now (across every process sharing the prefix)."""
        raw = await self._client.get(f"{self._prefix}total")
        return 0 if raw is None else int(raw)

    async def aclose(self) -> None:
        """Close the client, if the cache made it."""
        if self._owns_client:
            await self._client.aclose()
