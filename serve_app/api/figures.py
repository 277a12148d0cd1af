"""Portraits, creatures and items: ``POST /api/v2/images/{portraits,creatures,items}`` (answered like any job:
202 with links, or 200 with ``?wait=``), and ``GET /api/v2/images/subjects/{key}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from serve_app.api.deps import EdgeDep
from serve_app.api.job_routes import add_job_route
from serve_app.api.protocol.figures import CreatureRequest, ItemRequest, PortraitRequest, SubjectResponse
from serve_app.api.responses import IMAGES_PREFIX
from serve_app.errors import error_responses
from serve_app.jobs.kinds.figure import FigureRequest

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/images", tags=["figures"])


def _figure_request(body: PortraitRequest | CreatureRequest | ItemRequest) -> FigureRequest:
    return FigureRequest(body.to_spec(), enhance=tuple(body.enhance), backend=body.backend)


add_job_route(
    router,
    "/portraits",
    kind="portrait",
    body=PortraitRequest,
    to_request=_figure_request,
    summary="A character portrait job",
    description="A character in the theme's look: `framing` picks the size and camera; `variations` makes up to 8 "
    "images of one seed family in one batch; `subject_key` keeps the same face next time. The job's `result.data` "
    "states the composed prompts, the theme version and the seeds.",
)
add_job_route(
    router,
    "/creatures",
    kind="creature",
    body=CreatureRequest,
    to_request=_figure_request,
    summary="An NPC or monster job",
    description="The size category drives the framing and a scale cue in the prompt; `token: true` adds a round "
    "token per image (transparent outside its ring), listed in `result.data.variations[i].token_image_id`.",
)
add_job_route(
    router,
    "/items",
    kind="item",
    body=ItemRequest,
    to_request=_figure_request,
    summary="An item illustration job",
    description="`rarity` maps to quality words and a rarity colour; `card: true` draws an item card, "
    "`size_reference` a scale cue whose real length is in `result.data`.",
)


@router.get(
    "/subjects/{key:path}",
    summary="A recurring subject",
    response_model=SubjectResponse,
    responses=error_responses(404),
)
async def subject(key: Annotated[str, Path(max_length=128)], edge: EdgeDep) -> SubjectResponse:
    """What the first request with this key recorded (seed base, descriptors) and the images made for it."""
    record = await edge.subjects.get(key)
    images = await edge.subjects.images(key)
    return SubjectResponse(
        key=record.key,
        kind=record.kind,
        seed_base=record.seed_base,
        descriptors=record.descriptors,
        created_at=record.created_at,
        updated_at=record.updated_at,
        images=[
            {
                "id": str(i.id),
                "kind": i.kind,
                "seed": i.seed,
                "created_at": i.created_at.isoformat(),
                "links": {"self": f"{IMAGES_PREFIX}/{i.id}", "file": f"{IMAGES_PREFIX}/{i.id}/file"},
            }
            for i in images
        ],
    )
