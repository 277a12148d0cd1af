"""A campaign map as GeoJSON (RFC 7946 in shape): write one FeatureCollection from a :class:`CampaignSpec` and its
measures, read one back into the campaign JSON contract (:func:`~pipelines.overlay.campaign.parse_campaign`'s).

**CRS.** The coordinates are the canvas's pixels, ``[x, y]`` with x to the right and y *down*, exactly the spec's
own numbers: a planar CRS, not WGS 84 (RFC 7946 section 4 allows other CRSs "by prior arrangement"; this file is
the arrangement). It is stated in the top-level foreign member ``"limner:crs"``::

    {"type": "pixel", "units": "px", "y": "down", "width": W, "height": H,
     "miles_per_pixel": m, "hex": {"size_px": s, "miles_per_hex": 6, "orientation": "flat"} or null}

so a length of ``n`` coordinate units is ``n * miles_per_pixel`` miles. A GIS loads the file as an unknown planar
CRS; the map then shows mirrored top to bottom (its y axis points up), which is expected. The second foreign member
``"limner:map"`` (``{"version": 1, "title", "layers", "travel"}``) carries what the features do not, so
:func:`from_geojson` rebuilds the whole spec.

**Winding.** Polygon rings are closed (first position == last) and follow RFC 7946's right-hand rule *evaluated on
the coordinate numbers as written*: an exterior ring's shoelace signed area ``sum(x_i * y_{i+1} - x_{i+1} * y_i) / 2``
is positive (counter-clockwise in a y-up frame) and a hole's is negative, which is what a GIS reading the numbers
sees. On the screen (y down) such an exterior ring therefore runs clockwise. A ring the spec gives the other way is
reversed keeping its first corner (``p0, p1, ..., pn`` is written ``p0, pn, ..., p1, p0``) and the feature's
``reversed`` property (one boolean per polygon of the geometry; absent when none is) lets the reader restore the
spec's order.

**Numbers.** Coordinates are rounded to 0.01 px, miles and square miles to 0.01, days to 0.001; ``-0.0`` is
written ``0.0``, and nothing is NaN or infinite (``json.dumps(..., allow_nan=False)`` works).

**Features** (each ``properties.layer`` names its layer; in this order):

- ``region``: Polygon; ``name``, ``terrain``, ``sq_miles``.
- ``territory``: the faction's land, Polygon or MultiPolygon. A territory made only of pairwise disjoint polygons is
  written as its own rings (so the geometry is the source and may be edited in a GIS); one with hexes or with
  touching or overlapping polygons is written as :func:`~pipelines.overlay.campaign.territory_shape` (the merged
  land, holes included) and keeps its source in the ``hexes`` (axial ``[q, r]`` pairs) and ``polygons`` (its own
  open rings) properties, which the reader then prefers to the geometry. ``name``, ``color``, ``contested_with``,
  ``sq_miles``.
- ``route``: LineString of its resolved points (:func:`~pipelines.overlay.campaign.route_points`); ``name``,
  ``kind``, ``miles``, ``days``, and ``from``/``to``/``via`` (POI names) for a POI-linked route, which the reader
  prefers to the geometry (null, null and ``[]`` for a route with its own points).
- ``resource``: Point; ``kind``, ``quantity``, ``label`` (and ``name``, the same as ``label``).
- ``poi``: Point; ``name``, ``kind``, ``importance``, ``icon``, ``faction`` (the territory holding it).
- ``party``: Point at its position; ``name``, ``pace``, ``mode``. ``party_travelled`` is the LineString of the
  travelled points followed by the party's position, with ``miles``; ``party_planned`` the LineString of the position
  followed by the planned points, with ``miles`` and ``days``. Each is left out when its list is empty.

``miles``, ``days``, ``sq_miles`` and ``faction`` come from the :class:`CampaignGeometry` given to :func:`to_geojson`
(:func:`~pipelines.overlay.campaign_measure.measure_campaign`); without one they are null. Every feature of a layer
carries the same keys, but for the optional ``reversed``, ``hexes`` and ``polygons``.

**Reading** (:func:`from_geojson`) needs ``limner:crs`` (width and height of the canvas; strict: a plain GeoJSON
without it is refused) and a ``properties.layer`` on every feature; unknown extra properties and members are
ignored, as are the measured ones. Positions may carry a third number (an altitude, dropped). A malformed document
raises :class:`~pipelines.errors.InputError` naming the field (``features[3].geometry``,
``features[0].properties.layer``, ``limner:crs.width``); value ranges and cross-references are left to
:func:`~pipelines.overlay.campaign.parse_campaign`.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError, field_path
from pipelines.overlay.campaign import CampaignSpec, Point, Territory, route_points, territory_shape

if TYPE_CHECKING:
    from pipelines.overlay.campaign_measure import CampaignGeometry

__all__ = ["FEATURE_LAYERS", "GEOJSON_VERSION", "from_geojson", "to_geojson"]

GEOJSON_VERSION = 1
"""The ``limner:map`` version :func:`to_geojson` writes and :func:`from_geojson` reads."""

FEATURE_LAYERS: dict[str, tuple[str, ...]] = {
    "region": ("Polygon",),
    "territory": ("Polygon", "MultiPolygon"),
    "route": ("LineString",),
    "resource": ("Point",),
    "poi": ("Point",),
    "party": ("Point",),
    "party_travelled": ("LineString",),
    "party_planned": ("LineString",),
}
"""Each ``properties.layer`` value and the geometry types it may have."""

Position = list[float]
Ring = list[Position]


# -- writing ------------------------------------------------------------------------------------------------------


def to_geojson(spec: CampaignSpec, geometry: CampaignGeometry | None = None) -> dict[str, Any]:
    """The FeatureCollection of ``spec`` (module docstring: CRS, winding, rounding, features).

    Args:
        spec: A checked spec (:func:`~pipelines.overlay.campaign.parse_campaign`).
        geometry: Its measures (``measure_campaign(spec)``) for the ``miles``, ``days``, ``sq_miles`` and
            ``faction`` properties, or None to leave them null.

    Returns:
        Plain JSON-ready data (dicts, lists, strings, finite numbers, None).

    Raises:
        InputError: ``geometry`` does not belong to ``spec`` (its lists have other lengths).
    """
    if geometry is not None:
        _check_geometry(spec, geometry)
    scale = spec.scale
    hex_doc = None
    if scale.hex is not None:
        hex_doc = {
            "size_px": scale.hex.size_px,
            "miles_per_hex": scale.hex.miles_per_hex,
            "orientation": scale.hex.orientation,
        }
    features: list[dict[str, Any]] = []
    for i, region in enumerate(spec.regions):
        ring, flipped = _exterior(region.polygon)
        props: dict[str, Any] = {
            "layer": "region",
            "name": region.name,
            "terrain": region.terrain,
            "sq_miles": None if geometry is None else _round(geometry.region_sq_miles[i]),
        }
        if flipped:
            props["reversed"] = [True]
        features.append(_feature({"type": "Polygon", "coordinates": [ring]}, props))
    for i, territory in enumerate(spec.territories):
        features.append(
            _territory_feature(spec, territory, None if geometry is None else geometry.territory_sq_miles[i])
        )
    for i, route in enumerate(spec.routes):
        linked = not route.points
        measured = None if geometry is None else geometry.routes[i]
        props = {
            "layer": "route",
            "name": route.name,
            "kind": route.kind,
            "miles": None if measured is None else _round(measured.miles),
            "days": None if measured is None else _round(measured.days, 3),
            "from": route.from_ if linked else None,
            "to": route.to if linked else None,
            "via": list(route.via) if linked else [],
        }
        line = [_position(p) for p in route_points(spec, route)]
        features.append(_feature({"type": "LineString", "coordinates": line}, props))
    for resource in spec.resources:
        props = {
            "layer": "resource",
            "name": resource.label,
            "kind": resource.kind,
            "quantity": resource.quantity,
            "label": resource.label,
        }
        features.append(_feature(_point(resource.x, resource.y), props))
    for i, poi in enumerate(spec.pois):
        props = {
            "layer": "poi",
            "name": poi.name,
            "kind": poi.kind,
            "importance": poi.importance,
            "icon": poi.icon,
            "faction": None if geometry is None else geometry.poi_territory[i],
        }
        features.append(_feature(_point(poi.x, poi.y), props))
    party = spec.party
    if party is not None:
        here = (party.x, party.y)
        props = {"layer": "party", "name": party.name, "pace": party.pace, "mode": party.mode}
        features.append(_feature(_point(party.x, party.y), props))
        if party.travelled:
            props = {
                "layer": "party_travelled",
                "name": party.name,
                "miles": None if geometry is None else _round(geometry.party_travelled_miles),
            }
            line = [_position(p) for p in (*party.travelled, here)]
            features.append(_feature({"type": "LineString", "coordinates": line}, props))
        if party.planned:
            props = {
                "layer": "party_planned",
                "name": party.name,
                "miles": None if geometry is None else _round(geometry.party_planned_miles),
                "days": None if geometry is None else _round(geometry.party_planned_days, 3),
            }
            line = [_position(p) for p in (here, *party.planned)]
            features.append(_feature({"type": "LineString", "coordinates": line}, props))
    return {
        "type": "FeatureCollection",
        "limner:crs": {
            "type": "pixel",
            "units": "px",
            "y": "down",
            "width": spec.width,
            "height": spec.height,
            "miles_per_pixel": scale.miles_per_pixel,
            "hex": hex_doc,
        },
        "limner:map": {
            "version": GEOJSON_VERSION,
            "title": spec.title,
            "layers": list(spec.layers),
            "travel": copy.deepcopy(dict(spec.travel)),
        },
        "features": features,
    }


def _check_geometry(spec: CampaignSpec, geometry: CampaignGeometry) -> None:
    counts = {
        "routes": (len(geometry.routes), len(spec.routes)),
        "region_sq_miles": (len(geometry.region_sq_miles), len(spec.regions)),
        "territory_sq_miles": (len(geometry.territory_sq_miles), len(spec.territories)),
        "poi_territory": (len(geometry.poi_territory), len(spec.pois)),
    }
    for name, (got, want) in counts.items():
        if got != want:
            raise InputError(f"geometry.{name}", got, f"{want} entries: the measure_campaign(spec) of this spec")


def _feature(geometry: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _round(value: float, digits: int = 2) -> float:
    """``value`` rounded, with ``-0.0`` made ``0.0``."""
    return round(float(value), digits) + 0.0


def _position(point: Point) -> Position:
    return [_round(point[0]), _round(point[1])]


def _point(x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": _position((x, y))}


def _signed_area(ring: Sequence[Sequence[float]]) -> float:
    """Shoelace signed area on the numbers as given (positive: counter-clockwise with y up); closed or open."""
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise([*ring, ring[0]])) / 2


def _exterior(polygon: Sequence[Point]) -> tuple[Ring, bool]:
    """A spec ring as a closed GeoJSON exterior ring (positive signed area) and whether it was reversed."""
    ring = [_position(p) for p in polygon]
    flipped = _signed_area(ring) < 0
    if flipped:
        ring = [ring[0], *reversed(ring[1:])]
    return [*ring, ring[0]], flipped


def _shapely_ring(coords: Sequence[tuple[float, ...]], exterior: bool) -> Ring | None:
    """A shapely ring's coordinates rounded, consecutive repeats dropped, closed and wound for RFC 7946; None
    when rounding leaves no area."""
    ring: Ring = []
    for x, y, *_ in coords:
        p = _position((x, y))
        if not ring or ring[-1] != p:
            ring.append(p)
    while len(ring) > 1 and ring[-1] == ring[0]:
        ring.pop()
    if len(ring) < 3:
        return None
    area = _signed_area(ring)
    if area == 0:
        return None
    if (area > 0) != exterior:
        ring = [ring[0], *reversed(ring[1:])]
    return [*ring, ring[0]]


def _territory_feature(spec: CampaignSpec, territory: Territory, sq_miles: float | None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "layer": "territory",
        "name": territory.name,
        "color": territory.color,
        "contested_with": territory.contested_with,
        "sq_miles": None if sq_miles is None else _round(sq_miles),
    }
    polygons: list[list[Ring]]
    if territory.hexes or not _disjoint(territory.polygons):
        polygons = []
        shape = territory_shape(spec, territory)
        for part in getattr(shape, "geoms", [shape]):
            if part.is_empty:
                continue
            outer = _shapely_ring(part.exterior.coords, exterior=True)
            if outer is None:
                continue
            holes = [_shapely_ring(hole.coords, exterior=False) for hole in part.interiors]
            polygons.append([outer, *(h for h in holes if h is not None)])
        if territory.hexes:
            props["hexes"] = [[q, r] for q, r in territory.hexes]
        if territory.polygons:
            props["polygons"] = [[_position(p) for p in ring] for ring in territory.polygons]
    else:
        flips = []
        polygons = []
        for ring in territory.polygons:
            closed, flipped = _exterior(ring)
            polygons.append([closed])
            flips.append(flipped)
        if any(flips):
            props["reversed"] = flips
    if len(polygons) == 1:
        geometry: dict[str, Any] = {"type": "Polygon", "coordinates": polygons[0]}
    else:
        geometry = {"type": "MultiPolygon", "coordinates": polygons}
    return _feature(geometry, props)


def _disjoint(polygons: Sequence[Sequence[Point]]) -> bool:
    """Whether no two of the rings touch or overlap (then they are the territory's land as they are)."""
    if len(polygons) < 2:
        return True
    from shapely.geometry import Polygon

    shapes = [Polygon(ring) for ring in polygons]
    return all(a.disjoint(b) for a, b in itertools.combinations(shapes, 2))


# -- reading ------------------------------------------------------------------------------------------------------


def from_geojson(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The campaign JSON contract of a FeatureCollection written by :func:`to_geojson` (or edited since).

    Strict about structure: ``doc`` must be a FeatureCollection with a ``limner:crs`` member (pixel units, y down,
    the canvas width and height; plain GeoJSON without it is refused, as its coordinates cannot be placed), and
    every feature a Feature whose ``properties.layer`` is one of :data:`FEATURE_LAYERS` with a geometry of that
    layer's type. Tolerant about content: unknown properties and members are ignored, measured properties
    (``miles``, ``sq_miles``, ...) are never read, ``limner:map`` may be missing (no title, every layer, no travel
    overrides). Territories come from their ``hexes`` and ``polygons`` properties when either is there, else from
    the geometry's exterior rings (no holes allowed); POI-linked routes from ``from``/``to``/``via``; rings lose
    their closing repeat and get their spec order back from ``reversed``.

    Args:
        doc: The parsed JSON document.

    Returns:
        A dict for :func:`~pipelines.overlay.campaign.parse_campaign`, which checks ranges and references.

    Raises:
        InputError: Not a FeatureCollection (``type``), a missing or wrong ``limner:crs`` (``limner:crs.width``), a
            feature that is not one or has an unknown layer or a geometry of the wrong type or shape
            (``features[3].geometry``, ``features[3].properties.layer``), more than one party or a party path
            without the party.
    """
    if not isinstance(doc, Mapping):
        raise InputError("geojson", type(doc).__name__, "a GeoJSON object")
    if doc.get("type") != "FeatureCollection":
        raise InputError("type", doc.get("type"), "FeatureCollection")
    crs = doc.get("limner:crs")
    if not isinstance(crs, Mapping):
        raise InputError("limner:crs", crs, 'an object: {"type": "pixel", "units": "px", "y": "down", ...}')
    for key, want in (("type", "pixel"), ("units", "px"), ("y", "down")):
        if crs.get(key, want) != want:
            raise InputError(f"limner:crs.{key}", crs.get(key), f"{want!r}: only the pixel CRS is read")
    for key in ("width", "height"):
        value = crs.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"limner:crs.{key}", value, "the canvas size in pixels, an integer")
    out: dict[str, Any] = {
        "canvas": {"width": crs["width"], "height": crs["height"]},
        "scale": _read_scale(crs),
        "regions": [],
        "pois": [],
        "territories": [],
        "routes": [],
        "resources": [],
    }
    meta = doc.get("limner:map")
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise InputError("limner:map", meta, "an object: {version, title, layers, travel}")
        for key in ("title", "layers", "travel"):
            if meta.get(key) is not None:
                out[key] = copy.deepcopy(meta[key])
    features = doc.get("features")
    if not isinstance(features, list):
        raise InputError("features", features, "a list of Features")
    party: dict[str, Any] | None = None
    paths: dict[str, tuple[int, list[Point]]] = {}
    for i, feature in enumerate(features):
        where = field_path("features", i)
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
            raise InputError(where, feature if not isinstance(feature, Mapping) else feature.get("type"), "a Feature")
        props = feature.get("properties")
        if not isinstance(props, Mapping):
            raise InputError(f"{where}.properties", props, "an object with a layer")
        layer = props.get("layer")
        if layer not in FEATURE_LAYERS:
            raise InputError(f"{where}.properties.layer", layer, f"one of {', '.join(FEATURE_LAYERS)}")
        geometry = feature.get("geometry")
        kinds = FEATURE_LAYERS[layer]
        if not isinstance(geometry, Mapping) or geometry.get("type") not in kinds:
            got = geometry.get("type") if isinstance(geometry, Mapping) else geometry
            raise InputError(f"{where}.geometry", got, f"a {' or '.join(kinds)} for a {layer}")
        coords = geometry.get("coordinates")
        at = f"{where}.geometry.coordinates"
        if layer == "region":
            rings = _polygon(coords, at)
            if len(rings) > 1:
                raise InputError(at, f"{len(rings) - 1} holes", "a polygon without holes (a region has none)")
            out["regions"].append(
                {
                    "name": props.get("name"),
                    "terrain": props.get("terrain"),
                    "polygon": _unflip(rings[0], _flags(props, 1, where)[0]),
                }
            )
        elif layer == "territory":
            out["territories"].append(_read_territory(geometry["type"], coords, props, where))
        elif layer == "route":
            out["routes"].append(_read_route(coords, props, where))
        elif layer == "resource":
            x, y = _position_in(coords, at)
            entry: dict[str, Any] = {"kind": props.get("kind"), "x": x, "y": y}
            for key in ("quantity", "label"):
                if props.get(key) is not None:
                    entry[key] = props[key]
            out["resources"].append(entry)
        elif layer == "poi":
            x, y = _position_in(coords, at)
            entry = {"name": props.get("name"), "kind": props.get("kind"), "x": x, "y": y}
            for key in ("importance", "icon"):
                if props.get(key) is not None:
                    entry[key] = props[key]
            out["pois"].append(entry)
        elif layer == "party":
            if party is not None:
                raise InputError(f"{where}.properties.layer", layer, "at most one party feature")
            x, y = _position_in(coords, at)
            party = {"x": x, "y": y}
            for key in ("name", "pace", "mode"):
                if props.get(key) is not None:
                    party[key] = props[key]
        else:
            if layer in paths:
                raise InputError(f"{where}.properties.layer", layer, f"at most one {layer} feature")
            paths[layer] = (i, _line(coords, at))
    if paths and party is None:
        i = min(index for index, _ in paths.values())
        raise InputError(f"{field_path('features', i)}.properties.layer", "party path", "a party feature as well")
    if party is not None:
        # The paths include the party's position: travelled ends there, planned starts there.
        party["travelled"] = [list(p) for p in paths["party_travelled"][1][:-1]] if "party_travelled" in paths else []
        party["planned"] = [list(p) for p in paths["party_planned"][1][1:]] if "party_planned" in paths else []
        out["party"] = party
    return out


def _read_scale(crs: Mapping[str, Any]) -> dict[str, Any]:
    hexes = crs.get("hex")
    if hexes is not None:
        if not isinstance(hexes, Mapping):
            raise InputError("limner:crs.hex", hexes, "null or {size_px, miles_per_hex, orientation}")
        return {"hex": {k: hexes[k] for k in ("size_px", "miles_per_hex", "orientation") if k in hexes}}
    if crs.get("miles_per_pixel") is None:
        raise InputError("limner:crs.miles_per_pixel", None, "miles per pixel, or a hex grid in limner:crs.hex")
    return {"miles_per_pixel": crs["miles_per_pixel"]}


def _read_territory(kind: str, coords: Any, props: Mapping[str, Any], where: str) -> dict[str, Any]:
    at = f"{where}.geometry.coordinates"
    entry: dict[str, Any] = {"name": props.get("name"), "color": props.get("color")}
    if props.get("contested_with") is not None:
        entry["contested_with"] = props["contested_with"]
    if props.get("hexes") is not None or props.get("polygons") is not None:
        if props.get("hexes") is not None:
            entry["hexes"] = props["hexes"]
        if props.get("polygons") is not None:
            entry["polygons"] = props["polygons"]
        # The geometry is the merged land; still check it is one.
        if kind == "Polygon":
            _polygon(coords, at)
        else:
            _multipolygon(coords, at)
        return entry
    parts = [_polygon(coords, at)] if kind == "Polygon" else _multipolygon(coords, at)
    flags = _flags(props, len(parts), where)
    polygons = []
    for k, rings in enumerate(parts):
        if len(rings) > 1:
            where_k = at if kind == "Polygon" else f"{at}[{k}]"
            raise InputError(where_k, f"{len(rings) - 1} holes", "polygons without holes, or hexes and polygons")
        polygons.append(_unflip(rings[0], flags[k]))
    entry["polygons"] = polygons
    return entry


def _read_route(coords: Any, props: Mapping[str, Any], where: str) -> dict[str, Any]:
    line = _line(coords, f"{where}.geometry.coordinates")
    entry: dict[str, Any] = {"kind": props.get("kind")}
    if props.get("name") is not None:
        entry["name"] = props["name"]
    if props.get("from") is not None or props.get("to") is not None:
        entry["from"], entry["to"] = props.get("from"), props.get("to")
        if props.get("via"):
            entry["via"] = props["via"]
    else:
        entry["points"] = [list(p) for p in line]
    return entry


def _flags(props: Mapping[str, Any], count: int, where: str) -> list[bool]:
    value = props.get("reversed")
    if value is None:
        return [False] * count
    if not isinstance(value, list) or len(value) != count or not all(isinstance(v, bool) for v in value):
        raise InputError(f"{where}.properties.reversed", value, f"a list of {count} booleans, one per polygon")
    return list(value)


def _unflip(ring: list[Point], flipped: bool) -> list[list[float]]:
    """A read ring (closing repeat dropped) back in the spec's order."""
    if flipped:
        ring = [ring[0], *reversed(ring[1:])]
    return [list(p) for p in ring]


def _position_in(value: Any, where: str) -> Point:
    if not isinstance(value, list | tuple) or len(value) not in (2, 3):
        raise InputError(where, value, "a position: [x, y] (an altitude is allowed and dropped)")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise InputError(where, value, "a position of finite numbers")
    return (float(value[0]), float(value[1]))


def _positions(value: Any, where: str, minimum: int) -> list[Point]:
    if not isinstance(value, list | tuple) or len(value) < minimum:
        raise InputError(where, value, f"a list of at least {minimum} positions")
    return [_position_in(p, f"{where}[{j}]") for j, p in enumerate(value)]


def _line(value: Any, where: str) -> list[Point]:
    return _positions(value, where, 2)


def _linear_ring(value: Any, where: str) -> list[Point]:
    """A closed ring of at least 4 positions, returned without its closing repeat."""
    ring = _positions(value, where, 4)
    if ring[0] != ring[-1]:
        raise InputError(where, [list(ring[0]), list(ring[-1])], "a closed ring: its last position equal to its first")
    return ring[:-1]


def _polygon(value: Any, where: str) -> list[list[Point]]:
    if not isinstance(value, list | tuple) or not value:
        raise InputError(where, value, "a list of linear rings, the exterior first")
    return [_linear_ring(ring, f"{where}[{k}]") for k, ring in enumerate(value)]


def _multipolygon(value: Any, where: str) -> list[list[list[Point]]]:
    if not isinstance(value, list | tuple) or not value:
        raise InputError(where, value, "a list of polygons")
    return [_polygon(polygon, f"{where}[{k}]") for k, polygon in enumerate(value)]
