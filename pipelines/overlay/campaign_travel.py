"""Travel on a campaign map: the cost model, the cost grid, A* route planning and travel days along a path.

**Pace** (:data:`DEFAULT_MODEL`, overridable per spec through ``CampaignSpec.travel``). Miles per day by mode and
pace: on foot, mounted or by cart the PHB's travel pace (slow 18, normal 24, fast 30; mounts keep the walkers'
pace over a day); by ship the DMG's sailing ship, 2 mph for 24 hours (normal 48; slow 36 and fast 60 keep the
PHB's 3/4 and 5/4). Time over ground is ``miles / miles_per_day * multiplier``, the multiplier of the ground under
it:

- **Land modes** (foot, mounted, cart) off any route: the terrain's multiplier (``terrain``): open terrain 1,
  difficult terrain 2 (PHB: half the distance), water impassable. Land no region covers is ``plains``; where
  regions overlap the later one in the spec wins.
- **Road** (``road``, 1): the road's multiplier whatever the terrain under it (or the terrain's, if that is lower):
  a road through a forest is not difficult, and a road over water is a bridge or causeway.
- **Trail** (``trail_keeps``, 0.5): a trail keeps that share of the extra cost of terrain slower than open
  ground, ``1 + 0.5 (t - 1)``: 1.5 through a forest (2 off it); over water it is impassable.
- **River** for land modes (``ford``, 3): a river cell off a road costs at least 3 (a ford); a road crossing it is
  a bridge (the road's multiplier), a trail fords it (the larger of the two).
- **Cart** (``cart_offroad``, 1.5): off roads and trails a cart goes 1.5 times slower over terrain no slower than
  open ground, and cannot enter slower terrain (difficult by default) at all; on roads, trails and fords as on foot.
- **Ship** (``ship``): open water (water terrains) 1, a river 1, a sea lane 0.8 (a known fair passage: preferred),
  rivers and sea lanes whatever the terrain they cross; everything else is impassable to ships, and roads and
  trails mean nothing to them. Sea lanes mean nothing to land modes.

Route kinds by precedence, where routes cross: road, trail, river for land modes; sea lane, river for ships. The
route that applies is the leg's ``on``.

**Planning** adds ``offroad_premium`` (0.01) to the multiplier of every passable cell on no route for the mode
(off roads, trails and fords on land; off rivers and sea lanes at sea): among paths of equal time the planner
keeps to roads, and it takes a road when the road is at most that much slower per mile. Days and miles never
include it.

**The grid** (:func:`cost_grid`): the canvas in square cells, ``max(width, height) / max_cells`` pixels a side (at
least 1), row 0 at the top. A cell holds the terrain of the last region covering its centre; a route marks every
cell its line passes through (its supercover, 1 to 2 cells wide, 4-connected: two of its cells never touch only at
a corner, so no step along it squeezes between impassable cells: a ship follows a diagonal river through land, a
walker a diagonal bridge over water).

**A*** (:func:`astar`): 8-connected; a step into a cell costs that cell's cost times the step's length (1, or sqrt
2 diagonally): the destination cell is charged, the cell left is not. A diagonal step is refused when both cells
beside it (the two sharing an edge with both ends) are impassable: no squeezing between two impassable cells; one
impassable corner does not block it. Searches run in libtcod's C A* (``tcod.path``) over integer costs: each cost
quantised to ``round(100 cost)`` (exact for the default model, whose multipliers are multiples of 0.01), steps
charged 408 straight and 577 diagonal (577/408 = 1.4142157, sqrt 2 to 1.5e-6). The heuristic is the octile
distance times the cheapest cell, a lower bound of every remaining path and consistent, so the path is optimal
for the quantised costs, and its exact float cost is within 1.5e-6 (relative) of the float optimum whenever the
costs are multiples of 0.01. libtcod's distances are 32-bit: a search whose costs could overflow them is redone
exactly in Python (only very long paths over very costly cells).

**Speed** (2-core machine, quantisation and graph set-up included): ``load_tests/bench_campaign.py``'s 512 x 512
grid (plains, a forest, a mountain wall with one far pass, a road), corner to corner: p50 about 50 ms, over the
20 ms target. An exact A* must expand every cell whose ``g + h`` is below the optimum, about 82 000 cells there
(the octile heuristic knows nothing of the wall), and libtcod takes about 0.5 us a cell; 60 random pairs on the
same grid: p50 11 ms (p90 42); an open grid: 6 ms. Tried and measured: greed 1 (Dijkstra-like, 75 ms), int8 to
int32 cost arrays, 70/99 or 5/7 steps, C or F order (all within 10%), the reverse direction (52 ms), a
bidirectional search (counted: it would expand twice the cells); a heuristic greedier than the cheapest cell is
fast (2 ms) but not exact, so it is not used.

**Travel along a polyline** (:func:`path_travel`, and :func:`plan_route`'s figures): each segment is cut into
``2 * ceil(max(|dx|, |dy|) / cell)`` equal pieces (two per cell crossed along its major axis); a piece takes the
multiplier of the cell holding its midpoint. Segments between cell centres along a row, column or diagonal (what
:func:`plan_route` returns) so charge exactly the cells of the grid path. A piece on impassable ground (a drawn
path may cut a corner) takes the worst passable multiplier of the mode, so a given path is always measured. Day
marks are where the running total of days reaches 1, 2, ... (the last one at the end when the total is whole).
"""

from __future__ import annotations

import heapq
import itertools
import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from pipelines.errors import InputError
from pipelines.overlay.campaign import MODES, PACES, ROUTE_KINDS, TERRAINS, CampaignSpec, Point, route_points

