"""Image metadata and files: ``/api/v2/images/{image_id}``, its bytes, its versions, soft deletion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from pipelines.encode import FORMATS
from serve_app.api.deps import ImagesDep
from serve_app.api.protocol import ImageResponse
from serve_app.api.responses import IMAGES_PREFIX, asset_response
from serve_app.errors import error_responses
from serve_app.image_service import ImageService
from serve_app.images import ImageRecord

__all__ = ["image_json", "router"]

router = APIRouter(prefix=IMAGES_PREFIX, tags=["images"])


def image_json(image: ImageRecord, images: ImageService) -> ImageResponse:
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
        backend=image.backend,
        cost_usd=image.cost_usd,
        created_at=image.created_at,
        links={
            "self": f"{IMAGES_PREFIX}/{image.id}",
            "file": f"{IMAGES_PREFIX}/{image.id}/file",
            "asset": images.asset_url(image.content_hash, image.format),
            "versions": f"{IMAGES_PREFIX}/{image.id}/versions",
        },
    )


@router.get("/{image_id}", summary="An image's metadata", response_model=ImageResponse, responses=error_responses(404))
async def get_image(image_id: str, images: ImagesDep) -> ImageResponse:
    return image_json(await images.image(image_id), images)


@router.get(
    "/{image_id}/file",
    summary="An image's bytes",
    response_class=Response,
    responses={
        200: {"content": {m: {} for m in FORMATS.values()}},
        206: {"description": "The requested byte range (several ranges or another unit: the whole file)."},
        304: {"description": "Not modified (If-None-Match matched)."},
        416: {"description": "The range starts past the end; `Content-Range` gives the length."},
        **error_responses(404, 422),
    },
)
async def get_image_file(
    image_id: str,
    images: ImagesDep,
    format: Annotated[str | None, Query(pattern="^(png|webp|jpeg)$", description="Default: as stored.")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
    range: Annotated[str | None, Header()] = None,
) -> Response:
    image = await images.image(image_id)
    return await asset_response(images, image.content_hash, format or image.format, if_none_match, range)


@router.get(
    "/{image_id}/versions",
    summary="The image and every image derived from it",
    response_model=list[ImageResponse],
    responses=error_responses(404),
)
async def get_versions(image_id: str, images: ImagesDep) -> list[ImageResponse]:
    return [image_json(v, images) for v in await images.versions(image_id)]


@router.delete("/{image_id}", summary="Soft-delete an image", status_code=204, responses=error_responses(404))
async def delete_image(image_id: str, images: ImagesDep) -> Response:
    await images.delete(image_id)
    return Response(status_code=204)
