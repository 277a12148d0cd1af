"""HTTP behaviour in-process (see conftest): generate, jobs, events, images, assets."""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.conftest import Local

GENERATE = "/api/v2/images/generate"
JOBS = "/api/v2/images/jobs"


def _post(client: TestClient, **body: Any) -> Any:
    return client.post(GENERATE, json=body)


def _wait_status(client: TestClient, job_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"{JOBS}/{job_id}").json()
        if job["status"] in statuses or time.monotonic() > deadline:
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_generate_png_with_seed_and_hash(client: TestClient) -> None:
    r = _post(client, prompt="a dragon", width=96, height=64, seed=11)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-seed"] == "11"
    assert r.headers["x-request-hash"].startswith("v1:")
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "PNG" and image.size == (96, 64)
    again = _post(client, prompt="a dragon", width=96, height=64, seed=11)
    assert again.content == r.content
    assert again.headers["x-image-id"] == r.headers["x-image-id"]  # the repeat was a cache hit
    assert again.headers["x-job-id"] != r.headers["x-job-id"]  # ...answered by a job of its own


def test_unseeded_requests_get_a_fresh_seed(client: TestClient) -> None:
    a, b = _post(client, prompt="a dragon"), _post(client, prompt="a dragon")
    assert a.headers["x-seed"] != b.headers["x-seed"]
    assert a.headers["x-image-id"] != b.headers["x-image-id"]


@pytest.mark.parametrize(("fmt", "pil_format"), [("webp", "WEBP"), ("jpeg", "JPEG")])
def test_other_formats(client: TestClient, fmt: str, pil_format: str) -> None:
    r = _post(client, prompt="a dragon", seed=1, format=fmt)
    assert r.status_code == 200
    assert r.headers["content-type"] == f"image/{fmt}"
    assert Image.open(io.BytesIO(r.content)).format == pil_format


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "width": 100}, "width"),
        ({"prompt": "x", "height": 8}, "height"),
        ({"prompt": "x", "steps": 0}, "steps"),
        ({"prompt": "x", "steps": "many"}, "steps"),
        ({"prompt": "x", "guidance": 99}, "guidance"),
        ({"prompt": "x", "seed": -3}, "seed"),
        ({"prompt": "x", "scheduler": "plms"}, "scheduler"),
        ({"prompt": "x", "format": "gif"}, "format"),
        ({"prompt": "x", "size": "colossal"}, "size"),
        ({"prompt": "x", "aspect_ratio": "wide"}, "aspect_ratio"),
        ({"prompt": "x", "colour": "red"}, "colour"),
    ],
)
@pytest.mark.parametrize("path", [GENERATE, JOBS])
def test_bad_input_is_422_naming_the_field(client: TestClient, path: str, body: dict[str, Any], param: str) -> None:
    before = client.get(JOBS, params={"limit": 500}).json()["items"]
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["param"] == param
    assert param in error["message"]
    assert len(client.get(JOBS, params={"limit": 500}).json()["items"]) == len(before)  # nothing was accepted


