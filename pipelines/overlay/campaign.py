"""A campaign map as frozen data: the canvas and its scale, terrain regions, points of interest, territories,
routes, the party and resources; parsed from the JSON contract and checked, with every error naming its field.

**Coordinates** are pixels of the canvas, x to the right and y down, as ``[x, y]`` pairs (the GeoJSON export keeps
them: a planar CRS, ``limner:crs``). **Scale** is ``{"miles_per_pixel": m}`` or ``{"hex": {"size_px": s,
"miles_per_hex": 6}}``: a hex grid over the map whose hexes are ``miles_per_hex`` across, centre to centre (hex-crawl
convention), so a mile is ``sqrt(3) * size_px / miles_per_hex`` pixels for both orientations.

The pure pieces around it: :mod:`.campaign_travel` (the cost grid, A* route planning, travel days),
:mod:`.campaign_draw` (the layers, labels, legend, compass, scale bar), :mod:`.export.geojson` (export and
import), :func:`measure_campaign` below (route lengths, region areas, who holds each POI, the party's days).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import InputError, field_path

__all__ = [
    "LAYERS",
    "MAX_CANVAS",
    "MODES",
    "PACES",
    "POI_KINDS",
    "RESOURCE_KINDS",
    "ROUTE_KINDS",
    "TERRAINS",
    "CampaignSpec",
    "HexScale",
    "Party",
    "Poi",
    "Region",
    "Resource",
    "Route",
    "Scale",
    "Terrain",
    "Territory",
    "check_campaign",
    "hex_center",
    "hex_corners",
    "hex_lattice",
    "parse_campaign",
    "pixel_to_hex",
    "polyline_length",
    "route_points",
    "spec_to_json",
    "territory_shape",
]

Point = tuple[float, float]
"""``(x, y)`` in canvas pixels, y down."""


@dataclass(frozen=True)
class Terrain:
    """A terrain: the colour of its layout sketch, whether it is difficult terrain (PHB: travel at half the
    distance), and whether it is water (impassable on land, the only way by ship)."""

    color: str
    difficult: bool = False
    water: bool = False
    prompt: str = ""


TERRAINS: dict[str, Terrain] = {
    "plains": Terrain("#c9d48a", prompt="open plains"),
    "grassland": Terrain("#b3d07a", prompt="grassland"),
    "farmland": Terrain("#e2d59a", prompt="farmland and fields"),
    "forest": Terrain("#4f7a3a", difficult=True, prompt="dense forest"),
    "jungle": Terrain("#2e6a34", difficult=True, prompt="jungle"),
    "hills": Terrain("#b09a68", difficult=True, prompt="rolling hills"),
    "mountains": Terrain("#8b8079", difficult=True, prompt="mountain ranges"),
    "swamp": Terrain("#5f7a5a", difficult=True, prompt="swamps and marshes"),
    "desert": Terrain("#e6cf8b", prompt="desert"),
    "badlands": Terrain("#b8835a", difficult=True, prompt="badlands"),
    "tundra": Terrain("#d9dfe0", prompt="tundra"),
    "snow": Terrain("#f2f5f7", difficult=True, prompt="snowfields"),
    "water": Terrain("#6f9fc8", water=True, prompt="sea"),
    "lake": Terrain("#7fb0d4", water=True, prompt="lakes"),
}
"""Terrain names and their rules. Land the regions leave uncovered is ``plains``."""

POI_KINDS: dict[str, int] = {
    "capital": 5,
    "city": 4,
    "town": 3,
    "port": 3,
    "fort": 2,
    "temple": 2,
    "village": 2,
    "dungeon": 2,
    "ruin": 2,
    "landmark": 2,
    "camp": 1,
}
"""POI kinds and the importance (label size, 1 to 5) each has unless the POI says otherwise."""

ROUTE_KINDS = ("road", "trail", "river", "sea_lane")
RESOURCE_KINDS = ("mine", "farm", "lumber", "fishery", "quarry", "magic_site", "custom")
PACES = ("slow", "normal", "fast")
MODES = ("foot", "mounted", "cart", "ship")
LAYERS = (
    "hex_grid",
    "territories",
    "borders",
    "routes",
    "resources",
    "pois",
    "party",
    "labels",
    "legend",
    "compass",
    "scale_bar",
)
"""The drawn layers, bottom to top; a spec's ``layers`` picks some (all by default)."""

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_CANVAS = 8192
MAX_ITEMS = 2000
MAX_POINTS = 4096


