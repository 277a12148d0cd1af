"""Contract suite for the rate limiters, in memory and in Redis (real server, real time).

In memory the clock is a fake the tests move; in Redis the script reads the server's clock, so ``advance``
really sleeps (short windows, about 1.5 s of sleeping in all) and timings are checked within ``tol``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from serve_app.ratelimit import Decision, MemoryRateLimiter, Rate, RateLimiter, RedisRateLimiter, headers

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]

PER_MINUTE = Rate("requests", 5, 60)
IMAGES = Rate("images", 10, 60)


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    limiter: RateLimiter
    advance: Callable[[float], Awaitable[None]]
    tol: float  # how far the backend's timings may drift from the ideal (Redis: time passes between calls)


@pytest.fixture(params=BACKENDS)
async def rl(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    made: RateLimiter
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        made = MemoryRateLimiter(clock=clock)
        harness = Harness(made, advance, tol=1e-9)
    else:
        made = RedisRateLimiter(
            request.getfixturevalue("redis_server_url"), prefix=request.getfixturevalue("redis_prefix")
        )
        harness = Harness(made, asyncio.sleep, tol=0.1)
    yield harness
    await made.close()


def close(actual: float | None, expected: float, tol: float) -> bool:
    # Time only passes in Redis, so its numbers can only be lower than the ideal.
    return actual is not None and expected - tol <= actual <= expected + 1e-9


# -- the quota ------------------------------------------------------------------------------------------------


async def test_implements_the_protocol(rl: Harness) -> None:
    assert isinstance(rl.limiter, RateLimiter)


async def test_allowed_until_the_quota_then_refused_with_retry_after(rl: Harness) -> None:
    decisions = [await rl.limiter.hit("client-a", PER_MINUTE) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert all(d.retry_after_s is None for d in decisions[:5])
    assert all(d.rate == PER_MINUTE for d in decisions)
    # One unit comes back every 60 / 5 = 12 s; the bucket is full again a minute after it emptied.
    assert close(decisions[0].reset_s, 12.0, rl.tol)
    assert close(decisions[4].reset_s, 60.0, rl.tol)
    refused = decisions[5]
    assert close(refused.retry_after_s, 12.0, rl.tol)
    assert close(refused.reset_s, 60.0, rl.tol)


async def test_the_bucket_refills_continuously(rl: Harness) -> None:
    rate = Rate("fast", 4, 1.0)  # one unit every 0.25 s
    assert all([(await rl.limiter.hit("k", rate)).allowed for _ in range(4)])
    refused = await rl.limiter.hit("k", rate)
    assert not refused.allowed
    assert close(refused.retry_after_s, 0.25, rl.tol)
    await rl.advance(0.3)  # 1.2 units back
    again = await rl.limiter.hit("k", rate)
    assert again.allowed and again.remaining == 0
    refused = await rl.limiter.hit("k", rate)
    assert not refused.allowed
    assert close(refused.retry_after_s, 0.2, rl.tol)  # the remaining 0.8 of a unit
    await rl.advance(1.0)
    full = await rl.limiter.peek("k", rate)
    assert (full.allowed, full.remaining, full.reset_s, full.retry_after_s) == (True, 4, 0.0, None)


async def test_a_cost_is_consumed_whole_or_not_at_all(rl: Harness) -> None:
    first = await rl.limiter.hit("client", IMAGES, cost=7)
    assert (first.allowed, first.remaining) == (True, 3)
    assert close(first.reset_s, 42.0, rl.tol)
    refused = await rl.limiter.hit("client", IMAGES, cost=4)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert close(refused.retry_after_s, 6.0, rl.tol)  # one unit short, at 6 s a unit
    assert (await rl.limiter.peek("client", IMAGES)).remaining == 3  # the refused hit took nothing
    last = await rl.limiter.hit("client", IMAGES, cost=3)
    assert (last.allowed, last.remaining) == (True, 0)
    assert not (await rl.limiter.hit("client", IMAGES)).allowed


async def test_a_cost_over_the_limit_is_refused_for_a_window(rl: Harness) -> None:
    refused = await rl.limiter.hit("client", IMAGES, cost=11)
    assert (refused.allowed, refused.remaining, refused.retry_after_s) == (False, 0, 60.0)
    assert (await rl.limiter.peek("client", IMAGES)).remaining == 10
    assert (await rl.limiter.hit("client", IMAGES, cost=10)).allowed


@pytest.mark.parametrize("cost", [0, -1, 1.5, True])
async def test_bad_costs_are_rejected(rl: Harness, cost: int) -> None:
    with pytest.raises(ValueError, match="cost must be an int >= 1"):
        await rl.limiter.hit("client", IMAGES, cost=cost)
    assert (await rl.limiter.peek("client", IMAGES)).remaining == 10


async def test_keys_and_rates_are_independent(rl: Harness) -> None:
    for _ in range(5):
        await rl.limiter.hit("alice", PER_MINUTE)
    assert not (await rl.limiter.hit("alice", PER_MINUTE)).allowed
    bob = await rl.limiter.hit("bob", PER_MINUTE)
    assert (bob.allowed, bob.remaining) == (True, 4)
    # The same key under another rate has its own bucket.
    images = await rl.limiter.hit("alice", IMAGES, cost=2)
    assert (images.allowed, images.remaining) == (True, 8)
    # A rate with the same name but another limit is another bucket too (a config change starts afresh).
    bigger = await rl.limiter.hit("alice", Rate("requests", 50, 60))
    assert (bigger.allowed, bigger.remaining) == (True, 49)


async def test_peek_does_not_consume(rl: Harness) -> None:
    fresh = await rl.limiter.peek("nobody", PER_MINUTE)
    assert (fresh.allowed, fresh.remaining, fresh.reset_s, fresh.retry_after_s) == (True, 5, 0.0, None)
    await rl.limiter.hit("client", PER_MINUTE, cost=2)
    for _ in range(10):
        seen = await rl.limiter.peek("client", PER_MINUTE)
        assert (seen.allowed, seen.remaining) == (True, 3)
    assert (await rl.limiter.hit("client", PER_MINUTE)).remaining == 2
    await rl.limiter.hit("client", PER_MINUTE, cost=2)
    empty = await rl.limiter.peek("client", PER_MINUTE)
    assert (empty.allowed, empty.remaining) == (False, 0)
    assert close(empty.retry_after_s, 12.0, rl.tol)


async def test_reset_forgets_every_rate_of_a_key(rl: Harness) -> None:
    await rl.limiter.hit("client", PER_MINUTE, cost=5)
    await rl.limiter.hit("client", IMAGES, cost=10)
    await rl.limiter.hit("other", PER_MINUTE, cost=5)
    await rl.limiter.reset("client")
    await rl.limiter.reset("never-seen")
    assert (await rl.limiter.peek("client", PER_MINUTE)).remaining == 5
    assert (await rl.limiter.peek("client", IMAGES)).remaining == 10
    assert (await rl.limiter.peek("other", PER_MINUTE)).remaining == 0


async def test_concurrent_hits_allow_exactly_the_quota(rl: Harness) -> None:
    rate = Rate("burst", 10, 60)
    decisions = await asyncio.gather(*(rl.limiter.hit("hot", rate) for _ in range(50)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 10
    assert sorted(d.remaining for d in allowed) == list(range(10))


# -- headers --------------------------------------------------------------------------------------------------


async def test_headers_for_real_decisions(rl: Harness) -> None:
    requests = await rl.limiter.hit("client", Rate("requests", 60, 60))
    images = await rl.limiter.hit("client", Rate("images", 100, 86400), cost=3)
    assert headers([requests, images]) == {
        "RateLimit-Policy": '"requests";q=60;w=60, "images";q=100;w=86400',
        "RateLimit": '"requests";r=59;t=1, "images";r=97;t=2592',
    }
    tight = Rate("tight", 2, 10)
    await rl.limiter.hit("client", tight, cost=2)
    refused = await rl.limiter.hit("client", tight)
    assert headers([requests, refused]) == {
        "RateLimit-Policy": '"requests";q=60;w=60, "tight";q=2;w=10',
        "RateLimit": '"requests";r=59;t=1, "tight";r=0;t=10',
        "Retry-After": "5",
    }


def _decision(rate: Rate, remaining: int, reset_s: float, retry_after_s: float | None = None) -> Decision:
    return Decision(rate, retry_after_s is None, remaining, reset_s, retry_after_s)


def test_headers_round_up_and_take_the_longest_retry() -> None:
    a = _decision(Rate("a", 3, 1.5), 0, 0.2, retry_after_s=0.2)
    b = _decision(Rate("b", 1000, 3600), 0, 3599.01, retry_after_s=11.2)
    c = _decision(Rate("c", 7, 0.25), 6, 0.0)  # allowed: its (absent) retry does not count
    assert headers([a, b, c]) == {
        "RateLimit-Policy": '"a";q=3;w=2, "b";q=1000;w=3600, "c";q=7;w=1',
        "RateLimit": '"a";r=0;t=1, "b";r=0;t=3600, "c";r=6;t=0',
        "Retry-After": "12",
    }
    assert headers([a])["Retry-After"] == "1"  # never 0
    # Float noise below a microsecond does not round a whole second up.
    assert headers([_decision(Rate("d", 1, 60), 0, 1.0000000001, 2.0000000001)])["Retry-After"] == "2"


def test_headers_escape_policy_names_and_say_nothing_for_no_rates() -> None:
    odd = _decision(Rate('say "hi" \\ bye', 2, 60), 1, 30.0)
    assert headers([odd]) == {
        "RateLimit-Policy": '"say \\"hi\\" \\\\ bye";q=2;w=60',
        "RateLimit": '"say \\"hi\\" \\\\ bye";r=1;t=30',
    }
    assert headers([]) == {}


# -- rates ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "limit", "window_s", "match"),
    [
        ("", 1, 60, "name"),
        ("naïve", 1, 60, "name"),
        ("tab\there", 1, 60, "name"),
        ("r", 0, 60, "limit"),
        ("r", 2.5, 60, "limit"),
        ("r", True, 60, "limit"),
        ("r", 1, 0, "window_s"),
        ("r", 1, 0.0004, "window_s"),
        ("r", 1, float("inf"), "window_s"),
        ("r", 1, float("nan"), "window_s"),
        ("r", 2**30, 86400 * 365, "2\\*\\*50"),
    ],
)
def test_bad_rates_are_rejected(name: str, limit: int, window_s: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Rate(name, limit, window_s)


def test_rates_are_plain_values() -> None:
    assert Rate("requests", 60, 60) == Rate("requests", 60, 60.0)
    assert hash(Rate("requests", 60, 60)) == hash(Rate("requests", 60, 60.0))
    assert Rate("images", 100, 86400).window_ms == 86_400_000


# -- memory bounds --------------------------------------------------------------------------------------------


async def test_memory_key_cap_evicts_the_least_recently_used() -> None:
    limiter = MemoryRateLimiter(max_keys=3, clock=FakeClock())
    for key in "abc":
        await limiter.hit(key, PER_MINUTE, cost=2)
    await limiter.hit("a", PER_MINUTE)  # a is now the most recent; b the least
    await limiter.peek("b", PER_MINUTE)  # a peek does not count as use
    await limiter.hit("d", PER_MINUTE)
    assert len(limiter) == 3 and limiter.evictions == 1
    assert (await limiter.peek("b", PER_MINUTE)).remaining == 5  # forgotten
    assert (await limiter.peek("a", PER_MINUTE)).remaining == 2
    assert (await limiter.peek("c", PER_MINUTE)).remaining == 3


async def test_memory_key_cap_holds_under_a_flood_of_keys() -> None:
    limiter = MemoryRateLimiter(max_keys=100, clock=FakeClock())
    for i in range(1000):
        await limiter.hit(f"client-{i}", PER_MINUTE)
        assert len(limiter) <= 100
    assert len(limiter) == 100 and limiter.evictions == 900
    assert (await limiter.peek("client-999", PER_MINUTE)).remaining == 4


async def test_memory_drops_keys_once_their_buckets_are_full_again() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    rate = Rate("r", 10, 1.0)
    await limiter.hit("a", rate, cost=10)  # full again in 1 s
    await limiter.hit("b", rate)  # full again in 0.1 s
    clock.advance(0.2)
    await limiter.hit("c", rate)
    assert len(limiter) == 3  # a is the oldest and still owes: clean-up stops there
    clock.advance(1.0)
    await limiter.hit("d", rate)
    assert len(limiter) == 1 and limiter.evictions == 0
    assert await limiter.peek("a", rate) == Decision(rate, True, 10, 0.0, None)


async def test_memory_refused_hits_store_nothing() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    await limiter.hit("client", IMAGES, cost=11)
    assert len(limiter) == 0


def test_memory_rejects_a_bad_cap() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryRateLimiter(max_keys=0)


# -- Redis: across processes, keys and expiry -----------------------------------------------------------------


@pytest.mark.redis
async def test_redis_concurrent_hits_from_two_processes_allow_exactly_the_quota(
    redis_server_url: str, redis_prefix: str
) -> None:
    # Separate clients (separate pools and connections) sharing one prefix behave like two replicas.
    one = RedisRateLimiter(redis_server_url, prefix=redis_prefix)
    two = RedisRateLimiter(redis_server_url, prefix=redis_prefix)
    rate = Rate("burst", 10, 60)
    try:
        assert one.client is not two.client
        decisions = await asyncio.gather(*(lim.hit("hot", rate) for _ in range(25) for lim in (one, two)))
        seen_by_two = await two.peek("hot", rate)
    finally:
        await one.close()
        await two.close()
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 10
    assert sorted(d.remaining for d in allowed) == list(range(10))
    assert (seen_by_two.allowed, seen_by_two.remaining) == (False, 0)


@pytest.mark.redis
async def test_redis_keys_are_prefixed_and_expire_when_full_again(redis_server_url: str) -> None:
    limiter = RedisRateLimiter(redis_server_url)  # the default prefix
    key = f"test-{uuid.uuid4().hex}"
    name = f"limner:rl:{key}"
    try:
        assert limiter.redis_key(key) == name
        await limiter.hit(key, PER_MINUTE)
        assert 11_000 < await limiter.client.pttl(name) <= 12_000  # one unit drains in 12 s
        await limiter.hit(key, PER_MINUTE, cost=2)
        assert 35_000 < await limiter.client.pttl(name) <= 36_000
        await limiter.hit(key, Rate("quick", 10, 0.2))  # drains sooner: must not shorten the key's life
        assert await limiter.client.pttl(name) > 35_000
        await limiter.reset(key)
        assert await limiter.client.exists(name) == 0
        await limiter.hit(key, Rate("quick", 10, 0.2))  # drained in 20 ms
        assert 0 < await limiter.client.pttl(name) <= 20
        await asyncio.sleep(0.1)
        assert await limiter.client.exists(name) == 0
    finally:
        await limiter.client.delete(name)
        await limiter.close()


@pytest.mark.redis
async def test_redis_limiter_leaves_a_shared_client_open(redis_server_url: str, redis_prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server_url)
    try:
        limiter = RedisRateLimiter(client, prefix=redis_prefix)
        assert (await limiter.hit("client", PER_MINUTE)).remaining == 4
        await limiter.close()
        assert await client.ping()
    finally:
        await client.aclose()
