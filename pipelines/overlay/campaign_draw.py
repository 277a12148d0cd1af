"""The campaign-map renderer: a :class:`~.campaign.CampaignSpec` drawn over map art (or parchment), anti-aliased
and deterministic.

:func:`render_campaign` paints the spec's enabled layers in :data:`~.campaign.LAYERS` order over the base image and
returns an RGB image of exactly ``spec.width x spec.height`` (a base of another size is resized to it, Lanczos; no
base gives a :data:`~.draw.PARCHMENT` canvas). :func:`render_campaign_png` encodes it (:func:`pipelines.encode.encode`,
fast PNG: compression level 1, no metadata, so the bytes repeat). :func:`render_campaign_detailed` also returns
what was laid out (label placements, the scale bar, the legend's, compass's and scale bar's boxes), for tests and
callers that want to know what went where.

**Engine.** The tactical overlay's (:mod:`.draw`): its pixel buffer (``_Surface``: one RGBX buffer that Pillow and
two skia canvases share), paints (``_fill``, ``_stroke``, ``_color``) and path helpers are reused as they are; this
module only adds the campaign layers. Large translucent fills (territories, hatches) go through the RGBA canvas,
everything else through the BGRA one (colours swapped, see :mod:`.draw`).

**Coordinates** are canvas pixels, x right, y down; pixel ``(i, j)`` covers ``[i, i + 1] x [j, j + 1]``. Sizes scale
with the canvas: ``u = max(0.5, min(width, height) / 1024)`` (:func:`unit`); widths below are in px times ``u``.

**Layers** (bottom to top, each only when in ``spec.layers``):

- ``hex_grid`` (with a hex scale): every edge of the tiling that touches the canvas, once (each hex draws its edges
  0, 1 and 2, the other three being its neighbours'), one stroked path, :data:`HEX_GRID_COLOR` at
  :data:`HEX_GRID_OPACITY`, ``max(1, 0.035 size_px)`` wide. Corners come from an integer lattice
  (:func:`~.campaign.hex_lattice`), so neighbours share corners exactly.
- ``territories``: each faction's land (:func:`~.campaign.territory_shape`)
  filled once with its colour at :data:`TERRITORY_OPACITY`, in spec order. Land a territory with ``contested_with``
  shares with the territory it names (the intersection, when it has area) is then hatched: 45-degree stripes
  (lines ``x + y = c``), period :func:`hatch_period` measured across the stripes, half in the claimant's colour
  and half in the other's, both at :data:`HATCH_OPACITY`; a pair claiming each other is hatched once.
- ``borders``: the boundary linework of all territories merged (shapely ``union_all`` of every land's boundary on a
  0.001 px grid, then ``line_merge``): a land's border runs round its merged shape only (never between its own
  pieces), and an edge two territories share is one line, stroked once. One path, :data:`BORDER_COLOR` at
  :data:`BORDER_OPACITY`, ``max(2.5, 2.5 u)`` wide, round joins.
- ``routes``: polylines (:func:`~.campaign.route_points`) in :data:`ROUTE_STYLES` (road solid brown, trail dashed
  brown, river wider blue, sea lane dotted navy), one path per kind.
- ``resources``: a disc in the kind's colour (:data:`RESOURCE_STYLES`) with a white glyph, radius ``6 u``, and the
  label and/or quantity (``1.2k``, ``3M``) to its right.
- ``pois``: a vector icon by kind (or by ``icon`` when that names a kind): capital a star in a ring, city a dot in a
  ring, town a circle, village a dot, fort a square, temple a cross, dungeon an arched doorway, ruin a broken
  square, landmark a diamond, port an anchor, camp a tent; radius :func:`icon_radius` ``max(3, (2 + 1.4 i) u)`` for
  importance ``i``; its box ``(x - r, y - r, x + r, y + r)`` holds all of it.
- ``party``: the travelled path (``travelled`` then the party's position) solid, the planned path (position then
  ``planned``) dashed, both :data:`PARTY_COLOR`; a white dot ringed in that colour at each day mark with its day
  number (1, 2, ...) above right; the party marker (a white-ringed red disc, radius ``9 u``) at ``(x, y)``.
- ``labels``: POI names (size by importance), the party's name, region names and route names, placed by
  :func:`place_labels` around their anchors and drawn with a light halo.
- ``legend``: a boxed panel ``m = 12 u`` from the canvas edges, in the corner that covers the least (POIs weighed
  by importance; top-left first on a tie; see ``_Scene._legend_box``), listing the title (if any), the factions,
  the route kinds, POI kinds and resource kinds present (each only if its layer is on) and the party
  (:func:`campaign_legend_entries`); left out when even at 6 px it does not fit on the canvas.
- ``compass``: a north arrow with an ``N`` above it in the top-right corner.
- ``scale_bar``: a solid dark bar of :func:`nice_scale_miles` miles, exactly ``miles / miles_per_pixel`` px long,
  its left end on a whole pixel, labelled ``"50 mi"``, on a light panel in the bottom-left corner (bottom-right
  when the legend is there or reaches down to it).

**Labels.** Placement runs before any drawing, so labels avoid everything that is drawn, including what is drawn
after them: the icon boxes of POIs, resources and the party, the day numbers, and the legend, compass and scale bar
panels (each only when its layer is on). Then the layers are painted in order.

**Determinism.** No randomness and no clocks; same inputs, same pixels (as :mod:`.draw`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import skia

from pipelines.overlay import fonts
from pipelines.overlay.campaign import (
    POI_KINDS,
    RESOURCE_KINDS,
    ROUTE_KINDS,
    CampaignSpec,
    HexScale,
    Poi,
    Point,
    Resource,
    hex_lattice,
    pixel_to_hex,
    polyline_length,
    route_points,
    territory_shape,
)
from pipelines.overlay.draw import _add_poly, _color, _fill, _hex, _polyline, _stroke, _Surface

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "BORDER_COLOR",
    "BORDER_OPACITY",
    "HATCH_OPACITY",
    "HEX_GRID_COLOR",
    "HEX_GRID_OPACITY",
    "INK",
    "PARTY_COLOR",
    "POSITIONS",
    "RESOURCE_STYLES",
    "ROUTE_STYLES",
    "TERRITORY_OPACITY",
    "Box",
    "CampaignRender",
    "LabelItem",
    "LegendEntry",
    "Placement",
    "ResourceStyle",
    "RouteStyle",
    "ScaleBar",
    "campaign_legend_entries",
    "candidate_box",
    "hatch_period",
    "icon_radius",
    "nice_scale_miles",
    "place_labels",
    "render_campaign",
    "render_campaign_detailed",
    "render_campaign_png",
    "unit",
]

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in canvas pixels, ``x0 <= x1``, ``y0 <= y1``."""

