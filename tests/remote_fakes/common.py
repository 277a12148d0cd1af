"""What the four fake routers share: the per-request gate, error bodies in each API's shape, images and files.

Error shapes follow shared/docs/REMOTE_APIS.md (§2.1 GetImg `{"error": {type, code, message, param, doc_url}}`,
§2.2 FAL `{"detail": ...}`, §2.3 OpenAI `{"error": {message, type, param, code}}`) and RUNWARE_API.md §4
(`{"errors": [{code, message, parameter, taskType, taskUUID}]}`).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.types import Receive, Scope, Send

from tests.remote_fakes.control import Call, Control, Failure

#: Where each backend's routes live on the fake (FakeServer.base_url(backend) == url + PREFIX[backend]).
PREFIX = {"getimg": "/getimg", "fal": "/fal", "openai": "/openai/v1", "runware": "/runware/v1"}

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Answer(Exception):
    """Raised by a handler or the gate to answer `response` at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def control_of(request: Request) -> Control:
    """The Control of the server that received `request`."""
    return request.app.state.control


def random_seed() -> int:
    """A random 32-bit seed (>= 1, which Runware requires), for requests that send none."""
    return random.randint(1, 2**32 - 1)


# ---------------------------------------------------------------------------------------------------------- errors


def _getimg_error(status: int, code: str | None, message: str | None, param: str | None) -> dict[str, Any]:
    kind, default_code = {
        400: ("invalid_request_error", "invalid_parameter"),
        401: ("authentication_error", "invalid_api_key"),
        402: ("billing_error", "quota_exceeded"),
        403: ("permission_error", "forbidden"),
        404: ("invalid_request_error", "not_found"),
        429: ("rate_limit_error", "rate_limit_exceeded"),
    }.get(status, ("api_error" if status >= 500 else "invalid_request_error", "error"))
    return {
        "error": {
            "type": kind,
            "code": code or default_code,
            "message": message or _REASONS.get(status, "Error"),
            "param": param,
            "doc_url": "https://docs.getimg.ai/reference/errors",
        }
    }


def _openai_error(status: int, code: str | None, message: str | None, param: str | None) -> dict[str, Any]:
    kind, default_code, default_message = {
        400: (
            "invalid_request_error",
            "moderation_blocked",
            "Your request was rejected as a result of our safety system.",
        ),
        401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
        403: ("invalid_request_error", "permission_denied", "Your organization must be verified to use this model."),
        404: ("invalid_request_error", "not_found", "Not found."),
        429: ("requests", "rate_limit_exceeded", "Rate limit reached for images per minute. Please try again later."),
    }.get(status, ("server_error", None, "The server had an error while processing your request."))
    if code in ("insufficient_quota", "credit_balance_exhausted") or (code or "").endswith("_limit_exceeded"):
        if code != "rate_limit_exceeded":
            kind = "insufficient_quota"
            default_message = "You exceeded your current quota, please check your plan and billing details."
    return {
        "error": {"message": message or default_message, "type": kind, "param": param, "code": code or default_code}
    }


def _fal_error(status: int, code: str | None, message: str | None, param: str | None) -> dict[str, Any]:
    if status == 422:
        loc = ["body", param] if param else ["body"]
        return {"detail": [{"loc": loc, "msg": message or "field required", "type": code or "value_error.missing"}]}
    return {"detail": message or _REASONS.get(status, "Error")}


def _runware_error(status: int, code: str | None, message: str | None, param: str | None) -> dict[str, Any]:
    default_code = {
        400: "invalidParameter",
        401: "invalidApiKey",
        402: "insufficientCredits",
        403: "accessDenied",
        404: "notFound",
        429: "queueCapacityExceeded",
        503: "serviceUnavailable",
        504: "timeoutProvider",
    }.get(status, "internalServerError")
    item: dict[str, Any] = {"code": code or default_code, "message": message or _REASONS.get(status, "Error")}
    if param or status == 401:
        item["parameter"] = param or "apiKey"
    return {"errors": [item]}


_ERRORS = {"getimg": _getimg_error, "openai": _openai_error, "fal": _fal_error, "runware": _runware_error}


