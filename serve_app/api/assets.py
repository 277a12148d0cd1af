"""Content-addressed assets: ``/api/v2/assets/{sha256}.{ext}``. Immutable, cacheable forever."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response

from pipelines.encode import FORMATS
from serve_app.api.deps import ImagesDep
from serve_app.api.responses import asset_response
from serve_app.errors import InvalidRequest, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/assets", tags=["assets"])


@router.get(
    "/{name}",
    summary="An asset's bytes, by content hash",
    response_class=Response,
    responses={
        200: {"content": {m: {} for m in FORMATS.values()}, "description": "The bytes; ETag, immutable caching."},
        206: {"description": "The requested byte range (several ranges or another unit: the whole file)."},
        304: {"description": "Not modified (If-None-Match matched)."},
        416: {"description": "The range starts past the end; `Content-Range` gives the length."},
        **error_responses(404, 422),
    },
)
async def get_asset(
    name: str,
    images: ImagesDep,
    if_none_match: Annotated[str | None, Header()] = None,
    range: Annotated[str | None, Header()] = None,
) -> Response:
    """Returns ``{sha256}.{ext}`` (png, webp, jpeg; other formats are derived from the PNG once, then kept)."""
    sha256, dot, ext = name.partition(".")
    if not dot or ext not in (*FORMATS, "jpg"):
        raise InvalidRequest(f"name={name!r} is not allowed: '<sha256>.<png|webp|jpeg>'", param="name")
    return await asset_response(images, sha256.lower(), ext, if_none_match, range)
