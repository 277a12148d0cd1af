"""Token footprints, centres, reach and auras against hand-worked cases (TTRPG_RULES 3.1) and brute force."""

from __future__ import annotations

import itertools
import math

import pytest

from pipelines.errors import InputError
from pipelines.overlay.grid import GridGeometry
from pipelines.overlay.spec import Grid, Token
from pipelines.overlay.tokens import aura_outline, footprint, footprint_box, reach_cells, token_center

S = 1 / math.sqrt(3)
SQUARE = GridGeometry(Grid(cols=12, rows=10))
HEX = GridGeometry(Grid(type="hex", cols=9, rows=9, orientation="pointy", offset="odd-r"))


def shoelace(poly: tuple[tuple[float, float], ...]) -> float:
    return 0.5 * sum(
        poly[i][0] * poly[(i + 1) % len(poly)][1] - poly[(i + 1) % len(poly)][0] * poly[i][1] for i in range(len(poly))
    )


@pytest.mark.parametrize(
    ("size", "side"), [("tiny", 1), ("small", 1), ("medium", 1), ("large", 2), ("huge", 3), ("gargantuan", 4)]
)
def test_square_footprints(size: str, side: int) -> None:
    token = Token("t", (3, 2), size)
    cells = footprint(token, SQUARE)
    expected = sorted(((3 + i, 2 + j) for i in range(side) for j in range(side)), key=lambda c: (c[1], c[0]))
    assert cells == tuple(expected)
    assert token_center(token, SQUARE) == (3 + side / 2, 2 + side / 2)
    assert footprint_box(token, SQUARE) == (3, 2, 3 + side, 2 + side)


def test_tiny_centre_is_its_cell_centre() -> None:
    assert token_center(Token("t", (5, 7), "tiny"), SQUARE) == (5.5, 7.5)


@pytest.mark.parametrize(("cell", "size"), [((11, 0), "large"), ((9, 7), "gargantuan"), ((0, 8), "huge")])
def test_square_footprint_off_map_is_an_input_error(cell: tuple[int, int], size: str) -> None:
    with pytest.raises(InputError) as err:
        footprint(Token("t", cell, size), SQUARE, "tokens[4].cell")
    assert err.value.param == "tokens[4].cell"


def hex_centre(cell: tuple[int, int]) -> tuple[float, float]:
    """Pointy odd-r centres, from the shoved-row picture."""
    col, row = cell
    return col + 0.5 * (row % 2) + 0.5, S + 1.5 * S * row


def hex_steps(cells: set[tuple[int, int]], start: tuple[int, int]) -> dict[tuple[int, int], int]:
    """BFS over unit-distance centres restricted to ``cells``."""
    dist = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for a in frontier:
            for b in cells:
                if b not in dist and abs(math.dist(hex_centre(a), hex_centre(b)) - 1) < 1e-9:
                    dist[b] = dist[a] + 1
                    nxt.append(b)
        frontier = nxt
    return dist


@pytest.mark.parametrize(
    ("size", "count", "radius"),
    [("tiny", 1, 0), ("medium", 1, 0), ("large", 3, 1), ("huge", 7, 1), ("gargantuan", 19, 2)],
)
def test_hex_footprints(size: str, count: int, radius: int) -> None:
    token = Token("t", (2, 1), size)
    cells = footprint(token, HEX)
    assert len(cells) == count and len(set(cells)) == count
    assert (2, 1) in cells
    assert list(cells) == sorted(cells, key=lambda c: (c[1], c[0]))
    members = set(cells)
    if size == "large":  # three mutually adjacent hexes
        assert all(abs(math.dist(hex_centre(a), hex_centre(b)) - 1) < 1e-9 for a, b in itertools.combinations(cells, 2))
    elif radius:  # a filled hexagon: some member reaches every other within `radius` steps inside the set
        assert any(max(hex_steps(members, c).values()) == radius and len(hex_steps(members, c)) == count for c in cells)
    centres = [hex_centre(c) for c in cells]
    mean = (sum(x for x, _ in centres) / count, sum(y for _, y in centres) / count)
    assert token_center(token, HEX) == pytest.approx(mean, abs=1e-12)


def test_hex_large_shape_hand_worked() -> None:
    # Pointy odd-r, anchor (2, 1) is axial (2, 1): + (1, 0) is east (3, 1), + (0, 1) is south-east: axial (2, 2)
    # in row 2 (even, not shoved) is col 2 + (2 - 0) / 2 = 3.
    assert footprint(Token("t", (2, 1), "large"), HEX) == ((2, 1), (3, 1), (3, 2))


def test_hex_footprint_off_map() -> None:
    with pytest.raises(InputError) as err:
        footprint(Token("t", (8, 7), "gargantuan"), HEX, "tokens[0].cell")
    assert err.value.param == "tokens[0].cell"


def brute_reach(cells: tuple[tuple[int, int], ...], geo: GridGeometry, reach: float, rule: str) -> set:
    def dist(a: tuple[int, int], b: tuple[int, int]) -> float:
        dx, dy = abs(a[0] - b[0]), abs(a[1] - b[1])
        return {
            "5-5-5": max(dx, dy),
            "5-10-5": max(dx, dy) + min(dx, dy) // 2,
            "10-5-10": max(dx, dy) + (min(dx, dy) + 1) // 2,
            "manhattan": dx + dy,
            "exact": math.hypot(dx, dy),
            "euclidean": math.hypot(dx, dy),
        }[rule]

    return {
        (c, r)
        for c in range(geo.grid.cols)
        for r in range(geo.grid.rows)
        if (c, r) not in cells and min(dist(f, (c, r)) for f in cells) <= reach + 1e-9
    }


