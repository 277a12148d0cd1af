"""Grid geometry against hand-worked values (TTRPG_RULES 2.5, 2.6) and independent brute force."""

from __future__ import annotations

import heapq
import itertools
import math
import random

import pytest

from pipelines.overlay.grid import (
    GridGeometry,
    axial_to_cube,
    axial_to_offset,
    cube_round,
    cube_to_axial,
    hex_distance,
    hex_line,
    hex_range,
    hex_ring,
    offset_to_axial,
)
from pipelines.overlay.spec import Grid, map_extent

S = 1 / math.sqrt(3)  # hex centre-to-corner in grid units
LAYOUTS = [("pointy", "odd-r"), ("pointy", "even-r"), ("flat", "odd-q"), ("flat", "even-q")]
MY_AXIAL_DIRS = [(1, 0), (0, 1), (-1, 1), (-1, 0), (0, -1), (1, -1)]


def hexgrid(orientation: str, offset: str, cols: int = 6, rows: int = 5) -> GridGeometry:
    return GridGeometry(Grid(type="hex", cols=cols, rows=rows, orientation=orientation, offset=offset))


def my_centre(orientation: str, offset: str, cell: tuple[int, int], cols: int, rows: int) -> tuple[float, float]:
    """Offset -> centre straight from the shoved-row/column picture (no axial maths)."""
    col, row = cell
    if orientation == "pointy":
        shoved = (row % 2 == 1) if offset == "odd-r" else (row % 2 == 0)
        # A single shoved row is the whole map: nothing sits to its left, so it starts at x = 0.
        x = col + (0.5 if shoved else 0.0) + 0.5 - (0.5 if (offset == "even-r" and rows == 1) else 0.0)
        return x, S + 1.5 * S * row
    shoved = (col % 2 == 1) if offset == "odd-q" else (col % 2 == 0)
    y = row + (0.5 if shoved else 0.0) + 0.5 - (0.5 if (offset == "even-q" and cols == 1) else 0.0)
    return S + 1.5 * S * col, y


# -- offset / axial / cube ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "cell", "axial"),
    [
        # odd-r: q = col - (row - (row & 1)) / 2
        ("odd-r", (2, 3), (1, 3)),
        ("odd-r", (0, 1), (0, 1)),
        ("odd-r", (0, 2), (-1, 2)),
        ("odd-r", (0, -1), (1, -1)),
        # even-r: q = col - (row + (row & 1)) / 2
        ("even-r", (2, 3), (0, 3)),
        ("even-r", (0, 1), (-1, 1)),
        ("even-r", (3, 0), (3, 0)),
        # odd-q: r = row - (col - (col & 1)) / 2
        ("odd-q", (3, 2), (3, 1)),
        ("odd-q", (1, 0), (1, 0)),
        ("odd-q", (-1, 0), (-1, 1)),
        # even-q: r = row - (col + (col & 1)) / 2
        ("even-q", (3, 2), (3, 0)),
        ("even-q", (1, 0), (1, -1)),
        ("even-q", (2, 2), (2, 1)),
    ],
)
def test_offset_to_axial_hand_worked(offset: str, cell: tuple[int, int], axial: tuple[int, int]) -> None:
    assert offset_to_axial(cell, offset) == axial
    assert axial_to_offset(axial, offset) == cell


@pytest.mark.parametrize("offset", ["odd-r", "even-r", "odd-q", "even-q"])
def test_offset_round_trip_including_negatives(offset: str) -> None:
    for cell in itertools.product(range(-7, 8), repeat=2):
        assert axial_to_offset(offset_to_axial(cell, offset), offset) == cell
    for qr in itertools.product(range(-7, 8), repeat=2):
        assert offset_to_axial(axial_to_offset(qr, offset), offset) == qr


def test_unknown_offset_raises() -> None:
    with pytest.raises(ValueError):
        offset_to_axial((0, 0), "odd-x")


def test_cube_round_trip_and_sum() -> None:
    for qr in itertools.product(range(-4, 5), repeat=2):
        cube = axial_to_cube(qr)
        assert sum(cube) == 0
        assert cube_to_axial(cube) == qr


