"""Fake Runware REST API, from shared/docs/RUNWARE_API.md (§1 transport and auth, §2 imageInference, §3 upscale,
§4 responses and errors).

`POST /runware/v1` takes a JSON array of tasks; auth is `Authorization: Bearer KEYS["runware"]` or a first
`{"taskType": "authentication", "apiKey": ...}` task, else 401 invalidApiKey. Errors are scoped per task:
`{"errors": [{code, message, parameter, taskType, taskUUID}]}`, 400 when no task succeeded, else 200 with both
`data` and `errors`. imageInference: sizes 128..2048 divisible by Control.runware_multiple (64), results matched by
taskUUID, each result of numberResults gets seed + i, `cost` RUNWARE_COST only with includeCost, outputType
URL (served at /runware/v1/files/<imageUUID>.<ext>) | base64Data | dataURI. upscale / imageUpscale (the taskType
received is echoed). deliveryMethod "async" answers `{"data": []}` and getResponse returns the stored results.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from tests.remote_fakes.common import (
    Answer,
    b64,
    control_of,
    data_uri,
    decode_image,
    disconnected,
    encode,
    error_response,
    files_of,
    gate,
    image_bearing,
    open_image,
    random_seed,
    serve_file,
    solid,
)
from tests.remote_fakes.control import KEYS, expected_rgb

BACKEND = "runware"
RUNWARE_COST = 0.0038
_MIN_SIDE, _MAX_SIDE, _MAX_UPSCALED = 128, 2048, 4096
_OUTPUT_TYPES = ("URL", "base64Data", "dataURI")
_FORMATS = {"JPG": "jpeg", "JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}
_UPSCALE = ("upscale", "imageUpscale")


def _auth(request: Request, payload: Any) -> Response | None:
    header = request.headers.get("authorization")
    if header is not None:
        ok = header == f"Bearer {KEYS[BACKEND]}"
    else:
        first = payload[0] if isinstance(payload, list) and payload else None
        ok = (
            isinstance(first, dict)
            and first.get("taskType") == "authentication"
            and first.get("apiKey") == KEYS[BACKEND]
        )
    if ok:
        return None
    item = {"code": "invalidApiKey", "message": "Invalid API key.", "parameter": "apiKey", "taskType": "authentication"}
    return error_response(BACKEND, 401, body={"errors": [item]})


router = APIRouter(prefix="/runware", dependencies=[gate(BACKEND, _auth)])
files_router = APIRouter(prefix="/runware/v1", dependencies=[gate(BACKEND, None)])


class TaskError(Exception):
    """One task's error item."""

    def __init__(self, task: dict[str, Any], code: str, message: str, parameter: str | None) -> None:
        super().__init__(message)
        self.item = {"code": code, "message": message, "parameter": parameter}
        self.item.update({"taskType": task.get("taskType"), "taskUUID": task.get("taskUUID")})


def _number(task: dict[str, Any], name: str, low: float, high: float, *, integer: bool = True) -> Any:
    value = task.get(name)
    if value is None:
        return None
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise TaskError(task, f"invalid{name[0].upper()}{name[1:]}", f"{name} must be in [{low}, {high}].", name)
    return value


def _output(task: dict[str, Any]) -> tuple[str, str]:
    output_type = task.get("outputType", "URL")
    if output_type not in _OUTPUT_TYPES:
        raise TaskError(
            task, "invalidOutputType", f"outputType must be one of {', '.join(_OUTPUT_TYPES)}.", "outputType"
        )
    fmt = task.get("outputFormat", "JPG")
    if not isinstance(fmt, str) or fmt.upper() not in _FORMATS:
        raise TaskError(task, "invalidOutputFormat", "outputFormat must be one of JPG, PNG, WEBP.", "outputFormat")
    return output_type, _FORMATS[fmt.upper()]


