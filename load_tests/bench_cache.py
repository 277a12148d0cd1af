"""Benchmark of the result cache: ``cache_hit_rate`` under a Zipf(1.1) replay, in memory and in Redis.

The workload: 200 distinct seeded generation requests, each identified by its canonical request hash (the
result-cache key). A trace of 2000 requests draws ranks 1..200 with probability proportional to
``1 / k**1.1`` (a Zipf law truncated to the 200 requests, sampled exactly with ``rng.choice``; the rank to
request mapping is a seeded shuffle). 16 concurrent clients replay the trace in order, each request going
through ``get_or_compute(request_hash, factory)``, where the factory stands in for a generation: it sleeps
a few milliseconds and returns an image id derived from the key. Concurrent clients asking for a request
that is being computed must share that computation (single-flight).

Prints one JSON line per backend (``cache_hit_rate_memory``, ``cache_hit_rate_redis``):

- ``value``: the achieved hit rate, requests served without running their own factory over all requests.
  A request that waited for a computation already in flight counts as a hit (it ran nothing).
- ``baseline``: the ideal hit rate, ``1 - distinct / total``, where ``distinct`` is the number of distinct
  requests the trace actually contains (a perfect cache computes each exactly once).
- ``ratio``: value / ideal. Target: at least 0.98.
- extra fields: ``repeats_of_finished`` (requests whose key had already been answered to some client when
  they started) and ``repeat_hit_violations`` (those of them that ran the factory anyway; must be 0);
  ``factory_runs`` against ``distinct`` (must be equal) and ``duplicate_computations`` (runs beyond the
  first per key); ``wrong_values`` (answers not matching their key); the cache's own counters; the
  latency of the whole replay.

Redis is taken from ``LIMNER_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) under a unique key
prefix that is deleted afterwards; if it cannot be reached, its line says ``"skipped"`` with the reason.

Run: ``make bench`` or ``python load_tests/bench_cache.py [--requests 2000] [--distinct 200] [--clients 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_tests._service import emit, percentile
from serve_app.cache import CacheStats, MemoryResultCache, RedisResultCache, ResultCache
from serve_app.jobs import canonical_hash

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TARGET = "ratio >= 0.98"  # of the ideal hit rate, not the hit rate itself
PROMPTS = (
    "a hex-grid battle map of a ruined dwarven forge, lava channels, top-down",
    "portrait of a dwarf blacksmith, soot on his face, warm rim light",
    "an ancient red dragon coiled on a hoard of gold, cavern, torchlight",
    "a misty elven forest clearing with a stone circle, battle map, top-down",
    "a brass astrolabe on a wizard's desk, item card, white background",
)


def request_keys(distinct: int) -> list[str]:
    """The canonical hashes of ``distinct`` different seeded generation requests."""
    return [
        canonical_hash(
            {
                "kind": "image",
                "prompt": PROMPTS[i % len(PROMPTS)],
                "negative_prompt": "blurry, text, watermark",
                "width": 1024,
                "height": 1024,
                "steps": 30,
                "guidance": 5.0,
                "seed": 7919 * i + 1,
                "scheduler": "euler",
                "model": "sdxl-base-1.0",
            }
        )
        for i in range(distinct)
    ]


def zipf_trace(keys: list[str], total: int, exponent: float, seed: int) -> list[str]:
    """``total`` keys drawn with P(rank k) proportional to ``k ** -exponent``, ranks 1..len(keys)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, len(keys) + 1, dtype=np.float64)
    weights = ranks**-exponent
    by_rank = rng.permutation(len(keys))  # which request is the k-th most popular
    drawn = rng.choice(len(keys), size=total, p=weights / weights.sum())
    return [keys[by_rank[r]] for r in drawn]


