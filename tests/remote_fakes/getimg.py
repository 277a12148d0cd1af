"""Fake GetImg.AI API, from shared/docs/REMOTE_APIS.md §2.1.

v1: SDXL text-to-image / image-to-image, enhancements upscale / face-fix, models, balance; v2: image generations.
Bearer key KEYS["getimg"] or 401; 400 `{"error": {type, code, message, param, doc_url}}` for bad parameters
(width/height multiples of 64, enhancement inputs <= 1024 px per side). Responses: `{image|url, seed, cost}` with
cost GETIMG_COST per image; url outputs are served by the fake at /getimg/files/<name>.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from tests.remote_fakes.common import (
    Answer,
    b64,
    control_of,
    decode_image,
    disconnected,
    encode,
    error_response,
    files_of,
    gate,
    image_bearing,
    media_type,
    random_seed,
    serve_file,
    solid,
)
from tests.remote_fakes.control import KEYS, expected_rgb

BACKEND = "getimg"
GETIMG_COST = 0.0042
MAX_ENHANCE_SIDE = 1024
_MAX_SIDE = 4096  # a guard for the fake itself, not a documented limit
_V2_MAX_IMAGE_BYTES = 10 * 2**20
_V2_MAX_BODY_BYTES = 25 * 2**20


def _auth(request: Request, payload: Any) -> Response | None:
    if request.headers.get("authorization") == f"Bearer {KEYS[BACKEND]}":
        return None
    return error_response(BACKEND, 401, message="Invalid or missing API key.")


router = APIRouter(prefix="/getimg", dependencies=[gate(BACKEND, _auth)])
files_router = APIRouter(prefix="/getimg", dependencies=[gate(BACKEND, None)])


def _bad(param: str | None, message: str, status: int = 400) -> Answer:
    return Answer(error_response(BACKEND, status, message=message, param=param))


def _body(request: Request) -> dict[str, Any]:
    payload = request.state.payload
    if not isinstance(payload, dict):
        raise _bad(None, "The request body must be a JSON object.")
    return payload


def _int(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _bad(name, f"{name} must be an integer.")


def _prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _bad("prompt", "prompt is required.")
    return prompt


def _size(body: dict[str, Any]) -> tuple[int, int]:
    sizes = []
    for name in ("width", "height"):
        value = _int(body, name, 1024) or 0
        if value <= 0 or value % 64 or value > _MAX_SIDE:
            raise _bad(name, f"{name} must be a positive multiple of 64 (got {value}).")
        sizes.append(value)
    return sizes[0], sizes[1]


def _formats(body: dict[str, Any]) -> tuple[str, str]:
    output = body.get("output_format", "jpeg")
    if output not in ("jpeg", "png"):
        raise _bad("output_format", "output_format must be one of jpeg, png.")
    response = body.get("response_format", "b64")
    if response not in ("b64", "url"):
        raise _bad("response_format", "response_format must be one of b64, url.")
    return output, response


def _seed(body: dict[str, Any]) -> int:
    seed = _int(body, "seed", None)
    return random_seed() if seed is None else seed


def _strength(body: dict[str, Any]) -> None:
    strength = body.get("strength")
    if strength is not None and (not isinstance(strength, int | float) or not 0 <= strength <= 1):
        raise _bad("strength", "strength must be between 0 and 1.")


def _input_image(body: dict[str, Any], max_side: int | None = None) -> Image.Image:
    try:
        image = decode_image(body.get("image"))
    except ValueError as exc:
        raise _bad("image", f"image: {exc}.") from exc
    if max_side is not None and max(image.size) > max_side:
        raise _bad("image", f"image must be at most {max_side} px per side (got {image.width}x{image.height}).")
    return image


async def _answer(request: Request, image: Image.Image, body: dict[str, Any], extra: dict[str, Any]) -> Response:
    """The v1 success body {image|url, **extra, cost} after the generation call's service time."""
    await control_of(request).generation(BACKEND, disconnected=disconnected(request))
    output_format, response_format = _formats(body)
    data = encode(image, output_format)
    if response_format == "url":
        url = files_of(request).put(str(request.base_url), BACKEND, data, output_format)
        return JSONResponse({"url": url, **extra, "cost": GETIMG_COST})
    return image_bearing(request, BACKEND, JSONResponse({"image": b64(data), **extra, "cost": GETIMG_COST}))


@router.post("/v1/stable-diffusion-xl/text-to-image")
async def text_to_image(request: Request) -> Response:
    """SDXL text-to-image: a width x height image of expected_rgb(prompt, seed)."""
    body = _body(request)
    prompt, (width, height), seed = _prompt(body), _size(body), _seed(body)
    _int(body, "steps", None)
    _formats(body)
    return await _answer(request, solid(width, height, expected_rgb(prompt, seed)), body, {"seed": seed})


@router.post("/v1/stable-diffusion-xl/image-to-image")
async def image_to_image(request: Request) -> Response:
    """SDXL image-to-image: the input's size, filled with expected_rgb(prompt, seed)."""
    body = _body(request)
    prompt, seed = _prompt(body), _seed(body)
    _strength(body)
    _formats(body)
    source = _input_image(body)
    return await _answer(request, solid(*source.size, expected_rgb(prompt, seed)), body, {"seed": seed})


