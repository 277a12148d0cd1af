"""Campaign travel: A* against a hand-written Dijkstra, the cost model's days, route planning and its errors.

Every expected figure is computed here, by hand or by the oracle below, from the rules in the module's docstring;
never from the code's own output.
"""

from __future__ import annotations

import heapq
import itertools
import math
import pickle
from typing import Any

import numpy as np
import pytest

from pipelines.errors import InputError
from pipelines.overlay.campaign import parse_campaign
from pipelines.overlay.campaign_travel import (
    DEFAULT_MODEL,
    TERRAIN_NAMES,
    astar,
    cost_grid,
    path_travel,
    plan_route,
    resolve_model,
)

SQRT2 = math.sqrt(2)
INF = math.inf
# The documented quantisation of astar: costs to round(100 c) (at least 1), steps 408 straight, 577 diagonal.
SCALE, STRAIGHT, DIAGONAL = 100, 408, 577
STEPS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]


# -- the oracle --------------------------------------------------------------------------------------------------


def _open(cost: np.ndarray, r: int, c: int) -> bool:
    v = cost[r, c]
    return bool(np.isfinite(v) and v > 0)


def _step_ok(cost: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> bool:
    """A step a -> b (neighbours) is allowed: b passable, and a diagonal not between two impassable cells."""
    if not _open(cost, *b):
        return False
    if a[0] != b[0] and a[1] != b[1]:
        return _open(cost, a[0], b[1]) or _open(cost, b[0], a[1])
    return True


def oracle(cost: np.ndarray, start: tuple[int, int], goal: tuple[int, int], *, quantised: bool) -> float | int | None:
    """Plain Dijkstra (heapq): a step into a cell costs its cost times 1 or sqrt 2 (``quantised``: the integer
    semantics, round(100 c) times 408 or 577). ``None`` when the goal can't be reached or an end is impassable."""
    rows, cols = cost.shape
    if not (_open(cost, *start) and _open(cost, *goal)):
        return None

    def step(a: tuple[int, int], b: tuple[int, int]) -> float | int:
        diagonal = a[0] != b[0] and a[1] != b[1]
        if quantised:
            return max(1, round(float(cost[b]) * SCALE)) * (DIAGONAL if diagonal else STRAIGHT)
        return float(cost[b]) * (SQRT2 if diagonal else 1.0)

    best: dict[tuple[int, int], float | int] = {start: 0}
    heap: list[tuple[float | int, tuple[int, int]]] = [(0, start)]
    while heap:
        d, node = heapq.heappop(heap)
        if node == goal:
            return d
        if d > best[node]:
            continue
        for dr, dc in STEPS:
            nxt = (node[0] + dr, node[1] + dc)
            if not (0 <= nxt[0] < rows and 0 <= nxt[1] < cols) or not _step_ok(cost, node, nxt):
                continue
            nd = d + step(node, nxt)
            if nd < best.get(nxt, INF):
                best[nxt] = nd
                heapq.heappush(heap, (nd, nxt))
    return None


def check_path(cost: np.ndarray, path: list[tuple[int, int]], start: tuple[int, int], goal: tuple[int, int]):
    """Asserts the path is a valid walk from start to goal; returns its float and quantised costs."""
    assert path[0] == start and path[-1] == goal
    total, quantised = 0.0, 0
    for a, b in itertools.pairwise(path):
        assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) == 1, (a, b)
        assert _step_ok(cost, a, b), (a, b)
        diagonal = a[0] != b[0] and a[1] != b[1]
        total += float(cost[b]) * (SQRT2 if diagonal else 1.0)
        quantised += max(1, round(float(cost[b]) * SCALE)) * (DIAGONAL if diagonal else STRAIGHT)
    return total, quantised


# -- astar on hand-made grids --------------------------------------------------------------------------------------


def test_open_grid_diagonal_and_straight() -> None:
    cost = np.ones((5, 5))
    path, total = astar(cost, (0, 0), (4, 4))
    assert path == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
    assert total == pytest.approx(4 * SQRT2, rel=1e-12)
    path, total = astar(np.ones((1, 6)), (0, 0), (0, 5))
    assert path == [(0, c) for c in range(6)] and total == pytest.approx(5.0)


