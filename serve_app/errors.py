"""One error hierarchy, one table from domain exceptions to it, and one JSON shape for every HTTP error.

    ServiceError                 status_code, error_type, message, param
     ├── InvalidRequest          422  a field is missing or out of range (param names it)
     │    └── ModerationRefused  422  type ``moderation``: the content policy refused a field (named)
     ├── Unauthorized            401  no credentials, or credentials that name no key
     ├── Forbidden               403  the key lacks the scope the route needs
     ├── BadRequest              400  the body is not parseable (too deep, a number too long)
     ├── NotFound                404  also an unknown route
     ├── MethodNotAllowed        405  the route exists; ``Allow`` lists its methods
     ├── Conflict                409  an idempotency key reused with a different request; a taken theme name
     ├── PayloadTooLarge         413  the body is longer than ``ingress.max_body_bytes``
     ├── UnsupportedMediaType    415  a body that is not JSON on a route that reads JSON
     ├── PaymentRequired         402  type ``backend_budget``: a paid API's credits or daily budget are spent
     ├── RateLimited             429  this client sent too much; Retry-After says when to come back
     ├── BackendFailed           502  a paid API refused our key (``backend_auth``) or kept failing
     ├── Overloaded              503  the queue is full; Retry-After says when to come back
     ├── NotReady                503  the model is still loading
     ├── GenerationFailed        500  a stage broke; details are logged, not returned
     └── GatewayTimeout          504  the job did not finish in time (it goes on; poll it by id)

Every error answers ``{"error": {"type": ..., "message": ..., "param": ...}}``, Starlette's own (unknown
routes, wrong methods, unparseable bodies) included. Pipelines and services raise
their own exceptions (``InputError``, ``JobNotFound``, ``AssetNotFound``...); :data:`_TABLE` below is the one
place that says what each becomes, and :func:`is_transient` the one place that says whether a failed job
is worth another attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.errors import Cancelled, InputError, field_path
from pipelines.moderation import ModerationError
from pipelines.remote.errors import RemoteError
from serve_app.images import ImageNotFound
from serve_app.jobs.base import IdempotencyConflict, InvalidCursor, JobNotFound, PermanentJobError
from serve_app.overlays.store import OverlayConflict, OverlayNotFound
from serve_app.store.base import AssetNotFound, InvalidAssetKey, UnsupportedFormat
from serve_app.subjects import SubjectNotFound
from serve_app.themes.base import ThemeConflict, ThemeNotFound, ThemeReadOnly

__all__ = [
    "BODY_ERRORS",
    "INTERNAL_FAILURE",
    "BackendFailed",
    "BadRequest",
    "Conflict",
    "ErrorBody",
    "ErrorResponse",
    "Forbidden",
    "GatewayTimeout",
    "GenerationFailed",
    "InvalidRequest",
    "MethodNotAllowed",
    "ModerationRefused",
    "NotFound",
    "NotReady",
    "Overloaded",
    "PayloadTooLarge",
    "PaymentRequired",
    "RateLimited",
    "ServiceError",
    "Unauthorized",
    "UnsupportedMediaType",
    "describe_failure",
    "error_responses",
    "from_exception",
    "from_http_exception",
    "install_error_handlers",
    "is_transient",
]

logger = logging.getLogger("ray.serve.limner.errors")


class ServiceError(Exception):
    """Base of every error the API reports.

    Args:
        message: Human-readable explanation.
        param: The request field at fault, if any.
        headers: Extra response headers (``Retry-After``).
    """

    status_code = 500
    error_type = "internal_error"

    def __init__(self, message: str, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        # Arguments go to super().__init__ so the exception pickles across Ray handles.
        super().__init__(message, param, headers)
        self.message = message
        self.param = param
        self.headers = headers or {}

    def __str__(self) -> str:
        return self.message


class InvalidRequest(ServiceError):
    status_code = 422
    error_type = "invalid_request"


class ModerationRefused(InvalidRequest):
    """The content policy refused the request: ``param`` names the field, the message the category."""

    error_type = "moderation"


class BadRequest(ServiceError):
    status_code = 400
    error_type = "invalid_request"


class Unauthorized(ServiceError):
    status_code = 401
    error_type = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    error_type = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    error_type = "not_found"


class MethodNotAllowed(ServiceError):
    status_code = 405
    error_type = "method_not_allowed"


class PayloadTooLarge(ServiceError):
    status_code = 413
    error_type = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    """A body that is not JSON sent to a route that reads JSON (``param`` is ``Content-Type``)."""

    status_code = 415
    error_type = "unsupported_media_type"


class Conflict(ServiceError):
    status_code = 409
    error_type = "conflict"


class RateLimited(ServiceError):
    status_code = 429
    error_type = "rate_limited"


class PaymentRequired(ServiceError):
    status_code = 402
    error_type = "backend_budget"


class BackendFailed(ServiceError):
    """A paid API failed: ``error_type`` is the failure's own (``backend_auth``, ``backend_unavailable``...)."""

    status_code = 502
    error_type = "backend_error"

    def __init__(
        self,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message, param, headers)
        if error_type is not None:
            self.error_type = error_type

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.param, self.headers, self.error_type))