INK = "#2b2118"
"""Icons, labels, the scale bar."""
PAPER = "#fbf6ea"
"""Icon fills, label halos, panels."""
HEX_GRID_COLOR = "#2b2118"
HEX_GRID_OPACITY = 0.22
TERRITORY_OPACITY = 0.22
HATCH_OPACITY = 0.5
BORDER_COLOR = "#2b2118"
BORDER_OPACITY = 0.6
PARTY_COLOR = "#c62828"
REGION_INK = "#5a4630"
PANEL_OPACITY = 0.88


@dataclass(frozen=True)
class RouteStyle:
    """How a route kind is drawn: colour and width (in units of ``u``); ``dash``: on/off lengths in multiples of the
    width (butt ends; empty for a solid line with round ends); ``dots``: instead of a line, discs as wide as the line
    every ``dots`` widths (stamped along the path, cheaper than round-capped zero-length dashes)."""

    color: str
    width: float
    dash: tuple[float, ...] = ()
    dots: float = 0.0
    label: str = ""


ROUTE_STYLES: dict[str, RouteStyle] = {
    "road": RouteStyle("#7b4a1e", 3.0, label="Road"),
    "trail": RouteStyle("#8a5a2b", 2.2, dash=(3.0, 2.2), label="Trail"),
    "river": RouteStyle("#2f6fb5", 5.0, label="River"),
    "sea_lane": RouteStyle("#1f3a6b", 2.4, dots=2.6, label="Sea lane"),
}


@dataclass(frozen=True)
class ResourceStyle:
    """A resource kind's disc colour and white glyph (``pick``, ``wheat``, ``tree``, ``fish``, ``block``,
    ``sparkle``, ``dot``)."""

    color: str
    glyph: str
    label: str


RESOURCE_STYLES: dict[str, ResourceStyle] = {
    "mine": ResourceStyle("#5d5d5d", "pick", "Mine"),
    "farm": ResourceStyle("#b8902a", "wheat", "Farm"),
    "lumber": ResourceStyle("#3f6b2e", "tree", "Lumber"),
    "fishery": ResourceStyle("#2f6fb5", "fish", "Fishery"),
    "quarry": ResourceStyle("#8a7f72", "block", "Quarry"),
    "magic_site": ResourceStyle("#7b3fa0", "sparkle", "Magic site"),
    "custom": ResourceStyle("#c0651a", "dot", "Resource"),
}

POSITIONS = ("right", "left", "above", "below", "above_right", "above_left", "below_right", "below_left")
"""Candidate label positions around an anchor, in the order :func:`place_labels` tries them."""

_PLACES: dict[str, tuple[int, int]] = {
    # (horizontal, vertical): -1 before the anchor, 0 centred on it, +1 after it
    "center": (0, 0),
    "right": (1, 0),
    "left": (-1, 0),
    "above": (0, -1),
    "below": (0, 1),
    "above_right": (1, -1),
    "above_left": (-1, -1),
    "below_right": (1, 1),
    "below_left": (-1, 1),
}

_RGB = tuple[int, int, int]


# -- public data --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelItem:
    """A label to place: ``width x height`` px (halo included), to sit ``gap`` px clear of ``anchor`` on both axes
    that it is offset along; higher ``priority`` is placed first; ``centered`` tries centred on the anchor first
    (region and route names)."""

    text: str
    anchor: Point
    width: float
    height: float
    priority: float = 0.0
    gap: float = 0.0
    centered: bool = False


@dataclass(frozen=True)
class Placement:
    """Where a label went: ``box`` and ``position`` (a :data:`POSITIONS` name or ``"center"``), both None when the
    label had no free position and was dropped."""

    text: str
    anchor: Point
    box: Box | None
    position: str | None

    @property
    def dropped(self) -> bool:
        return self.box is None


@dataclass(frozen=True)
class ScaleBar:
    """The scale bar as drawn: ``miles`` long, ``length_px = miles / miles_per_pixel``; the bar is the rectangle
    ``[x0, x0 + length_px] x [y0, y0 + thickness]``; ``box`` is its whole panel."""

    miles: float
    length_px: float
    label: str
    x0: float
    y0: float
    thickness: float
    box: Box


@dataclass(frozen=True)
class LegendEntry:
    """A legend row: ``section`` (``faction``, ``route``, ``poi``, ``resource``, ``party``), the kind or faction
    name as ``key``, the text shown, and the faction's colour."""

    section: str
    key: str
    label: str
    color: str | None = None


@dataclass(frozen=True)
class CampaignRender:
    """A render and its layout: label placements in item order (POIs in spec order, then the party, regions and
    named routes), the scale bar, the panels' boxes (None when the layer is off or empty)."""

    image: Image.Image
    placements: tuple[Placement, ...]
    scale_bar: ScaleBar | None
    legend_box: Box | None
    compass_box: Box | None
    legend: tuple[LegendEntry, ...]


# -- entry points -------------------------------------------------------------------------------------------------


def render_campaign(base: Image.Image | None, spec: CampaignSpec, *, day_marks: Sequence[Point] = ()) -> Image.Image:
    """Draws the spec's enabled layers over ``base``.

    Args:
        base: The map art (any mode and size: resized to the canvas, Lanczos), or None for parchment.
        spec: The checked campaign spec (:func:`~.campaign.parse_campaign`).
        day_marks: Where each day of the party's planned path ends (:func:`~.campaign_measure.measure_campaign`'s
            ``day_marks``), numbered from 1 on the map.

    Returns:
        An RGB image of exactly ``spec.width x spec.height``.
    """
    return render_campaign_detailed(base, spec, day_marks=day_marks).image


def render_campaign_png(base: Image.Image | None, spec: CampaignSpec, *, day_marks: Sequence[Point] = ()) -> bytes:
    """:func:`render_campaign` as PNG (fast level-1 compression, no metadata: the same inputs give the same bytes)."""
    from pipelines.encode import encode

    return encode(render_campaign(base, spec, day_marks=day_marks), "png", fast=True)


def render_campaign_detailed(
    base: Image.Image | None, spec: CampaignSpec, *, day_marks: Sequence[Point] = ()
) -> CampaignRender:
    """:func:`render_campaign` with its layout (:class:`CampaignRender`)."""
    surface = _Surface(spec.width, spec.height)
    surface.load(base)
    scene = _Scene(surface, spec, tuple(day_marks))
    for layer, painter in _PAINTERS:
        if layer in spec.layers:
            painter(scene)
    return CampaignRender(
        image=surface.image(),
        placements=tuple(scene.placements),
        scale_bar=scene.scale_bar,
        legend_box=scene.legend_box,
        compass_box=scene.compass_box,
        legend=tuple(scene.legend_entries),
    )


# -- pure layout --------------------------------------------------------------------------------------------------


def unit(spec: CampaignSpec) -> float:
    """The size unit ``u``: ``max(0.5, min(width, height) / 1024)`` (1 on a 1024 px map)."""
    return max(0.5, min(spec.width, spec.height) / 1024)


def icon_radius(importance: int, u: float) -> float:
    """A POI icon's radius in px: ``max(3, (2 + 1.4 importance) u)``; its box is the square of that half side."""
    return max(3.0, (2.0 + 1.4 * importance) * u)


