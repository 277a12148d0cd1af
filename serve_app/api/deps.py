"""FastAPI dependencies: the edge the app was created with, and typed shortcuts to its services.

Routers import from here, never from ``api/app.py`` (which imports the routers). Each is ``async def``: FastAPI runs
a plain ``def`` dependency in its thread pool, a thread hop per dependency per request for a getter.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serve_app.image_service import ImageService
from serve_app.jobs.service import JobService
from serve_app.runtime import Edge
from serve_app.themes.service import ThemeService

__all__ = ["EdgeDep", "ImagesDep", "JobsDep", "ThemesDep", "get_edge", "get_images", "get_jobs", "get_themes"]


async def get_edge(request: Request) -> Edge:
    """The :class:`~serve_app.runtime.Edge` stored on the app (``app.state.edge``)."""
    edge: Edge = request.app.state.edge
    return edge


EdgeDep = Annotated[Edge, Depends(get_edge)]


async def get_jobs(edge: EdgeDep) -> JobService:
    return edge.jobs


async def get_images(edge: EdgeDep) -> ImageService:
    return edge.images


JobsDep = Annotated[JobService, Depends(get_jobs)]
ImagesDep = Annotated[ImageService, Depends(get_images)]


async def get_themes(edge: EdgeDep) -> ThemeService:
    return edge.themes


ThemesDep = Annotated[ThemeService, Depends(get_themes)]