@dataclass(frozen=True)
class HexScale:
    """A hex grid over the map: ``size_px`` centre to corner; ``miles_per_hex`` across, centre to centre."""

    size_px: float
    miles_per_hex: float = 6.0
    orientation: str = "flat"  # "flat" or "pointy"


@dataclass(frozen=True)
class Scale:
    """Miles per pixel, and the hex grid when the scale was given as one."""

    miles_per_pixel: float
    hex: HexScale | None = None


@dataclass(frozen=True)
class Region:
    name: str
    terrain: str
    polygon: tuple[Point, ...]


@dataclass(frozen=True)
class Poi:
    name: str
    kind: str
    x: float
    y: float
    importance: int
    icon: str | None = None


@dataclass(frozen=True)
class Territory:
    """A faction's land: polygons, or hexes of the scale's grid as axial ``(q, r)``; ``contested_with`` names
    another territory that claims the same land (drawn hatched in both colours)."""

    name: str
    color: str
    polygons: tuple[tuple[Point, ...], ...] = ()
    hexes: tuple[tuple[int, int], ...] = ()
    contested_with: str | None = None


@dataclass(frozen=True)
class Route:
    """A road, trail, river or sea lane: its own ``points``, or POI names (``from`` ... ``via`` ... ``to``)."""

    kind: str
    name: str | None = None
    points: tuple[Point, ...] = ()
    from_: str | None = None
    to: str | None = None
    via: tuple[str, ...] = ()


@dataclass(frozen=True)
class Party:
    x: float
    y: float
    name: str = "Party"
    travelled: tuple[Point, ...] = ()
    planned: tuple[Point, ...] = ()
    pace: str = "normal"
    mode: str = "foot"


@dataclass(frozen=True)
class Resource:
    kind: str
    x: float
    y: float
    quantity: float | None = None
    label: str | None = None


@dataclass(frozen=True)
class CampaignSpec:
    """A whole campaign map. ``travel`` overrides the cost model (:mod:`.campaign_travel`), ``layers`` picks the
    drawn layers."""

    width: int
    height: int
    scale: Scale
    regions: tuple[Region, ...] = ()
    pois: tuple[Poi, ...] = ()
    territories: tuple[Territory, ...] = ()
    routes: tuple[Route, ...] = ()
    party: Party | None = None
    resources: tuple[Resource, ...] = ()
    title: str | None = None
    layers: tuple[str, ...] = LAYERS
    travel: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pixels_per_mile(self) -> float:
        return 1.0 / self.scale.miles_per_pixel

    def poi(self, name: str) -> Poi | None:
        for poi in self.pois:
            if poi.name == name:
                return poi
        return None


# -- parsing -----------------------------------------------------------------------------------------------------