def hatch_period(u: float) -> float:
    """The contested hatch's period across the stripes: ``max(8, 12 u)`` px (each colour half of it)."""
    return max(8.0, 12.0 * u)


def candidate_box(item: LabelItem, position: str) -> Box:
    """The box of ``item`` at ``position`` (``"center"`` or a :data:`POSITIONS` name).

    Horizontally: ``right``-ish boxes start ``gap`` right of the anchor (``x0 = ax + gap``), ``left``-ish ones end
    ``gap`` left of it (``x1 = ax - gap``), the others are centred on it; vertically likewise with ``above``
    (``y1 = ay - gap``) and ``below`` (``y0 = ay + gap``). Diagonals take the full gap on both axes, so a label never
    covers its own icon's box when ``gap`` is at least the icon's half side.
    """
    ax, ay = item.anchor
    w, h, g = item.width, item.height, item.gap
    horizontal, vertical = _PLACES[position]
    x0 = ax + g if horizontal > 0 else ax - g - w if horizontal < 0 else ax - w / 2
    y0 = ay + g if vertical > 0 else ay - g - h if vertical < 0 else ay - h / 2
    return (x0, y0, x0 + w, y0 + h)


def place_labels(items: Sequence[LabelItem], obstacles: Sequence[Box], width: float, height: float) -> list[Placement]:
    """Greedy label placement.

    Items are taken by priority, highest first (ties in input order). Each tries its candidate boxes
    (:func:`candidate_box`: ``"center"`` first when ``centered``, then :data:`POSITIONS` in order) and takes the
    first that lies inside ``[0, width] x [0, height]`` and overlaps neither an obstacle nor a label already placed
    (boxes that only touch do not overlap); an item with no such box is dropped. So no two placed boxes overlap, none
    overlaps an obstacle, and every candidate of a dropped item is blocked by the final layout. Pure: numpy
    comparisons against all boxes placed so far, one vectorised test per item.

    Args:
        items: The labels with their measured sizes.
        obstacles: Boxes no label may overlap (icons, panels).
        width: The canvas width in px.
        height: The canvas height in px.

    Returns:
        One :class:`Placement` per item, in input order.
    """
    n = len(items)
    boxes = np.empty((len(obstacles) + n, 4), dtype=np.float64)
    count = len(obstacles)
    if count:
        boxes[:count] = np.asarray(obstacles, dtype=np.float64).reshape(count, 4)
    out: list[Placement | None] = [None] * n
    for i in sorted(range(n), key=lambda k: -items[k].priority):
        item = items[i]
        positions = ("center", *POSITIONS) if item.centered else POSITIONS
        cands = np.array([candidate_box(item, p) for p in positions], dtype=np.float64)
        ok = (cands[:, 0] >= 0) & (cands[:, 1] >= 0) & (cands[:, 2] <= width) & (cands[:, 3] <= height)
        if count and ok.any():
            b = boxes[:count]
            hit = (
                (cands[:, None, 0] < b[None, :, 2])
                & (b[None, :, 0] < cands[:, None, 2])
                & (cands[:, None, 1] < b[None, :, 3])
                & (b[None, :, 1] < cands[:, None, 3])
            ).any(axis=1)
            ok &= ~hit
        free = np.flatnonzero(ok)
        if free.size:
            k = int(free[0])
            boxes[count] = cands[k]
            count += 1
            box = (float(cands[k, 0]), float(cands[k, 1]), float(cands[k, 2]), float(cands[k, 3]))
            out[i] = Placement(item.text, item.anchor, box, positions[k])
        else:
            out[i] = Placement(item.text, item.anchor, None, None)
    return [p for p in out if p is not None]


_NICE = (1.0, 2.0, 5.0)
_NICE_MORE = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5)


def nice_scale_miles(width: float, miles_per_pixel: float) -> float:
    """The scale bar's length in miles: a 1-2-5 number (..., 0.5, 1, 2, 5, 10, 20, 50, 100, ...) whose bar is 15% to
    25% of ``width`` (the one nearest 20%, in ratio); when none is, the nearest of 1, 1.5, 2, 2.5, 3, 4, 5, 7.5
    times a power of ten (one always is: no two neighbours are more than 1.5 apart).
    """
    target = 0.2 * width * miles_per_pixel
    low, high = 0.75 * target * (1 - 1e-9), 1.25 * target * (1 + 1e-9)
    top = math.floor(math.log10(target))
    for mantissas in (_NICE, _NICE_MORE):
        fits = [
            float(f"{m * 10.0**e:.12g}")
            for e in range(top - 1, top + 2)
            for m in mantissas
            if low <= m * 10.0**e <= high
        ]
        if fits:
            return min(fits, key=lambda v: (abs(math.log(v / target)), v))
    return float(f"{target:.3g}")  # unreachable: _NICE_MORE always fits


def campaign_legend_entries(spec: CampaignSpec) -> list[LegendEntry]:
    """The legend's rows: factions (spec order; ``territories`` layer), route kinds present (``routes``), POI kinds
    present (``pois``), resource kinds present (``resources``), the party (``party``)."""
    on = set(spec.layers)
    entries: list[LegendEntry] = []
    if "territories" in on:
        entries += [LegendEntry("faction", t.name, t.name, t.color) for t in spec.territories]
    if "routes" in on:
        kinds = {r.kind for r in spec.routes if len(route_points(spec, r)) >= 2}
        entries += [LegendEntry("route", k, ROUTE_STYLES[k].label) for k in ROUTE_KINDS if k in kinds]
    if "pois" in on:
        kinds = {_poi_glyph_kind(p) for p in spec.pois}
        entries += [LegendEntry("poi", k, k.replace("_", " ").capitalize()) for k in POI_KINDS if k in kinds]
    if "resources" in on:
        kinds = {r.kind for r in spec.resources}
        entries += [LegendEntry("resource", k, RESOURCE_STYLES[k].label) for k in RESOURCE_KINDS if k in kinds]
    if "party" in on and spec.party is not None:
        entries.append(LegendEntry("party", "party", spec.party.name))
    return entries


# -- geometry -----------------------------------------------------------------------------------------------------


def _hex_grid_polylines(spec: CampaignSpec, hexes: HexScale) -> np.ndarray:
    """Every edge of the hex tiling that touches the canvas, once, as ``n x 4 x 2`` px: corners 0, 1, 2, 3 of each
    hex touching the canvas (its edges 0, 1, 2). Edge ``k`` of a hex is edge ``k + 3`` of its neighbour across it,
    so each edge of the tiling is edge 0, 1 or 2 of exactly one hex, and both hexes of an edge on the canvas touch
    the canvas: no edge is missed and none is drawn twice, with no dedupe needed."""
    w, h = spec.width, spec.height
    axial = [pixel_to_hex(x, y, hexes) for x, y in ((0, 0), (w, 0), (0, h), (w, h))]
    qs = [c[0] for c in axial]
    rs = [c[1] for c in axial]
    q, r = np.meshgrid(np.arange(min(qs) - 2, max(qs) + 3), np.arange(min(rs) - 2, max(rs) + 3), indexing="ij")
    corners, (sx, sy) = hex_lattice(np.stack([q.ravel(), r.ravel()], axis=1), hexes)
    px = corners.astype(np.float64) * np.array([sx, sy])
    xs, ys = px[..., 0], px[..., 1]
    keep = (xs.max(axis=1) >= 0) & (xs.min(axis=1) <= w) & (ys.max(axis=1) >= 0) & (ys.min(axis=1) <= h)
    return px[keep][:, :4]


