"""The FastAPI application: routers, error handlers, and the edge they call.

Routes never talk to Ray directly: they reach the job and image services through the
:class:`serve_app.runtime.Edge` stored on ``app.state.edge`` (see :mod:`serve_app.api.deps`). The ingress
deployment builds the edge over deployment handles; tests build it over plain objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI

from serve_app.api.metrics import RequestMetrics
from serve_app.api.middleware import BodyLimit, Cors, JsonOnly, SecurityHeaders
from serve_app.api.security import RateLimitHeaders, authorize
from serve_app.config import IngressConfig
from serve_app.errors import install_error_handlers

if TYPE_CHECKING:
    from serve_app.runtime import Edge

__all__ = ["create_api"]


def create_api(edge: Edge | None) -> FastAPI:
    """Builds the HTTP application around ``edge`` (None: the caller sets ``app.state.edge`` later)."""
    from serve_app.api import (
        admin,
        assets,
        campaign,
        enhance,
        figures,
        generate,
        health,
        images,
        jobs,
        maps,
        overlays,
        themes,
    )
    from serve_app.api.compat import a1111 as a1111_compat
    from serve_app.api.compat import openai as openai_compat

    app = FastAPI(
        title="limner",
        version="0.1.0",
        description="Images for tabletop RPG apps and the Experimance installation.",
        dependencies=[Depends(authorize)],  # every route: its scope from serve_app/auth/scopes.py
    )
    app.state.edge = edge
    install_error_handlers(app)

    def ingress() -> IngressConfig:
        current: Edge | None = app.state.edge
        return current.config.ingress if current is not None else IngressConfig()

    # The last added runs first: metrics and the request id around everything, security headers on everything,
    # CORS preflights before the body limit.
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(JsonOnly)
    app.add_middleware(BodyLimit, limit=lambda: ingress().max_body_bytes)
    app.add_middleware(Cors, origins=lambda: ingress().cors_origins)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)
    app.include_router(health.router)
    app.include_router(generate.router)
    # The job routes come before the image routes: /api/v2/images/{image_id} would otherwise match "jobs".
    app.include_router(jobs.router)
    app.include_router(themes.router)
    app.include_router(figures.router)
    app.include_router(campaign.router)  # before maps: /campaign/... next to /{map_id}
    app.include_router(maps.router)
    app.include_router(overlays.router)  # before images: /{image_id}/overlays next to /{image_id}
    app.include_router(enhance.router)
    app.include_router(images.router)
    app.include_router(assets.router)
    app.include_router(admin.router)
    app.include_router(a1111_compat.router)  # /sdapi/v1/*, HEAD /, /config, /login
    app.include_router(openai_compat.router)
    _document_auth_errors(app)
    return app


def _document_auth_errors(app: FastAPI) -> None:
    """Adds the guard's answers (401, 403, 429 in the one error shape) to every operation that needs a scope
    (serve_app/auth/scopes.py), unless the route declared its own (the OpenAI-compatible routes answer in
    OpenAI's shape). Done on the generated document: the guard is one app-wide dependency, not a route's."""
    from serve_app.auth.scopes import ROUTE_SCOPES
    from serve_app.errors import error_responses

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = FastAPI.openapi(app)  # FastAPI's own document (the error shape is among its schemas)
        ref = {"$ref": "#/components/schemas/ErrorResponse"}
        assert "ErrorResponse" in schema.get("components", {}).get("schemas", {})
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if ROUTE_SCOPES.get((method.upper(), path)) is None:
                    continue
                answers = operation.setdefault("responses", {})
                for code, entry in error_responses(401, 403, 429).items():
                    answers.setdefault(
                        str(code),
                        {"description": entry["description"], "content": {"application/json": {"schema": ref}}},
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
