"""Paths and movement against hand-worked rules cases (TTRPG_RULES 2.5) and a brute-force Bellman-Ford over
(cell, diagonal parity) states written here, with its own exact wall-crossing test."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from pipelines.errors import InputError
from pipelines.overlay.grid import GridGeometry
from pipelines.overlay.paths import Obstacles, measure_path, movement, obstacles, step_blocked
from pipelines.overlay.spec import (
    Area,
    Feature,
    Grid,
    MovementQuery,
    OverlaySpec,
    PathSpec,
    Portal,
    Terrain,
    Token,
)

RULES = ["5-5-5", "5-10-5", "10-5-10", "manhattan", "exact"]
SQRT2 = math.sqrt(2)


# -- the oracle ---------------------------------------------------------------------------------------------------


def crosses(p, q, a, b) -> bool:
    """Exact closed-segment intersection by solving p + t (q - p) = a + u (b - a) in fractions."""
    p, q, a, b = ([Fraction(v) for v in pt] for pt in (p, q, a, b))
    r = (q[0] - p[0], q[1] - p[1])
    s = (b[0] - a[0], b[1] - a[1])
    denom = r[0] * s[1] - r[1] * s[0]
    ap = (a[0] - p[0], a[1] - p[1])
    if denom == 0:
        if ap[0] * r[1] - ap[1] * r[0] != 0:
            return False  # parallel, apart
        rr = r[0] * r[0] + r[1] * r[1]
        t0 = (ap[0] * r[0] + ap[1] * r[1]) / rr
        t1 = t0 + (s[0] * r[0] + s[1] * r[1]) / rr
        return max(t0, t1) >= 0 and min(t0, t1) <= 1
    t = (ap[0] * s[1] - ap[1] * s[0]) / denom
    u = (ap[0] * r[1] - ap[1] * r[0]) / denom
    return 0 <= t <= 1 and 0 <= u <= 1


def step_cost(rule: str, diagonal: bool, parity: int, difficult: bool) -> tuple[float, int]:
    m = 2 if difficult else 1
    if not diagonal:
        return m, parity
    if rule == "5-10-5":
        return m * (1, 2)[parity], parity ^ 1
    if rule == "10-5-10":
        return m * (2, 1)[parity], parity ^ 1
    return m * {"5-5-5": 1, "manhattan": 2, "exact": SQRT2}[rule], parity


class Oracle:
    """Bellman-Ford over every (cell, parity) state of a small square map."""

    def __init__(self, cols: int, rows: int, blocked=(), difficult=(), walls=()) -> None:
        self.cols, self.rows = cols, rows
        self.blocked, self.difficult, self.walls = set(blocked), set(difficult), list(walls)
        self.edges = []
        for c, r in itertools.product(range(cols), range(rows)):
            for dc, dr in itertools.product((-1, 0, 1), repeat=2):
                b = (c + dc, r + dr)
                if (dc, dr) != (0, 0) and 0 <= b[0] < cols and 0 <= b[1] < rows and self._allowed((c, r), b):
                    self.edges.append(((c, r), b, dc != 0 and dr != 0))
        self.edge_set = {(a, b) for a, b, _ in self.edges}

    def _allowed(self, a, b) -> bool:
        if b in self.blocked:
            return False
        pa, pb = (a[0] + 0.5, a[1] + 0.5), (b[0] + 0.5, b[1] + 0.5)
        return not any(crosses(pa, pb, w0, w1) for w0, w1 in self.walls)

    def allowed(self, a, b) -> bool:
        return (a, b) in self.edge_set

    def run(self, rule: str, start: dict) -> dict:
        edges = self.edges
        dist = dict(start)
        changed = True
        while changed:
            changed = False
            for a, b, diagonal in edges:
                for p in (0, 1):
                    if (a, p) not in dist:
                        continue
                    cost, q = step_cost(rule, diagonal, p, b in self.difficult)
                    if dist[(a, p)] + cost < dist.get((b, q), math.inf) - 1e-12:
                        dist[(b, q)] = dist[(a, p)] + cost
                        changed = True
        return dist

    def path_cost(self, rule: str, waypoints) -> float:
        states = {(waypoints[0], 0): 0.0}
        for w in waypoints[1:]:
            dist = self.run(rule, states)
            states = {(w, p): dist[(w, p)] for p in (0, 1) if (w, p) in dist}
            if not states:
                return math.inf
        return min(states.values())


def replay(rule: str, cells, difficult) -> list[float]:
    """Each step's cost along a cell sequence, counting diagonals from the start."""
    out, parity = [], 0
    for a, b in itertools.pairwise(cells):
        assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) == 1
        cost, parity = step_cost(rule, a[0] != b[0] and a[1] != b[1], parity, b in difficult)
        out.append(cost)
    return out


