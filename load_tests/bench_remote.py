"""Benchmarks of the remote backends against local fakes of their APIs (tests/remote_fakes). One JSON line each.

- ``remote_overhead_ms``: p50 of a generate job through the fake FAL backend (an instant fake: no queue time, no
  progress time) end to end in process (load_tests/_edge.py: the job's rows, the remote stage, the store), less
  the p50 of the same backend's own round trips (submit, status, result, file download and the PNG encode, called
  on the remote stage directly), same run, interleaved. Target <= 15 ms.
- ``remote_concurrency``: 32 concurrent generate jobs against a fake GetImg whose every call takes 200 ms, with the
  backend's concurrency cap at 8: throughput (jobs/s) against the ideal 8 / 0.2 s = 40 jobs/s. Target >= 0.9.

Run: ``make bench`` or ``python load_tests/bench_remote.py [--jobs 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENV = {"fal": "LIMNER_FAL_KEY", "getimg": "LIMNER_GETIMG_API_KEY"}


def _remote(fakes: Any, name: str, **entry: Any) -> Any:
    from serve_app.config import RemoteBackendConfig, RemoteConfig

    return RemoteConfig(**{name: RemoteBackendConfig(base_url=fakes.base_url(name), **entry)})


async def remote_overhead_ms(fakes: Any, jobs: int) -> dict[str, object]:
    from load_tests._edge import in_process
    from pipelines.request import GenerationRequest
    from serve_app.config import ComposerConfig
    from serve_app.jobs.kinds.generate import GenerateRequest
    from serve_app.schemas import ComposedRequest, PartialRequest

    config = {
        "composer": ComposerConfig(width=512, height=512, steps=20),
        "remote": _remote(fakes, "fal", price_usd=0.0025),
    }
    async with in_process(**config) as service:
        remote = service.edge.handles.remote
        job_ms, direct_ms = [], []
        for n in range(jobs + 2):
            partial = PartialRequest(prompt="a harbour at dusk", width=512, height=512, seed=1000 + n)
            _, elapsed, _ = await service.run("generate", GenerateRequest(partial, backend="fal"))
            request = GenerationRequest(prompt="a harbour at dusk", width=512, height=512, seed=5000 + n)
            t0 = time.perf_counter()
            async for _ in remote.generate_batch_stream([ComposedRequest(request, "bench", uuid.uuid4().hex)], "fal"):
                pass
            direct = time.perf_counter() - t0
            if n >= 2:  # the first two warm up the clients and the database
                job_ms.append(elapsed * 1000)
                direct_ms.append(direct * 1000)
    job, direct = statistics.median(job_ms), statistics.median(direct_ms)
    return {
        "bench": "remote_overhead_ms",
        "value": round(job - direct, 2),
        "unit": "ms",
        "job_p50_ms": round(job, 2),
        "baseline": round(direct, 2),
        "baseline_is": "the backend's own round trips (remote stage called directly), p50",
        "ratio": round(job / direct, 2),
        "jobs": jobs,
        "case": "generate 512x512 through the fake FAL queue (instant), in process, SQLite",
        "target": "value <= 15",
    }


async def remote_concurrency(fakes: Any, jobs: int = 32, cap: int = 8, service_s: float = 0.2) -> dict[str, object]:
    from load_tests._edge import in_process
    from serve_app.config import ComposerConfig, JobsConfig
    from serve_app.jobs.kinds.generate import GenerateRequest
    from serve_app.jobs.service import SubmitOptions
    from serve_app.schemas import PartialRequest

    fakes.command(f"delay getimg {service_s}")
    config = {
        "composer": ComposerConfig(width=512, height=512, steps=20),
        "jobs": JobsConfig(max_concurrent=jobs * 2, max_queued=jobs * 4),
        "remote": _remote(fakes, "getimg", max_concurrent=cap),
    }
    async with in_process(**config) as service:
        edge = service.edge

        async def one(seed: int) -> None:
            partial = PartialRequest(prompt="a caravan", width=512, height=512, seed=seed)
            job, _ = await edge.jobs.submit("generate", GenerateRequest(partial, backend="getimg"), SubmitOptions())
            done = await edge.jobs.wait(job.id, 120)
            if done.status.value != "succeeded":
                raise RuntimeError(f"job failed: {done.error}")

        await asyncio.gather(*(one(s) for s in range(cap)))  # warm-up
        fakes.command(f"delay getimg {service_s}")  # resets the fake's in-flight peak after the warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(one(100 + s) for s in range(jobs)))
        wall = time.perf_counter() - t0
    throughput, ideal = jobs / wall, cap / service_s
    return {
        "bench": "remote_concurrency",
        "value": round(throughput / ideal, 3),
        "unit": "ratio",
        "throughput_jobs_s": round(throughput, 2),
        "baseline": ideal,
        "baseline_is": f"the ideal: cap {cap} / {service_s} s per call",
        "ratio": round(throughput / ideal, 3),
        "wall_s": round(wall, 3),
        "max_in_flight_at_fake": fakes.command("stats")["max_in_flight"]["getimg"],
        "jobs": jobs,
        "case": f"{jobs} concurrent generate jobs, fake GetImg at {service_s} s a call, max_concurrent {cap}",
        "target": "ratio >= 0.9",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    from load_tests._fake_remote import FakeProcess
    from tests.remote_fakes import KEYS

    os.environ.update({env: KEYS[name] for name, env in ENV.items()})
    with FakeProcess() as fakes:  # the APIs' service time is not limner's: the fakes get a process of their own
        print(json.dumps(asyncio.run(remote_overhead_ms(fakes, args.jobs))), flush=True)
    with FakeProcess() as fakes:
        print(json.dumps(asyncio.run(remote_concurrency(fakes))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
