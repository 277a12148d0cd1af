"""The FastAPI application: routers, error handlers, and the service they call.

Routes never talk to Ray directly: they call an :class:`serve_app.api.service.ImageService`, which the
ingress deployment builds over deployment handles and tests build over plain objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from serve_app.errors import install_error_handlers

if TYPE_CHECKING:
    from serve_app.api.service import ImageService

__all__ = ["create_api", "get_service"]


def get_service(request: Request) -> ImageService:
    """FastAPI dependency: the service the app was created with."""
    service: ImageService = request.app.state.service
    return service


def create_api(service: ImageService) -> FastAPI:
    """Builds the HTTP application around ``service``."""
    from serve_app.api import admin, assets, health, images

    app = FastAPI(
        title="limner",
        version="0.1.0",
        description="Images for tabletop RPG apps and the Experimance installation.",
    )
    app.state.service = service
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(images.router)
    app.include_router(assets.router)
    app.include_router(admin.router)
    return app
