"""Enhancement of any stored image, each a job whose result is a derived version (``parent_id`` = the source,
``version`` + 1; ``GET /api/v2/images/{id}/versions`` lists the chain):

- ``POST /api/v2/images/{id}/upscale``: ``scale``, ``method`` (lanczos | hires | model), ``denoise``, ``steps``,
  ``tile``, ``overlap``;
- ``POST /api/v2/images/{id}/face-fix``: ``strength``, ``padding``, ``max_faces``, ``feather``, ``detector``;
- ``POST /api/v2/images/{id}/restyle``: ``theme``, ``variation``, ``strength``, ``keep_structure``.

``POST /api/v2/images/uploads`` stores an image of the client's own (PNG, JPEG or WebP bytes as the body), so last
year's art can be upscaled or restyled too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from serve_app.api.deps import EdgeDep, ImagesDep, JobsDep
from serve_app.api.protocol import ImageResponse, JobResponse
from serve_app.api.responses import IMAGES_PREFIX, accept_job
from serve_app.enhance.models import FaceFixBody, RestyleBody, UpscaleBody
from serve_app.errors import InvalidRequest, error_responses
from serve_app.jobs.kinds.enhance import EnhanceRequest

__all__ = ["router"]

router = APIRouter(prefix=IMAGES_PREFIX, tags=["enhance"])

_WAIT = Query(ge=0, le=600, allow_inf_nan=False, description="Seconds to wait for the result.")
_PRIORITY = Query(ge=-100, le=100, description="Higher runs first; at most `jobs.max_client_priority`.")
_RESPONSES = {
    200: {"model": JobResponse, "description": "Finished within `wait`."},
    **error_responses(404, 409, 413, 422, 503),
}
_FORMAT = Query(pattern="^(png|webp|jpeg)$", description="Encoding of the result's asset link.")


async def _submit(
    kind: str,
    image_id: str,
    body: UpscaleBody | FaceFixBody | RestyleBody,
    jobs: JobsDep,
    images: ImagesDep,
    wait: float,
    priority: int | None,
    idempotency_key: str | None,
    format: str,
) -> JSONResponse:
    request = EnhanceRequest(image_id, body, format=format)
    return await accept_job(jobs, images, kind, request, wait=wait, priority=priority, idempotency_key=idempotency_key)


@router.post(
    "/{image_id}/upscale", summary="Upscale an image", status_code=202, response_model=JobResponse, responses=_RESPONSES
)
async def upscale(
    image_id: str,
    body: UpscaleBody,
    jobs: JobsDep,
    images: ImagesDep,
    wait: Annotated[float, _WAIT] = 0,
    priority: Annotated[int | None, _PRIORITY] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    format: Annotated[str, _FORMAT] = "png",
) -> JSONResponse:
    """`lanczos` resamples; `hires` (A1111's hires fix) resamples, then re-paints tiles of the model's native size
    by image-to-image with the image's own prompt and seed at `denoise`, blended with feathered overlaps; `model`
    runs an ESRGAN-family network (the configured weights; on the CPU profile a built-in small network). A result
    past `enhancer.max_pixels` is a 422 naming `scale`."""
    return await _submit("upscale", image_id, body, jobs, images, wait, priority, idempotency_key, format)


@router.post(
    "/{image_id}/face-fix",
    summary="Re-paint the faces of an image",
    status_code=202,
    response_model=JobResponse,
    responses=_RESPONSES,
)
async def face_fix(
    image_id: str,
    body: FaceFixBody,
    jobs: JobsDep,
    images: ImagesDep,
    wait: Annotated[float, _WAIT] = 0,
    priority: Annotated[int | None, _PRIORITY] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    format: Annotated[str, _FORMAT] = "png",
) -> JSONResponse:
    """ADetailer's face pass: each detected face's padded box is re-painted at the model's native size with a face
    prompt built from the image's own, then pasted back through a feathered mask; nothing outside the padded boxes
    changes. `result.data.faces` lists the boxes (none found: the version equals its source)."""
    return await _submit("face_fix", image_id, body, jobs, images, wait, priority, idempotency_key, format)


@router.post(
    "/{image_id}/restyle",
    summary="Re-render an image into a theme",
    status_code=202,
    response_model=JobResponse,
    responses=_RESPONSES,
)
async def restyle(
    image_id: str,
    body: RestyleBody,
    jobs: JobsDep,
    images: ImagesDep,
    wait: Annotated[float, _WAIT] = 0,
    priority: Annotated[int | None, _PRIORITY] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    format: Annotated[str, _FORMAT] = "png",
) -> JSONResponse:
    """Image-to-image into the theme at `strength`; `keep_structure` also conditions the depth ControlNet on an
    edge map of the image (when the generator has one). The new version records the theme and its version."""
    return await _submit("restyle", image_id, body, jobs, images, wait, priority, idempotency_key, format)


@router.post(
    "/uploads",
    summary="Store an image of your own",
    status_code=201,
    response_model=ImageResponse,
    responses=error_responses(413, 422),
)
async def upload(request: Request, edge: EdgeDep) -> JSONResponse:
    """The body is the image (PNG, JPEG or WebP); it is stored as PNG and answered like `GET /images/{id}`."""
    from serve_app.api.images import image_json

    data = await request.body()
    if not data:
        raise InvalidRequest("the body is empty: send the image's bytes", param="body")
    stages = edge.stages
    sha = await stages.put_png(data, "body")
    png = await stages.services.store.get(sha, "png")
    from pipelines import encode

    width, height = encode.decode(png).size
    image_id = await stages.store_image(png, width=width, height=height, kind="upload", request_hash=f"upload:{sha}")
    record = await edge.images.image(image_id)
    return JSONResponse(
        image_json(record, edge.images).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"{IMAGES_PREFIX}/{image_id}"},
    )
