"""The whole graph as `make serve` runs it: ingress → composer → batched generator, over HTTP."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import WARM_REQUEST, Service

pytestmark = pytest.mark.serve

GENERATE = "/api/v2/images/generate"


async def _burst(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        return list(await asyncio.gather(*(client.post(GENERATE, json=b) for b in bodies)))


def _stats(service: Service) -> dict[str, Any]:
    r = httpx.get(f"{service.url}/api/v2/admin/generator/stats", timeout=60)
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def test_readyz_is_503_until_the_model_is_ready(service: Service) -> None:
    codes = service.readyz_codes
    assert codes[-1] == 200
    assert 503 in codes, f"never saw the not-ready state: {codes}"
    assert codes.index(503) < codes.index(200)
    assert service.healthz_while_not_ready and set(service.healthz_while_not_ready) == {200}


def test_openapi_docs_are_served(service: Service) -> None:
    spec = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    assert "/api/v2/images/generate" in spec["paths"] and "/api/v2/images/jobs/{job_id}/events" in spec["paths"]


def test_round_trip_returns_a_png_of_the_requested_size(service: Service) -> None:
    body = {"prompt": "a red dragon over a castle", "width": 96, "height": 64, "steps": 4, "seed": 5}
    r = httpx.post(f"{service.url}{GENERATE}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(r.content))
    assert (image.format, image.size) == ("PNG", (96, 64))
    assert r.headers["x-seed"] == "5"
    again = httpx.post(f"{service.url}{GENERATE}", json=body, timeout=60)
    assert again.content == r.content  # same request, same seed, same image


def test_concurrent_requests_form_batches(service: Service) -> None:
    bodies = [{"prompt": f"map {i}", "width": 64, "height": 64, "steps": 6, "seed": i} for i in range(8)]
    responses = asyncio.run(_burst(service.url, bodies))
    assert [r.status_code for r in responses] == [200] * 8
    calls = [c for c in _stats(service)["recent_calls"] if c["key"][:3] == [64, 64, 6]]
    assert sum(c["size"] for c in calls) == 8
    assert max(c["size"] for c in calls) > 1, calls


def test_different_batch_keys_never_share_a_call(service: Service) -> None:
    bodies = [{"prompt": f"token {i}", "width": 64, "height": 64, "steps": 7 + i % 2, "seed": i} for i in range(8)]
    responses = asyncio.run(_burst(service.url, bodies))
    assert [r.status_code for r in responses] == [200] * 8
    calls = [c for c in _stats(service)["recent_calls"] if c["key"][:2] == [64, 64] and c["key"][2] in (7, 8)]
    assert all(c["distinct_keys"] == 1 for c in calls)
    per_key = Counter()
    for call in calls:
        per_key[call["key"][2]] += call["size"]
    assert per_key == {7: 4, 8: 4}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "width": 100}, "width"),
        ({"prompt": "x", "scheduler": "nope"}, "scheduler"),
        ({"prompt": "x", "steps": 0}, "steps"),
        ({"width": 64}, "prompt"),
    ],
)
def test_bad_input_is_422_naming_the_field(service: Service, body: dict[str, Any], param: str) -> None:
    r = httpx.post(f"{service.url}{GENERATE}", json=body, timeout=30)
    assert r.status_code == 422
    assert r.json()["error"]["param"] == param
    assert "ray::" not in r.json()["error"]["message"]  # no remote traceback leaks out


def test_overload_is_503_with_retry_after(service: Service) -> None:
    n = 40
    bodies = [{"prompt": f"crowd {i}", "width": 128, "height": 128, "steps": 10, "seed": i} for i in range(n)]
    responses = asyncio.run(_burst(service.url, bodies))
    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {200, 503}, codes
    assert codes[503] > 0 and codes[200] > 0, codes
    for r in responses:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) > 0
            assert r.json()["error"]["type"] == "overloaded"
    # The service is still healthy afterwards.
    assert httpx.get(f"{service.url}/readyz", timeout=30).status_code == 200


def test_configured_requests_are_warmed_into_the_cache(service: Service) -> None:
    jobs = httpx.get(f"{service.url}/api/v2/images/jobs", params={"limit": 500}, timeout=30).json()["items"]
    warm = [j for j in jobs if j["priority"] == -10]
    assert len(warm) == 1  # queued once at start-up (its idempotency key is its content)
    deadline = time.monotonic() + 60
    while warm[0]["status"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.2)
        warm = [httpx.get(f"{service.url}/api/v2/images/jobs/{warm[0]['id']}", timeout=30).json()]
    r = httpx.post(f"{service.url}{GENERATE}", json=WARM_REQUEST, timeout=60)
    assert r.status_code == 200
    assert r.headers["x-image-id"] == warm[0]["image_id"]  # served from the cache the warm-up filled


def test_a_tactical_map_runs_through_the_overlay_deployment(service: Service) -> None:
    body = {
        "grid": {"type": "square", "cols": 4, "rows": 3, "cell_px": 32},
        "seed": 4,
        "terrain": {
            "walls": [[{"x": 2, "y": 0}, {"x": 2, "y": 2}]],
            "doors": [{"a": {"x": 2, "y": 2}, "b": {"x": 2, "y": 3}, "closed": False}],
        },
        "tokens": [{"id": "hero", "cell": [0, 1], "color": "#ff0000"}],
        "paths": [{"id": "p", "token": "hero", "waypoints": [[0, 1], [3, 1]]}],
        "render": {"steps": 2},
    }
    r = httpx.post(f"{service.url}/api/v2/images/maps/tactical?wait=240", json=body, timeout=300)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    data = job["result"]["data"]
    (path,) = data["geometry"]["paths"]
    # The wall at x = 2 runs from y = 0 to 2; the only way east is the open door below it, from (1, 2) to (2, 2).
    cells = path["cells"]
    assert cells[0] == [0, 1] and cells[-1] == [3, 1]
    assert any(a == [1, 2] and b == [2, 2] for a, b in itertools.pairwise(cells))
    rendered = httpx.get(f"{service.url}/api/v2/images/{data['render_image_id']}/file", timeout=30)
    image = Image.open(io.BytesIO(rendered.content)).convert("RGB")
    assert image.size == (128, 96) and image.getpixel((16, 48)) == (255, 0, 0)
    export = httpx.get(f"{service.url}{data['links']['uvtt']}", timeout=30)
    assert export.status_code == 200 and export.json()["resolution"]["map_size"] == {"x": 4, "y": 3}


def test_a_campaign_map_runs_through_the_overlay_deployment(service: Service) -> None:
    """The campaign stage methods (sketch, render, route, measure) cross the Overlay deployment's handle."""
    spec = {
        "canvas": {"width": 128, "height": 96},
        "scale": {"miles_per_pixel": 1.0},
        "regions": [{"name": "Bay", "terrain": "water", "polygon": [[0, 0], [30, 0], [30, 96], [0, 96]]}],
        "pois": [{"name": "Ash", "kind": "town", "x": 40, "y": 48}, {"name": "Oak", "kind": "city", "x": 120, "y": 48}],
        "routes": [{"kind": "road", "from": "Ash", "to": "Oak"}],
    }
    maps = f"{service.url}/api/v2/images/maps"
    r = httpx.post(f"{maps}/campaign?wait=240", json={**spec, "seed": 3, "render": {"steps": 2}}, timeout=300)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    data = job["result"]["data"]
    assert data["data"]["routes"][0]["miles"] == 80.0  # Ash (40, 48) to Oak (120, 48) at a mile a pixel
    rendered = httpx.get(f"{service.url}/api/v2/images/{data['render_image_id']}/file", timeout=30)
    assert Image.open(io.BytesIO(rendered.content)).size == (128, 96)
    plan = httpx.post(f"{maps}/campaign/route", json={"map_id": data["map_id"], "from": "Ash", "to": "Oak"}, timeout=60)
    assert plan.status_code == 200 and plan.json()["days"] == pytest.approx(80 / 24, abs=0.05), plan.text
    export = httpx.get(f"{service.url}{data['links']['geojson']}", timeout=30)
    assert export.status_code == 200 and export.json()["type"] == "FeatureCollection"