def parse_campaign(doc: Mapping[str, Any]) -> CampaignSpec:
    """The spec of a JSON document (the HTTP body, a stored spec, an imported GeoJSON's conversion), checked.

    Raises:
        InputError: A value of the wrong type or out of range, an unknown terrain or kind (listing the allowed
            ones), a self-intersecting polygon, a route naming an unknown POI, a POI off the canvas; ``param``
            names the field (``regions[2].polygon``).
    """
    if not isinstance(doc, Mapping):
        raise InputError("body", doc, "a JSON object")
    canvas = _mapping(doc.get("canvas"), "canvas")
    width = _int(canvas.get("width"), "canvas.width", 64, MAX_CANVAS)
    height = _int(canvas.get("height"), "canvas.height", 64, MAX_CANVAS)
    scale = _scale(doc.get("scale"))
    regions = tuple(
        Region(
            name=_text(r.get("name"), field_path("regions", i, "name")),
            terrain=_choice(r.get("terrain"), field_path("regions", i, "terrain"), tuple(TERRAINS)),
            polygon=_ring(r.get("polygon"), field_path("regions", i, "polygon")),
        )
        for i, r in _items(doc, "regions")
    )
    pois = tuple(_poi(p, i) for i, p in _items(doc, "pois"))
    territories = tuple(_territory(t, i) for i, t in _items(doc, "territories"))
    routes = tuple(_route(r, i) for i, r in _items(doc, "routes"))
    party = None if doc.get("party") is None else _party(_mapping(doc["party"], "party"))
    resources = tuple(
        Resource(
            kind=_choice(r.get("kind"), field_path("resources", i, "kind"), RESOURCE_KINDS),
            x=_number(r.get("x"), field_path("resources", i, "x")),
            y=_number(r.get("y"), field_path("resources", i, "y")),
            quantity=None
            if r.get("quantity") is None
            else _number(r.get("quantity"), field_path("resources", i, "quantity"), 0, 1e12),
            label=_optional_text(r.get("label"), field_path("resources", i, "label")),
        )
        for i, r in _items(doc, "resources")
    )
    layers_doc = doc.get("layers")
    layers = LAYERS
    if layers_doc is not None:
        if not isinstance(layers_doc, list):
            raise InputError("layers", layers_doc, f"a list of layer names: {', '.join(LAYERS)}")
        picked = {_choice(name, field_path("layers", i), LAYERS) for i, name in enumerate(layers_doc)}
        layers = tuple(name for name in LAYERS if name in picked)
    travel = doc.get("travel") or {}
    if not isinstance(travel, Mapping):
        raise InputError("travel", travel, "an object of cost-model overrides")
    spec = CampaignSpec(
        width=width,
        height=height,
        scale=scale,
        regions=regions,
        pois=pois,
        territories=territories,
        routes=routes,
        party=party,
        resources=resources,
        title=_optional_text(doc.get("title"), "title"),
        layers=layers,
        travel=dict(travel),
    )
    check_campaign(spec)
    return spec


def check_campaign(spec: CampaignSpec) -> None:
    """The rules that need the whole spec: names unique, everything on the canvas, polygons simple, routes and
    contested claims naming what exists, hexes only with a hex scale.

    Raises:
        InputError: ``param`` names the first field that breaks a rule.
    """
    from shapely.geometry import Polygon

    def on_canvas(x: float, y: float, where: str) -> None:
        if not (0 <= x <= spec.width and 0 <= y <= spec.height):
            raise InputError(where, [x, y], f"a point on the {spec.width} x {spec.height} canvas")

    for i, region in enumerate(spec.regions):
        for j, (x, y) in enumerate(region.polygon):
            on_canvas(x, y, field_path("regions", i, "polygon", j))
        if not Polygon(region.polygon).is_valid:
            raise InputError(
                field_path("regions", i, "polygon"), region.name, "a simple polygon (its edges must not cross)"
            )
    names: set[str] = set()
    for i, poi in enumerate(spec.pois):
        if poi.name in names:
            raise InputError(field_path("pois", i, "name"), poi.name, "a name no other POI has")
        names.add(poi.name)
        on_canvas(poi.x, poi.y, field_path("pois", i))
    factions = {t.name for t in spec.territories}
    if len(factions) != len(spec.territories):
        seen: set[str] = set()
        for i, t in enumerate(spec.territories):
            if t.name in seen:
                raise InputError(field_path("territories", i, "name"), t.name, "a name no other territory has")
            seen.add(t.name)
    for i, territory in enumerate(spec.territories):
        for k, polygon in enumerate(territory.polygons):
            # One ring is "polygon" (as spec_to_json writes it), several "polygons[k]".
            where = (
                field_path("territories", i, "polygon")
                if len(territory.polygons) == 1
                else (field_path("territories", i, "polygons", k))
            )
            for j, (x, y) in enumerate(polygon):
                on_canvas(x, y, f"{where}[{j}]")
            if not Polygon(polygon).is_valid:
                raise InputError(where, territory.name, "a simple polygon (its edges must not cross)")
        if territory.hexes and spec.scale.hex is None:
            raise InputError(field_path("territories", i, "hexes"), territory.name, "hexes need a hex scale")
        if territory.contested_with is not None and territory.contested_with not in factions - {territory.name}:
            where = field_path("territories", i, "contested_with")
            raise InputError(where, territory.contested_with, f"another territory: {', '.join(sorted(factions))}")
    for i, route in enumerate(spec.routes):
        for j, (x, y) in enumerate(route.points):
            on_canvas(x, y, field_path("routes", i, "points", j))
        for key, name in [
            ("from", route.from_),
            ("to", route.to),
            *[(f"via[{k}]", v) for k, v in enumerate(route.via)],
        ]:
            if name is not None and name not in names:
                where = f"{field_path('routes', i)}.{key}"
                raise InputError(where, name, f"the name of a POI: {', '.join(sorted(names)) or 'none given'}")
    if spec.party is not None:
        on_canvas(spec.party.x, spec.party.y, "party")
        for key in ("travelled", "planned"):
            for j, (x, y) in enumerate(getattr(spec.party, key)):
                on_canvas(x, y, field_path("party", key, j))
    for i, resource in enumerate(spec.resources):
        on_canvas(resource.x, resource.y, field_path("resources", i))