def test_cube_round_ties_round_half_up() -> None:
    # (1.5, -1.5, 0): half up gives (2, -1, 0); q and r moved 0.5 each, q first is recomputed: -(-1) - 0 = 1.
    assert cube_round(1.5, -1.5, 0.0) == (1, -1, 0)
    assert cube_round(0.2, 0.3, -0.5) == (0, 0, 0)


def test_cube_round_matches_nearest_centre() -> None:
    """Pointy axial layout with size 1: the containing hex is the one whose centre is nearest."""
    rng = random.Random(3)
    centres = {(q, r): (math.sqrt(3) * (q + r / 2), 1.5 * r) for q, r in itertools.product(range(-6, 7), repeat=2)}
    for _ in range(2000):
        x, y = rng.uniform(-4, 4), rng.uniform(-4, 4)
        q = math.sqrt(3) / 3 * x - y / 3
        r = 2 / 3 * y
        got = cube_round(q, r, -q - r)
        assert sum(got) == 0
        nearest = min(centres, key=lambda k: math.hypot(centres[k][0] - x, centres[k][1] - y))
        assert cube_to_axial(got) == nearest


def bfs_hex(start: tuple[int, int], limit: int) -> dict[tuple[int, int], int]:
    dist = {start: 0}
    frontier = [start]
    for d in range(1, limit + 1):
        nxt = []
        for q, r in frontier:
            for dq, dr in MY_AXIAL_DIRS:
                nb = (q + dq, r + dr)
                if nb not in dist:
                    dist[nb] = d
                    nxt.append(nb)
        frontier = nxt
    return dist


def test_hex_distance_is_bfs_distance() -> None:
    dist = bfs_hex((2, -1), 8)
    for cell, d in dist.items():
        assert hex_distance((2, -1), cell) == d
        assert hex_distance(cell, (2, -1)) == d


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_hex_range_and_ring_counts(n: int) -> None:
    centre = (1, 2)
    dist = bfs_hex(centre, n + 1)
    rng = hex_range(centre, n)
    assert len(rng) == 3 * n * (n + 1) + 1
    assert set(rng) == {c for c, d in dist.items() if d <= n}
    ring = hex_ring(centre, n)
    assert len(ring) == (6 * n if n else 1)
    assert set(ring) == {c for c, d in dist.items() if d == n}
    assert len(set(ring)) == len(ring)


def test_hex_line_steps_and_nudge() -> None:
    # The midpoint of (0,0)-(1,1) is exactly on the edge between (1,0) and (0,1); the nudge (+q, +r, -2s) sends it
    # to (0,1) (cube_round recomputes q, the component that moved most): hand-worked from the guide's epsilon.
    assert hex_line((0, 0), (1, 1)) == [(0, 0), (0, 1), (1, 1)]
    assert hex_line((1, 1), (0, 0)) == [(1, 1), (0, 1), (0, 0)]
    assert hex_line((3, -2), (3, -2)) == [(3, -2)]
    rng = random.Random(5)
    for _ in range(200):
        a = (rng.randint(-6, 6), rng.randint(-6, 6))
        b = (rng.randint(-6, 6), rng.randint(-6, 6))
        line = hex_line(a, b)
        n = hex_distance(a, b)
        assert len(line) == n + 1 and line[0] == a and line[-1] == b
        for u, v in itertools.pairwise(line):
            assert (v[0] - u[0], v[1] - u[1]) in MY_AXIAL_DIRS
    # Along an axis the line is the straight run.
    assert hex_line((0, 0), (3, 0)) == [(0, 0), (1, 0), (2, 0), (3, 0)]


# -- square geometry ----------------------------------------------------------------------------------------------


def test_square_extent_pixels_and_conversions() -> None:
    geo = GridGeometry(Grid(cols=40, rows=30, cell_px=70))
    assert (geo.width, geo.height) == (40.0, 30.0)
    assert (geo.width_px, geo.height_px) == (2800, 2100)
    assert geo.ppu == 70.0
    assert geo.cell_center((3, 2)) == (3.5, 2.5)
    assert geo.to_px((3, 2)) == (210.0, 140.0)
    assert geo.from_px((210.0, 140.0)) == (3.0, 2.0)
    assert geo.cell_polygon((3, 2)) == ((3, 2), (4, 2), (4, 3), (3, 3))