def test_wall_with_a_gap() -> None:
    cost = np.ones((5, 5))
    cost[0:4, 2] = INF  # a wall down column 2, open only at row 4
    path, total = astar(cost, (0, 0), (0, 4))
    # Down to the gap (4, 2): 2 diagonals + 2 straight; up again the same: 4 sqrt 2 + 4.
    assert total == pytest.approx(4 * SQRT2 + 4, rel=1e-12)
    assert (4, 2) in path
    assert check_path(cost, path, (0, 0), (0, 4))[0] == pytest.approx(total, rel=1e-12)


def test_cheap_corridor_is_taken() -> None:
    cost = np.array([[1.0] * 7, [3.0] * 7])  # row 0 a road (1), row 1 rough (3)
    path, total = astar(cost, (1, 0), (1, 6))
    # Up onto the road diagonally (sqrt 2), along it 5 steps, straight down into a 3: 8 + sqrt 2. Stepping down
    # diagonally from (0, 5) costs 4 + 4 sqrt 2 (= 9.66); straight along row 1 costs 18.
    assert total == pytest.approx(8 + SQRT2, rel=1e-12)
    assert path == [(1, 0), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (1, 6)]


def test_no_squeezing_between_two_impassable_cells() -> None:
    cost = np.array([[1.0, 1.0, 1.0], [1.0, INF, 1.0], [INF, 1.0, 1.0]])
    # (1, 0) -> (2, 1) squeezes between (2, 0) and (1, 1): refused. Around: (0, 1), (1, 2), (2, 1), each step a
    # diagonal past one impassable corner, which is allowed: 3 sqrt 2.
    path, total = astar(cost, (1, 0), (2, 1))
    assert total == pytest.approx(3 * SQRT2, rel=1e-12)
    assert path == [(1, 0), (0, 1), (1, 2), (2, 1)]
    assert astar(np.array([[1.0, INF], [INF, 1.0]]), (0, 0), (1, 1)) is None


def test_unreachable_and_impassable_ends() -> None:
    cost = np.ones((7, 7))
    cost[2:5, 2:5] = INF
    cost[3, 3] = 1.0  # an island in a ring of impassable cells
    assert astar(cost, (0, 0), (3, 3)) is None
    assert astar(cost, (3, 3), (0, 0)) is None
    assert astar(cost, (0, 0), (2, 2)) is None  # the goal itself is impassable
    cost[0, 0] = 0.0  # not above 0: impassable
    assert astar(cost, (0, 0), (6, 6)) is None
    assert astar(np.ones((3, 3)), (1, 1), (1, 1)) == ([(1, 1)], 0.0)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="off the"):
        astar(np.ones((3, 3)), (0, 0), (3, 0))
    with pytest.raises(ValueError, match="at most"):
        astar(np.full((3, 3), 20000.0), (0, 0), (2, 2))


@pytest.mark.parametrize("seed", range(12))
def test_random_grids_match_the_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(8, 36, size=2)
    cost = rng.integers(100, 500, size=(rows, cols)) / 100.0  # multiples of 0.01: quantisation is exact
    cost[rng.random((rows, cols)) < (0.0, 0.28, 0.45)[seed % 3]] = INF  # none: no diagonal is ever refused
    cells = [(int(r), int(c)) for r, c in zip(*np.nonzero(np.isfinite(cost)), strict=True)]
    for _ in range(6):
        start, goal = (cells[i] for i in rng.choice(len(cells), 2, replace=False))
        expected = oracle(cost, start, goal, quantised=True)
        found = astar(cost, start, goal)
        if expected is None:
            assert found is None
            assert oracle(cost, start, goal, quantised=False) is None
            continue
        assert found is not None
        path, total = found
        exact, quantised = check_path(cost, path, start, goal)
        assert quantised == expected  # optimal for the integer semantics, exactly
        assert total == pytest.approx(exact, rel=1e-12)  # the total is the path's own float cost
        # 577/408 is sqrt 2 to 1.5e-6: the float optimum differs by no more than that (relative).
        assert total == pytest.approx(oracle(cost, start, goal, quantised=False), rel=2e-6)