def _shape_path(geom: Any) -> skia.Path:
    """A shapely (Multi)Polygon (or any collection holding polygons) as one even-odd skia path."""
    import shapely

    path = skia.Path()
    path.setFillType(skia.PathFillType.kEvenOdd)
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon":
            for ring in (part.exterior, *part.interiors):
                _add_poly(path, shapely.get_coordinates(ring)[:-1].tolist(), 1.0, closed=True)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            path.addPath(_shape_path(part))
    return path


def _lines_path(geom: Any) -> skia.Path:
    """Shapely linework as one skia path (a line that returns to its start is closed, so its join is round)."""
    import shapely

    path = skia.Path()
    for part in shapely.get_parts(geom):
        if part.geom_type not in ("LineString", "LinearRing"):
            continue
        coords = shapely.get_coordinates(part).tolist()
        closed = len(coords) > 2 and coords[0] == coords[-1]
        _add_poly(path, coords[:-1] if closed else coords, 1.0, closed=closed)
    return path


def _quantity(value: float) -> str:
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{round(value / limit, 1):g}{suffix}"
    return f"{round(value, 1):g}"


def _poi_glyph_kind(poi: Poi) -> str:
    return poi.icon if poi.icon in _POI_GLYPHS else poi.kind


# -- the scene ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Label:
    """How a placed label is drawn."""

    size: float
    ink: _RGB
    opacity: float = 1.0