def setup(cols=10, rows=8, rule="5-5-5", blocked=(), difficult=(), walls=(), tokens=()):
    grid = Grid(cols=cols, rows=rows, diagonals=rule, blocked=frozenset(blocked), difficult=frozenset(difficult))
    terrain = Terrain(walls=tuple(tuple(w) for w in walls))
    spec = OverlaySpec(grid=grid, tokens=tuple(tokens), terrain=terrain)
    geo = GridGeometry(grid)
    return spec, geo, obstacles(spec, geo)


def path(waypoints, rule=None, token=None) -> PathSpec:
    return PathSpec("p", tuple(waypoints), token=token, diagonals=rule)


# -- hand-worked rules cases --------------------------------------------------------------------------------------


DMG = [(0, 0), (1, 1), (4, 1), (5, 2)]  # 1 diagonal, 3 straight, 1 diagonal


@pytest.mark.parametrize(
    ("rule", "feet"),
    [
        ("5-10-5", 30.0),  # DMG p. 252: 5 + 15 + 10, the count continuing across the straight moves
        ("10-5-10", 30.0),  # 10 + 15 + 5
        ("5-5-5", 25.0),
        ("manhattan", 35.0),  # 10 + 15 + 10
        ("exact", 5 * (3 + 2 * SQRT2)),
    ],
)
def test_dmg_example_across_waypoints(rule: str, feet: float) -> None:
    spec, geo, obs = setup(rule=rule)
    got = measure_path(path(DMG), spec, geo, obs)
    assert got.cost_ft == pytest.approx(feet, abs=1e-6)
    assert [got.cells[i] for i in got.waypoint_indexes] == DMG
    assert sum(got.step_costs_ft) == pytest.approx(got.cost_ft, abs=1e-5)


def test_diagonal_count_is_not_reset_by_a_waypoint() -> None:
    spec, geo, obs = setup(rule="5-10-5")
    assert measure_path(path([(0, 0), (1, 1), (2, 2)]), spec, geo, obs).cost_ft == 15.0
    assert measure_path(path([(0, 0), (1, 1), (2, 2), (3, 3)]), spec, geo, obs).cost_ft == 20.0


def test_path_rule_overrides_the_grid() -> None:
    spec, geo, obs = setup(rule="5-5-5")
    assert measure_path(path([(0, 0), (2, 2)], rule="manhattan"), spec, geo, obs).cost_ft == 20.0


def test_tie_rules_fewer_diagonals_then_lexicographic() -> None:
    spec, geo, obs = setup(rule="5-5-5")
    # (0,0)->(2,0): straight-straight beats the equally cheap diagonal-diagonal.
    assert measure_path(path([(0, 0), (2, 0)]), spec, geo, obs).cells == ((0, 0), (1, 0), (2, 0))
    # (0,0)->(1,2): one diagonal either way; (0, 1) comes before (1, 1).
    assert measure_path(path([(0, 0), (1, 2)]), spec, geo, obs).cells == ((0, 0), (0, 1), (1, 2))


def test_difficult_doubles_the_step_into_it() -> None:
    spec, geo, obs = setup(rule="5-5-5", difficult=[(1, 0)], blocked=[(1, 1)])
    got = measure_path(path([(0, 0), (1, 0)]), spec, geo, obs)
    assert got.step_costs_ft == (10.0,)
    # Going round it is cheaper when the cell is not the goal: (0,0)->(2,0) via (1,1) is blocked, so via (1,0): 15.
    assert measure_path(path([(0, 0), (2, 0)]), spec, geo, obs).cost_ft == 15.0


def test_single_waypoint_and_repeats() -> None:
    spec, geo, obs = setup()
    one = measure_path(path([(3, 3)]), spec, geo, obs)
    assert one.cells == ((3, 3),) and one.cost_ft == 0 and one.step_costs_ft == ()
    rep = measure_path(path([(0, 0), (0, 0), (2, 0)]), spec, geo, obs)
    assert rep.cells == ((0, 0), (1, 0), (2, 0)) and rep.waypoint_indexes == (0, 0, 2)