def test_float_costs_are_quantised_to_hundredths() -> None:
    rng = np.random.default_rng(99)
    cost = rng.uniform(0.5, 4.0, size=(25, 25))
    cost[rng.random((25, 25)) < 0.2] = INF
    cost[0, 0] = cost[24, 24] = 1.0
    expected = oracle(cost, (0, 0), (24, 24), quantised=True)
    found = astar(cost, (0, 0), (24, 24))
    assert found is not None and expected is not None
    assert check_path(cost, found[0], (0, 0), (24, 24))[1] == expected


def test_searches_too_costly_for_32_bits_are_still_exact() -> None:
    # 59 steps of cost 10 000: 59 * 1e6 * 408 = 2.4e10, past libtcod's 32-bit distances.
    path, total = astar(np.full((1, 60), 10000.0), (0, 0), (0, 59))
    assert path == [(0, c) for c in range(60)] and total == pytest.approx(590000.0)
    rng = np.random.default_rng(5)
    cost = rng.integers(1, 100, size=(30, 30)) * 100.0
    cost[rng.random((30, 30)) < 0.2] = INF
    cost[0, 0] = cost[29, 29] = 100.0
    expected = oracle(cost, (0, 0), (29, 29), quantised=True)
    found = astar(cost, (0, 0), (29, 29))
    assert (found is None) == (expected is None)
    if found is not None:
        assert check_path(cost, found[0], (0, 0), (29, 29))[1] == expected


# -- specs ---------------------------------------------------------------------------------------------------------

WIDE = {"width": 512, "height": 64}  # 1 px cells at max_cells 512
WHOLE = [[0, 0], [512, 0], [512, 64], [0, 64]]
ROAD = [[16, 32], [496, 32]]  # 480 px: 48 miles at 0.1 mile a pixel


def spec(
    regions: list[tuple[str, list[list[float]]]] = (),  # type: ignore[assignment]
    routes: list[tuple[str, list[list[float]]]] = (),  # type: ignore[assignment]
    *,
    canvas: dict[str, int] = WIDE,
    mpp: float = 0.1,
    travel: dict[str, Any] | None = None,
):
    doc: dict[str, Any] = {
        "canvas": canvas,
        "scale": {"miles_per_pixel": mpp},
        "regions": [{"name": f"r{i}", "terrain": t, "polygon": p} for i, (t, p) in enumerate(regions)],
        "routes": [{"kind": k, "points": p} for k, p in routes],
    }
    if travel is not None:
        doc["travel"] = travel
    return parse_campaign(doc)


@pytest.mark.parametrize(("pace", "days"), [("slow", 48 / 18), ("normal", 2.0), ("fast", 1.6)])
def test_paces_on_a_plains_road(pace: str, days: float) -> None:
    s = spec(routes=[("road", ROAD)])
    for on in ("road", None):
        travel = path_travel(s, ROAD, pace=pace, mode="foot", on=on)
        assert travel.miles == pytest.approx(48.0)
        assert travel.days == pytest.approx(days, rel=1e-9)
        assert [(leg.terrain, leg.on) for leg in travel.legs] == [("plains", "road")]
    assert path_travel(s, ROAD, pace=pace, mode="mounted").days == pytest.approx(days, rel=1e-9)


@pytest.mark.parametrize(
    ("pace", "marks"),
    [("slow", [(196, 32), (376, 32)]), ("normal", [(256, 32), (496, 32)]), ("fast", [(316, 32)])],
)
def test_day_marks_on_a_straight_road(pace: str, marks: list[tuple[float, float]]) -> None:
    # 18, 24, 30 miles a day = 180, 240, 300 px from x = 16; the 2nd normal day ends at the end of the road.
    travel = path_travel(spec(routes=[("road", ROAD)]), ROAD, pace=pace, mode="foot", on="road")
    assert len(travel.day_marks) == len(marks)
    for got, want in zip(travel.day_marks, marks, strict=True):
        assert got == pytest.approx(want, abs=1e-6)