def test_malformed_json_is_422(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    r = client.post(GENERATE, content=b"{not json", headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "invalid_request"


def test_health_and_readiness(client: TestClient, local: Local) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model"] == "tiny"
    local.ready = False
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.headers["retry-after"]
    assert not_ready.json()["error"]["type"] == "not_ready"


def test_openapi_documents_examples_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/v2/images/generate"]["post"]
    assert {"200", "422", "503"} <= set(op["responses"])
    assert "image/png" in op["responses"]["200"]["content"]
    schema = spec["components"]["schemas"]["GenerateImageRequest"]
    assert schema["examples"] and schema["examples"][0]["prompt"]
    assert {"202", "409"} <= set(spec["paths"]["/api/v2/images/jobs"]["post"]["responses"])
    assert client.get("/docs").status_code == 200


def test_job_is_committed_before_202_and_finishes(client: TestClient, local: Local) -> None:
    r = client.post(JOBS, json={"prompt": "a tavern", "seed": 3})
    assert r.status_code == 202
    job = r.json()
    assert r.headers["location"] == f"{JOBS}/{job['id']}" == job["links"]["self"]
    assert job["status"] in ("queued", "running")
    done = _wait_status(client, job["id"], {"succeeded"})
    assert done["status"] == "succeeded" and done["progress"] == 1.0
    image = client.get(done["links"]["image"]).json()
    assert image["seed"] == 3 and image["settings"]["request_hash"] == done["request_hash"]
    file = client.get(done["links"]["file"])
    assert Image.open(io.BytesIO(file.content)).size == (64, 64)


def test_an_idle_service_claims_a_job_as_it_commits_it_and_a_busy_one_queues(client: TestClient, local: Local) -> None:
    r = client.post(JOBS, json={"prompt": "a lighthouse", "seed": 4, "steps": 40})
    job = r.json()
    assert r.status_code == 202 and job["status"] == "running" and job["attempts"] == 1
    assert _wait_status(client, job["id"], {"succeeded"})["status"] == "succeeded"
    ids = _saturate(client, local)  # 10 held jobs, 8 slots
    assert [client.get(f"{JOBS}/{i}").json()["status"] for i in ids[-2:]] == ["queued", "queued"]
    for job_id in ids:
        client.delete(f"{JOBS}/{job_id}")
    for job_id in ids:
        assert _wait_status(client, job_id, {"cancelled", "succeeded"})["status"] == "cancelled"


def test_wait_answers_200_with_the_result(client: TestClient) -> None:
    r = client.post(JOBS, params={"wait": 30}, json={"prompt": "a ship", "seed": 8, "format": "webp"})
    assert r.status_code == 200
    job = r.json()
    assert job["status"] == "succeeded" and job["links"]["asset"].endswith(".webp")
    asset = client.get(job["links"]["asset"])
    assert asset.headers["content-type"] == "image/webp"


def test_idempotency_key(client: TestClient) -> None:
    body = {"prompt": "a keep"}  # unseeded: the key, not the seed, makes it the same job
    first = client.post(JOBS, json=body, headers={"Idempotency-Key": "k-1"})
    again = client.post(JOBS, json=body, headers={"Idempotency-Key": "k-1"})
    assert first.json()["id"] == again.json()["id"]
    other = client.post(JOBS, json={"prompt": "a moat"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409
    assert other.json()["error"]["param"] == "Idempotency-Key"


def test_list_jobs_pages_with_a_cursor(client: TestClient) -> None:
    ids = {client.post(JOBS, json={"prompt": f"page {i}", "seed": i}).json()["id"] for i in range(5)}
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(JOBS, params=params).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen))
    assert client.get(JOBS, params={"cursor": "garbage"}).status_code == 422
    assert client.get(f"{JOBS}/not-a-uuid").status_code == 404


def _saturate(client: TestClient, local: Local, n: int = 10) -> list[str]:
    """Long jobs that keep every dispatcher slot busy until the test cancels them (they are held after their
    first step, so a slow machine cannot finish one early)."""
    body = {"width": 64, "height": 64, "steps": 150}
    # Prompts of their own: an image an earlier test's job made (jobs a stopping edge handed back run on)
    # would answer one at once and free its slot.
    run = uuid.uuid4().hex[:8]
    prompts = [f"slow {i} {run}" for i in range(n)]
    local.hold(prompts)
    return [client.post(JOBS, json={**body, "prompt": p, "seed": i}).json()["id"] for i, p in enumerate(prompts)]


def test_cancel_queued_and_running(client: TestClient, local: Local) -> None:
    ids = _saturate(client, local)
    running = _wait_status(client, ids[0], {"running"})
    assert running["status"] == "running"
    queued = client.get(f"{JOBS}/{ids[-1]}").json()
    assert queued["status"] == "queued"
    assert client.delete(f"{JOBS}/{ids[-1]}").json()["status"] == "cancelled"  # at once
    # A running job stops at its next step, long before its 150 steps would be done.
    _wait_status(client, ids[0], {"running"})
    started = time.monotonic()
    client.delete(f"{JOBS}/{ids[0]}")
    assert _wait_status(client, ids[0], {"cancelled"}, timeout=20)["status"] == "cancelled"
    assert time.monotonic() - started < 10
    for job_id in ids[1:-1]:
        client.delete(f"{JOBS}/{job_id}")
    for job_id in ids:
        assert _wait_status(client, job_id, {"cancelled", "succeeded"})["status"] == "cancelled"


def test_deadline_expiry(client: TestClient, local: Local) -> None:
    ids = _saturate(client, local)
    late = client.post(JOBS, params={"deadline_s": 0.01}, json={"prompt": "too late", "seed": 1}).json()
    failed = _wait_status(client, late["id"], {"failed", "succeeded"}, timeout=20)
    assert failed["status"] == "failed" and failed["error"] == "deadline exceeded"
    for job_id in ids:
        client.delete(f"{JOBS}/{job_id}")
    for job_id in ids:  # leave nothing running behind for the next test
        assert _wait_status(client, job_id, {"cancelled", "succeeded"})["status"] in ("cancelled", "succeeded")


def test_transient_failures_retry_then_die(client: TestClient, local: Local) -> None:
    local.failures["flaky"] = 1  # fails once, then works
    local.failures["doomed"] = 99
    flaky = client.post(JOBS, json={"prompt": "flaky", "seed": 1}).json()
    doomed = client.post(JOBS, json={"prompt": "doomed", "seed": 1}).json()
    flaky = _wait_status(client, flaky["id"], {"succeeded", "dead"})
    doomed = _wait_status(client, doomed["id"], {"succeeded", "dead"})
    assert flaky["status"] == "succeeded" and flaky["attempts"] == 2
    assert doomed["status"] == "dead" and doomed["attempts"] == doomed["max_attempts"]
    assert "replica died" not in doomed["error"]  # the detail is logged, not shown (tests/api/test_hardening.py)
    assert doomed["error_type"] == "generation_failed" and doomed["error_param"] is None


def _sse(client: TestClient, job_id: str, last_id: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    events = []
    with client.stream("GET", f"{JOBS}/{job_id}/events", headers=headers) as r:
        assert r.status_code == 200
        current: dict[str, str] = {}
        for line in r.iter_lines():
            if not line:
                if "event" in current:
                    events.append((current["id"], current["event"], json.loads(current["data"])))
                current = {}
                continue
            key, _, value = line.partition(":")
            current[key] = value.strip()
    return events


def test_events_stream_and_resume(client: TestClient) -> None:
    job = client.post(JOBS, json={"prompt": "a river", "seed": 4, "steps": 8}).json()
    events = _sse(client, job["id"])
    types = [e[1] for e in events]
    assert types[0] == "queued" and "started" in types and types[-1] == "succeeded"
    progress = [e[2] for e in events if e[1] == "progress"]
    assert progress and progress[-1]["step"] == progress[-1]["total"] == 8
    assert events[-1][2]["image_id"] and events[-1][2]["links"]["file"]
    ids = [int(e[0]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    resumed = _sse(client, job["id"], last_id=events[1][0])
    assert resumed == events[2:]


def test_assets_are_immutable_with_etag_304_and_ranges(client: TestClient) -> None:
    r = client.post(JOBS, params={"wait": 30}, json={"prompt": "a gem", "seed": 2})
    url = r.json()["links"]["asset"]
    full = client.get(url)
    assert full.status_code == 200
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = full.headers["etag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    part = client.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == full.content[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(full.content)}"
    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.content == full.content[-5:]
    assert client.get(url, headers={"Range": "bytes=999999-"}).status_code == 416
    assert client.get("/api/v2/assets/" + "0" * 64 + ".png").status_code == 404
    assert client.get("/api/v2/assets/nothex.png").status_code == 422


def test_image_metadata_versions_and_soft_delete(client: TestClient) -> None:
    job = client.post(JOBS, params={"wait": 30}, json={"prompt": "an axe", "seed": 6}).json()
    image_url = job["links"]["image"]
    image = client.get(image_url).json()
    assert image["prompt"] == "an axe" and image["version"] == 1
    versions = client.get(f"{image_url}/versions").json()
    assert [v["id"] for v in versions] == [image["id"]]
    assert client.delete(image_url).status_code == 204
    assert client.get(image_url).status_code == 404
    assert client.delete(image_url).status_code == 404


def test_admin_stats_report_cache_counters_and_batches(client: TestClient) -> None:
    before = client.get("/api/v2/admin/cache/stats")
    assert before.status_code == 200, before.text
    stats = before.json()
    assert set(stats) == {"results", "hot_assets", "jobs"}
    assert {"hits", "misses", "coalesced", "evictions", "lookups", "hit_rate"} <= set(stats["results"])
    r = client.post(JOBS, params={"wait": 30}, json={"prompt": "a counted coin", "seed": 77})
    asset = r.json()["links"]["asset"]
    client.get(asset)
    client.get(asset)
    after = client.get("/api/v2/admin/cache/stats").json()
    assert after["results"]["misses"] > stats["results"]["misses"]  # a new seeded request: looked up, missed
    assert after["hot_assets"]["hits"] >= stats["hot_assets"]["hits"] + 2  # both reads came from the hot cache
    generator = client.get("/api/v2/admin/generator/stats").json()
    assert generator["images"] >= 1 and sum(generator["batch_sizes"].values()) >= 1
    assert client.get("/api/v2/admin/zmq/stats").status_code == 404  # no bridge in this edge


@pytest.mark.parametrize("route", ["zmq/stats", "remote/stats"])
def test_an_admin_route_of_a_part_not_deployed_is_a_documented_404(client: TestClient, route: str) -> None:
    """Found by the schemathesis run (tests/api/test_fuzz.py): these answered 404 (no bridge, no paid API in this
    edge) but declared only 200. ``/admin/costs`` (404 without a cost ledger) declares it too."""
    from serve_app.api.app import create_api

    r = client.get(f"/api/v2/admin/{route}")
    assert r.status_code == 404, r.text
    assert set(r.json()) == {"error"} and r.json()["error"]["type"] == "not_found"
    paths = create_api(None).openapi()["paths"]
    for path in (f"/api/v2/admin/{route}", "/api/v2/admin/costs"):
        assert "404" in paths[path]["get"]["responses"], path


def test_a_succeeded_job_reports_its_whole_result(client: TestClient) -> None:
    done = client.post(JOBS, params={"wait": 30}, json={"prompt": "a lantern", "seed": 5}).json()
    assert done["status"] == "succeeded"
    assert done["result"]["images"] == [done["image_id"]]
    assert done["result"]["data"]["seed"] == 5 and done["result"]["data"]["request_hash"] == done["request_hash"]
    assert done["error_type"] is None and done["error_param"] is None