@router.post("/v1/enhancements/upscale")
async def upscale(request: Request) -> Response:
    """Upscale: the input resized by `scale` (2 or 4), nearest neighbour, so its colours survive."""
    body = _body(request)
    if body.get("model", "real-esrgan-4x") != "real-esrgan-4x":
        raise _bad("model", "model must be real-esrgan-4x.")
    scale = _int(body, "scale", 4)
    if scale not in (2, 4):
        raise _bad("scale", "scale must be 2 or 4.")
    _formats(body)
    source = _input_image(body, MAX_ENHANCE_SIDE)
    image = source.resize((source.width * scale, source.height * scale), Image.Resampling.NEAREST)
    return await _answer(request, image, body, {})


@router.post("/v1/enhancements/face-fix")
async def face_fix(request: Request) -> Response:
    """Face fix: the input unchanged."""
    body = _body(request)
    if body.get("model", "gfpgan-v1-3") != "gfpgan-v1-3":
        raise _bad("model", "model must be gfpgan-v1-3.")
    _formats(body)
    return await _answer(request, _input_image(body, MAX_ENHANCE_SIDE), body, {})


@router.get("/v1/models")
async def models(request: Request) -> Response:
    """Two SDXL models."""
    items = [
        {
            "id": model_id,
            "name": name,
            "family": "stable-diffusion-xl",
            "pipelines": ["text-to-image", "image-to-image"],
            "base_resolution": {"width": 1024, "height": 1024},
            "price": GETIMG_COST,
            "created_at": "2023-07-26T00:00:00Z",
        }
        for model_id, name in (
            ("stable-diffusion-xl-v1-0", "Stable Diffusion XL"),
            ("real-cartoon-xl-v6", "Real Cartoon XL"),
        )
    ]
    return JSONResponse(items)


@router.get("/v1/account/balance")
async def balance(request: Request) -> Response:
    """A fixed balance in USD."""
    return JSONResponse({"amount": 100.0})


def _v2_size(body: dict[str, Any], source: Image.Image | None) -> tuple[int, int]:
    """The v2 output size: `resolution` "WxH" exactly; else a long side from "<n>K" (n*1024) or a number, shaped by
    `aspect_ratio` "a:b"; with neither, the first input image's size, else 1024x1024."""
    resolution, aspect = body.get("resolution"), body.get("aspect_ratio")
    if isinstance(resolution, str) and (m := re.fullmatch(r"(\d+)x(\d+)", resolution)):
        return int(m[1]), int(m[2])
    if resolution is None and aspect is None and source is not None:
        return source.size
    long_side = 1024
    if isinstance(resolution, str) and (m := re.fullmatch(r"(\d+)[kK]", resolution)):
        long_side = int(m[1]) * 1024
    elif isinstance(resolution, int | str) and str(resolution).isdigit():
        long_side = int(resolution)
    elif resolution is not None:
        raise _bad("resolution", f"unsupported resolution {resolution!r}.")
    a, b = 1, 1
    if aspect is not None:
        if not isinstance(aspect, str) or not (m := re.fullmatch(r"(\d+):(\d+)", aspect)) or "0" in (m[1], m[2]):
            raise _bad("aspect_ratio", f"unsupported aspect_ratio {aspect!r}.")
        a, b = int(m[1]), int(m[2])
    if long_side > _MAX_SIDE:
        raise _bad("resolution", f"resolution above {_MAX_SIDE} px.")
    short = max(8, round(long_side * min(a, b) / max(a, b) / 8) * 8)
    return (long_side, short) if a >= b else (short, long_side)


@router.post("/v2/images/generations")
async def v2_generations(request: Request) -> Response:
    """v2 generation: one image behind a signed URL served by the fake; the cost in `usage`."""
    if len(await request.body()) > _V2_MAX_BODY_BYTES:
        raise _bad(None, "The request body is larger than 25 MiB.", 413)
    body = _body(request)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "model is required.")
    prompt = _prompt(body)
    output_format = body.get("output_format", "png")
    if output_format not in ("png", "jpeg", "webp"):
        raise _bad("output_format", "output_format must be one of png, jpeg, webp.")
    images = body.get("images") or []
    if not isinstance(images, list) or not all(isinstance(i, dict) for i in images):
        raise _bad("images", "images must be a list of {url} objects.")
    sources = []
    for item in images:
        try:
            sources.append(decode_image(item.get("url"), allow_raw=False, max_bytes=_V2_MAX_IMAGE_BYTES))
        except ValueError as exc:
            raise _bad("images", f"images[].url: {exc}.") from exc
    width, height = _v2_size(body, sources[0] if sources else None)
    seed = _seed(body)  # v2 documents no seed: one sent is used for the colour, a missing one is random
    await control_of(request).generation(BACKEND, disconnected=disconnected(request))
    data = encode(solid(width, height, expected_rgb(prompt, seed)), output_format)
    url = files_of(request).put(str(request.base_url), BACKEND, data, output_format)
    item = {"url": url, "mime_type": media_type(output_format), "width": width, "height": height}
    item["deletes_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    usage = {"billable_unit": "image", "quantity": 1, "unit_price": GETIMG_COST, "total_cost": GETIMG_COST}
    content = {"id": f"img-{uuid.uuid4().hex}", "model": model, "status": "completed", "data": [item], "usage": usage}
    return JSONResponse(content)


@files_router.get("/files/{name}")
async def files(request: Request, name: str) -> Response:
    """A url-output image (404 while missing_result is set)."""
    return serve_file(request, BACKEND, name, lambda: error_response(BACKEND, 404, message="File not found."))
