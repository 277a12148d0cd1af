"""Fake OpenAI images API, from shared/docs/REMOTE_APIS.md §2.3.

`POST /openai/v1/images/generations` (JSON) and `POST /openai/v1/images/edits` (multipart), Bearer KEYS["openai"]
or 401; errors `{"error": {message, type, param, code}}`. Validates the documented size/model combinations, `n`
(dall-e-3 takes only 1), prompt lengths, per-model fields (unknown fields are refused like the real API does).
GPT image models always answer b64_json; dall-e honours response_format (url: served at /openai/v1/files/<name>).
The API takes no seed: image i of a call is filled with expected_rgb(prompt, i). `stream: true` (GPT models) is
an SSE stream of `partial_images` partial events, then `image_generation.completed`. No cost is reported.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from PIL import Image

from tests.remote_fakes.common import (
    Answer,
    b64,
    control_of,
    disconnected,
    encode,
    error_response,
    files_of,
    gate,
    image_bearing,
    open_image,
    serve_file,
    solid,
)
from tests.remote_fakes.control import KEYS, expected_rgb

BACKEND = "openai"
_GPT = re.compile(r"^(gpt-image-1|gpt-image-1-mini|gpt-image-1\.5|gpt-image-2)(-\d{4}-\d{2}-\d{2})?$")
_GPT_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
_SIZES = {
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
}
_PROMPT_MAX = {"dall-e-3": 4000, "dall-e-2": 1000}
_QUALITY = {"dall-e-3": ("standard", "hd"), "dall-e-2": ("standard",)}
_GPT_QUALITY = ("low", "medium", "high", "auto")
_GPT_ONLY = ("output_format", "output_compression", "background", "moderation", "stream", "partial_images")
_FIELDS = {"prompt", "model", "n", "size", "quality", "response_format", "style", "user", *_GPT_ONLY}
_EDIT_FIELDS = (_FIELDS - {"style"}) | {"image", "mask", "input_fidelity"}


def _auth(request: Request, payload: Any) -> Response | None:
    if request.headers.get("authorization") == f"Bearer {KEYS[BACKEND]}":
        return None
    message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
    return error_response(BACKEND, 401, message=message, code="invalid_api_key")


router = APIRouter(prefix="/openai/v1", dependencies=[gate(BACKEND, _auth)])
files_router = APIRouter(prefix="/openai/v1", dependencies=[gate(BACKEND, None)])


def _bad(param: str | None, message: str, code: str | None = "invalid_value") -> Answer:
    return Answer(error_response(BACKEND, 400, code=code, message=message, param=param))


def _is_gpt(model: str) -> bool:
    return bool(_GPT.match(model))


def _free_size(size: str) -> tuple[int, int] | None:
    """gpt-image-2's free sizes: multiples of 16, aspect 1:3..3:1, at most 3840 px a side and 3840x2160 px in all."""
    m = re.fullmatch(r"(\d+)x(\d+)", size)
    if not m:
        return None
    w, h = int(m[1]), int(m[2])
    ok = w > 0 and h > 0 and not w % 16 and not h % 16 and max(w, h) <= 3 * min(w, h)
    return (w, h) if ok and max(w, h) <= 3840 and w * h <= 3840 * 2160 else None


def _size(model: str, size: Any, source: Image.Image | None = None) -> tuple[int, int]:
    allowed = _GPT_SIZES if _is_gpt(model) else _SIZES[model]
    if size is None:
        size = "auto" if _is_gpt(model) else "1024x1024"
    if size == "auto" and _is_gpt(model):
        if source is None or abs(source.width - source.height) < min(source.size) * 0.2:
            return 1024, 1024
        return (1536, 1024) if source.width > source.height else (1024, 1536)
    if isinstance(size, str) and size in allowed:
        w, h = size.split("x")
        return int(w), int(h)
    if isinstance(size, str) and model.startswith("gpt-image-2") and (free := _free_size(size)) is not None:
        return free
    extra = " or WxH (multiples of 16, aspect 1:3 to 3:1, up to 3840x2160)" if model.startswith("gpt-image-2") else ""
    raise _bad("size", f"Invalid value: '{size}'. Supported values are: {', '.join(map(repr, allowed))}{extra}.")


