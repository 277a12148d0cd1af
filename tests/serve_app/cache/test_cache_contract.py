"""Contract suite for the result cache (with single-flight) and the byte cache, in memory and in Redis."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from serve_app.cache import (
    ByteCache,
    CacheValueError,
    MemoryByteCache,
    MemoryResultCache,
    RedisByteCache,
    RedisResultCache,
    ResultCache,
)

RESULT = {"image_id": "0b7e5f0c-8d0c-4f55-9f62-6f1f0b0b7c11", "sha256": "ab" * 32, "format": "png"}
BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ResultCache]:
    if request.param == "memory":
        made: ResultCache = MemoryResultCache()
    else:
        url = request.getfixturevalue("redis_server_url")
        made = RedisResultCache(url, prefix=request.getfixturevalue("redis_prefix"))
    yield made
    await made.aclose()


@pytest.fixture(params=BACKENDS)
async def byte_cache_factory(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., ByteCache]]:
    made: list[ByteCache] = []

    def factory(max_bytes: int, max_item_bytes: int | None = None) -> ByteCache:
        cache: ByteCache
        if request.param == "memory":
            cache = MemoryByteCache(max_bytes=max_bytes, max_item_bytes=max_item_bytes)
        else:
            cache = RedisByteCache(
                request.getfixturevalue("redis_server_url"),
                max_bytes=max_bytes,
                max_item_bytes=max_item_bytes,
                prefix=request.getfixturevalue("redis_prefix"),
            )
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        await cache.aclose()


class Counted:
    """A factory that counts its runs and takes a little while, so callers overlap."""

    def __init__(self, value: object = RESULT, delay: float = 0.05, fail_first: int = 0) -> None:
        self.value = value
        self.delay = delay
        self.fail_first = fail_first
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.calls <= self.fail_first:
            raise RuntimeError(f"generator replica died (call {self.calls})")
        return self.value


# -- get and set ----------------------------------------------------------------------------------------------


async def test_get_set_delete_and_counters(cache: ResultCache) -> None:
    assert await cache.get("req-1") is None
    await cache.set("req-1", RESULT)
    assert await cache.get("req-1") == RESULT
    assert await cache.get("req-1") == RESULT
    await cache.delete("req-1")
    assert await cache.get("req-1") is None
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)
    assert cache.stats.hit_rate == 0.5


async def test_values_are_copies(cache: ResultCache) -> None:
    await cache.set("req-2", {"tags": ["a"]})
    got = await cache.get("req-2")
    assert got is not None
    got["tags"].append("mutated")
    assert await cache.get("req-2") == {"tags": ["a"]}


@pytest.mark.parametrize("bad", [None, {"x": object()}, float("nan")])
async def test_uncacheable_values_are_refused(cache: ResultCache, bad: object) -> None:
    with pytest.raises(CacheValueError):
        await cache.set("req-3", bad)
    assert await cache.get("req-3") is None


async def test_entries_expire_after_their_ttl(cache: ResultCache) -> None:
    await cache.set("short", RESULT, ttl_s=0.05)
    await cache.set("long", RESULT, ttl_s=60)
    await asyncio.sleep(0.12)
    assert await cache.get("short") is None
    assert await cache.get("long") == RESULT


# -- single-flight --------------------------------------------------------------------------------------------


async def test_single_flight_runs_the_factory_once_for_concurrent_callers(cache: ResultCache) -> None:
    factory = Counted()
    results = await asyncio.gather(*(cache.get_or_compute("req-sf", factory) for _ in range(20)))
    assert factory.calls == 1
    assert results == [RESULT] * 20
    assert (cache.stats.misses, cache.stats.coalesced) == (1, 19)
    # A repeat of a finished request is a hit.
    assert await cache.get_or_compute("req-sf", factory) == RESULT
    assert factory.calls == 1 and cache.stats.hits == 1


async def test_different_keys_compute_separately(cache: ResultCache) -> None:
    factories = {k: Counted({"k": k}) for k in ("a", "b", "c")}
    results = await asyncio.gather(
        *(cache.get_or_compute(k, factories[k]) for k in itertools.islice(itertools.cycle("abc"), 12))
    )
    assert [f.calls for f in factories.values()] == [1, 1, 1]
    assert results[:3] == [{"k": "a"}, {"k": "b"}, {"k": "c"}]


async def test_failures_are_shared_but_not_cached(cache: ResultCache) -> None:
    factory = Counted(fail_first=1)
    outcomes = await asyncio.gather(
        *(cache.get_or_compute("req-fail", factory) for _ in range(5)), return_exceptions=True
    )
    assert factory.calls == 1
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await cache.get("req-fail") is None
    assert await cache.get_or_compute("req-fail", factory) == RESULT
    assert factory.calls == 2


class Blocking:
    """A factory that runs until released (or cancelled), recording both; nothing depends on timing."""

    def __init__(self, value: object = RESULT) -> None:
        self.value = value
        self.calls = 0
        self.cancelled = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> object:
        self.calls += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.value


async def _waiters(cache: ResultCache, key: str, n: int) -> None:
    # Let the callers reach the shared computation (each joins within a few loop turns).
    for _ in range(1000):
        if cache.waiting(key) == n:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{cache.waiting(key)} callers wait for {key}, not {n}")  # type: ignore[attr-defined]


async def test_a_cancelled_caller_does_not_cancel_the_computation_another_waits_for(cache: ResultCache) -> None:
    factory = Blocking()
    first = asyncio.ensure_future(cache.get_or_compute("req-cancel", factory))
    second = asyncio.ensure_future(cache.get_or_compute("req-cancel", factory))
    await _waiters(cache, "req-cancel", 2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert cache.waiting("req-cancel") == 1  # type: ignore[attr-defined]
    factory.release.set()
    assert await second == RESULT
    assert (factory.calls, factory.cancelled) == (1, 0)


async def test_cancelling_the_last_waiter_stops_the_computation(cache: ResultCache) -> None:
    factory = Blocking()
    callers = [asyncio.ensure_future(cache.get_or_compute("req-stop", factory)) for _ in range(3)]
    await _waiters(cache, "req-stop", 3)
    await factory.started.wait()  # on Redis the computation takes its lock first: cancel it while it computes
    for caller in callers:
        caller.cancel()
    for caller in callers:
        with pytest.raises(asyncio.CancelledError):
            await caller
    # The last caller's cancellation returns once the computation has stopped.
    assert (factory.calls, factory.cancelled) == (1, 1)
    assert cache.waiting("req-stop") == 0  # type: ignore[attr-defined]
    assert await cache.get("req-stop") is None
    # Nothing of it is kept: the next caller computes afresh.
    factory.release.set()
    assert await cache.get_or_compute("req-stop", factory) == RESULT
    assert factory.calls == 2


async def test_a_factory_returning_an_uncacheable_value_raises(cache: ResultCache) -> None:
    async def bad() -> object:
        return object()

    with pytest.raises(CacheValueError):
        await cache.get_or_compute("req-bad", bad)
    assert await cache.get("req-bad") is None


async def test_memory_result_cache_is_bounded() -> None:
    cache = MemoryResultCache(max_entries=2)
    await cache.set("a", 1)
    await cache.set("b", 2)
    assert await cache.get("a") == 1  # a is now more recent than b
    await cache.set("c", 3)
    assert await cache.get("b") is None
    assert (await cache.get("a"), await cache.get("c")) == (1, 3)
    assert cache.stats.evictions == 1


# -- single-flight across processes (Redis) -------------------------------------------------------------------


def _redis_caches(url: str, prefix: str, n: int, **kwargs: float) -> list[RedisResultCache]:
    # Separate clients with one prefix behave like separate processes sharing one Redis.
    return [RedisResultCache(url, prefix=prefix, **kwargs) for _ in range(n)]


@pytest.mark.redis
async def test_redis_single_flight_spans_processes(redis_server_url: str, redis_prefix: str) -> None:
    caches = _redis_caches(redis_server_url, redis_prefix, 3)
    factory = Counted(delay=0.15)
    try:
        results = await asyncio.gather(*(c.get_or_compute("req-x", factory) for c in caches for _ in range(5)))
    finally:
        for c in caches:
            await c.aclose()
    assert factory.calls == 1
    assert results == [RESULT] * 15
    assert sum(c.stats.misses for c in caches) == 1
    assert sum(c.stats.coalesced for c in caches) == 14


@pytest.mark.redis
async def test_redis_waiter_takes_over_when_the_holder_fails(redis_server_url: str, redis_prefix: str) -> None:
    holder, waiter = _redis_caches(redis_server_url, redis_prefix, 2)
    failing = Counted(delay=0.1, fail_first=1)
    working = Counted(value={"from": "waiter"}, delay=0.01)
    try:
        first = asyncio.ensure_future(holder.get_or_compute("req-y", failing))
        await asyncio.sleep(0.03)  # the holder has the lock
        second = asyncio.ensure_future(waiter.get_or_compute("req-y", working))
        with pytest.raises(RuntimeError):
            await first
        assert await second == {"from": "waiter"}
    finally:
        await holder.aclose()
        await waiter.aclose()
    assert (failing.calls, working.calls) == (1, 1)


@pytest.mark.redis
async def test_redis_cancelled_computation_releases_its_lock(redis_server_url: str, redis_prefix: str) -> None:
    holder, other = _redis_caches(redis_server_url, redis_prefix, 2)
    lock = f"{redis_prefix}lock:req-gone"
    try:
        factory = Blocking()
        caller = asyncio.ensure_future(holder.get_or_compute("req-gone", factory))
        await factory.started.wait()
        assert await holder.client.exists(lock) == 1
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert factory.cancelled == 1
        assert await holder.client.exists(lock) == 0  # released, not left to expire
        # Another process takes the lock at once and computes.
        again = Blocking({"from": "other"})
        again.release.set()
        assert await other.get_or_compute("req-gone", again) == {"from": "other"}
        assert other.stats.misses == 1
    finally:
        await holder.aclose()
        await other.aclose()


@pytest.mark.redis
async def test_redis_lock_is_kept_alive_while_computing(redis_server_url: str, redis_prefix: str) -> None:
    caches = _redis_caches(redis_server_url, redis_prefix, 2, lock_ttl_s=0.3)
    factory = Counted(delay=0.9)  # three times the lock's ttl
    try:
        first = asyncio.ensure_future(caches[0].get_or_compute("req-long", factory))
        await asyncio.sleep(0.05)
        results = await asyncio.gather(first, caches[1].get_or_compute("req-long", factory))
    finally:
        for c in caches:
            await c.aclose()
    assert list(results) == [RESULT, RESULT]
    assert factory.calls == 1


@pytest.mark.redis
async def test_redis_stuck_lock_falls_back_after_the_wait_timeout(redis_server_url: str, redis_prefix: str) -> None:
    [cache] = _redis_caches(redis_server_url, redis_prefix, 1, wait_timeout_s=0.2)
    try:
        # A holder that died without releasing, with a lock that has not expired yet.
        await cache.client.set(f"{redis_prefix}lock:req-stuck", "dead-holder", px=60_000)
        loop = asyncio.get_running_loop()
        started = loop.time()
        factory = Counted(delay=0.0)
        assert await cache.get_or_compute("req-stuck", factory) == RESULT
        waited = loop.time() - started
    finally:
        await cache.aclose()
    assert factory.calls == 1
    assert 0.2 <= waited < 2.0


# -- byte cache -----------------------------------------------------------------------------------------------


async def test_byte_cache_evicts_least_recently_used(byte_cache_factory: Callable[..., ByteCache]) -> None:
    cache = byte_cache_factory(max_bytes=100, max_item_bytes=50)
    assert await cache.set("a", b"a" * 40)
    assert await cache.set("b", b"b" * 40)
    assert await cache.get("a") == b"a" * 40  # a is now the more recent
    assert await cache.set("c", b"c" * 40)
    assert await cache.get("b") is None
    assert await cache.get("a") == b"a" * 40 and await cache.get("c") == b"c" * 40
    assert await cache.total_bytes() == 80 <= cache.max_bytes
    assert cache.stats.evictions == 1
    assert (cache.stats.hits, cache.stats.misses) == (3, 1)


async def test_byte_cache_refuses_items_over_the_limit(byte_cache_factory: Callable[..., ByteCache]) -> None:
    cache = byte_cache_factory(max_bytes=100, max_item_bytes=50)
    assert not await cache.set("big", b"x" * 51)
    assert await cache.get("big") is None
    assert await cache.total_bytes() == 0


async def test_byte_cache_replace_and_delete_keep_the_total(byte_cache_factory: Callable[..., ByteCache]) -> None:
    cache = byte_cache_factory(max_bytes=1000)
    await cache.set("k", b"\x00\xff" * 10)
    await cache.set("k", b"\x01" * 5)
    assert await cache.get("k") == b"\x01" * 5
    assert await cache.total_bytes() == 5
    await cache.delete("k")
    await cache.delete("never-there")
    assert await cache.total_bytes() == 0
    assert await cache.get("k") is None


async def test_byte_cache_stays_within_budget_under_churn(byte_cache_factory: Callable[..., ByteCache]) -> None:
    cache = byte_cache_factory(max_bytes=1000, max_item_bytes=300)
    for i in range(60):
        await cache.set(f"k{i % 17}", bytes([i % 256]) * (50 + (i * 37) % 250))
        assert await cache.total_bytes() <= 1000
    assert cache.stats.evictions > 0


@pytest.mark.redis
async def test_redis_byte_cache_budget_is_shared(redis_server_url: str, redis_prefix: str) -> None:
    one = RedisByteCache(redis_server_url, max_bytes=100, prefix=redis_prefix)
    two = RedisByteCache(redis_server_url, max_bytes=100, prefix=redis_prefix)
    try:
        await one.set("a", b"a" * 25)
        await two.set("b", b"b" * 25)
        assert await one.get("b") == b"b" * 25
        for key in "cdef":
            await two.set(key, b"z" * 25)
        assert await one.total_bytes() == await two.total_bytes() == 100
        assert await one.get("a") is None  # the least recently used, evicted by the other process
    finally:
        await one.aclose()
        await two.aclose()
