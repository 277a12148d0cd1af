"""limner's metrics as Prometheus scrapes them: from Ray's metrics export of the session's ``serve run``.

The export's address is found the way Prometheus finds it: Ray's dashboard writes every node's metrics export
address to ``<session dir>/prom_metrics_service_discovery.json`` (a ``file_sd_configs`` file). The session dir is
read from the command line of the service's own Ray processes, so a second Ray on this machine is never scraped.
Ray's workers report to the export every few seconds: each check polls for up to :data:`EXPORT_WAIT_S`.

The HTTP series need the :class:`~serve_app.api.metrics.RequestMetrics` middleware in the app's middleware list
(serve_app/api/app.py); the cache, cost and generator series come from the services and deployments themselves.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import Service

pytestmark = pytest.mark.serve

EXPORT_WAIT_S = 45.0
GENERATE = "/api/v2/images/generate"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Sample = tuple[str, dict[str, str], float]


def _session_dir(service: Service) -> Path:
    assert service.process.proc is not None
    root = psutil.Process(service.process.proc.pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            args = proc.cmdline()
        except psutil.Error:
            continue
        for arg in args:
            for flag in ("--session-dir=", "--session_dir="):
                if arg.startswith(flag):
                    return Path(arg[len(flag) :])
    pytest.fail("no Ray process of the service names its session dir")


def _export_targets(service: Service) -> list[str]:
    discovery = _session_dir(service) / "prom_metrics_service_discovery.json"
    deadline = time.monotonic() + EXPORT_WAIT_S
    while time.monotonic() < deadline:
        if discovery.exists():
            targets = [t for group in json.loads(discovery.read_text()) for t in group.get("targets", [])]
            if targets:
                return targets
        time.sleep(1.0)
    pytest.fail(f"Ray wrote no metrics export targets to {discovery}")


def _scrape(targets: list[str]) -> list[Sample]:
    samples: list[Sample] = []
    for target in targets:
        try:
            text = httpx.get(f"http://{target}/metrics", timeout=10).text
        except httpx.TransportError:
            continue  # a node's agent restarting: the poll tries again
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match is None or line.startswith("#"):
                continue
            name, labels, value = match.groups()
            samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


def _total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(v for n, tags, v in samples if n == name and all(tags.get(k) == w for k, w in labels.items()))


def _poll(targets: list[str], ready: Callable[[list[Sample]], bool]) -> list[Sample]:
    """Scrapes until ``ready`` holds (Ray exports on an interval), then returns that scrape."""
    deadline = time.monotonic() + EXPORT_WAIT_S
    samples: list[Sample] = []
    while time.monotonic() < deadline:
        samples = _scrape(targets)
        if ready(samples):
            return samples
        time.sleep(2.0)
    return samples


@pytest.fixture(scope="module")
def traffic(service: Service) -> dict[str, object]:
    """A few generate requests (one twice: a result-cache hit), a job looked up by id, an unknown path."""
    tag = uuid.uuid4().hex[:8]
    bodies = [{"prompt": f"metrics {tag} {i}", "width": 64, "height": 64, "steps": 2, "seed": i} for i in range(3)]
    with httpx.Client(base_url=service.url, timeout=120) as client:
        first = [client.post(GENERATE, json=body) for body in bodies]
        assert [r.status_code for r in first] == [200] * len(bodies), first[-1].text
        again = client.post(GENERATE, json=bodies[0])  # seeded and seen: answered from the result cache
        assert again.status_code == 200 and again.content == first[0].content
        missing = str(uuid.uuid4())
        assert client.get(f"/api/v2/images/jobs/{missing}").status_code == 404
        assert client.get(f"/no-such-path-{tag}").status_code == 404
        echoed = client.post(GENERATE, json=bodies[1], headers={"X-Request-ID": f"e2e-{tag}"})
    return {"generated": len(bodies) + 2, "missing": missing, "tag": tag, "echoed": echoed}


def test_the_request_id_is_echoed_once(traffic: dict[str, object]) -> None:
    echoed = traffic["echoed"]
    assert isinstance(echoed, httpx.Response) and echoed.status_code == 200
    # Ray Serve's proxy echoes X-Request-ID itself; the middleware must not add a second copy.
    assert echoed.headers.get_list("x-request-id") == [f"e2e-{traffic['tag']}"]


def test_http_requests_are_counted_by_route_template(service: Service, traffic: dict[str, object]) -> None:
    targets = _export_targets(service)
    generated = float(traffic["generated"])  # type: ignore[arg-type]
    name = "ray_limner_http_requests_total"

    def ready(samples: list[Sample]) -> bool:  # every series this test reads (Ray exports each on its own time)
        return (
            _total(samples, name, route=GENERATE, method="POST", status="200") >= generated
            and _total(samples, name, route="/api/v2/images/jobs/{job_id}", method="GET", status="404") >= 1
            and _total(samples, name, route="unmatched", status="404") >= 1
        )

    samples = _poll(targets, ready)
    assert ready(samples), sorted({(n, str(t)) for n, t, _ in samples if n == name})
    routes = {tags.get("route", "") for n, tags, _ in samples if n == name}
    assert not any(str(traffic["missing"]) in r or str(traffic["tag"]) in r for r in routes), routes  # no raw paths
    deployments = {tags.get("deployment") for n, tags, _ in samples if n == name}
    assert deployments == {"Ingress"}  # Serve's own tags come along
    count = "ray_limner_http_request_seconds_count"
    assert _total(samples, count, route=GENERATE, method="POST") >= generated
    assert _total(samples, "ray_limner_http_request_seconds_sum", route=GENERATE, method="POST") > 0
    assert _total(samples, "ray_limner_http_request_seconds_bucket", route=GENERATE, method="POST", le="+Inf") >= (
        generated
    )


def test_cache_lookups_and_the_generator_are_exported(service: Service, traffic: dict[str, object]) -> None:
    targets = _export_targets(service)
    name = "ray_limner_cache_lookups_total"

    def ready(samples: list[Sample]) -> bool:
        return _total(samples, name, cache="result", result="hit") >= 1 and (
            _total(samples, "ray_limner_generator_batch_size_count") > 0
        )

    samples = _poll(targets, ready)
    assert ready(samples), sorted({n for n, _, _ in samples if n.startswith("ray_limner")})
    assert _total(samples, name, cache="result", result="miss") >= 1  # the first time each body was seen
    assert _total(samples, "ray_limner_generator_images_total") >= 1


def test_remote_cost_is_exported_in_dollars(service: Service) -> None:
    body = {"prompt": f"a priced lighthouse {uuid.uuid4().hex[:6]}", "width": 256, "height": 256, "seed": 7}
    r = httpx.post(f"{service.url}/api/v2/images/jobs?wait=120", json={**body, "backend": "fal"}, timeout=150)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    targets = _export_targets(service)
    name = "ray_limner_remote_cost_usd_total"
    samples = _poll(targets, lambda s: _total(s, name, backend="fal") >= 0.0025 - 1e-9)
    # At least this job's price (other tests of the session may have paid for more), in dollars, not cents.
    assert 0.0025 - 1e-9 <= _total(samples, name, backend="fal") < 1.0