def route_points(spec: CampaignSpec, route: Route) -> tuple[Point, ...]:
    """A route's polyline: its own points, or its POIs' positions in order (from, via..., to)."""
    if route.points:
        return route.points
    chain = [route.from_, *route.via, route.to]
    out = []
    for name in chain:
        poi = spec.poi(name) if name is not None else None
        if poi is not None:
            out.append((poi.x, poi.y))
    return tuple(out)


def hex_center(q: int, r: int, hexes: HexScale) -> Point:
    """The pixel centre of axial hex ``(q, r)``: hex ``(0, 0)`` sits in the canvas's top-left corner, its
    bounding box touching both edges (Red Blob's hex-to-pixel, shifted by the hex's half extent)."""
    s = hexes.size_px
    if hexes.orientation == "flat":
        return (s * 1.5 * q + s, s * (math.sqrt(3) / 2 * q + math.sqrt(3) * r) + math.sqrt(3) / 2 * s)
    return (s * (math.sqrt(3) * q + math.sqrt(3) / 2 * r) + math.sqrt(3) / 2 * s, s * 1.5 * r + s)


def hex_corners(q: int, r: int, hexes: HexScale) -> tuple[Point, ...]:
    """The six corners of axial hex ``(q, r)``, clockwise on screen (corner i at 60 i degrees; pointy: minus 30)."""
    cx, cy = hex_center(q, r, hexes)
    start = 0.0 if hexes.orientation == "flat" else -30.0
    return tuple(
        (
            cx + hexes.size_px * math.cos(math.radians(start + 60 * i)),
            cy + hexes.size_px * math.sin(math.radians(start + 60 * i)),
        )
        for i in range(6)
    )


def pixel_to_hex(x: float, y: float, hexes: HexScale) -> tuple[int, int]:
    """The axial hex holding pixel ``(x, y)`` (the inverse of :func:`hex_center`, cube-rounded)."""
    s = hexes.size_px
    if hexes.orientation == "flat":
        px, py = x - s, y - math.sqrt(3) / 2 * s
        qf, rf = (2 / 3 * px) / s, (-1 / 3 * px + math.sqrt(3) / 3 * py) / s
    else:
        px, py = x - math.sqrt(3) / 2 * s, y - s
        qf, rf = (math.sqrt(3) / 3 * px - 1 / 3 * py) / s, (2 / 3 * py) / s
    sf = -qf - rf
    q, r, s_ = round(qf), round(rf), round(sf)
    dq, dr, ds = abs(q - qf), abs(r - rf), abs(s_ - sf)
    if dq > dr and dq > ds:
        q = -r - s_
    elif dr > ds:
        r = -q - s_
    return (int(q), int(r))


_SQRT3 = math.sqrt(3.0)
# Integer corner lattice: a hex's centre and its six corners (hex_corners' order) in lattice steps.
_FLAT = ((2, 0, 1, 0, 1), (2, 1, -1, -2, -1, 1), (0, 1, 1, 0, -1, -1))
_POINTY = ((1, 0, 0, 0, 1), (1, 1, 0, -1, -1, 0), (-1, 1, 2, 1, -1, -2))


