"""Jobs of every kind: ``/api/v2/images/jobs``: list, read, cancel, and follow as Server-Sent Events.

Independent of the kind; each kind's route file submits (``POST``) through the same job service.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from serve_app.api.deps import EdgeDep, ImagesDep, JobsDep
from serve_app.api.protocol import JobList, JobResponse
from serve_app.api.responses import IMAGES_PREFIX, JOBS_PREFIX, job_response, job_with_asset
from serve_app.errors import InvalidRequest, error_responses
from serve_app.jobs.sql import TERMINAL_EVENTS

__all__ = ["router"]

router = APIRouter(prefix=JOBS_PREFIX, tags=["jobs"])


@router.get("", summary="List jobs, newest first", response_model=JobList, responses=error_responses(422))
async def list_jobs(
    jobs: JobsDep,
    status: Annotated[list[str] | None, Query(description="Only these statuses.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> JobList:
    page = await jobs.list(status, limit, cursor)
    return JobList(items=[job_response(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", summary="A job", response_model=JobResponse, responses=error_responses(404))
async def get_job(job_id: str, jobs: JobsDep, images: ImagesDep) -> JobResponse:
    return await job_with_asset(await jobs.get(job_id), images)


@router.delete("/{job_id}", summary="Cancel a job", response_model=JobResponse, responses=error_responses(404))
async def cancel_job(job_id: str, jobs: JobsDep) -> JobResponse:
    """A queued job is cancelled at once; a running one stops at its next denoising step."""
    return job_response(await jobs.cancel(job_id))


@router.get(
    "/{job_id}/events",
    summary="The job's events as Server-Sent Events",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(404)},
)
async def job_events(
    job_id: str,
    jobs: JobsDep,
    edge: EdgeDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """queued, started, progress (step, total), succeeded (with the images), failed, cancelled. Each event's
    `id` is its sequence number: reconnect with `Last-Event-ID` to resume after it. The stream ends after
    the job's final event.

    An idle stream gets a keep-alive comment (`: ping`) every `ingress.sse_ping_s` seconds. A stream open for
    `ingress.sse_max_s` seconds (default an hour) ends with a last event of type `timeout`, without an `id`
    and with data `{"after_s": <sse_max_s>}`, even though the job goes on: reconnect with `Last-Event-ID` to
    follow it further.
    """
    try:
        after = int(last_event_id) if last_event_id else 0
    except ValueError:
        raise InvalidRequest("Last-Event-ID must be an event id (an integer)", param="Last-Event-ID") from None
    await jobs.get(job_id)  # 404 before the stream starts
    ingress = edge.config.ingress

    async def stream() -> AsyncIterator[ServerSentEvent]:
        loop = asyncio.get_running_loop()
        until = loop.time() + ingress.sse_max_s
        async for event in jobs.events_of(job_id, after, until=until):
            data: dict[str, Any] = dict(event.data)
            if event.type == "succeeded" and data.get("image_id"):
                image = f"{IMAGES_PREFIX}/{data['image_id']}"
                data["links"] = {"image": image, "file": f"{image}/file"}
            yield ServerSentEvent(data=json.dumps(data), event=event.type, id=str(event.seq))
            if event.type in TERMINAL_EVENTS:
                return
        if loop.time() >= until:
            yield ServerSentEvent(data=json.dumps({"after_s": ingress.sse_max_s}), event="timeout")

    return EventSourceResponse(stream(), ping=ingress.sse_ping_s)
