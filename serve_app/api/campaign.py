"""Campaign maps: ``POST /api/v2/images/maps/campaign`` (a job), route planning, the GeoJSON export and import.

A campaign map is an overlay of kind ``campaign_map``: ``GET /maps/{id}`` is its document (serve_app/api/maps.py
answers for both kinds of map), ``PUT /maps/{id}/overlay`` re-draws its layers on the same art as the next version,
``/maps/{id}/export.geojson`` is every layer as one FeatureCollection in the map's pixel CRS.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serve_app.api.deps import EdgeDep
from serve_app.api.job_routes import add_job_route
from serve_app.api.protocol.campaign import CampaignMapBody, CampaignRouteBody, CampaignSpecBody
from serve_app.api.responses import IMAGES_PREFIX
from serve_app.errors import BODY_ERRORS, InvalidRequest, error_responses
from serve_app.jobs.kinds.campaign import campaign_links
from serve_app.jobs.kinds.map import MAPS_PREFIX
from serve_app.overlays.store import OverlayRecord

__all__ = ["campaign_document", "router"]

router = APIRouter(prefix=MAPS_PREFIX, tags=["maps"])

add_job_route(
    router,
    "/campaign",
    kind="campaign_map",
    body=CampaignMapBody,
    to_request=CampaignMapBody.to_request,
    summary="A campaign (world) map job",
    description="The art at exactly the canvas's size, generated from a layout sketch of the regions' terrain in "
    "the theme's look, with the campaign layers drawn on it: territories and their borders, routes, POIs, "
    "resources, the party's path with day marks, labels, a legend, a compass rose and a scale bar in miles. "
    "`result.data` holds `map_id`, `links` (`self`, `geojson`, `overlay`), the image ids and `data` (route "
    "miles and days, region and territory areas in square miles, the territory holding each POI, the party's "
    "miles and days). docs/CAMPAIGN_MAPS.md has the spec and the travel rules.",
)


@router.post(
    "/campaign/route",
    summary="Plan a route on a campaign map",
    responses=error_responses(*BODY_ERRORS, 404),
)
async def plan_route(body: CampaignRouteBody, edge: EdgeDep) -> JSONResponse:
    """The cheapest route between two POIs (or points) over the map's roads and open terrain: A* over a cost
    grid built from the regions (roads cheaper, difficult terrain twice the time, water impassable on land and the
    only way by ship). Answers `{path, miles, days, legs}` at the pace (PHB: 18 / 24 / 30 miles a day; difficult
    terrain halves it)."""
    plan = await edge.overlays.campaign.route(body.map_id, body.from_, body.to, pace=body.pace, mode=body.mode)
    return JSONResponse(plan)


@router.post("/campaign/measure", summary="What a campaign spec measures", responses=error_responses(*BODY_ERRORS))
async def measure(body: CampaignSpecBody, edge: EdgeDep) -> JSONResponse:
    """Route miles and days, region and territory areas, the territory holding each POI and the party's days, at
    once: no image, no job. A bad spec is a 422 naming the field."""
    return JSONResponse(await edge.overlays.campaign.measure(body.to_doc()))


@router.post(
    "/campaign/import", summary="Read a GeoJSON export into a campaign spec", responses=error_responses(413, 422)
)
async def import_geojson(request: Request, edge: EdgeDep) -> JSONResponse:
    """The body is a FeatureCollection as `export.geojson` writes it (with its `limner:crs` member). Answers
    `{spec}`: POST it, with a prompt or theme, to `/maps/campaign`, or PUT it to a map's overlay."""
    data = await request.body()
    if not data:
        raise InvalidRequest("the body is empty: send the GeoJSON document", param="body")
    try:
        doc = json.loads(data)
    except ValueError:
        raise InvalidRequest("the body is not JSON", param="body") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("the body is not a GeoJSON FeatureCollection", param="body")
    return JSONResponse({"spec": await edge.overlays.campaign.import_geojson(doc)})


@router.get(
    "/{map_id}/export.geojson",
    summary="The campaign map as GeoJSON",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}, **error_responses(404)},
)
async def export_geojson(map_id: str, edge: EdgeDep) -> Response:
    """Every region, POI, territory, route, party path and resource as one FeatureCollection. Coordinates are the
    canvas's pixels, y down: a planar CRS stated in the file's `limner:crs` member."""
    doc = await edge.overlays.campaign.geojson(map_id)
    headers = {"Content-Disposition": f'attachment; filename="map-{map_id}.geojson"'}
    return Response(json.dumps(doc, separators=(",", ":")), media_type="application/geo+json", headers=headers)


def campaign_document(record: OverlayRecord) -> dict[str, Any]:
    """The JSON answer for a campaign map."""
    links = {**campaign_links(str(record.id)), "background": f"{IMAGES_PREFIX}/{record.image_id}"}
    if record.result_image_id is not None:
        links["image"] = f"{IMAGES_PREFIX}/{record.result_image_id}"
        links["file"] = f"{IMAGES_PREFIX}/{record.result_image_id}/file"
    return {
        "id": str(record.id),
        "kind": record.kind,
        "version": record.version,
        "image_id": None if record.result_image_id is None else str(record.result_image_id),
        "background_image_id": str(record.image_id),
        "spec": record.spec,
        "data": record.geometry,
        "job_id": None if record.job_id is None else str(record.job_id),
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "links": links,
    }