def _image_arg(request: Request, task: dict[str, Any], name: str, inputs_name: str) -> Image.Image | None:
    value = task.get(name)
    if value is None and isinstance(task.get("inputs"), dict):
        value = task["inputs"].get(inputs_name)
    if value is None:
        return None
    if isinstance(value, str) and (data := files_of(request).lookup(BACKEND, value)) is not None:
        return open_image(data)
    try:
        return decode_image(value)
    except ValueError as exc:
        code = f"invalid{name[0].upper()}{name[1:]}"
        raise TaskError(
            task, code, f"{name}: {exc} (the fake takes data URIs, base64, or its own URLs).", name
        ) from exc


def _image_fields(request: Request, task: dict[str, Any], image: Image.Image) -> dict[str, Any]:
    output_type, fmt = _output(task)
    data = encode(image, fmt)
    image_uuid = str(uuid.uuid4())
    item: dict[str, Any] = {"taskType": task["taskType"], "taskUUID": task["taskUUID"], "imageUUID": image_uuid}
    if output_type == "URL":
        item["imageURL"] = files_of(request).put(str(request.base_url), BACKEND, data, fmt, name=image_uuid)
    elif output_type == "base64Data":
        item["imageBase64Data"] = b64(data)
    else:
        item["imageDataURI"] = data_uri(data, fmt)
    return item