def test_path_from_a_token() -> None:
    tokens = [Token("a", (2, 2), "large")]
    spec, geo, obs = setup(tokens=tokens)
    from_token = measure_path(path([(6, 2)], token="a"), spec, geo, obs)
    assert from_token.cells[0] == (2, 2) and from_token.cost_ft == 20.0 and from_token.waypoint_indexes == (4,)
    inside = measure_path(path([(3, 3), (6, 3)], token="a"), spec, geo, obs)
    assert inside.cells[0] == (3, 3) and inside.cost_ft == 15.0


# -- blocking ---------------------------------------------------------------------------------------------------------


def test_step_blocked_hand_cases() -> None:
    _, geo, _ = setup()
    wall = Obstacles(walls=(((5.0, 0.0), (5.0, 5.0)),))
    assert step_blocked((4, 4), (5, 4), geo, wall)  # straight through the wall
    assert step_blocked((4, 4), (5, 5), geo, wall)  # through its endpoint exactly: counts as crossing
    assert not step_blocked((4, 5), (5, 6), geo, wall)  # past its end
    assert not step_blocked((4, 4), (4, 5), geo, wall)  # along it
    squeeze = Obstacles(blocked=frozenset({(1, 0), (0, 1)}))
    assert not step_blocked((0, 0), (1, 1), geo, squeeze)  # between two blocked cells: allowed
    assert step_blocked((0, 0), (1, 0), geo, squeeze)
    diagonal_wall = Obstacles(walls=(((1.0, 0.0), (0.0, 1.0)),))
    assert step_blocked((0, 0), (1, 1), geo, diagonal_wall)
    assert not step_blocked((1, 0), (1, 1), geo, diagonal_wall)


def test_squeezing_diagonal_path() -> None:
    spec, geo, obs = setup(blocked=[(1, 0), (0, 1)])
    got = measure_path(path([(0, 0), (1, 1)]), spec, geo, obs)
    assert got.cells == ((0, 0), (1, 1)) and got.cost_ft == 5.0


def test_obstacles_from_terrain() -> None:
    grid = Grid(cols=8, rows=6)
    terrain = Terrain(
        walls=(((0.0, 3.0), (2.0, 3.0), (2.0, 5.0)),),
        doors=(Portal((4.0, 0.0), (4.0, 1.0), closed=True), Portal((5.0, 0.0), (5.0, 1.0), closed=False)),
        windows=(Portal((6.0, 0.0), (6.0, 1.0), closed=False),),
        areas=(
            Area("water", polygon=((0.0, 0.0), (2.0, 0.0), (2.0, 2.0))),  # triangle: centres on/under the diagonal
            Area("pit", cells=frozenset({(7, 5)})),
            Area("floor", cells=frozenset({(3, 3)})),
            Area("mud", cells=frozenset({(6, 4)})),
        ),
        features=(Feature("tree", (3, 5)), Feature("chest", (4, 5)), Feature("statue", (5, 5), blocks_sight=False)),
    )
    spec = OverlaySpec(grid=grid, terrain=terrain)
    geo = GridGeometry(grid)
    obs = obstacles(spec, geo, extra_difficult={(0, 5)})
    assert obs.blocked == {(7, 5), (3, 5)}
    # Centres (0.5, 0.5) on the hypotenuse y = x (inside), (1.5, 0.5), (1.5, 1.5) on it; (0.5, 1.5) below it.
    assert obs.difficult == {(0, 0), (1, 0), (1, 1), (6, 4), (0, 5)}
    assert len(obs.walls) == 2 + 1 + 1  # two wall segments, the closed door, the window (not the open door)
    assert step_blocked((3, 0), (4, 0), geo, obs)  # closed door
    assert not step_blocked((4, 0), (5, 0), geo, obs)  # open door
    assert step_blocked((5, 0), (6, 0), geo, obs)  # window


def test_blocked_or_unreachable_waypoint_is_a_422() -> None:
    spec, geo, obs = setup(blocked=[(3, 3)])
    with pytest.raises(InputError) as err:
        measure_path(path([(0, 0), (3, 3)]), spec, geo, obs, "paths[2]")
    assert err.value.param == "paths[2].waypoints[1]"
    # A room walled off completely: x = 5 from top to bottom.
    spec, geo, obs = setup(walls=[[(5.0, 0.0), (5.0, 8.0)]])
    with pytest.raises(InputError) as err:
        measure_path(path([(0, 0), (1, 1), (7, 1)]), spec, geo, obs, "paths[0]")
    assert err.value.param == "paths[0].waypoints[2]"


