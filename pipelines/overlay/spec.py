"""What an overlay draws and measures, as frozen data: the grid, tokens, area templates, paths, movement queries,
markers, fog, terrain and lights, plus the geometry computed from them.

Pure data and checks; the maths lives beside it (:mod:`.grid`, :mod:`.tokens`, :mod:`.templates`, :mod:`.paths`),
the drawing in :mod:`.draw`, the UVTT file in :mod:`.export.uvtt`. The HTTP models (serve_app/api/protocol/
overlays.py) build these with ``to_spec()``; :func:`check` then applies the rules that need the whole spec (a
token on the grid, a template's token that exists) and names the field in bracket notation (``tokens[3].cell``).

**Coordinates.** Points are ``(x, y)`` in grid units with ``(0, 0)`` the top-left corner of the map and y growing
downward. On a square grid integers are grid intersections and cell ``(c, r)`` spans ``[c, c+1] x [r, r+1]``. On a
hex grid one grid unit is the hex's flat-to-flat width (``sqrt(3) * size_px`` pixels, Foundry's grid size) in both
axes, and ``(0, 0)`` is the top-left corner of the bounding box of all the map's hexes. Cells are ``(col, row)``;
hex cells are in the grid's offset layout (axial ``(q, r)`` is in the geometry answer). Pixels are grid units times
:func:`pixels_per_unit`. Directions are degrees, 0 = east, clockwise on screen (90 = south).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import InputError, field_path

__all__ = [
    "AREA_EFFECTS",
    "CONE_ANGLE",
    "DEFAULT_LAYERS",
    "DIAGONALS",
    "FEATURE_BLOCKS",
    "LAYERS",
    "MARKER_KINDS",
    "OFFSETS",
    "RULES",
    "SHAPES",
    "SIZES",
    "Area",
    "Cell",
    "Feature",
    "Fog",
    "Geometry",
    "Grid",
    "Light",
    "Marker",
    "MovementGeometry",
    "MovementQuery",
    "OverlayLimits",
    "OverlaySpec",
    "OverlayStyle",
    "PathGeometry",
    "PathSpec",
    "Point",
    "Portal",
    "Template",
    "TemplateGeometry",
    "Terrain",
    "Token",
    "TokenGeometry",
    "check",
    "field_path",
    "map_extent",
    "map_pixels",
    "pixels_per_unit",
]

Point = tuple[float, float]
"""``(x, y)`` in grid units."""
Cell = tuple[int, int]
"""``(col, row)``."""

DIAGONALS = ("5-5-5", "5-10-5", "10-5-10", "euclidean", "manhattan", "exact")
"""Diagonal rules (TTRPG_RULES 2.5): every step one cell; alternating one-two; alternating two-one; straight-line
between cell centres; two per diagonal; octile (sqrt 2 per diagonal)."""
OFFSETS = {"pointy": ("odd-r", "even-r"), "flat": ("odd-q", "even-q")}
"""Hex offset layouts per orientation: pointy-topped hexes shove odd or even rows right, flat-topped ones shove
odd or even columns down (Red Blob Games' names)."""
SIZES: dict[str, float] = {
    "tiny": 0.5,
    "small": 1.0,
    "medium": 1.0,
    "large": 2.0,
    "huge": 3.0,
    "gargantuan": 4.0,
}
"""Token side in cells on a square grid (5e: Tiny 2.5 ft, Small and Medium 5 ft, Large 10, Huge 15, Gargantuan 20).
A Tiny token occupies its whole cell for every rule and is drawn half-size in its centre."""
SHAPES = ("sphere", "cylinder", "cone", "line", "cube", "emanation")
RULES = ("center", "any", "half", "token")
"""Which cells an area covers: centre inside or on the shape; any part of the cell (positive area); at least half
of the cell; Xanathar's token method (square grids only)."""
CONE_ANGLE = math.degrees(2 * math.atan(0.5))
"""The 5e cone's opening: its width at any distance equals that distance (53.13 degrees)."""
MARKER_KINDS = ("pin", "icon", "text")
LAYERS = (
    "grid",
    "coordinates",
    "areas",
    "walls",
    "movement",
    "reach",
    "templates",
    "paths",
    "tokens",
    "auras",
    "markers",
    "fog",
    "legend",
)
"""Every layer, bottom to top (the order they are painted)."""
DEFAULT_LAYERS = frozenset(LAYERS) - {"coordinates", "areas", "walls", "legend"}
"""The layers drawn when a spec names none."""
AREA_EFFECTS: dict[str, str] = {
    "difficult": "difficult",
    "water": "difficult",
    "rubble": "difficult",
    "vegetation": "difficult",
    "mud": "difficult",
    "ice": "difficult",
    "pit": "blocked",
    "lava": "blocked",
    "chasm": "blocked",
}
"""What a terrain area's kind does to movement; kinds not listed (``floor``, ``carpet``...) do nothing."""
FEATURE_BLOCKS: dict[str, bool] = {
    "tree": True,
    "pillar": True,
    "rock": True,
    "boulder": True,
    "statue": True,
    "chest": False,
    "table": False,
    "barrel": False,
    "crate": False,
    "altar": False,
}
"""Whether a feature of this kind blocks sight (and movement) when ``blocks_sight`` is not given; unknown kinds
do not."""


@dataclass(frozen=True)
class Grid:
    """A square or hex grid.

    Attributes:
        type: ``square`` or ``hex``.
        cols: Columns (square and hex).
        rows: Rows (square and hex).
        cell_px: Square grids: pixels per cell side.
        size_px: Hex grids: pixels from a hex's centre to a corner.
        orientation: Hex grids: ``pointy`` (rows) or ``flat`` (columns).
        offset: Hex grids: ``odd-r``/``even-r`` (pointy) or ``odd-q``/``even-q`` (flat).
        feet_per_cell: Distance per cell (5 ft in 5e).
        diagonals: The default diagonal rule for paths, movement, reach and auras (square grids).
        difficult: Cells whose entry costs double.
        blocked: Cells no path or movement enters.
    """

    type: str = "square"
    cols: int = 20
    rows: int = 15
    cell_px: int = 70
    size_px: float = 40.0
    orientation: str = "pointy"
    offset: str = "odd-r"
    feet_per_cell: float = 5.0
    diagonals: str = "5-5-5"
    difficult: frozenset[Cell] = frozenset()
    blocked: frozenset[Cell] = frozenset()

    @property
    def is_hex(self) -> bool:
        return self.type == "hex"

    def contains(self, cell: Cell) -> bool:
        """Whether ``cell`` is on the map."""
        return 0 <= cell[0] < self.cols and 0 <= cell[1] < self.rows


def pixels_per_unit(grid: Grid) -> float:
    """Pixels per grid unit: ``cell_px`` on square grids, ``sqrt(3) * size_px`` (flat-to-flat width) on hex ones."""
    return float(grid.cell_px) if not grid.is_hex else math.sqrt(3) * grid.size_px


@dataclass(frozen=True)
class Token:
    """A creature or object on the map.

    Attributes:
        id: Unique within the spec.
        cell: Its top-left cell (hex: its anchor hex, see :mod:`.tokens`).
        size: ``tiny`` .. ``gargantuan`` (:data:`SIZES`).
        label: Text drawn on or under it.
        color: ``#RRGGBB`` disc colour; the palette's when None.
        image_id: Its art (drawn cropped round); the caller hands the decoded art to the renderer.
        aura_ft: An aura measured from the footprint's edge, drawn as a shape.
        reach_ft: Reach measured from the footprint's edge; the cells are in the geometry and the reach layer.
    """

    id: str
    cell: Cell
    size: str = "medium"
    label: str | None = None
    color: str | None = None
    image_id: str | None = None
    aura_ft: float | None = None
    reach_ft: float | None = None


@dataclass(frozen=True)
class Template:
    """An area of effect (5e shapes).

    Attributes:
        id: Unique within the spec.
        shape: One of :data:`SHAPES`.
        origin: The point of origin in grid units; None when measured ``from_token``.
        direction: Degrees, 0 = east, clockwise on screen.
        distance_ft: Radius (sphere, cylinder, emanation), length (cone, line), side (cube).
        width_ft: Lines: total width, half on each side of the axis.
        angle: Cones: full opening in degrees.
        anchor: Cubes: ``corner`` (``direction`` is the square's diagonal from the origin) or ``face`` (the origin is
            the midpoint of the face the cube extends away from, along ``direction``).
        cone_end: ``flat`` (the 5e isosceles triangle) or ``round`` (Foundry's circular sector).
        from_token: A token id: spheres, cylinders and emanations grow from its footprint's edge; cones, lines and
            cubes start where the ray from its centre along ``direction`` leaves the footprint.
        rule: One of :data:`RULES`; the spec's ``default_rule`` when None.
        color: Fill and outline colour; the palette's when None.
        label: Shown in the legend.
    """

    id: str
    shape: str
    distance_ft: float
    origin: Point | None = None
    direction: float = 0.0
    width_ft: float = 5.0
    angle: float = CONE_ANGLE
    anchor: str = "corner"
    cone_end: str = "flat"
    from_token: str | None = None
    rule: str | None = None
    color: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class PathSpec:
    """A movement path through waypoints.

    Attributes:
        id: Unique within the spec.
        waypoints: Cells, joined by shortest grid paths.
        token: A token id: the path starts at its ``cell`` unless the first waypoint is in its footprint.
        diagonals: The diagonal rule; the grid's when None.
        color: Line colour; the palette's when None.
        label: Shown in the legend.
    """

    id: str
    waypoints: tuple[Cell, ...]
    token: str | None = None
    diagonals: str | None = None
    color: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class MovementQuery:
    """Every cell a token can reach with ``speed_ft`` (and, with ``dash``, twice that).

    Attributes:
        id: Unique within the spec.
        token: The token that moves; its footprint cells cost 0 and are not listed.
        speed_ft: Its speed.
        diagonals: The diagonal rule; the grid's when None.
        difficult: More cells whose entry costs double (added to the grid's and the terrain's).
        dash: Also answer cells up to twice the speed (band ``dash``).
    """

    id: str
    token: str
    speed_ft: float
    diagonals: str | None = None
    difficult: frozenset[Cell] = frozenset()
    dash: bool = False


@dataclass(frozen=True)
class Marker:
    """A pin, an icon or a text at a point.

    Attributes:
        id: Unique within the spec.
        kind: ``pin``, ``icon`` or ``text``.
        at: Where, in grid units.
        text: The label (required for ``text``).
        icon: Icons: a name the renderer knows (``skull``, ``star``, ``x``, ``chest``, ``trap``, ``door``,
            ``exclamation``, ``question``); unknown names draw a circle.
        color: The palette's when None.
    """

    id: str
    kind: str
    at: Point
    text: str | None = None
    icon: str | None = None
    color: str | None = None


@dataclass(frozen=True)
class Fog:
    """Fog of war: the hidden cells are painted over (a player's view; the GM's view turns the layer off)."""

    hidden: frozenset[Cell] = frozenset()
    color: str = "#000000"
    opacity: float = 1.0


@dataclass(frozen=True)
class Portal:
    """A door or a window: the segment from ``a`` to ``b`` (grid units)."""

    a: Point
    b: Point
    closed: bool = True


@dataclass(frozen=True)
class Area:
    """A terrain area: cells or a polygon (grid units), of a kind (:data:`AREA_EFFECTS` says what it does)."""

    kind: str
    cells: frozenset[Cell] = frozenset()
    polygon: tuple[Point, ...] = ()


@dataclass(frozen=True)
class Feature:
    """A feature in one cell (a tree, a pillar, a chest...). ``blocks_sight`` None: :data:`FEATURE_BLOCKS`."""

    kind: str
    cell: Cell
    blocks_sight: bool | None = None

    @property
    def blocks(self) -> bool:
        return self.blocks_sight if self.blocks_sight is not None else FEATURE_BLOCKS.get(self.kind, False)


@dataclass(frozen=True)
class Terrain:
    """A battle map's structure: what blocks, what is difficult, what the art must show.

    Walls, closed doors and windows block movement and reach; open doors do not. Walls are polylines.
    """

    walls: tuple[tuple[Point, ...], ...] = ()
    doors: tuple[Portal, ...] = ()
    windows: tuple[Portal, ...] = ()
    areas: tuple[Area, ...] = ()
    features: tuple[Feature, ...] = ()


@dataclass(frozen=True)
class Light:
    """A point light: position in grid units, range in cells, colour ``#RRGGBB`` or 8-digit ARGB."""

    position: Point
    range: float
    color: str = "#ffffff"
    intensity: float = 1.0
    shadows: bool = True


@dataclass(frozen=True)
class OverlayStyle:
    """How it looks. Colours are ``#RRGGBB``; the palette fills in every colour a spec leaves out.

    Attributes:
        palette: Colours for tokens, templates and paths, in turn (a theme's palette, or the defaults).
        grid_color: Grid line colour.
        grid_opacity: 0..1.
        grid_width_px: Grid line width.
        template_opacity: Template fill opacity (outlines are opaque).
        font_px: Label size; None scales with the cell size.
    """

    palette: tuple[str, ...] = ("#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#f1c40f")
    grid_color: str = "#000000"
    grid_opacity: float = 0.5
    grid_width_px: float = 1.5
    template_opacity: float = 0.35
    font_px: float | None = None


@dataclass(frozen=True)
class OverlaySpec:
    """Everything an overlay measures and draws."""

    grid: Grid
    tokens: tuple[Token, ...] = ()
    templates: tuple[Template, ...] = ()
    paths: tuple[PathSpec, ...] = ()
    movement: tuple[MovementQuery, ...] = ()
    markers: tuple[Marker, ...] = ()
    fog: Fog | None = None
    terrain: Terrain = field(default_factory=Terrain)
    lights: tuple[Light, ...] = ()
    layers: frozenset[str] | None = None
    style: OverlayStyle = field(default_factory=OverlayStyle)
    default_rule: str = "center"

    @property
    def enabled_layers(self) -> frozenset[str]:
        return DEFAULT_LAYERS if self.layers is None else self.layers

    def token(self, token_id: str) -> Token:
        for t in self.tokens:
            if t.id == token_id:
                return t
        raise KeyError(token_id)


@dataclass(frozen=True)
class OverlayLimits:
    """Bounds on what one overlay may ask (the ``overlay`` config section). ``max_path_cells`` bounds the sum of the
    straight (Chebyshev) distances between a path's consecutive waypoints: the search time grows with it."""

    max_pixels: int = 4096 * 4096
    max_cells: int = 200 * 200
    max_items: int = 500
    max_waypoints: int = 100
    max_path_cells: int = 2000
    max_distance_ft: float = 1000.0
    max_speed_ft: float = 500.0


# -- geometry (what the maths answers) --------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGeometry:
    """A token's footprint cells (sorted), its centre (grid units), and the cells and outline of its reach and aura."""

    id: str
    cells: tuple[Cell, ...]
    center: Point
    reach: tuple[Cell, ...] = ()
    aura: tuple[Point, ...] = ()


@dataclass(frozen=True)
class TemplateGeometry:
    """The cells a template covers (sorted by row, then column) and its outline (a polygon in grid units, arcs
    flattened finely enough to draw)."""

    id: str
    cells: tuple[Cell, ...]
    outline: tuple[Point, ...]
    rule: str


@dataclass(frozen=True)
class PathGeometry:
    """A path's cells in order (waypoints included once), its total cost and each step's cost (feet)."""

    id: str
    cells: tuple[Cell, ...]
    cost_ft: float
    step_costs_ft: tuple[float, ...]
    waypoint_indexes: tuple[int, ...] = ()


@dataclass(frozen=True)
class MovementGeometry:
    """Every reachable cell with its cheapest cost (feet), sorted by row, then column; footprint cells left out."""

    id: str
    reachable: tuple[tuple[Cell, float], ...]
    speed_ft: float
    dash: bool = False


@dataclass(frozen=True)
class Geometry:
    """What :func:`pipelines.overlay.geometry.measure` answers for a spec."""

    tokens: tuple[TokenGeometry, ...] = ()
    templates: tuple[TemplateGeometry, ...] = ()
    paths: tuple[PathGeometry, ...] = ()
    movement: tuple[MovementGeometry, ...] = ()


# -- checks -----------------------------------------------------------------------------------------------------


def _one_of(param: str, value: Any, allowed: tuple[str, ...] | Mapping[str, Any]) -> None:
    if value not in allowed:
        raise InputError(param, value, "one of " + ", ".join(allowed))


def _cell(param: str, cell: Cell, grid: Grid) -> None:
    if not grid.contains(cell):
        raise InputError(param, list(cell), f"a cell [col, row] of the {grid.cols}x{grid.rows} grid")


def _point(param: str, point: Point, grid: Grid, width: float, height: float) -> None:
    x, y = point
    if not (math.isfinite(x) and math.isfinite(y)) or not (0 <= x <= width and 0 <= y <= height):
        raise InputError(param, {"x": x, "y": y}, f"a point of the map, 0..{width:g} x 0..{height:g} grid units")


def _colour(param: str, value: str | None, *, argb: bool = False) -> None:
    if value is None:
        return
    digits = value[1:] if value.startswith("#") else value
    lengths = (6, 8) if argb else (6,)
    if len(digits) not in lengths or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
        shape = "#RRGGBB or 8-digit ARGB" if argb else "#RRGGBB"
        raise InputError(param, value, f"a colour {shape}")
    if not argb and not value.startswith("#"):
        raise InputError(param, value, "a colour #RRGGBB")


def _unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, item_id in enumerate(ids):
        if item_id in seen:
            raise InputError(field_path(kind, i, "id"), item_id, f"an id no other entry of {kind} has")
        seen.add(item_id)


def map_pixels(grid: Grid) -> tuple[int, int]:
    """The map's size in whole pixels: the extent times :func:`pixels_per_unit`, rounded up (a hair of float error
    below a whole pixel, as ``130.00000000000003``, does not add a pixel)."""
    width, height = map_extent(grid)
    ppu = pixels_per_unit(grid)
    return math.ceil(width * ppu - 1e-6), math.ceil(height * ppu - 1e-6)


def map_extent(grid: Grid) -> tuple[float, float]:
    """The map's width and height in grid units (square: ``cols x rows``; hex: the hexes' bounding box)."""
    if not grid.is_hex:
        return float(grid.cols), float(grid.rows)
    s = grid.size_px / pixels_per_unit(grid)  # centre-to-corner in grid units: 1/sqrt(3)
    w, h = math.sqrt(3) * s, 2 * s  # pointy hex
    if grid.orientation == "pointy":
        width = w * grid.cols + (w / 2 if grid.rows > 1 else 0)
        height = h + 1.5 * s * (grid.rows - 1)
    else:
        width = h + 1.5 * s * (grid.cols - 1)
        height = w * grid.rows + (w / 2 if grid.cols > 1 else 0)
    return width, height


def check(spec: OverlaySpec, limits: OverlayLimits | None = None) -> None:
    """The rules that need the whole spec; raises :class:`InputError` naming the first field that breaks one.

    Field names are bracketed paths (``tokens[3].cell``, ``terrain.walls[0][2]``).
    """
    limits = limits or OverlayLimits()
    grid = spec.grid
    _one_of("grid.type", grid.type, ("square", "hex"))
    if grid.cols < 1 or grid.rows < 1:
        raise InputError("grid.cols" if grid.cols < 1 else "grid.rows", min(grid.cols, grid.rows), "at least 1")
    if grid.cols * grid.rows > limits.max_cells:
        raise InputError("grid.cols", grid.cols, f"cols x rows at most {limits.max_cells}")
    if grid.is_hex:
        _one_of("grid.orientation", grid.orientation, tuple(OFFSETS))
        _one_of("grid.offset", grid.offset, OFFSETS[grid.orientation])
        if not (4 <= grid.size_px <= 500):
            raise InputError("grid.size_px", grid.size_px, "4 to 500 pixels")
    elif not (8 <= grid.cell_px <= 500):
        raise InputError("grid.cell_px", grid.cell_px, "8 to 500 pixels")
    if not (0 < grid.feet_per_cell <= 5280):
        raise InputError("grid.feet_per_cell", grid.feet_per_cell, "more than 0, at most 5280")
    _one_of("grid.diagonals", grid.diagonals, DIAGONALS)
    width, height = map_extent(grid)
    width_px, height_px = map_pixels(grid)
    if width_px * height_px > limits.max_pixels:
        raise InputError(
            "grid",
            f"{width_px}x{height_px} px",
            f"a map of at most {limits.max_pixels} pixels (overlay.max_pixels)",
        )
    for name, cells in (("difficult", grid.difficult), ("blocked", grid.blocked)):
        for i, cell in enumerate(sorted(cells)):
            _cell(field_path("grid", name, i), cell, grid)
    _one_of("default_rule", spec.default_rule, RULES)

    count = len(spec.tokens) + len(spec.templates) + len(spec.paths) + len(spec.movement) + len(spec.markers)
    if count > limits.max_items:
        raise InputError("tokens", count, f"at most {limits.max_items} tokens, templates, paths, markers in all")
    _unique("tokens", [t.id for t in spec.tokens])
    _unique("templates", [t.id for t in spec.templates])
    _unique("paths", [p.id for p in spec.paths])
    _unique("movement", [m.id for m in spec.movement])
    _unique("markers", [m.id for m in spec.markers])
    token_ids = {t.id for t in spec.tokens}

    for i, token in enumerate(spec.tokens):
        _one_of(field_path("tokens", i, "size"), token.size, SIZES)
        _cell(field_path("tokens", i, "cell"), token.cell, grid)
        if not grid.is_hex:
            side = max(1, int(SIZES[token.size]))
            far = (token.cell[0] + side - 1, token.cell[1] + side - 1)
            if not grid.contains(far):
                raise InputError(
                    field_path("tokens", i, "cell"), list(token.cell), f"a cell from which a {token.size} token fits"
                )
        _colour(field_path("tokens", i, "color"), token.color)
        for name in ("aura_ft", "reach_ft"):
            value = getattr(token, name)
            if value is not None and not (0 <= value <= limits.max_distance_ft):
                raise InputError(field_path("tokens", i, name), value, f"0 to {limits.max_distance_ft:g} feet")

    for i, tpl in enumerate(spec.templates):
        _one_of(field_path("templates", i, "shape"), tpl.shape, SHAPES)
        if tpl.rule is not None:
            _one_of(field_path("templates", i, "rule"), tpl.rule, RULES)
        if (tpl.rule or spec.default_rule) == "token" and grid.is_hex:
            raise InputError(field_path("templates", i, "rule"), "token", "center, any or half on a hex grid")
        if not (math.isfinite(tpl.distance_ft) and 0 <= tpl.distance_ft <= limits.max_distance_ft):
            raise InputError(
                field_path("templates", i, "distance_ft"), tpl.distance_ft, f"0 to {limits.max_distance_ft:g} feet"
            )
        if not (math.isfinite(tpl.width_ft) and 0 < tpl.width_ft <= limits.max_distance_ft):
            raise InputError(field_path("templates", i, "width_ft"), tpl.width_ft, "more than 0 feet")
        if not (0 < tpl.angle < 180):
            raise InputError(field_path("templates", i, "angle"), tpl.angle, "more than 0 and less than 180 degrees")
        if not math.isfinite(tpl.direction):
            raise InputError(field_path("templates", i, "direction"), tpl.direction, "a finite number of degrees")
        _one_of(field_path("templates", i, "anchor"), tpl.anchor, ("corner", "face"))
        _one_of(field_path("templates", i, "cone_end"), tpl.cone_end, ("flat", "round"))
        if tpl.from_token is not None:
            if tpl.from_token not in token_ids:
                raise InputError(field_path("templates", i, "from_token"), tpl.from_token, "the id of a token")
        elif tpl.origin is None:
            raise InputError(field_path("templates", i, "origin"), None, "a point {x, y}, or from_token")
        else:
            _point(field_path("templates", i, "origin"), tpl.origin, grid, width, height)
        if tpl.shape == "emanation" and tpl.from_token is None:
            raise InputError(field_path("templates", i, "from_token"), None, "a token id: an emanation needs one")
        _colour(field_path("templates", i, "color"), tpl.color)

    for i, path in enumerate(spec.paths):
        if not path.waypoints:
            raise InputError(field_path("paths", i, "waypoints"), [], "at least one cell")
        if len(path.waypoints) > limits.max_waypoints:
            raise InputError(
                field_path("paths", i, "waypoints"), len(path.waypoints), f"at most {limits.max_waypoints} cells"
            )
        for j, cell in enumerate(path.waypoints):
            _cell(field_path("paths", i, "waypoints", j), cell, grid)
        span = sum(
            max(abs(a[0] - b[0]), abs(a[1] - b[1])) for a, b in zip(path.waypoints, path.waypoints[1:], strict=False)
        )
        if span > limits.max_path_cells:
            raise InputError(
                field_path("paths", i, "waypoints"),
                f"<{span} cells between waypoints>",
                f"a path of at most {limits.max_path_cells} cells, waypoint to waypoint (overlay.max_path_cells)",
            )
        if path.token is not None and path.token not in token_ids:
            raise InputError(field_path("paths", i, "token"), path.token, "the id of a token")
        if path.diagonals is not None:
            _one_of(field_path("paths", i, "diagonals"), path.diagonals, DIAGONALS)
        _colour(field_path("paths", i, "color"), path.color)

    for i, query in enumerate(spec.movement):
        if query.token not in token_ids:
            raise InputError(field_path("movement", i, "token"), query.token, "the id of a token")
        if not (0 <= query.speed_ft <= limits.max_speed_ft):
            raise InputError(field_path("movement", i, "speed_ft"), query.speed_ft, f"0 to {limits.max_speed_ft:g}")
        if query.diagonals is not None:
            _one_of(field_path("movement", i, "diagonals"), query.diagonals, DIAGONALS)
        for j, cell in enumerate(sorted(query.difficult)):
            _cell(field_path("movement", i, "difficult", j), cell, grid)

    for i, marker in enumerate(spec.markers):
        _one_of(field_path("markers", i, "kind"), marker.kind, MARKER_KINDS)
        _point(field_path("markers", i, "at"), marker.at, grid, width, height)
        if marker.kind == "text" and not marker.text:
            raise InputError(field_path("markers", i, "text"), marker.text, "a text for a text marker")
        _colour(field_path("markers", i, "color"), marker.color)

    if spec.fog is not None:
        for i, cell in enumerate(sorted(spec.fog.hidden)):
            _cell(field_path("fog", "hidden", i), cell, grid)
        _colour("fog.color", spec.fog.color)
        if not (0 <= spec.fog.opacity <= 1):
            raise InputError("fog.opacity", spec.fog.opacity, "0 to 1")

    terrain = spec.terrain
    for i, wall in enumerate(terrain.walls):
        if len(wall) < 2:
            raise InputError(field_path("terrain", "walls", i), len(wall), "a polyline of at least 2 points")
        for j, point in enumerate(wall):
            _point(f"{field_path('terrain', 'walls', i)}[{j}]", point, grid, width, height)
    for name in ("doors", "windows"):
        for i, portal in enumerate(getattr(terrain, name)):
            _point(field_path("terrain", name, i, "a"), portal.a, grid, width, height)
            _point(field_path("terrain", name, i, "b"), portal.b, grid, width, height)
            if portal.a == portal.b:
                raise InputError(field_path("terrain", name, i, "b"), list(portal.b), "a point other than a")
    for i, area in enumerate(terrain.areas):
        if not area.cells and len(area.polygon) < 3:
            raise InputError(field_path("terrain", "areas", i), area.kind, "cells, or a polygon of at least 3 points")
        for j, cell in enumerate(sorted(area.cells)):
            _cell(field_path("terrain", "areas", i, "cells", j), cell, grid)
        for j, point in enumerate(area.polygon):
            _point(field_path("terrain", "areas", i, "polygon", j), point, grid, width, height)
    for i, feature in enumerate(terrain.features):
        _cell(field_path("terrain", "features", i, "cell"), feature.cell, grid)
    for i, light in enumerate(spec.lights):
        _point(field_path("lights", i, "position"), light.position, grid, width, height)
        if not (0 < light.range <= 1000):
            raise InputError(field_path("lights", i, "range"), light.range, "more than 0, at most 1000 cells")
        _colour(field_path("lights", i, "color"), light.color, argb=True)
        if not (0 <= light.intensity <= 100):
            raise InputError(field_path("lights", i, "intensity"), light.intensity, "0 to 100")

    if spec.layers is not None:
        for name in sorted(spec.layers):
            _one_of("layers", name, LAYERS)
    style = spec.style
    for i, colour in enumerate(style.palette):
        _colour(field_path("style", "palette", i), colour)
    if not style.palette:
        raise InputError("style.palette", [], "at least one colour")
    _colour("style.grid_color", style.grid_color)
    for name in ("grid_opacity", "template_opacity"):
        value = getattr(style, name)
        if not (0 <= value <= 1):
            raise InputError(f"style.{name}", value, "0 to 1")
    if not (0 <= style.grid_width_px <= 20):
        raise InputError("style.grid_width_px", style.grid_width_px, "0 to 20 pixels")
    if style.font_px is not None and not (4 <= style.font_px <= 200):
        raise InputError("style.font_px", style.font_px, "4 to 200 pixels")
