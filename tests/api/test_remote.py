"""Generate jobs through each paid API end to end over HTTP: the edge in process, the real remote stage and its
clients, and local fake servers that speak each API's documented shapes (tests/remote_fakes). Which backend ran
and what it cost are checked against the fakes' own figures; the pixels against the colour the fake paints for
the prompt and seed (tests.remote_fakes.expected_rgb), computed independently of limner's code."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from serve_app.config import RemoteBackendConfig, RemoteConfig, RoutingConfig
from tests.remote_fakes import KEYS, expected_rgb

IMAGES = "/api/v2/images"
JOBS = f"{IMAGES}/jobs"
ENV = {
    "getimg": "LIMNER_GETIMG_API_KEY",
    "fal": "LIMNER_FAL_KEY",
    "openai": "LIMNER_OPENAI_API_KEY",
    "runware": "LIMNER_RUNWARE_API_KEY",
}
PRICES = {"fal": 0.003, "openai": 0.04}  # the two APIs that report no cost: the price table's figure
API_COST = {"getimg": 0.0042, "runware": 0.0038}  # what the fakes report (tests/remote_fakes)
SIZE = {"getimg": 512, "fal": 512, "openai": 1024, "runware": 512}


@pytest.fixture(scope="module")
def client_module(local: Any, _remote_fakes_server: Any) -> Iterator[TestClient]:
    from tests.api.conftest import create_api_lazily

    fakes = _remote_fakes_server
    entries = {
        name: RemoteBackendConfig(
            base_url=fakes.base_url(name),
            price_usd=PRICES.get(name),
            timeout_s=5.0,
            max_retries=2,
            daily_budget_usd=0.1 if name == "openai" else None,
        )
        for name in ENV
    }
    local.remote = RemoteConfig(**entries, routing=RoutingConfig(default="local", order=["fal", "getimg", "local"]))
    saved = {var: os.environ.get(var) for var in ENV.values()}
    os.environ.update({ENV[name]: KEYS[name] for name in ENV})
    local.ready = True
    try:
        with TestClient(create_api_lazily(local)) as c:
            yield c
    finally:
        local.remote = None
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _job(client: TestClient, body: dict[str, Any], wait: int = 60) -> dict[str, Any]:
    r = client.post(f"{JOBS}?wait={wait}", json=body)
    assert r.status_code in (200, 202), r.text
    return r.json()


def _events(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    """The finished job's event log, read from its SSE stream (which ends after the final event)."""
    import json

    events, kind = [], None
    with client.stream("GET", f"{JOBS}/{job_id}/events") as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append({"type": kind, "data": json.loads(line.split(":", 1)[1])})
    return events


def _pixels(client: TestClient, image_id: str) -> np.ndarray:
    r = client.get(f"{IMAGES}/{image_id}/file")
    assert r.status_code == 200
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