def _inference(request: Request, task: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    prompt = task.get("positivePrompt")
    if prompt is None:
        raise TaskError(task, "missingPositivePrompt", "positivePrompt is required.", "positivePrompt")
    if not isinstance(prompt, str) or (prompt != "__BLANK__" and not 2 <= len(prompt) <= 3000):
        raise TaskError(task, "invalidPositivePrompt", "positivePrompt must be 2-3000 characters.", "positivePrompt")
    negative = task.get("negativePrompt")
    if negative is not None and (not isinstance(negative, str) or not 2 <= len(negative) <= 3000):
        raise TaskError(task, "invalidNegativePrompt", "negativePrompt must be 2-3000 characters.", "negativePrompt")
    model = task.get("model")
    if model is None:
        raise TaskError(task, "missingModel", "model is required.", "model")
    if not isinstance(model, str) or ":" not in model or "@" not in model:
        raise TaskError(task, "invalidModel", "model must be an AIR id such as runware:101@1.", "model")
    multiple = control_of(request).runware_multiple
    sizes = []
    for name in ("width", "height"):
        value = task.get(name)
        if value is None:
            raise TaskError(task, f"missing{name.title()}", f"{name} is required.", name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not _MIN_SIDE <= value <= _MAX_SIDE
            or value % multiple
        ):
            message = f"{name} must be {_MIN_SIDE}-{_MAX_SIDE} and divisible by {multiple} (got {value})."
            raise TaskError(task, f"invalid{name.title()}", message, name)
        sizes.append(value)
    _number(task, "steps", 1, 100)
    _number(task, "CFGScale", 0, 50, integer=False)
    _number(task, "strength", 0, 1, integer=False)
    seed = _number(task, "seed", 1, 2**63 - 1)
    count = _number(task, "numberResults", 1, 20) or 1
    _output(task)
    _image_arg(request, task, "seedImage", "seedImage")
    include_cost, safety = bool(task.get("includeCost")), "safety" in task or "checkNSFW" in task

    def build() -> list[dict[str, Any]]:
        items = []
        for i in range(count):
            used = seed + i if seed is not None else random_seed()
            item = _image_fields(request, task, solid(sizes[0], sizes[1], expected_rgb(prompt, used)))
            item["seed"] = used
            if safety:
                item["NSFWContent"] = False
            if include_cost:
                item["cost"] = RUNWARE_COST
            items.append(item)
        return items

    return build


def _upscale(request: Request, task: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    source = _image_arg(request, task, "inputImage", "image")
    if source is None:
        raise TaskError(task, "missingInputImage", "inputImage is required.", "inputImage")
    factor = task.get("upscaleFactor")
    if factor is None:
        raise TaskError(task, "missingUpscaleFactor", "upscaleFactor is required.", "upscaleFactor")
    if factor not in (2, 4) or isinstance(factor, bool):
        raise TaskError(task, "invalidUpscaleFactor", "upscaleFactor must be 2 or 4.", "upscaleFactor")
    if max(source.size) * factor > _MAX_UPSCALED:
        raise TaskError(
            task, "invalidUpscaleFactor", f"the output is capped at {_MAX_UPSCALED} px a side.", "upscaleFactor"
        )
    _output(task)
    include_cost = bool(task.get("includeCost"))

    def build() -> list[dict[str, Any]]:
        image = source.resize((source.width * factor, source.height * factor), Image.Resampling.NEAREST)
        item = _image_fields(request, task, image)
        item["inputImageUUID"] = str(uuid.uuid4())
        if include_cost:
            item["cost"] = RUNWARE_COST
        return [item]

    return build


def _get_response(request: Request, task: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    stored = request.app.state.runware_async.get(task.get("taskUUID"))
    if stored is None:
        raise TaskError(task, "invalidTaskUUID", "no async task with this taskUUID.", "taskUUID")
    return lambda: [{**item, "status": "success"} for item in stored]


def _check_uuid(task: dict[str, Any], seen: set[str]) -> None:
    value = task.get("taskUUID")
    if value is None:
        raise TaskError(task, "missingTaskUUID", "taskUUID is required.", "taskUUID")
    try:
        valid = isinstance(value, str) and uuid.UUID(value).version == 4
    except ValueError:
        valid = False
    if not valid:
        raise TaskError(task, "invalidTaskUUID", "taskUUID must be a UUID v4.", "taskUUID")
    if value in seen:
        raise TaskError(task, "conflictTaskUUID", "taskUUID appears twice in this request.", "taskUUID")
    seen.add(value)


def _plan(request: Request, task: dict[str, Any], seen: set[str]) -> Callable[[], list[dict[str, Any]]]:
    kind = task.get("taskType")
    if kind != "getResponse":
        _check_uuid(task, seen)
    if kind == "imageInference":
        build = _inference(request, task)
    elif kind in _UPSCALE:
        build = _upscale(request, task)
    elif kind == "getResponse":
        return _get_response(request, task)
    else:
        raise TaskError(task, "unsupportedTaskType", f"taskType {kind!r} is not served by the fake.", "taskType")
    delivery = task.get("deliveryMethod", "sync")
    if delivery not in ("sync", "async"):
        raise TaskError(task, "invalidDeliveryMethod", "deliveryMethod must be sync or async.", "deliveryMethod")
    if delivery == "async":
        store: dict[str, Any] = request.app.state.runware_async

        def deferred() -> list[dict[str, Any]]:
            store[task["taskUUID"]] = build()
            return []

        return deferred
    return build


async def _tasks(request: Request) -> Response:
    payload = request.state.payload
    if not isinstance(payload, list) or not all(isinstance(t, dict) for t in payload):
        message = "The body must be a JSON array of task objects."
        raise Answer(error_response(BACKEND, 400, code="invalidRequestBody", message=message))
    tasks = [t for t in payload if t.get("taskType") != "authentication"]
    plans, errors, seen = [], [], set()
    for task in tasks:
        try:
            plans.append(_plan(request, task, seen))
        except TaskError as exc:
            errors.append(exc.item)
    if plans:
        await control_of(request).generation(BACKEND, disconnected=disconnected(request))
    data = [item for build in plans for item in build()]
    if errors and not plans:
        return JSONResponse({"errors": errors}, status_code=400)
    response = JSONResponse({"data": data, "errors": errors} if errors else {"data": data})
    inline = any("imageBase64Data" in item or "imageDataURI" in item for item in data)
    return image_bearing(request, BACKEND, response) if inline else response


@router.post("/v1")
async def tasks_no_slash(request: Request) -> Response:
    """The one REST endpoint (`https://api.runware.ai/v1`)."""
    return await _tasks(request)


@router.post("/v1/")
async def tasks_slash(request: Request) -> Response:
    """The same endpoint as httpx reaches it with path "" under base_url .../v1."""
    return await _tasks(request)


@files_router.get("/files/{name}")
async def files(request: Request, name: str) -> Response:
    """A URL output (404 while missing_result is set)."""
    return serve_file(
        request, BACKEND, name, lambda: error_response(BACKEND, 404, code="notFound", message="Not found.")
    )
