"""pipelines/overlay/templates.py: the cells each area template covers under each rule.

Every expectation is computed here, not by the module: a supersampled coverage count (a 50 x 50 point lattice per
square cell, a 40-per-unit lattice clipped to each hex) over shapes written from the rules doc, with margins so that
only clear cases are judged by sampling; exact integer brute force for centre tests; a closed-form disc-rectangle
area for the Fireball under ``half``; and hand-worked 5e cases for the ties the module's docstring promises
(boundaries count in: centres on a cone's edge, half-covered cells along a line on a grid line, edge-only touches
left out under ``any``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from pipelines.errors import InputError
from pipelines.overlay.grid import GridGeometry
from pipelines.overlay.spec import CONE_ANGLE, Grid, OverlaySpec, Template, Token, field_path
from pipelines.overlay.templates import ARC_STEP_DEG, Shape, covered_cells, template_shape
from pipelines.overlay.tokens import footprint

Inside = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
"""``inside(xs, ys, delta)``: the shape grown by ``delta`` grid units (shrunk when negative). Growing uses mitred
offsets, a superset of the true offset shape, and shrinking is exact for these convex shapes; both directions are
what the oracle's margins need."""

M = 50  # sample points per square cell side
HALF_MARGIN = 0.05  # a convex region's sampled share of a cell is within 2/M of its area
HEX_M = 40  # sample points per grid unit in a hex
HEX_HALF_MARGIN = 0.07
SIDES = {"tiny": 1, "small": 1, "medium": 1, "large": 2, "huge": 3, "gargantuan": 4}


def _square(cols: int = 30, rows: int = 30, tokens: tuple[Token, ...] = (), feet_per_cell: float = 5.0) -> OverlaySpec:
    return OverlaySpec(grid=Grid(cols=cols, rows=rows, feet_per_cell=feet_per_cell), tokens=tokens)


def _cells(tpl: Template, spec: OverlaySpec, rule: str | None = None) -> set[tuple[int, int]]:
    tpl = replace(tpl, rule=rule) if rule is not None else tpl
    got = covered_cells(tpl, spec, GridGeometry(spec.grid), "templates[0]")
    return set(got.cells)


# -- the shapes, written from the rules doc (TTRPG_RULES 2.2 / 2.3, the design's conventions) ---------------------


def _disc(cx: float, cy: float, r: float) -> Inside:
    return lambda x, y, delta: np.hypot(x - cx, y - cy) <= r + delta


def _box_grown(x0: float, y0: float, x1: float, y1: float, r: float) -> Inside:
    def inside(x: np.ndarray, y: np.ndarray, delta: float) -> np.ndarray:
        dx = np.maximum(np.maximum(x0 - x, x - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - y, y - y1), 0.0)
        if r + delta > 0:
            return np.hypot(dx, dy) <= r + delta
        # Shrinking past the box's own edges: the box's edges pulled in.
        return (x >= x0 - (r + delta)) & (x <= x1 + (r + delta)) & (y >= y0 - (r + delta)) & (y <= y1 + (r + delta))

    return inside