@pytest.mark.parametrize(
    ("px", "cell"),
    [
        ((0.0, 0.0), (0, 0)),
        ((69.999, 69.999), (0, 0)),
        ((70.0, 70.0), (1, 1)),  # on a border: the cell to the right / below
        ((140.0, 69.0), (2, 0)),
        ((2799.9, 2099.9), (39, 29)),
        ((2800.0, 2100.0), (39, 29)),  # the map's own far edge is the last cell
        ((-0.01, 5.0), None),
        ((5.0, 2100.01), None),
    ],
)
def test_square_pixel_to_cell_floors(px: tuple[float, float], cell: tuple[int, int] | None) -> None:
    geo = GridGeometry(Grid(cols=40, rows=30, cell_px=70))
    assert geo.cell_at(geo.from_px(px)) == cell


def test_square_grid_lines() -> None:
    geo = GridGeometry(Grid(cols=5, rows=3))
    lines = geo.grid_lines()
    assert len(lines) == (5 + 1) + (3 + 1)
    vertical = [ln for ln in lines if ln[0][0] == ln[1][0]]
    horizontal = [ln for ln in lines if ln[0][1] == ln[1][1]]
    assert sorted(ln[0][0] for ln in vertical) == [0, 1, 2, 3, 4, 5]
    assert all(ln[0][1] == 0 and ln[1][1] == 3 for ln in vertical)
    assert sorted(ln[0][1] for ln in horizontal) == [0, 1, 2, 3]
    assert all(ln[0][0] == 0 and ln[1][0] == 5 for ln in horizontal)
    assert geo.hex_edges() == []


def test_square_neighbours_cells_and_axial() -> None:
    geo = GridGeometry(Grid(cols=4, rows=3))
    assert len(geo.neighbours((0, 0))) == 3
    assert len(geo.neighbours((1, 0))) == 5
    interior = geo.neighbours((1, 1))
    assert len(interior) == 8
    for (c, r), diagonal in interior:
        assert diagonal == (abs(c - 1) == 1 and abs(r - 1) == 1)
    assert list(geo.cells())[:5] == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1)]
    assert len(list(geo.cells())) == 12
    with pytest.raises(ValueError):
        geo.axial((0, 0))


def dijkstra_open(rule: str, start: tuple[int, int], size: int) -> dict[tuple[tuple[int, int], int], float]:
    """Shortest costs over (cell, diagonal parity) on an open size x size grid, per the step rules."""

    def diag_cost(p: int) -> float:
        return {"5-5-5": 1, "manhattan": 2, "exact": math.sqrt(2), "5-10-5": (1, 2)[p], "10-5-10": (2, 1)[p]}[rule]

    alternating = rule in ("5-10-5", "10-5-10")
    best = {(start, 0): 0.0}
    heap = [(0.0, start, 0)]
    while heap:
        d, (c, r), p = heapq.heappop(heap)
        if d > best[((c, r), p)]:
            continue
        for dc, dr in itertools.product((-1, 0, 1), repeat=2):
            if (dc, dr) == (0, 0) or not (0 <= c + dc < size and 0 <= r + dr < size):
                continue
            diagonal = dc != 0 and dr != 0
            cost = diag_cost(p) if diagonal else 1
            q = p ^ 1 if (diagonal and alternating) else p
            key = ((c + dc, r + dr), q)
            if d + cost < best.get(key, math.inf) - 1e-12:
                best[key] = d + cost
                heapq.heappush(heap, (d + cost, key[0], q))
    return best


