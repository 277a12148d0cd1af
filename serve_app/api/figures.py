"""Portraits, creatures and items: ``POST /api/v2/images/{portraits,creatures,items}`` (answered like any job:
202 with links, or 200 with ``?wait=``), and ``GET /api/v2/images/subjects/{key}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse

from serve_app.api.deps import EdgeDep, ImagesDep, JobsDep
from serve_app.api.protocol import JobResponse
from serve_app.api.protocol.figures import CreatureRequest, ItemRequest, PortraitRequest, SubjectResponse
from serve_app.api.responses import IMAGES_PREFIX, accept_job
from serve_app.errors import error_responses
from serve_app.image_service import ImageService
from serve_app.jobs.kinds.figure import FigureRequest
from serve_app.jobs.service import JobService

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/images", tags=["figures"])

_WAIT = Query(ge=0, le=600, allow_inf_nan=False, description="Seconds to wait for the result.")
_PRIORITY = Query(ge=-100, le=100, description="Higher runs first; at most `jobs.max_client_priority`.")
_RESPONSES = {
    200: {"model": JobResponse, "description": "Finished within `wait`."},
    **error_responses(404, 409, 413, 422, 503),
}


async def _submit(
    kind: str,
    body: PortraitRequest | CreatureRequest | ItemRequest,
    jobs: JobService,
    images: ImageService,
    wait: float,
    priority: int | None,
    idempotency_key: str | None,
) -> JSONResponse:
    request = FigureRequest(body.to_spec(), enhance=tuple(body.enhance))
    return await accept_job(jobs, images, kind, request, wait=wait, priority=priority, idempotency_key=idempotency_key)


@router.post(
    "/portraits", summary="A character portrait job", status_code=202, response_model=JobResponse, responses=_RESPONSES
)
async def portrait(
    body: PortraitRequest,
    jobs: JobsDep,
    images: ImagesDep,
    wait: Annotated[float, _WAIT] = 0,
    priority: Annotated[int | None, _PRIORITY] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """A character in the theme's look: `framing` picks the size and camera; `variations` makes up to 8
    images of one seed family in one batch; `subject_key` keeps the same face next time. The job's
    `result.data` states the composed prompts, the theme version and the seeds."""
    return await _submit("portrait", body, jobs, images, wait, priority, idempotency_key)


@router.post(
    "/creatures", summary="An NPC or monster job", status_code=202, response_model=JobResponse, responses=_RESPONSES
)
async def creature(
    body: CreatureRequest,
    jobs: JobsDep,
    images: ImagesDep,
    wait: Annotated[float, _WAIT] = 0,
    priority: Annotated[int | None, _PRIORITY] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """The size category drives the framing and a scale cue in the prompt; `token: true` adds a round token
    per image (transparent outside its ring), listed in `result.data.variations[i].token_image_id`."""
    return await _submit("creature", body, jobs, images, wait, priority, idempotency_key)


@router.post(
    "/items", summary="An item illustration job", status_code=202, response_model=JobResponse, responses=_RESPONSES
)
async def item(
    body: ItemRequest,
    jobs: JobsDep,
    images: ImagesDep,
    wait: Annotated[float, _WAIT] = 0,
    priority: Annotated[int | None, _PRIORITY] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """`rarity` maps to quality words and a rarity colour; `card: true` draws an item card, `size_reference` a
    scale cue whose real length is in `result.data`."""
    return await _submit("item", body, jobs, images, wait, priority, idempotency_key)


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