def test_reach_hand_counts() -> None:
    medium, large = Token("m", (5, 5)), Token("l", (5, 5), "large")
    assert len(reach_cells(medium, SQUARE, 5, "5-5-5")) == 8
    assert len(reach_cells(medium, SQUARE, 10, "5-10-5")) == 25 - 4 - 1  # (2, 2) costs 15 ft
    assert len(reach_cells(medium, SQUARE, 10, "5-5-5")) == 24
    assert len(reach_cells(large, SQUARE, 5, "5-5-5")) == 16 - 4
    assert len(reach_cells(large, SQUARE, 5, "manhattan")) == 8
    assert len(reach_cells(medium, SQUARE, 5, "exact")) == 4  # diagonal centres are sqrt 2 apart


@pytest.mark.parametrize("rule", ["5-5-5", "5-10-5", "10-5-10", "manhattan", "exact", "euclidean"])
@pytest.mark.parametrize(("size", "reach"), [("medium", 10), ("large", 15), ("gargantuan", 5), ("huge", 22.5)])
def test_reach_matches_brute_force(rule: str, size: str, reach: float) -> None:
    token = Token("t", (4, 3), size)
    cells = footprint(token, SQUARE)
    got = reach_cells(token, SQUARE, reach, rule)
    assert set(got) == brute_reach(cells, SQUARE, reach / 5, rule)
    assert list(got) == sorted(got, key=lambda c: (c[1], c[0]))


def test_reach_on_hex_is_hex_steps() -> None:
    token = Token("t", (4, 4), "large")
    cells = footprint(token, HEX)
    everything = set(HEX.cells())
    dist: dict = {}
    for f in cells:
        for cell, d in hex_steps(everything, f).items():
            dist[cell] = min(d, dist.get(cell, 99))
    expected = {c for c, d in dist.items() if 0 < d <= 2}
    assert set(reach_cells(token, HEX, 10, "5-5-5")) == expected


def test_reach_blocked_and_walls() -> None:
    token = Token("t", (5, 5))
    got = reach_cells(token, SQUARE, 5, "5-5-5", blocked=frozenset({(6, 5)}))
    assert (6, 5) not in got and len(got) == 7
    # A wall along x = 6 from y = 4 to 7 cuts off the three cells to the east.
    walled = reach_cells(token, SQUARE, 5, "5-5-5", walls=(((6.0, 4.0), (6.0, 7.0)),))
    assert set(walled) == {(4, 4), (5, 4), (4, 5), (4, 6), (5, 6)}


@pytest.mark.parametrize(("size", "aura_ft"), [("medium", 10), ("large", 5), ("gargantuan", 30), ("tiny", 2.5)])
def test_square_aura_is_a_rounded_rectangle(size: str, aura_ft: float) -> None:
    token = Token("t", (4, 3), size)
    x0, y0, x1, y1 = footprint_box(token, SQUARE)
    r = aura_ft / 5
    poly = aura_outline(token, SQUARE, aura_ft)
    w, h = x1 - x0, y1 - y0
    exact = w * h + 2 * r * (w + h) + math.pi * r * r
    area = shoelace(poly)
    assert area > 0  # clockwise on screen
    # Flattening at 0.5 degrees loses at most 4 * (segments of a quarter) * sliver area.
    assert exact - 2e-4 * r * r * 4 <= area <= exact + 1e-9
    for x, y in poly:  # every vertex exactly r from the box
        dx, dy = max(x0 - x, 0, x - x1), max(y0 - y, 0, y - y1)
        assert math.hypot(dx, dy) == pytest.approx(r, abs=1e-9)
    chord = 2 * r * math.sin(math.radians(0.25)) + 1e-9  # an arc step of 0.5 degree
    for a, b in zip(poly, poly[1:] + poly[:1], strict=True):  # a straight side, or an arc step no wider
        d = math.dist(a, b)
        assert d <= chord or abs(d - w) < 1e-9 or abs(d - h) < 1e-9


def test_hex_aura_steiner_area() -> None:
    token = Token("t", (4, 4), "medium")
    r = 2.0
    poly = aura_outline(token, HEX, 10)
    # A regular hexagon of flat-to-flat 1: area sqrt(3)/2, perimeter 6 S; grown by r: + perimeter r + pi r^2.
    exact = math.sqrt(3) / 2 + 6 * S * r + math.pi * r * r
    assert shoelace(poly) == pytest.approx(exact, rel=1e-4)
    cx, cy = hex_centre((4, 4))
    assert all(math.dist((x, y), (cx, cy)) <= S + r + 1e-9 for x, y in poly)
    assert all(math.dist((x, y), (cx, cy)) >= 0.5 + r - 1e-9 for x, y in poly)


def test_zero_aura_is_the_footprint_outline() -> None:
    poly = aura_outline(Token("t", (2, 2), "large"), SQUARE, 0)
    assert sorted(poly) == [(2, 2), (2, 4), (4, 2), (4, 4)]