@pytest.mark.parametrize("rule", [*RULES, "euclidean"])
@pytest.mark.parametrize("start_parities", [(0,), (1,), (0, 1)])
def test_search_heuristic_is_a_consistent_lower_bound(rule: str, start_parities: tuple[int, ...]) -> None:
    """The path search's A* bound never overestimates and never drops by more than a step costs."""
    from pipelines.overlay.paths import _Graph, _heuristic

    _, geo, obs = setup(9, 9, rule, difficult=[(2, 2)])
    start = (4, 4)
    h = _heuristic(_Graph(geo, obs), rule, start, start_parities)
    oracle = Oracle(9, 9)
    truth = oracle.run("exact" if rule == "euclidean" else rule, {(start, p): 0.0 for p in start_parities})
    for (a, b, diagonal), p in itertools.product(oracle.edges, (0, 1)):
        cost, q = step_cost("exact" if rule == "euclidean" else rule, diagonal, p, False)
        ha, hb = h(a, p)
        ya, yb = h(b, q)
        assert ya + yb * SQRT2 <= ha + hb * SQRT2 + cost + 1e-9
        if (a, p) in truth:
            assert ha + hb * SQRT2 <= truth[(a, p)] + 1e-9
    for p in start_parities:
        assert h(start, p) == (0, 0)


# -- random maps against the oracle -----------------------------------------------------------------------------------


def random_map(seed: int, cols: int = 8, rows: int = 6):
    rng = random.Random(seed)
    cells = list(itertools.product(range(cols), range(rows)))
    blocked = set(rng.sample(cells, 6))
    difficult = set(rng.sample(cells, 10)) - blocked
    walls = []
    for _ in range(3):  # axis-aligned walls on grid lines, and one diagonal
        if rng.random() < 0.5:
            x, y = rng.randint(1, cols - 1), rng.randint(0, rows - 2)
            walls.append([(float(x), float(y)), (float(x), float(y + rng.randint(1, 2)))])
        else:
            x, y = rng.randint(0, cols - 2), rng.randint(1, rows - 1)
            walls.append([(float(x), float(y)), (float(x + rng.randint(1, 2)), float(y))])
    walls.append([(2.0, 1.0), (3.0, 2.0)])
    free = [c for c in cells if c not in blocked]
    return blocked, difficult, walls, free, rng


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("seed", range(10))
def test_paths_match_the_oracle(rule: str, seed: int) -> None:
    blocked, difficult, walls, free, rng = random_map(seed)
    spec, geo, obs = setup(8, 6, rule, blocked, difficult, walls)
    oracle = Oracle(8, 6, blocked, difficult, [tuple(w) for w in walls])
    for _ in range(3):
        waypoints = rng.sample(free, rng.randint(2, 4))
        expected = oracle.path_cost(rule, waypoints)
        if math.isinf(expected):
            with pytest.raises(InputError):
                measure_path(path(waypoints), spec, geo, obs)
            continue
        got = measure_path(path(waypoints), spec, geo, obs)
        assert got.cost_ft == pytest.approx(5 * expected, abs=1e-6)
        for a, b in itertools.pairwise(got.cells):
            assert oracle.allowed(a, b)
        assert got.step_costs_ft == pytest.approx([5 * c for c in replay(rule, got.cells, difficult)], abs=1e-6)
        assert [got.cells[i] for i in got.waypoint_indexes] == waypoints


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize(
    ("seed", "size", "speed", "dash"),
    [(0, "medium", 30, False), (1, "large", 20, True), (2, "medium", 25, True), (3, "tiny", 15, False)],
)
def test_movement_matches_the_oracle(rule: str, seed: int, size: str, speed: float, dash: bool) -> None:
    blocked, difficult, walls, free, rng = random_map(seed, 9, 7)
    anchor = rng.choice([c for c in free if c[0] < 8 and c[1] < 6])
    token = Token("t", anchor, size)
    spec, geo, obs = setup(9, 7, rule, blocked, difficult, walls, [token])
    query = MovementQuery("m", "t", speed, dash=dash)
    got = movement(query, spec, geo, obs, "movement[0]")
    side = 2 if size == "large" else 1
    own = {(anchor[0] + i, anchor[1] + j) for i in range(side) for j in range(side)}
    oracle = Oracle(9, 7, blocked, difficult, [tuple(w) for w in walls])
    dist = oracle.run(rule, {(c, 0): 0.0 for c in own})
    limit = speed / 5 * (2 if dash else 1)
    expected = {}
    for (cell, _), cost in dist.items():
        if cell not in own and cost <= limit + 1e-9:
            expected[cell] = min(cost, expected.get(cell, math.inf))
    assert {c for c, _ in got.reachable} == set(expected)
    for cell, feet in got.reachable:
        assert feet == pytest.approx(5 * expected[cell], abs=1e-6)
    assert [c for c, _ in got.reachable] == sorted(expected, key=lambda c: (c[1], c[0]))
    assert got.speed_ft == speed and got.dash == dash