def error_body(
    backend: str, status: int, *, code: str | None = None, message: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An error body in `backend`'s documented shape, e.g. for `Control.fail(..., body=...)`.

    Args:
        backend: "getimg", "fal", "openai" or "runware".
        status: The HTTP status it goes with (picks the default type/code/message).
        code: The error code (OpenAI "insufficient_quota", Runware "insufficientCredits", ...).
        message: The human-readable message.
        param: The parameter at fault (FAL: the last `loc` item of a 422).

    Returns:
        The JSON body.
    """
    return _ERRORS[backend](status, code, message, param)


def error_response(
    backend: str,
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    param: str | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response in `backend`'s shape (FAL adds its `x-fal-error-type` header)."""
    content = body if body is not None else error_body(backend, status, code=code, message=message, param=param)
    extra = dict(headers or {})
    if backend == "fal":
        extra.setdefault("x-fal-error-type", code or ("validation_error" if status == 422 else "http_error"))
    return JSONResponse(content, status_code=status, headers=extra)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def failure_response(backend: str, failure: Failure, payload: Any) -> JSONResponse:
    """The answer to a queued Control.fail, in the API's own shape, with its Retry-After headers."""
    headers = {}
    if failure.retry_after is not None:
        headers["retry-after"] = _seconds(failure.retry_after)
    if failure.retry_after_ms is not None:
        headers["retry-after-ms"] = str(failure.retry_after_ms)
    body = failure.body
    if body is None:
        code = None
        if backend == "openai" and failure.status == 400:
            model = payload.get("model") if isinstance(payload, dict) else None
            code = "content_policy_violation" if str(model or "dall-e-2").startswith("dall-e") else "moderation_blocked"
        body = error_body(backend, failure.status, code=code)
        if backend == "runware" and isinstance(payload, list):
            first = next((t for t in payload if isinstance(t, dict) and t.get("taskType") != "authentication"), None)
            if first is not None:
                body["errors"][0].update({"taskType": first.get("taskType"), "taskUUID": first.get("taskUUID")})
    return error_response(backend, failure.status, body=body, headers=headers)


# ------------------------------------------------------------------------------------------------------------ gate


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, list[tuple[str, bytes]]]]:
    """(fields, files) of a multipart/form-data body (python-multipart is not a dependency: the email parser is).

    Returns:
        fields: name -> text value; files: name -> [(filename, bytes)], a name with "[]" stripped.
    """
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    files: dict[str, list[tuple[str, bytes]]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            fields[str(name)] = data.decode("utf-8", "replace")
        else:
            files.setdefault(str(name).removesuffix("[]"), []).append((str(filename), data))
    return fields, files


async def read_payload(request: Request) -> tuple[Any, dict[str, str] | None]:
    """(parsed JSON or None, multipart fields or None) of the request body; the body stays cached on `request`."""
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        fields, files = parse_multipart(content_type, body)
        request.state.files = files
        form = dict(fields)
        form.update({name: f"<file {items[0][0]}, {len(items[0][1])} bytes>" for name, items in files.items()})
        request.state.form = fields
        return None, form
    if not body:
        return None, None
    try:
        return json.loads(body), None
    except ValueError:
        return None, None


def gate(backend: str, auth: Callable[[Request, Any], Response | None] | None) -> Any:
    """A route dependency: record the call, answer a queued failure, then check auth (when `auth` is given).

    Args:
        backend: Which backend the route belongs to.
        auth: Returns the refusal for a request whose credentials are wrong, else None; None: no auth (files).

    Returns:
        A FastAPI Depends(...) for `dependencies=[...]`.
    """

    async def dependency(request: Request) -> None:
        control = control_of(request)
        payload, form = await read_payload(request)
        request.state.payload = payload
        path = request.url.path.removeprefix(PREFIX[backend]) or "/"
        headers = {k.lower(): v for k, v in request.headers.items()}
        call = Call(request.method, path, headers, payload, time.monotonic(), request.url.query, form)
        control.record(backend, call)
        failure = control.take_failure(backend)
        if failure is not None:
            raise Answer(failure_response(backend, failure, payload))
        if auth is not None and (refusal := auth(request, payload)) is not None:
            raise Answer(refusal)

    return Depends(dependency)


def disconnected(request: Request) -> Callable[[], Awaitable[bool]]:
    """The callable Control.generation polls to end a hang once the client has gone."""
    return request.is_disconnected


def backend_of_path(path: str) -> str | None:
    """Which backend a path belongs to (for unknown routes), or None."""
    for backend, prefix in PREFIX.items():
        if path == prefix or path.startswith(prefix + "/"):
            return backend
    return None


# ---------------------------------------------------------------------------------------------------------- images

_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "jpg": ("JPEG", "image/jpeg")}
_FORMATS["webp"] = ("WEBP", "image/webp")


