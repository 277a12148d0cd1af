"""Tactical maps: ``POST /api/v2/images/maps/tactical`` (a job), the map it records, its UVTT export and its
editable overlay, and ``POST /api/v2/images/maps/import`` (a .dd2vtt / .uvtt file read into a map spec).

A map is an overlay of kind ``tactical_map``: ``GET /maps/{id}`` is its document, ``/maps/{id}/overlay`` its spec
(``PUT`` re-draws it on the same background as the next version), ``/maps/{id}/export.uvtt`` (also
``export.dd2vtt``) the Universal VTT file with the clean background embedded (``?image=render`` embeds the
overlaid render instead).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from serve_app.api.campaign import campaign_document
from serve_app.api.deps import EdgeDep
from serve_app.api.job_routes import add_job_route
from serve_app.api.overlays import answer_overlay, overlay_document, parse_if_match
from serve_app.api.protocol.campaign import CampaignMapResponse, CampaignSpecBody
from serve_app.api.protocol.overlays import MapResponse, TacticalMapBody, UvttImportResponse
from serve_app.api.responses import IMAGES_PREFIX
from serve_app.errors import BODY_ERRORS, BadRequest, InvalidRequest, error_responses
from serve_app.jobs.kinds.map import MAPS_PREFIX, map_links
from serve_app.overlays.models import OverlayBody
from serve_app.overlays.store import OverlayNotFound, OverlayRecord

__all__ = ["router"]

router = APIRouter(prefix=MAPS_PREFIX, tags=["maps"])
KIND = "tactical_map"
CAMPAIGN = "campaign_map"
_Model = TypeVar("_Model", bound=BaseModel)

add_job_route(
    router,
    "/tactical",
    kind=KIND,
    body=TacticalMapBody,
    to_request=TacticalMapBody.to_request,
    summary="A tactical battle map job",
    description="The art at exactly `cols * cell_px` x `rows * cell_px`, generated from a layout sketch of the "
    "terrain in the theme's look, with the overlay layers drawn on it. `result.data` holds `map_id`, `links` "
    "(`self`, `uvtt`, `overlay`), the clean background and the render's image ids, and the geometry. Walls, closed "
    "doors and windows block movement and paths; difficult areas double their cost (docs/OVERLAYS.md).",
)


@router.post(
    "/import",
    summary="Read a UVTT file into a map spec",
    response_model=UvttImportResponse,
    responses=error_responses(413, 422),
)
async def import_uvtt(
    request: Request, edge: EdgeDep, feet_per_cell: Annotated[float, Query(gt=0, le=5280)] = 5.0
) -> UvttImportResponse:
    """The body is the .dd2vtt / .df2vtt / .uvtt file itself (JSON). Walls, object walls, doors, windows, lights
    and the grid become a map spec (points relative to the image's top-left, `map_origin` subtracted); the
    embedded image is stored. POST the spec with a prompt or theme to `/maps/tactical` to restyle the map."""
    data = await request.body()
    if not data:
        raise InvalidRequest("the body is empty: send the UVTT file", param="body")
    spec, image_id = await edge.overlays.import_uvtt(data, feet_per_cell=feet_per_cell)
    links = (
        {} if image_id is None else {"image": f"{IMAGES_PREFIX}/{image_id}", "file": f"{IMAGES_PREFIX}/{image_id}/file"}
    )
    return UvttImportResponse(spec=spec, image_id=image_id, links=links)


def _map_document(record: OverlayRecord) -> dict[str, Any]:
    """The map's overlay document, with the map's links (UVTT, overlay) and the job that made it."""
    doc = overlay_document(record, f"{MAPS_PREFIX}/{record.id}").model_dump(mode="json")
    doc["links"] = {**doc["links"], **map_links(str(record.id))}
    doc["job_id"] = None if record.job_id is None else str(record.job_id)
    return doc


MAP_RESPONSE = MapResponse | CampaignMapResponse
"""What a map's routes answer: a tactical map's document has ``geometry``, a campaign map's ``data``."""


@router.get("/{map_id}", summary="A map", response_model=MAP_RESPONSE, responses=error_responses(404))
@router.get(
    "/{map_id}/overlay", summary="A map's overlay spec", response_model=MAP_RESPONSE, responses=error_responses(404)
)
async def get_map(map_id: str, edge: EdgeDep) -> JSONResponse:
    """The map: its spec, the clean background, the current render and its links. A tactical map's document has
    the geometry and the UVTT links; a campaign map's has the measured ``data`` and the GeoJSON link."""
    record = await _map(edge, map_id)
    document = campaign_document(record) if record.kind == CAMPAIGN else _map_document(record)
    return JSONResponse(document, headers={"ETag": f'"{record.version}"'})


async def _map(edge: Any, map_id: str) -> OverlayRecord:
    """The map, tactical or campaign (a plain overlay is not a map: 404)."""
    record = await edge.overlays.get(map_id)
    if record.kind not in (KIND, CAMPAIGN):
        raise OverlayNotFound(map_id)
    return record


def _uvtt_route(suffix: str) -> None:
    @router.get(
        f"/{{map_id}}/export.{suffix}",
        summary=f"The map as a .{suffix} file (Universal VTT 0.3)",
        response_class=Response,
        responses={200: {"content": {"application/json": {}}}, **error_responses(404, 422)},
        name=f"export_{suffix}",
    )
    async def export(
        map_id: str, edge: EdgeDep, image: Annotated[str, Query(pattern="^(background|render)$")] = "background"
    ) -> Response:
        doc = await edge.overlays.uvtt(map_id, image=image)
        headers = {"Content-Disposition": f'attachment; filename="map-{map_id}.{suffix}"'}
        return Response(json.dumps(doc, separators=(",", ":")), media_type="application/json", headers=headers)


_uvtt_route("uvtt")
_uvtt_route("dd2vtt")


@router.put(
    "/{map_id}/overlay",
    summary="The next version of a map's overlay",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/OverlayBody"},
                            {"$ref": "#/components/schemas/CampaignSpecBody"},
                        ]
                    }
                }
            },
        }
    },
    responses={
        200: {"model": MAP_RESPONSE, "content": {"image/png": {}}, "description": "Re-drawn."},
        **error_responses(*BODY_ERRORS, 404, 409),
    },
)
async def put_map_overlay(
    map_id: str,
    request: Request,
    edge: EdgeDep,
    format: Annotated[str | None, Query(pattern="^(json|png)$")] = None,
    if_match: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Re-draws the map's clean background with this spec as version n + 1: for a tactical map an overlay spec
    (move a token, add a fireball), for a campaign map the whole campaign spec (move the party a day on, hand a
    town to another faction). The art is never regenerated."""
    raw = await _json_body(request)  # first, as FastAPI reads a declared body before the route looks anything up
    record = await _map(edge, map_id)
    expected = parse_if_match(if_match)
    if record.kind == CAMPAIGN:
        spec = _validated(CampaignSpecBody, raw)
        done = await edge.overlays.campaign.update(map_id, spec.to_doc(), expected_version=expected)
        headers = {"ETag": f'"{done.record.version}"', "Location": f"{MAPS_PREFIX}/{map_id}"}
        if format == "png" and "image/png" in request.headers.get("accept", "image/png"):
            return Response(done.png, media_type="image/png", headers=headers)
        return JSONResponse(campaign_document(done.record), headers=headers)
    body = _validated(OverlayBody, raw)
    rendered = await edge.overlays.update(map_id, body, expected_version=expected, kind=KIND)
    return answer_overlay(rendered, request, format, _map_document(rendered.record), status=200)


async def _json_body(request: Request) -> Any:
    """The body as JSON, refused as FastAPI refuses a declared body: 422 for a JSON syntax error (where it
    breaks), 400 for bytes it cannot parse at all (not UTF-8, nested too deep, a number too long)."""
    data = await request.body()
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}]) from None
    except (ValueError, RecursionError):
        raise BadRequest("There was an error parsing the body", param="body") from None


def _validated(model: type[_Model], raw: Any) -> _Model:
    """``raw`` as ``model``; a bad body is the same 422 FastAPI gives a declared body (``loc`` from ``body``)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
