"""Operator endpoints: ``/api/v2/admin``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from serve_app.api.app import get_service
from serve_app.api.service import ImageService
from serve_app.errors import NotFound

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/admin", tags=["admin"])


@router.get("/generator/stats", summary="Batching statistics of a generator replica")
async def generator_stats(service: Annotated[ImageService, Depends(get_service)]) -> dict[str, Any]:
    """Batch-size histogram and recent calls (key, size, seconds) of the replica that answered."""
    return await service.generator_stats()


@router.get("/cache/stats", summary="Result and hot-asset cache counters of this ingress replica")
async def cache_stats(service: Annotated[ImageService, Depends(get_service)]) -> dict[str, Any]:
    """Hits, misses, coalesced waits and evictions."""
    results = getattr(service.services.results, "stats", None)
    hot = getattr(service.services.hot_assets, "stats", None)
    return {
        "results": results.as_dict() if hasattr(results, "as_dict") else vars(results) if results else {},
        "hot_assets": hot.as_dict() if hasattr(hot, "as_dict") else vars(hot) if hot else {},
        "jobs": {"queued": service.dispatcher.queued_estimate, "running_here": service.dispatcher.running},
    }


@router.get("/zmq/stats", summary="Counters of the Experimance ZMQ bridge")
async def zmq_stats(service: Annotated[ImageService, Depends(get_service)]) -> dict[str, Any]:
    """Requests, replies, fallbacks (by cause), drops (by reason), queue and generation latency sums."""
    if service.bridge_stats is None:
        raise NotFound("The ZMQ bridge is not deployed (zmq_bridge is off in the config).")
    return await service.bridge_stats()
