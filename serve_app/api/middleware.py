"""ASGI middleware of the ingress: a request-body limit enforced while the body arrives, security headers on every
answer, and CORS for the configured browser origins only.

A body longer than the limit is refused with 413 in the one error shape, before it is read whole: at once
when ``Content-Length`` announces it, else as soon as the bytes received pass the limit (a chunked upload
stops being read there). FastAPI's own ``max_body_size`` would answer the announced case in plain text when a
route never reads its body; this one answers every case in the error shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.errors import ErrorBody, ErrorResponse, PayloadTooLarge, ServiceError, UnsupportedMediaType

__all__ = [
    "RAW_BODY_PATHS",
    "SECURITY_HEADERS",
    "AddHeaders",
    "BodyLimit",
    "BodyTooLarge",
    "Cors",
    "JsonOnly",
    "SecurityHeaders",
]

RAW_BODY_PATHS = (
    "/api/v2/images/uploads",  # the image's own bytes
    "/api/v2/images/maps/import",  # a .dd2vtt / .uvtt file as it is on disk
    "/api/v2/images/maps/campaign/import",  # a GeoJSON file as it is on disk
    "/v1/images/edits",  # OpenAI's multipart form (image, mask, prompt), parsed by serve_app/api/compat/openai.py
)
"""Routes that read their body themselves, whatever its content type."""

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),  # a stored image is never sniffed into HTML or script
    (b"referrer-policy", b"no-referrer"),  # asset and job URLs stay out of other sites' logs
    (b"x-frame-options", b"DENY"),  # nothing of the API is framed by another page
)
"""Added to every HTTP answer (JSON, images, the docs page), unless the route set the header itself."""


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit. An ``HTTPException`` so that FastAPI's body
    parsing passes it on unchanged (it turns any other exception into a 400) to the app's error handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"The request body is larger than {limit} bytes.")
        self.limit = limit


class BodyLimit:
    """Refuses request bodies longer than ``limit()`` bytes with 413.

    Args:
        app: The ASGI app it wraps.
        limit: Returns the limit in bytes, read per request (the app's config may arrive after the app is
            built: the ingress sets ``app.state.edge`` once its services are open).
    """

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        announced = _content_length(scope)
        if announced is not None and announced > limit:
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_limited, send_tracked)
        except BodyTooLarge:
            # Normally the app's handler answers it; this covers a body read outside a route.
            if started:
                raise
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    await _answer(send, PayloadTooLarge(f"The request body is larger than {limit} bytes.", param="body"))


async def _answer(send: Send, err: ServiceError) -> None:
    """``err`` in the one error shape, before the body was read."""
    body = ErrorResponse(error=ErrorBody(type=err.error_type, message=err.message, param=err.param))
    payload = body.model_dump_json().encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    # The unread body is not drained: the server closes the connection after this answer.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": err.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class JsonOnly:
    """Refuses a body that is not JSON (``application/json``, or any ``+json`` type) with 415 naming
    ``Content-Type``, on every route but :data:`RAW_BODY_PATHS`: a form post or a body without a type is never
    guessed at. Requests without a body (a cancel, a GET) pass whatever their headers say."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") or _raw(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if not chunked and not _content_length(scope):
            await self.app(scope, receive, send)
            return
        media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json")):
            await self.app(scope, receive, send)
            return
        shown = media.decode("latin-1") or "none"
        message = f"Content-Type {shown!r} is not accepted here: send the body as application/json"
        await _answer(send, UnsupportedMediaType(message, param="Content-Type"))


def _raw(path: str) -> bool:
    return path.rstrip("/") in RAW_BODY_PATHS


class AddHeaders:
    """Adds ``headers(scope)`` to every HTTP answer, each unless the answer has it already (a route's own wins).

    Args:
        app: The ASGI app it wraps.
        headers: The ``(lower-case name, value)`` pairs to add, read when the answer starts (so they may come from
            the request's state, which routing and dependencies fill).
    """

    def __init__(self, app: ASGIApp, headers: Callable[[Scope], Sequence[tuple[bytes, bytes]]]) -> None:
        self.app = app
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = self._headers(scope)
                if extra:
                    headers = list(message.get("headers", []))
                    present = {name.lower() for name, _ in headers}
                    headers.extend((name, value) for name, value in extra if name not in present)
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SecurityHeaders(AddHeaders):
    """Adds :data:`SECURITY_HEADERS` to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, lambda scope: SECURITY_HEADERS)


class Cors:
    """CORS for ``origins()`` (read per request, like the body limit: the config arrives with the edge); none at all
    while it is empty, so a browser on another origin cannot read the API by default.

    Preflights are answered here (Starlette's ``CORSMiddleware``), before the body limit or any route runs.
    """

    METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS")
    HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "If-Match", "Last-Event-ID", "X-API-Key")
    EXPOSED = ("Location", "ETag", "Retry-After", "X-Image-Id", "X-Job-Id", "Content-Range")

    def __init__(self, app: ASGIApp, origins: Callable[[], Sequence[str]]) -> None:
        self.app = app
        self.origins = origins
        self._built: dict[tuple[str, ...], ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origins = tuple(self.origins()) if scope["type"] == "http" else ()
        if not origins:
            await self.app(scope, receive, send)
            return
        handler = self._built.get(origins)
        if handler is None:
            from starlette.middleware.cors import CORSMiddleware

            handler = self._built[origins] = CORSMiddleware(
                self.app,
                allow_origins=list(origins),
                allow_methods=list(self.METHODS),
                allow_headers=list(self.HEADERS),
                expose_headers=list(self.EXPOSED),
                max_age=600,
            )
        await handler(scope, receive, send)