def _frame(ox: float, oy: float, direction: float) -> Callable[[np.ndarray, np.ndarray], tuple]:
    t = math.radians(direction)
    ux, uy = math.cos(t), math.sin(t)

    def along_across(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - ox, y - oy
        return dx * ux + dy * uy, -dx * uy + dy * ux

    return along_across


def _flat_cone(ox: float, oy: float, direction: float, d: float, angle: float) -> Inside:
    frame = _frame(ox, oy, direction)
    h = math.radians(angle / 2)

    def inside(x: np.ndarray, y: np.ndarray, delta: float) -> np.ndarray:
        along, across = frame(x, y)
        return (np.abs(across) * math.cos(h) - along * math.sin(h) <= delta) & (along <= d + delta)

    return inside


def _round_cone(ox: float, oy: float, direction: float, d: float, angle: float) -> Inside:
    frame = _frame(ox, oy, direction)
    h = math.radians(angle / 2)

    def inside(x: np.ndarray, y: np.ndarray, delta: float) -> np.ndarray:
        along, across = frame(x, y)
        wedge = np.abs(across) * math.cos(h) - along * math.sin(h) <= delta
        return wedge & (np.hypot(along, across) <= d + delta)

    return inside


def _strip(ox: float, oy: float, direction: float, length: float, width: float) -> Inside:
    frame = _frame(ox, oy, direction)

    def inside(x: np.ndarray, y: np.ndarray, delta: float) -> np.ndarray:
        along, across = frame(x, y)
        return (along >= -delta) & (along <= length + delta) & (np.abs(across) <= width / 2 + delta)

    return inside


def _corner_square(ox: float, oy: float, direction: float, side: float) -> Inside:
    a, b = _frame(ox, oy, direction - 45), _frame(ox, oy, direction + 45)

    def inside(x: np.ndarray, y: np.ndarray, delta: float) -> np.ndarray:
        s, t = a(x, y)[0], b(x, y)[0]
        return (s >= -delta) & (s <= side + delta) & (t >= -delta) & (t <= side + delta)

    return inside


def _hex_inside(cx: float, cy: float, orientation: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A hex of flat-to-flat width 1: within 1/2 of the centre along each of its three flat-side normals."""
    start = 0 if orientation == "pointy" else 30

    def inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ok = np.ones(np.shape(x), dtype=bool)
        for k in range(3):
            t = math.radians(start + 60 * k)
            ok &= np.abs((x - cx) * math.cos(t) + (y - cy) * math.sin(t)) <= 0.5 + 1e-12
        return ok

    return inside


def _hull_grown(points: np.ndarray, r: float) -> Inside:
    """Points within ``r`` of the convex hull of ``points``: hull edges found by brute force (every pair with all
    points on one side and no point of its line beyond its ends), distance 0 inside, else the distance to the
    nearest hull edge."""
    points = np.unique(np.round(points, 9), axis=0)
    edges = []
    for i in range(len(points)):
        for j in range(len(points)):
            if i == j:
                continue
            e = points[j] - points[i]
            rel = points - points[i]
            side = e[0] * rel[:, 1] - e[1] * rel[:, 0]
            t = rel @ e / (e @ e)
            on_line = np.abs(side) <= 1e-9
            if (side >= -1e-9).all() and (t[on_line] >= -1e-9).all() and (t[on_line] <= 1 + 1e-9).all():
                edges.append((points[i], points[j]))

    def inside(x: np.ndarray, y: np.ndarray, delta: float) -> np.ndarray:
        within = np.ones(np.shape(x), dtype=bool)
        dist = np.full(np.shape(x), np.inf)
        for p, q in edges:
            e = q - p
            within &= e[0] * (y - p[1]) - e[1] * (x - p[0]) >= 0
            t = np.clip(((x - p[0]) * e[0] + (y - p[1]) * e[1]) / (e @ e), 0, 1)
            dist = np.minimum(dist, np.hypot(x - p[0] - t * e[0], y - p[1] - t * e[1]))
        if r + delta > 0:
            return within | (dist <= r + delta)
        return within & (dist >= -(r + delta))

    return inside


def _square_exit(token: Token, direction: float) -> tuple[float, float]:
    """Where the ray from a square token's centre leaves its footprint box."""
    n = SIDES[token.size]
    c, r = token.cell
    cx, cy = c + n / 2, r + n / 2
    t = math.radians(direction)
    ux, uy = round(math.cos(t), 15), round(math.sin(t), 15)
    exits = [(n / 2) / abs(v) for v in (ux, uy) if abs(v) > 1e-12]
    k = min(exits)
    return cx + k * ux, cy + k * uy


def _hex_exit(spec: OverlaySpec, token: Token, direction: float) -> tuple[float, float]:
    """Where the ray from a hex token's centre finally leaves its hexes, by marching and bisection."""
    geo = GridGeometry(spec.grid)
    hexes = [_hex_inside(*geo.cell_center(cell), spec.grid.orientation) for cell in footprint(token, geo)]
    centres = [geo.cell_center(cell) for cell in footprint(token, geo)]
    cx, cy = np.mean(centres, axis=0)
    t = math.radians(direction)
    ux, uy = math.cos(t), math.sin(t)

    def on(k: np.ndarray) -> np.ndarray:
        return np.any([h(cx + k * ux, cy + k * uy) for h in hexes], axis=0)

    ks = np.linspace(0, 4, 4001)
    last = float(ks[on(ks)].max())
    lo, hi = last, last + 1e-3
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if on(np.array(mid)) else (lo, mid)
    return cx + lo * ux, cy + lo * uy


def _membership(tpl: Template, spec: OverlaySpec) -> Inside:
    """The template's true shape (module docstring of templates.py, Shapes), written independently."""
    fpc = spec.grid.feet_per_cell
    d = tpl.distance_ft / fpc
    token = spec.token(tpl.from_token) if tpl.from_token else None
    if tpl.shape in ("sphere", "cylinder", "emanation"):
        if token is None:
            return _disc(tpl.origin[0], tpl.origin[1], d)
        if not spec.grid.is_hex:
            n = SIDES[token.size]
            c, r = token.cell
            return _box_grown(c, r, c + n, r + n, d)
        geo = GridGeometry(spec.grid)
        corners = np.array([p for cell in footprint(token, geo) for p in geo.cell_polygon(cell)])
        return _hull_grown(corners, d)
    if token is None:
        ox, oy = tpl.origin
    elif spec.grid.is_hex:
        ox, oy = _hex_exit(spec, token, tpl.direction)
    else:
        ox, oy = _square_exit(token, tpl.direction)
    if tpl.shape == "cone":
        make = _flat_cone if tpl.cone_end == "flat" else _round_cone
        return make(ox, oy, tpl.direction, d, tpl.angle)
    if tpl.shape == "line":
        return _strip(ox, oy, tpl.direction, d, tpl.width_ft / fpc)
    if tpl.anchor == "corner":
        return _corner_square(ox, oy, tpl.direction, d)
    return _strip(ox, oy, tpl.direction, d, d)


# -- the oracle -----------------------------------------------------------------------------------------------


class Verdicts:
    """Per rule, the cells the oracle is sure are covered and sure are not; anything else is left undecided."""

    def __init__(self) -> None:
        self.covered: dict[str, set] = {}
        self.clear: dict[str, set] = {}
        self.region: set = set()

    def check(self, rule: str, got: set, label: str = "") -> None:
        covered, clear = self.covered[rule], self.clear[rule]
        assert covered <= got, f"{label} {rule}: missing {sorted(covered - got)}"
        assert not (got & clear), f"{label} {rule}: extra {sorted(got & clear)}"
        assert got <= self.region, f"{label} {rule}: outside the judged region {sorted(got - self.region)}"

    def exclude(self, cells: set) -> None:
        """An emanation leaves its token's cells out under every rule."""
        for rule in self.covered:
            self.covered[rule] -= cells
            self.clear[rule] |= cells & self.region

    def undecided(self, rule: str) -> int:
        return len(self.region) - len(self.covered[rule]) - len(self.clear[rule])


def _reach(tpl: Template, spec: OverlaySpec) -> tuple[tuple[float, float], float]:
    """A point and a radius (grid units) that surely contain the template, to bound the cells the oracle judges."""
    fpc = spec.grid.feet_per_cell
    spread = 1 / math.cos(math.radians(tpl.angle / 2)) if tpl.shape == "cone" else 1.5  # a flat cone's side
    size = tpl.distance_ft / fpc * max(spread, 1.5) + tpl.width_ft / fpc + 2
    if tpl.from_token:
        token = spec.token(tpl.from_token)
        if spec.grid.is_hex:
            geo = GridGeometry(spec.grid)
            return geo.cell_center(token.cell), size + 4
        n = SIDES[token.size]
        return (token.cell[0] + n / 2, token.cell[1] + n / 2), size + n
    return tpl.origin, size


def _square_oracle(inside: Inside, spec: OverlaySpec, tpl: Template | None = None) -> Verdicts:
    """Sample the cells near the template (a fine lattice of M x M points each; every map cell when ``tpl`` is
    None) and decide each rule where sampling is unambiguous."""
    c0, c1, r0, r1 = 0, spec.grid.cols, 0, spec.grid.rows
    if tpl is not None:
        (px, py), size = _reach(tpl, spec)
        c0, c1 = max(0, math.floor(px - size)), min(c1, math.ceil(px + size))
        r0, r1 = max(0, math.floor(py - size)), min(r1, math.ceil(py + size))
    cols, rows = c1 - c0, r1 - r0
    off = (np.arange(M) + 0.5) / M
    xs = (np.arange(c0, c1)[:, None] + off[None, :]).ravel()
    ys = (np.arange(r0, r1)[:, None] + off[None, :]).ravel()
    gx, gy = np.meshgrid(xs, ys)

    def counts(delta: float) -> np.ndarray:
        return inside(gx, gy, delta).reshape(rows, M, cols, M).sum(axis=(1, 3))

    strict, share, wide = counts(-1e-3), counts(0.0) / (M * M), counts(1.0 / M)
    cx, cy = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    centre_in, centre_out = inside(cx, cy, -1e-7), ~inside(cx, cy, 1e-7)
    out = Verdicts()
    out.region = {(c, r) for r in range(r0, r1) for c in range(c0, c1)}

    def cells(mask: np.ndarray) -> set:
        return {(int(c) + c0, int(r) + r0) for r, c in zip(*np.nonzero(mask), strict=True)}

    # any: a lattice point well inside (a 1e-3 ball inside the shape and the cell) is positive area; no lattice point
    # even in the shape grown by a lattice step means no overlap at all.
    out.covered["any"], out.clear["any"] = cells(strict > 0), cells(wide == 0)
    out.covered["half"] = cells(share >= 0.5 + HALF_MARGIN)
    out.clear["half"] = cells(share <= 0.5 - HALF_MARGIN)
    out.covered["center"], out.clear["center"] = cells(centre_in), cells(centre_out)
    return out


def _hex_oracle(inside: Inside, spec: OverlaySpec, tpl: Template) -> Verdicts:
    """The same over the hexes near the template: a lattice of HEX_M points per unit, kept where it falls in the
    hex."""
    geo = GridGeometry(spec.grid)
    grid = np.arange(-0.6, 0.6, 1 / HEX_M) + 0.5 / HEX_M
    ox, oy = np.meshgrid(grid, grid)
    ox, oy = ox.ravel(), oy.ravel()
    keep = _hex_inside(0.0, 0.0, spec.grid.orientation)(ox, oy)
    ox, oy = ox[keep], oy[keep]
    (px0, py0), size = _reach(tpl, spec)
    cells = [cell for cell in geo.cells() if math.dist(geo.cell_center(cell), (px0, py0)) <= size]
    centres = np.array([geo.cell_center(cell) for cell in cells])
    px, py = centres[:, :1] + ox[None, :], centres[:, 1:] + oy[None, :]
    strict, share = inside(px, py, -1e-3).sum(axis=1), inside(px, py, 0.0).mean(axis=1)
    wide = inside(px, py, 2.0 / HEX_M).sum(axis=1)
    centre_in = inside(centres[:, 0], centres[:, 1], -1e-7)
    centre_out = ~inside(centres[:, 0], centres[:, 1], 1e-7)
    out = Verdicts()
    out.region = set(cells)

    def pick(mask: np.ndarray) -> set:
        return {cell for cell, m in zip(cells, mask.tolist(), strict=True) if m}

    out.covered["any"], out.clear["any"] = pick(strict > 0), pick(wide == 0)
    out.covered["half"] = pick(share >= 0.5 + HEX_HALF_MARGIN)
    out.clear["half"] = pick(share <= 0.5 - HEX_HALF_MARGIN)
    out.covered["center"], out.clear["center"] = pick(centre_in), pick(centre_out)
    return out


# -- every shape under every rule, against sampling -----------------------------------------------------------

VARIANTS = {
    "sphere": {"shape": "sphere"},
    "cylinder": {"shape": "cylinder"},
    "cone-flat": {"shape": "cone"},
    "cone-round": {"shape": "cone", "cone_end": "round"},
    "line": {"shape": "line"},
    "cube-corner": {"shape": "cube", "anchor": "corner"},
    "cube-face": {"shape": "cube", "anchor": "face"},
    "emanation": {"shape": "emanation", "from_token": "t"},
    "sphere-from-token": {"shape": "sphere", "from_token": "t"},
    "cone-from-token": {"shape": "cone", "from_token": "t"},
    "cone-round-from-token": {"shape": "cone", "cone_end": "round", "from_token": "t"},
    "line-from-token": {"shape": "line", "from_token": "t"},
    "cube-from-token": {"shape": "cube", "from_token": "t"},
}


def _random_template(rng: np.random.Generator, variant: dict, width: float, height: float) -> Template:
    kind = rng.integers(3)
    origin = (float(rng.uniform(7, width - 7)), float(rng.uniform(7, height - 7)))
    if kind == 1:  # an intersection
        origin = (float(round(origin[0])), float(round(origin[1])))
    direction = float(rng.choice([0.0, 45.0, 90.0, 135.0, 180.0, 270.0])) if kind == 2 else float(rng.uniform(0, 360))
    return Template(
        id="a",
        distance_ft=float(rng.choice([5.0, 10.0, 15.0, 20.0, float(rng.uniform(3, 30))])),
        origin=None if "from_token" in variant else origin,
        direction=direction,
        width_ft=float(rng.choice([5.0, 10.0, float(rng.uniform(1, 12))])),
        angle=float(rng.choice([CONE_ANGLE, 90.0, float(rng.uniform(10, 170))])),
        **variant,
    )


def _random_token(rng: np.random.Generator, cols: int, rows: int) -> Token:
    size = str(rng.choice(list(SIDES)))
    return Token(id="t", cell=(int(rng.integers(8, cols - 12)), int(rng.integers(8, rows - 12))), size=size)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_square_shapes_match_sampled_coverage(name: str) -> None:
    rng = np.random.default_rng(sorted(VARIANTS).index(name) + 10)
    undecided, judged, total = 0, 0, 0
    for _ in range(5):
        spec = _square(24, 24, tokens=(_random_token(rng, 24, 24),))
        tpl = _random_template(rng, VARIANTS[name], 24, 24)
        oracle = _square_oracle(_membership(tpl, spec), spec, tpl)
        if tpl.shape == "emanation":
            oracle.exclude(set(footprint(spec.tokens[0], GridGeometry(spec.grid))))
        for rule in ("center", "any", "half"):
            got = _cells(tpl, spec, rule)
            oracle.check(rule, got, f"{name} {tpl}")
            undecided += oracle.undecided(rule)
            judged += len(oracle.covered[rule])
            total += len(oracle.region)
    assert judged > 20  # the oracle did decide covered cells
    # and left few to the hand-worked cases: edge-only touches (a grown footprint whose sides are grid lines),
    # centres on a boundary and cells near half covered.
    assert undecided <= 0.05 * total


HEX_GRIDS = [("pointy", "odd-r"), ("pointy", "even-r"), ("flat", "odd-q"), ("flat", "even-q")]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_hex_shapes_match_sampled_coverage(name: str) -> None:
    rng = np.random.default_rng(sorted(VARIANTS).index(name) + 100)
    grids = HEX_GRIDS[::2] if "token" in name or name == "emanation" else HEX_GRIDS  # token ones: pointy and flat
    for orientation, offset in grids:
        token = Token(
            id="t", cell=(int(rng.integers(5, 8)), int(rng.integers(5, 8))), size=str(rng.choice(list(SIDES)))
        )
        grid = Grid(type="hex", cols=16, rows=16, orientation=orientation, offset=offset)
        spec = OverlaySpec(grid=grid, tokens=(token,))
        geo = GridGeometry(grid)
        tpl = _random_template(rng, VARIANTS[name], geo.width, geo.height)
        tpl = replace(tpl, distance_ft=min(tpl.distance_ft, 15.0))
        oracle = _hex_oracle(_membership(tpl, spec), spec, tpl)
        if tpl.shape == "emanation":
            oracle.exclude(set(footprint(token, geo)))
        for rule in ("center", "any", "half"):
            got = set(covered_cells(replace(tpl, rule=rule), spec, geo, "templates[0]").cells)
            oracle.check(rule, got, f"{name} {orientation} {offset} {tpl}")
            assert oracle.undecided(rule) < 12
        assert oracle.covered["any"]


# -- hand-worked 5e cases -----------------------------------------------------------------------------------------


def _quadrant_cell_area(r: float, x0: float, x1: float, y0: float, y1: float) -> float:
    """Area of the disc (radius r, centre 0) in a cell with 0 <= x0 < x1, 0 <= y0 < y1: the integral over x of the
    clamped chord height, with the primitive of sqrt(r^2 - x^2)."""

    def prim(x: float) -> float:
        x = min(max(x, 0.0), r)
        return 0.5 * (x * math.sqrt(r * r - x * x) + r * r * math.asin(x / r))

    full_to = math.sqrt(max(r * r - y1 * y1, 0.0))  # up to here the chord covers the cell's whole height
    some_to = math.sqrt(max(r * r - y0 * y0, 0.0))  # beyond here it misses the cell
    a, b = x0, min(x1, full_to)
    area = (y1 - y0) * max(b - a, 0.0)
    a, b = max(x0, full_to), min(x1, some_to)
    if b > a:
        area += prim(b) - prim(a) - y0 * (b - a)
    return area


def test_fireball_from_an_intersection_counts_52_60_52_64() -> None:
    """TTRPG_RULES 2.4: a 20-ft sphere from a grid intersection covers 52 cells by centres, 60 by any overlap and
    64 under the token method; by half the cell it is 52 again. Each count is worked out here by brute force."""
    spec = _square(30, 30)
    tpl = Template(id="fireball", shape="sphere", distance_ft=20, origin=(10.0, 10.0))
    cells = [(c, r) for r in range(30) for c in range(30)]
    # Doubled integer coordinates: centre (2c + 1, 2r + 1), origin (20, 20), radius 8.
    centre = {(c, r) for c, r in cells if (2 * c + 1 - 20) ** 2 + (2 * r + 1 - 20) ** 2 <= 64}
    # Positive overlap: the cell's nearest point is strictly inside the circle (touching is not overlap).
    near = {(c, r) for c, r in cells if max(c - 10, 0, 9 - c) ** 2 + max(r - 10, 0, 9 - r) ** 2 < 16}
    areas = {
        (c, r): _quadrant_cell_area(
            4.0, *sorted((abs(c - 10), abs(c + 1 - 10))), *sorted((abs(r - 10), abs(r + 1 - 10)))
        )
        for c, r in cells
        if abs(c - 9.5) < 6 and abs(r - 9.5) < 6
    }
    assert min(abs(a - 0.5) for a in areas.values()) > 1e-3  # no cell sits on the half-way tie
    half = {cell for cell, a in areas.items() if a >= 0.5}
    token = {(c, r) for c, r in cells if 6 <= c < 14 and 6 <= r < 14}
    assert (len(centre), len(near), len(half), len(token)) == (52, 60, 52, 64)
    assert _cells(tpl, spec, "center") == centre
    assert _cells(tpl, spec, "any") == near
    assert _cells(tpl, spec, "half") == half
    assert _cells(tpl, spec, "token") == token
    assert math.isclose(sum(areas.values()), math.pi * 16, rel_tol=1e-12)  # the closed form adds up


def test_feet_per_cell_scales_distances() -> None:
    spec = _square(30, 30, feet_per_cell=10.0)
    tpl = Template(id="f", shape="sphere", distance_ft=40, origin=(10.0, 10.0))
    assert (len(_cells(tpl, spec, "center")), len(_cells(tpl, spec, "any"))) == (52, 60)


def test_a_45_degree_cone_counts_centres_on_its_edges() -> None:
    """A 5e cone aimed at 45 degrees from an intersection has edges of slope 1/3 and 3, which run exactly through
    cell centres (1.5, 0.5) and (0.5, 1.5) from the origin: boundaries count in."""
    spec = _square(30, 30)
    tpl = Template(id="c", shape="cone", distance_ft=15, origin=(10.0, 10.0), direction=45)

    # Doubled coordinates from the origin X = 2c + 1 - 20: along = (X + Y) / (2 sqrt 2) <= 3, and the half width
    # along / 2 bounds |X - Y| / (2 sqrt 2): 2 |X - Y| <= X + Y.
    def rel(c: int, r: int) -> tuple[int, int]:
        return 2 * c + 1 - 20, 2 * r + 1 - 20

    expected, ties = set(), set()
    for c in range(30):
        for r in range(30):
            x, y = rel(c, r)
            if x + y > 0 and (x + y) ** 2 <= 72 and 2 * abs(x - y) <= x + y:
                expected.add((c, r))
                if 2 * abs(x - y) == x + y:
                    ties.add((c, r))
    assert ties == {(11, 10), (10, 11)}
    assert _cells(tpl, spec, "center") == expected == {(10, 10), (11, 10), (10, 11), (11, 11), (12, 11), (11, 12)}
    oracle = _square_oracle(_membership(tpl, spec), spec, tpl)
    for rule in ("any", "half"):
        oracle.check(rule, _cells(tpl, spec, rule))


def test_a_cone_along_a_grid_line_skips_the_first_column() -> None:
    """A 15-ft 5e cone east from an intersection: column 1's centres are 0.5 off the axis where the cone is 0.25
    wide each side, so centre and half skip it; any takes its two cells; the third column reaches four rows."""
    spec = _square(30, 30)
    tpl = Template(id="c", shape="cone", distance_ft=15, origin=(10.0, 10.0), direction=0)
    assert _cells(tpl, spec, "center") == {(11, 9), (11, 10), (12, 9), (12, 10)}
    # Column 10: area 0.25 in each of rows 9, 10. Column 11: 0.75 each (rows 8 and 11 touched at a corner only).
    # Column 12: rows 9, 10 whole, rows 8, 11 a quarter.
    assert _cells(tpl, spec, "half") == {(11, 9), (11, 10), (12, 9), (12, 10)}
    assert _cells(tpl, spec, "any") == {(10, 9), (10, 10), (11, 9), (11, 10), (12, 8), (12, 9), (12, 10), (12, 11)}


LINES_ON_GRID_LINES = {
    0: {(c, r) for c in range(15, 21) for r in (14, 15)},
    90: {(c, r) for c in (14, 15) for r in range(15, 21)},
    180: {(c, r) for c in range(9, 15) for r in (14, 15)},
    270: {(c, r) for c in (14, 15) for r in range(9, 15)},
}


@pytest.mark.parametrize("direction", list(LINES_ON_GRID_LINES))
def test_a_line_along_a_grid_line_takes_both_half_covered_rows(direction: int) -> None:
    """A 30 x 5 ft line whose axis is a grid line covers half of each cell on either side: centres lie on its long
    edges and areas are exactly one half, so every rule takes both rows (ties count in); the cells beyond its far
    end and beside it are only touched along an edge."""
    spec = _square(30, 30)
    tpl = Template(id="l", shape="line", distance_ft=30, origin=(15.0, 15.0), direction=direction)
    for rule in ("center", "half", "any", "token"):
        assert _cells(tpl, spec, rule) == LINES_ON_GRID_LINES[direction], rule


def test_a_line_through_cell_centres_leaves_the_touched_rows_out() -> None:
    spec = _square(30, 30)
    tpl = Template(id="l", shape="line", distance_ft=30, origin=(5.0, 10.5), direction=0)
    row = {(c, 10) for c in range(5, 11)}
    for rule in ("center", "half", "any", "token"):
        assert _cells(tpl, spec, rule) == row, rule


def test_grid_aligned_cubes_cover_exactly_their_cells() -> None:
    spec = _square(30, 30)
    block = {(c, r) for c in range(4, 7) for r in range(6, 9)}
    corner = Template(id="q", shape="cube", distance_ft=15, origin=(4.0, 6.0), direction=45)
    face = Template(id="q", shape="cube", distance_ft=15, origin=(4.0, 7.5), anchor="face", direction=0)
    south_west = Template(id="q", shape="cube", distance_ft=15, origin=(7.0, 6.0), direction=135)
    for rule in ("center", "half", "any", "token"):
        assert _cells(corner, spec, rule) == block, rule
        assert _cells(face, spec, rule) == block, rule
        assert _cells(south_west, spec, rule) == block, rule


def test_a_quarter_turn_round_cone_is_a_quarter_fireball() -> None:
    """A 90-degree round cone aimed at 45 degrees from an intersection has its straight edges on grid lines: the
    cells beyond them are touched along an edge only, so any leaves them out."""
    spec = _square(30, 30)
    tpl = Template(id="c", shape="cone", distance_ft=20, origin=(10.0, 10.0), direction=45, angle=90, cone_end="round")
    fireball = Template(id="f", shape="sphere", distance_ft=20, origin=(10.0, 10.0))
    for rule in ("center", "any", "half"):
        quarter = {(c, r) for c, r in _cells(fireball, spec, rule) if c >= 10 and r >= 10}
        assert _cells(tpl, spec, rule) == quarter, rule
    assert len(_cells(tpl, spec, "any")) == 15


def test_a_cone_from_a_tokens_edge() -> None:
    """A 15-ft 5e cone from a Medium token at (5, 5) facing east starts at the middle of its east face (6, 5.5)."""
    spec = _square(20, 20, tokens=(Token(id="t", cell=(5, 5)),))
    tpl = Template(id="c", shape="cone", distance_ft=15, from_token="t", direction=0)
    assert _cells(tpl, spec, "center") == {(6, 5), (7, 5), (8, 4), (8, 5), (8, 6)}
    # (6, 5) holds exactly half (the cone between x = 6 and 7 is x - 6 tall: area 1/2): a tie, counted in.
    assert _cells(tpl, spec, "half") == {(6, 5), (7, 5), (8, 4), (8, 5), (8, 6)}
    assert _cells(tpl, spec, "any") == {(6, 5), (7, 4), (7, 5), (7, 6), (8, 4), (8, 5), (8, 6)}
    # Token method: the exit point snaps to the intersection (6, 6) (half-way goes south), rows 2, 2, 4 wide.
    assert _cells(tpl, spec, "token") == {(6, 5), (6, 6), (7, 5), (7, 6), (8, 4), (8, 5), (8, 6), (8, 7)}
    geo = GridGeometry(spec.grid)
    shape = template_shape(tpl, spec, geo)
    assert shape.contains((6.0, 5.5)) and not shape.contains((5.9, 5.5))
    # A cone wide enough to bend back over the token covers the token's own cell, and keeps it.
    wide = replace(tpl, direction=30, angle=170)
    assert (5, 5) in _cells(wide, spec, "any")


def test_a_diagonal_cone_from_a_large_tokens_corner() -> None:
    spec = _square(20, 20, tokens=(Token(id="t", cell=(4, 4), size="large"),))
    tpl = Template(id="c", shape="cone", distance_ft=15, from_token="t", direction=45)
    at_corner = Template(id="c", shape="cone", distance_ft=15, origin=(6.0, 6.0), direction=45)
    for rule in ("center", "any", "half"):
        assert _cells(tpl, spec, rule) == _cells(at_corner, spec, rule), rule
    assert not _cells(tpl, spec, "any") & {(4, 4), (5, 4), (4, 5), (5, 5)}
    assert _cells(tpl, spec, "token") == {(6, 6), (7, 6), (6, 7), (8, 6), (7, 7), (6, 8)}


def test_emanation_leaves_the_token_out_and_from_token_spheres_keep_it() -> None:
    spec = _square(20, 20, tokens=(Token(id="t", cell=(5, 5)),))
    ring = {(c, r) for c in range(4, 7) for r in range(4, 7)} - {(5, 5)}
    five = Template(id="e", shape="emanation", distance_ft=5, from_token="t")
    for rule in ("center", "any", "half", "token"):
        assert _cells(five, spec, rule) == ring, rule
    ten = replace(five, distance_ft=10)
    square5 = {(c, r) for c in range(3, 8) for r in range(3, 8)}
    corners = {(3, 3), (7, 3), (3, 7), (7, 7)}
    # Centre: the corner cells' centres are sqrt(4.5) > 2 from the footprint's corner. Half: a corner cell holds
    # 0.315 of the rounded corner. Any and token: the whole 5 x 5 block.
    expected = {"center": square5 - corners, "half": square5 - corners, "any": square5, "token": square5}
    for rule, cells in expected.items():
        assert _cells(ten, spec, rule) == cells - {(5, 5)}, rule
        sphere = Template(id="s", shape="sphere", distance_ft=10, from_token="t")
        assert _cells(sphere, spec, rule) == cells, rule


def test_emanation_from_a_large_token() -> None:
    spec = _square(20, 20, tokens=(Token(id="t", cell=(8, 8), size="huge"),))
    tpl = Template(id="e", shape="emanation", distance_ft=5, from_token="t")
    ring = {(c, r) for c in range(7, 12) for r in range(7, 12)} - {(c, r) for c in range(8, 11) for r in range(8, 11)}
    for rule in ("center", "any", "half", "token"):
        assert _cells(tpl, spec, rule) == ring, rule


# -- the token method -------------------------------------------------------------------------------------------


def _rotate(cell: tuple[int, int], quarter_turns: int) -> tuple[int, int]:
    """A cell offset from an intersection, turned 90 degrees clockwise on screen about that intersection."""
    a, b = cell
    for _ in range(quarter_turns % 4):
        a, b = -b - 1, a
    return a, b


def _token_cone_expected(octant: int, n: int) -> set[tuple[int, int]]:
    """Xanathar's rows built facing east (orthogonal) or south-east (diagonal), then turned into place."""
    if octant % 2 == 0:
        base = {(k - 1, j) for k in range(1, n + 1) for j in range(-((k + 1) // 2), (k + 1) // 2)}
    else:
        base = {(i, j) for i in range(n) for j in range(n) if i + j <= n - 1}
    return {_rotate(cell, octant // 2) for cell in base}


@pytest.mark.parametrize("octant", range(8))
def test_token_cones_in_every_direction(octant: int) -> None:
    spec = _square(40, 40)
    for n in range(1, 7):
        tpl = Template(id="c", shape="cone", distance_ft=5.0 * n, origin=(20.0, 20.0), direction=45.0 * octant)
        expected = {(20 + a, 20 + b) for a, b in _token_cone_expected(octant, n)}
        assert len(expected) == (n * (n + 1) // 2 if octant % 2 else sum(2 * ((k + 1) // 2) for k in range(1, n + 1)))
        assert _cells(tpl, spec, "token") == expected
        # Direction snaps to the nearest 45 degrees (22.5 rounds up), the origin to the nearest intersection.
        nudged = replace(tpl, direction=45.0 * octant + 20.0, origin=(20.4, 19.6))
        assert _cells(nudged, spec, "token") == expected
    assert _cells(replace(tpl, direction=22.5), spec, "token") == {
        (20 + a, 20 + b) for a, b in _token_cone_expected(1, 6)
    }


def test_token_cone_shapes_of_the_documented_reading() -> None:
    spec = _square(40, 40)
    east = Template(id="c", shape="cone", distance_ft=15, origin=(10.0, 10.0), direction=0, rule="token")
    assert _cells(east, spec) == {(10, 9), (10, 10), (11, 9), (11, 10), (12, 8), (12, 9), (12, 10), (12, 11)}
    south_east = replace(east, direction=45)
    assert _cells(south_east, spec) == {(10, 10), (11, 10), (10, 11), (12, 10), (11, 11), (10, 12)}
    # Round cones and other angles make no difference to the token method.
    assert _cells(replace(east, cone_end="round", angle=90), spec) == _cells(east, spec)


def test_token_discs_are_squares_with_the_half_test() -> None:
    spec = _square(30, 30)
    sphere = Template(id="s", shape="sphere", distance_ft=12.5, origin=(10.5, 10.5), rule="token")
    assert _cells(sphere, spec) == {(c, r) for c in range(8, 13) for r in range(8, 13)}
    # A 5-ft radius from a face midpoint: the square [9.5, 11.5] x [9, 11] holds half of columns 9 and 11 (ties in).
    tie = replace(sphere, distance_ft=5, origin=(10.5, 10.0))
    assert _cells(tie, spec) == {(c, r) for c in (9, 10, 11) for r in (9, 10)}
    cylinder = replace(sphere, shape="cylinder", origin=(0.0, 0.0), distance_ft=10)
    assert _cells(cylinder, spec) == {(c, r) for c in (0, 1) for r in (0, 1)}


def test_token_lines_and_cubes_use_the_half_test() -> None:
    spec = _square(30, 30)
    rng = np.random.default_rng(5)
    for _ in range(6):
        tpl = _random_template(rng, {"shape": str(rng.choice(["line", "cube"]))}, 30, 30)
        tpl = replace(tpl, anchor=str(rng.choice(["corner", "face"])))
        oracle = _square_oracle(_membership(tpl, spec), spec, tpl)
        got = _cells(tpl, spec, "token")
        assert oracle.covered["half"] <= got and not got & oracle.clear["half"]


# -- hex hand cases -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("orientation", "offset"), HEX_GRIDS)
def test_hex_sphere_from_a_hex_centre(orientation: str, offset: str) -> None:
    grid = Grid(type="hex", cols=12, rows=12, orientation=orientation, offset=offset)
    geo = GridGeometry(grid)
    spec = OverlaySpec(grid=grid)
    centre = geo.cell_center((6, 6))
    five = Template(id="s", shape="sphere", distance_ft=5, origin=centre)
    # The six neighbours' centres are exactly one unit away: on the circle, so in.
    ring1 = {cell for cell, _ in geo.neighbours((6, 6))} | {(6, 6)}
    assert _cells(five, spec, "center") == ring1
    assert _cells(five, spec, "any") == ring1
    assert _cells(five, spec, "half") == {(6, 6)}  # a unit disc covers about 0.36 of each neighbour
    ten = replace(five, distance_ft=10)
    ring2 = {GridGeometry(grid).from_axial(qr) for qr in _axial_range(geo.axial((6, 6)), 2)}
    assert _cells(ten, spec, "center") == ring2  # 19 hexes; the six straight-out ones sit exactly on the circle
    assert len(ring2) == 19


def _axial_range(centre: tuple[int, int], n: int) -> list[tuple[int, int]]:
    q0, r0 = centre
    return [
        (q0 + dq, r0 + dr)
        for dq in range(-n, n + 1)
        for dr in range(-n, n + 1)
        if max(abs(dq), abs(dr), abs(dq + dr)) <= n
    ]


def test_hex_emanation_and_cone_from_a_hex_token() -> None:
    grid = Grid(type="hex", cols=14, rows=14, orientation="pointy", offset="odd-r")
    geo = GridGeometry(grid)
    spec = OverlaySpec(grid=grid, tokens=(Token(id="t", cell=(6, 6)),))
    ring = {cell for cell, _ in geo.neighbours((6, 6))}
    emanation = Template(id="e", shape="emanation", distance_ft=5, from_token="t")
    assert _cells(emanation, spec, "center") == ring
    # A pointy hex facing east: the ray leaves through the middle of its east side, half a unit out.
    cx, cy = geo.cell_center((6, 6))
    cone = Template(id="c", shape="cone", distance_ft=15, from_token="t", direction=0)
    at_side = replace(cone, from_token=None, origin=(cx + 0.5, cy))
    # Towards a corner (30 degrees on a pointy hex) it leaves at the corner, 1/sqrt(3) out.
    corner = replace(cone, direction=30)
    at_corner = replace(
        corner, from_token=None, origin=(cx + math.cos(math.pi / 6) / math.sqrt(3), cy + 0.5 / math.sqrt(3))
    )
    for rule in ("center", "any", "half"):
        assert _cells(cone, spec, rule) == _cells(at_side, spec, rule), rule
        assert _cells(corner, spec, rule) == _cells(at_corner, spec, rule), rule
    # The cone starts on the hex's side and spreads away from it, touching it along no area; a 170-degree cone
    # bends back over the token's own hex, which then counts (only emanations leave the token out).
    assert (6, 6) not in _cells(cone, spec, "any")
    wide = replace(cone, direction=10, angle=170)
    assert (6, 6) in _cells(wide, spec, "any")
    assert (6, 6) not in _cells(replace(wide, shape="emanation", distance_ft=15), spec, "any")


# -- edges of the map, distance 0, the answer's shape -----------------------------------------------------------


def test_cells_off_the_map_are_dropped() -> None:
    spec = _square(10, 8)
    tpl = Template(id="s", shape="sphere", distance_ft=10, origin=(0.0, 8.0))
    expected = {(c, r) for c in range(10) for r in range(8) if (2 * c + 1) ** 2 + (2 * r + 1 - 16) ** 2 <= 16}
    assert _cells(tpl, spec, "center") == expected
    assert expected == {(0, 7), (1, 7), (0, 6)}
    big = Template(id="s", shape="sphere", distance_ft=1000, origin=(5.0, 4.0))
    everything = {(c, r) for c in range(10) for r in range(8)}
    for rule in ("center", "any", "half", "token"):
        assert _cells(big, spec, rule) == everything


def test_distance_zero() -> None:
    spec = _square(20, 20, tokens=(Token(id="t", cell=(3, 3), size="large"),))
    point = Template(id="s", shape="sphere", distance_ft=0, origin=(10.5, 10.5))
    assert _cells(point, spec, "center") == {(10, 10)}  # the point lies on the centre: boundaries count in
    assert _cells(point, spec, "any") == _cells(point, spec, "half") == set()
    assert _cells(replace(point, origin=(10.0, 10.0)), spec, "center") == set()
    for shape in ("cone", "line", "cube"):
        zero = Template(id="z", shape=shape, distance_ft=0, origin=(10.5, 10.5))
        assert _cells(zero, spec, "any") == _cells(zero, spec, "half") == set()
    own = {(3, 3), (4, 3), (3, 4), (4, 4)}
    sphere = Template(id="s", shape="sphere", distance_ft=0, from_token="t")
    emanation = replace(sphere, shape="emanation")
    for rule in ("center", "any", "half", "token"):
        assert _cells(sphere, spec, rule) == own, rule
        assert _cells(emanation, spec, rule) == set(), rule


def test_the_answer_is_sorted_and_names_its_rule() -> None:
    spec = replace(_square(30, 30), default_rule="any")
    geo = GridGeometry(spec.grid)
    tpl = Template(id="burst", shape="sphere", distance_ft=20, origin=(10.0, 10.0))
    got = covered_cells(tpl, spec, geo, "templates[0]")
    assert got.id == "burst" and got.rule == "any" and len(got.cells) == 60
    assert list(got.cells) == sorted(got.cells, key=lambda c: (c[1], c[0]))
    assert covered_cells(replace(tpl, rule="center"), spec, geo, "templates[0]").rule == "center"
    for tpl in (
        Template(id="t", shape="cone", distance_ft=30, origin=(10.0, 10.0), direction=200, rule="token"),
        Template(id="h", shape="cone", distance_ft=30, origin=(10.0, 10.0), direction=200),
    ):
        cells = covered_cells(tpl, spec, geo, "templates[0]").cells
        assert list(cells) == sorted(set(cells), key=lambda c: (c[1], c[0]))


# -- the shape itself -----------------------------------------------------------------------------------------


def _shape(tpl: Template, spec: OverlaySpec | None = None) -> Shape:
    spec = spec or _square(30, 30, tokens=(Token(id="t", cell=(10, 10)),))
    return template_shape(tpl, spec, GridGeometry(spec.grid))


def test_exact_areas_by_closed_forms() -> None:
    disc = _shape(Template(id="s", shape="sphere", distance_ft=10, origin=(5.0, 5.0)))
    assert math.isclose(disc.area_in([(0, 0), (10, 0), (10, 10), (0, 10)]), 4 * math.pi, rel_tol=1e-12)
    assert math.isclose(disc.area_in([(5, 5), (9, 5), (9, 9), (5, 9)]), math.pi, rel_tol=1e-12)
    assert math.isclose(disc.area_in([(5, 0), (9, 0), (9, 10), (5, 10)]), 2 * math.pi, rel_tol=1e-12)
    # A cell wholly inside, one in the corner of the disc, listed either way round.
    assert math.isclose(disc.area_in([(5, 5), (6, 5), (6, 6), (5, 6)]), 1.0, rel_tol=1e-12)
    expected = _quadrant_cell_area(2.0, 1.0, 2.0, 1.0, 2.0)
    assert math.isclose(disc.area_in([(6, 6), (6, 7), (7, 7), (7, 6)]), expected, rel_tol=1e-12)
    sector = _shape(
        Template(id="c", shape="cone", cone_end="round", angle=90, distance_ft=10, origin=(5.0, 5.0), direction=45)
    )
    assert math.isclose(sector.area_in([(0, 0), (10, 0), (10, 10), (0, 10)]), math.pi, rel_tol=1e-12)
    assert sector.area_in([(0, 0), (5, 0), (5, 10), (0, 10)]) < 1e-12
    cone = _shape(Template(id="c", shape="cone", distance_ft=30, origin=(5.0, 5.0), direction=73))
    assert math.isclose(cone.area_in([(-20, -20), (30, -20), (30, 30), (-20, 30)]), 6 * 3, rel_tol=1e-12)
    grown = _shape(Template(id="e", shape="emanation", distance_ft=10, from_token="t"))
    assert math.isclose(grown.area_in([(0, 0), (30, 0), (30, 30), (0, 30)]), 1 + 4 * 2 + math.pi * 4, rel_tol=1e-12)
    # A hexagon cutting through a grown corner: against sampling.
    hexagon = [
        (11 + 2 * math.cos(math.radians(60 * k + 7)), 11 + 2 * math.sin(math.radians(60 * k + 7))) for k in range(6)
    ]
    xs, ys = np.meshgrid(np.linspace(8, 14, 1201), np.linspace(8, 14, 1201))
    poly = np.array(hexagon)
    in_hex = np.ones(xs.shape, dtype=bool)
    for k in range(6):
        p, q = poly[k], poly[(k + 1) % 6]
        in_hex &= (q[0] - p[0]) * (ys - p[1]) - (q[1] - p[1]) * (xs - p[0]) >= 0
    in_shape = _box_grown(10, 10, 11, 11, 2)(xs, ys, 0.0)
    sampled = (in_hex & in_shape).sum() * (6 / 1200) ** 2
    assert abs(grown.area_in(hexagon) - sampled) < 0.02


def test_contains_counts_the_boundary_in() -> None:
    disc = _shape(Template(id="s", shape="sphere", distance_ft=10, origin=(5.0, 5.0)))
    assert disc.contains((7.0, 5.0)) and disc.contains((7.0 + 5e-10, 5.0))
    assert not disc.contains((7.0 + 1e-6, 5.0))
    line = _shape(Template(id="l", shape="line", distance_ft=30, origin=(5.0, 10.0), direction=90))
    assert line.contains((4.5, 12.0)) and line.contains((5.5, 16.0)) and not line.contains((5.5, 16.000001))


@pytest.mark.parametrize(
    "tpl",
    [
        Template(id="s", shape="sphere", distance_ft=20, origin=(15.0, 15.0)),
        Template(id="c", shape="cone", cone_end="round", distance_ft=30, origin=(15.0, 15.0), direction=300, angle=120),
        Template(id="e", shape="emanation", distance_ft=15, from_token="t"),
    ],
)
def test_outline_flattens_arcs_finely(tpl: Template) -> None:
    shape = _shape(tpl)
    pts = np.array(shape.outline())
    x, y = pts[:, 0], pts[:, 1]
    assert 0.5 * (x * np.roll(y, -1) - np.roll(x, -1) * y).sum() > 0  # clockwise on screen (y down)
    # Every vertex is on the boundary: in the shape, and not inside it by more than the tolerance.
    assert all(shape.contains(tuple(p)) for p in pts)
    oracle = _membership(tpl, _square(30, 30, tokens=(Token(id="t", cell=(10, 10)),)))
    assert not oracle(x, y, -1e-6).any()
    # Arc vertices: consecutive ones at most 0.5 degrees apart as seen from the arc's centre.
    d = tpl.distance_ft / 5
    step = np.hypot(np.diff(x), np.diff(y))
    arc_steps = step[step < d * 0.1]
    assert arc_steps.max() <= 2 * d * math.sin(math.radians(ARC_STEP_DEG) / 2) + 1e-9
    assert len(arc_steps) > 100


# -- invalid input -----------------------------------------------------------------------------------------------

BAD = [
    ({"shape": "blob"}, "shape"),
    ({"rule": "most"}, "rule"),
    ({"distance_ft": -5.0}, "distance_ft"),
    ({"distance_ft": math.nan}, "distance_ft"),
    ({"distance_ft": math.inf}, "distance_ft"),
    ({"width_ft": 0.0}, "width_ft"),
    ({"angle": 0.0}, "angle"),
    ({"angle": 180.0}, "angle"),
    ({"direction": math.inf}, "direction"),
    ({"anchor": "edge"}, "anchor"),
    ({"cone_end": "pointy"}, "cone_end"),
    ({"origin": None}, "origin"),
    ({"origin": (-1.0, 3.0)}, "origin"),
    ({"origin": (3.0, 30.5)}, "origin"),
    ({"origin": (math.nan, 3.0)}, "origin"),
    ({"from_token": "ghost"}, "from_token"),
    ({"shape": "emanation"}, "from_token"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_invalid_templates_name_the_field(change: dict, field: str) -> None:
    spec = _square(30, 30)
    geo = GridGeometry(spec.grid)
    tpl = replace(Template(id="x", shape="cone", distance_ft=15, origin=(5.0, 5.0)), **change)
    with pytest.raises(InputError) as err:
        covered_cells(tpl, spec, geo, field_path("templates", 3))
    assert err.value.param == f"templates[3].{field}"
    assert err.value.allowed
    with pytest.raises(InputError) as err:
        template_shape(tpl, spec, geo, "templates[3]")
    assert err.value.param == f"templates[3].{field}"


def test_token_rule_on_a_hex_grid_and_a_bad_default_rule() -> None:
    grid = Grid(type="hex", cols=8, rows=8)
    spec = OverlaySpec(grid=grid)
    tpl = Template(id="x", shape="sphere", distance_ft=15, origin=(3.0, 3.0), rule="token")
    with pytest.raises(InputError) as err:
        covered_cells(tpl, spec, GridGeometry(grid), "templates[1]")
    assert err.value.param == "templates[1].rule"
    with pytest.raises(InputError) as err:
        covered_cells(replace(tpl, rule=None), replace(spec, default_rule="token"), GridGeometry(grid), "templates[1]")
    assert err.value.param == "templates[1].rule"
    square = _square(10, 10)
    with pytest.raises(InputError) as err:
        covered_cells(replace(tpl, rule=None), replace(square, default_rule="most"), GridGeometry(square.grid), "t")
    assert err.value.param == "default_rule"


def test_a_from_token_off_the_map_names_the_token() -> None:
    spec = _square(10, 10, tokens=(Token(id="a", cell=(1, 1)), Token(id="t", cell=(9, 9), size="large")))
    tpl = Template(id="x", shape="emanation", distance_ft=5, from_token="t")
    with pytest.raises(InputError) as err:
        covered_cells(tpl, spec, GridGeometry(spec.grid), "templates[0]")
    assert err.value.param == "tokens[1].cell"
