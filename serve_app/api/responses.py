"""Response shaping shared by the routers: asset bytes (ETag, 304, byte ranges) and job documents."""

from __future__ import annotations

from fastapi.responses import Response

from pipelines.encode import FORMATS
from serve_app.api.protocol import JobResponse, JobResult
from serve_app.image_service import Asset, ImageService
from serve_app.jobs import JobRecord
from serve_app.jobs.kinds import payload_summary
from serve_app.jobs.service import result_of

__all__ = [
    "IMAGES_PREFIX",
    "IMMUTABLE",
    "JOBS_PREFIX",
    "asset_response",
    "job_response",
    "job_with_asset",
    "parse_range",
]

IMMUTABLE = "public, max-age=31536000, immutable"
IMAGES_PREFIX = "/api/v2/images"
JOBS_PREFIX = f"{IMAGES_PREFIX}/jobs"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` → inclusive (start, end); None if unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            start, end = max(0, size - n), size - 1
        else:
            start = int(first)
            end = int(last) if last else size - 1
    except ValueError:
        return None
    end = min(end, size - 1)
    return (start, end) if 0 <= start <= end else None


def asset_response(asset: Asset, if_none_match: str | None, range_header: str | None) -> Response:
    """The HTTP answer for an asset: 304 on a matching ETag, 206 for a byte range, else 200."""
    headers = {"ETag": asset.etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    media = FORMATS.get(asset.ext, "application/octet-stream")
    if if_none_match and (if_none_match.strip() == "*" or asset.etag in [t.strip() for t in if_none_match.split(",")]):
        return Response(status_code=304, headers=headers)
    if range_header:
        size = len(asset.data)
        span = parse_range(range_header, size)
        if span is None:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(asset.data[start : end + 1], status_code=206, media_type=media, headers=headers)
    return Response(asset.data, media_type=media, headers=headers)


def job_response(job: JobRecord) -> JobResponse:
    """The document ``GET /jobs/{id}`` answers, whatever the job's kind."""
    links = {"self": f"{JOBS_PREFIX}/{job.id}", "events": f"{JOBS_PREFIX}/{job.id}/events"}
    if job.result_image_id is not None:
        links["image"] = f"{IMAGES_PREFIX}/{job.result_image_id}"
        links["file"] = f"{IMAGES_PREFIX}/{job.result_image_id}/file"
    result = result_of(job)
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
        error_type=job.error_type,
        error_param=job.error_param,
        source=job.source.value,
        request_hash=payload_summary(job.payload).request_hash,
        image_id=None if job.result_image_id is None else str(job.result_image_id),
        result=None if result is None else JobResult(images=list(result.images), data=result.data),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        deadline=job.deadline,
        links=links,
    )


async def job_with_asset(job: JobRecord, images: ImageService) -> JobResponse:
    """:func:`job_response` plus the ``asset`` link of the main image, in the format the client asked for."""
    out = job_response(job)
    if job.result_image_id is not None:
        image = await images.image(str(job.result_image_id))
        out.links["asset"] = images.asset_url(image.content_hash, payload_summary(job.payload).format)
    return out
