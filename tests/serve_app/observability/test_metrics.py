"""The metrics module: one instance per process, tag keys as declared, bounded tag values, and the wiring in the
caches, the cost ledger and the webhook deliverer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import serve_app.observability.metrics as metrics_module
from serve_app.observability.metrics import (
    METRICS,
    Metrics,
    NullMetrics,
    RayMetrics,
    RecordingMetrics,
    metrics,
    priority_class,
    timed_stage,
    use_metrics,
)

_REPO = Path(__file__).resolve().parents[3]


def _every_method(m: Metrics) -> None:
    m.http_request("/api/v2/images/jobs/{job_id}", "get", 200, 0.01)
    m.job_claimed("generate", 0, 1.5)
    m.job_finished("generate", "succeeded", 5, run_s=2.0)
    m.job_finished("portrait", "retried", -10)
    m.queue_depth("queued", 3)
    m.stage_seconds("generate", 0.4)
    m.cache_lookup("result", "hit")
    m.remote_cost("fal", 0.0025)
    m.webhook_delivery("delivered")
    m.rate_limited("generate")
    m.auth_failure("invalid")


def test_outside_ray_the_process_gets_one_null_instance() -> None:
    with use_metrics(None):  # type: ignore[arg-type]  (as if nothing had been made yet)
        first = metrics()
        assert isinstance(first, NullMetrics)
        assert metrics() is first
        _every_method(first)  # records nothing, raises nothing


def test_use_metrics_installs_and_restores() -> None:
    before = metrics()
    with use_metrics(RecordingMetrics()) as rec:
        assert metrics() is rec
        with use_metrics(RecordingMetrics()) as inner:
            assert metrics() is inner
        assert metrics() is rec
    assert metrics() is before


def test_every_method_records_with_exactly_the_declared_tag_keys() -> None:
    rec = RecordingMetrics()
    _every_method(rec)  # RecordingMetrics refuses tags that differ from METRICS
    assert {s.name for s in rec.samples} == set(METRICS)
    assert isinstance(rec, Metrics)
    assert rec.count("limner_http_requests_total", route="/api/v2/images/jobs/{job_id}", method="GET", status="200")
    assert rec.count("limner_jobs_finished_total", kind="generate", status="succeeded", priority="high") == 1
    assert rec.count("limner_jobs_finished_total", kind="portrait", status="retried", priority="low") == 1
    assert rec.observed("limner_job_run_seconds", kind="generate") == [2.0]  # the retried one had no run time
    assert rec.observed("limner_job_queue_wait_seconds", kind="generate", priority="normal") == [1.5]
    assert rec.gauge("limner_queue_depth", status="queued") == 3
    assert rec.count("limner_remote_cost_usd_total", backend="fal") == pytest.approx(0.0025)


def test_unbounded_values_are_folded_into_a_small_set() -> None:
    rec = RecordingMetrics()
    rec.http_request("/x", "BREW", 418, -1.0)
    rec.stage_seconds("a prompt about dragons", 1.0)
    rec.job_finished("generate", "exploded", 0)
    rec.cache_lookup("result", "maybe")
    rec.webhook_delivery("lost")
    rec.http_request("/" + "a" * 500, "GET", 200, 0.1)
    assert rec.count("limner_http_requests_total", method="OTHER", status="418") == 1
    assert rec.observed("limner_http_request_seconds", route="/x") == [0.0]
    assert rec.observed("limner_stage_seconds", stage="other") == [1.0]
    assert rec.count("limner_jobs_finished_total", status="other") == 1
    assert rec.count("limner_cache_lookups_total", result="other") == 1
    assert rec.count("limner_webhook_deliveries_total", outcome="other") == 1
    assert max(len(s.tags["route"]) for s in rec.samples if "route" in s.tags) <= 64


def test_counters_never_get_zero_or_negative_increments() -> None:
    rec = RecordingMetrics()
    rec.remote_cost("fal", 0.0)  # a free image: Ray's Counter.inc(0) would raise
    rec.remote_cost("fal", -1.0)
    rec.cache_lookup("result", "hit", count=0)
    assert rec.samples == []
    with pytest.raises(ValueError, match="only grows"):
        rec._inc("limner_rate_limited_total", {"group": "x"}, 0)


def test_priority_classes() -> None:
    assert [priority_class(p) for p in (-10, -1, 0, 1, 99)] == ["low", "low", "normal", "high", "high"]


def test_timed_stage_records_also_when_the_block_raises() -> None:
    with use_metrics(RecordingMetrics()) as rec:
        with timed_stage("enhance"):
            pass
        with pytest.raises(RuntimeError), timed_stage("overlay"):
            raise RuntimeError("boom")
    assert len(rec.observed("limner_stage_seconds", stage="enhance")) == 1
    assert len(rec.observed("limner_stage_seconds", stage="overlay")) == 1


class _FakeMetric:
    made: list[_FakeMetric] = []

    def __init__(self, name: str, description: str = "", **kw: Any) -> None:
        self.name, self.description, self.kw, self.calls = name, description, kw, []
        _FakeMetric.made.append(self)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("inc", value, tags))

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("observe", value, tags))

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("set", value, tags))


def test_ray_metrics_declares_every_metric_with_its_tag_keys_and_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.serve import metrics as serve_metrics

    _FakeMetric.made = []
    for cls in ("Counter", "Histogram", "Gauge"):
        monkeypatch.setattr(serve_metrics, cls, _FakeMetric)
    ray_metrics = RayMetrics()
    made = {m.name: m for m in _FakeMetric.made}
    assert set(made) == set(METRICS)
    for name, spec in METRICS.items():
        assert made[name].kw["tag_keys"] == spec.tag_keys
        if spec.kind == "histogram":
            bounds = made[name].kw["boundaries"]
            assert bounds == sorted(bounds) and bounds[0] > 0
    _every_method(ray_metrics)
    kind, value, tags = made["limner_http_requests_total"].calls[0]
    expected = {"route": "/api/v2/images/jobs/{job_id}", "method": "GET", "status": "200"}
    assert (kind, value, tags) == ("inc", 1.0, expected)


def test_a_failing_ray_metric_never_fails_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.serve import metrics as serve_metrics

    class Broken(_FakeMetric):
        def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
            raise ValueError("tag missing")

    for cls in ("Counter", "Histogram", "Gauge"):
        monkeypatch.setattr(serve_metrics, cls, Broken)
    RayMetrics().rate_limited("generate")


def test_inside_a_ray_worker_the_ray_backed_one_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    made: list[str] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(metrics_module, "RayMetrics", lambda: made.append("ray") or RecordingMetrics())
    with use_metrics(None):  # type: ignore[arg-type]
        first = metrics()
        assert metrics() is first and made == ["ray"]


def test_importing_the_package_does_no_work_and_imports_no_ray() -> None:
    code = (
        "import sys, serve_app.observability, serve_app.api.metrics\n"
        "from serve_app.observability.metrics import _Current\n"
        "assert _Current.instance is None\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=_REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# -- the wiring in the files of the services -----------------------------------------------------------------


async def test_the_memory_caches_count_hits_misses_and_coalesced_lookups() -> None:
    import asyncio

    from serve_app.cache import MemoryByteCache, MemoryResultCache

    results, assets = MemoryResultCache(), MemoryByteCache(max_bytes=1000)
    gate = asyncio.Event()

    async def slow() -> dict[str, int]:
        await gate.wait()
        return {"n": 1}

    with use_metrics(RecordingMetrics()) as rec:
        assert await results.get("k") is None
        await results.set("k", {"n": 0})
        assert await results.get("k") == {"n": 0}
        first = asyncio.ensure_future(results.get_or_compute("j", slow))
        second = asyncio.ensure_future(results.get_or_compute("j", slow))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, second)
        assert await results.get_or_compute("j", slow) == {"n": 1}
        assert await assets.get("a") is None
        await assets.set("a", b"png")
        assert await assets.get("a") == b"png"
    name = "limner_cache_lookups_total"
    assert rec.count(name, cache="result", result="hit") == results.stats.hits == 2
    assert rec.count(name, cache="result", result="miss") == results.stats.misses == 2
    assert rec.count(name, cache="result", result="coalesced") == results.stats.coalesced == 1
    assert rec.count(name, cache="asset", result="hit") == rec.count(name, cache="asset", result="miss") == 1


async def test_the_ledger_counts_what_it_records(sqlite_db_url: str) -> None:
    from serve_app.db import make_engine
    from serve_app.remote.ledger import CostLedger

    engine = make_engine(sqlite_db_url)
    try:
        ledger = CostLedger(engine)
        with use_metrics(RecordingMetrics()) as rec:
            await ledger.record("fal", 0.0025)
            await ledger.record("fal", 0.0025, source="zmq")
            await ledger.record("getimg", 0.0)  # free: nothing to add
    finally:
        await engine.dispose()
    assert rec.count("limner_remote_cost_usd_total", backend="fal") == pytest.approx(0.005)
    assert rec.count("limner_remote_cost_usd_total", backend="getimg") == 0


async def test_webhook_tries_are_counted_by_outcome(sqlite_db_url: str) -> None:
    from serve_app.db import make_engine
    from serve_app.jobs import Backoff, SqlJobStore
    from serve_app.webhooks import WebhookDeliverer, WebhookOutbox
    from tests.webhook_receiver import Receiver

    engine = make_engine(sqlite_db_url)
    try:
        store = SqlJobStore(engine)
        with use_metrics(RecordingMetrics()) as rec, Receiver([500, 200]) as receiver:
            ok = await store.submit("image", {"n": 1}, webhook_url=receiver.url)
            refused = await store.submit("image", {"n": 2}, webhook_url="http://10.0.0.7/hook")
            await store.claim("d1", lease_s=30, limit=2)
            await store.complete(ok.id, "d1")
            await store.complete(refused.id, "d1")
            deliverer = WebhookDeliverer(
                WebhookOutbox(engine),
                store,
                lambda job: {"id": str(job.id)},
                secret="whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
                allowed_hosts=("127.0.0.1",),
                timeout_s=5,
                backoff=Backoff(base_s=0.01, cap_s=0.02),
            )
            deliverer.start()
            try:
                for _ in range(200):
                    await deliverer.run_once()
                    if deliverer.sent + deliverer.failed == 2:
                        break
                    import asyncio

                    await asyncio.sleep(0.02)
            finally:
                await deliverer.stop()
    finally:
        await engine.dispose()
    name = "limner_webhook_deliveries_total"
    assert rec.count(name, outcome="delivered") == 1
    assert rec.count(name, outcome="retry") == 1
    assert rec.count(name, outcome="failed") == 1