def test_day_marks_turn_a_corner() -> None:
    s = spec(canvas={"width": 512, "height": 512})
    travel = path_travel(s, [(0, 0), (300, 0), (300, 300)], pace="normal", mode="foot")
    assert travel.miles == pytest.approx(60.0) and travel.days == pytest.approx(2.5)
    assert travel.day_marks[0] == pytest.approx((240, 0), abs=1e-6)
    assert travel.day_marks[1] == pytest.approx((300, 180), abs=1e-6)


def test_difficult_terrain_off_road_doubles_the_days() -> None:
    travel = path_travel(spec([("forest", WHOLE)]), ROAD, pace="normal", mode="foot")
    assert travel.days == pytest.approx(4.0)
    assert [(leg.terrain, leg.on, leg.impassable) for leg in travel.legs] == [("forest", None, False)]
    assert travel.day_marks[0] == pytest.approx((136, 32), abs=1e-6)  # 12 miles a day: 120 px


def test_a_road_through_a_forest_is_not_difficult() -> None:
    s = spec([("forest", WHOLE)], [("road", ROAD)])
    assert path_travel(s, ROAD, pace="normal", mode="foot").days == pytest.approx(2.0)
    assert path_travel(s, ROAD, pace="normal", mode="foot", on="road").days == pytest.approx(2.0)
    s = spec([("forest", WHOLE)], [("trail", ROAD)])
    assert path_travel(s, ROAD, pace="normal", mode="foot").days == pytest.approx(3.0)  # keeps half: 1.5


def test_legs_split_where_the_terrain_changes() -> None:
    s = spec([("forest", [[256, 0], [512, 0], [512, 64], [256, 64]])])
    travel = path_travel(s, ROAD, pace="normal", mode="foot")
    assert travel.days == pytest.approx(1.0 + 2.0)
    plains, forest = travel.legs
    assert (plains.terrain, plains.miles, plains.days) == ("plains", pytest.approx(24.0), pytest.approx(1.0))
    assert (forest.terrain, forest.miles, forest.days) == ("forest", pytest.approx(24.0), pytest.approx(2.0))
    assert plains.end == pytest.approx((256, 32)) and forest.start == pytest.approx((256, 32))


def test_carts_keep_to_roads_in_difficult_terrain() -> None:
    assert path_travel(spec(), ROAD, pace="normal", mode="cart").days == pytest.approx(3.0)  # 1.5 off-road
    assert path_travel(spec(routes=[("road", ROAD)]), ROAD, pace="normal", mode="cart").days == pytest.approx(2.0)
    forest = spec([("forest", WHOLE)])
    with pytest.raises(InputError) as err:
        plan_route(forest, (16, 32), (496, 32), mode="cart")
    assert err.value.param == "from"
    # Along a given path it is measured anyway, at the worst passable multiplier (a ford, 3), and flagged.
    travel = path_travel(forest, ROAD, pace="normal", mode="cart")
    assert travel.days == pytest.approx(6.0)
    assert all(leg.impassable for leg in travel.legs)


def test_rivers_are_forded_on_land_and_sailed_by_ship() -> None:
    s = spec(routes=[("river", [[100, 0], [100, 64]])])
    across = path_travel(s, ROAD, pace="normal", mode="foot")
    ford = [leg for leg in across.legs if leg.on == "river"]
    assert len(ford) == 1 and ford[0].days == pytest.approx(3 * ford[0].miles / 24)
    along = path_travel(spec(routes=[("river", ROAD)]), ROAD, pace="normal", mode="ship", on="river")
    assert along.days == pytest.approx(1.0)  # 48 miles at 48 a day