def _validate(fields: dict[str, Any], allowed_fields: set[str], source: Image.Image | None = None) -> dict[str, Any]:
    """The call's settings, after the documented checks (400 naming the parameter)."""
    for name in fields:
        if name not in allowed_fields:
            raise _bad(name, f"Unknown parameter: '{name}'.", "unknown_parameter")
    model = fields.get("model") or "dall-e-2"
    if not isinstance(model, str) or not (_is_gpt(model) or model in _SIZES):
        raise _bad("model", f"The model '{model}' does not exist or you do not have access to it.", "model_not_found")
    gpt = _is_gpt(model)
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _bad("prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter")
    limit = 32000 if gpt else _PROMPT_MAX[model]
    if len(prompt) > limit:
        raise _bad(
            "prompt",
            f"Invalid 'prompt': string too long. Expected at most {limit} characters.",
            "string_above_max_length",
        )
    n = fields.get("n", 1)
    if isinstance(n, str) and n.isdigit():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        raise _bad("n", "Invalid 'n': expected an integer between 1 and 10.")
    if model == "dall-e-3" and n != 1:
        raise _bad("n", "Invalid 'n': dall-e-3 only supports n=1.")
    if not gpt:
        for name in _GPT_ONLY:
            if name in fields:
                raise _bad(name, f"'{name}' is not supported with model {model}; it is a GPT image model parameter.")
    if "style" in fields and (model != "dall-e-3" or fields["style"] not in ("vivid", "natural")):
        raise _bad("style", "Invalid 'style': vivid or natural, dall-e-3 only.")
    quality = fields.get("quality")
    if quality is not None and quality not in (_GPT_QUALITY if gpt else _QUALITY[model]):
        raise _bad("quality", f"Invalid value: '{quality}' for quality with model {model}.")
    response_format = fields.get("response_format")
    if response_format is not None and response_format not in ("url", "b64_json"):
        raise _bad(
            "response_format", f"Invalid value: '{response_format}'. Supported values are: 'url' and 'b64_json'."
        )
    output_format = fields.get("output_format", "png")
    if output_format not in ("png", "jpeg", "webp"):
        raise _bad(
            "output_format", f"Invalid value: '{output_format}'. Supported values are: 'png', 'jpeg' and 'webp'."
        )
    partial = fields.get("partial_images", 0)
    if isinstance(partial, str) and partial.isdigit():
        partial = int(partial)
    if isinstance(partial, bool) or not isinstance(partial, int) or not 0 <= partial <= 3:
        raise _bad("partial_images", "Invalid 'partial_images': expected an integer between 0 and 3.")
    width, height = _size(model, fields.get("size"), source)
    stream = fields.get("stream") in (True, "true", "True", "1")
    return {
        "model": model,
        "gpt": gpt,
        "prompt": prompt,
        "n": n,
        "size": f"{width}x{height}",
        "width": width,
        "height": height,
        "quality": quality or ("auto" if gpt else "standard"),
        "background": fields.get("background", "auto"),
        "output_format": output_format if gpt else "png",
        "url": not gpt and (response_format or "url") == "url",
        "stream": stream,
        "partial_images": partial,
    }


def _usage(settings: dict[str, Any]) -> dict[str, Any]:
    text = max(1, len(settings["prompt"]) // 4)
    image_out = 272 * settings["n"]
    return {
        "input_tokens": text,
        "input_tokens_details": {"text_tokens": text, "image_tokens": 0},
        "output_tokens": image_out,
        "output_tokens_details": {"text_tokens": 0, "image_tokens": image_out},
        "total_tokens": text + image_out,
    }


async def _respond(request: Request, settings: dict[str, Any]) -> Response:
    await control_of(request).generation(BACKEND, disconnected=disconnected(request))
    fmt = settings["output_format"]
    images = [
        encode(solid(settings["width"], settings["height"], expected_rgb(settings["prompt"], i)), fmt)
        for i in range(settings["n"])
    ]
    if settings["stream"] and settings["gpt"]:
        return StreamingResponse(_events(settings, images), media_type="text/event-stream")
    data: list[dict[str, Any]] = []
    for image in images:
        if settings["url"]:
            item: dict[str, Any] = {"url": files_of(request).put(str(request.base_url), BACKEND, image, fmt)}
        else:
            item = {"b64_json": b64(image)}
        if settings["model"] == "dall-e-3":
            item["revised_prompt"] = settings["prompt"]
        data.append(item)
    content: dict[str, Any] = {"created": int(time.time()), "data": data}
    if settings["gpt"]:
        content.update({k: settings[k] for k in ("background", "output_format", "quality", "size")})
        content["usage"] = _usage(settings)
    response = JSONResponse(content)
    return response if settings["url"] else image_bearing(request, BACKEND, response)


async def _events(settings: dict[str, Any], images: list[bytes]) -> AsyncIterator[str]:
    common = {k: settings[k] for k in ("size", "quality", "background", "output_format")}
    common["created_at"] = int(time.time())
    for index in range(settings["partial_images"]):
        event = {"type": "image_generation.partial_image", "b64_json": b64(images[0]), "partial_image_index": index}
        yield f"event: {event['type']}\ndata: {json.dumps({**event, **common})}\n\n"
    for image in images:
        event = {"type": "image_generation.completed", "b64_json": b64(image), **common, "usage": _usage(settings)}
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


@router.post("/images/generations")
async def generations(request: Request) -> Response:
    """Text-to-image."""
    body = request.state.payload
    if not isinstance(body, dict):
        raise _bad(None, "The request body must be a JSON object.", "invalid_json")
    return await _respond(request, _validate(body, _FIELDS))


@router.post("/images/edits")
async def edits(request: Request) -> Response:
    """Image edit (limner's img2img): multipart with one or more `image` files, an optional `mask`."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise _bad(None, "Expected a multipart/form-data body.", "invalid_request")
    fields: dict[str, Any] = dict(request.state.form)
    uploads: dict[str, list[tuple[str, bytes]]] = request.state.files
    if not uploads.get("image"):
        raise _bad("image", "Missing required parameter: 'image'.", "missing_required_parameter")
    sources = []
    for name, items in uploads.items():
        for _filename, data in items:
            try:
                image = open_image(data)
            except ValueError as exc:
                raise _bad(name, f"Invalid '{name}': the file is not a supported image.", "invalid_image") from exc
            if name == "image":
                sources.append(image)
    fields.update(dict.fromkeys(uploads, "<file>"))
    settings = _validate(fields, _EDIT_FIELDS, sources[0])
    return await _respond(request, settings)


@files_router.get("/files/{name}")
async def files(request: Request, name: str) -> Response:
    """A dall-e url output (404 while missing_result is set)."""
    return serve_file(request, BACKEND, name, lambda: error_response(BACKEND, 404, message="File not found."))