def media_type(fmt: str) -> str:
    """The MIME type of an output format name ("png", "jpeg"/"jpg", "webp"; any case)."""
    return _FORMATS.get(fmt.lower(), _FORMATS["png"])[1]


def encode(image: Image.Image, fmt: str = "png") -> bytes:
    """`image` encoded as `fmt` ("png", "jpeg"/"jpg", "webp"; any case)."""
    pil_format = _FORMATS.get(fmt.lower(), _FORMATS["png"])[0]
    out = io.BytesIO()
    image.convert("RGB").save(out, format=pil_format, **({"quality": 95} if pil_format != "PNG" else {}))
    return out.getvalue()


def solid(width: int, height: int, rgb: tuple[int, int, int]) -> Image.Image:
    """A width x height RGB image filled with `rgb`."""
    return Image.new("RGB", (width, height), rgb)


def b64(data: bytes) -> str:
    """Plain base64 text of `data`."""
    return base64.b64encode(data).decode("ascii")


def data_uri(data: bytes, fmt: str = "png") -> str:
    """A data: URI of `data` (an image in `fmt`)."""
    return f"data:{media_type(fmt)};base64,{b64(data)}"


def decode_image(text: Any, *, allow_raw: bool = True, max_bytes: int | None = None) -> Image.Image:
    """An image from a data: URI or (when allow_raw) bare base64 text.

    Raises:
        ValueError: Not a string, not base64, bare base64 where only data URIs are allowed, too large, or not an image.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("expected a base64 image")
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise ValueError("only base64 data URLs are supported")
    elif not allow_raw:
        raise ValueError("expected a data:image/...;base64, URL; bare base64 is not accepted")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64 image") from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"image larger than {max_bytes} bytes")
    return open_image(data)


def open_image(data: bytes) -> Image.Image:
    """Decoded image bytes as RGB; ValueError when they are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except Exception as exc:  # PIL raises several types for bad data
        raise ValueError("the data is not an image") from exc


class Files:
    """Images the fakes serve at <prefix>/files/<name> (the CDN of each API), newest 512 kept."""

    def __init__(self, limit: int = 512) -> None:
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._limit = limit

    def put(self, base_url: str, backend: str, data: bytes, fmt: str = "png", name: str | None = None) -> str:
        """Store `data` and return the absolute URL it is served at (base_url: the server's, e.g. request.base_url)."""
        ext = "jpg" if fmt.lower() in ("jpeg", "jpg") else fmt.lower()
        name = f"{name or uuid.uuid4().hex}.{ext}"
        self._items[f"{backend}/{name}"] = (data, media_type(fmt))
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
        return f"{str(base_url).rstrip('/')}{PREFIX[backend]}/files/{name}"

    def lookup(self, backend: str, url: str) -> bytes | None:
        """The bytes behind one of this store's URLs for `backend` (any host), or None."""
        marker = f"{PREFIX[backend]}/files/"
        if marker not in url:
            return None
        item = self.get(backend, url.split(marker, 1)[1].split("?", 1)[0])
        return None if item is None else item[0]

    def get(self, backend: str, name: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of a stored file, or None."""
        return self._items.get(f"{backend}/{name}")


def files_of(request: Request) -> Files:
    """The Files store of the server that received `request`."""
    return request.app.state.files


class TruncatedResponse(Response):
    """A response whose Content-Length promises the whole body but only half is sent before the connection closes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
        # Returning without the final body message makes uvicorn close the connection mid-body.


def image_bearing(request: Request, backend: str, response: Response) -> Response:
    """`response` (which carries image bytes), or its truncated twin when truncate[backend] is set (one-shot)."""
    if control_of(request).take_truncate(backend):
        return TruncatedResponse(response.body, status_code=response.status_code, media_type=response.media_type)
    return response


def serve_file(request: Request, backend: str, name: str, missing: Callable[[], Response]) -> Response:
    """A stored file's response, honouring missing_result and truncate; `missing()` answers a 404."""
    item = files_of(request).get(backend, name)
    if item is None or control_of(request).missing_result.get(backend):
        return missing()
    data, mime = item
    return image_bearing(request, backend, Response(data, media_type=mime))
