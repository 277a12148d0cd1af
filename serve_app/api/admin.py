"""Operator endpoints: ``/api/v2/admin``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from serve_app.api.deps import EdgeDep
from serve_app.errors import NotFound, error_responses, from_exception

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


@router.get("/zmq/stats", summary="Counters of the Experimance ZMQ bridge", responses=error_responses(404))
async def zmq_stats(edge: EdgeDep) -> dict[str, Any]:
    """Requests, replies, fallbacks (by cause), drops (by reason), queue and generation latency sums."""
    if edge.handles.bridge_stats is None:
        raise NotFound("The ZMQ bridge is not deployed (zmq_bridge is off in the config).")
    return await edge.handles.bridge_stats()


@router.get(
    "/costs",
    summary="What the paid APIs cost, by backend and by source",
    responses=error_responses(404, 422),
)
async def costs(edge: EdgeDep, since: datetime | None = None) -> dict[str, Any]:
    """``{since, total_usd, by_backend, by_source, budgets}`` of every paid image since ``since`` (ISO 8601; an
    aware time, or UTC when it names no zone; default: the start of today, UTC). ``budgets`` gives each configured
    backend's daily budget and what is left of it today."""
    from serve_app.remote.ledger import start_of_day

    if since is None:
        since = start_of_day()
    elif since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    ledger, router = edge.stages.ledger, edge.stages.router
    if ledger is None:
        raise NotFound("This service keeps no cost ledger.")
    summary = await ledger.summary(since)
    budgets: dict[str, Any] = {}
    for name, entry in edge.config.remote.configured.items():
        left = None if router is None else await router.budget_left(name)
        budgets[name] = {"daily_budget_usd": entry.daily_budget_usd, "left_today_usd": left}
    return {**summary, "budgets": budgets}


@router.get("/remote/stats", summary="Counters of each configured paid API", responses=error_responses(404))
async def remote_stats(edge: EdgeDep) -> dict[str, Any]:
    """Per backend: images made, calls, retries, failures, in flight and the circuit's state."""
    remote = edge.handles.remote
    if remote is None:
        raise NotFound("No remote backend is configured (remote: in the config).")
    stats: dict[str, Any] = await remote.stats()
    return stats
