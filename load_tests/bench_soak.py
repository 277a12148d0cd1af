"""Soak: the Experimance bridge and the HTTP API for ``--duration`` seconds (default 600), with cancellations,
abandoned waiters, ``clear_queue`` and timeouts, against the real ``serve run`` service (configs/serve.yaml,
tiny model, SQLite, short retention windows). Not in ``make bench`` (``run_all.py`` skips it): run it with
``.venv/bin/python load_tests/bench_soak.py [--duration 600]``.

Every ``--sample-s`` seconds it records the data directory's bytes and files, the bridge's output files, the
database's rows (jobs, job_events, images), the service's resident memory (the whole process tree), its open
TCP connections and file descriptors, and the generator's step counters. Retention windows are shorter than
half the run, so after the first half the figures should stay flat. Prints one JSON line per figure, each the
value at the end against the same run's value at half time (ratio near 1.0: flat):

- ``soak_disk_bytes``, ``soak_bridge_files``, ``soak_db_rows``, ``soak_rss_gb``, ``soak_connections``,
  ``soak_fds``: end vs half time (extra fields: the start value and the peak);
- ``soak_wasted_steps``: denoising steps run for requests that were already cancelled or abandoned, against
  all steps run (ratio: the wasted share; target near 0);
- ``soak_traffic``: requests sent by kind and how they ended (every bridge request answered once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
import zmq
import zmq.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_tests._service import ROOT, ServeProcess, emit, free_port
from tests.experimance._core import BIOMES, ERAS, CoreRenderRequest, FakeCore

RENDER_SIDE = 64
JOBS = "/api/v2/images/jobs"


def _config(request_port: int, result_port: int, retention_s: float) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    app = config["applications"][0]
    args = app["args"]
    args["zmq_bridge"].update(
        enabled=True,
        host="127.0.0.1",
        request_port=request_port,
        result_port=result_port,
        max_render_side=RENDER_SIDE,
        timeout_s=4.0,  # short: a share of the requests time out and are answered by fallback
        # The bridge's own output retention, scaled down like the service's (defaults: 200 files, 5 min).
        retention={"max_files": 20, "min_age_s": min(60.0, retention_s / 2), "interval_s": retention_s / 4},
    )
    args["generator"]["warmup_sizes"] = [[RENDER_SIDE, RENDER_SIDE]]
    args["jobs"] = {**args.get("jobs", {}), "max_queued": 5000}
    args.update(_retention_args(retention_s))
    return config


def _retention_args(retention_s: float) -> dict[str, Any]:
    """App args that keep finished work for about ``retention_s`` seconds (see serve_app/config.py)."""
    from serve_app.config import AppConfig

    fields = AppConfig.model_fields
    out: dict[str, Any] = {}
    if "retention" in fields:
        section = fields["retention"].annotation
        known = set(getattr(section, "model_fields", {}))
        wanted = {
            "jobs_days": retention_s / 86400,
            "deleted_images_days": retention_s / 86400,
            "interval_s": max(5.0, retention_s / 4),
            "blob_grace_s": retention_s,
        }
        out["retention"] = {k: v for k, v in wanted.items() if k in known}
    return out


class Sampler:
    """What the service holds: disk, rows, memory, connections, generator steps."""

    def __init__(self, service: ServeProcess, data_dir: Path, client: httpx.AsyncClient) -> None:
        self.service, self.data_dir, self.client = service, data_dir, client
        self.samples: list[dict[str, float]] = []

    def _tree(self) -> list[psutil.Process]:
        assert self.service.proc is not None
        root = psutil.Process(self.service.proc.pid)
        return [root, *root.children(recursive=True)]

    def _rows(self) -> dict[str, int]:
        db = self.data_dir / "limner.db"
        if not db.exists():
            return {}
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            tables = ("jobs", "job_events", "images")
            return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}

    async def sample(self, t: float) -> dict[str, float]:
        files = [p for p in self.data_dir.rglob("*") if p.is_file()]
        bridge = self.data_dir / "experimance"
        rows = await asyncio.to_thread(self._rows)
        connections = fds = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                connections += len(proc.net_connections(kind="tcp"))
                fds += proc.num_fds()
        stats = (await self.client.get("/api/v2/admin/generator/stats")).json()
        sample = {
            "t": round(t, 1),
            "disk_bytes": float(sum(p.stat().st_size for p in files if p.exists())),
            "bridge_files": float(sum(1 for p in bridge.rglob("*") if p.is_file())) if bridge.exists() else 0.0,
            "db_rows": float(sum(rows.values())),
            **{f"rows_{k}": float(v) for k, v in rows.items()},
            "rss_gb": self.service.rss_gb(),
            "connections": float(connections),
            "fds": float(fds),
            "steps": float(stats.get("steps", 0)),
            "wasted_steps": float(stats.get("wasted_steps", 0)),
        }
        self.samples.append(sample)
        print(f"# {sample}", file=sys.stderr, flush=True)
        return sample


async def _bridge_traffic(core: FakeCore, stop: asyncio.Event, counts: dict[str, int]) -> None:
    sent: set[str] = set()
    answered: set[str] = set()

    async def receive() -> None:
        while True:
            try:
                reply = await core.receive(timeout=30)
            except TimeoutError:
                if stop.is_set():
                    return
                continue
            core.raw_replies.clear()
            counts["zmq_answered"] += 1
            if reply.request_id in answered or reply.request_id not in sent:
                counts["zmq_wrong_replies"] += 1  # a second reply, or one for a request never sent
            answered.add(reply.request_id)

    receiver = asyncio.create_task(receive())
    i = 0
    while not stop.is_set():
        i += 1
        clear = i % 40 == 0  # clear_queue: everything before it and unanswered gets no reply
        request = CoreRenderRequest(
            prompt=f"a soak landscape {i}",
            width=256,
            height=256,
            seed=random.randrange(2**31),
            era=ERAS[i % len(ERAS)],
            biome=BIOMES[i % len(BIOMES)],
            clear_queue=clear,
        )
        sent.add(request.request_id)
        await core.send(request, timeout=30)
        counts["zmq_sent"] += 1
        if clear:
            counts["zmq_clears"] += 1
        await asyncio.sleep(0.5)
    # Requests in flight are answered within the bridge's timeout; clear_queue drops an unknown number.
    await asyncio.sleep(10)
    receiver.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await receiver


async def _http_traffic(client: httpx.AsyncClient, url: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
    seeds = list(range(20))  # a small pool: repeats hit the cache, identical jobs share a computation
    pending: set[asyncio.Task[Any]] = set()

    async def cancel_soon(job_id: str) -> None:
        await asyncio.sleep(random.uniform(0.05, 0.6))
        r = await client.delete(f"{JOBS}/{job_id}")
        counts["http_cancelled" if r.status_code == 200 else "http_cancel_failed"] += 1

    async def abandon_generate() -> None:
        body = {"prompt": "an abandoned idol", "width": 64, "height": 64, "steps": 40, "seed": random.randrange(2**31)}
        with contextlib.suppress(httpx.TimeoutException):
            async with httpx.AsyncClient(base_url=url, timeout=0.3) as quick:
                await quick.post("/api/v2/images/generate", json=body)
        counts["http_abandoned"] += 1

    while not stop.is_set():
        roll = random.random()
        if roll < 0.1:
            task = asyncio.create_task(abandon_generate())
        else:
            seeded = random.random() < 0.5
            body: dict[str, Any] = {"prompt": "a soak tavern", "width": 64, "height": 64, "steps": 12}
            if seeded:
                body["seed"] = random.choice(seeds)
            r = await client.post(JOBS, json=body)
            counts["http_submitted" if r.status_code == 202 else f"http_{r.status_code}"] += 1
            task = None
            if r.status_code == 202 and roll < 0.4:
                task = asyncio.create_task(cancel_soon(r.json()["id"]))
        if task is not None:
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(0.4)
    for task in list(pending):
        with contextlib.suppress(Exception):
            await task


async def _soak(service: ServeProcess, ports: tuple[int, int], data_dir: Path, args: argparse.Namespace) -> None:
    context = zmq.asyncio.Context()
    core = FakeCore(context)
    await core.bind(*ports)
    counts: dict[str, int] = dict.fromkeys(
        ["zmq_sent", "zmq_answered", "zmq_clears", "zmq_wrong_replies", "http_submitted",
         "http_cancelled", "http_cancel_failed", "http_abandoned"], 0,
    )  # fmt: skip
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            sampler = Sampler(service, data_dir, client)
            started = time.monotonic()
            await sampler.sample(0.0)
            traffic = [
                asyncio.create_task(_bridge_traffic(core, stop, counts)),
                asyncio.create_task(_http_traffic(client, service.url, stop, counts)),
            ]
            half: dict[str, float] | None = None
            while (elapsed := time.monotonic() - started) < args.duration:
                await asyncio.sleep(min(args.sample_s, args.duration - elapsed))
                sample = await sampler.sample(time.monotonic() - started)
                if half is None and sample["t"] >= args.duration / 2:
                    half = sample
            stop.set()
            await asyncio.gather(*traffic, return_exceptions=True)
            await asyncio.sleep(5)  # let the last jobs settle
            end = await sampler.sample(time.monotonic() - started)
    finally:
        core.close()
        context.term()
    first = sampler.samples[0]
    half = half or end
    for key, unit in (
        ("disk_bytes", "bytes"),
        ("bridge_files", "files"),
        ("db_rows", "rows"),
        ("rss_gb", "GB"),
        ("connections", "connections"),
        ("fds", "fds"),
    ):
        peak = max(s[key] for s in sampler.samples)
        emit(f"soak_{key}", end[key], unit, half[key], start=first[key], peak=peak, duration_s=args.duration)
    emit(
        "soak_wasted_steps",
        end["wasted_steps"] - first["wasted_steps"],
        "steps",
        max(1.0, end["steps"] - first["steps"]),
        target="ratio near 0",
    )
    emit("soak_traffic", counts["zmq_answered"], "replies", counts["zmq_sent"], **counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of traffic (default 600)")
    parser.add_argument("--sample-s", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--retention-s", type=float, default=120.0, help="how long finished work is kept")
    args = parser.parse_args()
    ports = (free_port(), free_port())
    with tempfile.TemporaryDirectory(prefix="limner-soak-") as tmp:
        service = ServeProcess(_config(*ports, args.retention_s), Path(tmp))
        data_dir = Path(tmp) / f"data-{service.port}"
        service.start()
        try:
            service.wait_ready("/readyz")
            asyncio.run(_soak(service, ports, data_dir, args))
        finally:
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
