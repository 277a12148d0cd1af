"""Response shaping shared by the routers: asset bytes (ETag, 304, byte ranges) and job documents."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response

from pipelines.encode import FORMATS
from serve_app.api.protocol import JobResponse, JobResult
from serve_app.errors import InvalidRequest, NotFound
from serve_app.image_service import Asset, ImageService
from serve_app.jobs import JobRecord
from serve_app.jobs.kinds import payload_summary
from serve_app.jobs.service import JobService, SubmitOptions, result_of

__all__ = [
    "IMAGES_PREFIX",
    "IMMUTABLE",
    "JOBS_PREFIX",
    "Unsatisfiable",
    "accept_job",
    "asset_response",
    "job_response",
    "job_with_asset",
    "parse_range",
]

IMMUTABLE = "public, max-age=31536000, immutable"
IMAGES_PREFIX = "/api/v2/images"
JOBS_PREFIX = f"{IMAGES_PREFIX}/jobs"


class Unsatisfiable(Exception):
    """A byte range that lies wholly past the end of the asset (answered 416)."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive ``(start, end)`` of a ``Range`` header over ``size`` bytes, or None to ignore it.

    One range is served: ``bytes=a-b``, ``bytes=a-``, ``bytes=-n``. Anything else (another unit, several
    ranges, a header that is not valid syntax) is ignored and the whole asset answered, as RFC 9110 allows
    (section 14.2: a server may ignore ``Range``; it must ignore a unit it does not understand).

    Raises:
        Unsatisfiable: A valid single range that selects no byte (it starts at or past the end, or ``-0``).
    """
    unit, eq, spec = header.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not all(part == "" or (part.isascii() and part.isdigit()) for part in (first, last)):
        return None
    if first == "":
        if last == "":
            return None
        n = _position(last)
        if n == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(0, size - n), size - 1
    start = _position(first)
    if last and _position(last) < start:
        return None  # not valid syntax (RFC 9110 14.1.1): ignored
    end = _position(last) if last else size - 1
    if start >= size:
        raise Unsatisfiable(header)
    return start, min(end, size - 1)


def _position(digits: str) -> int:
    # Beyond 2**62 every position is past any asset; int() of thousands of digits would raise.
    return int(digits) if len(digits) <= 18 else 2**62


async def asset_response(
    images: ImageService, sha256: str, ext: str, if_none_match: str | None, range_header: str | None
) -> Response:
    """The HTTP answer for an asset: 304 on a matching ETag, 206 for a byte range (only those bytes are read
    from the store), else 200 with the whole asset.

    Raises:
        ServiceError: 404 when nothing is stored under the key, 422 for a malformed key.
    """
    ext = "jpeg" if ext == "jpg" else ext
    etag = Asset(b"", sha256, ext).etag
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    media = FORMATS.get(ext, "application/octet-stream")
    if if_none_match and (if_none_match.strip() == "*" or etag in [t.strip() for t in if_none_match.split(",")]):
        await images.asset_size(sha256, ext)  # 404 for an asset that is not (or no longer) there
        return Response(status_code=304, headers=headers)
    if range_header:
        size = await images.asset_size(sha256, ext)
        try:
            span = parse_range(range_header, size)
        except Unsatisfiable:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if span is not None:
            start, end = span
            data = await images.asset_range(sha256, ext, start, end)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return Response(data, status_code=206, media_type=media, headers=headers)
    asset = await images.asset(sha256, ext)
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
        backend=job.backend,
        cost_usd=job.cost_usd,
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
    """:func:`job_response` plus the ``asset`` link of the main image, in the format the client asked for.

    A job whose image was deleted since still answers (what it did is history): ``image_deleted`` is true,
    and the ``image``, ``file`` and ``asset`` links, which would answer 404, are left out.
    """
    out = job_response(job)
    if job.result_image_id is not None:
        try:
            image = await images.image(str(job.result_image_id))
        except NotFound:
            out.image_deleted = True
            for link in ("image", "file", "asset"):
                out.links.pop(link, None)
            return out
        out.links["asset"] = images.asset_url(image.content_hash, payload_summary(job.payload).format)
    return out


async def accept_job(
    jobs: JobService,
    images: ImageService,
    kind: str,
    request: Any,
    *,
    wait: float,
    priority: int | None,
    idempotency_key: str | None,
    deadline_s: float | None = None,
    webhook_url: str | None = None,
    webhook_on_start: bool = False,
) -> JSONResponse:
    """Submits a job of ``kind`` as a kind's ``POST`` route does, and answers it: 202 with the job and a
    ``Location``, or 200 with the finished job when it finishes within ``wait`` seconds.

    Raises:
        InvalidRequest: ``priority`` is above ``jobs.max_client_priority`` (what runs above it is the
            installation's: no HTTP client outranks it), or above the caller's key's ``max_priority``.
    """
    cap = jobs.max_priority()
    if priority is not None and priority > cap:
        raise InvalidRequest(f"priority={priority} is not allowed: at most {cap}", param="priority")
    options = SubmitOptions(
        priority=jobs.config.http_priority if priority is None else priority,
        idempotency_key=idempotency_key,
        deadline_s=deadline_s,
        webhook_url=webhook_url,
        webhook_on_start=webhook_on_start,
    )
    job, _ = await jobs.submit(kind, request, options)
    status = 202
    if wait > 0:
        job = await jobs.wait(job.id, wait)
        if job.status.is_final:
            status = 200
    out = await job_with_asset(job, images)
    location = {"Location": f"{JOBS_PREFIX}/{job.id}"}
    return JSONResponse(out.model_dump(mode="json"), status_code=status, headers=location)