class GatewayTimeout(ServiceError):
    status_code = 504
    error_type = "timeout"


class Overloaded(ServiceError):
    status_code = 503
    error_type = "overloaded"


class NotReady(ServiceError):
    status_code = 503
    error_type = "not_ready"


class GenerationFailed(ServiceError):
    status_code = 500
    error_type = "generation_failed"


# -- the one table ----------------------------------------------------------------------------------------

_Translate = Callable[[Any], ServiceError]


def _backpressure(_: BaseException) -> ServiceError:
    return Overloaded("The generator queue is full; try again shortly.", headers={"Retry-After": "2"})


def _permanent(exc: PermanentJobError) -> ServiceError:
    # A permanent failure names its type; the client sees the status of that type (bad input, a stored
    # image that is gone), and a 500 for anything else (an unknown kind is a deployment mistake).
    for cls in (InvalidRequest, NotFound, PaymentRequired):
        if exc.error_type == cls.error_type:
            return cls(exc.message, param=exc.param)
    if exc.error_type == "backend_input":
        return InvalidRequest(exc.message, param=exc.param)
    if exc.error_type.startswith("backend_"):
        return BackendFailed(exc.message, param=exc.param, error_type=exc.error_type)
    return GenerationFailed(exc.message, param=exc.param)


def _remote(exc: Any) -> ServiceError:
    # A paid API's failure (pipelines/remote/errors.py): its message is ours and names the backend, never a key.
    if exc.error_type == "backend_budget":
        return PaymentRequired(str(exc), param=exc.param or "backend")
    if exc.error_type == "backend_input":
        return InvalidRequest(str(exc), param=exc.param)
    return BackendFailed(str(exc), param=exc.param, error_type=exc.error_type)


# Domain exception → the ServiceError a client sees. Checked in order with isinstance, so a subclass must come
# before its base. Anything not listed is a 500 whose details are logged, never returned.
_TABLE: tuple[tuple[type[BaseException], _Translate], ...] = (
    (ModerationError, lambda e: ModerationRefused(str(e), param=e.param)),
    (InputError, lambda e: InvalidRequest(str(e), param=e.param)),
    (InvalidAssetKey, lambda e: InvalidRequest(str(e), param=e.param)),
    (UnsupportedFormat, lambda e: InvalidRequest(str(e), param="ext")),
    (InvalidCursor, lambda e: InvalidRequest(str(e), param="cursor")),
    (JobNotFound, lambda e: NotFound(str(e), param="job_id")),
    (ImageNotFound, lambda e: NotFound(str(e), param="image_id")),
    (AssetNotFound, lambda e: NotFound(str(e), param="sha256")),
    (IdempotencyConflict, lambda e: Conflict(str(e), param="Idempotency-Key")),
    (ThemeNotFound, lambda e: NotFound(str(e), param="theme")),
    (ThemeConflict, lambda e: Conflict(str(e), param=e.param)),
    (ThemeReadOnly, lambda e: Forbidden(str(e), param="theme")),
    (SubjectNotFound, lambda e: NotFound(str(e), param="subject_key")),
    (OverlayNotFound, lambda e: NotFound(str(e), param="overlay_id")),
    (OverlayConflict, lambda e: Conflict(str(e), param="If-Match")),
    (PermanentJobError, _permanent),
    (RemoteError, _remote),
)


