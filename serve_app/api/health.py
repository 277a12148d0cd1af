"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from serve_app.api.deps import EdgeDep
from serve_app.api.protocol import ReadyResponse
from serve_app.errors import NotReady, error_responses

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    """Answers 200 as long as the ingress runs, whatever the model's state."""
    return {"status": "ok"}


@router.get("/readyz", summary="The generator can serve", response_model=ReadyResponse, responses=error_responses(503))
async def readyz(edge: EdgeDep) -> ReadyResponse:
    """Answers 200 once a generator replica has its model loaded and warm, 503 before."""
    info = await edge.handles.readiness()
    if info is None:
        raise NotReady("The model is still loading.", headers={"Retry-After": "5"})
    return ReadyResponse(model=info["model"], device=info["device"])
