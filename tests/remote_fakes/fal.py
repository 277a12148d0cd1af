"""Fake FAL.AI queue API, from shared/docs/REMOTE_APIS.md §2.2.

`Authorization: Key KEYS["fal"]` or 401 `{"detail": ...}`. Submit `POST /fal/{owner}/{app}[/{endpoint}]` answers
`{request_id, response_url, status_url, cancel_url, gateway_request_id}` pointing back at the fake (status and result
use the base id); each request runs in a background task: IN_QUEUE for fal_queue_s (queue_position counting down
to 0), IN_PROGRESS for fal_progress_s + delay_s["fal"] (counted in in_flight), then COMPLETED (with `error` when
fal_error was set at submit). `GET .../status?logs=1`, SSE `GET .../status/stream`, result `GET .../requests/{id}`,
`PUT .../cancel` -> 202 CANCELLATION_REQUESTED / 400 ALREADY_COMPLETED / 404 NOT_FOUND. Validation errors are 422
with a detail list `[{loc, msg, type}]`. Images are served at /fal/files/<name> (data URIs with sync_mode).
Models: any text-to-image app (fal-ai/fast-sdxl input), `.../image-to-image`, fal-ai/esrgan, fal-ai/codeformer.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from PIL import Image

from tests.remote_fakes.common import (
    Answer,
    control_of,
    data_uri,
    decode_image,
    encode,
    error_response,
    files_of,
    gate,
    image_bearing,
    media_type,
    open_image,
    random_seed,
    serve_file,
    solid,
)
from tests.remote_fakes.control import KEYS, Control, expected_rgb

BACKEND = "fal"
QUEUE_STEPS = 3  # queue_position starts at QUEUE_STEPS - 1 and counts down to 0 over fal_queue_s
KEEPALIVE_S = 15.0  # SSE comment keep-alive interval
_TICK_S = 0.02
_PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
_MAX_SIDE = 4096  # a guard for the fake itself


def _auth(request: Request, payload: Any) -> Response | None:
    if request.headers.get("authorization") == f"Key {KEYS[BACKEND]}":
        return None
    return error_response(BACKEND, 401, message="Invalid or missing credentials.", code="unauthorized")


router = APIRouter(prefix="/fal", dependencies=[gate(BACKEND, _auth)])
files_router = APIRouter(prefix="/fal", dependencies=[gate(BACKEND, None)])


@dataclass
class Job:
    """One queued FAL request."""

    request_id: str
    app: str
    urls: dict[str, str]
    queue_s: float
    progress_s: float
    submitted: float = field(default_factory=time.monotonic)
    status: str = "IN_QUEUE"
    logs: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    inference_s: float = 0.0
    task: asyncio.Task[None] | None = None

    def queue_position(self) -> int:
        if self.queue_s <= 0:
            return 0
        left = max(0.0, self.queue_s - (time.monotonic() - self.submitted))
        return min(QUEUE_STEPS - 1, int(left / self.queue_s * QUEUE_STEPS))

    def status_body(self, logs: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "request_id": self.request_id}
        body["response_url"] = self.urls["response_url"]
        if self.status == "IN_QUEUE":
            body["queue_position"] = self.queue_position()
            return body
        if logs:
            body["logs"] = list(self.logs)
        if self.status == "COMPLETED":
            body["metrics"] = {"inference_time": self.inference_s}
            if self.error is not None:
                body["error"] = self.error
                if self.error_type is not None:
                    body["error_type"] = self.error_type
        return body


def _jobs(request: Request) -> dict[str, Job]:
    return request.app.state.fal_jobs


def _log(job: Job, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
    job.logs.append({"timestamp": stamp, "level": "INFO", "message": message, "source": "user"})


def _invalid(param: str, message: str, kind: str = "value_error") -> Answer:
    return Answer(error_response(BACKEND, 422, code=kind, message=message, param=param))


def _missing(param: str) -> Answer:
    return _invalid(param, "field required", "value_error.missing")


def _number(body: dict[str, Any], name: str, low: float, high: float, *, integer: bool = False) -> None:
    value = body.get(name)
    if value is None:
        return
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise _invalid(name, f"{name} must be {'an integer' if integer else 'a number'} in [{low}, {high}]")


def _image_size(body: dict[str, Any], default: tuple[int, int]) -> tuple[int, int]:
    size = body.get("image_size")
    if size is None:
        return default
    if isinstance(size, str) and size in _PRESETS:
        return _PRESETS[size]
    if isinstance(size, dict):
        width, height = size.get("width"), size.get("height")
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= _MAX_SIDE for v in (width, height)):
            return width, height
    raise _invalid("image_size", f"image_size must be one of {', '.join(_PRESETS)} or {{width, height}}")


def _input_image(request: Request, body: dict[str, Any]) -> Image.Image:
    url = body.get("image_url")
    if url is None:
        raise _missing("image_url")
    if isinstance(url, str) and (data := files_of(request).lookup(BACKEND, url)) is not None:
        return open_image(data)
    try:
        return decode_image(url, allow_raw=False)
    except ValueError as exc:
        raise _invalid("image_url", f"could not load image_url: {exc}") from exc


def _output_format(body: dict[str, Any], name: str, default: str) -> str:
    fmt = body.get(name, default)
    if fmt not in ("jpeg", "png"):
        raise _invalid(name, f"{name} must be one of jpeg, png")
    return fmt


def _file(base_url: str, request: Request, image: Image.Image, fmt: str, inline: bool) -> dict[str, Any]:
    data = encode(image, fmt)
    url = data_uri(data, fmt) if inline else files_of(request).put(base_url, BACKEND, data, fmt)
    return {"url": url, "width": image.width, "height": image.height, "content_type": media_type(fmt), "data": data}


def _plan(request: Request, app: str, endpoint: str, body: dict[str, Any]) -> Any:
    """Validate the input (422 at submit) and return a function that builds the model output."""
    base_url = str(request.base_url)
    if app in ("fal-ai/esrgan", "fal-ai/codeformer"):
        source = _input_image(request, body)
        fmt = _output_format(body, "output_format", "png")
        scale = 1
        if app == "fal-ai/esrgan":
            _number(body, "scale", 1, 8)
            scale = int(body.get("scale", 2))
        seed = body.get("seed")
        seed = random_seed() if seed is None else seed

        def enhance() -> dict[str, Any]:
            image = source.resize((source.width * scale, source.height * scale), Image.Resampling.NEAREST)
            item = _file(base_url, request, image, fmt, False)
            data = item.pop("data")
            item.update({"file_name": item["url"].rsplit("/", 1)[-1], "file_size": len(data)})
            return {"image": item} if app == "fal-ai/esrgan" else {"image": item, "seed": seed}

        return enhance
    prompt = body.get("prompt")
    if prompt is None:
        raise _missing("prompt")
    if not isinstance(prompt, str):
        raise _invalid("prompt", "prompt must be a string")
    source = _input_image(request, body) if endpoint == "image-to-image" else None
    _number(body, "strength", 0.05, 1)
    _number(body, "num_images", 1, 8, integer=True)
    _number(body, "num_inference_steps", 1, 100, integer=True)
    _number(body, "guidance_scale", 0, 20)
    _number(body, "seed", 0, 2**63 - 1, integer=True)
    width, height = _image_size(body, source.size if source is not None else _PRESETS["square_hd"])
    fmt = _output_format(body, "format", "jpeg")
    count = int(body.get("num_images", 1))
    seed = body.get("seed")
    seed = random_seed() if seed is None else seed
    inline = bool(body.get("sync_mode", False))

    def generate() -> dict[str, Any]:
        # Image i of a batch is filled with expected_rgb(prompt, seed + i); `seed` reports the first.
        images = [
            _file(base_url, request, solid(width, height, expected_rgb(prompt, seed + i)), fmt, inline)
            for i in range(count)
        ]
        for item in images:
            item.pop("data")
        return {
            "images": images,
            "seed": seed,
            "prompt": prompt,
            "has_nsfw_concepts": [False] * count,
            "timings": {"inference": 0.01},
        }

    return generate


async def _run(job: Job, control: Control, build: Any) -> None:
    """The runner: queue, progress (the generation call), completion."""
    epoch = control.epoch
    while time.monotonic() - job.submitted < job.queue_s:
        await asyncio.sleep(_TICK_S)
        if control.stopping or control.epoch != epoch:
            return
    job.status = "IN_PROGRESS"
    started = time.monotonic()
    _log(job, "Generating image")
    await control.generation(BACKEND, extra_s=job.progress_s)
    if job.status != "IN_PROGRESS":  # cancelled meanwhile
        return
    job.inference_s = round(time.monotonic() - started, 4)
    if job.error is None:
        job.result = build()
        _log(job, "Done")
    job.status = "COMPLETED"


@router.post("/{owner}/{app}")
@router.post("/{owner}/{app}/{endpoint:path}")
async def submit(request: Request, owner: str, app: str, endpoint: str = "") -> Response:
    """Queue one request; its URLs point back at the fake."""
    body = request.state.payload
    if not isinstance(body, dict):
        raise _invalid("body", "the input must be a JSON object", "type_error.dict")
    control = control_of(request)
    build = _plan(request, f"{owner}/{app}", endpoint, body)
    request_id = str(uuid.uuid4())
    base = f"{str(request.base_url).rstrip('/')}/fal/{owner}/{app}/requests/{request_id}"
    urls = {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}
    job = Job(request_id, f"{owner}/{app}", urls, control.fal_queue_s, control.fal_progress_s)
    if control.fal_error is not None:
        job.error, job.error_type = control.fal_error, control.fal_error_type
        control.fal_error = control.fal_error_type = None
    _jobs(request)[request_id] = job
    job.task = asyncio.get_running_loop().create_task(_run(job, control, build))
    background: set[asyncio.Task[None]] = request.app.state.background
    background.add(job.task)
    job.task.add_done_callback(background.discard)
    content = {
        "request_id": request_id,
        **urls,
        "gateway_request_id": request_id,
        "queue_position": job.queue_position(),
    }
    return JSONResponse(content, headers={"x-fal-request-id": request_id})


def _job(request: Request, request_id: str) -> Job:
    job = _jobs(request).get(request_id)
    if job is None:
        raise Answer(error_response(BACKEND, 404, message="Request not found", code="request_not_found"))
    return job


@router.get("/{owner}/{app}/requests/{request_id}/status")
async def status(request: Request, owner: str, app: str, request_id: str) -> Response:
    """The request's state; logs only with ?logs=1."""
    job = _job(request, request_id)
    logs = request.query_params.get("logs") in ("1", "true")
    return JSONResponse(job.status_body(logs), headers={"x-fal-request-id": request_id})