@pytest.mark.parametrize("rule", ["5-5-5", "5-10-5", "10-5-10", "manhattan", "exact"])
def test_square_distance_matches_open_grid_search(rule: str) -> None:
    geo = GridGeometry(Grid(cols=9, rows=9))
    start = (4, 4)
    best = dijkstra_open(rule, start, 9)
    for cell in geo.cells():
        expected = min(best.get((cell, p), math.inf) for p in (0, 1))
        assert geo.distance_cells(start, cell, rule) == pytest.approx(expected, abs=1e-9)


def test_square_distance_hand_values() -> None:
    geo = GridGeometry(Grid(cols=20, rows=20))
    a, b = (0, 0), (6, 3)  # dx 6, dy 3
    assert geo.distance_cells(a, b, "5-5-5") == 6
    assert geo.distance_cells(a, b, "5-10-5") == 7  # 6 + floor(3/2)
    assert geo.distance_cells(a, b, "10-5-10") == 8  # 6 + ceil(3/2)
    assert geo.distance_cells(a, b, "manhattan") == 9
    assert geo.distance_cells(a, b, "exact") == pytest.approx(3 + 3 * math.sqrt(2))
    assert geo.distance_cells(a, b, "euclidean") == pytest.approx(math.sqrt(45))
    with pytest.raises(ValueError):
        geo.distance_cells(a, b, "chebyshev")


# -- hex geometry -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("orientation", "offset"), LAYOUTS)
def test_hex_centres_hand_worked(orientation: str, offset: str) -> None:
    geo = hexgrid(orientation, offset)
    assert geo.ppu == pytest.approx(math.sqrt(3) * 40)
    for cell in geo.cells():
        assert geo.cell_center(cell) == pytest.approx(my_centre(orientation, offset, cell, 6, 5), abs=1e-12)


def test_hex_centres_specific_values() -> None:
    assert hexgrid("pointy", "odd-r").cell_center((0, 1)) == pytest.approx((1.0, 2.5 * S))
    assert hexgrid("pointy", "even-r").cell_center((0, 0)) == pytest.approx((1.0, S))
    assert hexgrid("pointy", "even-r").cell_center((0, 1)) == pytest.approx((0.5, 2.5 * S))
    assert hexgrid("flat", "odd-q").cell_center((1, 0)) == pytest.approx((2.5 * S, 1.0))
    assert hexgrid("flat", "even-q").cell_center((0, 0)) == pytest.approx((S, 1.0))
    assert hexgrid("flat", "even-q").cell_center((1, 0)) == pytest.approx((2.5 * S, 0.5))


@pytest.mark.parametrize(("orientation", "offset"), LAYOUTS)
@pytest.mark.parametrize(("cols", "rows"), [(6, 5), (1, 1), (1, 4), (4, 1)])
def test_hex_bounding_box_is_the_map_extent(orientation: str, offset: str, cols: int, rows: int) -> None:
    geo = hexgrid(orientation, offset, cols, rows)
    assert (geo.width, geo.height) == map_extent(geo.grid)
    corners = [p for cell in geo.cells() for p in geo.cell_polygon(cell)]
    assert min(x for x, _ in corners) == pytest.approx(0, abs=1e-12)
    assert min(y for _, y in corners) == pytest.approx(0, abs=1e-12)
    assert max(x for x, _ in corners) == pytest.approx(geo.width, abs=1e-12)
    assert max(y for _, y in corners) == pytest.approx(geo.height, abs=1e-12)
    assert geo.width_px == math.ceil(geo.width * geo.ppu - 1e-6)  # float noise below a pixel adds none


@pytest.mark.parametrize(("orientation", "offset"), LAYOUTS)
def test_hex_polygon_corners(orientation: str, offset: str) -> None:
    geo = hexgrid(orientation, offset)
    cx, cy = geo.cell_center((2, 2))
    poly = geo.cell_polygon((2, 2))
    start = -30 if orientation == "pointy" else 0
    for i, (x, y) in enumerate(poly):
        a = math.radians(start + 60 * i)
        assert (x, y) == pytest.approx((cx + S * math.cos(a), cy + S * math.sin(a)), abs=1e-12)
    area = 0.5 * sum(poly[i][0] * poly[i - 5][1] - poly[i - 5][0] * poly[i][1] for i in range(6))
    assert area == pytest.approx(math.sqrt(3) / 2, abs=1e-12)  # flat-to-flat 1; positive = clockwise on screen


