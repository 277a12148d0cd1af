"""Self-checks of the fakes: documented behaviours the remote clients rely on (REMOTE_APIS.md §2, RUNWARE_API.md)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.remote_fakes import KEYS, error_body, expected_rgb
from tests.remote_fakes.server import FakeServer

AUTH = {
    "getimg": f"Bearer {KEYS['getimg']}",
    "fal": f"Key {KEYS['fal']}",
    "openai": f"Bearer {KEYS['openai']}",
    "runware": f"Bearer {KEYS['runware']}",
}


def client(server: FakeServer, backend: str, auth: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": auth if auth is not None else AUTH[backend]}
    return httpx.AsyncClient(base_url=server.base_url(backend), headers=headers, timeout=10)


def png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def task(**fields: Any) -> dict[str, Any]:
    base = {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "positivePrompt": "a lighthouse"}
    return {**base, "model": "runware:101@1", "width": 512, "height": 256, "outputFormat": "PNG", **fields}


@pytest.mark.parametrize(
    ("backend", "path", "body", "check"),
    [
        ("getimg", "/v1/stable-diffusion-xl/text-to-image", {"prompt": "x"}, lambda j: j["error"]["code"]),
        ("fal", "/fal-ai/fast-sdxl", {"prompt": "x"}, lambda j: j["detail"]),
        ("openai", "/images/generations", {"prompt": "x"}, lambda j: j["error"]["code"] == "invalid_api_key"),
        ("runware", "", [task()], lambda j: j["errors"][0]["code"] == "invalidApiKey"),
    ],
)
async def test_wrong_key_is_refused_in_the_api_shape(remote_fakes: FakeServer, backend, path, body, check) -> None:
    async with client(remote_fakes, backend, auth="Bearer wrong") as http:
        response = await http.post(path, json=body)
    assert response.status_code == 401
    assert check(response.json())
    assert remote_fakes.control.calls[backend][0].headers["authorization"] == "Bearer wrong"


async def test_getimg_text_to_image_and_validation(remote_fakes: FakeServer) -> None:
    async with client(remote_fakes, "getimg") as http:
        body = {"prompt": "a cat", "width": 512, "height": 256, "seed": 7, "output_format": "png"}
        ok = (await http.post("/v1/stable-diffusion-xl/text-to-image", json=body)).json()
        bad = await http.post("/v1/stable-diffusion-xl/text-to-image", json={**body, "width": 500})
        big = Image.new("RGB", (1088, 64))
        buf = io.BytesIO()
        big.save(buf, "PNG")
        enhance = {"image": base64.b64encode(buf.getvalue()).decode(), "scale": 2}
        too_big = await http.post("/v1/enhancements/upscale", json=enhance)
    image = png(base64.b64decode(ok["image"]))
    assert (ok["seed"], ok["cost"], image.size) == (7, 0.0042, (512, 256))
    assert image.getpixel((3, 3)) == expected_rgb("a cat", 7)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "width"
    assert too_big.status_code == 400 and too_big.json()["error"]["param"] == "image"
    assert remote_fakes.control.calls["getimg"][0].json == body


async def poll(http: httpx.AsyncClient, url: str) -> list[tuple[str, int | None]]:
    seen: list[tuple[str, int | None]] = []
    while True:
        status = (await http.get(url, params={"logs": 1})).json()
        if not seen or seen[-1] != (status["status"], status.get("queue_position")):
            seen.append((status["status"], status.get("queue_position")))
        if status["status"] == "COMPLETED":
            return seen
        await asyncio.sleep(0.02)


async def test_fal_queue_state_machine_result_and_files(remote_fakes: FakeServer) -> None:
    remote_fakes.control.fal_queue_s = 0.6
    remote_fakes.control.fal_progress_s = 0.2
    async with client(remote_fakes, "fal") as http:
        body = {"prompt": "cat", "seed": 5, "image_size": {"width": 256, "height": 128}, "format": "png"}
        submitted = (await http.post("/fal-ai/fast-sdxl", json=body)).json()
        assert submitted["status_url"].startswith(remote_fakes.base_url("fal") + "/fal-ai/fast-sdxl/requests/")
        seen = await poll(http, submitted["status_url"])
        result = (await http.get(submitted["response_url"])).json()
        image = png((await http.get(result["images"][0]["url"])).content)
        missing = await http.post("/fal-ai/fast-sdxl", json={"negative_prompt": "x"})
    states = [state for state, _ in seen]
    assert states[-2:] == ["IN_PROGRESS", "COMPLETED"] and set(states[:-2]) == {"IN_QUEUE"}
    positions = [position for _, position in seen[:-2]]
    assert (
        submitted["queue_position"] == 2 and positions == sorted(set(positions), reverse=True) and len(positions) >= 2
    )
    assert result["seed"] == 5 and image.size == (256, 128) and image.getpixel((0, 0)) == expected_rgb("cat", 5)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "prompt"]
    assert remote_fakes.control.max_in_flight["fal"] == 1


async def test_fal_cancel_semantics_and_error(remote_fakes: FakeServer) -> None:
    remote_fakes.control.fal_queue_s = 5.0
    async with client(remote_fakes, "fal") as http:
        queued = (await http.post("/fal-ai/fast-sdxl", json={"prompt": "a"})).json()
        cancel = await http.put(queued["cancel_url"])
        after = (await http.get(queued["status_url"])).json()
        again = await http.put(queued["cancel_url"])
        unknown = await http.put(queued["cancel_url"].replace(queued["request_id"], "nope"))
        remote_fakes.control.fal_queue_s = 0.0
        remote_fakes.control.fal_error = "runner crashed"
        failed = (await http.post("/fal-ai/fast-sdxl", json={"prompt": "a"})).json()
        status = (await http.get(failed["status_url"])).json()
        while status["status"] != "COMPLETED":
            await asyncio.sleep(0.02)
            status = (await http.get(failed["status_url"])).json()
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    assert remote_fakes.control.cancelled == [queued["request_id"]] and after["status"] == "COMPLETED"
    assert again.json() == {"status": "ALREADY_COMPLETED"}
    assert (unknown.status_code, unknown.json()) == (404, {"status": "NOT_FOUND"})
    assert status["error"] == "runner crashed" and remote_fakes.control.fal_error is None


async def test_fal_status_stream_closes_after_completed(remote_fakes: FakeServer) -> None:
    remote_fakes.control.fal_progress_s = 0.1
    async with client(remote_fakes, "fal") as http:
        submitted = (await http.post("/fal-ai/fast-sdxl", json={"prompt": "a"})).json()
        async with http.stream("GET", submitted["status_url"] + "/stream") as stream:
            events = [json.loads(line[6:]) async for line in stream.aiter_lines() if line.startswith("data: ")]
    assert events[-1]["status"] == "COMPLETED" and len(events) >= 2


async def test_runware_results_match_task_uuids_and_cost_needs_include_cost(remote_fakes: FakeServer) -> None:
    first, second = task(seed=3, outputType="base64Data", includeCost=True), task(seed=4, outputType="URL")
    async with client(remote_fakes, "runware") as http:
        ok = (await http.post("", json=[first, second])).json()["data"]
        by_uuid = {item["taskUUID"]: item for item in ok}
        fetched = png((await http.get(by_uuid[second["taskUUID"]]["imageURL"])).content)
        bad = await http.post("", json=[task(width=500)])
    inline = png(base64.b64decode(by_uuid[first["taskUUID"]]["imageBase64Data"]))
    assert inline.getpixel((0, 0)) == expected_rgb("a lighthouse", 3) and by_uuid[first["taskUUID"]]["cost"] == 0.0038
    assert "cost" not in by_uuid[second["taskUUID"]] and fetched.getpixel((0, 0)) == expected_rgb("a lighthouse", 4)
    assert bad.status_code == 400
    error = bad.json()["errors"][0]
    assert (error["code"], error["parameter"], error["taskType"]) == ("invalidWidth", "width", "imageInference")


async def test_runware_authentication_task(remote_fakes: FakeServer) -> None:
    async with httpx.AsyncClient(base_url=remote_fakes.base_url("runware")) as http:
        good = await http.post("", json=[{"taskType": "authentication", "apiKey": KEYS["runware"]}, task()])
        bad = await http.post("", json=[{"taskType": "authentication", "apiKey": "nope"}, task()])
    assert good.status_code == 200 and bad.status_code == 401


async def test_openai_sizes_models_and_b64(remote_fakes: FakeServer) -> None:
    async with client(remote_fakes, "openai") as http:
        gpt = {"prompt": "cat", "model": "gpt-image-1", "size": "1536x1024", "response_format": "url"}
        ok = (await http.post("/images/generations", json=gpt)).json()
        wrong_size = await http.post("/images/generations", json={**gpt, "size": "512x512"})
        dalle3 = await http.post("/images/generations", json={"prompt": "cat", "model": "dall-e-3", "n": 2})
        free = await http.post(
            "/images/generations", json={"prompt": "cat", "model": "gpt-image-2", "size": "1280x720"}
        )
        dalle_url = (await http.post("/images/generations", json={"prompt": "cat", "model": "dall-e-2"})).json()
    image = png(base64.b64decode(ok["data"][0]["b64_json"]))
    assert image.size == (1536, 1024) and image.getpixel((0, 0)) == expected_rgb("cat", 0)
    assert wrong_size.status_code == 400 and wrong_size.json()["error"]["param"] == "size"
    assert dalle3.status_code == 400 and dalle3.json()["error"]["param"] == "n"
    assert free.status_code == 200 and "url" in dalle_url["data"][0]


async def test_openai_edit_multipart(remote_fakes: FakeServer) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buf, "PNG")
    async with client(remote_fakes, "openai") as http:
        data = {"prompt": "dog", "model": "gpt-image-1", "size": "1024x1024"}
        response = await http.post("/images/edits", data=data, files={"image": ("in.png", buf.getvalue(), "image/png")})
    assert response.status_code == 200 and png(base64.b64decode(response.json()["data"][0]["b64_json"])).size == (
        1024,
        1024,
    )
    assert remote_fakes.control.calls["openai"][0].form == {
        **data,
        "image": f"<file in.png, {len(buf.getvalue())} bytes>",
    }


async def test_fail_switch_answers_in_shape_with_retry_headers(remote_fakes: FakeServer) -> None:
    control = remote_fakes.control
    control.fail("openai", 429, retry_after_ms=250)
    control.fail("openai", 429, body=error_body("openai", 429, code="insufficient_quota"))
    control.fail("getimg", 402, times=2, retry_after=3)
    async with client(remote_fakes, "openai") as http:
        limited = await http.post("/images/generations", json={"prompt": "cat"})
        quota = await http.post("/images/generations", json={"prompt": "cat"})
        fine = await http.post("/images/generations", json={"prompt": "cat"})
    async with client(remote_fakes, "getimg") as http:
        budget = [await http.post("/v1/stable-diffusion-xl/text-to-image", json={"prompt": "x"}) for _ in range(3)]
    assert limited.headers["retry-after-ms"] == "250" and limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert quota.json()["error"]["code"] == "insufficient_quota" and fine.status_code == 200
    assert [r.status_code for r in budget] == [402, 402, 200] and budget[0].headers["retry-after"] == "3"


async def test_delay_overlaps_concurrent_calls(remote_fakes: FakeServer) -> None:
    remote_fakes.control.delay_s["runware"] = 0.2
    async with client(remote_fakes, "runware") as http:
        started = time.monotonic()
        responses = await asyncio.gather(*(http.post("", json=[task()]) for _ in range(4)))
        elapsed = time.monotonic() - started
    assert all(r.status_code == 200 for r in responses)
    assert remote_fakes.control.max_in_flight["runware"] == 4 and remote_fakes.control.in_flight["runware"] == 0
    assert 0.2 <= elapsed < 0.6


async def test_truncate_missing_result_and_hang(remote_fakes: FakeServer) -> None:
    control = remote_fakes.control
    control.truncate["getimg"] = True
    async with client(remote_fakes, "getimg") as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/v1/stable-diffusion-xl/text-to-image", json={"prompt": "x"})
        body = {"prompt": "x", "response_format": "url"}
        url = (await http.post("/v1/stable-diffusion-xl/text-to-image", json=body)).json()["url"]
        control.missing_result["getimg"] = True
        gone = await http.get(url)
        control.hang["getimg"] = True
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/v1/stable-diffusion-xl/text-to-image", json={"prompt": "x"}, timeout=0.3)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    for _ in range(50):
        if control.in_flight["getimg"] == 0:
            break
        await asyncio.sleep(0.02)
    assert control.in_flight["getimg"] == 0 and control.max_in_flight["getimg"] == 1