def test_a_hires_upscale_and_a_face_fix_run_through_the_enhancer_deployment(service: Service) -> None:
    body = {"prompt": "a knight's portrait", "width": 64, "height": 64, "steps": 2, "seed": 12}
    r = httpx.post(f"{service.url}{GENERATE}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    source = r.headers["x-image-id"]
    steps = {"scale": 2, "method": "hires", "tile": 64, "overlap": 16}
    up = httpx.post(f"{service.url}/api/v2/images/{source}/upscale?wait=240", json=steps, timeout=300)
    assert up.status_code == 200, up.text
    job = up.json()
    assert job["status"] == "succeeded", job
    image = httpx.get(f"{service.url}/api/v2/images/{job['image_id']}", timeout=30).json()
    assert (image["width"], image["height"]) == (128, 128) and image["parent_id"] == source
    fixed = httpx.post(f"{service.url}/api/v2/images/{job['image_id']}/face-fix?wait=240", json={}, timeout=300)
    assert fixed.status_code == 200 and fixed.json()["status"] == "succeeded", fixed.text


def test_a_job_named_for_fal_runs_through_the_remote_deployment(service: Service) -> None:
    from tests.remote_fakes import expected_rgb

    body = {"prompt": "a lighthouse over the graph", "width": 256, "height": 256, "seed": 31, "backend": "fal"}
    r = httpx.post(f"{service.url}/api/v2/images/jobs?wait=120", json=body, timeout=150)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded" and job["backend"] == "fal", job
    assert job["cost_usd"] == pytest.approx(0.0025)
    image = httpx.get(f"{service.url}/api/v2/images/{job['image_id']}", timeout=30).json()
    assert image["backend"] == "fal" and (image["width"], image["height"]) == (256, 256)
    file = httpx.get(f"{service.url}/api/v2/images/{job['image_id']}/file", timeout=30)
    pixel = Image.open(io.BytesIO(file.content)).convert("RGB").getpixel((128, 128))
    assert pixel == expected_rgb(image["prompt"], 31)  # the fake's paint for what the Remote replica sent
    stats = httpx.get(f"{service.url}/api/v2/admin/remote/stats", timeout=30).json()
    assert stats["fal"]["images"] >= 1
    costs = httpx.get(f"{service.url}/api/v2/admin/costs", timeout=30).json()
    assert costs["by_backend"]["fal"] >= 0.0025