def test_movement_query_difficult_and_walls() -> None:
    token = Token("t", (1, 1))
    spec, geo, obs = setup(10, 8, "5-5-5", walls=[[(3.0, 0.0), (3.0, 8.0)]], tokens=[token])
    got = dict(movement(MovementQuery("m", "t", 30, difficult=frozenset({(2, 1)})), spec, geo, obs).reachable)
    assert max(c for c, _ in got) == 2  # nothing past the wall at x = 3
    assert got[(2, 1)] == 10.0 and got[(2, 2)] == 5.0
    assert (1, 1) not in got


def test_movement_speed_zero_and_unknown_token() -> None:
    spec, geo, obs = setup(tokens=[Token("t", (1, 1))])
    assert movement(MovementQuery("m", "t", 0), spec, geo, obs).reachable == ()
    with pytest.raises(InputError) as err:
        movement(MovementQuery("m", "nobody", 30), spec, geo, obs, "movement[3]")
    assert err.value.param == "movement[3].token"


def test_a_60_ft_move_on_an_open_5_5_5_grid_reaches_the_25_by_25_square() -> None:
    # Its speed is measured in load_tests/bench_overlay.py (movement_ms), not asserted here.
    spec, geo, obs = setup(40, 30, "5-5-5", tokens=[Token("t", (20, 15))])
    got = movement(MovementQuery("m", "t", 60), spec, geo, obs)
    assert len(got.reachable) == 25 * 25 - 1


# -- euclidean --------------------------------------------------------------------------------------------------------


def test_euclidean_hand_cases() -> None:
    spec, geo, obs = setup(rule="euclidean")
    assert measure_path(path([(2, 2), (6, 3)]), spec, geo, obs).cost_ft == pytest.approx(5 * math.sqrt(17), abs=1e-6)
    # One difficult cell on the only octile-shortest path of a straight leg: 3 * (1 + 1/3) cells.
    spec, geo, obs = setup(rule="euclidean", difficult=[(1, 0)])
    got = measure_path(path([(0, 0), (3, 0)]), spec, geo, obs)
    assert got.cost_ft == 20.0 and got.step_costs_ft == (10.0, 5.0, 5.0)
    # Two octile-shortest paths to (2, 1); the one avoiding the difficult cell is taken: sqrt 5.
    got = measure_path(path([(0, 0), (2, 1)]), spec, geo, obs)
    assert got.cells == ((0, 0), (1, 1), (2, 1)) and got.cost_ft == pytest.approx(5 * math.sqrt(5), abs=1e-6)
    # A detour is measured as exact (octile): round the blocked cell, 2 sqrt 2.
    spec, geo, obs = setup(rule="euclidean", blocked=[(1, 0)])
    got = measure_path(path([(0, 0), (2, 0)]), spec, geo, obs)
    assert got.cells == ((0, 0), (1, 1), (2, 0)) and got.cost_ft == pytest.approx(10 * SQRT2, abs=1e-6)


def euclid_leg(oracle: Oracle, f, t) -> float:
    """The euclidean leg cost by the rules text: a monotone-path DP for the fewest difficult cells."""
    dx, dy = t[0] - f[0], t[1] - f[1]
    big, small = max(abs(dx), abs(dy)), min(abs(dx), abs(dy))
    if big == 0:
        return 0.0
    sx, sy = (dx > 0) - (dx < 0), (dy > 0) - (dy < 0)
    straight = (sx, 0) if abs(dx) >= abs(dy) else (0, sy)
    diag = (sx, sy)
    memo: dict = {}

    def cell(i, j):
        return f[0] + i * straight[0] + j * diag[0], f[1] + i * straight[1] + j * diag[1]

    def best(i, j) -> float:
        if (i, j) == (0, 0):
            return 0
        if (i, j) not in memo:
            here, options = cell(i, j), []
            if i and oracle.allowed(cell(i - 1, j), here):
                options.append(best(i - 1, j))
            if j and oracle.allowed(cell(i, j - 1), here):
                options.append(best(i, j - 1))
            memo[(i, j)] = min(options, default=math.inf) + (here in oracle.difficult)
        return memo[(i, j)]

    k = best(big - small, small)
    if math.isinf(k):
        dist = oracle.run("exact", {(f, 0): 0.0})
        return dist.get((t, 0), math.inf)
    return math.hypot(dx, dy) * (1 + k / big)


