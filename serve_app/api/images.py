"""The images API: ``/api/v2/images``: generate, jobs, image metadata and files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from pipelines.encode import FORMATS
from serve_app.api.app import get_service
from serve_app.api.assets import asset_response
from serve_app.api.protocol import GenerateImageRequest, ImageResponse, JobList, JobResponse
from serve_app.api.service import ImageService
from serve_app.errors import InvalidRequest, error_responses
from serve_app.images import ImageRecord
from serve_app.jobs import JobRecord
from serve_app.schemas import PartialRequest

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/images", tags=["images"])
Service = Annotated[ImageService, Depends(get_service)]

_PREFIX = "/api/v2/images"


def _partial(body: GenerateImageRequest) -> PartialRequest:
    return PartialRequest(**body.model_dump(exclude={"format"}))


def _job_json(job: JobRecord) -> JobResponse:
    links = {"self": f"{_PREFIX}/jobs/{job.id}", "events": f"{_PREFIX}/jobs/{job.id}/events"}
    if job.result_image_id is not None:
        links["image"] = f"{_PREFIX}/{job.result_image_id}"
        links["file"] = f"{_PREFIX}/{job.result_image_id}/file"
    return JobResponse(
        id=str(job.id),
        kind=job.kind,
        status=job.status.value,  # type: ignore[arg-type]
        priority=job.priority,
        progress=job.progress,
        step=job.progress_step,
        total=job.progress_total,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        error=job.error,
        source=job.source.value,
        request_hash=job.payload.get("request_hash"),
        image_id=None if job.result_image_id is None else str(job.result_image_id),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        deadline=job.deadline,
        links=links,
    )


async def _job_with_asset(job: JobRecord, service: ImageService) -> JobResponse:
    out = _job_json(job)
    if job.result_image_id is not None:
        image = await service.image(str(job.result_image_id))
        out.links["asset"] = service.asset_url(image.content_hash, job.payload.get("format", "png"))
    return out


def _image_json(image: ImageRecord, service: ImageService) -> ImageResponse:
    return ImageResponse(
        id=str(image.id),
        kind=image.kind,
        prompt=image.prompt,
        negative_prompt=image.negative_prompt,
        seed=image.seed,
        settings=image.settings,
        theme_id=None if image.theme_id is None else str(image.theme_id),
        model=image.model,
        width=image.width,
        height=image.height,
        content_hash=image.content_hash,
        format=image.format,
        parent_id=None if image.parent_id is None else str(image.parent_id),
        version=image.version,
        created_at=image.created_at,
        links={
            "self": f"{_PREFIX}/{image.id}",
            "file": f"{_PREFIX}/{image.id}/file",
            "asset": service.asset_url(image.content_hash, image.format),
            "versions": f"{_PREFIX}/{image.id}/versions",
        },
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
        **error_responses(422, 500, 503, 504),
    },
)
async def generate(body: GenerateImageRequest, service: Service) -> Response:
    """Generates one image (as a durable, high-priority job) and answers with its bytes.

    The same request with the same seed gives the same image (and is served from the result cache once made);
    `X-Request-Hash` is its canonical hash.
    """
    job, image, data = await service.generate(_partial(body), body.format)
    return Response(
        content=data,
        media_type=FORMATS[body.format],
        headers={
            "X-Seed": str(image.seed),
            "X-Request-Hash": str(job.payload.get("request_hash")),
            "X-Image-Id": str(image.id),
            "X-Job-Id": str(job.id),
        },
    )


@router.post(
    "/jobs",
    summary="Accept a generation job",
    status_code=202,
    response_model=JobResponse,
    responses={200: {"model": JobResponse, "description": "Finished within `wait`."}, **error_responses(409, 422, 503)},
)
async def submit_job(
    body: GenerateImageRequest,
    service: Service,
    wait: Annotated[float, Query(ge=0, le=600, description="Seconds to wait for the result.")] = 0,
    priority: Annotated[int | None, Query(ge=-100, le=100, description="Higher runs first.")] = None,
    deadline_s: Annotated[float | None, Query(gt=0, description="Fail unless started within this.")] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Commits the job before answering 202 with its id and links (`Location` points at it). With
    `wait=S`, answers 200 with the finished job if it finishes within S seconds. The same
    `Idempotency-Key` with the same body returns the same job; with another body, 409.
    """
    job, _ = await service.submit(
        _partial(body),
        body.format,
        priority=service.config.http_priority if priority is None else priority,
        idempotency_key=idempotency_key,
        deadline_s=deadline_s,
    )
    status = 202
    if wait > 0:
        job = await service.wait(job.id, wait)
        if job.status in ("succeeded", "failed", "cancelled", "dead"):
            status = 200
    out = await _job_with_asset(job, service)
    return JSONResponse(
        out.model_dump(mode="json"), status_code=status, headers={"Location": f"{_PREFIX}/jobs/{job.id}"}
    )


