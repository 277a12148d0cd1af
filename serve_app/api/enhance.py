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

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serve_app.api.deps import EdgeDep
from serve_app.api.images import image_json
from serve_app.api.job_routes import add_job_route
from serve_app.api.protocol import ImageResponse
from serve_app.api.responses import IMAGES_PREFIX
from serve_app.enhance.models import FaceFixBody, RestyleBody, UpscaleBody
from serve_app.errors import InvalidRequest, error_responses
from serve_app.jobs.kinds.enhance import EnhanceRequest

__all__ = ["router"]

router = APIRouter(prefix=IMAGES_PREFIX, tags=["enhance"])


def _request(body: UpscaleBody | FaceFixBody | RestyleBody, image_id: str) -> EnhanceRequest:
    return EnhanceRequest(image_id, body)


add_job_route(
    router,
    "/{image_id}/upscale",
    kind="upscale",
    body=UpscaleBody,
    to_request=_request,
    path_params=("image_id",),
    summary="Upscale an image",
    description="`lanczos` resamples; `hires` (A1111's hires fix) resamples, then re-paints tiles of the model's "
    "native size by image-to-image with the image's own prompt and seed at `denoise`, blended with feathered "
    "overlaps; `model` runs an ESRGAN-family network (the configured weights; on the CPU profile a built-in small "
    "network). A result past `enhancer.max_pixels` is a 422 naming `scale`.",
)
add_job_route(
    router,
    "/{image_id}/face-fix",
    kind="face_fix",
    body=FaceFixBody,
    to_request=_request,
    path_params=("image_id",),
    summary="Re-paint the faces of an image",
    description="ADetailer's face pass: each detected face's padded box is re-painted at the model's native size "
    "with a face prompt built from the image's own (or, with `restorer: true`, run through the configured "
    "GFPGAN/CodeFormer-style restorer), then pasted back through a feathered mask; nothing outside the padded boxes "
    "changes. `result.data.faces` lists the boxes (none found: the version equals its source).",
)
add_job_route(
    router,
    "/{image_id}/restyle",
    kind="restyle",
    body=RestyleBody,
    to_request=_request,
    path_params=("image_id",),
    summary="Re-render an image into a theme",
    description="Image-to-image into the theme at `strength`; `keep_structure` also conditions the depth ControlNet "
    "on an edge map of the image (when the generator has one). The new version records the theme and its version.",
)


@router.post(
    "/uploads",
    summary="Store an image of your own",
    status_code=201,
    response_model=ImageResponse,
    responses=error_responses(413, 422),
)
async def upload(request: Request, edge: EdgeDep) -> JSONResponse:
    """The body is the image (PNG, JPEG or WebP); it is stored as PNG and answered like `GET /images/{id}`."""
    data = await request.body()
    if not data:
        raise InvalidRequest("the body is empty: send the image's bytes", param="body")
    image_id = await edge.stages.store_upload(data, "body", kind="upload")
    record = await edge.images.image(image_id)
    return JSONResponse(
        image_json(record, edge.images).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"{IMAGES_PREFIX}/{image_id}"},
    )