class _Scene:
    """The render's state: the canvases, sizes, fonts, the territories' lands (computed once, on first use), and
    the layout done before any drawing (panels, icon boxes, label placements)."""

    def __init__(self, surface: _Surface, spec: CampaignSpec, day_marks: tuple[Point, ...]) -> None:
        self.canvas = surface.canvas
        self.cells = surface.cells
        self.spec = spec
        self.day_marks = day_marks
        self.u = unit(spec)
        self.margin = 12.0 * self.u
        self.font_px = max(9.0, 11.0 * self.u)
        self._fonts: dict[float, skia.Font] = {}
        self._lands: list[Any] | None = None
        on = set(spec.layers)
        self.legend_entries = campaign_legend_entries(spec) if "legend" in on else []
        self.legend_font = 0.9 * self.font_px
        self.legend_box = self._legend_box() if self.legend_entries or ("legend" in on and spec.title) else None
        self.compass_box = self._compass_box() if "compass" in on else None
        self.scale_bar = self._scale_bar() if "scale_bar" in on else None
        self.placements: list[Placement] = []
        self.label_styles: list[_Label] = []
        if "labels" in on:
            self._place()

    # fonts and text

    def font(self, size: float) -> skia.Font:
        font = self._fonts.get(size)
        if font is None:
            font = self._fonts[size] = fonts.skia_font(size, bold=True)
        return font

    def text_size(self, text: str, size: float) -> tuple[float, float]:
        """Width and height (ascent to descent) of ``text`` at ``size`` px."""
        font = self.font(size)
        metrics = font.getMetrics()
        return font.measureText(text), metrics.fDescent - metrics.fAscent

    def text(
        self,
        text: str,
        left: float,
        top: float,
        size: float,
        ink: _RGB,
        *,
        halo: _RGB | None = None,
        opacity: float = 1.0,
    ) -> None:
        """``text`` with its ascent line at ``top`` and its left edge at ``left``."""
        font = self.font(size)
        blob = skia.TextBlob.MakeFromString(text, font)
        if blob is None:
            return
        baseline = top - font.getMetrics().fAscent
        if halo is not None:
            self.canvas.drawTextBlob(blob, left, baseline, _stroke(halo, _halo(size), opacity))
        self.canvas.drawTextBlob(blob, left, baseline, _fill(ink, opacity))

    # lands

    @property
    def lands(self) -> list[Any]:
        if self._lands is None:
            self._lands = [territory_shape(self.spec, t) for t in self.spec.territories]
        return self._lands

    # panels

    def _legend_metrics(self) -> tuple[float, float, float]:
        """Font size, row height and padding of the legend."""
        f = self.legend_font
        return f, 1.5 * f, 0.7 * f

    def _legend_size(self, f: float) -> tuple[float, float]:
        """The legend panel's width and height at font size ``f``."""
        row, pad = 1.5 * f, 0.7 * f
        widths = [self.text_size(e.label, f)[0] for e in self.legend_entries]
        body = 2.4 * f + max(widths, default=0.0)
        height = 2 * pad + row * len(self.legend_entries)
        if self.spec.title:
            tw, th = self.text_size(self.spec.title, 1.25 * f)
            body = max(body, tw)
            height += th + 0.5 * f
        return body + 2 * pad, height

    def _legend_box(self) -> Box | None:
        """The legend panel: its font shrunk (to 6 px at least) until it is at most 3/4 of the canvas high (None,
        no legend, if it still does not fit on the canvas), in the first corner, of top-left, top-right (without a
        compass), bottom-left and bottom-right, that covers the least: the sum of the importances of the POIs it
        covers (resources 1, the party 5)."""
        spec, m = self.spec, self.margin
        f = 0.9 * self.font_px
        w, h = self._legend_size(f)
        limit = 0.75 * (spec.height - 2 * m)
        if h > limit:
            f = max(6.0, f * limit / h)
            w, h = self._legend_size(f)
        self.legend_font = f
        if w > spec.width - 2 * m or h > spec.height - 2 * m:
            return None
        corners = [(m, m)]
        if "compass" not in spec.layers:
            corners.append((spec.width - m - w, m))
        corners += [(m, spec.height - m - h), (spec.width - m - w, spec.height - m - h)]
        points = [(p.x, p.y, float(p.importance)) for p in spec.pois] + [(r.x, r.y, 1.0) for r in spec.resources]
        if spec.party is not None:
            points.append((spec.party.x, spec.party.y, 5.0))
        xyw = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        pad = 2.0 * self.font_px

        def covered(corner: tuple[float, float]) -> float:
            x0, y0 = corner
            inside = (xyw[:, 0] >= x0 - pad) & (xyw[:, 0] <= x0 + w + pad)
            inside &= (xyw[:, 1] >= y0 - pad) & (xyw[:, 1] <= y0 + h + pad)
            return float(xyw[inside, 2].sum())

        x0, y0 = min(corners, key=covered)  # min keeps the first of equals
        return (x0, y0, x0 + w, y0 + h)

    def _compass_geometry(self) -> tuple[float, float, float, float]:
        """Centre, radius and the ``N``'s size."""
        radius = max(16.0, 28.0 * self.u)
        size = 0.8 * radius
        cx = self.spec.width - self.margin - radius
        cy = self.margin + 1.1 * size + radius
        return cx, cy, radius, size

    def _compass_box(self) -> Box:
        cx, cy, radius, _size = self._compass_geometry()
        return (cx - radius, self.margin, cx + radius, cy + radius)

    def _scale_bar(self) -> ScaleBar:
        spec = self.spec
        mpp = spec.scale.miles_per_pixel
        miles = nice_scale_miles(spec.width, mpp)
        length = miles / mpp
        label = f"{miles:g} mi"
        f = self.font_px
        tw, th = self.text_size(label, f)
        pad = 0.6 * f
        thick = max(4.0, 5.0 * self.u)
        gap = 0.2 * f + _tick_rise(thick)
        panel_w = max(length, tw) + 2 * pad
        panel_h = pad + th + gap + thick + pad
        m = self.margin
        top = spec.height - m - panel_h
        left = m
        legend = self.legend_box
        if legend is not None and legend[0] < m + panel_w + m and legend[3] > top - m:
            left = spec.width - m - panel_w  # the legend is in the bottom-left corner
        x0 = float(math.floor(left + pad + (panel_w - 2 * pad - length) / 2))
        y0 = top + pad + th + gap
        box = (left, top, left + panel_w, top + panel_h)
        return ScaleBar(miles, length, label, x0, y0, thick, box)

    # icon boxes

    def poi_radius(self, poi: Poi) -> float:
        return icon_radius(poi.importance, self.u)

    def resource_radius(self) -> float:
        return max(3.0, 6.0 * self.u)

    def resource_text(self, resource: Resource) -> str:
        parts = [resource.label] if resource.label else []
        if resource.quantity is not None:
            parts.append(_quantity(resource.quantity))
        return " ".join(parts)

    def party_radius(self) -> float:
        return max(4.0, 9.0 * self.u)

    def day_label_origin(self, index: int, x: float, y: float) -> tuple[str, float, float, float]:
        """Text, left, top and size of day mark ``index``'s number."""
        size = 0.8 * self.font_px
        dot = self.day_radius()
        return str(index + 1), x + dot + 0.1 * size, y - dot - 0.9 * size, size

    def day_radius(self) -> float:
        return max(2.5, 3.5 * self.u)

    def _obstacles(self) -> list[Box]:
        spec, on = self.spec, set(self.spec.layers)
        boxes: list[Box] = []
        if "pois" in on:
            for poi in spec.pois:
                r = self.poi_radius(poi)
                boxes.append((poi.x - r, poi.y - r, poi.x + r, poi.y + r))
        if "resources" in on:
            rr = self.resource_radius()
            for res in spec.resources:
                right = res.x + rr
                text = self.resource_text(res)
                if text:
                    right += 0.3 * self.font_px + self.text_size(text, 0.8 * self.font_px)[0]
                boxes.append((res.x - rr, res.y - rr, right, res.y + rr))
        if "party" in on and spec.party is not None:
            r = self.party_radius()
            boxes.append((spec.party.x - r, spec.party.y - r, spec.party.x + r, spec.party.y + r))
            for i, (x, y) in enumerate(self.day_marks):
                text, left, top, size = self.day_label_origin(i, x, y)
                tw, th = self.text_size(text, size)
                d = self.day_radius()
                boxes.append((x - d, top, max(x + d, left + tw), max(y + d, top + th)))
        for panel in (self.legend_box, self.compass_box, self.scale_bar.box if self.scale_bar else None):
            if panel is not None:
                boxes.append(panel)
        return boxes

    def _place(self) -> None:
        import shapely
        from shapely.geometry import Polygon

        spec = self.spec
        items: list[LabelItem] = []
        styles: list[_Label] = []
        ink = _hex(INK)

        def add(
            text: str, anchor: Point, size: float, style: _Label, priority: float, gap: float, centered: bool
        ) -> None:
            tw, th = self.text_size(text, size)
            pad = _halo(size) / 2
            items.append(LabelItem(text, anchor, tw + 2 * pad, th + 2 * pad, priority, gap, centered))
            styles.append(style)

        for poi in spec.pois:
            size = self.font_px * (0.8 + 0.1 * poi.importance)
            add(
                poi.name,
                (poi.x, poi.y),
                size,
                _Label(size, ink),
                poi.importance,
                self.poi_radius(poi) + 0.15 * size,
                False,
            )
        if spec.party is not None and "party" in spec.layers:
            size = self.font_px
            gap = self.party_radius() + 0.15 * size
            add(spec.party.name, (spec.party.x, spec.party.y), size, _Label(size, _hex(PARTY_COLOR)), 6.0, gap, False)
        for region in spec.regions:
            size = 1.1 * self.font_px
            point = shapely.point_on_surface(Polygon(region.polygon))
            style = _Label(size, _hex(REGION_INK), 0.85)
            add(region.name, (point.x, point.y), size, style, 0.5, 0.0, True)
        for route in spec.routes:
            points = route_points(spec, route)
            if not route.name or len(points) < 2:
                continue
            size = 0.8 * self.font_px
            style = _Label(size, _hex(ROUTE_STYLES[route.kind].color))
            add(route.name, _midpoint(points), size, style, 0.25, 0.0, True)
        self.placements = place_labels(items, self._obstacles(), spec.width, spec.height)
        self.label_styles = styles


def _tick_rise(thickness: float) -> float:
    """How far the scale bar's end ticks rise above the bar."""
    return 0.8 * thickness


def _halo(size: float) -> float:
    return max(1.5, size / 6)