def test_ship_over_water_and_foot_refusing_it() -> None:
    sea = spec([("water", WHOLE)])
    plan = plan_route(sea, (16, 32), (496, 32), mode="ship")
    assert plan.miles == pytest.approx(48.0) and plan.days == pytest.approx(1.0)
    assert plan.path == ((16, 32), (496, 32))
    lanes = spec([("water", WHOLE)], [("sea_lane", ROAD)])
    assert plan_route(lanes, (16, 32), (496, 32), mode="ship").days == pytest.approx(0.8)
    with pytest.raises(InputError) as err:
        plan_route(sea, (16, 32), (496, 32), mode="foot")
    assert err.value.param == "from"
    with pytest.raises(InputError) as err:
        plan_route(spec(), (16, 32), (496, 32), mode="ship")
    assert err.value.param == "from"
    strait = spec([("water", [[200, 0], [260, 0], [260, 64], [200, 64]])])
    with pytest.raises(InputError) as err:
        plan_route(strait, (16, 32), (496, 32), mode="foot")
    assert err.value.param == "to" and "no route on foot" in str(err.value)
    bridged = spec([("water", [[200, 0], [260, 0], [260, 64], [200, 64]])], [("road", [[150, 32], [300, 32]])])
    plan = plan_route(bridged, (16, 32), (496, 32), mode="foot")
    assert ("water", "road") in [(leg.terrain, leg.on) for leg in plan.legs]
    assert plan.days == pytest.approx(2.0)


def test_start_and_goal_in_one_cell() -> None:
    plan = plan_route(spec(), (100.2, 30.1), (100.7, 30.9))
    assert plan.path == ((100.2, 30.1), (100.7, 30.9))
    assert plan.miles == pytest.approx(math.dist((100.2, 30.1), (100.7, 30.9)) * 0.1)


def test_results_pickle() -> None:
    model = resolve_model({"terrain": {"forest": 3}})
    assert pickle.loads(pickle.dumps(model)) == model
    plan = plan_route(spec([("forest", WHOLE)], [("road", ROAD)]), (16, 32), (496, 32))
    assert pickle.loads(pickle.dumps(plan)) == plan


def test_endpoints_off_the_canvas() -> None:
    for start, goal, param in (((-1, 32), (496, 32), "from"), ((16, 32), (513, 32), "to")):
        with pytest.raises(InputError) as err:
            plan_route(spec(), start, goal)
        assert err.value.param == param


def test_overrides_from_the_spec() -> None:
    s = spec([("forest", WHOLE)], travel={"terrain": {"forest": 3}})
    assert path_travel(s, ROAD, pace="normal", mode="foot").days == pytest.approx(6.0)
    assert plan_route(s, (16, 32), (496, 32)).days == pytest.approx(6.0)
    s = spec(travel={"miles_per_day": {"foot": {"normal": 20}}})
    assert path_travel(s, ROAD, pace="normal", mode="foot").days == pytest.approx(2.4)
    assert path_travel(s, ROAD, pace="fast", mode="foot").days == pytest.approx(1.6)  # the rest unchanged
    s = spec([("forest", WHOLE)], [("trail", ROAD)], travel={"terrain": {"forest": 3}, "trail_keeps": 0.25})
    assert path_travel(s, ROAD, pace="normal", mode="foot").days == pytest.approx(2 * 1.5)  # 1 + 0.25 * 2
    lake = spec([("lake", WHOLE)], travel={"terrain": {"lake": 4}})  # a frozen lake: walkable, slowly
    assert path_travel(lake, ROAD, pace="normal", mode="foot").days == pytest.approx(8.0)


def test_model_overrides_are_checked() -> None:
    assert resolve_model({}) is DEFAULT_MODEL
    model = resolve_model({"terrain": {"forest": 3}, "ship": {"sea_lane": 0.5}, "road": "impassable"})
    assert model.terrain["forest"] == 3 and model.ship["sea_lane"] == 0.5 and model.road == INF
    assert model.terrain["hills"] == 2 and DEFAULT_MODEL.terrain["forest"] == 2
    for overrides, param in [
        ({"terrain": {"forest": -1}}, "travel.terrain.forest"),
        ({"terrain": {"forest": True}}, "travel.terrain.forest"),
        ({"terrain": {"bog": 2}}, "travel.terrain.bog"),
        ({"terrain": 2}, "travel.terrain"),
        ({"miles_per_day": {"foot": {"normal": 0}}}, "travel.miles_per_day.foot.normal"),
        ({"miles_per_day": {"foot": {"brisk": 20}}}, "travel.miles_per_day.foot.brisk"),
        ({"miles_per_day": {"boat": {"normal": 20}}}, "travel.miles_per_day.boat"),
        ({"ship": {"canal": 1}}, "travel.ship.canal"),
        ({"trail_keeps": 2}, "travel.trail_keeps"),
        ({"speed": 1}, "travel.speed"),
    ]:
        with pytest.raises(InputError) as err:
            resolve_model(overrides)
        assert err.value.param == param
    with pytest.raises(InputError) as err:
        path_travel(spec(travel={"road": 0}), ROAD, pace="normal", mode="foot")
    assert err.value.param == "travel.road"
    with pytest.raises(InputError) as err:
        path_travel(spec(), ROAD, pace="brisk", mode="foot")
    assert err.value.param == "pace"


