"""``asset_get``: a cached asset through the service against a bare static-file server, same file, same run.

The service answers ``GET /api/v2/assets/{sha256}.png`` through Ray Serve's proxy, the ingress, the hot-asset
cache (after the first request) and the ETag/Range logic. The baseline is a bare uvicorn + Starlette
``StaticFiles`` server on the very same blob. Both are driven by the same client: first sequentially (p50
latency), then with 16 concurrent connections (requests per second). Ratio: service / baseline.

Run: ``python load_tests/bench_assets.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_tests._service import ROOT, ServeProcess, emit, free_port

STATIC_APP = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
app = Starlette(routes=[Mount("/", app=StaticFiles(directory=sys.argv[1]))])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def _latencies(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            out.append(time.perf_counter() - started)
    return out


async def _throughput(url: str, clients: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                (await client.get(url)).raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return done / (time.perf_counter() - started)


def _measure(url: str, n: int, clients: int, seconds: float) -> tuple[float, float]:
    _latencies(url, 20)  # warm: connections, hot cache
    p50 = statistics.median(_latencies(url, n))
    rps = asyncio.run(_throughput(url, clients, seconds))
    return p50, rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="limner-bench-assets-"))
    data = work / "data"
    config = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    service = ServeProcess(config, work, env={"LIMNER_DATA_DIR": str(data)})
    service.start()
    try:
        service.wait_ready("/readyz")
        body = {"prompt": "a treasure chest", "width": 64, "height": 64, "steps": 4, "seed": 1}
        job = httpx.post(f"{service.url}/api/v2/images/jobs?wait=60", json=body, timeout=90).json()
        asset_path = job["links"]["asset"]
        sha_name = asset_path.rsplit("/", 1)[1]
        blob = next((data / "assets").rglob(sha_name))
        svc_p50, svc_rps = _measure(f"{service.url}{asset_path}", args.requests, args.clients, args.seconds)
    finally:
        service.stop()

    port = free_port()
    static = subprocess.Popen([sys.executable, "-c", STATIC_APP, str(blob.parent), str(port)])
    try:
        url = f"http://127.0.0.1:{port}/{sha_name}"
        for _ in range(100):
            try:
                httpx.get(url, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        base_p50, base_rps = _measure(url, args.requests, args.clients, args.seconds)
    finally:
        static.terminate()
        static.wait()
    emit("asset_get_rps", svc_rps, "req/s", base_rps, target="ratio >= 0.5", bytes=blob.stat().st_size)
    emit("asset_get_p50_ms", svc_p50 * 1000, "ms", base_p50 * 1000)


if __name__ == "__main__":
    main()