def hex_lattice(cells: Any, hexes: HexScale) -> tuple[Any, tuple[float, float]]:
    """The six corners of each axial hex in ``cells`` (``n x 2`` ints) as integer lattice points (``n x 6 x 2``),
    and the lattice steps ``(sx, sy)`` in px: corner ``(X, Y)`` is at ``(X sx, Y sy)``.

    Flat: steps ``(size/2, sqrt(3) size/2)``, centre ``(3q + 2, q + 2r + 1)``; pointy: steps ``(sqrt(3) size/2,
    size/2)``, centre ``(2q + r + 1, 3r + 2)``; the corners in :func:`hex_corners`' order. Neighbouring
    hexes share corners exactly, so merged hexes have no slivers.
    """
    import numpy as np

    s = hexes.size_px
    q, r = cells[:, 0:1].astype(np.int64), cells[:, 1:2].astype(np.int64)
    if hexes.orientation == "flat":
        cx, cy = 3 * q + 2, q + 2 * r + 1
        dx, dy = _FLAT[1], _FLAT[2]
        steps = (s / 2, _SQRT3 * s / 2)
    else:
        cx, cy = 2 * q + r + 1, 3 * r + 2
        dx, dy = _POINTY[1], _POINTY[2]
        steps = (_SQRT3 * s / 2, s / 2)
    corners = np.stack([cx + np.asarray(dx), cy + np.asarray(dy)], axis=-1)
    return corners, steps


def territory_shape(spec: CampaignSpec, territory: Territory) -> Any:
    """The territory's land as one shapely (Multi)Polygon: its polygons and hexes merged, so its border runs round
    the whole and never between two of its own pieces. Hexes merge exactly on the integer corner lattice
    (:func:`hex_lattice`, shapely ``coverage_union_all``: neighbours share corners exactly, so no slivers, and
    about 30x faster for a few hundred hexes than merging buffered polygons); polygons merge through a hair of
    buffer (1e-6 px) that closes float gaps between touching rings; needless vertices are dropped (0.01 px)."""
    import numpy as np
    import shapely
    from shapely.geometry import Polygon

    parts = []
    if territory.hexes and spec.scale.hex is not None:
        corners, (sx, sy) = hex_lattice(np.asarray(territory.hexes, dtype=np.int64), spec.scale.hex)
        parts.append(shapely.coverage_union_all(shapely.polygons(corners.astype(np.float64) * np.array([sx, sy]))))
    if territory.polygons:
        rings = [Polygon(ring).buffer(1e-6) for ring in territory.polygons]
        parts = [p.buffer(1e-6) for p in parts] + rings
        land = shapely.union_all(parts).buffer(-1e-6)
    else:
        land = parts[0]
    return shapely.simplify(land, 0.01, preserve_topology=True)


def polyline_length(points: Sequence[Point]) -> float:
    """Length of a polyline in pixels."""
    return sum(math.dist(a, b) for a, b in itertools.pairwise(points))


