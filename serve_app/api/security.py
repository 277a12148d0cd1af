"""Authentication on the HTTP side: the app-wide dependency and the middleware that sends rate-limit headers.

:func:`authorize` runs for every API route after routing (FastAPI app ``dependencies=``), so it knows the matched
route's template and looks its scope up in serve_app/auth/scopes.py (:class:`serve_app.auth.guard.Guard` does the
checks). It sets the tenant scope and principal for the rest of the request: the route, the stores and any SSE
stream it opens run scoped to the key's tenant.

The ``RateLimit`` headers of a passing request are kept in the request's state and added to its answer by
:class:`RateLimitHeaders` (a route may answer with its own ``Response``, whose headers a dependency cannot touch).

The two security schemes are declared for the OpenAPI document (the docs page's "Authorize" button); the key is
read from the raw headers by the guard either way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Scope

from serve_app.api.middleware import AddHeaders

__all__ = ["RATELIMIT_STATE", "RateLimitHeaders", "authorize"]

RATELIMIT_STATE = "limner_ratelimit_headers"
"""The request-state key the rate-limit headers of a passing request are kept under."""

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer lmn_...`.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, as `X-API-Key: lmn_...`.")


async def authorize(
    request: Request,
    _bearer_key: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    _header_key: Annotated[str | None, Depends(_api_key)] = None,
) -> None:
    """Checks the request's key against the matched route's scope (a no-op while auth is off)."""
    edge = request.app.state.edge
    guard = None if edge is None else edge.guard
    if guard is None or not guard.enabled:
        return
    route = request.scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", "")
    _, sent = await guard.check(request.method, str(template), request.headers)
    if sent:
        request.scope.setdefault("state", {})[RATELIMIT_STATE] = sent


class RateLimitHeaders(AddHeaders):
    """Adds the headers :func:`authorize` left in the request's state to the answer (unless it set them)."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, _state_headers)


def _state_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    sent = scope.get("state", {}).get(RATELIMIT_STATE) or {}
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in sent.items()]