@pytest.mark.parametrize(("orientation", "offset"), LAYOUTS)
def test_hex_neighbours_are_unit_distance_centres(orientation: str, offset: str) -> None:
    geo = hexgrid(orientation, offset)
    cells = list(geo.cells())
    for cell in cells:
        cx, cy = my_centre(orientation, offset, cell, 6, 5)
        expected = {
            other for other in cells if abs(math.dist((cx, cy), my_centre(orientation, offset, other, 6, 5)) - 1) < 1e-9
        }
        got = geo.neighbours(cell)
        assert {nb for nb, _ in got} == expected
        assert not any(diagonal for _, diagonal in got)


@pytest.mark.parametrize(("orientation", "offset"), LAYOUTS)
def test_hex_distance_is_bfs_over_map_neighbours(orientation: str, offset: str) -> None:
    geo = hexgrid(orientation, offset, 7, 6)
    start = (3, 2)
    dist = {start: 0}
    frontier = [start]
    cells = list(geo.cells())
    while frontier:
        nxt = []
        for cell in frontier:
            c0 = my_centre(orientation, offset, cell, 7, 6)
            for other in cells:
                if other not in dist and abs(math.dist(c0, my_centre(orientation, offset, other, 7, 6)) - 1) < 1e-9:
                    dist[other] = dist[cell] + 1
                    nxt.append(other)
        frontier = nxt
    for cell, d in dist.items():
        assert geo.distance_cells(start, cell, "5-10-5") == d  # the rule is ignored on hex grids


def inside_hex(orientation: str, centre: tuple[float, float], p: tuple[float, float]) -> bool:
    """Inside a flat-to-flat-1 hexagon: the projection on each of its three edge normals is within 1/2."""
    normals = (0, 60, 120) if orientation == "pointy" else (30, 90, 150)
    dx, dy = p[0] - centre[0], p[1] - centre[1]
    return all(abs(dx * math.cos(math.radians(a)) + dy * math.sin(math.radians(a))) <= 0.5 + 1e-12 for a in normals)


@pytest.mark.parametrize(("orientation", "offset"), LAYOUTS)
def test_hex_pixel_to_cell(orientation: str, offset: str) -> None:
    geo = hexgrid(orientation, offset)
    rng = random.Random(11)
    centres = {cell: my_centre(orientation, offset, cell, 6, 5) for cell in geo.cells()}
    for _ in range(1500):
        p = (rng.uniform(-0.2, geo.width + 0.2), rng.uniform(-0.2, geo.height + 0.2))
        containing = [cell for cell, c in centres.items() if inside_hex(orientation, c, p)]
        got = geo.cell_at(geo.from_px(geo.to_px(p)))
        if not containing:
            assert got is None
        else:
            assert got in containing  # two only on a shared edge
    for cell, c in centres.items():
        assert geo.cell_at(c) == cell


@pytest.mark.parametrize(("orientation", "offset"), LAYOUTS)
def test_hex_edges_each_once(orientation: str, offset: str) -> None:
    geo = hexgrid(orientation, offset)
    cells = list(geo.cells())
    pairs = sum(
        1
        for a, b in itertools.combinations(cells, 2)
        if abs(math.dist(my_centre(orientation, offset, a, 6, 5), my_centre(orientation, offset, b, 6, 5)) - 1) < 1e-9
    )
    edges = geo.hex_edges()
    assert len(edges) == 6 * len(cells) - pairs
    assert all(math.dist(a, b) == pytest.approx(S) for a, b in edges)
    mids = {(round((a[0] + b[0]) / 2, 6), round((a[1] + b[1]) / 2, 6)) for a, b in edges}
    assert len(mids) == len(edges)
    assert geo.grid_lines() == []


def test_hex_axial_and_back() -> None:
    geo = hexgrid("flat", "even-q")
    for cell in geo.cells():
        assert geo.from_axial(geo.axial(cell)) == cell
    assert geo.axial((1, 0)) == (1, -1)