@pytest.mark.parametrize("seed", range(4))
def test_euclidean_movement_and_paths_match_the_rules(seed: int) -> None:
    blocked, difficult, walls, free, rng = random_map(seed, 8, 6)
    anchor = rng.choice([c for c in free if c[0] < 7 and c[1] < 5])
    size = "large" if seed % 2 else "medium"
    token = Token("t", anchor, size)
    spec, geo, obs = setup(8, 6, "euclidean", blocked, difficult, walls, [token])
    oracle = Oracle(8, 6, blocked, difficult, [tuple(w) for w in walls])
    side = 2 if size == "large" else 1
    own = [(anchor[0] + i, anchor[1] + j) for i in range(side) for j in range(side)]
    got = dict(movement(MovementQuery("m", "t", 20), spec, geo, obs).reachable)
    expected = {}
    for cell in itertools.product(range(8), range(6)):
        if cell in own or cell in blocked:
            continue
        cost = min(euclid_leg(oracle, f, cell) for f in own)
        if cost <= 4 + 1e-9:
            expected[cell] = cost
    assert set(got) == set(expected)
    for cell, feet in got.items():
        assert feet == pytest.approx(5 * expected[cell], abs=1e-6)
    for _ in range(4):
        a, b = rng.sample(free, 2)
        cost = euclid_leg(oracle, a, b)
        if math.isinf(cost):
            continue
        measured = measure_path(path([a, b]), spec, geo, obs)
        assert measured.cost_ft == pytest.approx(5 * cost, abs=1e-6)
        for u, v in itertools.pairwise(measured.cells):
            assert oracle.allowed(u, v)


# -- hex ---------------------------------------------------------------------------------------------------------


def hex_setup(orientation: str, offset: str, difficult=(), blocked=()):
    grid = Grid(
        type="hex",
        cols=7,
        rows=6,
        orientation=orientation,
        offset=offset,
        diagonals="5-10-5",
        difficult=frozenset(difficult),
        blocked=frozenset(blocked),
    )
    spec = OverlaySpec(grid=grid, tokens=(Token("t", (3, 2)),))
    geo = GridGeometry(grid)
    return spec, geo, obstacles(spec, geo)


def hex_oracle(geo: GridGeometry, start, difficult=(), blocked=()) -> dict:
    """Bellman-Ford over hexes adjacent by unit centre distance."""
    cells = list(geo.cells())
    centre = {c: geo.cell_center(c) for c in cells}
    adjacent = [(a, b) for a in cells for b in cells if abs(math.dist(centre[a], centre[b]) - 1) < 1e-9]
    dist = {start: 0.0}
    changed = True
    while changed:
        changed = False
        for a, b in adjacent:
            if a in dist and b not in blocked:
                cost = dist[a] + (2 if b in difficult else 1)
                if cost < dist.get(b, math.inf):
                    dist[b], changed = cost, True
    return dist


@pytest.mark.parametrize(
    ("orientation", "offset"), [("pointy", "odd-r"), ("pointy", "even-r"), ("flat", "odd-q"), ("flat", "even-q")]
)
def test_hex_paths_and_movement(orientation: str, offset: str) -> None:
    difficult, blocked = {(4, 2), (4, 3), (2, 1)}, {(3, 3), (5, 1)}
    spec, geo, obs = hex_setup(orientation, offset, difficult, blocked)
    dist = hex_oracle(geo, (3, 2), difficult, blocked)
    got = dict(movement(MovementQuery("m", "t", 15), spec, geo, obs).reachable)
    assert got == {c: 5 * d for c, d in dist.items() if 0 < d <= 3}
    for target in [(0, 0), (6, 5), (5, 3), (1, 4)]:
        measured = measure_path(path([(3, 2), target]), spec, geo, obs)
        assert measured.cost_ft == 5 * dist[target]  # the grid's diagonal rule is ignored on hex grids
        for a, b in itertools.pairwise(measured.cells):
            assert abs(math.dist(geo.cell_center(a), geo.cell_center(b)) - 1) < 1e-9
