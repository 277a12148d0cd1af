"""ASGI middleware that measures every HTTP answer and gives every request an id.

:class:`RequestMetrics` records each answer's route template (``/api/v2/images/jobs/{job_id}``, read after routing
from ``scope["route"]``; ``unmatched`` when no route matched), method, status code and seconds through
:func:`serve_app.observability.metrics.metrics`. A streamed answer (``text/event-stream``) is measured to its
start: an SSE stream lasts as long as the client listens, which says nothing about the service.

The request id is the request's ``X-Request-ID`` when it is a sane token (1 to 128 characters of
``[A-Za-z0-9._-]``), else a new one (uuid4 hex). It is set in :data:`serve_app.observability.logs.REQUEST_ID` for
the request's logs and echoed as ``X-Request-ID`` on the answer.

Behind Ray Serve's proxy the request always arrives with an ``X-Request-ID`` (the proxy's ``RequestIdMiddleware``
adds one when the client sent none) and the proxy echoes that header on the answer itself; a second copy from
here would make the header appear twice. So behind the proxy (``proxy_echoes``, by default: inside a Ray worker)
this middleware adds the header only when it replaced the client's id, and the client sees which id the logs use.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.observability.logs import REQUEST_ID, ROUTE
from serve_app.observability.metrics import Metrics, metrics

__all__ = ["REQUEST_ID_HEADER", "UNMATCHED", "RequestMetrics", "request_id_from", "route_template"]

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "unmatched"
"""The route tag of a request no route matched (a 404 of an unknown path): raw paths are never tags."""

_HEADER = b"x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_CLIENT_GONE = 499  # nginx's code: the client closed the connection before an answer started


def route_template(scope: Scope, unmatched: str | None = UNMATCHED) -> str | None:
    """The template of the route that matched ``scope`` (FastAPI's ``path_format``; a plain route's ``path``),
    or ``unmatched`` before routing or when none matched."""
    route = scope.get("route")
    if route is None:
        return unmatched
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else unmatched


def request_id_from(scope: Scope) -> tuple[str, bool]:
    """The request's id and whether it is the client's own: its ``X-Request-ID`` if sane, else a new uuid4 hex."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            candidate = value.decode("latin-1")
            if _SANE.fullmatch(candidate):
                return candidate, True
            break
    return uuid.uuid4().hex, False


def _in_ray_worker() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


class RequestMetrics:
    """Records every HTTP answer's route template, method, status and seconds; sets and echoes the request id.

    Add it as the outermost of the app's own middleware, so it sees the answers the others send themselves (a 413
    of the body limit, a CORS preflight). An exception no handler answered is recorded as 500 and re-raised; a
    request whose client went away before any answer as 499.

    Args:
        app: The ASGI app it wraps.
        proxy_echoes: Whether a proxy in front echoes ``X-Request-ID`` itself (Ray Serve's does); then the header
            is added here only when the client's id was replaced. None: true inside a Ray worker.
        recorder: Returns the metrics to record to (default: the process's, looked up per request).
    """

    def __init__(
        self, app: ASGIApp, *, proxy_echoes: bool | None = None, recorder: Callable[[], Metrics] = metrics
    ) -> None:
        self.app = app
        self._proxy_echoes = proxy_echoes
        self._recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, own = request_id_from(scope)
        if self._proxy_echoes is None:
            self._proxy_echoes = _in_ray_worker()
        echo = not (self._proxy_echoes and own)
        method = scope.get("method", "GET")
        status: int | None = None
        recorded = False

        def record(code: int) -> None:
            nonlocal recorded
            recorded = True
            route = route_template(scope) or UNMATCHED
            self._recorder().http_request(route, method, code, time.perf_counter() - started)

        async def send_measured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = message.get("headers", [])
                streamed = any(n.lower() == b"content-type" and v.startswith(b"text/event-stream") for n, v in headers)
                if echo:
                    headers = [(n, v) for n, v in headers if n.lower() != _HEADER]
                    headers.append((_HEADER, request_id.encode("latin-1")))
                    message = {**message, "headers": headers}
                if streamed:
                    record(status)
            await send(message)

        tokens = (REQUEST_ID.set(request_id), ROUTE.set(lambda: route_template(scope, None)))
        try:
            await self.app(scope, receive, send_measured)
        except asyncio.CancelledError:
            if not recorded:
                record(status if status is not None else _CLIENT_GONE)
            raise
        except BaseException:
            if not recorded:
                record(status if status is not None else 500)
            raise
        finally:
            ROUTE.reset(tokens[1])
            REQUEST_ID.reset(tokens[0])
        if not recorded:
            record(status if status is not None else 500)
