"""Benchmarks of the graph on the CPU profile (configs/serve.yaml, tiny model).

Prints one JSON line per figure, each against a baseline measured in the same run:

- ``cold_start_s``: ``serve run`` to ``/readyz`` 200, everything installed; baseline: a hello-world Serve app.
- ``service_rss_gb``: resident memory of every process of the service once warm; baseline: the same app.
- ``graph_overhead_ms``: p50 of a 64x64, 4-step request through HTTP and the graph, minus the p50 of the
  same pipeline called in-process (generate + PNG encode); baseline: that in-process p50.
- ``batching_gain``: throughput of 8 concurrent clients over sequential throughput, same requests.

Run: ``make bench`` or ``python load_tests/bench_graph.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_tests._service import ROOT, ServeProcess, emit, percentile

REQUEST = {"prompt": "a battle map of a forest clearing", "width": 64, "height": 64, "steps": 4}


def _limner_config() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())


def _hello_config() -> dict:  # type: ignore[type-arg]
    return {
        "proxy_location": "HeadOnly",
        "http_options": {},
        "applications": [{"name": "hello", "route_prefix": "/", "import_path": "load_tests.hello_app:app"}],
    }


def _sequential_latencies(url: str, n: int, tag: str) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(n):
            started = time.perf_counter()
            # A new prompt each time: a repeat would be answered from the result cache.
            r = client.post("/api/v2/images/generate", json={**REQUEST, "prompt": f"{tag} {i}", "seed": i})
            out.append(time.perf_counter() - started)
            r.raise_for_status()
    return out


async def _concurrent(url: str, clients: int, per_client: int, tag: str) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=64)) as client:

        async def worker(k: int) -> None:
            for i in range(per_client):
                body = {**REQUEST, "prompt": f"{tag} {k} {i}", "seed": 1000 * k + i}
                r = await client.post("/api/v2/images/generate", json=body)
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        return time.perf_counter() - started


def _in_process_latencies(n: int, threads: int | None) -> list[float]:
    import torch

    from pipelines.request import GenerationRequest
    from pipelines.sdxl import load_pipeline

    if threads:
        torch.set_num_threads(threads)  # the replica's setting, so both sides run the same computation

    cache = os.environ.get("LIMNER_MODEL_CACHE", str(ROOT / ".cache" / "models"))
    pipe = load_pipeline("tiny", cache_dir=cache, model_name="tiny")
    pipe.warmup(64, 64)
    out = []
    for i in range(n):
        started = time.perf_counter()
        image = pipe.generate([GenerationRequest(seed=i, model="tiny", **REQUEST)]).images[0]  # type: ignore[arg-type]
        image.save(io.BytesIO(), format="PNG", compress_level=1)
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40, help="sequential requests for latency")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="limner-bench-"))

    hello = ServeProcess(_hello_config(), work)
    hello.start()
    hello_cold = hello.wait_ready("/")
    time.sleep(2)
    hello_rss = hello.rss_gb()
    hello.stop()

    service = ServeProcess(_limner_config(), work)
    service.start()
    try:
        cold = service.wait_ready("/readyz")
        emit("cold_start_s", cold, "s", hello_cold, target="<= 30")
        _sequential_latencies(service.url, 5, "warm")  # warm the HTTP path and the 64x64 size
        asyncio.run(_concurrent(service.url, args.clients, 2, "warm"))
        emit("service_rss_gb", service.rss_gb(), "GB", hello_rss, target="<= 3.5")
        graph = _sequential_latencies(service.url, args.requests, "sequential")
        sequential_tput = len(graph) / sum(graph)
        seconds = asyncio.run(_concurrent(service.url, args.clients, args.per_client, "concurrent"))
        concurrent_tput = args.clients * args.per_client / seconds
    finally:
        service.stop()

    # The replica's torch threads: cpu_threads if set, else what Ray sets from its num_cpus (1 by default).
    app = _limner_config()["applications"][0]
    generator = next(d for d in app["deployments"] if d["name"] == "Generator")
    threads = app["args"]["generator"].get("cpu_threads") or int(
        generator.get("ray_actor_options", {}).get("num_cpus", 1)
    )
    local = _in_process_latencies(args.requests, threads)
    graph_p50, local_p50 = statistics.median(graph), statistics.median(local)
    emit(
        "graph_overhead_ms",
        (graph_p50 - local_p50) * 1000,
        "ms",
        local_p50 * 1000,
        target="<= 15",
        graph_p50_ms=round(graph_p50 * 1000, 2),
        graph_p90_ms=round(percentile(graph, 0.9) * 1000, 2),
    )
    emit(
        "batching_gain",
        concurrent_tput / sequential_tput,
        "x",
        1.0,
        target=">= 2.5",
        sequential_rps=round(sequential_tput, 2),
        concurrent_rps=round(concurrent_tput, 2),
    )


if __name__ == "__main__":
    main()