# -- planning ------------------------------------------------------------------------------------------------------


def test_plan_on_a_straight_road() -> None:
    plan = plan_route(spec(routes=[("road", ROAD)]), (16, 32), (496, 32))
    assert plan.path == ((16, 32), (496, 32))
    assert plan.miles == pytest.approx(48.0) and plan.days == pytest.approx(2.0)
    assert [(leg.terrain, leg.on) for leg in plan.legs] == [("plains", "road")]
    doc = plan.to_json()
    assert doc["path"] == [[16, 32], [496, 32]] and doc["miles"] == 48.0 and doc["days"] == 2.0
    assert doc["legs"][0]["terrain"] == "plains" and doc["legs"][0]["on"] == "road"


def test_the_planner_takes_the_road_through_the_forest() -> None:
    s = spec([("forest", WHOLE)], [("road", ROAD)])
    plan = plan_route(s, (16.5, 40.5), (495.5, 40.5))
    on_road = sum(leg.miles for leg in plan.legs if leg.on == "road")
    assert on_road > 46
    # Off-road it would be 47.9 miles of forest, 3.99 days; onto the road and off again, about 2.1.
    assert plan.days < 2.2


def test_to_json_rounds() -> None:
    s = spec([("forest", [[100, 0], [333, 0], [333, 64], [100, 64]])])
    plan = plan_route(s, (16.123, 32.456), (496.789, 20.111), pace="fast")
    doc = plan.to_json()
    assert set(doc) == {"path", "miles", "days", "legs"}
    assert doc["miles"] == round(plan.miles, 2) and doc["days"] == round(plan.days, 3)
    assert doc["path"][0] == [16.12, 32.46] and doc["path"][-1] == [496.79, 20.11]
    assert sum(leg["miles"] for leg in doc["legs"]) == pytest.approx(plan.miles, abs=0.01 * len(doc["legs"]))


MAP = {
    "canvas": {"width": 800, "height": 600},
    "scale": {"miles_per_pixel": 0.25},
    "regions": [
        {"name": "Wood", "terrain": "forest", "polygon": [[150, 80], [420, 60], [460, 330], [200, 360]]},
        {"name": "Lake", "terrain": "lake", "polygon": [[480, 200], [640, 180], [660, 420], [500, 440]]},
        {"name": "Hills", "terrain": "hills", "polygon": [[300, 380], [520, 470], [430, 590], [260, 560]]},
        {"name": "Glade", "terrain": "grassland", "polygon": [[260, 150], [330, 150], [330, 220], [260, 220]]},
    ],
    "routes": [
        {"kind": "road", "points": [[20, 300], [300, 250], [470, 140], [780, 120]]},
        {"kind": "trail", "points": [[100, 560], [350, 470], [700, 520]]},
        {"kind": "river", "points": [[560, 0], [700, 300], [560, 599]]},
    ],
}


