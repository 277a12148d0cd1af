"""Overload: ten times the service's capacity for 30 s from 64 clients (issue 14).

The service is ``make serve``'s (configs/serve.yaml, the tiny model on the CPU) with a short queue
(``jobs.max_queued``), started by ``serve run``. First its capacity is measured: 8 clients keep small jobs
(64 x 64, 2 steps, a new prompt each) flowing through ``POST /api/v2/images/jobs`` and poll them to the end;
capacity = jobs finished per second. Then 64 clients send jobs open-loop at ten times that rate for 30 s,
each request with a client timeout. Afterwards every accepted job is followed to its end.

Printed (JSON lines, each against a same-run baseline):

- ``overload_completed``: accepted jobs that succeeded over accepted jobs (target 1.0: every accepted job
  completes); baseline: 1.0.
- ``overload_refusals_with_retry_after``: refusals (429 / 503) that carried ``Retry-After``, over refusals
  (target 1.0); extra: the refusal and error counts by status, and ``hung`` (requests past the client timeout:
  target 0).
- ``overload_peak_rss_gb``: the service's peak resident memory during the overload (every process of it);
  baseline: its resident memory idle and warm, before the overload.
- ``overload_capacity_jobs_per_s``: the measured capacity; baseline: the offered rate (10x).

Run: ``python load_tests/bench_overload.py [--seconds 30] [--clients 64] [--factor 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_tests._service import ROOT, ServeProcess, emit

JOBS = "/api/v2/images/jobs"
BODY = {"width": 64, "height": 64, "steps": 2}
TERMINAL = {"succeeded", "failed", "cancelled", "dead"}


def _config(max_queued: int) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    app = config["applications"][0]
    app["args"].pop("zmq_bridge", None)  # no installation here: its deployment goes with it
    app["deployments"] = [d for d in app.get("deployments", []) if d["name"] != "ZmqBridge"]
    app["args"].setdefault("jobs", {})["max_queued"] = max_queued
    return config


async def _follow(client: httpx.AsyncClient, job_ids: list[str], timeout_s: float) -> Counter[str]:
    """Polls every job to its end (or the timeout); counts final statuses."""
    statuses: Counter[str] = Counter()
    deadline = time.monotonic() + timeout_s
    pending = list(job_ids)
    while pending and time.monotonic() < deadline:
        still = []
        for job_id in pending:
            r = await client.get(f"{JOBS}/{job_id}")
            status = r.json()["status"] if r.status_code == 200 else f"http {r.status_code}"
            if status in TERMINAL or status.startswith("http"):
                statuses[status] += 1
            else:
                still.append(job_id)
        pending = still
        if pending:
            await asyncio.sleep(0.5)
    statuses["unfinished"] += len(pending)
    return statuses


async def _capacity(url: str, seconds: float, clients: int) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        done = 0
        stop = time.monotonic() + seconds

        async def worker(k: int) -> None:
            nonlocal done
            i = 0
            while time.monotonic() < stop:
                r = await client.post(f"{JOBS}?wait=60", json={**BODY, "prompt": f"capacity {k} {i} {uuid.uuid4()}"})
                i += 1
                if r.status_code in (200, 202):
                    job = r.json()
                    if job["status"] not in TERMINAL:
                        await _follow(client, [job["id"]], 120)
                    done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        return done / (time.monotonic() - started)


async def _overload(url: str, rate: float, seconds: float, clients: int, timeout_s: float) -> dict[str, Any]:
    accepted: list[str] = []
    statuses: Counter[int] = Counter()
    refusals = with_retry_after = hung = errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        interval = clients / rate  # each client's gap between sends (open loop)
        stop = time.monotonic() + seconds

        async def worker(k: int) -> None:
            nonlocal refusals, with_retry_after, hung, errors
            next_at = time.monotonic() + interval * k / clients
            i = 0
            while next_at < stop:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
                i += 1
                try:
                    r = await client.post(JOBS, json={**BODY, "prompt": f"overload {k} {i} {uuid.uuid4().hex[:6]}"})
                except httpx.TimeoutException:
                    hung += 1
                    continue
                except httpx.HTTPError:
                    errors += 1
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 202:
                    accepted.append(r.json()["id"])
                elif r.status_code in (429, 503):
                    refusals += 1
                    with_retry_after += "retry-after" in r.headers

        await asyncio.gather(*(worker(k) for k in range(clients)))
        offered = sum(statuses.values()) + hung + errors
        finals = await _follow(client, accepted, 600)
    return {
        "accepted": len(accepted),
        "offered": offered,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "refusals": refusals,
        "with_retry_after": with_retry_after,
        "hung": hung,
        "errors": errors,
        "finals": dict(finals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--max-queued", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout of one request")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="limner-overload-"))
    service = ServeProcess(_config(args.max_queued), work)
    service.start()
    try:
        service.wait_ready("/readyz")
        asyncio.run(_capacity(service.url, 5.0, 4))  # warm-up: the size, the HTTP path
        idle_rss = service.rss_gb()
        capacity = asyncio.run(_capacity(service.url, 15.0, 8))
        rate = capacity * args.factor
        peak = [idle_rss]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                peak.append(service.rss_gb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            got = asyncio.run(_overload(service.url, rate, args.seconds, args.clients, args.timeout))
        finally:
            sampling.set()
            sampler.join()
    finally:
        service.stop()
    accepted = got["accepted"]
    succeeded = got["finals"].get("succeeded", 0)
    emit("overload_capacity_jobs_per_s", capacity, "jobs/s", rate, offered=got["offered"], seconds=args.seconds)
    emit(
        "overload_completed",
        succeeded / accepted if accepted else float("nan"),
        "ratio",
        1.0,
        accepted=accepted,
        finals=got["finals"],
        target="1.0",
    )
    emit(
        "overload_refusals_with_retry_after",
        got["with_retry_after"] / got["refusals"] if got["refusals"] else float("nan"),
        "ratio",
        1.0,
        refusals=got["refusals"],
        statuses=got["statuses"],
        hung=got["hung"],
        errors=got["errors"],
        target="1.0, hung 0",
    )
    emit("overload_peak_rss_gb", max(peak), "GB", idle_rss, target="bounded (peak / idle)")


if __name__ == "__main__":
    main()