def _midpoint(points: Sequence[Point]) -> Point:
    """The point half-way along a polyline."""
    half = polyline_length(points) / 2
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        step = math.dist((x0, y0), (x1, y1))
        if step >= half and step > 0:
            t = half / step
            return (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        half -= step
    return points[-1]


# -- layers -------------------------------------------------------------------------------------------------------


def _hex_grid(scene: _Scene) -> None:
    hexes = scene.spec.scale.hex
    if hexes is None:
        return
    path = skia.Path()
    for c0, c1, c2, c3 in _hex_grid_polylines(scene.spec, hexes).tolist():
        path.moveTo(*c0)
        path.lineTo(*c1)
        path.lineTo(*c2)
        path.lineTo(*c3)
    # Square caps close the corners where one hex's three edges end; miter joins are the cheapest to stroke.
    paint = _stroke(_hex(HEX_GRID_COLOR), max(1.0, 0.035 * hexes.size_px), HEX_GRID_OPACITY, round_ends=False)
    paint.setStrokeCap(skia.Paint.kSquare_Cap)
    paint.setStrokeJoin(skia.Paint.kMiter_Join)
    scene.canvas.drawPath(path, paint)


def _territories(scene: _Scene) -> None:
    spec = scene.spec
    if not spec.territories:
        return
    lands = scene.lands
    for territory, land in zip(spec.territories, lands, strict=True):
        if land.is_empty:
            continue
        paint = skia.Paint(AntiAlias=True, Color=_color(_hex(territory.color), TERRITORY_OPACITY, swap=False))
        scene.cells.drawPath(_shape_path(land), paint)
    index = {t.name: i for i, t in enumerate(spec.territories)}
    done: set[frozenset[str]] = set()
    period = hatch_period(scene.u)
    d = period / math.sqrt(2.0)
    for i, territory in enumerate(spec.territories):
        other = territory.contested_with
        if other is None or other not in index or frozenset((territory.name, other)) in done:
            continue
        done.add(frozenset((territory.name, other)))
        overlap = lands[i].intersection(lands[index[other]])
        if overlap.is_empty or overlap.area <= 0:
            continue
        a = _color(_hex(territory.color), HATCH_OPACITY, swap=False)
        b = _color(_hex(spec.territories[index[other]].color), HATCH_OPACITY, swap=False)
        shader = skia.GradientShader.MakeLinear(
            [skia.Point(0, 0), skia.Point(d, d)], [a, a, b, b], [0.0, 0.5, 0.5, 1.0], skia.TileMode.kRepeat
        )
        paint = skia.Paint(AntiAlias=True, Shader=shader)
        paint.setDither(False)
        scene.cells.drawPath(_shape_path(overlap), paint)


def _borders(scene: _Scene) -> None:
    import shapely

    if not scene.spec.territories:
        return
    boundaries = [land.boundary for land in scene.lands if not land.is_empty]
    if not boundaries:
        return
    linework = shapely.line_merge(shapely.union_all(boundaries, grid_size=1e-3))
    width = max(2.5, 2.5 * scene.u)
    scene.canvas.drawPath(_lines_path(linework), _stroke(_hex(BORDER_COLOR), width, BORDER_OPACITY))


def _route_paint(kind: str, u: float) -> skia.Paint:
    style = ROUTE_STYLES[kind]
    width = style.width * u
    if style.dots > 0:
        dot = skia.Path()
        dot.addCircle(0, 0, width / 2)
        stamp = skia.Path1DPathEffect.Make(dot, style.dots * width, 0, skia.Path1DPathEffect.kTranslate_Style)
        # Passed to the constructor: skia-python's setPathEffect leaves a 1D path effect out (the path is filled).
        return skia.Paint(AntiAlias=True, Color=_color(_hex(style.color)), PathEffect=stamp)
    if not style.dash:
        return _stroke(_hex(style.color), width)
    paint = _stroke(_hex(style.color), width, round_ends=False)
    paint.setStrokeJoin(skia.Paint.kRound_Join)
    paint.setPathEffect(skia.DashPathEffect.Make([v * width for v in style.dash], 0))
    return paint


def _routes(scene: _Scene) -> None:
    spec = scene.spec
    paths: dict[str, skia.Path] = {}
    for route in spec.routes:
        points = route_points(spec, route)
        if len(points) >= 2:
            _add_poly(paths.setdefault(route.kind, skia.Path()), points, 1.0, closed=False)
    for kind in ROUTE_KINDS:
        if kind in paths:
            scene.canvas.drawPath(paths[kind], _route_paint(kind, scene.u))


def _resources(scene: _Scene) -> None:
    rr = scene.resource_radius()
    size = 0.8 * scene.font_px
    for res in scene.spec.resources:
        _resource_symbol(scene.canvas, res.kind, res.x, res.y, rr)
        text = scene.resource_text(res)
        if text:
            _, th = scene.text_size(text, size)
            scene.text(text, res.x + rr + 0.3 * scene.font_px, res.y - th / 2, size, _hex(INK), halo=_hex(PAPER))


def _resource_symbol(canvas: skia.Canvas, kind: str, x: float, y: float, r: float) -> None:
    style = RESOURCE_STYLES.get(kind, RESOURCE_STYLES["custom"])
    outline = max(1.0, 0.14 * r)
    canvas.drawCircle(x, y, r - outline / 2, _fill(_hex(style.color)))
    canvas.drawCircle(x, y, r - outline / 2, _stroke(_hex(INK), outline))
    _RESOURCE_GLYPHS[style.glyph](canvas, x, y, 0.55 * r, (255, 255, 255))


def _glyph_pick(canvas: skia.Canvas, x: float, y: float, s: float, ink: _RGB) -> None:
    path = skia.Path()
    path.moveTo(x - s, y + s)
    path.lineTo(x + 0.6 * s, y - 0.6 * s)
    path.moveTo(x - 0.1 * s, y - s)
    path.quadTo(x + 0.9 * s, y - 0.9 * s, x + s, y + 0.1 * s)
    canvas.drawPath(path, _stroke(ink, 0.3 * s))


def _glyph_wheat(canvas: skia.Canvas, x: float, y: float, s: float, ink: _RGB) -> None:
    path = skia.Path()
    path.moveTo(x, y + s)
    path.lineTo(x, y - s)
    for k in (-0.5, 0.0, 0.5):
        path.moveTo(x - 0.55 * s, y + k * s - 0.35 * s)
        path.lineTo(x, y + k * s)
        path.lineTo(x + 0.55 * s, y + k * s - 0.35 * s)
    canvas.drawPath(path, _stroke(ink, 0.22 * s))


def _glyph_tree(canvas: skia.Canvas, x: float, y: float, s: float, ink: _RGB) -> None:
    canvas.drawPath(
        _polyline(((x, y - s), (x + 0.8 * s, y + 0.45 * s), (x - 0.8 * s, y + 0.45 * s)), 1, closed=True), _fill(ink)
    )
    canvas.drawRect(skia.Rect.MakeLTRB(x - 0.15 * s, y + 0.4 * s, x + 0.15 * s, y + s), _fill(ink))


def _glyph_fish(canvas: skia.Canvas, x: float, y: float, s: float, ink: _RGB) -> None:
    canvas.drawOval(skia.Rect.MakeLTRB(x - 0.9 * s, y - 0.45 * s, x + 0.45 * s, y + 0.45 * s), _fill(ink))
    tail = ((x + 0.3 * s, y), (x + s, y - 0.5 * s), (x + s, y + 0.5 * s))
    canvas.drawPath(_polyline(tail, 1, closed=True), _fill(ink))


def _glyph_block(canvas: skia.Canvas, x: float, y: float, s: float, ink: _RGB) -> None:
    canvas.drawRect(skia.Rect.MakeLTRB(x - 0.75 * s, y - 0.55 * s, x + 0.75 * s, y + 0.55 * s), _fill(ink))


def _glyph_sparkle(canvas: skia.Canvas, x: float, y: float, s: float, ink: _RGB) -> None:
    points = []
    for i in range(8):
        angle = math.radians(-90 + 45 * i)
        rad = s if i % 2 == 0 else 0.35 * s
        points.append((x + rad * math.cos(angle), y + rad * math.sin(angle)))
    canvas.drawPath(_polyline(points, 1, closed=True), _fill(ink))


def _glyph_dot(canvas: skia.Canvas, x: float, y: float, s: float, ink: _RGB) -> None:
    canvas.drawCircle(x, y, 0.5 * s, _fill(ink))


_ResourceGlyph = Callable[[skia.Canvas, float, float, float, _RGB], None]
_RESOURCE_GLYPHS: dict[str, _ResourceGlyph] = {
    "pick": _glyph_pick,
    "wheat": _glyph_wheat,
    "tree": _glyph_tree,
    "fish": _glyph_fish,
    "block": _glyph_block,
    "sparkle": _glyph_sparkle,
    "dot": _glyph_dot,
}


def _pois(scene: _Scene) -> None:
    for poi in scene.spec.pois:
        _POI_GLYPHS[_poi_glyph_kind(poi)](scene.canvas, poi.x, poi.y, scene.poi_radius(poi))


# POI icons: each fits inside the square of half side r around (x, y), strokes included.


def _star_points(x: float, y: float, outer: float, inner: float, n: int = 5) -> list[Point]:
    points = []
    for i in range(2 * n):
        angle = math.radians(-90 + 180 / n * i)
        rad = outer if i % 2 == 0 else inner
        points.append((x + rad * math.cos(angle), y + rad * math.sin(angle)))
    return points


def _poi_capital(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    w = 0.14 * r
    canvas.drawCircle(x, y, r - w / 2, _fill(_hex(PAPER)))
    canvas.drawCircle(x, y, r - w / 2, _stroke(_hex(INK), w))
    canvas.drawPath(_polyline(_star_points(x, y + 0.05 * r, 0.68 * r, 0.28 * r), 1, closed=True), _fill(_hex(INK)))


def _poi_city(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    w = 0.14 * r
    canvas.drawCircle(x, y, r - w / 2, _fill(_hex(PAPER)))
    canvas.drawCircle(x, y, r - w / 2, _stroke(_hex(INK), w))
    canvas.drawCircle(x, y, 0.55 * r, _fill(_hex(INK)))


def _poi_town(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    w = 0.22 * r
    canvas.drawCircle(x, y, 0.8 * r, _fill(_hex(PAPER)))
    canvas.drawCircle(x, y, 0.8 * r, _stroke(_hex(INK), w))


def _poi_village(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    canvas.drawCircle(x, y, 0.55 * r, _fill(_hex(PAPER)))
    canvas.drawCircle(x, y, 0.42 * r, _fill(_hex(INK)))


def _poi_fort(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    w = 0.18 * r
    k = 0.78 * r
    rect = skia.Rect.MakeLTRB(x - k, y - k, x + k, y + k)
    canvas.drawRect(rect, _fill(_hex(PAPER)))
    canvas.drawRect(rect, _stroke(_hex(INK), w, round_ends=False))
    canvas.drawRect(skia.Rect.MakeLTRB(x - 0.3 * r, y - 0.3 * r, x + 0.3 * r, y + 0.3 * r), _fill(_hex(INK)))


def _poi_temple(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    path = skia.Path()
    path.moveTo(x, y - 0.75 * r)
    path.lineTo(x, y + 0.75 * r)
    path.moveTo(x - 0.55 * r, y - 0.2 * r)
    path.lineTo(x + 0.55 * r, y - 0.2 * r)
    canvas.drawPath(path, _stroke(_hex(PAPER), 0.5 * r, round_ends=False))
    canvas.drawPath(path, _stroke(_hex(INK), 0.24 * r, round_ends=False))


def _poi_dungeon(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    k = 0.72 * r
    path = skia.Path()
    path.addRect(skia.Rect.MakeLTRB(x - k, y - 0.05 * r, x + k, y + 0.8 * r))
    path.addCircle(x, y - 0.05 * r, k)
    path.setFillType(skia.PathFillType.kWinding)
    canvas.drawPath(path, _fill(_hex(INK)))
    door = skia.Path()
    door.addRect(skia.Rect.MakeLTRB(x - 0.3 * r, y + 0.1 * r, x + 0.3 * r, y + 0.8 * r))
    door.addCircle(x, y + 0.1 * r, 0.3 * r)
    door.setFillType(skia.PathFillType.kWinding)
    canvas.drawPath(door, _fill(_hex(PAPER)))


def _poi_ruin(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    w = 0.2 * r
    k = 0.72 * r
    path = _polyline(((x - k, y - k), (x + k, y - k), (x + k, y + k), (x - k, y + k)), 1, closed=True)
    paint = _stroke(_hex(INK), w, round_ends=False)
    paint.setPathEffect(skia.DashPathEffect.Make([0.55 * k, 0.3 * k], 0.0))
    canvas.drawPath(path, _stroke(_hex(PAPER), 2 * w, 0.8, round_ends=False))
    canvas.drawPath(path, paint)


def _poi_landmark(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    w = 0.14 * r
    k = r - w
    diamond = _polyline(((x, y - k), (x + k, y), (x, y + k), (x - k, y)), 1, closed=True)
    canvas.drawPath(diamond, _fill(_hex(INK)))
    canvas.drawCircle(x, y, 0.22 * r, _fill(_hex(PAPER)))


def _poi_port(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    canvas.drawCircle(x, y, 0.98 * r, _fill(_hex(PAPER), 0.85))
    w = 0.15 * r
    path = skia.Path()
    path.moveTo(x, y - 0.5 * r)
    path.lineTo(x, y + 0.72 * r)
    path.moveTo(x - 0.4 * r, y - 0.28 * r)
    path.lineTo(x + 0.4 * r, y - 0.28 * r)
    path.addArc(skia.Rect.MakeLTRB(x - 0.62 * r, y - 0.2 * r, x + 0.62 * r, y + 0.72 * r), 10, 160)
    path.addCircle(x, y - 0.64 * r, 0.15 * r)
    canvas.drawPath(path, _stroke(_hex(INK), w))


def _poi_camp(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    w = 0.16 * r
    tent = _polyline(((x, y - 0.8 * r), (x + 0.85 * r, y + 0.7 * r), (x - 0.85 * r, y + 0.7 * r)), 1, closed=True)
    canvas.drawPath(tent, _fill(_hex(PAPER)))
    canvas.drawPath(tent, _stroke(_hex(INK), w))
    door = _polyline(((x, y + 0.05 * r), (x + 0.25 * r, y + 0.7 * r), (x - 0.25 * r, y + 0.7 * r)), 1, closed=True)
    canvas.drawPath(door, _fill(_hex(INK)))


_PoiGlyph = Callable[[skia.Canvas, float, float, float], None]
_POI_GLYPHS: dict[str, _PoiGlyph] = {
    "capital": _poi_capital,
    "city": _poi_city,
    "town": _poi_town,
    "village": _poi_village,
    "fort": _poi_fort,
    "temple": _poi_temple,
    "dungeon": _poi_dungeon,
    "ruin": _poi_ruin,
    "landmark": _poi_landmark,
    "port": _poi_port,
    "camp": _poi_camp,
}


def _party(scene: _Scene) -> None:
    party = scene.spec.party
    if party is None:
        return
    canvas, u = scene.canvas, scene.u
    colour = _hex(PARTY_COLOR)
    width = max(2.0, 3.0 * u)
    if party.travelled:
        canvas.drawPath(_polyline([*party.travelled, (party.x, party.y)], 1, closed=False), _stroke(colour, width))
    if party.planned:
        paint = _stroke(colour, width)
        paint.setPathEffect(skia.DashPathEffect.Make([2.5 * width, 2.0 * width], 0))
        canvas.drawPath(_polyline([(party.x, party.y), *party.planned], 1, closed=False), paint)
    d = scene.day_radius()
    for i, (x, y) in enumerate(scene.day_marks):
        canvas.drawCircle(x, y, d - 0.5, _fill((255, 255, 255)))
        canvas.drawCircle(x, y, d - 0.5, _stroke(colour, max(1.0, 0.35 * d)))
        text, left, top, size = scene.day_label_origin(i, x, y)
        scene.text(text, left, top, size, colour, halo=(255, 255, 255))
    _party_marker(canvas, party.x, party.y, scene.party_radius())


def _party_marker(canvas: skia.Canvas, x: float, y: float, r: float) -> None:
    canvas.drawCircle(x, y, r, _fill(_hex(INK)))
    canvas.drawCircle(x, y, 0.86 * r, _fill((255, 255, 255)))
    canvas.drawCircle(x, y, 0.64 * r, _fill(_hex(PARTY_COLOR)))
    canvas.drawCircle(x, y, 0.2 * r, _fill((255, 255, 255)))


def _labels(scene: _Scene) -> None:
    paper = _hex(PAPER)
    for placement, style in zip(scene.placements, scene.label_styles, strict=True):
        if placement.box is None:
            continue
        pad = _halo(style.size) / 2
        x0, y0, _, _ = placement.box
        scene.text(placement.text, x0 + pad, y0 + pad, style.size, style.ink, halo=paper, opacity=style.opacity)


def _panel(canvas: skia.Canvas, box: Box, radius: float) -> None:
    rect = skia.Rect.MakeLTRB(*box)
    canvas.drawRoundRect(rect, radius, radius, _fill(_hex(PAPER), PANEL_OPACITY))
    canvas.drawRoundRect(rect, radius, radius, _stroke(_hex(INK), 1.0, 0.8))


def _legend(scene: _Scene) -> None:
    box = scene.legend_box
    if box is None:
        return
    f, row, pad = scene._legend_metrics()
    canvas = scene.canvas
    _panel(canvas, box, 0.3 * f)
    ink = _hex(INK)
    left = box[0] + pad
    top = box[1] + pad
    if scene.spec.title:
        _, th = scene.text_size(scene.spec.title, 1.25 * f)
        scene.text(scene.spec.title, left, top, 1.25 * f, ink)
        top += th + 0.5 * f
    _, th = scene.text_size("Ag", f)
    for k, entry in enumerate(scene.legend_entries):
        cy = top + row * k + row / 2
        sx = left + 0.9 * f  # symbol centre
        if entry.section == "faction" and entry.color is not None:
            rect = skia.Rect.MakeLTRB(left, cy - 0.45 * f, left + 1.8 * f, cy + 0.45 * f)
            canvas.drawRect(rect, _fill(_hex(entry.color), 0.55))
            canvas.drawRect(rect, _stroke(_hex(BORDER_COLOR), 1.0, BORDER_OPACITY, round_ends=False))
        elif entry.section == "route":
            path = _polyline(((left, cy), (left + 1.8 * f, cy)), 1, closed=False)
            canvas.drawPath(path, _route_paint(entry.key, min(scene.u, 0.28 * f / ROUTE_STYLES[entry.key].width)))
        elif entry.section == "poi":
            _POI_GLYPHS[entry.key](canvas, sx, cy, 0.55 * f)
        elif entry.section == "resource":
            _resource_symbol(canvas, entry.key, sx, cy, 0.5 * f)
        else:
            _party_marker(canvas, sx, cy, 0.5 * f)
        scene.text(entry.label, left + 2.4 * f, cy - th / 2, f, ink)


def _compass(scene: _Scene) -> None:
    cx, cy, radius, size = scene._compass_geometry()
    canvas = scene.canvas
    ink, paper = _hex(INK), _hex(PAPER)
    canvas.drawCircle(cx, cy, radius, _fill(paper, 0.75))
    canvas.drawCircle(cx, cy, radius, _stroke(ink, max(1.0, 0.05 * radius)))
    k = 0.85 * radius
    half = 0.28 * radius
    north = _polyline(((cx, cy - k), (cx + half, cy), (cx - half, cy)), 1, closed=True)
    south = _polyline(((cx, cy + k), (cx + half, cy), (cx - half, cy)), 1, closed=True)
    canvas.drawPath(north, _fill(ink))
    canvas.drawPath(south, _fill(paper))
    canvas.drawPath(south, _stroke(ink, max(1.0, 0.04 * radius)))
    ticks = skia.Path()
    ticks.moveTo(cx - radius, cy)
    ticks.lineTo(cx - 0.6 * radius, cy)
    ticks.moveTo(cx + 0.6 * radius, cy)
    ticks.lineTo(cx + radius, cy)
    canvas.drawPath(ticks, _stroke(ink, max(1.0, 0.05 * radius)))
    tw, th = scene.text_size("N", size)
    scene.text("N", cx - tw / 2, cy - radius - 0.1 * size - th, size, ink, halo=paper)


def _scale(scene: _Scene) -> None:
    bar = scene.scale_bar
    if bar is None:
        return
    canvas = scene.canvas
    f = scene.font_px
    _panel(canvas, bar.box, 0.3 * f)
    ink = _hex(INK)
    x0, x1 = bar.x0, bar.x0 + bar.length_px
    canvas.drawRect(skia.Rect.MakeLTRB(x0, bar.y0, x1, bar.y0 + bar.thickness), _fill(ink))
    tick = max(1.0, 0.4 * bar.thickness)
    rise = _tick_rise(bar.thickness)
    for left in (x0, x1 - tick):
        canvas.drawRect(skia.Rect.MakeLTRB(left, bar.y0 - rise, left + tick, bar.y0), _fill(ink))
    tw, _th = scene.text_size(bar.label, f)
    scene.text(bar.label, (x0 + x1) / 2 - tw / 2, bar.box[1] + 0.6 * f, f, ink)


_PAINTERS: tuple[tuple[str, Callable[[_Scene], None]], ...] = (
    ("hex_grid", _hex_grid),
    ("territories", _territories),
    ("borders", _borders),
    ("routes", _routes),
    ("resources", _resources),
    ("pois", _pois),
    ("party", _party),
    ("labels", _labels),
    ("legend", _legend),
    ("compass", _compass),
    ("scale_bar", _scale),
)
"""One painter per :data:`~.campaign.LAYERS` name, in that order."""
