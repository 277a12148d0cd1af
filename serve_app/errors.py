"""One error hierarchy and one JSON shape for every HTTP error.

    ServiceError                 status_code, error_type, message, param
     ├── InvalidRequest          422  a field is missing or out of range (param names it)
     ├── NotFound                404
     ├── Conflict                409  an idempotency key reused with a different request
     ├── Overloaded              503  the queue is full; Retry-After says when to come back
     ├── NotReady                503  the model is still loading
     ├── GenerationFailed        500  the generator broke; details are logged, not returned
     └── GatewayTimeout          504  the job did not finish in time (it goes on; poll it by id)

Every error answers ``{"error": {"type": ..., "message": ..., "param": ...}}``. Pipelines raise
``ValueError`` subclasses; :func:`from_exception` translates them here, at the edge.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

__all__ = [
    "Conflict",
    "ErrorBody",
    "ErrorResponse",
    "GatewayTimeout",
    "GenerationFailed",
    "InvalidRequest",
    "NotFound",
    "NotReady",
    "Overloaded",
    "ServiceError",
    "error_responses",
    "from_exception",
    "install_error_handlers",
]

logger = logging.getLogger("limner.errors")


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


class NotFound(ServiceError):
    status_code = 404
    error_type = "not_found"


class Conflict(ServiceError):
    status_code = 409
    error_type = "conflict"


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


class ErrorBody(BaseModel):
    type: str = Field(..., description="Stable machine-readable error kind.", examples=["invalid_request"])
    message: str = Field(..., description="What went wrong.", examples=["width=100 is not allowed: ..."])
    param: str | None = Field(None, description="The request field at fault.", examples=["width"])


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the given status codes, all with the one error shape."""
    text = {
        404: "Not found.",
        409: "Conflicts with an earlier request.",
        422: "A field is missing or out of range; `param` names it.",
        500: "Generation failed.",
        504: "The job did not finish in time; it goes on and can be polled.",
        503: "Overloaded or not ready; retry after `Retry-After` seconds.",
    }
    return {code: {"model": ErrorResponse, "description": text.get(code, "Error.")} for code in codes}


def from_exception(exc: BaseException) -> ServiceError:
    """Maps any exception to the :class:`ServiceError` the client should see."""
    from pipelines.sdxl import GenerationInputError

    exc = _unwrap(exc)
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, GenerationInputError):
        return InvalidRequest(str(exc), param=exc.param)
    from ray.serve.exceptions import BackPressureError

    if isinstance(exc, BackPressureError):
        return Overloaded("The generator queue is full; try again shortly.", headers={"Retry-After": "2"})
    return GenerationFailed("Generation failed; the error was logged.")


def _unwrap(exc: BaseException) -> BaseException:
    """The user exception inside a Ray task error (whose message is a whole remote traceback)."""
    from ray.exceptions import RayTaskError

    while isinstance(exc, RayTaskError) and isinstance(exc.cause, BaseException):
        exc = exc.cause
    return exc


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

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        err = InvalidRequest(message, param=param)
        logger.warning("%s %s → 422: %s", request.method, request.url.path, message)
        return _render(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        err = from_exception(exc)
        if err.status_code >= 500 and not isinstance(err, Overloaded):
            logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _render(err)
