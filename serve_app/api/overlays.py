"""Overlays: exact geometry as data, and drawing on any image.

- ``POST /api/v2/images/overlays/geometry``: what a spec covers, costs and reaches; answered at once, no job.
- ``POST /api/v2/images/{image_id}/overlays``: draws the spec on the image, stores the render as a derived version
  of it and the spec as an overlay (version 1); ``POST /api/v2/images/overlays`` draws on a plain canvas of the
  grid's size. ``?format=png`` with ``Accept: image/png`` answers the PNG itself.
- ``GET``/``PUT /api/v2/images/overlays/{id}``: the overlay; a ``PUT`` is its next version, drawn on the same
  background (move a token, add a fireball, without regenerating the art). ``If-Match: "<version>"`` refuses a
  stale edit with 409.

Conventions (every tie rule the geometry uses) are in docs/OVERLAYS.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from serve_app.api.deps import EdgeDep
from serve_app.api.protocol.overlays import GeometryResponse, OverlayResponse
from serve_app.api.responses import IMAGES_PREFIX
from serve_app.errors import BODY_ERRORS, InvalidRequest, error_responses
from serve_app.overlays.models import OverlayBody
from serve_app.overlays.service import OverlayService, RenderedOverlay
from serve_app.overlays.store import OverlayRecord

__all__ = ["answer_overlay", "overlay_document", "parse_if_match", "router"]

router = APIRouter(prefix=IMAGES_PREFIX, tags=["overlays"])
OVERLAYS = f"{IMAGES_PREFIX}/overlays"

_FORMAT = Query(
    pattern="^(json|png)$", description="`png` (with `Accept: image/png`) answers the render's bytes instead of JSON."
)


def overlay_document(record: OverlayRecord, base: str) -> OverlayResponse:
    """The JSON answer for an overlay (``base``: its own URL)."""
    links = {"self": base, "background": f"{IMAGES_PREFIX}/{record.image_id}"}
    if record.result_image_id is not None:
        links["image"] = f"{IMAGES_PREFIX}/{record.result_image_id}"
        links["file"] = f"{IMAGES_PREFIX}/{record.result_image_id}/file"
    return OverlayResponse(
        id=str(record.id),
        kind=record.kind,
        version=record.version,
        image_id=None if record.result_image_id is None else str(record.result_image_id),
        background_image_id=str(record.image_id),
        spec=record.spec,
        geometry=GeometryResponse(**record.geometry),
        created_at=record.created_at,
        updated_at=record.updated_at,
        links=links,
    )


def parse_if_match(header: str | None) -> int | None:
    """The version an ``If-Match`` header names (``"3"``, ``W/"3"`` or ``3``), or None without one.

    Raises:
        InvalidRequest: A header that names no version.
    """
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidRequest(f'If-Match={header!r} is not allowed: a version number such as "3"', param="If-Match")
    return int(text)


def answer_overlay(
    rendered: RenderedOverlay, request: Request, fmt: str | None, document: dict[str, Any], *, status: int
) -> Response:
    """The answer to a create or an edit: the render's PNG with ``?format=png`` (and an ``Accept`` that takes
    PNG), else ``document``; ``ETag`` is the version, ``Location`` the document's ``self`` link."""
    headers = {"ETag": f'"{rendered.record.version}"', "Location": document["links"]["self"]}
    if fmt == "png" and "image/png" in request.headers.get("accept", "image/png"):
        return Response(rendered.png, status_code=status, media_type="image/png", headers=headers)
    return JSONResponse(document, status_code=status, headers=headers)


def _document(rendered: RenderedOverlay) -> dict[str, Any]:
    return overlay_document(rendered.record, f"{OVERLAYS}/{rendered.record.id}").model_dump(mode="json")


def _service(edge: EdgeDep) -> OverlayService:
    return edge.overlays


@router.post(
    "/overlays/geometry",
    summary="What a spec covers, costs and reaches",
    response_model=GeometryResponse,
    responses=error_responses(*BODY_ERRORS),
)
async def geometry(body: OverlayBody, edge: EdgeDep) -> GeometryResponse:
    """Cells covered by each template under its rule, each token's footprint and centre, each path's cells and
    cost (the diagonal count kept across waypoints), and every cell each movement query reaches with its cost.
    No image, no job: the answer comes at once."""
    return GeometryResponse(**await _service(edge).geometry(body))


_CREATED = {
    201: {"model": OverlayResponse, "content": {"image/png": {}}, "description": "Drawn and recorded."},
    **error_responses(*BODY_ERRORS, 404),
}


@router.post("/overlays", summary="Draw an overlay on a plain canvas", status_code=201, responses=_CREATED)
async def create_on_canvas(
    body: OverlayBody, request: Request, edge: EdgeDep, format: Annotated[str | None, _FORMAT] = None
) -> Response:
    """A parchment canvas exactly the grid's size (stored once per size) with the spec drawn on it."""
    rendered = await _service(edge).create(body, None)
    return answer_overlay(rendered, request, format, _document(rendered), status=201)


@router.get(
    "/overlays/{overlay_id}", summary="An overlay", response_model=OverlayResponse, responses=error_responses(404)
)
async def get_overlay(overlay_id: str, edge: EdgeDep) -> Response:
    record = await _service(edge).get(overlay_id)
    body = overlay_document(record, f"{OVERLAYS}/{record.id}").model_dump(mode="json")
    return JSONResponse(body, headers={"ETag": f'"{record.version}"'})


@router.put(
    "/overlays/{overlay_id}",
    summary="The next version of an overlay",
    responses={
        200: {"model": OverlayResponse, "content": {"image/png": {}}, "description": "Re-drawn."},
        **error_responses(*BODY_ERRORS, 404, 409),
    },
)
async def put_overlay(
    overlay_id: str,
    body: OverlayBody,
    request: Request,
    edge: EdgeDep,
    format: Annotated[str | None, _FORMAT] = None,
    if_match: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Re-draws the overlay's background with this spec as version n + 1 (the art is not generated again)."""
    rendered = await _service(edge).update(overlay_id, body, expected_version=parse_if_match(if_match))
    return answer_overlay(rendered, request, format, _document(rendered), status=200)


@router.post("/{image_id}/overlays", summary="Draw an overlay on an image", status_code=201, responses=_CREATED)
async def create_on_image(
    image_id: str,
    body: OverlayBody,
    request: Request,
    edge: EdgeDep,
    format: Annotated[str | None, _FORMAT] = None,
) -> Response:
    """Draws the spec on the image (resized to the grid's exact size first when it differs); colours the spec
    leaves out come from the image's theme palette. The render is a derived version of the image."""
    await edge.images.image(image_id)  # 404 before any drawing
    rendered = await _service(edge).create(body, image_id)
    return answer_overlay(rendered, request, format, _document(rendered), status=201)