@router.get("/{owner}/{app}/requests/{request_id}/status/stream")
async def status_stream(request: Request, owner: str, app: str, request_id: str) -> Response:
    """SSE: one status object per `data:` line when it changes, a comment keep-alive, closed after COMPLETED."""
    job = _job(request, request_id)
    logs = request.query_params.get("logs") in ("1", "true")
    control = control_of(request)

    async def events() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        quiet_since = time.monotonic()
        while not control.stopping:
            body = job.status_body(logs)
            if body != last:
                last, quiet_since = body, time.monotonic()
                yield f"data: {json.dumps(body)}\n\n"
                if body["status"] == "COMPLETED":
                    return
            elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(_TICK_S)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"x-fal-request-id": request_id})


@router.get("/{owner}/{app}/requests/{request_id}")
async def result(request: Request, owner: str, app: str, request_id: str) -> Response:
    """The model output once COMPLETED (404 while missing_result is set; the error for a failed request)."""
    job = _job(request, request_id)
    if control_of(request).missing_result.get(BACKEND):
        raise Answer(error_response(BACKEND, 404, message="Request not found", code="request_not_found"))
    if job.status != "COMPLETED":
        raise Answer(error_response(BACKEND, 400, message="Request is still in progress", code="request_in_progress"))
    if job.error is not None:
        kind = job.error_type or "runner_error"
        code = 422 if "validation" in kind or "input" in kind else 500
        raise Answer(error_response(BACKEND, code, message=job.error, code=kind))
    response = JSONResponse(job.result, headers={"x-fal-request-id": request_id})
    inline = any(str(item.get("url", "")).startswith("data:") for item in (job.result or {}).get("images", []))
    return image_bearing(request, BACKEND, response) if inline else response  # sync_mode: the bytes are inline


@router.put("/{owner}/{app}/requests/{request_id}/cancel")
async def cancel(request: Request, owner: str, app: str, request_id: str) -> Response:
    """Queued requests are removed and running ones stopped; both end COMPLETED with error "Request cancelled"."""
    job = _jobs(request).get(request_id)
    if job is None:
        return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
    if job.status == "COMPLETED":
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
    job.status, job.error, job.error_type = "COMPLETED", "Request cancelled", "request_cancelled"
    if job.task is not None:
        job.task.cancel()
    control_of(request).cancelled.append(request_id)
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)


@files_router.get("/files/{name}")
async def files(request: Request, name: str) -> Response:
    """An output image (404 while missing_result is set)."""
    return serve_file(request, BACKEND, name, lambda: error_response(BACKEND, 404, message="File not found"))