__all__ = [
    "CARDINAL_COST",
    "COST_SCALE",
    "DEFAULT_MODEL",
    "DIAGONAL_COST",
    "MAX_COST",
    "TERRAIN_NAMES",
    "CostGrid",
    "Leg",
    "RoutePlan",
    "Travel",
    "TravelModel",
    "astar",
    "cost_grid",
    "multiplier",
    "path_travel",
    "plan_route",
    "resolve_model",
]

INF = math.inf
COST_SCALE = 100
""":func:`astar` quantises a cost ``c`` to the integer ``round(COST_SCALE * c)`` (at least 1)."""
CARDINAL_COST = 408
DIAGONAL_COST = 577
""":func:`astar`'s integer step lengths: 577/408 is sqrt 2 to 1.5e-6 (a convergent of its continued fraction)."""
MAX_COST = 10_000.0
"""The largest finite cost :func:`astar` takes (so one quantised step fits libtcod's 32-bit distances)."""

TERRAIN_NAMES: tuple[str, ...] = tuple(TERRAINS)
_PLAINS = TERRAIN_NAMES.index("plains")
_BIT = {kind: 1 << i for i, kind in enumerate(ROUTE_KINDS)}
_SHIP_ORDER = ("sea_lane", "river")
_BY = {"foot": "on foot", "mounted": "mounted", "cart": "by cart", "ship": "by ship"}
_INT_MAX = 2**31 - 1

