"""Content-addressed assets: ``/api/v2/assets/{sha256}.{ext}``. Immutable, cacheable forever."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response

from pipelines.encode import FORMATS
from serve_app.api.app import get_service
from serve_app.api.service import Asset, ImageService
from serve_app.errors import InvalidRequest, error_responses

__all__ = ["asset_response", "router"]

router = APIRouter(prefix="/api/v2/assets", tags=["assets"])

IMMUTABLE = "public, max-age=31536000, immutable"


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
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
        span = _parse_range(range_header, size)
        if span is None:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(asset.data[start : end + 1], status_code=206, media_type=media, headers=headers)
    return Response(asset.data, media_type=media, headers=headers)


@router.get(
    "/{name}",
    summary="An asset's bytes, by content hash",
    response_class=Response,
    responses={
        200: {"content": {m: {} for m in FORMATS.values()}, "description": "The bytes; ETag, immutable caching."},
        206: {"description": "The requested byte range."},
        304: {"description": "Not modified (If-None-Match matched)."},
        **error_responses(404, 422),
    },
)
async def get_asset(
    name: str,
    service: Annotated[ImageService, Depends(get_service)],
    if_none_match: Annotated[str | None, Header()] = None,
    range: Annotated[str | None, Header()] = None,
) -> Response:
    """Returns ``{sha256}.{ext}`` (png, webp, jpeg; other formats are derived from the PNG once, then kept)."""
    sha256, dot, ext = name.partition(".")
    if not dot or ext not in (*FORMATS, "jpg"):
        raise InvalidRequest(f"name={name!r} is not allowed: '<sha256>.<png|webp|jpeg>'", param="name")
    return asset_response(await service.asset(sha256.lower(), ext), if_none_match, range)