def spec_to_json(spec: CampaignSpec) -> dict[str, Any]:
    """The JSON contract of ``spec`` (what :func:`parse_campaign` reads back to an equal spec)."""

    def pts(points: Sequence[Point]) -> list[list[float]]:
        return [[float(x), float(y)] for x, y in points]

    scale: dict[str, Any]
    if spec.scale.hex is not None:
        h = spec.scale.hex
        scale = {"hex": {"size_px": h.size_px, "miles_per_hex": h.miles_per_hex, "orientation": h.orientation}}
    else:
        scale = {"miles_per_pixel": spec.scale.miles_per_pixel}
    doc: dict[str, Any] = {
        "canvas": {"width": spec.width, "height": spec.height},
        "scale": scale,
        "regions": [{"name": r.name, "terrain": r.terrain, "polygon": pts(r.polygon)} for r in spec.regions],
        "pois": [
            {
                "name": p.name,
                "kind": p.kind,
                "x": p.x,
                "y": p.y,
                "importance": p.importance,
                **({"icon": p.icon} if p.icon else {}),
            }
            for p in spec.pois
        ],
        "territories": [],
        "routes": [],
        "resources": [
            {
                "kind": r.kind,
                "x": r.x,
                "y": r.y,
                **({"quantity": r.quantity} if r.quantity is not None else {}),
                **({"label": r.label} if r.label else {}),
            }
            for r in spec.resources
        ],
    }
    for t in spec.territories:
        entry: dict[str, Any] = {"name": t.name, "color": t.color}
        if len(t.polygons) == 1:
            entry["polygon"] = pts(t.polygons[0])
        elif t.polygons:
            entry["polygons"] = [pts(p) for p in t.polygons]
        if t.hexes:
            entry["hexes"] = [[q, r] for q, r in t.hexes]
        if t.contested_with:
            entry["contested_with"] = t.contested_with
        doc["territories"].append(entry)
    for r in spec.routes:
        entry = {"kind": r.kind}
        if r.name:
            entry["name"] = r.name
        if r.points:
            entry["points"] = pts(r.points)
        else:
            entry.update({"from": r.from_, "to": r.to})
            if r.via:
                entry["via"] = list(r.via)
        doc["routes"].append(entry)
    if spec.party is not None:
        p = spec.party
        doc["party"] = {
            "name": p.name,
            "x": p.x,
            "y": p.y,
            "travelled": pts(p.travelled),
            "planned": pts(p.planned),
            "pace": p.pace,
            "mode": p.mode,
        }
    if spec.title:
        doc["title"] = spec.title
    if spec.layers != LAYERS:
        doc["layers"] = list(spec.layers)
    if spec.travel:
        doc["travel"] = dict(spec.travel)
    return doc


# -- field readers -------------------------------------------------------------------------------------------


