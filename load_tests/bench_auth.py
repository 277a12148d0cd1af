"""Benchmark of what authentication costs a request: ``auth_overhead_ms`` (issue 14's target: <= 1 ms).

One in-process edge (SQLite, the tiny model's stages) and the real FastAPI app over it, called through httpx's
ASGI transport, so the figure is the app's own work with no network in it. The request is a cheap read,
``GET /api/v2/images/jobs/{id}`` of a finished job: its p50 is measured with auth off (the baseline) and with an
API key (key lookup from the guard's cache, scope check, one rate-limiter hit, the RateLimit headers, the tenant
scope on the store's query), alternating one request for one in the same run, so drift hits both alike.

Printed (JSON lines, one per limiter backend):

- ``auth_overhead_ms_memory``: p50(keyed) - p50(off) with the in-process limiter; baseline: p50(off).
- ``auth_overhead_ms_redis``: the same with the limiter in Redis (``LIMNER_BENCH_REDIS_URL``, default
  ``redis://127.0.0.1:6379/0``): one Redis round trip per request; ``skipped`` if Redis cannot be reached.

Run: ``python load_tests/bench_auth.py [--rounds 20] [--per-round 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_tests._edge import in_process
from load_tests._service import emit, percentile


async def measure(redis_url: str | None, rounds: int, per_round: int) -> dict[str, Any]:
    import httpx

    from serve_app.api.app import create_api
    from serve_app.auth.keys import SqlKeyStore
    from serve_app.config import AuthConfig, ComposerConfig, QuotaConfig
    from serve_app.jobs.kinds.generate import GenerateRequest
    from serve_app.schemas import PartialRequest

    # The limit is high enough never to refuse: every keyed request pays the hit, none is a 429.
    auth = AuthConfig(mode="keys", limits=QuotaConfig(read_per_min=10_000_000))
    async with in_process(redis_url=redis_url, auth=auth, composer=ComposerConfig(width=64, height=64, steps=2)) as st:
        edge = st.edge
        key, record = await SqlKeyStore(edge.services.engine).create("bench", ["images:read", "images:generate"])
        from serve_app.auth.tenant import tenant_scope

        with tenant_scope(record.tenant):  # the job belongs to the key's tenant, as one made over HTTP would
            job, _, _ = await st.run("generate", GenerateRequest(PartialRequest(prompt="a benchmark lantern")))
        app = create_api(edge)
        url = f"/api/v2/images/jobs/{job.id}"
        transport = httpx.ASGITransport(app=app)
        off: list[float] = []
        keyed: list[float] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            guard = edge.guard
            keyed_headers = {"Authorization": f"Bearer {key}"}

            async def one(auth: bool, into: list[float] | None) -> None:
                guard.enabled = auth
                t0 = time.perf_counter()
                r = await client.get(url, headers=keyed_headers if auth else {})
                if into is not None:
                    into.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code}: {r.text[:200]}")

            for _ in range(2 * per_round):  # warm-up
                await one(False, None)
                await one(True, None)
            for i in range(rounds * per_round):  # alternating one for one, the order swapped every other pair
                first = i % 2 == 0
                await one(first, keyed if first else off)
                await one(not first, off if first else keyed)
        rtt: list[float] = []
        if edge.services.redis is not None:  # the floor of a Redis-backed hit: one round trip
            for _ in range(500):
                t0 = time.perf_counter()
                await edge.services.redis.ping()
                rtt.append((time.perf_counter() - t0) * 1000)
    return {
        "redis_rtt_p50": statistics.median(rtt) if rtt else None,
        "off_p50": statistics.median(off),
        "keyed_p50": statistics.median(keyed),
        "off_p95": percentile(off, 0.95),
        "keyed_p95": percentile(keyed, 0.95),
        "requests": len(off) + len(keyed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args()
    redis_url = os.environ.get("LIMNER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    for backend, url in (("memory", None), ("redis", redis_url)):
        try:
            got = asyncio.run(measure(url, args.rounds, args.per_round))
        except OSError as exc:  # Redis unreachable
            print(f'{{"bench": "auth_overhead_ms_{backend}", "skipped": "{exc}"}}', flush=True)
            continue
        overhead = got["keyed_p50"] - got["off_p50"]
        emit(
            f"auth_overhead_ms_{backend}",
            round(overhead, 3),
            "ms",
            round(got["off_p50"], 3),
            keyed_p50_ms=round(got["keyed_p50"], 3),
            off_p95_ms=round(got["off_p95"], 3),
            keyed_p95_ms=round(got["keyed_p95"], 3),
            requests=got["requests"],
            redis_ping_p50_ms=None if got["redis_rtt_p50"] is None else round(got["redis_rtt_p50"], 3),
            target="<= 1 ms",
        )


if __name__ == "__main__":
    main()