@router.get("/jobs", summary="List jobs, newest first", response_model=JobList, responses=error_responses(422))
async def list_jobs(
    service: Service,
    status: Annotated[list[str] | None, Query(description="Only these statuses.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> JobList:
    page = await service.jobs(status, limit, cursor)
    return JobList(items=[_job_json(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/jobs/{job_id}", summary="A job", response_model=JobResponse, responses=error_responses(404))
async def get_job(job_id: str, service: Service) -> JobResponse:
    return await _job_with_asset(await service.job(job_id), service)


@router.delete("/jobs/{job_id}", summary="Cancel a job", response_model=JobResponse, responses=error_responses(404))
async def cancel_job(job_id: str, service: Service) -> JobResponse:
    """A queued job is cancelled at once; a running one stops at its next denoising step."""
    return _job_json(await service.cancel(job_id))


@router.get(
    "/jobs/{job_id}/events",
    summary="The job's events as Server-Sent Events",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(404)},
)
async def job_events(
    job_id: str,
    service: Service,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """queued, started, progress (step, total), succeeded (with the image), failed, cancelled. Each event's
    `id` is its sequence number: reconnect with `Last-Event-ID` to resume after it. The stream ends after
    the job's final event.
    """
    try:
        after = int(last_event_id) if last_event_id else 0
    except ValueError:
        raise InvalidRequest("Last-Event-ID must be an event id (an integer)", param="Last-Event-ID") from None
    await service.job(job_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for event in service.events(job_id, after):
            data: dict[str, Any] = dict(event.data)
            if event.type == "succeeded" and data.get("image_id"):
                data["links"] = {"image": f"{_PREFIX}/{data['image_id']}", "file": f"{_PREFIX}/{data['image_id']}/file"}
            yield ServerSentEvent(data=json.dumps(data), event=event.type, id=str(event.seq))

    return EventSourceResponse(stream(), ping=15)


@router.get("/{image_id}", summary="An image's metadata", response_model=ImageResponse, responses=error_responses(404))
async def get_image(image_id: str, service: Service) -> ImageResponse:
    return _image_json(await service.image(image_id), service)


@router.get(
    "/{image_id}/file",
    summary="An image's bytes",
    response_class=Response,
    responses={200: {"content": {m: {} for m in FORMATS.values()}}, **error_responses(404, 422)},
)
async def get_image_file(
    image_id: str,
    service: Service,
    format: Annotated[str | None, Query(pattern="^(png|webp|jpeg)$", description="Default: as stored.")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
    range: Annotated[str | None, Header()] = None,
) -> Response:
    image = await service.image(image_id)
    asset = await service.asset(image.content_hash, format or image.format)
    return asset_response(asset, if_none_match, range)


@router.get(
    "/{image_id}/versions",
    summary="The image and every image derived from it",
    response_model=list[ImageResponse],
    responses=error_responses(404),
)
async def get_versions(image_id: str, service: Service) -> list[ImageResponse]:
    return [_image_json(v, service) for v in await service.versions(image_id)]


@router.delete("/{image_id}", summary="Soft-delete an image", status_code=204, responses=error_responses(404))
async def delete_image(image_id: str, service: Service) -> Response:
    await service.delete_image(image_id)
    return Response(status_code=204)
