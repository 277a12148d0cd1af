"""The generate kind's routes: ``POST /api/v2/images/generate`` (answers the bytes) and
``POST /api/v2/images/jobs`` (answers the job)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from pipelines.encode import FORMATS
from serve_app.api.deps import ImagesDep, JobsDep
from serve_app.api.job_routes import WEBHOOK, WEBHOOK_ON_START
from serve_app.api.protocol import GenerateImageRequest, JobResponse
from serve_app.api.responses import accept_job
from serve_app.errors import BODY_ERRORS, error_responses
from serve_app.jobs.kinds.generate import GenerateRequest
from serve_app.jobs.service import SubmitOptions
from serve_app.schemas import PartialRequest

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/images", tags=["images"])

MAX_DEADLINE_S = 30 * 86400.0
"""Longest ``deadline_s`` (a timedelta of it, added to now, stays far inside ``datetime``'s range)."""


def to_request(body: GenerateImageRequest) -> GenerateRequest:
    """The HTTP body as the generate kind's request."""
    partial = PartialRequest(**body.model_dump(exclude={"format", "theme", "variation", "enhance", "backend"}))
    return GenerateRequest(
        partial,
        format=body.format,
        theme=body.theme,
        variation=body.variation,
        enhance=tuple(body.enhance),
        backend=body.backend,
    )


@router.post(
    "/generate",
    summary="Generate an image and return its bytes",
    response_class=Response,
    responses={
        200: {
            "content": {media: {} for media in FORMATS.values()},
            "description": "The image. `X-Seed`, `X-Request-Hash`, `X-Image-Id` and `X-Job-Id` identify it.",
        },
        **error_responses(*BODY_ERRORS, 404, 500, 503, 504),
    },
)
async def generate(body: GenerateImageRequest, jobs: JobsDep, images: ImagesDep) -> Response:
    """Generates one image (as a durable, high-priority job) and answers with its bytes.

    The same request with the same seed gives the same image (and is served from the result cache once made);
    `X-Request-Hash` is its canonical hash.
    """
    config = jobs.config
    job, payload = await jobs.submit("generate", to_request(body), SubmitOptions(priority=config.generate_priority))
    result = await jobs.result(job.id, config.generate_timeout_s)
    assert result.image_id is not None  # a generate job always makes one image
    image, asset = await images.image_bytes(result.image_id, body.format)
    return Response(
        content=asset.data,
        media_type=FORMATS[body.format],
        headers={
            "X-Seed": str(image.seed),
            "X-Request-Hash": str(payload.request_hash),
            "X-Image-Id": str(image.id),
            "X-Job-Id": str(job.id),
        },
    )


@router.post(
    "/jobs",
    summary="Accept a generation job",
    status_code=202,
    response_model=JobResponse,
    responses={
        200: {"model": JobResponse, "description": "Finished within `wait`."},
        **error_responses(*BODY_ERRORS, 404, 409, 503),
    },
)
async def submit_job(
    body: GenerateImageRequest,
    jobs: JobsDep,
    images: ImagesDep,
    wait: Annotated[float, Query(ge=0, le=600, allow_inf_nan=False, description="Seconds to wait for the result.")] = 0,
    priority: Annotated[
        int | None,
        Query(ge=-100, le=100, description="Higher runs first; at most `jobs.max_client_priority` (default 40)."),
    ] = None,
    deadline_s: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_DEADLINE_S,
            allow_inf_nan=False,
            description="Fail unless started within this many seconds (at most 30 days).",
        ),
    ] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    webhook_url: WEBHOOK = None,
    webhook_on_start: WEBHOOK_ON_START = False,
) -> Response:
    """Commits the job before answering 202 with its id and links (`Location` points at it). With
    `wait=S`, answers 200 with the finished job if it finishes within S seconds. The same
    `Idempotency-Key` with the same body returns the same job; with another body, 409.
    """
    return await accept_job(
        jobs,
        images,
        "generate",
        to_request(body),
        wait=wait,
        priority=priority,
        idempotency_key=idempotency_key,
        deadline_s=deadline_s,
        webhook_url=webhook_url,
        webhook_on_start=webhook_on_start,
    )
