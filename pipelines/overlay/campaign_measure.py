"""What a campaign map measures, in one call: each route's polyline, miles and days, each region's and
territory's area in square miles, which territory holds each POI, and the party's miles and days (with the
points where each day of the planned path ends, which the renderer marks).

Days are at the normal pace: on foot for roads and trails, by ship for rivers and sea lanes; the party's at its
own pace and mode. The travel rules are :mod:`.campaign_travel`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.overlay.campaign import CampaignSpec, Point, polyline_length, route_points, territory_shape

__all__ = ["CampaignGeometry", "RouteGeometry", "measure_campaign"]


@dataclass(frozen=True)
class RouteGeometry:
    kind: str
    name: str | None
    points: tuple[Point, ...]
    miles: float
    days: float


@dataclass(frozen=True)
class CampaignGeometry:
    """Per-entry figures, in the spec's order."""

    routes: tuple[RouteGeometry, ...]
    region_sq_miles: tuple[float, ...]
    territory_sq_miles: tuple[float, ...]
    poi_territory: tuple[str | None, ...]
    party_travelled_miles: float = 0.0
    party_planned_miles: float = 0.0
    party_planned_days: float = 0.0
    day_marks: tuple[Point, ...] = ()

    def to_json(self, spec: CampaignSpec) -> dict[str, Any]:
        """The ``data`` document the API answers (rounded for people: miles to 0.01, days to 0.001)."""
        doc: dict[str, Any] = {
            "routes": [
                {
                    "kind": r.kind,
                    "name": r.name,
                    "miles": round(r.miles, 2),
                    "days": round(r.days, 3),
                    "points": [[round(x, 2), round(y, 2)] for x, y in r.points],
                }
                for r in self.routes
            ],
            "regions": [
                {"name": region.name, "terrain": region.terrain, "sq_miles": round(area, 2)}
                for region, area in zip(spec.regions, self.region_sq_miles, strict=True)
            ],
            "territories": [
                {"name": t.name, "sq_miles": round(area, 2)}
                for t, area in zip(spec.territories, self.territory_sq_miles, strict=True)
            ],
            "pois": [
                {"name": poi.name, "kind": poi.kind, "territory": holder}
                for poi, holder in zip(spec.pois, self.poi_territory, strict=True)
            ],
        }
        if spec.party is not None:
            doc["party"] = {
                "travelled_miles": round(self.party_travelled_miles, 2),
                "planned_miles": round(self.party_planned_miles, 2),
                "planned_days": round(self.party_planned_days, 3),
                "day_marks": [[round(x, 2), round(y, 2)] for x, y in self.day_marks],
            }
        return doc


def measure_campaign(spec: CampaignSpec) -> CampaignGeometry:
    """Measures ``spec`` (already checked by :func:`~pipelines.overlay.campaign.parse_campaign`)."""
    from shapely.geometry import Point as ShapelyPoint
    from shapely.geometry import Polygon

    from pipelines.overlay.campaign_travel import path_travel

    mpp = spec.scale.miles_per_pixel
    routes = []
    for route in spec.routes:
        points = route_points(spec, route)
        mode = "ship" if route.kind in ("river", "sea_lane") else "foot"
        travel = path_travel(spec, points, pace="normal", mode=mode, on=route.kind)
        routes.append(RouteGeometry(route.kind, route.name, points, polyline_length(points) * mpp, travel.days))
    regions = tuple(Polygon(r.polygon).area * mpp * mpp for r in spec.regions)
    shapes = [territory_shape(spec, t) for t in spec.territories]
    territories = tuple(shape.area * mpp * mpp for shape in shapes)
    holders = []
    for poi in spec.pois:
        point = ShapelyPoint(poi.x, poi.y)
        holder = next((t.name for t, shape in zip(spec.territories, shapes, strict=True) if shape.covers(point)), None)
        holders.append(holder)
    geometry = CampaignGeometry(tuple(routes), regions, territories, tuple(holders))
    party = spec.party
    if party is None:
        return geometry
    travelled = polyline_length([*party.travelled, (party.x, party.y)] if party.travelled else []) * mpp
    planned_miles = planned_days = 0.0
    marks: tuple[Point, ...] = ()
    if party.planned:
        path = [(party.x, party.y), *party.planned]
        travel = path_travel(spec, path, pace=party.pace, mode=party.mode)
        planned_miles, planned_days, marks = travel.miles, travel.days, travel.day_marks
    from dataclasses import replace

    return replace(
        geometry,
        party_travelled_miles=travelled,
        party_planned_miles=planned_miles,
        party_planned_days=planned_days,
        day_marks=marks,
    )
