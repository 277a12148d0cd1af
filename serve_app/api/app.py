"""The FastAPI application: routers, error handlers, and the edge they call.

Routes never talk to Ray directly: they reach the job and image services through the
:class:`serve_app.runtime.Edge` stored on ``app.state.edge`` (see :mod:`serve_app.api.deps`). The ingress
deployment builds the edge over deployment handles; tests build it over plain objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    return app