def _items(doc: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise InputError(key, items, "a list")
    if len(items) > MAX_ITEMS:
        raise InputError(key, len(items), f"at most {MAX_ITEMS} entries")
    return [(i, _mapping(item, field_path(key, i))) for i, item in enumerate(items)]


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(where, value, "an object")
    return value


def _number(value: Any, where: str, low: float = -1e9, high: float = 1e9) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(where, value, "a finite number")
    if not low <= value <= high:
        raise InputError(where, value, f"a number from {low:g} to {high:g}")
    return float(value)


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(where, value, f"an integer from {low} to {high}")
    if not low <= value <= high:
        raise InputError(where, value, f"an integer from {low} to {high}")
    return value


def _text(value: Any, where: str, max_len: int = 80) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InputError(where, value, f"a non-empty text of at most {max_len} characters")
    return value.strip()


def _optional_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _choice(value: Any, where: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InputError(where, value, f"one of {', '.join(allowed)}")
    return str(value)


def _point(value: Any, where: str) -> Point:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InputError(where, value, "an [x, y] pair of numbers")
    return (_number(value[0], where), _number(value[1], where))


def _points(value: Any, where: str, minimum: int) -> tuple[Point, ...]:
    if not isinstance(value, list | tuple) or not minimum <= len(value) <= MAX_POINTS:
        raise InputError(where, value, f"a list of {minimum} to {MAX_POINTS} [x, y] points")
    return tuple(_point(p, f"{where}[{i}]") for i, p in enumerate(value))


def _ring(value: Any, where: str) -> tuple[Point, ...]:
    """A polygon's ring without the closing repeat (one is dropped if given)."""
    ring = _points(value, where, 3)
    if len(ring) > 3 and ring[0] == ring[-1]:
        ring = ring[:-1]
    if len(set(ring)) < 3:
        raise InputError(where, value, "at least 3 distinct corners")
    return ring


def _scale(value: Any) -> Scale:
    doc = _mapping(value, "scale")
    if doc.get("hex") is not None:
        h = _mapping(doc["hex"], "scale.hex")
        size = _number(h.get("size_px"), "scale.hex.size_px", 4, 1024)
        miles = _number(h.get("miles_per_hex", 6.0), "scale.hex.miles_per_hex", 0.01, 10000)
        orientation = _choice(h.get("orientation", "flat"), "scale.hex.orientation", ("flat", "pointy"))
        return Scale(miles / (math.sqrt(3) * size), HexScale(size, miles, orientation))
    if doc.get("miles_per_pixel") is None:
        raise InputError("scale", dict(doc), "{miles_per_pixel} or {hex: {size_px, miles_per_hex}}")
    return Scale(_number(doc.get("miles_per_pixel"), "scale.miles_per_pixel", 1e-6, 1000))


def _poi(doc: Mapping[str, Any], i: int) -> Poi:
    kind = _choice(doc.get("kind"), field_path("pois", i, "kind"), tuple(POI_KINDS))
    importance = doc.get("importance", POI_KINDS[kind])
    return Poi(
        name=_text(doc.get("name"), field_path("pois", i, "name")),
        kind=kind,
        x=_number(doc.get("x"), field_path("pois", i, "x")),
        y=_number(doc.get("y"), field_path("pois", i, "y")),
        importance=_int(importance, field_path("pois", i, "importance"), 1, 5),
        icon=_optional_text(doc.get("icon"), field_path("pois", i, "icon")),
    )


def _territory(doc: Mapping[str, Any], i: int) -> Territory:
    where = field_path("territories", i)
    color = doc.get("color")
    if not isinstance(color, str) or not _COLOR.fullmatch(color):
        raise InputError(f"{where}.color", color, "a colour: #rrggbb")
    polygons: list[tuple[Point, ...]] = []
    if doc.get("polygon") is not None and doc.get("polygons") is not None:
        raise InputError(f"{where}.polygons", doc.get("name"), "polygon or polygons, not both")
    if doc.get("polygon") is not None:
        polygons.append(_ring(doc["polygon"], f"{where}.polygon"))
    rings = doc.get("polygons") or []
    if not isinstance(rings, list):
        raise InputError(f"{where}.polygons", rings, "a list of polygons")
    for k, ring in enumerate(rings):
        polygons.append(_ring(ring, f"{where}.polygons[{k}]"))
    hexes = []
    for k, cell in enumerate(doc.get("hexes") or []):
        if not isinstance(cell, list | tuple) or len(cell) != 2 or not all(isinstance(c, int) for c in cell):
            raise InputError(f"{where}.hexes[{k}]", cell, "an axial [q, r] pair of integers")
        hexes.append((int(cell[0]), int(cell[1])))
    if not polygons and not hexes:
        raise InputError(where, doc.get("name"), "a territory needs polygon, polygons or hexes")
    return Territory(
        name=_text(doc.get("name"), f"{where}.name"),
        color=str(color),
        polygons=tuple(polygons),
        hexes=tuple(hexes),
        contested_with=_optional_text(doc.get("contested_with"), f"{where}.contested_with"),
    )


def _route(doc: Mapping[str, Any], i: int) -> Route:
    where = field_path("routes", i)
    kind = _choice(doc.get("kind"), f"{where}.kind", ROUTE_KINDS)
    name = _optional_text(doc.get("name"), f"{where}.name")
    if doc.get("points") is not None:
        return Route(kind, name, points=_points(doc["points"], f"{where}.points", 2))
    start, end = doc.get("from"), doc.get("to")
    if start is None or end is None:
        raise InputError(where, dict(doc), "points, or from and to (POI names)")
    via = doc.get("via") or []
    if not isinstance(via, list):
        raise InputError(f"{where}.via", via, "a list of POI names")
    return Route(
        kind,
        name,
        from_=_text(start, f"{where}.from"),
        to=_text(end, f"{where}.to"),
        via=tuple(_text(v, f"{where}.via[{k}]") for k, v in enumerate(via)),
    )


def _party(doc: Mapping[str, Any]) -> Party:
    return Party(
        x=_number(doc.get("x"), "party.x"),
        y=_number(doc.get("y"), "party.y"),
        name=_optional_text(doc.get("name"), "party.name") or "Party",
        travelled=() if doc.get("travelled") is None else _points(doc["travelled"], "party.travelled", 0),
        planned=() if doc.get("planned") is None else _points(doc["planned"], "party.planned", 0),
        pace=_choice(doc.get("pace", "normal"), "party.pace", PACES),
        mode=_choice(doc.get("mode", "foot"), "party.mode", MODES),
    )
