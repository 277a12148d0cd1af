"""Token footprints, centres, reach and auras (TTRPG_RULES 3.1), in the grid units of :mod:`.grid`.

**Square grids.** A token of size ``s`` is ``n = max(1, SIZES[s])`` cells on a side (Tiny, Small and Medium 1,
Large 2, Huge 3, Gargantuan 4); its footprint is the ``n x n`` cells from its ``cell`` (the top-left one) and its
centre the middle of that block. A Tiny token occupies its whole cell for every rule (the renderer draws it half
size in the middle of the cell).

**Hex grids.** With ``a`` the axial of the token's anchor cell: Tiny, Small and Medium are the anchor hex; Large is
3 hexes ``{a, a + (1, 0), a + (0, 1)}``; Huge is the 7 hexes within 1 of ``a + (0, 1)``; Gargantuan the 19 hexes
within 2 of ``a + (0, 2)``. The anchor is always in the footprint. The centre is the mean of the hexes' centres.
A footprint hex off the map is an :class:`~pipelines.errors.InputError` on the token's cell.

Footprints are sorted by row, then column.

**Reach** (:func:`reach_cells`): the cells, footprint excluded, whose distance from the nearest footprint cell is at
most ``reach_ft / feet_per_cell`` cells (+1e-9): on square grids under the diagonal rule's
:meth:`~.grid.GridGeometry.distance_cells`, except that ``exact`` and ``euclidean`` both use the Euclidean distance
between centres; on hex grids the hex distance. Blocked cells are left out, and when walls are given a cell
counts only if the centre-to-centre segment from a footprint cell within reach touches no wall (a touch counts).

**Auras** (:func:`aura_outline`): the convex hull of the footprint's corners grown by ``aura_ft / feet_per_cell``
grid units (a Minkowski sum with a disc): a rounded rectangle on square grids, a rounded hexagon-ish shape on hex
grids. Arcs are flattened at 0.5 degrees or finer; the polygon runs clockwise on screen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from pipelines.errors import InputError
from pipelines.overlay.grid import GridGeometry, hex_range, segments_touch
from pipelines.overlay.spec import SIZES, Cell, Point, Token

__all__ = ["aura_outline", "footprint", "footprint_box", "reach_cells", "side_cells", "token_center"]

ARC_STEP_DEG = 0.5
"""The largest angle one flattened arc segment spans."""
_TOL = 1e-9


def side_cells(size: str) -> int:
    """A square-grid token's side in cells: ``max(1, SIZES[size])``."""
    return max(1, int(SIZES[size]))


def _row_major(cells: Iterable[Cell]) -> tuple[Cell, ...]:
    return tuple(sorted(set(cells), key=lambda c: (c[1], c[0])))


def _hex_axials(token: Token, geo: GridGeometry) -> list[tuple[int, int]]:
    q, r = geo.axial(token.cell)
    if token.size == "large":
        return [(q, r), (q + 1, r), (q, r + 1)]
    if token.size == "huge":
        return hex_range((q, r + 1), 1)
    if token.size == "gargantuan":
        return hex_range((q, r + 2), 2)
    return [(q, r)]


def footprint(token: Token, geo: GridGeometry, param: str = "token") -> tuple[Cell, ...]:
    """The cells a token occupies, sorted by row, then column.

    Args:
        token: The token.
        geo: Its grid.
        param: The field an error names (callers pass ``tokens[i].cell``).

    Returns:
        The footprint cells.

    Raises:
        InputError: A footprint cell is off the map, or the size is unknown.
    """
    if token.size not in SIZES:
        raise InputError(param, token.size, "a size: " + ", ".join(SIZES))
    if geo.is_hex:
        cells = [geo.from_axial(qr) for qr in _hex_axials(token, geo)]
    else:
        n = side_cells(token.size)
        c, r = token.cell
        cells = [(c + i, r + j) for j in range(n) for i in range(n)]
    if not all(geo.contains(cell) for cell in cells):
        raise InputError(param, list(token.cell), f"a cell from which a {token.size} token fits on the map")
    return _row_major(cells)


def token_center(token: Token, geo: GridGeometry) -> Point:
    """The token's centre in grid units: the footprint block's middle (square), the mean hex centre (hex)."""
    if not geo.is_hex:
        half = side_cells(token.size) / 2
        return token.cell[0] + half, token.cell[1] + half
    centres = [geo.cell_center(cell) for cell in footprint(token, geo)]
    return sum(p[0] for p in centres) / len(centres), sum(p[1] for p in centres) / len(centres)