def _ray_table() -> tuple[tuple[type[BaseException], _Translate], ...]:
    # Imported on first use, not at import time: the unit tier runs without Ray.
    from ray.serve.exceptions import BackPressureError

    return ((BackPressureError, _backpressure),)


def from_exception(exc: BaseException) -> ServiceError:
    """Maps any exception to the :class:`ServiceError` the client should see (a 500 if it is not in the table)."""
    exc = _unwrap(exc)
    if isinstance(exc, ServiceError):
        return exc
    for cls, translate in (*_TABLE, *_ray_table()):
        if isinstance(exc, cls):
            return translate(exc)
    return GenerationFailed("Generation failed; the error was logged.")


def is_transient(exc: BaseException) -> bool:
    """Whether a job whose attempt raised ``exc`` is worth another attempt: the one place this is decided.

    Bad input (an ``InputError``, a 4xx of ours, a :class:`PermanentJobError`) and a configuration mistake
    never get better by retrying; a cancellation is not a failure. Anything else (a replica died, a timeout,
    overload) is transient.
    """
    from pipelines.sdxl import ModelConfigError

    exc = _unwrap(exc)
    if isinstance(exc, InputError | PermanentJobError | ModelConfigError | Cancelled):
        return False
    if isinstance(exc, RemoteError):
        return not exc.permanent
    if isinstance(exc, ServiceError):
        return exc.status_code >= 500
    return True


INTERNAL_FAILURE = "The job failed with an internal error; the details are in the service log under its job id."
"""What a job that failed for an unexpected reason records and shows (the detail is logged, never stored)."""


def describe_failure(exc: BaseException) -> tuple[str, str, str | None]:
    """``(message, error_type, param)`` to record with a job whose attempt raised ``exc``.

    What is recorded is what clients see (``GET /jobs/{id}``, its events, a waiter's 500, the bridge), so it
    must be safe: the message of an expected error (bad input, one of our own :class:`ServiceError` or
    :class:`PermanentJobError`) is the error's own; anything else (a stage's exception, through Ray a whole
    remote traceback with pids, addresses and paths) is recorded as :data:`INTERNAL_FAILURE`. The caller logs
    ``exc`` itself with the job id.
    """
    exc = _unwrap(exc)
    if isinstance(exc, PermanentJobError):  # it names its own type (unknown_kind, not_found, ...)
        return exc.message, exc.error_type, exc.param
    mapped = from_exception(exc)
    if mapped.status_code < 500 or isinstance(exc, ServiceError | RemoteError):  # a paid API's: names it, no key
        return mapped.message, mapped.error_type, mapped.param
    return INTERNAL_FAILURE, mapped.error_type, None


def _unwrap(exc: BaseException) -> BaseException:
    """The user exception inside a Ray task error (whose message is a whole remote traceback)."""
    try:
        from ray.exceptions import RayTaskError
    except ImportError:  # pragma: no cover - ray is a dependency; pipelines-only installs lack it
        return exc
    while isinstance(exc, RayTaskError) and isinstance(exc.cause, BaseException):
        exc = exc.cause
    return exc


# -- HTTP -------------------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    type: str = Field(..., description="Stable machine-readable error kind.", examples=["invalid_request"])
    message: str = Field(..., description="What went wrong.", examples=["width=100 is not allowed: ..."])
    param: str | None = Field(None, description="The request field at fault.", examples=["width"])