def image_id(key: str) -> str:
    """What the stand-in generation returns for ``key``: deterministic, so every answer can be checked."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"limner:{key}"))


@dataclass
class Replay:
    """What happened during one replay."""

    factory_runs: Counter[str] = field(default_factory=Counter)
    finished: set[str] = field(default_factory=set)  # keys already answered to some client
    misses: int = 0  # requests that ran their own factory
    repeats_of_finished: int = 0
    repeat_hit_violations: int = 0
    wrong_values: int = 0
    latencies: list[float] = field(default_factory=list)


async def replay(cache: ResultCache, trace: list[str], clients: int, generate_s: float) -> Replay:
    """Replay ``trace`` in order through ``cache.get_or_compute`` with ``clients`` concurrent clients."""
    result = Replay()
    position = iter(trace)

    async def one(key: str) -> None:
        ran = False

        async def factory() -> dict[str, Any]:
            nonlocal ran
            ran = True
            result.factory_runs[key] += 1
            await asyncio.sleep(generate_s)
            return {"image_id": image_id(key), "format": "png"}

        already_finished = key in result.finished  # one event loop: this snapshot is exact
        started = time.perf_counter()
        value = await cache.get_or_compute(key, factory)
        result.latencies.append(time.perf_counter() - started)
        result.finished.add(key)
        if ran:
            result.misses += 1
        if already_finished:
            result.repeats_of_finished += 1
            if ran:
                result.repeat_hit_violations += 1
        if value != {"image_id": image_id(key), "format": "png"}:
            result.wrong_values += 1

    async def client() -> None:
        for key in position:  # the clients share one iterator: the trace is replayed in order
            await one(key)

    await asyncio.gather(*(client() for _ in range(clients)))
    return result


def report(bench: str, trace: list[str], run: Replay, stats: CacheStats, elapsed_s: float) -> None:
    total = len(trace)
    distinct = len(set(trace))
    ideal = 1 - distinct / total
    achieved = (total - run.misses) / total
    runs = sum(run.factory_runs.values())
    emit(
        bench,
        achieved,
        "hit_rate",
        ideal,
        target=TARGET,
        requests=total,
        distinct=distinct,
        factory_runs=runs,
        duplicate_computations=runs - len(run.factory_runs),
        repeats_of_finished=run.repeats_of_finished,
        repeat_hit_violations=run.repeat_hit_violations,
        wrong_values=run.wrong_values,
        cache_stats={"hits": stats.hits, "coalesced": stats.coalesced, "misses": stats.misses},
        p50_ms=round(percentile(run.latencies, 0.5) * 1000, 3),
        p99_ms=round(percentile(run.latencies, 0.99) * 1000, 3),
        elapsed_s=round(elapsed_s, 3),
    )


async def bench(bench_name: str, cache: ResultCache, trace: list[str], args: argparse.Namespace) -> None:
    started = time.perf_counter()
    run = await replay(cache, trace, args.clients, args.generate_ms / 1000)
    report(bench_name, trace, run, cache.stats, time.perf_counter() - started)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


async def redis_reachable(url: str) -> str | None:
    """``None`` if Redis answers PING at ``url``, else why not."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
        return None
    except Exception as exc:  # refused, timed out, auth: report it and go on
        return f"Redis unavailable at {_without_password(url)}: {type(exc).__name__}: {exc}"
    finally:
        await client.aclose()


async def main_async(args: argparse.Namespace) -> None:
    trace = zipf_trace(request_keys(args.distinct), args.requests, args.exponent, args.seed)

    memory = MemoryResultCache()
    try:
        await bench("cache_hit_rate_memory", memory, trace, args)
    finally:
        await memory.aclose()

    reason = await redis_reachable(args.redis_url)
    if reason is not None:
        print(json.dumps({"bench": "cache_hit_rate_redis", "skipped": reason, "target": TARGET}), flush=True)
        return
    prefix = f"limner-bench:{uuid.uuid4().hex[:12]}:"
    redis_cache = RedisResultCache(args.redis_url, prefix=prefix)
    try:
        await bench("cache_hit_rate_redis", redis_cache, trace, args)
    finally:
        stale = [k async for k in redis_cache.client.scan_iter(match=f"{prefix}*", count=1000)]
        if stale:
            await redis_cache.client.delete(*stale)
        await redis_cache.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="length of the trace")
    parser.add_argument("--distinct", type=int, default=200, help="distinct seeded requests (Zipf ranks)")
    parser.add_argument("--exponent", type=float, default=1.1, help="Zipf exponent")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--generate-ms", type=float, default=5.0, help="simulated generation time")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("LIMNER_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis URL (env LIMNER_BENCH_REDIS_URL)",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