@pytest.mark.parametrize("mode", ["foot", "mounted", "cart"])
@pytest.mark.parametrize(
    ("start", "goal"),
    [((30, 310), (770, 110)), ((60, 580), (760, 560)), ((400, 20), (420, 580)), ((210, 200), (780, 590))],
)
def test_plan_agrees_with_travel_along_its_path(mode: str, start: tuple[int, int], goal: tuple[int, int]) -> None:
    s = parse_campaign(MAP)
    try:
        plan = plan_route(s, start, goal, mode=mode, pace="slow")
    except InputError as err:  # a cart can't start in the forest, nor end in the hills
        assert mode == "cart" and err.param in ("from", "to") and "by cart" in err.allowed
        return
    assert plan.path[0] == start and plan.path[-1] == goal
    travel = path_travel(s, plan.path, pace="slow", mode=mode)
    assert travel.days == pytest.approx(plan.days, rel=1e-12)
    assert travel.miles == pytest.approx(plan.miles, rel=1e-12)
    length = sum(math.dist(a, b) for a, b in itertools.pairwise(plan.path)) * 0.25
    assert plan.miles == pytest.approx(length, rel=1e-12)
    assert sum(leg.days for leg in plan.legs) == pytest.approx(plan.days, rel=1e-9)
    assert not any(leg.impassable or leg.terrain == "lake" for leg in plan.legs)
    # Never slower than walking straight there, when the straight line is passable.
    straight = path_travel(s, [start, goal], pace="slow", mode=mode)
    if not any(leg.impassable for leg in straight.legs):
        assert plan.days <= straight.days * 1.02


def test_the_planner_goes_round_a_lake() -> None:
    s = spec([("lake", [[60, 40], [140, 40], [140, 160], [60, 160]])], canvas={"width": 200, "height": 200}, mpp=1)
    plan = plan_route(s, (20, 100), (180, 100))
    round_the_corners = math.dist((20, 100), (60, 40)) + 80 + math.dist((140, 40), (180, 100))  # 224.2
    assert round_the_corners - 2 <= plan.miles <= round_the_corners * 1.09
    assert all(leg.terrain == "plains" for leg in plan.legs)
    assert plan.days == pytest.approx(plan.miles / 24, rel=1e-9)


# -- the cost grid -------------------------------------------------------------------------------------------------


def test_cost_grid_cells_and_rules() -> None:
    s = spec(
        [("forest", [[0, 0], [300, 0], [300, 64], [0, 64]]), ("hills", [[200, 0], [400, 0], [400, 64], [200, 64]])],
        [("road", [[50, 10], [50.0, 60]]), ("trail", [[100, 10], [100, 60]]), ("river", [[450, 0], [450, 64]])],
    )
    grid = cost_grid(s, "foot")
    assert grid.shape == (64, 512) and grid.cell == 1.0
    assert grid.terrain_at((5, 10)) == "forest" and grid.cost[5, 10] == 2.0
    assert grid.terrain_at((5, 250)) == "hills"  # overlapping: the later region wins
    assert grid.terrain_at((5, 350)) == "hills" and grid.terrain_at((5, 420)) == "plains"
    assert (grid.cost[30, 50], grid.on_at((30, 50))) == (1.0, "road")
    assert (grid.cost[30, 100], grid.on_at((30, 100))) == (1.5, "trail")
    assert (grid.cost[30, 450], grid.on_at((30, 450))) == (3.0, "river")
    assert grid.cost[30, 420] == 1.0 and grid.planning_cost()[30, 420] == pytest.approx(1.01)
    assert grid.planning_cost()[30, 50] == 1.0  # no premium on a road
    cart = cost_grid(s, "cart")
    assert cart.cost[5, 10] == INF and cart.cost[30, 420] == 1.5 and cart.cost[30, 50] == 1.0
    ship = cost_grid(s, "ship")
    assert ship.cost[30, 450] == 1.0 and ship.cost[30, 420] == INF and ship.on_at((30, 450)) == "river"
    coarse = cost_grid(s, "foot", max_cells=128)
    assert coarse.cell == 4.0 and coarse.shape == (16, 128)
    assert coarse.cell_of((512, 64)) == (15, 127) and coarse.center((0, 0)) == (2.0, 2.0)
    assert set(TERRAIN_NAMES[i] for i in np.unique(grid.terrain)) == {"forest", "hills", "plains"}


