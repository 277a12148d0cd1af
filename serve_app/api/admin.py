"""Operator endpoints: ``/api/v2/admin``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serve_app.api.deps import EdgeDep
from serve_app.errors import NotFound, from_exception

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/admin", tags=["admin"])


@router.get("/generator/stats", summary="Batching statistics of a generator replica")
async def generator_stats(edge: EdgeDep) -> dict[str, Any]:
    """Batch-size histogram and recent calls (key, size, seconds) of the replica that answered."""
    try:
        return await edge.handles.generator_stats()
    except Exception as exc:
        raise from_exception(exc) from exc


@router.get("/cache/stats", summary="Result and hot-asset cache counters of this ingress replica")
async def cache_stats(edge: EdgeDep) -> dict[str, Any]:
    """Hits, misses, coalesced waits and evictions, and the job queue as this replica sees it."""
    services = edge.services
    return {
        "results": services.results.stats.as_dict(),
        "hot_assets": services.hot_assets.stats.as_dict(),
        "jobs": {"queued": edge.dispatcher.queued_estimate, "running_here": edge.dispatcher.running},
    }


@router.get("/zmq/stats", summary="Counters of the Experimance ZMQ bridge")
async def zmq_stats(edge: EdgeDep) -> dict[str, Any]:
    """Requests, replies, fallbacks (by cause), drops (by reason), queue and generation latency sums."""
    if edge.handles.bridge_stats is None:
        raise NotFound("The ZMQ bridge is not deployed (zmq_bridge is off in the config).")
    return await edge.handles.bridge_stats()