@pytest.mark.parametrize("backend", list(ENV))
def test_a_generate_job_runs_on_the_named_backend_and_records_its_cost(
    client_module: TestClient, remote_fakes: Any, backend: str
) -> None:
    client = client_module
    side = SIZE[backend]
    job = _job(
        client, {"prompt": f"a lighthouse for {backend}", "seed": 21, "width": side, "height": side, "backend": backend}
    )
    assert job["status"] == "succeeded", job
    assert job["backend"] == backend
    cost = API_COST.get(backend, PRICES.get(backend))
    assert job["cost_usd"] == pytest.approx(cost)
    image = client.get(f"{IMAGES}/{job['image_id']}").json()
    assert image["backend"] == backend and image["cost_usd"] == pytest.approx(cost)
    assert (image["width"], image["height"]) == (side, side)
    # The fake paints the prompt it received with the seed it used (OpenAI takes no seed: image 0 of the call).
    seed = 0 if backend == "openai" else 21
    pixels = _pixels(client, job["image_id"])
    assert tuple(int(v) for v in pixels[side // 2, side // 2]) == expected_rgb(image["prompt"], seed)
    calls = remote_fakes.control.calls[backend]
    assert calls and all(
        KEYS[backend] in c.headers.get("authorization", "") for c in calls if c.method != "GET" or backend == "fal"
    )


def test_a_request_the_backend_cannot_honour_is_a_422_naming_the_field_before_any_call(
    client_module: TestClient, remote_fakes: Any
) -> None:
    r = client_module.post(JOBS, json={"prompt": "a keep", "width": 640, "height": 640, "backend": "openai"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == "width" and "openai" in error["message"]
    assert remote_fakes.control.calls["openai"] == []


def test_an_unknown_backend_is_a_422_naming_backend(client_module: TestClient) -> None:
    r = client_module.post(JOBS, json={"prompt": "a keep", "backend": "midjourney"})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "backend"


def test_auto_falls_through_in_order_and_the_events_say_so(client_module: TestClient, remote_fakes: Any) -> None:
    remote_fakes.control.fail("fal", 401, times=10)
    job = _job(client_module, {"prompt": "a ruined tower", "seed": 5, "width": 512, "height": 512, "backend": "auto"})
    assert job["status"] == "succeeded", job
    assert job["backend"] == "getimg"
    events = _events(client_module, job["id"])
    started = next(e for e in events if e["type"] == "started")
    assert started["data"]["backend"] == "auto"
    routed = [(e["data"]["backend"], e["data"].get("reason", "")) for e in events if e["type"] == "backend"]
    assert [name for name, _ in routed] == ["fal", "getimg"]
    assert "backend_auth" in routed[0][1]
    # A 401 is permanent: FAL was asked once, never retried.
    assert len([c for c in remote_fakes.control.calls["fal"] if c.method == "POST"]) == 1


def test_a_401_fails_the_job_at_once_as_backend_auth_and_no_key_reaches_the_log(
    client_module: TestClient, remote_fakes: Any, caplog: pytest.LogCaptureFixture
) -> None:
    remote_fakes.control.fail("getimg", 401, times=10)
    with caplog.at_level(logging.DEBUG):
        job = _job(
            client_module, {"prompt": "a goblin market", "seed": 3, "width": 512, "height": 512, "backend": "getimg"}
        )
    assert job["status"] == "failed" and job["error_type"] == "backend_auth", job
    assert job["attempts"] == 1 and "getimg" in job["error"]
    assert len(remote_fakes.control.calls["getimg"]) == 1
    for key in KEYS.values():
        assert key not in caplog.text


def test_a_5xx_is_retried_by_the_transport_and_the_job_succeeds(client_module: TestClient, remote_fakes: Any) -> None:
    remote_fakes.control.fail("runware", 503, times=1)
    job = _job(client_module, {"prompt": "a dragon egg", "seed": 8, "width": 512, "height": 512, "backend": "runware"})
    assert job["status"] == "succeeded", job
    assert len(remote_fakes.control.calls["runware"]) == 2


def test_the_daily_budget_refuses_new_work_with_a_402_once_spent(client_module: TestClient, remote_fakes: Any) -> None:
    price, budget = PRICES["openai"], 0.1
    spent = client_module.get("/api/v2/admin/costs").json()["by_backend"].get("openai", 0.0)
    body = {"prompt": "a coin purse", "width": 1024, "height": 1024, "backend": "openai"}
    seed = 100
    while spent < budget - 1e-9:  # $0.04 an image against $0.10 a day
        job = _job(client_module, {**body, "seed": seed})
        assert job["status"] == "succeeded", job
        spent += price
        seed += 1
    calls = len(remote_fakes.control.calls["openai"])
    r = client_module.post(JOBS, json={**body, "seed": seed})
    assert r.status_code == 402, r.text
    assert r.json()["error"]["type"] == "backend_budget" and r.json()["error"]["param"] == "backend"
    assert len(remote_fakes.control.calls["openai"]) == calls  # refused before any call
    report = client_module.get("/api/v2/admin/costs").json()
    assert report["by_backend"]["openai"] == pytest.approx(spent)
    assert report["budgets"]["openai"]["left_today_usd"] == pytest.approx(budget - spent)
    assert report["total_usd"] == pytest.approx(sum(report["by_backend"].values()))
    assert report["by_source"]["http"] == pytest.approx(report["total_usd"])
    # Tomorrow's report starts again from nothing.
    later = client_module.get("/api/v2/admin/costs", params={"since": "2099-01-01T00:00:00Z"}).json()
    assert later["total_usd"] == 0 and later["by_backend"] == {}


def test_cancelling_a_fal_job_cancels_the_request_upstream(client_module: TestClient, remote_fakes: Any) -> None:
    remote_fakes.control.fal_queue_s = 30.0
    job = _job(
        client_module, {"prompt": "a slow comet", "seed": 2, "width": 512, "height": 512, "backend": "fal"}, wait=0
    )
    deadline = time.monotonic() + 20
    while not remote_fakes.control.calls["fal"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client_module.delete(f"{JOBS}/{job['id']}").status_code == 200
    while not remote_fakes.control.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(remote_fakes.control.cancelled) == 1
    final = client_module.get(f"{JOBS}/{job['id']}").json()
    while final["status"] == "running" and time.monotonic() < deadline:  # the job settles after the upstream cancel
        time.sleep(0.05)
        final = client_module.get(f"{JOBS}/{job['id']}").json()
    assert final["status"] == "cancelled"


def test_a_portrait_job_runs_on_a_paid_api_and_keeps_its_family_and_token(
    client_module: TestClient, remote_fakes: Any
) -> None:
    body = {
        "character": {"name": "Mira", "ancestry": "elf", "role": "ranger"},
        "seed": 40,
        "variations": 2,
        "width": 512,
        "height": 512,
        "backend": "runware",
    }
    r = client_module.post(f"{IMAGES}/portraits?wait=60", json=body)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded" and job["backend"] == "runware", job
    assert job["cost_usd"] == pytest.approx(2 * API_COST["runware"])
    data = job["result"]["data"]
    # One POST with one task per variation (Runware takes a batch of tasks), each image its own seed's colour.
    posts = [c for c in remote_fakes.control.calls["runware"] if c.method == "POST"]
    assert len(posts) == 1 and len(posts[0].json) == 2
    for variation in data["variations"]:
        image = client_module.get(f"{IMAGES}/{variation['image_id']}").json()
        pixels = _pixels(client_module, variation["image_id"])
        assert tuple(int(v) for v in pixels[256, 256]) == expected_rgb(image["prompt"], variation["seed"])


def test_an_experimance_request_can_render_through_a_paid_api_and_is_costed_to_its_door(
    client_module: TestClient, local: Any, remote_fakes: Any
) -> None:
    from serve_app.experimance.bridge import BridgeJob
    from serve_app.experimance.jobs import generate_request

    bridge_job = BridgeJob(
        request_id="exp-1", prompt="a flooded valley, satellite view", negative_prompt="blur", width=512,
        height=512, seed=77, received_at=time.time(), deadline=time.time() + 60,
    )  # fmt: skip
    request, options = generate_request(
        bridge_job, max_render_side=None, depth_controlnet=False, control_scale=1.0, priority=50, backend="fal"
    )
    before = client_module.get("/api/v2/admin/costs").json()["by_source"].get("zmq", 0.0)

    async def submit() -> str:
        job, _ = await local.edge.jobs.submit("generate", request, options)
        return str(job.id)

    job_id = client_module.portal.call(submit)  # type: ignore[union-attr]
    job = client_module.get(f"{JOBS}/{job_id}?wait=60").json()
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client_module.get(f"{JOBS}/{job_id}").json()
    assert job["status"] == "succeeded" and job["backend"] == "fal" and job["source"] == "zmq", job
    after = client_module.get("/api/v2/admin/costs").json()["by_source"]["zmq"]
    assert after == pytest.approx(before + PRICES["fal"])
