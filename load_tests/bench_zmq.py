"""Benchmarks of the Experimance ZMQ bridge inside the running service (configs/serve.yaml, tiny model).

A stand-in core (``tests/experimance/_core.py``: it binds PUSH/PULL like the installation's core) drives the
real ``serve run`` service, whose ``ZmqBridge`` deployment connects to it and turns each ``RenderRequest``
into a durable job (source ``zmq``) through the ingress. The config is configs/serve.yaml with the bridge on
two free 127.0.0.1 ports, ``max_render_side: 64`` (requests ask for 256x256; the tiny model renders 64x64
and the bridge resizes) and ``jobs.max_queued: 5000``; the bridge's own settings (12 s timeout, queue time
included; 8 renders in flight) are the shipped ones. Prints one JSON line per figure:

- ``zmq_overhead_ms``: ~30 sequential requests, each sent after the previous ``ImageReady``. Per request:
  the round trip measured at the core (just before ``send`` to just after the reply is received and
  validated) minus that request's job run time (``started_at`` to ``finished_at`` in the jobs API: claim,
  compose, generate, store the PNG, record the image: the work the same job does for an HTTP client).
  value = p50 of those differences; baseline = p50 of the job run times, so ratio = overhead / generation.
  Jobs are matched to requests by creation order (``created_at`` of the new ``source == "zmq"`` jobs), which
  is the request order because the requests are sequential. The job timestamps are wall-clock times of the
  same machine, so the overhead is also split into segments (extra fields, p50 each): ``submit`` (core send
  to job created: ZMQ, decode, style, handle call, DB commit), ``dispatch`` (created to claimed), ``return``
  (job finished to reply received: result wait, PNG read back, resize and JPEG encode, file write, send).
  The raw round-trip p50/p90/mean and the bridge's own means (from ``/api/v2/admin/zmq/stats``: queue wait
  for a render slot; render = build job + submit + wait for the result; reply = receive to send) are extra
  fields too; compare ``bridge_reply_mean_ms`` with ``rtt_mean_ms`` (ZMQ both ways + decode) and
  ``bridge_render_mean_ms`` with ``run_mean_ms`` (ingress and job round trips). Target: at most 10 ms.
- ``zmq_burst``: replies received over requests sent, in two modes against the same running service (one
  line each, ``mode`` says which). ``paced``: the installation sends one request every 2 s; here that pace is
  time-compressed to what the tiny model sustains, one request every 1.2 x the sequential round-trip p50
  (fewer than 1000 requests when 1000 would take longer than ``--paced-budget-s``; ``requests`` and
  ``reduced_from`` say so). ``burst``: all 1000 sent as fast as the socket takes them. Extra fields:
  ``order_kept`` (the reply ids are the sent ids in the sent order, none twice), ``fallbacks`` (delta of the
  bridge's counter, with causes), ``duration_s`` (first send to last reply). In a burst most replies are
  fallbacks: the 12 s limit counts queue time, exactly like the installation's own image server, and a
  timed-out request is still answered (with the newest image of its era/biome, or a neutral one). That is the
  protocol working; the figure is replies/requests. Target: 1.0, order kept.

Run: ``make bench`` or ``python load_tests/bench_zmq.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
import zmq
import zmq.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_tests._service import ROOT, ServeProcess, emit, free_port, percentile
from tests.experimance._core import BIOMES, ERAS, CoreRenderRequest, FakeCore

SIZE = 256  # requested; rendered at max_render_side and resized by the bridge
RENDER_SIDE = 64


def _config(request_port: int, result_port: int) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    app = config["applications"][0]
    app["args"]["zmq_bridge"].update(
        enabled=True,
        host="127.0.0.1",
        request_port=request_port,
        result_port=result_port,
        max_render_side=RENDER_SIDE,
    )
    app["args"]["generator"]["warmup_sizes"] = [[RENDER_SIDE, RENDER_SIDE]]
    app["args"]["jobs"] = {**app["args"].get("jobs", {}), "max_queued": 5000}
    return config


class Requests:
    """Unique requests (prompt and seed), cycling through eras and biomes so styles are exercised."""

    def __init__(self) -> None:
        self._run = random.randrange(16**6)
        self._count = itertools.count()
        self._pairs = itertools.cycle(zip(ERAS, itertools.cycle(BIOMES)))

    def next(self, label: str) -> CoreRenderRequest:
        i = next(self._count)
        era, biome = next(self._pairs)
        return CoreRenderRequest(
            prompt=f"a landscape, {label} {self._run:06x}-{i}",
            width=SIZE,
            height=SIZE,
            seed=self._run * 100_000 + i,
            era=era,
            biome=biome,
        )


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def _zmq_jobs(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/api/v2/images/jobs", params={"limit": 500})
    r.raise_for_status()
    return [j for j in r.json()["items"] if j["source"] == "zmq"]


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/api/v2/admin/zmq/stats")
    r.raise_for_status()
    stats: dict[str, Any] = r.json()
    return stats


def _delta(after: dict[str, Any], before: dict[str, Any], key: str) -> float:
    return float(after[key]) - float(before[key])


def _causes(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    out = {k: v - before["fallback_causes"].get(k, 0) for k, v in after["fallback_causes"].items()}
    return {k: v for k, v in out.items() if v}


async def _sequential(core: FakeCore, requests: Requests, n: int, label: str) -> list[dict[str, float]]:
    """Sends ``n`` requests one after the other; per request: wall send/receive times and the round trip."""
    out = []
    for _ in range(n):
        request = requests.next(label)
        wall = time.time()
        started = time.perf_counter()
        await core.send(request)
        reply = await core.receive(timeout=60)
        rtt = time.perf_counter() - started
        received = time.time()
        if reply.request_id != request.request_id:
            raise AssertionError(f"reply for {reply.request_id}, expected {request.request_id}")
        out.append({"sent": wall, "received": received, "rtt": rtt})
    return out


async def _stream(
    core: FakeCore, requests: Requests, count: int, interval: float | None, label: str, idle_s: float
) -> dict[str, Any]:
    """Sends ``count`` requests (every ``interval`` seconds, or as fast as the socket takes them) while
    receiving; stops receiving once all are answered or nothing arrived for ``idle_s`` seconds."""
    batch = [requests.next(label) for _ in range(count)]
    received: list[str] = []
    first_send = time.perf_counter()
    last_reply = first_send
    send_done = 0.0

    async def sender() -> None:
        nonlocal send_done
        for i, request in enumerate(batch):
            if interval is not None:
                delay = first_send + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await core.send(request, timeout=60)
        send_done = time.perf_counter() - first_send

    async def receiver() -> None:
        nonlocal last_reply
        while len(received) < count:
            try:
                reply = await core.receive(timeout=idle_s + (interval or 0.0))
            except TimeoutError:
                return
            received.append(reply.request_id)
            last_reply = time.perf_counter()

    await asyncio.gather(sender(), receiver())
    sent_ids = [r.request_id for r in batch]
    got = set(received)
    order_kept = len(got) == len(received) and received == [i for i in sent_ids if i in got]
    return {
        "sent": count,
        "received": len(got & set(sent_ids)),
        "order_kept": order_kept,
        "duration_s": last_reply - first_send,
        "send_s": send_done,
    }


def _segments(samples: list[dict[str, float]], jobs: list[dict[str, Any]]) -> dict[str, list[float]]:
    seg: dict[str, list[float]] = {k: [] for k in ("rtt", "run", "overhead", "submit", "dispatch", "return")}
    for sample, job in zip(samples, jobs, strict=True):
        created, started, finished = _ts(job["created_at"]), _ts(job["started_at"]), _ts(job["finished_at"])
        run = finished - started
        seg["rtt"].append(sample["rtt"])
        seg["run"].append(run)
        seg["overhead"].append(sample["rtt"] - run)
        seg["submit"].append(created - sample["sent"])
        seg["dispatch"].append(started - created)
        seg["return"].append(sample["received"] - finished)
    return seg


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


async def _bench(service: ServeProcess, ports: tuple[int, int], args: argparse.Namespace) -> None:
    context = zmq.asyncio.Context()
    core = FakeCore(context)
    await core.bind(*ports)
    requests = Requests()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            await _sequential(core, requests, args.warmup, "warm-up")

            # -- zmq_overhead_ms -------------------------------------------------------------------------
            known = {j["id"] for j in await _zmq_jobs(client)}
            before = await _stats(client)
            samples = await _sequential(core, requests, args.requests, "sequential")
            after = await _stats(client)
            jobs = sorted((j for j in await _zmq_jobs(client) if j["id"] not in known), key=lambda j: j["created_at"])
            if len(jobs) != len(samples) or any(j["status"] != "succeeded" for j in jobs):
                raise AssertionError(f"{len(samples)} requests but {len(jobs)} new zmq jobs (or not all succeeded)")
            seg = _segments(samples, jobs)
            renders = _delta(after, before, "generation_count") or 1.0
            replies = _delta(after, before, "replies") or 1.0
            rtt_p50 = statistics.median(seg["rtt"])
            emit(
                "zmq_overhead_ms",
                statistics.median(seg["overhead"]) * 1000,
                "ms",
                statistics.median(seg["run"]) * 1000,
                target="<= 10",
                requests=len(samples),
                size=f"{SIZE}x{SIZE} rendered at {RENDER_SIDE}x{RENDER_SIDE}",
                rtt_p50_ms=_ms(seg["rtt"]),
                rtt_p90_ms=round(percentile(seg["rtt"], 0.9) * 1000, 2),
                rtt_mean_ms=round(statistics.fmean(seg["rtt"]) * 1000, 2),
                run_mean_ms=round(statistics.fmean(seg["run"]) * 1000, 2),
                overhead_p90_ms=round(percentile(seg["overhead"], 0.9) * 1000, 2),
                submit_p50_ms=_ms(seg["submit"]),
                dispatch_p50_ms=_ms(seg["dispatch"]),
                return_p50_ms=_ms(seg["return"]),
                bridge_queue_mean_ms=round(_delta(after, before, "queue_seconds_total") / renders * 1000, 2),
                bridge_render_mean_ms=round(_delta(after, before, "generation_seconds_total") / renders * 1000, 2),
                bridge_reply_mean_ms=round(_delta(after, before, "reply_seconds_total") / replies * 1000, 2),
                fallbacks=int(_delta(after, before, "fallbacks")),
            )

            # -- zmq_burst: paced, then one burst --------------------------------------------------------
            interval = 1.2 * rtt_p50
            paced = min(args.burst, max(10, int(args.paced_budget_s / interval)))
            modes: list[tuple[str, int, float | None, dict[str, Any]]] = [
                ("paced", paced, interval, {"interval_ms": round(interval * 1000, 1), "reduced_from": args.burst}),
                ("burst", args.burst, None, {}),
            ]
            for mode, count, pace, extra in modes:
                if pace is not None and count == args.burst:
                    extra.pop("reduced_from")
                before = await _stats(client)
                result = await _stream(core, requests, count, pace, mode, idle_s=args.idle_s)
                await asyncio.sleep(0.5)  # the counters are updated right after the send
                after = await _stats(client)
                emit(
                    "zmq_burst",
                    result["received"] / result["sent"],
                    "replies/request",
                    1.0,
                    target="1.0, order kept",
                    mode=mode,
                    requests=result["sent"],
                    replies=result["received"],
                    order_kept=result["order_kept"],
                    fallbacks=int(_delta(after, before, "fallbacks")),
                    fallback_causes=_causes(after, before),
                    rendered=int(_delta(after, before, "renders_ok")),
                    duration_s=round(result["duration_s"], 2),
                    send_s=round(result["send_s"], 2),
                    **extra,
                )
    finally:
        core.close()
        context.term()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=5, help="sequential requests before measuring")
    parser.add_argument("--requests", type=int, default=30, help="sequential requests for zmq_overhead_ms")
    parser.add_argument("--burst", type=int, default=1000, help="requests per zmq_burst mode")
    parser.add_argument("--paced-budget-s", type=float, default=210.0, help="longest the paced mode may send")
    parser.add_argument("--idle-s", type=float, default=30.0, help="give up on replies after this long silence")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="limner-bench-zmq-"))
    ports = (free_port(), free_port())
    env = {
        "LIMNER_MODEL_CACHE": os.environ.get("LIMNER_MODEL_CACHE", str(ROOT / ".cache" / "models")),
        "LIMNER_DATA_DIR": str(work / "data"),
    }
    service = ServeProcess(_config(*ports), work, env=env)
    service.start()
    try:
        service.wait_ready("/readyz")
        asyncio.run(_bench(service, ports, args))
    finally:
        service.stop()


if __name__ == "__main__":
    main()