def test_regions_cover_the_cells_whose_centre_they_hold() -> None:
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(3)
    for _ in range(5):
        cx, cy, n = rng.uniform(150, 350), rng.uniform(150, 350), int(rng.integers(5, 30))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = rng.uniform(30, 140, n)
        ring = [[float(cx + r * math.cos(a)), float(cy + r * math.sin(a))] for a, r in zip(angles, radii, strict=True)]
        s = spec([("swamp", ring)], canvas={"width": 500, "height": 500}, mpp=1)
        grid = cost_grid(s, "foot", max_cells=125)  # 4 px cells
        ys, xs = np.mgrid[0:125, 0:125]
        centres_x, centres_y = (xs + 0.5) * 4, (ys + 0.5) * 4
        polygon = shapely.Polygon(ring)
        inside = shapely.contains_xy(polygon, centres_x, centres_y)
        near = shapely.distance(polygon.exterior, shapely.points(centres_x, centres_y)) < 1e-6
        swamp = grid.terrain == TERRAIN_NAMES.index("swamp")
        assert np.array_equal(swamp[~near], inside[~near])


@pytest.mark.parametrize(
    ("line", "max_cells"),
    [
        ([[3.3, 5.1], [207.9, 61.7], [260.2, 2.5], [511.0, 40.0]], 170),  # about 3 px cells
        ([[10, 10], [60, 60]], 512),  # 45 degrees through the cells' corners, both ways
        ([[100, 60], [150, 10]], 512),
        ([[300, 12], [330, 42], [360, 12]], 256),
    ],
)
def test_routes_mark_every_cell_their_line_crosses(line: list[list[float]], max_cells: int) -> None:
    s = spec(routes=[("road", line)])
    grid = cost_grid(s, "foot", max_cells=max_cells)
    road = (grid.routes & 1).astype(bool)
    for a, b in itertools.pairwise(line):
        for t in np.linspace(0, 1, 4001):
            x, y = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
            assert road[grid.cell_of((x, y))], (x, y)
    # 4-connected: a flood over edge neighbours from one road cell reaches them all.
    cells = {(int(r), int(c)) for r, c in zip(*np.nonzero(road), strict=True)}
    seen, todo = set(), [next(iter(cells))]
    while todo:
        r, c = todo.pop()
        if (r, c) in seen or (r, c) not in cells:
            continue
        seen.add((r, c))
        todo += [(r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)]
    assert seen == cells


def test_an_impassable_polyline_is_measured_not_refused() -> None:
    strait = spec([("water", [[200, 0], [260, 0], [260, 64], [200, 64]])])
    travel = path_travel(strait, ROAD, pace="normal", mode="foot")
    wet = [leg for leg in travel.legs if leg.impassable]
    assert len(wet) == 1 and wet[0].terrain == "water" and wet[0].miles == pytest.approx(6.0)
    assert travel.days == pytest.approx((42 + 6 * 3) / 24)  # the worst passable multiplier on foot: a ford, 3


def test_a_port_on_the_shore_embarks_on_the_nearest_water_and_a_town_far_inland_does_not() -> None:
    """By ship from a port drawn 3 px inland of the coast (x = 100): the route starts at the port, steps onto the
    water beside it and sails west; 82 px of open water at 1 mi/px by ship at the normal pace (48 mi/day)."""
    doc = {
        "canvas": {"width": 200, "height": 100},
        "scale": {"miles_per_pixel": 1.0},
        "regions": [{"name": "Sea", "terrain": "water", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]]}],
    }
    s = parse_campaign(doc)
    plan = plan_route(s, (103, 50.5), (18.5, 50.5), mode="ship")
    assert plan.path[0] == pytest.approx((103, 50.5)) and plan.path[-1] == pytest.approx((18.5, 50.5))
    assert all(x <= 103 for x, _ in plan.path)
    assert plan.miles == pytest.approx(84.5, abs=0.01)  # the straight line: embarking is on the way
    water_days = (99.5 - 18.5) / 48
    assert water_days <= plan.days <= water_days + 4 * 1.5  # plus at most the embarking piece, at the worst rate
    with pytest.raises(InputError) as inland:
        plan_route(s, (180, 50), (18.5, 50.5), mode="ship")  # 80 px from the water: not a port
    assert inland.value.param == "from"