def footprint_box(token: Token, geo: GridGeometry) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` in grid units: the footprint's square block, or the bounding box of its hexes."""
    if not geo.is_hex:
        n = side_cells(token.size)
        c, r = token.cell
        return float(c), float(r), float(c + n), float(r + n)
    corners = [p for cell in footprint(token, geo) for p in geo.cell_polygon(cell)]
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    return min(xs), min(ys), max(xs), max(ys)


def _distance_grid(geo: GridGeometry, cells: tuple[Cell, ...], rule: str) -> np.ndarray:
    """Rows x cols array: each map cell's distance in cells from the nearest of ``cells``."""
    rows, cols = geo.grid.rows, geo.grid.cols
    rr, cc = np.mgrid[0:rows, 0:cols]
    if geo.is_hex:
        qs = np.empty((rows, cols), dtype=np.int64)
        rs = np.empty((rows, cols), dtype=np.int64)
        for c, r in geo.cells():
            qs[r, c], rs[r, c] = geo.axial((c, r))
        best = np.full((rows, cols), np.inf)
        for cell in cells:
            q0, r0 = geo.axial(cell)
            dq, dr = qs - q0, rs - r0
            best = np.minimum(best, (np.abs(dq) + np.abs(dq + dr) + np.abs(dr)) / 2)
        return best
    # The footprint is a block and every rule's distance grows with |dx| and |dy|, so the nearest footprint cell
    # is the one nearest on each axis separately.
    c0, c1 = min(c for c, _ in cells), max(c for c, _ in cells)
    r0, r1 = min(r for _, r in cells), max(r for _, r in cells)
    dx = np.maximum(np.maximum(c0 - cc, cc - c1), 0).astype(float)
    dy = np.maximum(np.maximum(r0 - rr, rr - r1), 0).astype(float)
    big, small = np.maximum(dx, dy), np.minimum(dx, dy)
    if rule == "5-5-5":
        return big
    if rule == "5-10-5":
        return big + np.floor(small / 2)
    if rule == "10-5-10":
        return big + np.ceil(small / 2)
    if rule == "manhattan":
        return dx + dy
    if rule in ("exact", "euclidean"):
        return np.hypot(dx, dy)
    raise ValueError(f"unknown diagonal rule {rule!r}")


def reach_cells(
    token: Token,
    geo: GridGeometry,
    reach_ft: float,
    rule: str,
    blocked: frozenset[Cell] = frozenset(),
    walls: tuple[tuple[Point, Point], ...] = (),
) -> tuple[Cell, ...]:
    """The cells within reach of a token's footprint (module docstring), sorted by row, then column.

    Args:
        token: The token.
        geo: Its grid.
        reach_ft: Reach in feet, measured from the footprint's edge.
        rule: The diagonal rule (square grids).
        blocked: Cells never in reach.
        walls: Segments (grid units) that block the line from a footprint cell's centre.

    Returns:
        The reached cells, footprint excluded.
    """
    cells = footprint(token, geo)
    limit = reach_ft / geo.grid.feet_per_cell + _TOL
    dist = _distance_grid(geo, cells, rule)
    own = set(cells)
    out: list[Cell] = []
    for r, c in zip(*np.nonzero(dist <= limit), strict=True):
        cell = (int(c), int(r))
        if cell in own or cell in blocked:
            continue
        if walls and not _clear_from(cell, cells, geo, rule, limit, walls):
            continue
        out.append(cell)
    return tuple(out)


def _clear_from(
    cell: Cell, sources: tuple[Cell, ...], geo: GridGeometry, rule: str, limit: float, walls: tuple
) -> bool:
    """Whether some source within reach of ``cell`` sees it past every wall."""
    target = geo.cell_center(cell)
    for src in sources:
        d = _distance_grid_one(geo, src, cell, rule)
        if d > limit:
            continue
        start = geo.cell_center(src)
        if not any(segments_touch(start, target, a, b) for a, b in walls):
            return True
    return False


def _distance_grid_one(geo: GridGeometry, a: Cell, b: Cell, rule: str) -> float:
    return geo.distance_cells(a, b, "euclidean" if rule == "exact" else rule)


def _convex_hull(points: Iterable[Point]) -> list[Point]:
    """Andrew's monotone chain: clockwise on screen (y down), no collinear points, from the smallest (x, y)."""
    pts = sorted(set((round(x, 12), round(y, 12)) for x, y in points))
    if len(pts) <= 2:
        return pts

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 1e-12:
            lower.pop()
        lower.append(p)
    upper: list[Point] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 1e-12:
            upper.pop()
        upper.append(p)
    # Keeping left turns in maths terms (y up) is clockwise on screen (y down): a positive shoelace area.
    return lower[:-1] + upper[:-1]


def grow_convex(polygon: list[Point], radius: float) -> tuple[Point, ...]:
    """A convex polygon (clockwise on screen) grown by ``radius``: its edges pushed out, arcs at its corners.

    Args:
        polygon: Convex, clockwise on screen, no repeated or collinear points.
        radius: Grid units, >= 0.

    Returns:
        The grown outline, clockwise on screen, arcs flattened at :data:`ARC_STEP_DEG` or finer.
    """
    if radius <= 0 or len(polygon) < 3:
        return tuple(polygon)
    n = len(polygon)
    out: list[Point] = []
    for i in range(n):
        prev, here, nxt = polygon[i - 1], polygon[i], polygon[(i + 1) % n]
        # Outward normal of an edge with direction (dx, dy), clockwise on screen: (dy, -dx).
        a0 = math.atan2(-(here[0] - prev[0]), here[1] - prev[1])
        a1 = math.atan2(-(nxt[0] - here[0]), nxt[1] - here[1])
        sweep = (a1 - a0) % (2 * math.pi)
        steps = max(1, math.ceil(math.degrees(sweep) / ARC_STEP_DEG - 1e-9))
        for k in range(steps + 1):
            t = a0 + sweep * k / steps
            out.append((here[0] + radius * math.cos(t), here[1] + radius * math.sin(t)))
    return tuple(out)


def aura_outline(token: Token, geo: GridGeometry, aura_ft: float) -> tuple[Point, ...]:
    """The aura's outline (module docstring): the footprint grown by ``aura_ft``, a polygon in grid units."""
    corners = [p for cell in footprint(token, geo) for p in geo.cell_polygon(cell)]
    return grow_convex(_convex_hull(corners), aura_ft / geo.grid.feet_per_cell)