# -- the cost model ----------------------------------------------------------------------------------------------


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(
        {k: _frozen(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}  # nested maps frozen too
    )


@dataclass(frozen=True)
class TravelModel:
    """The travel rules as data (see the module's docstring for how they combine). Multipliers are of time:
    2 means twice the days for the same miles; ``inf`` is impassable.

    Attributes:
        miles_per_day: ``{mode: {pace: miles}}`` for every mode of :data:`MODES` and pace of :data:`PACES`.
        terrain: ``{terrain: multiplier}`` for land modes off routes, every terrain of :data:`TERRAINS`.
        road: A road's multiplier, whatever the terrain under it (unless the terrain's is lower).
        trail_keeps: The share of the extra cost of slow terrain (multiplier above 1) a trail keeps, 0 to 1.
        ford: The least multiplier of a river cell off a road, for land modes.
        cart_offroad: A cart's factor off roads and trails on terrain no slower than open ground (slower: impassable).
        ship: ``{"water": ..., "river": ..., "sea_lane": ...}``: a ship's multipliers; all else is impassable.
        offroad_premium: Added to passable off-route cells when planning only (a preference for roads).
    """

    miles_per_day: Mapping[str, Mapping[str, float]]
    terrain: Mapping[str, float]
    road: float = 1.0
    trail_keeps: float = 0.5
    ford: float = 3.0
    cart_offroad: float = 1.5
    ship: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"water": 1.0, "river": 1.0, "sea_lane": 0.8})
    )
    offroad_premium: float = 0.01

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles (Ray handles, processes) through plain dicts: a mapping proxy can't be pickled."""
        plain = {k: dict(v) for k, v in self.miles_per_day.items()}
        return (
            _model,
            (
                plain,
                dict(self.terrain),
                self.road,
                self.trail_keeps,
                self.ford,
                self.cart_offroad,
                dict(self.ship),
                self.offroad_premium,
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """The model as JSON (``"impassable"`` for an infinite multiplier), the shape ``travel`` overrides take."""

        def value(v: float) -> float | str:
            return "impassable" if math.isinf(v) else v

        return {
            "miles_per_day": {mode: dict(paces) for mode, paces in self.miles_per_day.items()},
            "terrain": {name: value(v) for name, v in self.terrain.items()},
            "road": value(self.road),
            "trail_keeps": self.trail_keeps,
            "ford": value(self.ford),
            "cart_offroad": value(self.cart_offroad),
            "ship": {k: value(v) for k, v in self.ship.items()},
            "offroad_premium": self.offroad_premium,
        }


def _model(
    miles_per_day: Mapping[str, Any],
    terrain: Mapping[str, float],
    road: float,
    trail_keeps: float,
    ford: float,
    cart_offroad: float,
    ship: Mapping[str, float],
    offroad_premium: float,
) -> TravelModel:
    return TravelModel(
        _frozen(miles_per_day), _frozen(terrain), road, trail_keeps, ford, cart_offroad, _frozen(ship), offroad_premium
    )


_LAND_PACE = {"slow": 18.0, "normal": 24.0, "fast": 30.0}
DEFAULT_MODEL = TravelModel(
    miles_per_day=_frozen(
        {
            "foot": _LAND_PACE,
            "mounted": _LAND_PACE,
            "cart": _LAND_PACE,
            "ship": {"slow": 36.0, "normal": 48.0, "fast": 60.0},
        }
    ),
    terrain=_frozen({name: INF if t.water else 2.0 if t.difficult else 1.0 for name, t in TERRAINS.items()}),
)
"""The PHB/DMG rules: see the module's docstring."""

_MULTIPLIER_RANGE = (0.1, 20.0)
_MULTIPLIER_TEXT = 'a multiplier from 0.1 to 20, or "impassable"'


def resolve_model(overrides: Mapping[str, Any] | None, base: TravelModel = DEFAULT_MODEL) -> TravelModel:
    """``base`` with a spec's ``travel`` overrides merged in, e.g. ``{"terrain": {"forest": 3}, "miles_per_day":
    {"foot": {"normal": 20}}, "road": 0.9}``. Only the keys given change; nested maps merge key by key.

    Keys: ``miles_per_day`` (``{mode: {pace: miles}}``, miles from 0 exclusive to 1000), ``terrain``
    (``{terrain: multiplier}``), ``road``, ``ford``, ``cart_offroad`` (multipliers), ``ship`` (``{water, river,
    sea_lane: multiplier}``), ``trail_keeps`` (0 to 1), ``offroad_premium`` (0 to 1). A multiplier is a number from
    0.1 to 20 or ``"impassable"``.

    Raises:
        InputError: An unknown key or a value out of range; ``param`` names the field (``travel.terrain.forest``).
    """
    if not overrides:
        return base
    if not isinstance(overrides, Mapping):
        raise InputError("travel", overrides, "an object of cost-model overrides")
    keys = ("miles_per_day", "terrain", "road", "trail_keeps", "ford", "cart_offroad", "ship", "offroad_premium")
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        where = f"travel.{key}"
        if key == "miles_per_day":
            table = {mode: dict(paces) for mode, paces in base.miles_per_day.items()}
            for mode, paces in _object(value, where, "an object: {mode: {pace: miles}}").items():
                at = f"{where}.{mode}"
                if mode not in MODES:
                    raise InputError(at, paces, f"a mode: {', '.join(MODES)}")
                for pace, miles in _object(paces, at, "an object: {pace: miles}").items():
                    if pace not in PACES:
                        raise InputError(f"{at}.{pace}", miles, f"a pace: {', '.join(PACES)}")
                    if not _is_number(miles) or not 0 < miles <= 1000:
                        raise InputError(f"{at}.{pace}", miles, "miles per day: a number above 0, at most 1000")
                    table[mode][pace] = float(miles)
            changes[key] = _frozen(table)
        elif key == "terrain":
            terrain = dict(base.terrain)
            for name, v in _object(value, where, "an object: {terrain: multiplier}").items():
                if name not in TERRAINS:
                    raise InputError(f"{where}.{name}", v, f"a terrain: {', '.join(TERRAIN_NAMES)}")
                terrain[name] = _multiplier_value(v, f"{where}.{name}")
            changes[key] = _frozen(terrain)
        elif key == "ship":
            ship = dict(base.ship)
            for name, v in _object(value, where, "an object: {water, river, sea_lane: multiplier}").items():
                if name not in ship:
                    raise InputError(f"{where}.{name}", v, f"one of {', '.join(ship)}")
                ship[name] = _multiplier_value(v, f"{where}.{name}")
            changes[key] = _frozen(ship)
        elif key in ("road", "ford", "cart_offroad"):
            changes[key] = _multiplier_value(value, where)
        elif key in ("trail_keeps", "offroad_premium"):
            if not _is_number(value) or not 0 <= value <= 1:
                raise InputError(where, value, "a number from 0 to 1")
            changes[key] = float(value)
        else:
            raise InputError(where, value, f"a cost-model key: {', '.join(keys)}")
    return replace(base, **changes)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _object(value: Any, where: str, allowed: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(where, value, allowed)
    return value


def _multiplier_value(value: Any, where: str) -> float:
    if value == "impassable":
        return INF
    low, high = _MULTIPLIER_RANGE
    if not _is_number(value) or not low <= value <= high:
        raise InputError(where, value, _MULTIPLIER_TEXT)
    return float(value)


def multiplier(model: TravelModel, mode: str, terrain: str, routes: Sequence[str] = ()) -> tuple[float, str | None]:
    """The time multiplier of ground of ``terrain`` crossed by ``routes`` (route kinds) for ``mode``, and the route
    kind that applies (the leg's ``on``), by the rules of the module's docstring. ``inf``: impassable."""
    kinds = set(routes)
    if mode == "ship":
        for kind in _SHIP_ORDER:
            if kind in kinds:
                return model.ship[kind], kind
        return (model.ship["water"] if TERRAINS[terrain].water else INF), None
    t = model.terrain[terrain]
    if "road" in kinds:
        return min(model.road, t), "road"
    on: str | None = None
    if "trail" in kinds:
        m, on = (t if t <= 1 else 1 + model.trail_keeps * (t - 1)), "trail"
    elif mode == "cart":
        m = INF if t > 1 else t * model.cart_offroad
    else:
        m = t
    if "river" in kinds:
        m, on = max(m, model.ford), on or "river"
    return m, on


@dataclass(frozen=True)
class _ModeTable:
    """:func:`multiplier` for every terrain (rows) and route bitmask (columns)."""

    mult: np.ndarray
    on: np.ndarray  # index into ROUTE_KINDS, -1 for none
    worst: float  # the largest finite multiplier


def _mode_table(model: TravelModel, mode: str) -> _ModeTable:
    n_masks = 1 << len(ROUTE_KINDS)
    mult = np.empty((len(TERRAIN_NAMES), n_masks))
    on = np.full((len(TERRAIN_NAMES), n_masks), -1, dtype=np.int8)
    for ti, name in enumerate(TERRAIN_NAMES):
        for mask in range(n_masks):
            kinds = [kind for kind in ROUTE_KINDS if mask & _BIT[kind]]
            m, kind = multiplier(model, mode, name, kinds)
            mult[ti, mask] = m
            if kind is not None:
                on[ti, mask] = ROUTE_KINDS.index(kind)
    finite = mult[np.isfinite(mult)]
    return _ModeTable(mult, on, float(finite.max()) if finite.size else 1.0)


# -- the cost grid -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raster:
    terrain: np.ndarray  # uint8 index into TERRAIN_NAMES
    routes: np.ndarray  # uint8 bitmask of ROUTE_KINDS
    cell: float


@dataclass(frozen=True, eq=False)
class CostGrid:
    """A spec rasterised for one mode.

    Attributes:
        cost: ``(rows, cols)`` float time multipliers, ``inf`` impassable (no planning premium: see
            :meth:`planning_cost`).
        cell: A cell's side in pixels; cell ``(r, c)`` covers ``[c cell, (c + 1) cell) x [r cell, (r + 1) cell)``.
        terrain: ``(rows, cols)`` index into :data:`TERRAIN_NAMES` of each cell's terrain.
        routes: ``(rows, cols)`` bitmask of the route kinds through each cell (bit ``i``: ``ROUTE_KINDS[i]``).
        on: ``(rows, cols)`` index into ``ROUTE_KINDS`` of the route that applies to this mode, -1 for none.
    """

    cost: np.ndarray
    cell: float
    terrain: np.ndarray
    routes: np.ndarray
    on: np.ndarray
    mode: str
    model: TravelModel
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.cost.shape[0]), int(self.cost.shape[1]))

    def contains(self, point: Point) -> bool:
        """Whether ``point`` lies on the canvas (its edges included)."""
        x, y = point
        return 0 <= x <= self.width and 0 <= y <= self.height

    def cell_of(self, point: Point) -> tuple[int, int]:
        """The ``(row, col)`` holding pixel ``point`` (a point on the canvas's far edge: the last cell)."""
        rows, cols = self.shape
        x, y = point
        return (min(max(int(y // self.cell), 0), rows - 1), min(max(int(x // self.cell), 0), cols - 1))

    def center(self, cell: tuple[int, int]) -> Point:
        """The pixel centre of ``(row, col)``."""
        return ((cell[1] + 0.5) * self.cell, (cell[0] + 0.5) * self.cell)

    def terrain_at(self, cell: tuple[int, int]) -> str:
        return TERRAIN_NAMES[int(self.terrain[cell])]

    def on_at(self, cell: tuple[int, int]) -> str | None:
        i = int(self.on[cell])
        return None if i < 0 else ROUTE_KINDS[i]

    def planning_cost(self) -> np.ndarray:
        """:attr:`cost` plus the model's ``offroad_premium`` on passable cells on no route for the mode."""
        premium = self.model.offroad_premium
        if not premium:
            return self.cost
        return np.where((self.on < 0) & np.isfinite(self.cost), self.cost + premium, self.cost)


def cost_grid(spec: CampaignSpec, mode: str, *, max_cells: int = 512, model: TravelModel | None = None) -> CostGrid:
    """The cost grid of ``spec`` for ``mode``: its longer side ``max_cells`` cells (fewer on a canvas smaller than
    that in pixels: cells are at least 1 px). ``model``: the spec's own (``spec.travel`` over the default) unless
    given.

    Raises:
        InputError: An unknown mode, ``max_cells`` below 2; a bad ``travel`` override.
    """
    _check_choice(mode, "mode", MODES)
    model = model if model is not None else resolve_model(spec.travel)
    raster = _raster(spec, max_cells)
    table = _mode_table(model, mode)
    return CostGrid(
        cost=table.mult[raster.terrain, raster.routes],
        cell=raster.cell,
        terrain=raster.terrain,
        routes=raster.routes,
        on=table.on[raster.terrain, raster.routes],
        mode=mode,
        model=model,
        width=spec.width,
        height=spec.height,
    )


_RASTERS: dict[int, tuple[weakref.ref[CampaignSpec], int, _Raster]] = {}
_RASTER_CACHE = 8


def _raster(spec: CampaignSpec, max_cells: int) -> _Raster:
    """The spec's terrain and route rasters, kept for the last few specs (a spec is frozen; measuring one calls
    :func:`path_travel` once per route)."""
    if isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 2:
        raise InputError("max_cells", max_cells, "an integer of at least 2")
    hit = _RASTERS.get(id(spec))
    if hit is not None and hit[0]() is spec and hit[1] == max_cells:
        return hit[2]
    raster = _rasterise(spec, max_cells)
    raster.terrain.setflags(write=False)  # shared by every grid of the spec
    raster.routes.setflags(write=False)
    if len(_RASTERS) >= _RASTER_CACHE:
        _RASTERS.pop(next(iter(_RASTERS)), None)
    _RASTERS[id(spec)] = (weakref.ref(spec), max_cells, raster)
    return raster


def _rasterise(spec: CampaignSpec, max_cells: int) -> _Raster:
    cell = max(1.0, max(spec.width, spec.height) / max_cells)
    rows, cols = max(1, math.ceil(spec.height / cell)), max(1, math.ceil(spec.width / cell))
    terrain = np.full((rows, cols), _PLAINS, dtype=np.uint8)
    for region in spec.regions:
        inside = _polygon_cells(region.polygon, cell, rows, cols)
        if inside is not None:
            (r0, c0), mask = inside
            view = terrain[r0 : r0 + mask.shape[0], c0 : c0 + mask.shape[1]]
            view[mask] = TERRAIN_NAMES.index(region.terrain)
    routes = np.zeros((rows, cols), dtype=np.uint8)
    for kind in ROUTE_KINDS:
        marked = np.zeros((rows, cols), dtype=bool)
        for route in spec.routes:
            if route.kind == kind:
                r, c = _supercover(route_points(spec, route), cell, rows, cols)
                marked[r, c] = True
        if marked.any():
            routes[_four_connected(marked)] |= _BIT[kind]
    return _Raster(terrain, routes, cell)


def _polygon_cells(
    ring: Sequence[Point], cell: float, rows: int, cols: int
) -> tuple[tuple[int, int], np.ndarray] | None:
    """The cells whose centre lies inside ``ring`` (even-odd scanlines; half-open: a centre on a left or top edge
    is in, on a right or bottom edge out), as the bounding box's corner and a mask over it."""
    pts = np.asarray(ring, dtype=np.float64) / cell - 0.5  # centre of (r, c) is (c, r) here
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    r_lo = max(0, math.ceil(y0.min()))
    r_hi = min(rows, math.ceil(y0.max()))  # rows r with min <= r < max
    c_lo = max(0, math.ceil(x0.min()))
    c_hi = min(cols, math.ceil(x0.max()))
    if r_lo >= r_hi or c_lo >= c_hi:
        return None
    first = np.clip(np.ceil(np.minimum(y0, y1)), r_lo, r_hi).astype(np.int64)
    last = np.clip(np.ceil(np.maximum(y0, y1)), r_lo, r_hi).astype(np.int64)
    count = last - first  # rows each edge crosses (horizontal edges: none)
    edge = np.repeat(np.arange(len(pts)), count)
    row = first[edge] + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    x = x0[edge] + (row - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    col = np.clip(np.ceil(x), c_lo, c_hi).astype(np.int64)  # the first column whose centre is at or past x
    toggles = np.zeros((r_hi - r_lo, c_hi - c_lo + 1), dtype=np.int32)
    np.add.at(toggles, (row - r_lo, col - c_lo), 1)
    mask = (np.cumsum(toggles, axis=1)[:, :-1] & 1).astype(bool)
    return (r_lo, c_lo), mask


def _supercover(points: Sequence[Point], cell: float, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The cells a polyline passes through: each vertex's cell and, per segment, the cell of the midpoint between
    every two consecutive crossings of a cell edge."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2) / cell
    if len(pts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    segs_t, segs_i = [np.zeros(len(pts) - 1), np.ones(len(pts) - 1)], [np.arange(len(pts) - 1)] * 2
    for axis in (0, 1):
        a, b = pts[:-1, axis], pts[1:, axis]
        lo, hi = np.floor(np.minimum(a, b)) + 1, np.ceil(np.maximum(a, b)) - 1
        count = np.maximum(hi - lo + 1, 0).astype(np.int64)  # the grid lines strictly between a and b
        seg = np.repeat(np.arange(len(a)), count)
        line = lo[seg] + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        segs_t.append((line - a[seg]) / (b[seg] - a[seg]))
        segs_i.append(seg)
    t, seg = np.concatenate(segs_t), np.concatenate(segs_i)
    order = np.lexsort((t, seg))
    t, seg = t[order], seg[order]
    same = seg[1:] == seg[:-1]
    mid_t = (t[1:] + t[:-1])[same] / 2
    mid_seg = seg[1:][same]
    start, delta = pts[:-1][mid_seg], (pts[1:] - pts[:-1])[mid_seg]
    xy = np.concatenate([pts, start + delta * mid_t[:, None]])
    r = np.clip(np.floor(xy[:, 1]), 0, rows - 1).astype(np.int64)
    c = np.clip(np.floor(xy[:, 0]), 0, cols - 1).astype(np.int64)
    return r, c


def _four_connected(marked: np.ndarray) -> np.ndarray:
    """``marked`` with a cell added wherever two marked cells touch only at a corner: below the upper-left one of
    a ``\\`` pair, below the upper-right one of a ``/`` pair (the cells a point on the corner itself falls in)."""
    out = marked.copy()
    a, b, c, d = marked[:-1, :-1], marked[:-1, 1:], marked[1:, :-1], marked[1:, 1:]  # a b / c d
    out[1:, :-1] |= a & d & ~b & ~c
    out[1:, 1:] |= b & c & ~a & ~d
    return out


# -- A* ----------------------------------------------------------------------------------------------------------

_DIAGONALS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def astar(
    cost: np.ndarray, start: tuple[int, int], goal: tuple[int, int]
) -> tuple[list[tuple[int, int]], float] | None:
    """The cheapest 8-connected path of cells from ``start`` to ``goal`` (``(row, col)``) over ``cost``.

    Rules (the module's docstring has them in full): a step into a cell costs ``cost[cell]`` times 1, or sqrt 2
    diagonally; a cost that is ``inf``, NaN or not above 0 is impassable; no diagonal step between two impassable
    cells. Optimal for the costs quantised to ``round(100 cost)`` and steps 408/577.

    Returns:
        The path, both ends included (``[start]`` alone when ``start == goal``), and its exact float cost (the sum
        of ``cost[cell] * step`` over its steps, sqrt 2 exact); ``None`` when ``goal`` can't be reached or either
        end is impassable.

    Raises:
        ValueError: ``cost`` is not 2-D, an end is off it, or a finite cost exceeds :data:`MAX_COST`.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D array, got shape {cost.shape}")
    rows, cols = cost.shape
    start, goal = (int(start[0]), int(start[1])), (int(goal[0]), int(goal[1]))
    for name, (r, c) in (("start", start), ("goal", goal)):
        if not (0 <= r < rows and 0 <= c < cols):
            raise ValueError(f"{name} {(r, c)} is off the {rows} x {cols} grid")
    passable = np.isfinite(cost) & (cost > 0)
    scaled = np.where(passable, cost, 0.0)
    top = float(scaled.max())
    if top > MAX_COST:
        raise ValueError(f"costs must be at most {MAX_COST:g} (or inf), got {top:g}")
    if not (passable[start] and passable[goal]):
        return None
    if start == goal:
        return [start], 0.0
    q = np.rint(scaled * COST_SCALE).astype(np.int32)
    np.maximum(q, passable, out=q)  # a positive cost never rounds to 0, impassable
    allowed = _diagonal_rules(passable)
    cells = _astar_tcod(q, start, goal, allowed)
    if cells == "overflow":
        cells = _astar_python(q, start, goal, allowed)
    if cells is None or isinstance(cells, str):
        return None
    return cells, _path_cost(cost, cells)


def _diagonal_rules(passable: np.ndarray) -> dict[tuple[int, int], np.ndarray] | None:
    """Per diagonal direction ``(dr, dc)``, where a step from a cell is allowed (1; 0 where both cells beside it
    are impassable); ``None`` when no step between two passable cells is refused anywhere (no rule needed)."""
    blocked = ~passable
    back = blocked[:-1, 1:] & blocked[1:, :-1]  # no step between (i, j) and (i + 1, j + 1)
    forward = blocked[:-1, :-1] & blocked[1:, 1:]  # no step between (i, j + 1) and (i + 1, j)
    if not (
        (back & passable[:-1, :-1] & passable[1:, 1:]).any() or (forward & passable[:-1, 1:] & passable[1:, :-1]).any()
    ):
        return None
    rules = {direction: np.ones(passable.shape, dtype=np.int8) for direction in _DIAGONALS}
    rules[(1, 1)][:-1, :-1] = ~back
    rules[(-1, -1)][1:, 1:] = ~back
    rules[(1, -1)][:-1, 1:] = ~forward
    rules[(-1, 1)][1:, :-1] = ~forward
    return rules


def _astar_tcod(
    q: np.ndarray, start: tuple[int, int], goal: tuple[int, int], allowed: dict[tuple[int, int], np.ndarray] | None
) -> list[tuple[int, int]] | str | None:
    """libtcod's A*: the path, ``None`` (unreachable) or ``"overflow"`` when its 32-bit distances may have
    wrapped (checked: the distance array holds no negative and the goal's distance leaves room for one more step
    and the whole heuristic, the most any priority of the search can exceed it by)."""
    import tcod.path

    least = int(np.min(q, where=q > 0, initial=_INT_MAX))
    if allowed is None:
        graph: Any = tcod.path.SimpleGraph(cost=q, cardinal=CARDINAL_COST, diagonal=DIAGONAL_COST, greed=least)
    else:
        graph = tcod.path.CustomGraph(q.shape)  # an edge's cost is its step length times the cost of its end
        straight = [[0, CARDINAL_COST, 0], [CARDINAL_COST, 0, CARDINAL_COST], [0, CARDINAL_COST, 0]]
        graph.add_edges(edge_map=straight, cost=q)
        for direction, ok in allowed.items():
            graph.add_edge(direction, DIAGONAL_COST, cost=q, condition=ok)
        graph.set_heuristic(cardinal=least * CARDINAL_COST, diagonal=least * DIAGONAL_COST)
    pf = tcod.path.Pathfinder(graph)
    pf.add_root(start)
    pf.resolve(goal)
    distance = pf.distance
    reached, lowest = int(distance[goal]), int(distance.min())
    if reached == _INT_MAX and lowest >= 0:
        return None
    headroom = int(q.max()) * DIAGONAL_COST + least * DIAGONAL_COST * max(q.shape)  # a step, the whole heuristic
    if lowest < 0 or reached > _INT_MAX - headroom:
        return "overflow"
    try:
        path = pf.path_to(goal).tolist()
    except RuntimeError:  # libtcod takes a path through every cell of the grid for a loop: walk it back here
        path, travel = [list(goal)], pf.traversal
        while path[-1] != list(start):
            path.append(travel[path[-1][0], path[-1][1]].tolist())
        path.reverse()
    return [(int(r), int(c)) for r, c in path]


def _astar_python(
    q: np.ndarray, start: tuple[int, int], goal: tuple[int, int], allowed: dict[tuple[int, int], np.ndarray] | None
) -> list[tuple[int, int]] | None:
    """The same search in Python integers (no overflow): for the searches libtcod's 32-bit distances can't hold."""
    rows, cols = q.shape
    least = int(q[q > 0].min())
    grid = q.tolist()
    rules = {d: ok.tolist() for d, ok in allowed.items()} if allowed is not None else None
    steps = [(dr, dc, CARDINAL_COST) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    steps += [(dr, dc, DIAGONAL_COST) for dr, dc in _DIAGONALS]

    def h(r: int, c: int) -> int:
        dr, dc = abs(r - goal[0]), abs(c - goal[1])
        return least * (CARDINAL_COST * abs(dr - dc) + DIAGONAL_COST * min(dr, dc))

    best = {start: 0}
    came: dict[tuple[int, int], tuple[int, int]] = {}
    frontier = [(h(*start), 0, start)]
    while frontier:
        _, g, node = heapq.heappop(frontier)
        if node == goal:
            path = [node]
            while path[-1] != start:
                path.append(came[path[-1]])
            return path[::-1]
        if g > best[node]:
            continue
        r, c = node
        for dr, dc, length in steps:
            nr, nc = r + dr, c + dc
            if not (0 <= nr < rows and 0 <= nc < cols) or grid[nr][nc] <= 0:
                continue
            if dr and dc and rules is not None and not rules[(dr, dc)][r][c]:
                continue
            ng = g + grid[nr][nc] * length
            if ng < best.get((nr, nc), ng + 1):
                best[(nr, nc)] = ng
                came[(nr, nc)] = node
                heapq.heappush(frontier, (ng + h(nr, nc), ng, (nr, nc)))
    return None


def _path_cost(cost: np.ndarray, cells: Sequence[tuple[int, int]]) -> float:
    """The float cost of a path of cells: each step's end cell times 1, or sqrt 2 diagonally."""
    at = np.asarray(cells, dtype=np.int64)
    diagonal = np.all(at[1:] != at[:-1], axis=1)
    return float((cost[at[1:, 0], at[1:, 1]] * np.where(diagonal, math.sqrt(2), 1.0)).sum())


# -- travel along a polyline -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """A run of a path over one terrain and one route kind (``on``: the route that applies, or ``None``);
    ``impassable``: the ground is impassable for the mode (measured at the mode's worst passable multiplier)."""

    terrain: str
    on: str | None
    miles: float
    days: float
    start: Point
    end: Point
    impassable: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "terrain": self.terrain,
            "on": self.on,
            "miles": round(self.miles, 2),
            "days": round(self.days, 3),
            "start": _point_json(self.start),
            "end": _point_json(self.end),
            "impassable": self.impassable,
        }


@dataclass(frozen=True)
class Travel:
    """The figures of travel along a polyline: miles (its length), days, its legs and the points where each full
    day of travel ends."""

    miles: float
    days: float
    legs: tuple[Leg, ...]
    day_marks: tuple[Point, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "miles": round(self.miles, 2),
            "days": round(self.days, 3),
            "legs": [leg.to_json() for leg in self.legs],
            "day_marks": [_point_json(p) for p in self.day_marks],
        }


@dataclass(frozen=True)
class RoutePlan:
    """A planned route: the path in canvas pixels (from the start exactly, through the cell centres where the grid
    path turns, to the goal exactly) and its travel figures."""

    path: tuple[Point, ...]
    miles: float
    days: float
    legs: tuple[Leg, ...]
    day_marks: tuple[Point, ...]
    pace: str
    mode: str

    def to_json(self) -> dict[str, Any]:
        """``{path, miles, days, legs}``, rounded for people: miles to 0.01, days to 0.001, points to 0.01 px."""
        return {
            "path": [_point_json(p) for p in self.path],
            "miles": round(self.miles, 2),
            "days": round(self.days, 3),
            "legs": [leg.to_json() for leg in self.legs],
        }


def _point_json(p: Point) -> list[float]:
    return [round(float(p[0]), 2), round(float(p[1]), 2)]


def path_travel(
    spec: CampaignSpec,
    points: Sequence[Point],
    *,
    pace: str,
    mode: str,
    on: str | None = None,
    model: TravelModel | None = None,
    max_cells: int = 512,
) -> Travel:
    """Travel along the polyline ``points`` (canvas pixels) at ``pace`` by ``mode``, by the module's rules.

    ``on``: the polyline is a route's own line, of that kind: every piece of it counts as on that route alone
    (a road through a forest is not difficult; other routes crossing it are ignored). A piece over ground
    impassable for ``mode`` takes the mode's worst passable multiplier (its leg says ``impassable``); a polyline
    of fewer than 2 points travels nowhere.

    Raises:
        InputError: An unknown pace, mode or route kind (``on``); a bad ``travel`` override.
    """
    _check_choice(pace, "pace", PACES)
    _check_choice(mode, "mode", MODES)
    if on is not None:
        _check_choice(on, "on", ROUTE_KINDS)
    model = model if model is not None else resolve_model(spec.travel)
    raster = _raster(spec, max_cells)
    return _travel(raster, _mode_table(model, mode), model.miles_per_day[mode][pace], points, on, spec)


def _travel(
    raster: _Raster,
    table: _ModeTable,
    miles_per_day: float,
    points: Sequence[Point],
    on: str | None,
    spec: CampaignSpec,
) -> Travel:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) >= 2:
        pts = pts[np.concatenate([[True], np.any(pts[1:] != pts[:-1], axis=1)])]  # repeated points add nothing
    if len(pts) < 2:
        return Travel(0.0, 0.0, (), ())
    mpp = spec.scale.miles_per_pixel
    cell = raster.cell
    rows, cols = raster.terrain.shape
    a, b = pts[:-1], pts[1:]
    count = 2 * np.maximum(np.ceil(np.abs(b - a).max(axis=1) / cell), 1).astype(np.int64)
    seg = np.repeat(np.arange(len(a)), count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    n = count[seg][:, None]
    delta = (b - a)[seg]
    p0 = a[seg] + delta * (k[:, None] / n)
    p1 = a[seg] + delta * ((k[:, None] + 1) / n)
    p1[k == count[seg] - 1] = b[seg][k == count[seg] - 1]  # segment ends exactly at its vertex
    mid = a[seg] + delta * ((k[:, None] + 0.5) / n)
    r = np.clip(np.floor(mid[:, 1] / cell), 0, rows - 1).astype(np.int64)
    c = np.clip(np.floor(mid[:, 0] / cell), 0, cols - 1).astype(np.int64)
    terrain = raster.terrain[r, c]
    masks = raster.routes[r, c] if on is None else np.full(len(r), _BIT[on], dtype=np.uint8)
    mult = table.mult[terrain, masks]
    kind = table.on[terrain, masks]
    impassable = ~np.isfinite(mult)
    mult = np.where(impassable, table.worst, mult)
    miles = np.hypot(*(p1 - p0).T) * mpp
    days = miles * mult / miles_per_day
    total_days = float(days.sum())
    legs = []
    key = np.stack([terrain.astype(np.int64), kind.astype(np.int64), impassable.astype(np.int64)], axis=1)
    breaks = np.flatnonzero(np.any(key[1:] != key[:-1], axis=1)) + 1
    for lo, hi in itertools.pairwise([0, *breaks.tolist(), len(key)]):
        legs.append(
            Leg(
                terrain=TERRAIN_NAMES[int(terrain[lo])],
                on=None if kind[lo] < 0 else ROUTE_KINDS[int(kind[lo])],
                miles=float(miles[lo:hi].sum()),
                days=float(days[lo:hi].sum()),
                start=(float(p0[lo, 0]), float(p0[lo, 1])),
                end=(float(p1[hi - 1, 0]), float(p1[hi - 1, 1])),
                impassable=bool(impassable[lo]),
            )
        )
    marks = []
    running = np.cumsum(days)
    for day in range(1, math.floor(total_days + 1e-9) + 1):
        i = min(int(np.searchsorted(running, day - 1e-9)), len(running) - 1)
        before = float(running[i - 1]) if i else 0.0
        frac = min(max((day - before) / float(days[i]), 0.0), 1.0)
        x, y = p0[i] + (p1[i] - p0[i]) * frac
        marks.append((float(x), float(y)))
    length = float(np.hypot(*(b - a).T).sum()) * mpp
    return Travel(length, total_days, tuple(legs), tuple(marks))


# -- route planning ----------------------------------------------------------------------------------------------


def plan_route(
    spec: CampaignSpec,
    start: Point,
    goal: Point,
    *,
    pace: str = "normal",
    mode: str = "foot",
    model: TravelModel | None = None,
    max_cells: int = 512,
) -> RoutePlan:
    """The quickest route from ``start`` to ``goal`` (canvas pixels) by ``mode``: A* over the cost grid (with the
    planning premium for roads), the grid path simplified to its turns, measured by :func:`path_travel`'s rules
    (so ``path_travel(spec, plan.path, pace=..., mode=...)`` gives the same figures).

    Raises:
        InputError: ``from``/``to`` off the canvas or on ground impassable for ``mode``; ``to`` when no route
            reaches it; an unknown pace or mode; a bad ``travel`` override.
    """
    _check_choice(pace, "pace", PACES)
    grid = cost_grid(spec, mode, max_cells=max_cells, model=model)
    ends = []
    for name, point in (("from", start), ("to", goal)):
        if (
            not isinstance(point, Sequence)
            or len(point) != 2
            or not all(_is_number(v) for v in point)
            or not grid.contains((point[0], point[1]))
        ):
            raise InputError(name, point, f"a point on the {spec.width} x {spec.height} canvas")
        cell = grid.cell_of((float(point[0]), float(point[1])))
        if not math.isfinite(float(grid.cost[cell])):
            radius = max(3, math.ceil(SNAP_SHARE * max(spec.width, spec.height) / grid.cell))
            near = _nearest_passable(grid, cell, radius) if mode == "ship" else None
            if near is None:
                ground = grid.terrain_at(cell) + (f" ({grid.on_at(cell)})" if grid.on_at(cell) else "")
                raise InputError(name, list(point), f"a point passable {_BY[mode]}: it lies on {ground}")
            cell = near  # a port on the shore embarks on the water beside it
        ends.append(cell)
    found = astar(grid.planning_cost(), ends[0], ends[1])
    if found is None:
        blocker = "land or impassable water" if mode == "ship" else "water or impassable terrain"
        raise InputError(
            "to", list(goal), f"a point reachable from `from`: no route {_BY[mode]}: {blocker} between them"
        )
    cells, _ = found
    path = _simplify([(float(start[0]), float(start[1])), *_turns(grid, cells), (float(goal[0]), float(goal[1]))])
    table = _mode_table(grid.model, mode)
    raster = _Raster(grid.terrain, grid.routes, grid.cell)
    travel = _travel(raster, table, grid.model.miles_per_day[mode][pace], path, None, spec)
    return RoutePlan(tuple(path), travel.miles, travel.days, travel.legs, travel.day_marks, pace, mode)


SNAP_SHARE = 0.02
"""By ship, an endpoint on land (a port drawn on the shore) starts or ends at the nearest water within this share
of the canvas's longer side (at least 3 cells): it embarks there; the piece from the point to the water is measured
like any drawn piece on impassable ground. Land modes never move an endpoint: a town in the water is a mistake."""


def _nearest_passable(grid: CostGrid, cell: tuple[int, int], radius: int) -> tuple[int, int] | None:
    """The passable cell nearest ``cell`` (Euclidean, ties by row then column) within ``radius`` cells."""
    rows, cols = grid.cost.shape
    r0, r1 = max(0, cell[0] - radius), min(rows, cell[0] + radius + 1)
    c0, c1 = max(0, cell[1] - radius), min(cols, cell[1] + radius + 1)
    window = np.isfinite(grid.cost[r0:r1, c0:c1])
    if not window.any():
        return None
    rr, cc = np.nonzero(window)
    d2 = (rr + r0 - cell[0]) ** 2 + (cc + c0 - cell[1]) ** 2
    best = int(np.argmin(d2))
    if d2[best] > radius * radius:
        return None
    return (int(rr[best] + r0), int(cc[best] + c0))


def _turns(grid: CostGrid, cells: Sequence[tuple[int, int]]) -> list[Point]:
    """The centres of the interior cells where the path changes direction."""
    out = []
    for prev, here, nxt in zip(cells, cells[1:], cells[2:], strict=False):
        if (here[0] - prev[0], here[1] - prev[1]) != (nxt[0] - here[0], nxt[1] - here[1]):
            out.append(grid.center(here))
    return out


def _simplify(points: list[Point]) -> list[Point]:
    """``points`` without repeats and without interior points lying on the straight line between their
    neighbours (going on in the same direction)."""
    out: list[Point] = []
    for p in points:
        if out and math.dist(out[-1], p) < 1e-9:
            continue
        while len(out) >= 2:
            (ax, ay), (bx, by) = out[-2], out[-1]
            ux, uy, vx, vy = bx - ax, by - ay, p[0] - bx, p[1] - by
            if abs(ux * vy - uy * vx) <= 1e-9 * math.hypot(ux, uy) * math.hypot(vx, vy) and ux * vx + uy * vy > 0:
                out.pop()
            else:
                break
        out.append(p)
    if len(out) == 1:
        out.append(points[-1])
    return out


def _check_choice(value: Any, param: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InputError(param, value, f"one of {', '.join(allowed)}")
