"""Area-of-effect templates: the exact region each 5e shape covers and the cells a cell rule counts in
(TTRPG_RULES 2.2-2.4).

**Units.** Points are ``(x, y)`` in grid units, ``(0, 0)`` the map's top-left corner, y down (:mod:`.grid`). A
template's size in cells is ``d = distance_ft / feet_per_cell`` (lines: width ``w = width_ft / feet_per_cell``);
one cell is one grid unit on both grid types (hex: the centre-to-centre distance). Directions are degrees,
0 = east (+x), 90 = south (+y), clockwise on screen; ``u`` is the unit vector along ``direction`` and ``v`` the one
90 degrees clockwise of it (on screen).

**Shapes** (:func:`template_shape`), relative to the point of origin ``O``:

- ``sphere``, ``cylinder``: the disc of radius ``d`` centred on ``O``.
- ``cone`` with ``cone_end: flat`` (the 5e cone): the triangle ``O``, ``O + d u +- d tan(angle / 2) v`` (the far
  edge is perpendicular to the axis at distance ``d``; at the default 53.13 degrees its width equals ``d``).
  ``cone_end: round`` (Foundry's): the circular sector of radius ``d`` and opening ``angle`` about ``u``.
- ``line``: the rectangle from ``O`` along ``u``, ``d`` long and ``w`` wide (``w / 2`` on each side of the axis).
- ``cube`` with ``anchor: corner``: the square of side ``d`` with a corner at ``O`` and its diagonal from ``O``
  along ``direction`` (45 is the axis-aligned square to the south-east of ``O``, Foundry's rectangle).
  ``anchor: face``: the ``d x d`` square whose face midpoint is ``O``, extending away from it along ``u``.
- ``emanation``, and ``sphere`` / ``cylinder`` with ``from_token``: the token's footprint grown by ``d``, i.e.
  every point within ``d`` of the convex hull of the footprint's cell corners (square grids: the footprint box
  grown by ``d``, a rounded rectangle; hex grids: a rounded hexagon-ish polygon, the same outline as an aura).
- ``cone``, ``line``, ``cube`` with ``from_token``: ``O`` is the point where the ray from the token's centre along
  ``direction`` leaves the footprint (its box on square grids; on hex grids the last point where the ray leaves
  one of its hexes). With ``from_token`` set, ``origin`` is ignored.

**Cell rules** (``rule``; the spec's ``default_rule`` when None). Boundaries count IN, with a tolerance of
:data:`TOLERANCE` (1e-9):

- ``center``: a cell is covered when its centre lies inside the shape or on its boundary (within 1e-9 grid units).
- ``half``: when the exact overlap area is at least half the cell's area, less 1e-9
  (``area >= 0.5 * cell_area - 1e-9``).
- ``any``: when the exact overlap area is positive, more than ``1e-9 * cell_area``: a cell the shape only touches
  along an edge or at a corner is NOT covered.
- ``token`` (square grids only; Xanathar's p. 88): discs (``sphere``/``cylinder`` from a point) become the
  axis-aligned square of side ``2 d`` centred on ``O``, ``emanation`` and ``from_token`` spheres/cylinders the
  footprint box grown by ``d`` as a rectangle (square corners), and a cell is covered when at least half of it lies
  in that square (the ``half`` test above). Cones ignore ``angle`` and ``cone_end``: the direction snaps to the
  nearest multiple of 45 degrees (``floor(direction / 45 + 0.5)``, so 22.5 goes to 45) and ``O`` to the nearest
  grid intersection ``(X, Y) = (floor(x + 0.5), floor(y + 0.5))`` (a half-way point goes east / south); with
  ``n = floor(d + 0.5)`` rows, row ``k = 1..n`` is: for diagonal cones the ``k`` cells ``k - 1`` diagonal steps
  from the intersection (south-east: the cells ``(X + i, Y + j)``, ``i, j >= 0``, ``i + j = k - 1``; the other
  diagonals mirrored: south-west ``(X - 1 - i, Y + j)``, north-west ``(X - 1 - i, Y - 1 - j)``, north-east
  ``(X + i, Y - 1 - j)``), so a cone covers ``n (n + 1) / 2`` cells; for orthogonal cones the ``k``-th column (east
  ``X + k - 1``, west ``X - k``) or row (south ``Y + k - 1``, north ``Y - k``) away from the intersection,
  ``2 ceil(k / 2)`` cells wide centred on the axis (our reading of "one extra token at either end"). A ``from_token``
  cone snaps the direction first, then takes the exit point along the snapped direction and snaps it. Lines and
  cubes use the ``half`` test on their true shape.

**Exactness.** Overlap areas are exact up to floating-point rounding (about 1e-12), never sampled. On square grids
every cell of the shape's bounding box is measured at once from the shape's boundary (segments and arcs) by Green's
theorem: with ``F(x, y)`` the area left of ``x`` and above ``y``, a cell's area is a double difference of ``F`` at
its corners, and ``F`` has a closed form on each segment and each quarter-turn of an arc. On hex grids (and in
:meth:`Shape.area_in`) the shape is split into disjoint convex pieces (a convex polygon, or a disc cut by at most
two half-planes), each cell polygon is clipped by the piece's half-planes and the disc part is measured by the
edge-triangle decomposition (for each edge ``p -> q``, the signed area of disc ∩ triangle ``(centre, p, q)``).

**The answer** (:func:`covered_cells`): the covered cells on the map (cells off the map are dropped), sorted by row,
then column. An ``emanation`` leaves out the token's own cells; every other ``from_token`` shape keeps every cell it
covers, the token's own included. The outline is always the true shape's (for ``token`` too), clockwise on screen,
arcs flattened with a vertex every :data:`ARC_STEP_DEG` (0.5) degrees or finer, the vertices on the arc.

**Distance 0.** A template with ``distance_ft`` 0 has no area, so ``any`` and ``half`` cover nothing; under
``center`` its point or segment still counts a cell whose centre lies on it (boundaries count in). A ``from_token``
sphere of distance 0 is the footprint itself; an emanation of distance 0 covers nothing.

**Errors.** :class:`~pipelines.errors.InputError` naming the field in bracket notation under the caller's prefix
(``templates[2].distance_ft``): an unknown shape, rule, anchor or cone end, a negative or non-finite distance, a
width not above 0, an angle outside (0, 180), a non-finite direction, a missing or off-map origin, an unknown
``from_token``, an emanation without a token, the ``token`` rule on a hex grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.errors import InputError
from pipelines.overlay.grid import GridGeometry
from pipelines.overlay.spec import (
    RULES,
    SHAPES,
    Cell,
    OverlaySpec,
    Point,
    Template,
    TemplateGeometry,
    Token,
    field_path,
)
from pipelines.overlay.tokens import footprint, footprint_box, token_center

__all__ = ["ARC_STEP_DEG", "TOLERANCE", "Shape", "covered_cells", "template_shape"]

TOLERANCE = 1e-9
"""Boundary tolerance: in grid units for ``center``; in area for ``half`` (absolute) and ``any`` (times the cell
area)."""
ARC_STEP_DEG = 0.5
"""The largest angle one flattened arc segment of an outline spans."""

Plane = tuple[float, float, float]
"""``(a, b, c)`` with ``(a, b)`` a unit normal: the closed half-plane ``a x + b y + c >= 0``."""
Circle = tuple[float, float, float]
"""``(cx, cy, r)``: the closed disc."""

_EXACT_UNITS = {0.0: (1.0, 0.0), 90.0: (0.0, 1.0), 180.0: (-1.0, 0.0), 270.0: (0.0, -1.0)}
_DEGENERATE_AREA = 1e-12


# -- small geometry ---------------------------------------------------------------------------------------------


def _unit(degrees: float) -> Point:
    """The unit vector along a screen direction (exact on the four axes, so axis-aligned shapes stay exact)."""
    a = degrees % 360.0
    if a in _EXACT_UNITS:
        return _EXACT_UNITS[a]
    t = math.radians(a)
    return math.cos(t), math.sin(t)


def _signed_area(poly: Sequence[Point]) -> float:
    """Shoelace area; positive for polygons listed clockwise on screen (y down)."""
    total = 0.0
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        total += x0 * y1 - x1 * y0
    return total / 2


def _clockwise(poly: Sequence[Point]) -> list[Point]:
    """The polygon listed clockwise on screen (positive shoelace area)."""
    pts = [(float(x), float(y)) for x, y in poly]
    return pts if _signed_area(pts) >= 0 else pts[::-1]


def _edge_planes(poly: Sequence[Point]) -> tuple[Plane, ...]:
    """The half-planes whose intersection is a convex polygon listed clockwise on screen."""
    planes = []
    n = len(poly)
    for i in range(n):
        (px, py), (qx, qy) = poly[i], poly[(i + 1) % n]
        ex, ey = qx - px, qy - py
        length = math.hypot(ex, ey)
        if length <= 1e-15:
            continue
        # Clockwise on screen, the inside is to the right of travel: normal (-ey, ex).
        a, b = -ey / length, ex / length
        planes.append((a, b, -(a * px + b * py)))
    return tuple(planes)


def _wedge_planes(apex: Point, start_deg: float, end_deg: float) -> tuple[Plane, Plane]:
    """The two half-planes whose intersection is the wedge from ``start_deg`` to ``end_deg`` (clockwise on screen,
    sweep under 180 degrees) at ``apex``."""
    s, e = _unit(start_deg), _unit(end_deg)
    n1 = (-s[1], s[0])  # 90 degrees clockwise of the start ray: towards the wedge
    n2 = (e[1], -e[0])  # 90 degrees anticlockwise of the end ray
    return (
        (n1[0], n1[1], -(n1[0] * apex[0] + n1[1] * apex[1])),
        (n2[0], n2[1], -(n2[0] * apex[0] + n2[1] * apex[1])),
    )


def _arc(cx: float, cy: float, r: float, start_deg: float, sweep_deg: float) -> list[Point]:
    """Points on an arc from ``start_deg`` sweeping ``sweep_deg`` clockwise on screen, both ends included, a vertex
    every :data:`ARC_STEP_DEG` or finer."""
    steps = max(1, math.ceil(sweep_deg / ARC_STEP_DEG - 1e-9))
    t = np.radians(start_deg + sweep_deg * np.arange(steps + 1) / steps)
    return list(zip((cx + r * np.cos(t)).tolist(), (cy + r * np.sin(t)).tolist(), strict=True))


def _convex_hull(points: Sequence[Point]) -> list[Point]:
    """Andrew's monotone chain, clockwise on screen, collinear and repeated points dropped."""
    pts = sorted({(round(x, 9), round(y, 9)) for x, y in points})
    if len(pts) <= 2:
        return pts

    def turn(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    chain: list[Point] = []
    for seq in (pts, pts[::-1]):
        half: list[Point] = []
        for p in seq:
            while len(half) >= 2 and turn(half[-2], half[-1], p) <= 1e-12:
                half.pop()
            half.append(p)
        chain.extend(half[:-1])
    return chain


# -- vectorised exact areas -------------------------------------------------------------------------------------


def _clamp(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.minimum(np.maximum(a, lo), hi)


def _next(a: np.ndarray) -> np.ndarray:
    return np.concatenate((a[:, 1:], a[:, :1]), axis=1)


def _clip(xs: np.ndarray, ys: np.ndarray, plane: Plane | tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Clip each polygon (rows of ``xs``, ``ys``) to a half-plane (``plane``'s parts may be per-row columns), all
    rows at once.

    Every vertex outside is moved onto the clip line (projected) and each edge that crosses the line gets its
    crossing point, so every row keeps the same number of slots. The result traces the clipped polygon plus
    back-and-forth runs along the clip line, which add no area, so the shoelace sum and the disc decomposition stay
    exact; such runs survive further clips unharmed (the map "nearest point of the half-plane" keeps every winding
    number inside it). Repeated vertices are then dropped (:func:`_compact`).
    """
    a, b, c = plane
    d = a * xs + b * ys + c
    neg = np.minimum(d, 0.0)
    fx, fy = xs - a * neg, ys - b * neg
    dn = _next(d)
    cross = (d < 0) != (dn < 0)
    t = np.divide(d, d - dn, out=np.zeros_like(d), where=cross)
    mx = np.where(cross, xs + t * (_next(xs) - xs), _next(fx))
    my = np.where(cross, ys + t * (_next(ys) - ys), _next(fy))
    n, k = xs.shape
    ox, oy = np.empty((n, 2 * k)), np.empty((n, 2 * k))
    ox[:, 0::2], ox[:, 1::2] = fx, mx
    oy[:, 0::2], oy[:, 1::2] = fy, my
    return _compact(ox, oy)


def _compact(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop each vertex equal to the next one and pad the rows with their last vertex, so that clipping by many
    half-planes grows the vertex count by two per clip instead of doubling it."""
    keep = (xs != _next(xs)) | (ys != _next(ys))
    keep[:, -1] |= ~keep.any(axis=1)
    counts = keep.sum(axis=1)
    width = int(counts.max())
    if width == xs.shape[1]:
        return xs, ys
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    last = np.take_along_axis(order, (counts - 1)[:, None], axis=1)
    order = np.where(np.arange(width)[None, :] < counts[:, None], order, last)
    return np.take_along_axis(xs, order, axis=1), np.take_along_axis(ys, order, axis=1)


def _shoelace(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return 0.5 * (xs * _next(ys) - _next(xs) * ys).sum(axis=1)


def _disc_area(xs: np.ndarray, ys: np.ndarray, circle: Circle | tuple[np.ndarray, ...]) -> np.ndarray:
    """Signed area of each polygon ∩ the disc: the sum over edges ``p -> q`` of disc ∩ triangle (centre, p, q).

    Each edge splits at its crossings with the circle into an inside part (a triangle with the centre) and outside
    parts (circular sectors between their ends' directions).
    """
    cx, cy, r = circle
    px, py = xs - cx, ys - cy
    qx, qy = _next(px), _next(py)
    dx, dy = qx - px, qy - py
    aa = dx * dx + dy * dy
    bb = px * dx + py * dy
    cc = px * px + py * py - r * r
    disc = bb * bb - aa * cc
    ok = (aa > 0) & (disc > 0)
    root = np.sqrt(np.where(ok, disc, 0.0))
    safe = np.where(aa > 0, aa, 1.0)
    t1 = np.where(ok, np.clip((-bb - root) / safe, 0.0, 1.0), 0.0)
    t2 = np.where(ok, np.clip((-bb + root) / safe, 0.0, 1.0), 0.0)
    x1, y1 = px + t1 * dx, py + t1 * dy
    x2, y2 = px + t2 * dx, py + t2 * dy
    half_r2 = 0.5 * r * r
    before = half_r2 * np.arctan2(px * y1 - py * x1, px * x1 + py * y1)
    inside = 0.5 * (x1 * y2 - y1 * x2)
    after = half_r2 * np.arctan2(x2 * qy - y2 * qx, x2 * qx + y2 * qy)
    return (before + inside + after).sum(axis=1)


def _segments_beyond(segments: Sequence[tuple[Point, Point]], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The sum over directed segments of the integral of ``max(X - x, 0) [Y <= y] dY``, for every ``x`` in ``xs``
    and ``y`` in ``ys`` (``len(xs) x len(ys)``): a trapezoid, or on a segment that crosses ``x`` the triangle beyond
    it, ``p^2 / (2 |dX/dY|)`` with ``p`` the excess at the far end."""
    arr = np.asarray(segments, dtype=float)
    p, q = arr[:, 0], arr[:, 1]
    keep = p[:, 1] != q[:, 1]  # horizontal segments add nothing
    p, q = p[keep], q[keep]
    if not len(p):
        return np.zeros((len(xs), len(ys)))
    down = (q[:, 1] > p[:, 1])[:, None]  # travelling down the screen (y growing): a plus sign
    top, bottom = np.where(down, p, q), np.where(down, q, p)
    lo, x_lo = top[:, 1:], top[:, :1]
    slope = (bottom[:, :1] - x_lo) / (bottom[:, 1:] - lo)  # dX / dY, (segments, 1)
    sign = np.where(down, 0.5, -0.5)
    inv = sign / np.where(slope == 0, np.inf, np.abs(slope))
    length = np.minimum(np.maximum(ys[None, :], lo), bottom[:, 1:]) - lo  # (segments, ny): the part above y
    f1 = (x_lo - xs[None, :])[:, :, None]  # (segments, nx, 1): X - x at the top end
    f2 = f1 + (slope * length)[:, None, :]  # (segments, nx, ny): X - x where the segment crosses y
    p1, p2 = np.maximum(f1, 0.0), np.maximum(f2, 0.0)
    both = p1 + p2
    mixed = (f1 < 0) != (f2 < 0)
    return np.where(mixed, both * both * inv[:, :, None], both * (sign * length)[:, None, :]).sum(axis=0)


def _arc_beyond(arc: _Arc, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """:func:`_segments_beyond` for an arc travelled clockwise on screen (growing angle ``t``).

    The arc is split into quarter turns, on which ``X`` and ``Y`` are monotone, so the angles with ``X >= x`` and
    those with ``Y <= y`` are one interval each; over their overlap ``[lo, hi]`` the integrand
    ``(cx - x + r cos t) r cos t dt`` integrates to ``W(hi) - W(lo)`` with
    ``W(t) = (cx - x) r sin t + r^2 (t / 2 + sin 2t / 4)``.
    """
    cx, cy, r = arc.cx, arc.cy, arc.r
    out = np.zeros((len(xs), len(ys)))
    if r <= 0 or arc.sweep <= 0:
        return out
    at_x = np.arccos(_clamp((xs - cx) / r, -1.0, 1.0))  # in [0, pi]
    at_y = np.arcsin(_clamp((ys - cy) / r, -1.0, 1.0))  # in [-pi/2, pi/2]
    cr = (r * (cx - xs))[:, None]
    r2 = r * r

    def parts(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.sin(t), r2 * (t / 2 + np.sin(2 * t) / 4)

    def scalar_parts(t: float) -> tuple[float, float]:
        return math.sin(t), r2 * (t / 2 + math.sin(2 * t) / 4)

    quarter = math.pi / 2
    a0 = math.radians(arc.start)
    a1 = a0 + math.radians(arc.sweep)
    k = math.floor(a0 / quarter)
    while k * quarter < a1:
        quadrant, shift = k % 4, 2 * math.pi * (k // 4)
        t0, t1 = max(a0, k * quarter) - shift, min(a1, (k + 1) * quarter) - shift
        k += 1
        if t1 <= t0:
            continue
        # X falls on the first two quarters and rises on the others; Y rises on the first and the last. The
        # angle where X = x (Y = y), clamped to the quarter, bounds the interval where X >= x (Y <= y).
        tx = _clamp(at_x if quadrant < 2 else 2 * math.pi - at_x, t0, t1)[:, None]
        y_angle = at_y if quadrant == 0 else math.pi - at_y if quadrant < 3 else 2 * math.pi + at_y
        ty = _clamp(y_angle, t0, t1)[None, :]
        (sx, wx), (sy, wy) = parts(tx), parts(ty)
        if quadrant == 0:  # [t0, min(tx, ty)]
            first = tx < ty
            s0, w0 = scalar_parts(t0)
            out += cr * (np.where(first, sx, sy) - s0) + (np.where(first, wx, wy) - w0)
        elif quadrant == 1:  # [ty, tx]
            out += np.where(tx > ty, cr * (sx - sy) + (wx - wy), 0.0)
        elif quadrant == 2:  # [max(tx, ty), t1]
            first = tx > ty
            s1, w1 = scalar_parts(t1)
            out += cr * (s1 - np.where(first, sx, sy)) + (w1 - np.where(first, wx, wy))
        else:  # [tx, ty]
            out += np.where(ty > tx, cr * (sy - sx) + (wy - wx), 0.0)
    return out


def _grid_areas(boundary: Sequence[tuple[Point, Point] | _Arc], cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact area of a region (its boundary clockwise on screen: segments and arcs) in every unit cell
    ``[c, c+1] x [r, r+1]`` of the given columns and rows.

    With ``F(x, y)`` the region's area left of ``x`` and above ``y``, a cell's area is
    ``F(x1, y1) - F(x0, y1) - F(x1, y0) + F(x0, y0)``. By Green's theorem ``F(x, y)`` is the boundary integral of
    ``min(X, x) [Y <= y] dY``, that is of ``X [Y <= y] dY`` (which does not depend on ``x``, so it drops out of the
    differences) less ``max(X - x, 0) [Y <= y] dY``, which has a closed form on segments and arcs; so ``F`` on every
    grid intersection at once takes a fixed number of array operations.

    Args:
        boundary: Directed segments ``(p, q)`` and arcs, in order around the region.
        cols: The cells' columns (consecutive integers).
        rows: The cells' rows (consecutive integers).

    Returns:
        ``len(rows) x len(cols)`` areas.
    """
    xs = np.arange(cols[0], cols[-1] + 2, dtype=float)
    ys = np.arange(rows[0], rows[-1] + 2, dtype=float)
    segments = [part for part in boundary if not isinstance(part, _Arc)]
    beyond = _segments_beyond(segments, xs, ys) if segments else np.zeros((len(xs), len(ys)))
    for part in boundary:
        if isinstance(part, _Arc):
            beyond += _arc_beyond(part, xs, ys)
    cells = beyond[:-1, 1:] - beyond[1:, 1:] + beyond[1:, :-1] - beyond[:-1, :-1]
    return cells.T


# -- the shape --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """A convex piece: the intersection of half-planes, and of a disc when ``circle`` is set."""

    planes: tuple[Plane, ...]
    circle: Circle | None = None


@dataclass(frozen=True)
class _Arc:
    """A circular arc from ``start`` degrees sweeping ``sweep`` degrees clockwise on screen."""

    cx: float
    cy: float
    r: float
    start: float
    sweep: float

    def end(self) -> Point:
        ux, uy = _unit(self.start + self.sweep)
        return self.cx + self.r * ux, self.cy + self.r * uy


class Shape:
    """A template's exact region in grid units.

    It is held twice: as disjoint convex pieces (each the intersection of half-planes, and of a disc for the round
    parts), which answer :meth:`contains` and :meth:`area_in`; and as its boundary (directed segments and arcs,
    clockwise on screen), which gives :meth:`outline` and the square-grid cell areas. A zero-area template (a
    distance of 0) is ``degenerate``: a point or a segment with no area.

    Attributes:
        kind: ``polygon``, ``disc``, ``sector``, ``grown`` (a convex polygon grown by a radius) or ``degenerate``.
        bbox: ``(x0, y0, x1, y1)``, the region's bounding box in grid units.
        pieces: The convex pieces.
        boundary: The directed segments ``(p, q)`` and arcs, in order.
    """

    def __init__(
        self,
        kind: str,
        pieces: tuple[_Piece, ...],
        boundary: tuple[tuple[Point, Point] | _Arc, ...],
        bbox: tuple[float, float, float, float],
    ) -> None:
        self.kind = kind
        self.pieces = pieces
        self.boundary = boundary
        self.bbox = bbox
        self._outline: tuple[Point, ...] | None = None
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # construction

    @classmethod
    def from_polygon(cls, vertices: Sequence[Point]) -> Shape:
        """A convex polygon (either way round); zero area makes a ``degenerate`` shape."""
        pts = _clockwise(vertices)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        bbox = (min(xs), min(ys), max(xs), max(ys))
        edges = tuple((pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts)))
        if abs(_signed_area(pts)) <= _DEGENERATE_AREA:
            return cls("degenerate", (), edges, bbox)
        return cls("polygon", (_Piece(_edge_planes(pts)),), edges, bbox)

    @classmethod
    def disc(cls, center: Point, radius: float) -> Shape:
        """The closed disc."""
        cx, cy = center
        bbox = (cx - radius, cy - radius, cx + radius, cy + radius)
        return cls("disc", (_Piece((), (cx, cy, radius)),), (_Arc(cx, cy, radius, 0.0, 360.0),), bbox)

    @classmethod
    def sector(cls, apex: Point, radius: float, direction: float, angle: float) -> Shape:
        """The circular sector of ``radius`` about ``direction``, ``angle`` degrees wide (under 180)."""
        start = direction - angle / 2
        arc = _Arc(apex[0], apex[1], radius, start, angle)
        ux, uy = _unit(start)
        first = (apex[0] + radius * ux, apex[1] + radius * uy)
        last = arc.end()
        pts = [apex, first, last]
        step = math.ceil(start / 90.0)
        for k in range(step, step + 2):
            if k * 90.0 <= start + angle:
                ux, uy = _unit(k * 90.0)
                pts.append((apex[0] + radius * ux, apex[1] + radius * uy))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        piece = _Piece(_wedge_planes(apex, start, start + angle), (apex[0], apex[1], radius))
        return cls("sector", (piece,), ((apex, first), arc, (last, apex)), (min(xs), min(ys), max(xs), max(ys)))

    @classmethod
    def grown(cls, hull: Sequence[Point], radius: float) -> Shape:
        """Every point within ``radius`` of a convex polygon: the polygon, a rectangle on each edge and a sector at
        each corner (disjoint pieces); its boundary alternates corner arcs and pushed-out edges."""
        pts = _clockwise(hull)
        if radius <= 0:
            return cls.from_polygon(pts)
        pieces = [_Piece(_edge_planes(pts))] if len(pts) >= 3 else []
        n = len(pts)
        normals = []
        for i in range(n):
            (px, py), (qx, qy) = pts[i], pts[(i + 1) % n]
            length = math.hypot(qx - px, qy - py)
            nx, ny = (qy - py) / length, -(qx - px) / length  # outward, clockwise on screen
            normals.append(math.degrees(math.atan2(ny, nx)))
            rect = [(px, py), (qx, qy), (qx + radius * nx, qy + radius * ny), (px + radius * nx, py + radius * ny)]
            pieces.append(_Piece(_edge_planes(_clockwise(rect))))
        boundary: list[tuple[Point, Point] | _Arc] = []
        for i in range(n):
            start = normals[i - 1]
            sweep = (normals[i] - start) % 360.0
            vx, vy = pts[i]
            if sweep > 1e-12:
                pieces.append(_Piece(_wedge_planes(pts[i], start, start + sweep), (vx, vy, radius)))
            arc = _Arc(vx, vy, radius, start, sweep)
            ux, uy = _unit(normals[i])
            wx, wy = pts[(i + 1) % n]  # the next corner: this edge pushed out ends beside it
            boundary += [arc, (arc.end(), (wx + radius * ux, wy + radius * uy))]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        bbox = (min(xs) - radius, min(ys) - radius, max(xs) + radius, max(ys) + radius)
        return cls("grown", tuple(pieces), tuple(boundary), bbox)

    # queries

    def outline(self) -> tuple[Point, ...]:
        """The boundary as a polygon, clockwise on screen; arcs flattened with a vertex every :data:`ARC_STEP_DEG`
        or finer, every vertex on the arc."""
        if self._outline is None:
            pts: list[Point] = []
            for part in self.boundary:
                if isinstance(part, _Arc):
                    pts.extend(_arc(part.cx, part.cy, part.r, part.start, part.sweep)[:-1] or [(part.cx, part.cy)])
                else:
                    pts.append(part[0])
            if self.kind == "degenerate":
                pts = list(dict.fromkeys(pts))
            self._outline = tuple(pts)
        return self._outline

    def contains_many(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Whether each point lies in the region or on its boundary (within :data:`TOLERANCE` grid units)."""
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        if self.kind == "degenerate":
            return self._near_segments(xs, ys)
        out = np.zeros(xs.shape, dtype=bool)
        for piece in self.pieces:
            ok = np.ones(xs.shape, dtype=bool)
            for a, b, c in piece.planes:
                ok &= a * xs + b * ys + c >= -TOLERANCE
            if piece.circle is not None:
                cx, cy, r = piece.circle
                ok &= (xs - cx) ** 2 + (ys - cy) ** 2 <= (r + TOLERANCE) ** 2
            out |= ok
        return out

    def contains(self, point: Point) -> bool:
        """Whether ``point`` lies in the region or on its boundary (within :data:`TOLERANCE` grid units)."""
        return bool(self.contains_many(np.array([point[0]]), np.array([point[1]]))[0])

    def areas_in(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """The exact overlap area with each polygon, given as rows of vertex coordinates (``N x K`` arrays).

        Polygons may be listed either way round; they must be simple (convex cells in practice).
        """
        xs, ys = np.array(xs, dtype=float), np.array(ys, dtype=float)
        own = _shoelace(xs, ys)
        flip = own < 0
        xs[flip], ys[flip] = xs[flip, ::-1], ys[flip, ::-1]
        own = np.abs(own)
        if not self.pieces:
            return np.zeros(xs.shape[0])
        arrays = self._piece_arrays()
        # Bound the (half-planes x polygons x vertices) work arrays.
        chunk = max(1, 2_000_000 // (len(arrays[0]) * xs.shape[1]))
        parts = [
            _pieces_areas(arrays, xs[i : i + chunk], ys[i : i + chunk], own[i : i + chunk])
            for i in range(0, xs.shape[0], chunk)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def area_in(self, polygon: Sequence[Point]) -> float:
        """The exact overlap area with a polygon (convex, or at least simple), in square grid units."""
        arr = np.asarray(polygon, dtype=float)
        return float(self.areas_in(arr[None, :, 0], arr[None, :, 1])[0])

    def cell_areas(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Square grids: the exact overlap area with every unit cell of the given consecutive columns and rows
        (``len(rows) x len(cols)``), from the boundary by Green's theorem."""
        if self.kind == "degenerate":
            return np.zeros((len(rows), len(cols)))
        return _grid_areas(self.boundary, cols, rows)

    # internals

    def _near_segments(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        out = np.zeros(xs.shape, dtype=bool)
        for (px, py), (qx, qy) in self.boundary:  # a degenerate shape's boundary is segments only
            dx, dy = qx - px, qy - py
            ll = dx * dx + dy * dy
            t = np.clip(((xs - px) * dx + (ys - py) * dy) / ll, 0.0, 1.0) if ll > 0 else np.zeros(xs.shape)
            out |= (xs - px - t * dx) ** 2 + (ys - py - t * dy) ** 2 <= TOLERANCE**2
        return out

    def _piece_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The pieces as arrays: every half-plane ``(total, 3)`` (a piece without any gets ``0 x + 0 y + 1 >= 0``,
        always true), where each piece's run of them starts, the circles ``(pieces, 3)`` and which pieces have one."""
        if self._arrays is None:
            planes, starts = [], []
            for piece in self.pieces:
                starts.append(len(planes))
                planes.extend(piece.planes or [(0.0, 0.0, 1.0)])
            circles = np.array([piece.circle or (0.0, 0.0, 0.0) for piece in self.pieces], dtype=float)
            rounded = np.array([piece.circle is not None for piece in self.pieces])
            self._arrays = np.array(planes, dtype=float), np.array(starts), circles, rounded
        return self._arrays


def _pieces_areas(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], xs: np.ndarray, ys: np.ndarray, own: np.ndarray
) -> np.ndarray:
    """The pieces' total overlap with each polygon (rows of ``xs``, ``ys``, clockwise, areas ``own``).

    A polygon with every vertex inside a (convex) piece is inside it; one with every vertex outside one of its
    half-planes, or away from its disc, misses it. Only the rest are clipped, each by the half-planes that cut it
    (a polygon inside a half-plane stays inside however the others clip it), so a cell near one edge of a many-sided
    piece pays for one clip, not for all of them.
    """
    planes, starts, circles, rounded = arrays
    d = planes[:, 0, None, None] * xs + planes[:, 1, None, None] * ys + planes[:, 2, None, None]
    outside = (d < 0).any(axis=2)  # (half-planes, polygons): some vertex outside
    maybe = np.logical_and.reduceat((d > 0).any(axis=2), starts, axis=0)  # (pieces, polygons)
    whole = np.logical_and.reduceat(~outside, starts, axis=0)
    cx, cy, r = (circles[:, i, None] for i in range(3))
    gx = np.maximum(np.maximum(xs.min(axis=1) - cx, cx - xs.max(axis=1)), 0.0)
    gy = np.maximum(np.maximum(ys.min(axis=1) - cy, cy - ys.max(axis=1)), 0.0)
    round_ = rounded[:, None]
    maybe &= ~round_ | (gx * gx + gy * gy < r * r)
    whole &= ~round_ | ((xs - cx[:, :, None]) ** 2 + (ys - cy[:, :, None]) ** 2 <= (r * r)[:, :, None]).all(axis=2)
    whole &= maybe
    total = (whole * own).sum(axis=0)
    pi, ni = np.nonzero(maybe & ~whole)
    if not len(pi):
        return total
    px, py = xs[ni], ys[ni]
    # Each row's half-planes, the cutting ones first; the rest become the always-true one.
    sizes = np.diff(np.append(starts, len(planes)))[pi]
    slots = np.arange(int(sizes.max()))[None, :]
    index = np.minimum(starts[pi][:, None] + slots, len(planes) - 1)
    cut = (slots < sizes[:, None]) & outside[index, ni[:, None]]
    order = np.argsort(~cut, axis=1, kind="stable")
    row_planes = planes[np.take_along_axis(index, order, axis=1)]  # (rows, slots, 3)
    counts = cut.sum(axis=1)
    for j in range(int(counts.max())):
        active = counts > j
        plane = tuple(row_planes[active, j, i, None] for i in range(3))
        if active.all():
            px, py = _clip(px, py, plane)
        else:
            px, py = _merge(px, py, active, *_clip(px[active], py[active], plane))
    areas = np.empty(len(pi))
    disc = rounded[pi]
    flat = ~disc
    if flat.any():
        areas[flat] = _shoelace(px[flat], py[flat])
    if disc.any():
        areas[disc] = _disc_area(px[disc], py[disc], tuple(circles[pi[disc], i, None] for i in range(3)))
    return total + np.bincount(ni, weights=areas, minlength=xs.shape[0])


def _pad(a: np.ndarray, width: int) -> np.ndarray:
    """Rows padded to ``width`` columns by repeating their last vertex (a zero-length edge adds nothing)."""
    extra = width - a.shape[1]
    return a if extra <= 0 else np.concatenate((a, np.repeat(a[:, -1:], extra, axis=1)), axis=1)


def _merge(
    xs: np.ndarray, ys: np.ndarray, rows: np.ndarray, new_x: np.ndarray, new_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``xs``, ``ys`` with the selected rows replaced by the (re-clipped) polygons ``new_x``, ``new_y``."""
    width = max(xs.shape[1], new_x.shape[1])
    xs, ys = _pad(xs, width), _pad(ys, width)
    xs[rows], ys[rows] = _pad(new_x, width), _pad(new_y, width)
    return xs, ys


# -- checks -----------------------------------------------------------------------------------------------------


def _token_index(spec: OverlaySpec, token_id: str) -> int | None:
    for i, token in enumerate(spec.tokens):
        if token.id == token_id:
            return i
    return None


def _check(tpl: Template, spec: OverlaySpec, geo: GridGeometry, param: str) -> str:
    """Validate one template on its own (:func:`pipelines.overlay.spec.check` does the same inside a whole spec).

    Returns:
        The rule that applies.
    """

    def name(part: str) -> str:
        return field_path(param, part) if param else part

    if tpl.shape not in SHAPES:
        raise InputError(name("shape"), tpl.shape, "one of " + ", ".join(SHAPES))
    if tpl.rule is not None and tpl.rule not in RULES:
        raise InputError(name("rule"), tpl.rule, "one of " + ", ".join(RULES))
    rule = tpl.rule or spec.default_rule
    if rule not in RULES:
        raise InputError("default_rule", rule, "one of " + ", ".join(RULES))
    if rule == "token" and geo.is_hex:
        raise InputError(name("rule"), "token", "center, any or half on a hex grid")
    if not (math.isfinite(tpl.distance_ft) and tpl.distance_ft >= 0):
        raise InputError(name("distance_ft"), tpl.distance_ft, "a finite number of feet, at least 0")
    if not (math.isfinite(tpl.width_ft) and tpl.width_ft > 0):
        raise InputError(name("width_ft"), tpl.width_ft, "a finite number of feet, more than 0")
    if not (math.isfinite(tpl.angle) and 0 < tpl.angle < 180):
        raise InputError(name("angle"), tpl.angle, "more than 0 and less than 180 degrees")
    if not math.isfinite(tpl.direction):
        raise InputError(name("direction"), tpl.direction, "a finite number of degrees")
    if tpl.anchor not in ("corner", "face"):
        raise InputError(name("anchor"), tpl.anchor, "one of corner, face")
    if tpl.cone_end not in ("flat", "round"):
        raise InputError(name("cone_end"), tpl.cone_end, "one of flat, round")
    if tpl.from_token is not None:
        index = _token_index(spec, tpl.from_token)
        if index is None:
            raise InputError(name("from_token"), tpl.from_token, "the id of a token")
        footprint(spec.tokens[index], geo, field_path("tokens", index, "cell"))
    elif tpl.shape == "emanation":
        raise InputError(name("from_token"), None, "a token id: an emanation needs one")
    elif tpl.origin is None:
        raise InputError(name("origin"), None, "a point {x, y}, or from_token")
    else:
        x, y = tpl.origin
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= geo.width and 0 <= y <= geo.height):
            raise InputError(
                name("origin"),
                {"x": x, "y": y},
                f"a point of the map, 0..{geo.width:g} x 0..{geo.height:g} grid units",
            )
    return rule


# -- shapes -----------------------------------------------------------------------------------------------------


def _footprint_hull(token: Token, geo: GridGeometry) -> list[Point]:
    if not geo.is_hex:
        x0, y0, x1, y1 = footprint_box(token, geo)
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return _convex_hull([p for cell in footprint(token, geo) for p in geo.cell_polygon(cell)])


def _exit_point(token: Token, geo: GridGeometry, direction: float) -> Point:
    """Where the ray from the token's centre along ``direction`` last leaves the footprint (box or hexes)."""
    cx, cy = token_center(token, geo)
    ux, uy = _unit(direction)
    if geo.is_hex:
        polygons = [_clockwise(geo.cell_polygon(cell)) for cell in footprint(token, geo)]
    else:
        polygons = [_footprint_hull(token, geo)]
    best = 0.0
    for poly in polygons:
        t_lo, t_hi = 0.0, math.inf
        for a, b, c in _edge_planes(poly):
            value, rate = a * cx + b * cy + c, a * ux + b * uy
            if abs(rate) <= 1e-15:
                if value < -TOLERANCE:
                    t_lo, t_hi = 1.0, 0.0
                continue
            t = -value / rate
            if rate < 0:
                t_hi = min(t_hi, t)
            else:
                t_lo = max(t_lo, t)
        if t_lo <= t_hi + TOLERANCE and math.isfinite(t_hi):
            best = max(best, t_hi)
    return cx + best * ux, cy + best * uy


def _origin(tpl: Template, spec: OverlaySpec, geo: GridGeometry, direction: float) -> Point:
    if tpl.from_token is not None:
        return _exit_point(spec.token(tpl.from_token), geo, direction)
    if tpl.origin is None:  # _check has refused this already
        raise InputError("origin", None, "a point {x, y}, or from_token")
    return float(tpl.origin[0]), float(tpl.origin[1])


def _build(tpl: Template, spec: OverlaySpec, geo: GridGeometry) -> Shape:
    d = tpl.distance_ft / spec.grid.feet_per_cell
    if tpl.shape in ("sphere", "cylinder", "emanation"):
        if tpl.from_token is not None:
            return Shape.grown(_footprint_hull(spec.token(tpl.from_token), geo), d)
        return Shape.disc(_origin(tpl, spec, geo, tpl.direction), d)
    ox, oy = _origin(tpl, spec, geo, tpl.direction)
    ux, uy = _unit(tpl.direction)
    vx, vy = -uy, ux
    if tpl.shape == "cone":
        if tpl.cone_end == "round":
            return Shape.sector((ox, oy), d, tpl.direction, tpl.angle)
        h = d * math.tan(math.radians(tpl.angle / 2))
        fx, fy = ox + d * ux, oy + d * uy
        return Shape.from_polygon([(ox, oy), (fx - h * vx, fy - h * vy), (fx + h * vx, fy + h * vy)])
    if tpl.shape == "cube" and tpl.anchor == "corner":
        ax, ay = _unit(tpl.direction - 45)
        bx, by = _unit(tpl.direction + 45)
        return Shape.from_polygon(
            [(ox, oy), (ox + d * ax, oy + d * ay), (ox + d * (ax + bx), oy + d * (ay + by)), (ox + d * bx, oy + d * by)]
        )
    half = (tpl.width_ft / spec.grid.feet_per_cell if tpl.shape == "line" else d) / 2
    fx, fy = ox + d * ux, oy + d * uy
    return Shape.from_polygon(
        [
            (ox - half * vx, oy - half * vy),
            (fx - half * vx, fy - half * vy),
            (fx + half * vx, fy + half * vy),
            (ox + half * vx, oy + half * vy),
        ]
    )


def template_shape(tpl: Template, spec: OverlaySpec, geo: GridGeometry, param: str = "template") -> Shape:
    """The exact region a template covers, in grid units (module docstring: Shapes).

    Args:
        tpl: The template.
        spec: The spec it belongs to (its grid's ``feet_per_cell``, its tokens for ``from_token``).
        geo: The spec's grid geometry.
        param: The field prefix errors name (``templates[2]``).

    Returns:
        The shape.

    Raises:
        InputError: A field is invalid (module docstring: Errors).
    """
    _check(tpl, spec, geo, param)
    return _build(tpl, spec, geo)


# -- cells ------------------------------------------------------------------------------------------------------


def _span(lo: float, hi: float, limit: int) -> np.ndarray:
    """The consecutive cell indexes a unit-cell range ``[lo, hi]`` may touch (one spare on each side), on the map."""
    start = max(0, math.floor(lo) - 1)
    stop = min(limit, math.ceil(hi) + 1)
    return np.arange(start, stop)


def _square_cells(shape: Shape, geo: GridGeometry, rule: str) -> list[Cell]:
    grid = geo.grid
    x0, y0, x1, y1 = shape.bbox
    cols, rows = _span(x0, x1, grid.cols), _span(y0, y1, grid.rows)
    if not len(cols) or not len(rows):
        return []
    if rule == "center":
        cx, cy = np.meshgrid(cols + 0.5, rows + 0.5)
        mask = shape.contains_many(cx, cy)
    else:
        areas = shape.cell_areas(cols, rows)
        mask = areas >= 0.5 - TOLERANCE if rule == "half" else areas > TOLERANCE
    ri, ci = np.nonzero(mask)
    return list(zip((cols[ci]).tolist(), (rows[ri]).tolist(), strict=True))


def _hex_candidates(shape: Shape, geo: GridGeometry) -> tuple[list[Cell], np.ndarray]:
    """The map hexes whose centre is within a circumradius of the shape's bounding box, and their centres."""
    grid, s = geo.grid, geo.hex_size
    x0, y0, x1, y1 = shape.bbox
    ox, oy = geo.cell_center((0, 0))
    # Centres sit 1.5 s apart across rows (pointy) or columns (flat) and 1 apart along them, shoved by at most 1/2.
    if grid.orientation == "pointy":
        rows = range(
            max(0, math.floor((y0 - s - oy) / (1.5 * s)) - 1), min(grid.rows, math.ceil((y1 + s - oy) / (1.5 * s)) + 2)
        )
        cols = range(max(0, math.floor(x0 - ox) - 2), min(grid.cols, math.ceil(x1 - ox) + 3))
    else:
        cols = range(
            max(0, math.floor((x0 - s - ox) / (1.5 * s)) - 1), min(grid.cols, math.ceil((x1 + s - ox) / (1.5 * s)) + 2)
        )
        rows = range(max(0, math.floor(y0 - oy) - 2), min(grid.rows, math.ceil(y1 - oy) + 3))
    cells, centres = [], []
    for r in rows:
        for c in cols:
            px, py = geo.cell_center((c, r))
            if x0 - s - TOLERANCE <= px <= x1 + s + TOLERANCE and y0 - s - TOLERANCE <= py <= y1 + s + TOLERANCE:
                cells.append((c, r))
                centres.append((px, py))
    return cells, np.asarray(centres, dtype=float).reshape(-1, 2)


def _hex_cells(shape: Shape, geo: GridGeometry, rule: str) -> list[Cell]:
    cells, centres = _hex_candidates(shape, geo)
    if not cells:
        return []
    if rule == "center":
        mask = shape.contains_many(centres[:, 0], centres[:, 1])
    else:
        if shape.kind == "degenerate":
            return []
        corners = np.asarray(geo.cell_polygon(cells[0]), dtype=float) - centres[0]
        cell_area = abs(_signed_area([tuple(p) for p in corners]))
        xs = centres[:, :1] + corners[None, :, 0]
        ys = centres[:, 1:] + corners[None, :, 1]
        areas = shape.areas_in(xs, ys)
        mask = areas >= 0.5 * cell_area - TOLERANCE if rule == "half" else areas > TOLERANCE * cell_area
    return [cell for cell, keep in zip(cells, mask.tolist(), strict=True) if keep]


def _rect_half(box: tuple[float, float, float, float], geo: GridGeometry) -> list[Cell]:
    """The map cells at least half inside an axis-aligned rectangle."""
    x0, y0, x1, y1 = box
    cols, rows = _span(x0, x1, geo.grid.cols), _span(y0, y1, geo.grid.rows)
    wx = np.clip(np.minimum(x1, cols + 1.0) - np.maximum(x0, cols), 0.0, None)
    wy = np.clip(np.minimum(y1, rows + 1.0) - np.maximum(y0, rows), 0.0, None)
    ri, ci = np.nonzero(wy[:, None] * wx[None, :] >= 0.5 - TOLERANCE)
    return list(zip((cols[ci]).tolist(), (rows[ri]).tolist(), strict=True))


def _token_cone(origin: Point, octant: int, n: int) -> list[Cell]:
    """Xanathar's token cone (module docstring) from the intersection nearest ``origin``, ``octant`` times 45
    degrees, ``n`` rows."""
    bx, by = math.floor(origin[0] + 0.5), math.floor(origin[1] + 0.5)
    out: list[Cell] = []
    if octant % 2 == 0:
        for k in range(1, n + 1):
            across = range(-((k + 1) // 2), (k + 1) // 2)
            if octant in (0, 4):
                col = bx + k - 1 if octant == 0 else bx - k
                out.extend((col, by + j) for j in across)
            else:
                row = by + k - 1 if octant == 2 else by - k
                out.extend((bx + i, row) for i in across)
        return out
    east, south = octant in (1, 7), octant in (1, 3)
    for k in range(1, n + 1):
        for i in range(k):
            j = k - 1 - i
            out.append((bx + i if east else bx - 1 - i, by + j if south else by - 1 - j))
    return out


def _token_cells(tpl: Template, spec: OverlaySpec, geo: GridGeometry, shape: Shape) -> list[Cell]:
    d = tpl.distance_ft / spec.grid.feet_per_cell
    if tpl.shape in ("sphere", "cylinder", "emanation"):
        if tpl.from_token is not None:
            x0, y0, x1, y1 = footprint_box(spec.token(tpl.from_token), geo)
            return _rect_half((x0 - d, y0 - d, x1 + d, y1 + d), geo)
        ox, oy = _origin(tpl, spec, geo, tpl.direction)
        return _rect_half((ox - d, oy - d, ox + d, oy + d), geo)
    if tpl.shape == "cone":
        octant = math.floor(tpl.direction / 45.0 + 0.5) % 8
        origin = _origin(tpl, spec, geo, octant * 45.0)
        cone = {cell for cell in _token_cone(origin, octant, math.floor(d + 0.5)) if geo.contains(cell)}
        return sorted(cone, key=lambda cell: (cell[1], cell[0]))
    return _square_cells(shape, geo, "half")


def covered_cells(tpl: Template, spec: OverlaySpec, geo: GridGeometry, param: str) -> TemplateGeometry:
    """The cells a template covers under its rule, and its outline (module docstring).

    Args:
        tpl: The template.
        spec: The spec it belongs to (grid, tokens, ``default_rule``).
        geo: The spec's grid geometry.
        param: The field prefix errors name, e.g. ``templates[2]``.

    Returns:
        The covered cells sorted by row, then column, the outline (grid units) and the rule applied.

    Raises:
        InputError: A field is invalid (module docstring: Errors).
    """
    rule = _check(tpl, spec, geo, param)
    shape = _build(tpl, spec, geo)
    if rule == "token":
        cells = _token_cells(tpl, spec, geo, shape)
    elif geo.is_hex:
        cells = _hex_cells(shape, geo, rule)
    else:
        cells = _square_cells(shape, geo, rule)
    if tpl.shape == "emanation" and tpl.from_token is not None:
        own = set(footprint(spec.token(tpl.from_token), geo))
        cells = [cell for cell in cells if cell not in own]
    return TemplateGeometry(id=tpl.id, cells=tuple(cells), outline=shape.outline(), rule=rule)
