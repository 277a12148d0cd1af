"""Grid geometry: cells, points and pixels on square and hex grids; hex coordinate maths (TTRPG_RULES 2.6).

**Points** are ``(x, y)`` in grid units, ``(0, 0)`` the map's top-left corner, y down. Pixels are grid units times
:func:`~pipelines.overlay.spec.pixels_per_unit` (continuous: pixel ``(i, j)`` spans ``[i, i+1] x [j, j+1]``).

**Square grids.** Cell ``(c, r)`` spans ``[c, c+1] x [r, r+1]``; its centre is ``(c + .5, r + .5)``.
:meth:`GridGeometry.cell_at` floors, so a point on a shared cell border belongs to the cell to its right / below;
a point on the map's own right or bottom edge belongs to the last column / row (it is on the map); anything
outside ``[0, cols] x [0, rows]`` is ``None``.

**Hex grids.** One grid unit is the hex's flat-to-flat width (``sqrt(3) * size_px`` pixels) on both axes, so the
centre-to-corner size is ``1 / sqrt(3)`` units. ``(0, 0)`` is the top-left corner of the bounding box of all the
map's hexes (its size is :func:`~pipelines.overlay.spec.map_extent`). Cells are ``(col, row)`` in the grid's offset
layout (``odd-r``/``even-r`` for pointy tops, ``odd-q``/``even-q`` for flat tops); every offset layout maps cell
``(0, 0)`` to axial ``(0, 0)``. Axial ``(q, r)`` has cube ``(q, r, -q - r)``. Corner ``i`` of a pointy hex is at
angle ``60 i - 30`` degrees from its centre (flat: ``60 i``), with angles clockwise on screen (0 = east, 90 =
south), so :meth:`GridGeometry.cell_polygon` lists the corners clockwise on screen starting at corner 0.
:meth:`GridGeometry.cell_at` cube-rounds; a point exactly on an edge between two hexes goes where
:func:`cube_round` sends it (each component rounds half up, i.e. ``floor(v + 0.5)``, then the component that moved
most is recomputed), and a point in a notch of the bounding box that no map hex covers is ``None``.

**Directions** are degrees, 0 = east (+x), 90 = south (+y), clockwise on screen.

**Distances** (:meth:`GridGeometry.distance_cells`, in cells, no obstacles): square grids under a diagonal rule
(``dx``, ``dy`` the absolute column and row differences, ``M = max``, ``m = min``): ``5-5-5`` ``M``; ``5-10-5``
``M + floor(m / 2)``; ``10-5-10`` ``M + ceil(m / 2)``; ``manhattan`` ``dx + dy``; ``exact`` (octile)
``M + (sqrt 2 - 1) m``; ``euclidean`` ``hypot(dx, dy)`` between centres. Hex grids ignore the rule: the hex distance.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from pipelines.overlay.spec import Cell, Grid, Point, map_extent, map_pixels, pixels_per_unit

__all__ = [
    "HEX_DIRECTIONS",
    "GridGeometry",
    "axial_to_cube",
    "axial_to_offset",
    "cube_round",
    "cube_to_axial",
    "hex_distance",
    "hex_line",
    "hex_range",
    "hex_ring",
    "offset_to_axial",
    "segments_touch",
]

Axial = tuple[int, int]

HEX_DIRECTIONS: tuple[Axial, ...] = ((1, 0), (1, -1), (0, -1), (-1, 0), (-1, 1), (0, 1))
"""The six axial neighbour offsets (Red Blob Games' order)."""

SQUARE_DIRECTIONS: tuple[tuple[int, int, bool], ...] = (
    (1, 0, False),
    (1, 1, True),
    (0, 1, False),
    (-1, 1, True),
    (-1, 0, False),
    (-1, -1, True),
    (0, -1, False),
    (1, -1, True),
)
"""Square neighbour offsets ``(dc, dr, diagonal)``, clockwise on screen from east."""

_SQRT3 = math.sqrt(3.0)
_LINE_NUDGE = (1e-6, 1e-6, -2e-6)


# -- hex coordinates ----------------------------------------------------------------------------------------------


def offset_to_axial(cell: Cell, offset: str) -> Axial:
    """Offset ``(col, row)`` to axial ``(q, r)`` (Red Blob Games' formulas; ``& 1`` so negatives work).

    Args:
        cell: ``(col, row)`` in the ``offset`` layout.
        offset: ``odd-r``, ``even-r``, ``odd-q`` or ``even-q``.

    Returns:
        The axial ``(q, r)``.

    Raises:
        ValueError: An unknown offset layout.
    """
    col, row = cell
    if offset == "odd-r":
        return col - (row - (row & 1)) // 2, row
    if offset == "even-r":
        return col - (row + (row & 1)) // 2, row
    if offset == "odd-q":
        return col, row - (col - (col & 1)) // 2
    if offset == "even-q":
        return col, row - (col + (col & 1)) // 2
    raise ValueError(f"unknown hex offset layout {offset!r}")


def axial_to_offset(qr: Axial, offset: str) -> Cell:
    """Axial ``(q, r)`` to offset ``(col, row)``: the inverse of :func:`offset_to_axial`.

    Raises:
        ValueError: An unknown offset layout.
    """
    q, r = qr
    if offset == "odd-r":
        return q + (r - (r & 1)) // 2, r
    if offset == "even-r":
        return q + (r + (r & 1)) // 2, r
    if offset == "odd-q":
        return q, r + (q - (q & 1)) // 2
    if offset == "even-q":
        return q, r + (q + (q & 1)) // 2
    raise ValueError(f"unknown hex offset layout {offset!r}")


def axial_to_cube(qr: Axial) -> tuple[int, int, int]:
    """Axial ``(q, r)`` to cube ``(q, r, s)`` with ``s = -q - r``."""
    q, r = qr
    return q, r, -q - r


def cube_to_axial(qrs: tuple[int, int, int]) -> Axial:
    """Cube ``(q, r, s)`` to axial ``(q, r)`` (drops ``s``)."""
    return qrs[0], qrs[1]


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def cube_round(q: float, r: float, s: float) -> tuple[int, int, int]:
    """The hex containing fractional cube coordinates.

    Rounds each component half up (``floor(v + 0.5)``, not Python's banker's rounding), then recomputes the
    component whose rounding moved it most as minus the sum of the other two (ties: ``q`` before ``r`` before
    ``s`` is the one recomputed).

    Returns:
        Integer cube ``(q, r, s)`` with ``q + r + s == 0``.
    """
    rq, rr, rs = _round_half_up(q), _round_half_up(r), _round_half_up(s)
    dq, dr, ds = abs(rq - q), abs(rr - r), abs(rs - s)
    if dq >= dr and dq >= ds:
        rq = -rr - rs
    elif dr >= ds:
        rr = -rq - rs
    else:
        rs = -rq - rr
    return rq, rr, rs


def hex_distance(a: Axial, b: Axial) -> int:
    """Hex steps between two axial hexes: ``(|dq| + |dq + dr| + |dr|) / 2``."""
    dq, dr = a[0] - b[0], a[1] - b[1]
    return (abs(dq) + abs(dq + dr) + abs(dr)) // 2


def hex_range(center: Axial, n: int) -> list[Axial]:
    """Every axial hex within ``n`` steps of ``center`` (``3 n (n + 1) + 1`` of them), ordered by q, then r."""
    cq, cr = center
    out: list[Axial] = []
    for dq in range(-n, n + 1):
        for dr in range(max(-n, -dq - n), min(n, -dq + n) + 1):
            out.append((cq + dq, cr + dr))
    return out


def hex_ring(center: Axial, n: int) -> list[Axial]:
    """The axial hexes exactly ``n`` steps from ``center``: ``6 n`` for ``n >= 1``, ``[center]`` for ``n == 0``.

    Walks the ring from ``center + n * (-1, +1)`` through the six directions in :data:`HEX_DIRECTIONS` order.
    """
    if n <= 0:
        return [center]
    q, r = center[0] + HEX_DIRECTIONS[4][0] * n, center[1] + HEX_DIRECTIONS[4][1] * n
    out: list[Axial] = []
    for dq, dr in HEX_DIRECTIONS:
        for _ in range(n):
            out.append((q, r))
            q, r = q + dq, r + dr
    return out


def hex_line(a: Axial, b: Axial) -> list[Axial]:
    """The hexes on the straight line from ``a`` to ``b`` (both axial), ``hex_distance + 1`` of them, in order.

    Samples ``t = i / N`` between the two cube coordinates, each endpoint nudged by ``(1e-6, 1e-6, -2e-6)`` so a
    sample exactly on an edge rounds the same way every time, and cube-rounds each sample.
    """
    n = hex_distance(a, b)
    if n == 0:
        return [a]
    ca = [c + e for c, e in zip(axial_to_cube(a), _LINE_NUDGE, strict=True)]
    cb = [c + e for c, e in zip(axial_to_cube(b), _LINE_NUDGE, strict=True)]
    out: list[Axial] = []
    for i in range(n + 1):
        t = i / n
        q, r, s = (x + (y - x) * t for x, y in zip(ca, cb, strict=True))
        out.append(cube_to_axial(cube_round(q, r, s)))
    return out


# -- segments -----------------------------------------------------------------------------------------------------


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def segments_touch(p: Point, q: Point, a: Point, b: Point, eps: float = 1e-9) -> bool:
    """Whether the closed segments ``pq`` and ``ab`` share a point (a touch at an endpoint or an overlap counts).

    Args:
        p: First segment's start.
        q: First segment's end.
        a: Second segment's start.
        b: Second segment's end.
        eps: Tolerance in squared grid units on the orientation tests (so a touch survives rounding).

    Returns:
        True when they cross, touch or overlap.
    """
    d1, d2 = _orient(a, b, p), _orient(a, b, q)
    d3, d4 = _orient(p, q, a), _orient(p, q, b)
    if ((d1 > eps and d2 < -eps) or (d1 < -eps and d2 > eps)) and (
        (d3 > eps and d4 < -eps) or (d3 < -eps and d4 > eps)
    ):
        return True

    def on(u: Point, v: Point, w: Point, d: float) -> bool:  # w on segment uv, given orient(u, v, w) == d
        return (
            abs(d) <= eps
            and min(u[0], v[0]) - eps <= w[0] <= max(u[0], v[0]) + eps
            and min(u[1], v[1]) - eps <= w[1] <= max(u[1], v[1]) + eps
        )

    return on(a, b, p, d1) or on(a, b, q, d2) or on(p, q, a, d3) or on(p, q, b, d4)


# -- the grid -----------------------------------------------------------------------------------------------------


class GridGeometry:
    """Where a :class:`~pipelines.overlay.spec.Grid`'s cells are, in grid units and pixels.

    Attributes:
        grid: The grid.
        width: Map width in grid units (:func:`~pipelines.overlay.spec.map_extent`).
        height: Map height in grid units.
        ppu: Pixels per grid unit.
        width_px: ``ceil(width * ppu)`` (:func:`~pipelines.overlay.spec.map_pixels`).
        height_px: ``ceil(height * ppu)``.
        hex_size: Hex grids: centre-to-corner distance in grid units (``1 / sqrt(3)``); 0 on square grids.
    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.is_hex = grid.is_hex
        self.width, self.height = map_extent(grid)
        self.ppu = pixels_per_unit(grid)
        self.width_px, self.height_px = map_pixels(grid)
        self.hex_size = 1.0 / _SQRT3 if self.is_hex else 0.0
        self._origin = self._hex_origin() if self.is_hex else (0.0, 0.0)

    # -- cells and points ---------------------------------------------------------------------------------------

    def _hex_origin(self) -> Point:
        """The centre of cell ``(0, 0)`` (axial ``(0, 0)``) in grid units."""
        g, s = self.grid, self.hex_size
        # The layout whose shoved rows (columns) include row (column) 0 starts half a hex further in, unless the
        # map has that single row (column) only: then nothing sits to its left (above it).
        if g.orientation == "pointy":
            shift = 0.5 if g.offset == "even-r" and g.rows > 1 else 0.0
            return 0.5 + shift, s
        shift = 0.5 if g.offset == "even-q" and g.cols > 1 else 0.0
        return s, 0.5 + shift

    def _axial_xy(self, q: float, r: float) -> Point:
        """Axial (possibly fractional) to grid units."""
        s = self.hex_size
        ox, oy = self._origin
        if self.grid.orientation == "pointy":
            return ox + s * (_SQRT3 * q + _SQRT3 / 2 * r), oy + s * 1.5 * r
        return ox + s * 1.5 * q, oy + s * (_SQRT3 / 2 * q + _SQRT3 * r)

    def _xy_axial(self, x: float, y: float) -> tuple[float, float]:
        """Grid units to fractional axial."""
        s = self.hex_size
        px, py = x - self._origin[0], y - self._origin[1]
        if self.grid.orientation == "pointy":
            return (_SQRT3 / 3 * px - py / 3) / s, (2 / 3 * py) / s
        return (2 / 3 * px) / s, (-px / 3 + _SQRT3 / 3 * py) / s

    def contains(self, cell: Cell) -> bool:
        """Whether ``cell`` is on the map."""
        return self.grid.contains(cell)

    def cell_center(self, cell: Cell) -> Point:
        """The centre of ``cell`` in grid units."""
        if not self.is_hex:
            return cell[0] + 0.5, cell[1] + 0.5
        q, r = self.axial(cell)
        return self._axial_xy(q, r)

    def cell_polygon(self, cell: Cell) -> tuple[Point, ...]:
        """The cell's corners in grid units, clockwise on screen.

        Square: top-left, top-right, bottom-right, bottom-left. Hex: corner ``i`` at ``60 i - 30`` degrees (pointy)
        or ``60 i`` degrees (flat) from the centre, ``i = 0..5``.
        """
        if not self.is_hex:
            c, r = cell
            return (float(c), float(r)), (c + 1.0, float(r)), (c + 1.0, r + 1.0), (float(c), r + 1.0)
        cx, cy = self.cell_center(cell)
        start = -30.0 if self.grid.orientation == "pointy" else 0.0
        s = self.hex_size
        return tuple(
            (cx + s * math.cos(math.radians(start + 60 * i)), cy + s * math.sin(math.radians(start + 60 * i)))
            for i in range(6)
        )

    def cell_at(self, point: Point) -> Cell | None:
        """The cell containing ``point`` (grid units), or None off the map (see the module docstring for ties)."""
        x, y = point
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        if not self.is_hex:
            if not (0 <= x <= self.width and 0 <= y <= self.height):
                return None
            return min(math.floor(x), self.grid.cols - 1), min(math.floor(y), self.grid.rows - 1)
        q, r = self._xy_axial(x, y)
        cell = self.from_axial(cube_to_axial(cube_round(q, r, -q - r)))
        return cell if self.grid.contains(cell) else None

    def to_px(self, point: Point) -> tuple[float, float]:
        """Grid units to pixels."""
        return point[0] * self.ppu, point[1] * self.ppu

    def from_px(self, xy: tuple[float, float]) -> Point:
        """Pixels to grid units."""
        return xy[0] / self.ppu, xy[1] / self.ppu

    def axial(self, cell: Cell) -> Axial:
        """A hex cell's axial ``(q, r)``.

        Raises:
            ValueError: On a square grid.
        """
        if not self.is_hex:
            raise ValueError("axial coordinates exist on hex grids only")
        return offset_to_axial(cell, self.grid.offset)

    def from_axial(self, qr: Axial) -> Cell:
        """The offset cell of an axial hex (it may be off the map).

        Raises:
            ValueError: On a square grid.
        """
        if not self.is_hex:
            raise ValueError("axial coordinates exist on hex grids only")
        return axial_to_offset(qr, self.grid.offset)

    def neighbours(self, cell: Cell) -> list[tuple[Cell, bool]]:
        """The on-map neighbours of ``cell`` with whether each step is diagonal.

        Square: up to 8, clockwise from east (E, SE, S, SW, W, NW, N, NE). Hex: up to 6 in
        :data:`HEX_DIRECTIONS` order, never diagonal.
        """
        out: list[tuple[Cell, bool]] = []
        if not self.is_hex:
            c, r = cell
            for dc, dr, diagonal in SQUARE_DIRECTIONS:
                nb = (c + dc, r + dr)
                if self.grid.contains(nb):
                    out.append((nb, diagonal))
            return out
        q, r = self.axial(cell)
        for dq, dr in HEX_DIRECTIONS:
            nb = self.from_axial((q + dq, r + dr))
            if self.grid.contains(nb):
                out.append((nb, False))
        return out

    def cells(self) -> Iterator[Cell]:
        """Every cell, row-major (row 0 left to right, then row 1...)."""
        for r in range(self.grid.rows):
            for c in range(self.grid.cols):
                yield c, r

    # -- distances ----------------------------------------------------------------------------------------------

    def distance_cells(self, a: Cell, b: Cell, rule: str) -> float:
        """The obstacle-free distance from ``a`` to ``b`` in cells under a diagonal rule (module docstring).

        Raises:
            ValueError: An unknown rule on a square grid.
        """
        if self.is_hex:
            return float(hex_distance(self.axial(a), self.axial(b)))
        dx, dy = abs(a[0] - b[0]), abs(a[1] - b[1])
        big, small = max(dx, dy), min(dx, dy)
        if rule == "5-5-5":
            return float(big)
        if rule == "5-10-5":
            return float(big + small // 2)
        if rule == "10-5-10":
            return float(big + (small + 1) // 2)
        if rule == "manhattan":
            return float(dx + dy)
        if rule == "exact":
            return big + (math.sqrt(2.0) - 1.0) * small
        if rule == "euclidean":
            return math.hypot(dx, dy)
        raise ValueError(f"unknown diagonal rule {rule!r}")

    # -- lines to draw ------------------------------------------------------------------------------------------

    def grid_lines(self) -> list[tuple[Point, Point]]:
        """Square grids: ``cols + 1`` vertical segments (left to right), then ``rows + 1`` horizontal ones (top to
        bottom), each spanning the whole map. Hex grids: an empty list (see :meth:`hex_edges`)."""
        if self.is_hex:
            return []
        cols, rows = self.grid.cols, self.grid.rows
        vertical = [((float(x), 0.0), (float(x), float(rows))) for x in range(cols + 1)]
        horizontal = [((0.0, float(y)), (float(cols), float(y))) for y in range(rows + 1)]
        return vertical + horizontal

    def hex_edges(self) -> list[tuple[Point, Point]]:
        """Hex grids: every edge of every hex, an edge two hexes share listed once (cells row-major, corners in
        :meth:`cell_polygon` order). Square grids: an empty list."""
        if not self.is_hex:
            return []
        seen: set[tuple[tuple[float, float], tuple[float, float]]] = set()
        out: list[tuple[Point, Point]] = []
        for cell in self.cells():
            corners = self.cell_polygon(cell)
            for i in range(6):
                a, b = corners[i], corners[(i + 1) % 6]
                ka, kb = (round(a[0], 6), round(a[1], 6)), (round(b[0], 6), round(b[1], 6))
                key = (min(ka, kb), max(ka, kb))
                if key in seen:
                    continue
                seen.add(key)
                out.append((a, b))
        return out