class ErrorResponse(BaseModel):
    error: ErrorBody


_DESCRIPTIONS = {
    400: "The body could not be parsed (not UTF-8, a number over 4300 digits, nesting too deep).",
    401: "No valid credentials.",
    403: "The credentials lack the scope this route needs.",
    404: "Not found.",
    409: "Conflicts with an earlier request.",
    413: "The body is longer than the service accepts (`ingress.max_body_bytes`).",
    415: "The body is not JSON (`Content-Type: application/json`).",
    422: "A field is missing or out of range; `param` names it.",
    402: "A paid API's credits or this service's daily budget for it are spent.",
    429: "Too many requests; retry after `Retry-After` seconds.",
    500: "Generation failed.",
    502: "A paid API refused the service's key or kept failing.",
    503: "Overloaded or not ready; retry after `Retry-After` seconds.",
    504: "The job did not finish in time; it goes on and can be polled.",
}


BODY_ERRORS = (400, 413, 415, 422)
"""What every route that reads a JSON body can answer before it runs: a body that does not parse (400), one longer
than the limit (413, :class:`~serve_app.api.middleware.BodyLimit`), one that is not JSON (415,
:class:`~serve_app.api.middleware.JsonOnly`), one that does not validate (422). Such a route's ``responses=``
starts with ``error_responses(*BODY_ERRORS, ...)``."""


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the given status codes, all with the one error shape."""
    return {code: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(code, "Error.")} for code in codes}


_HTTP_STATUS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def from_http_exception(exc: StarletteHTTPException) -> ServiceError:
    """Starlette's and FastAPI's own HTTP errors (unknown route, wrong method, unparseable or oversized body)
    as the one error shape, keeping their status and headers (``Allow`` on a 405)."""
    cls = _HTTP_STATUS.get(exc.status_code)
    headers = dict(exc.headers or {})
    if cls is None:
        err = ServiceError(str(exc.detail), headers=headers)
        err.status_code = exc.status_code
        err.error_type = "http_error"
        return err
    # The only 400 FastAPI raises here is a body it could not parse (a number over 4300 digits, nesting too
    # deep for the JSON decoder): the field at fault is the body.
    param = "body" if cls in (BadRequest, PayloadTooLarge) else None
    return cls(str(exc.detail), param=param, headers=headers)


def _render(err: ServiceError) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(type=err.error_type, message=err.message, param=err.param))
    return JSONResponse(body.model_dump(), status_code=err.status_code, headers=err.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Routes every error through one JSON shape. 500s hide internals and log at error level."""

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        log = logger.error if exc.status_code >= 500 and exc.status_code != 503 else logger.warning
        log("%s %s → %d %s: %s", request.method, request.url.path, exc.status_code, exc.error_type, exc)
        return _render(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = from_http_exception(exc)
        logger.warning("%s %s → %d %s: %s", request.method, request.url.path, err.status_code, err.error_type, err)
        return _render(err)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [p for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        if first.get("type") == "json_invalid":
            # FastAPI's loc here is ("body", the character offset): the field at fault is the body, not "[17]".
            reason = (first.get("ctx") or {}).get("error") or first.get("msg")
            where = f" at character {loc[0]}" if loc and isinstance(loc[0], int) else ""
            param, message = "body", f"body: not valid JSON ({reason}{where})"
        else:
            param = field_path(*loc) or None
            message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        err = InvalidRequest(message, param=param)
        logger.warning("%s %s → 422: %s", request.method, request.url.path, message)
        return _render(err)

    async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
        # A domain exception of the table is an expected answer (a 4xx), not a server error: handled here,
        # inside the app, rather than by the catch-all below (which Starlette re-raises after answering).
        return await _service_error(request, from_exception(exc))

    for domain, _ in _TABLE:
        app.add_exception_handler(domain, _domain_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        err = from_exception(exc)
        if err.status_code >= 500 and not isinstance(err, Overloaded):
            logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _render(err)
