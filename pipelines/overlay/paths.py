"""Paths through waypoints and movement ranges on a grid with walls, blocked and difficult cells (TTRPG_RULES 2.5).

**Step costs** (in cells; feet = cells x ``feet_per_cell``). A straight step costs 1. The k-th diagonal step of a
path (k counts across waypoints; straight steps in between do not reset it) costs, by rule: ``5-5-5`` 1;
``5-10-5`` 1 if k is odd, else 2; ``10-5-10`` 2 if k is odd, else 1; ``manhattan`` 2; ``exact`` sqrt 2. Entering a
difficult cell doubles that step's cost. Hex grids ignore the rule: every step costs 1 (doubled into difficult
hexes). Searches run over (cell, parity of the diagonals so far) states, so the alternating rules are exact.

**Euclidean** (``euclidean``, square grids). A leg (waypoint to waypoint) costs the straight-line distance ``E``
between the two cells' centres, measured along its grid path: the octile-shortest paths (only the two step kinds
of the leg's octant, ``M = max(|dx|, |dy|)`` steps); among them the one entering the fewest difficult cells; each
step costs ``E / M``, doubled into a difficult cell, so the leg costs ``E (1 + k / M)`` for ``k`` difficult steps.
A leg with no unobstructed octile-shortest path (it must detour) is measured under ``exact`` instead (octile, with
doubling). Movement under ``euclidean`` answers, per cell, the cheapest such leg from any footprint cell.

**Blocking.** A step from ``a`` to ``b`` is blocked when ``b`` is blocked (``grid.blocked``, terrain areas whose
kind is ``blocked`` in :data:`~.spec.AREA_EFFECTS`, blocking features) or when the segment between the two cells'
centres touches a wall segment, a closed door or a window (open doors do not block). Only that segment decides: a
segment through a wall's endpoint counts as crossing, and a diagonal step squeezing between two blocked cells (or
past a wall's end) is allowed when its segment touches no wall. Leaving a blocked cell is allowed (a token may stand
on one). Area polygons cover the cells whose centre lies inside or on them (1e-9 grid units).

**Paths** (:func:`measure_path`). Waypoints are joined by cheapest grid paths; over the whole path the parity
carried into each leg is chosen so the total is cheapest (ties: earlier legs cheaper, comparing the legs' costs in
order; then fewer diagonals; then parity 0). Within a leg the drawn cells are the cheapest path, ties broken by
fewer diagonals, then the lexicographically smallest sequence of ``(col, row)`` cells (for ``euclidean``: fewest
difficult steps, then the smallest sequence). A path with a ``token`` starts at the token's cell unless its first
waypoint is in the token's footprint. Consecutive equal waypoints are one. ``waypoint_indexes`` gives, for each of
the spec's waypoints, its index in ``cells``.

**Movement** (:func:`movement`). Every footprint cell is a start (cost 0, parity 0, left out of the answer); the
answer is every cell whose cheapest cost is at most the speed (twice it with ``dash``) plus 1e-9, with costs in feet
rounded to 1e-6, sorted by row, then column.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from pipelines.errors import InputError
from pipelines.overlay.grid import HEX_DIRECTIONS, SQUARE_DIRECTIONS, GridGeometry, hex_distance, segments_touch
from pipelines.overlay.spec import (
    AREA_EFFECTS,
    Cell,
    Grid,
    MovementGeometry,
    MovementQuery,
    OverlaySpec,
    PathGeometry,
    PathSpec,
    Point,
)
from pipelines.overlay.tokens import footprint

__all__ = ["Obstacles", "measure_path", "movement", "obstacles", "step_blocked"]

Segment = tuple[Point, Point]
State = tuple[Cell, int]
_SQRT2 = math.sqrt(2.0)
_EPS = 1e-9
_ALTERNATING = ("5-10-5", "10-5-10")


@dataclass(frozen=True)
class Obstacles:
    """What stops or slows movement.

    Attributes:
        blocked: Cells nothing enters.
        difficult: Cells whose entry costs double.
        walls: Segments (grid units) no step's centre-to-centre segment may touch.
    """

    blocked: frozenset[Cell] = frozenset()
    difficult: frozenset[Cell] = frozenset()
    walls: tuple[Segment, ...] = ()


# -- building obstacles -------------------------------------------------------------------------------------------


def _centres_in_polygon(geo: GridGeometry, polygon: tuple[Point, ...]) -> set[Cell]:
    """The cells whose centre lies inside or on ``polygon`` (even-odd rule; on an edge within 1e-9 counts in)."""
    cells = list(geo.cells())
    centres = np.array([geo.cell_center(c) for c in cells], dtype=float)
    x, y = centres[:, 0], centres[:, 1]
    inside = np.zeros(len(cells), dtype=bool)
    on_edge = np.zeros(len(cells), dtype=bool)
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xcross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < xcross)
        dx, dy = x2 - x1, y2 - y1
        length2 = dx * dx + dy * dy
        t = np.clip(((x - x1) * dx + (y - y1) * dy) / length2, 0.0, 1.0) if length2 > 0 else np.zeros_like(x)
        on_edge |= np.hypot(x - (x1 + t * dx), y - (y1 + t * dy)) <= _EPS
    return {cell for cell, keep in zip(cells, inside | on_edge, strict=True) if keep}


def obstacles(spec: OverlaySpec, geo: GridGeometry, extra_difficult: Iterable[Cell] = frozenset()) -> Obstacles:
    """The spec's obstacles: the grid's cells, the terrain's areas, blocking features, walls, doors and windows.

    Args:
        spec: The overlay spec (already checked).
        geo: Its grid.
        extra_difficult: More difficult cells (a movement query's own).

    Returns:
        The obstacles (module docstring for what each part means).
    """
    blocked = set(spec.grid.blocked)
    difficult = set(spec.grid.difficult) | set(extra_difficult)
    for area in spec.terrain.areas:
        effect = AREA_EFFECTS.get(area.kind)
        if effect is None:
            continue
        cells = set(area.cells)
        if len(area.polygon) >= 3:
            cells |= _centres_in_polygon(geo, area.polygon)
        (blocked if effect == "blocked" else difficult).update(cells)
    blocked.update(f.cell for f in spec.terrain.features if f.blocks)
    walls: list[Segment] = []
    for line in spec.terrain.walls:
        walls.extend((line[i], line[i + 1]) for i in range(len(line) - 1))
    walls.extend((d.a, d.b) for d in spec.terrain.doors if d.closed)
    walls.extend((w.a, w.b) for w in spec.terrain.windows)
    return Obstacles(frozenset(blocked), frozenset(difficult), tuple(walls))


def step_blocked(a: Cell, b: Cell, geo: GridGeometry, obstacles: Obstacles) -> bool:
    """Whether the step from ``a`` to ``b`` is blocked: ``b`` is blocked or the centres' segment touches a wall."""
    if b in obstacles.blocked:
        return True
    pa, pb = geo.cell_center(a), geo.cell_center(b)
    return any(segments_touch(pa, pb, w0, w1) for w0, w1 in obstacles.walls)


@functools.lru_cache(maxsize=32)
def _wall_steps(grid: Grid, walls: tuple[Segment, ...]) -> frozenset[tuple[Cell, Cell]]:
    """Every (from, to) neighbour step whose centre-to-centre segment touches a wall (both directions)."""
    if not walls:
        return frozenset()
    geo = GridGeometry(grid)
    cells = list(geo.cells())
    centres = np.array([geo.cell_center(c) for c in cells], dtype=float)
    reach = 1.5  # longer than any step (square diagonal sqrt 2, hex 1)
    out: set[tuple[Cell, Cell]] = set()
    for w0, w1 in walls:
        near = (
            (centres[:, 0] >= min(w0[0], w1[0]) - reach)
            & (centres[:, 0] <= max(w0[0], w1[0]) + reach)
            & (centres[:, 1] >= min(w0[1], w1[1]) - reach)
            & (centres[:, 1] <= max(w0[1], w1[1]) + reach)
        )
        for k in np.nonzero(near)[0]:
            a = cells[k]
            pa = (float(centres[k, 0]), float(centres[k, 1]))
            for b, _ in geo.neighbours(a):
                if segments_touch(pa, geo.cell_center(b), w0, w1):
                    out.add((a, b))
                    out.add((b, a))
    return frozenset(out)


# -- step costs ---------------------------------------------------------------------------------------------------


def _rule_for(geo: GridGeometry, rule: str | None) -> str:
    """The rule a search uses: ``hex`` on hex grids, else the given one or the grid's."""
    return "hex" if geo.is_hex else (rule or geo.grid.diagonals)


def _step(rule: str, diagonal: bool, parity: int, difficult: bool) -> tuple[int, int, int]:
    """One step's cost as ``(a, b)`` meaning ``a + b sqrt 2`` cells, and the parity after it."""
    m = 2 if difficult else 1
    if not diagonal:
        return m, 0, parity
    if rule == "exact":
        return 0, m, parity
    if rule == "manhattan":
        return 2 * m, 0, parity
    if rule == "5-10-5":
        return (m if parity == 0 else 2 * m), 0, parity ^ 1
    if rule == "10-5-10":
        return (2 * m if parity == 0 else m), 0, parity ^ 1
    return m, 0, parity  # 5-5-5 (and euclidean's octant search, which counts difficult steps elsewhere)


def _value(a: int, b: int) -> float:
    return a + b * _SQRT2


# -- leg search (paths): A* over (cell, parity), exact integer costs ------------------------------------------


class _Graph:
    """Neighbour steps with blocking, for the path searches."""

    def __init__(self, geo: GridGeometry, obs: Obstacles) -> None:
        self.geo = geo
        self.obs = obs
        self.walls = _wall_steps(geo.grid, obs.walls)

    def steps(self, cell: Cell, only: tuple[tuple[int, int], ...] | None = None) -> Iterator[tuple[Cell, bool]]:
        """Unblocked steps out of ``cell`` (square ``only``: restrict to these (dc, dr) offsets)."""
        geo, blocked, walls = self.geo, self.obs.blocked, self.walls
        if geo.is_hex:
            candidates: Iterable[tuple[Cell, bool]] = geo.neighbours(cell)
        else:
            c, r = cell
            candidates = (
                ((c + dc, r + dr), diag)
                for dc, dr, diag in SQUARE_DIRECTIONS
                if (only is None or (dc, dr) in only) and geo.grid.contains((c + dc, r + dr))
            )
        for nb, diag in candidates:
            if nb not in blocked and (cell, nb) not in walls:
                yield nb, diag

    def into(self, cell: Cell, only: tuple[tuple[int, int], ...] | None = None) -> Iterator[tuple[Cell, bool]]:
        """Cells with an unblocked step into ``cell`` (``cell`` itself is the caller's to check)."""
        geo, walls = self.geo, self.walls
        if geo.is_hex:
            sources: Iterable[tuple[Cell, bool]] = geo.neighbours(cell)
        else:
            c, r = cell
            sources = (
                ((c - dc, r - dr), diag)
                for dc, dr, diag in SQUARE_DIRECTIONS
                if (only is None or (dc, dr) in only) and geo.grid.contains((c - dc, r - dr))
            )
        for nb, diag in sources:
            if (nb, cell) not in walls:
                yield nb, diag


Label = tuple[float, int, int, int, int]
"""(value, diagonals, steps, a, b) with value = a + b sqrt 2, compared in that order. Steps are counted only in the
euclidean octant search, whose steps may cost 0 (every optimal path there has the same number of steps); counting
them keeps every label strictly above its successor's, which the early stop relies on."""


def _heuristic(
    graph: _Graph, rule: str, start: Cell, parities: Iterable[int]
) -> Callable[[Cell, int], tuple[int, int]]:
    """A consistent lower bound on the cost from ``(start, p)`` (``p`` any of ``parities``) to ``(cell, parity)``,
    as ``(a, b)`` meaning ``a + b sqrt 2``; with consistency the backward A* settles states with final labels.

    Square, with ``M``/``m`` the larger/smaller of the column and row differences: ``5-5-5`` ``M``; ``manhattan``
    ``dx + dy``; ``exact`` octile; ``5-10-5`` ``M + floor(m / 2) + [m odd and the parity travelled is even]``;
    ``10-5-10`` ``M + floor(m / 2) + [not (m even and the parity travelled is even)]`` (each checked consistent
    against every step in the tests), where a start on an odd count swaps the two; hex: the hex distance; 0 for the
    euclidean octant search (steps cost 0 there).
    """
    geo = graph.geo
    starts = tuple(parities)
    if rule == "euclidean":
        return lambda cell, parity: (0, 0)
    if geo.is_hex:
        origin = geo.axial(start)
        return lambda cell, parity: (hex_distance(origin, geo.axial(cell)), 0)
    c0, r0 = start

    def square(cell: Cell, parity: int) -> tuple[int, int]:
        dx, dy = abs(cell[0] - c0), abs(cell[1] - r0)
        big, small = max(dx, dy), min(dx, dy)
        if rule == "manhattan":
            return dx + dy, 0
        if rule == "exact":
            return big - small, small
        if rule not in _ALTERNATING:
            return big, 0
        odd = small % 2 == 1
        extra = []
        for p0 in starts:
            travelled_even = (parity ^ p0) == 0
            # Starting on an odd count turns 5-10-5 into 10-5-10 from there on, and back.
            one_first = (rule == "5-10-5") == (p0 == 0)
            extra.append(int(odd and travelled_even) if one_first else int(not (not odd and travelled_even)))
        return big + small // 2 + min(extra), 0

    return square


def _cost_to_go(
    graph: _Graph,
    rule: str,
    goal: State,
    start: Cell,
    parities_needed: Iterable[int],
    only: tuple[tuple[int, int], ...] | None = None,
) -> dict[State, Label]:
    """Backward A* from ``goal`` toward the ``start`` cell: the cheapest label (:data:`Label`) from each settled
    state to the goal.

    The search runs until the needed start states are settled and then on while the queue's smallest estimate is
    no more than the worst of theirs, so every state on an optimal path from a needed start state is settled (its
    estimate is at most the start's, the heuristic being a consistent lower bound) and :func:`_walk` only meets
    settled labels. Estimates compare exactly: labels and bounds are integer pairs ``(a, b)``.
    """
    parities = (0, 1) if rule in _ALTERNATING else (0,)
    difficult = graph.obs.difficult
    h = _heuristic(graph, rule, start, parities_needed)
    counted = int(rule == "euclidean")
    settled: dict[State, Label] = {}
    zero: Label = (0.0, 0, 0, 0, 0)
    best: dict[State, Label] = {goal: zero}
    ha, hb = h(*goal)
    heap: list[tuple[tuple[float, int, int], Label, Cell, int]] = [((_value(ha, hb), 0, 0), zero, goal[0], goal[1])]
    remaining = {(start, p) for p in parities_needed}
    bound = math.inf
    while heap and heap[0][0][0] <= bound:
        _, label, cell, q = heapq.heappop(heap)
        if (cell, q) in settled:
            continue
        settled[(cell, q)] = label
        if (cell, q) in remaining:
            remaining.discard((cell, q))
            if not remaining:
                bound = max(settled[(start, p)][0] for p in parities_needed)
        if cell in graph.obs.blocked:
            continue  # nothing enters a blocked cell (a path may only start in one)
        hard = cell in difficult
        for prev, diag in graph.into(cell, only):
            for p in parities:
                a, b, after = _step(rule, diag, p, hard)
                if rule == "euclidean":  # the octant search counts difficult steps only
                    a, b = (1 if hard else 0), 0
                if after != q or (prev, p) in settled:
                    continue
                na, nb_ = label[3] + a, label[4] + b
                new = (_value(na, nb_), label[1] + int(diag), label[2] + counted, na, nb_)
                if new < best.get((prev, p), (math.inf, 0, 0, 0, 0)):
                    best[(prev, p)] = new
                    hpa, hpb = h(prev, p)
                    key = (_value(na + hpa, nb_ + hpb), new[1], new[2])
                    heapq.heappush(heap, (key, new, prev, p))
    return settled


def _walk(
    graph: _Graph,
    rule: str,
    start: State,
    goal: State,
    togo: dict[State, Label],
    only: tuple[tuple[int, int], ...] | None = None,
) -> list[tuple[Cell, bool, int]]:
    """The lexicographically smallest optimal path from ``start`` to ``goal``: ``(cell, diagonal, parity before)``
    per step."""
    out: list[tuple[Cell, bool, int]] = []
    state = start
    difficult = graph.obs.difficult
    counted = int(rule == "euclidean")
    while state != goal:
        cell, p = state
        here = togo[state]
        choice: tuple[Cell, bool, int] | None = None
        for nb, diag in graph.steps(cell, only):
            a, b, after = _step(rule, diag, p, nb in difficult)
            if rule == "euclidean":
                a, b = (1 if nb in difficult else 0), 0
            there = togo.get((nb, after))
            if there is None or (there[1] + int(diag), there[2] + counted, there[3] + a, there[4] + b) != here[1:]:
                continue
            if choice is None or nb < choice[0]:
                choice = (nb, diag, after)
        if choice is None:  # cannot happen: an optimal label always has an optimal step
            raise RuntimeError(f"no optimal step out of {state}")
        out.append((choice[0], choice[1], p))
        state = (choice[0], choice[2])
    return out


@dataclass
class _Leg:
    cells: list[Cell]  # after the leg's start
    costs: list[float]  # each step's, in cells


Prefix = tuple[float, tuple[float, ...], int, int, int]  # (value, each leg's value, diagonals, a, b)


def _plain_legs(graph: _Graph, rule: str, route: list[Cell], targets: list[int], param: str) -> list[_Leg]:
    """Legs under a rule with exact step costs; the parity carried into each leg is chosen over the whole path:
    cheapest total, then earlier legs cheapest (the leg costs compared in order), then fewer diagonals, then the
    lower parity."""
    parities = (0, 1) if rule in _ALTERNATING else (0,)
    reach: dict[int, Prefix] = {0: (0.0, (), 0, 0, 0)}  # the best way to the current waypoint, per parity
    history: list[tuple[dict[int, dict[State, Label]], dict[int, tuple[int, Prefix]]]] = []
    for leg, (src, dst) in enumerate(itertools.pairwise(route)):
        maps = {q: _cost_to_go(graph, rule, (dst, q), src, reach) for q in parities}
        nxt: dict[int, tuple[int, Prefix]] = {}
        for q in parities:
            for p in sorted(reach):
                got = maps[q].get((src, p))
                if got is None:
                    continue
                _, legs, diagonals, a, b = reach[p]
                a, b = a + got[3], b + got[4]
                total = (_value(a, b), (*legs, got[0]), diagonals + got[1], a, b)
                if q not in nxt or total[:3] < nxt[q][1][:3]:
                    nxt[q] = (p, total)
        if not nxt:
            raise InputError(f"{param}.waypoints[{targets[leg]}]", list(dst), "a cell the path can reach")
        history.append((maps, nxt))
        reach = {q: lab for q, (_, lab) in nxt.items()}
    # Back-track the parities, then walk each leg.
    q = min(reach, key=lambda k: (reach[k][:3], k))
    chosen: list[tuple[int, int]] = []
    for _maps, nxt in reversed(history):
        p = nxt[q][0]
        chosen.append((p, q))
        q = p
    chosen.reverse()
    out: list[_Leg] = []
    for (src, dst), (p, q), (maps, _) in zip(itertools.pairwise(route), chosen, history, strict=True):
        steps = _walk(graph, rule, (src, p), (dst, q), maps[q])
        costs = [_value(*_step(rule, diag, par, cell in graph.obs.difficult)[:2]) for cell, diag, par in steps]
        out.append(_Leg([c for c, _, _ in steps], costs))
    return out


def _octant(src: Cell, dst: Cell) -> tuple[tuple[int, int], ...]:
    """The (at most two) step offsets of the octile-shortest paths from ``src`` to ``dst``."""
    dx, dy = dst[0] - src[0], dst[1] - src[1]
    sx, sy = (dx > 0) - (dx < 0), (dy > 0) - (dy < 0)
    straight = (sx, 0) if abs(dx) >= abs(dy) else (0, sy)
    diagonal = (sx, sy)
    return tuple({straight, diagonal}) if dx and dy and abs(dx) != abs(dy) else ((sx, sy),)


def _euclidean_leg(graph: _Graph, src: Cell, dst: Cell, target: int, param: str) -> _Leg:
    """One ``euclidean`` leg (module docstring)."""
    only = _octant(src, dst)
    togo = _cost_to_go(graph, "euclidean", (dst, 0), src, (0,), only)
    if (src, 0) in togo:
        steps = _walk(graph, "euclidean", (src, 0), (dst, 0), togo, only)
        total = math.hypot(dst[0] - src[0], dst[1] - src[1])
        share = total / len(steps)
        costs = [share * (2 if cell in graph.obs.difficult else 1) for cell, _, _ in steps]
        return _Leg([c for c, _, _ in steps], costs)
    togo = _cost_to_go(graph, "exact", (dst, 0), src, (0,))
    if (src, 0) not in togo:
        raise InputError(f"{param}.waypoints[{target}]", list(dst), "a cell the path can reach")
    steps = _walk(graph, "exact", (src, 0), (dst, 0), togo)
    costs = [_value(*_step("exact", diag, 0, cell in graph.obs.difficult)[:2]) for cell, diag, _ in steps]
    return _Leg([c for c, _, _ in steps], costs)


def measure_path(
    path: PathSpec, spec: OverlaySpec, geo: GridGeometry, obstacles: Obstacles, param: str = "paths[0]"
) -> PathGeometry:
    """A path's cells and costs (module docstring).

    Args:
        path: The path.
        spec: The spec it belongs to (for its token).
        geo: The grid.
        obstacles: From :func:`obstacles`.
        param: The path's field (``paths[i]``); errors name ``paths[i].waypoints[j]``.

    Returns:
        The path geometry: cells in order, total and per-step costs in feet (rounded to 1e-6).

    Raises:
        InputError: A waypoint is blocked or cannot be reached.
    """
    for j, cell in enumerate(path.waypoints):
        if cell in obstacles.blocked:
            raise InputError(f"{param}.waypoints[{j}]", list(cell), "a cell that is not blocked")
    route: list[Cell] = []
    targets: list[int] = []  # for each leg, the waypoint index of its end
    indexes: list[int] = []  # for each spec waypoint, its index in the route
    if path.token is not None:
        try:
            token = spec.token(path.token)
        except KeyError:
            raise InputError(f"{param}.token", path.token, "the id of a token") from None
        if path.waypoints[0] not in footprint(token, geo):
            route.append(token.cell)
    for j, cell in enumerate(path.waypoints):
        if not route or route[-1] != cell:
            route.append(cell)
            if len(route) > 1:
                targets.append(j)
        indexes.append(len(route) - 1)
    rule = _rule_for(geo, path.diagonals)
    graph = _Graph(geo, obstacles)
    if rule == "euclidean":
        legs = [_euclidean_leg(graph, s, d, targets[k], param) for k, (s, d) in enumerate(itertools.pairwise(route))]
    else:
        legs = _plain_legs(graph, rule, route, targets, param)
    cells: list[Cell] = [route[0]]
    costs: list[float] = []
    positions = [0]
    for leg in legs:
        cells.extend(leg.cells)
        costs.extend(leg.costs)
        positions.append(len(cells) - 1)
    fpc = geo.grid.feet_per_cell
    return PathGeometry(
        id=path.id,
        cells=tuple(cells),
        cost_ft=round(sum(costs) * fpc, 6),
        step_costs_ft=tuple(round(c * fpc, 6) for c in costs),
        waypoint_indexes=tuple(positions[i] for i in indexes),
    )


# -- movement: vectorised relaxation over a lattice window ---------------------------------------------------------


class _Lattice:
    """The map as a 2-D array where every neighbour step is one fixed index offset.

    Square: index ``(row, col)``. Hex: index ``(r - r_min, q - q_min)`` over the axial bounding box (hexes of the
    box that are not on the map are invalid).
    """

    def __init__(self, geo: GridGeometry) -> None:
        self.geo = geo
        if not geo.is_hex:
            self.shape = (geo.grid.rows, geo.grid.cols)
            self.dirs = tuple((dr, dc, diag) for dc, dr, diag in SQUARE_DIRECTIONS)
            self.origin = (0, 0)
            self.valid = np.ones(self.shape, dtype=bool)
        else:
            axials = [geo.axial(c) for c in geo.cells()]
            qmin, rmin = min(q for q, _ in axials), min(r for _, r in axials)
            qmax, rmax = max(q for q, _ in axials), max(r for _, r in axials)
            self.shape = (rmax - rmin + 1, qmax - qmin + 1)
            self.dirs = tuple((dr, dq, False) for dq, dr in HEX_DIRECTIONS)
            self.origin = (rmin, qmin)
            self.valid = np.zeros(self.shape, dtype=bool)
            for q, r in axials:
                self.valid[r - rmin, q - qmin] = True
        self.valid.flags.writeable = False  # shared through the cache
        self.dir_index = {(di, dj): k for k, (di, dj, _) in enumerate(self.dirs)}

    def index(self, cell: Cell) -> tuple[int, int]:
        if not self.geo.is_hex:
            return cell[1], cell[0]
        q, r = self.geo.axial(cell)
        return r - self.origin[0], q - self.origin[1]

    def cell(self, i: int, j: int) -> Cell:
        if not self.geo.is_hex:
            return j, i
        return self.geo.from_axial((j + self.origin[1], i + self.origin[0]))

    def mask(self, cells: Iterable[Cell]) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        for cell in cells:
            if self.geo.contains(cell):
                out[self.index(cell)] = True
        return out


@functools.lru_cache(maxsize=16)
def _lattice(grid: Grid) -> _Lattice:
    return _Lattice(GridGeometry(grid))


def _slices(di: int, dj: int, h: int, w: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(source, destination) slices of an ``h x w`` array for the step ``(di, dj)``."""
    dst = (slice(max(di, 0), h + min(di, 0)), slice(max(dj, 0), w + min(dj, 0)))
    src = (slice(max(-di, 0), h + min(-di, 0)), slice(max(-dj, 0), w + min(-dj, 0)))
    return src, dst


@functools.lru_cache(maxsize=16)
def _allowed(grid: Grid, blocked: frozenset[Cell], walls: tuple[Segment, ...]) -> tuple[np.ndarray, ...]:
    """Per lattice direction, a bool array at the destination index: the step into it is allowed."""
    lat = _lattice(grid)
    h, w = lat.shape
    enter = lat.valid & ~lat.mask(blocked)
    out = []
    for di, dj, _ in lat.dirs:
        src, dst = _slices(di, dj, h, w)
        ok = np.zeros(lat.shape, dtype=bool)
        ok[dst] = lat.valid[src] & enter[dst]
        out.append(ok)
    for a, b in _wall_steps(grid, walls):
        (ia, ja), (ib, jb) = lat.index(a), lat.index(b)
        out[lat.dir_index[(ib - ia, jb - ja)]][ib, jb] = False
    for ok in out:
        ok.flags.writeable = False
    return tuple(out)


def _relax(dist: np.ndarray, ops: list[tuple[np.ndarray, np.ndarray, np.ndarray]], limit: float) -> None:
    """Bellman-Ford sweeps to a fixed point: ``write = min(write, read + cost)`` for every op; costs above
    ``limit`` are dropped each sweep (no cheaper path runs through them, as every step costs at least 1)."""
    while True:
        before = dist.copy()
        for read, write, cost in ops:
            np.minimum(write, read + cost, out=write)
        np.putmask(dist, dist > limit, np.inf)
        if np.array_equal(before, dist):
            return


def _window(lat: _Lattice, sources: tuple[Cell, ...], limit: float) -> tuple[slice, slice]:
    """The index box no cell with cost <= limit can lie outside (each step moves one index at most)."""
    idx = [lat.index(c) for c in sources]
    pad = math.ceil(limit) + 1
    i0, i1 = min(i for i, _ in idx) - pad, max(i for i, _ in idx) + pad + 1
    j0, j1 = min(j for _, j in idx) - pad, max(j for _, j in idx) + pad + 1
    h, w = lat.shape
    return slice(max(i0, 0), min(i1, h)), slice(max(j0, 0), min(j1, w))


def _costs_grid(
    lat: _Lattice,
    allowed: tuple[np.ndarray, ...],
    mult: np.ndarray,
    rule: str,
    sources: tuple[Cell, ...],
    limit: float,
    win: tuple[slice, slice],
) -> np.ndarray:
    """Cheapest cost (cells) of every window cell from the sources under a rule, inf above ``limit``."""
    parities = (0, 1) if rule in _ALTERNATING else (0,)
    h, w = win[0].stop - win[0].start, win[1].stop - win[1].start
    dist = np.full((len(parities), h, w), np.inf)
    for cell in sources:
        i, j = lat.index(cell)
        dist[0, i - win[0].start, j - win[1].start] = 0.0
    ops = []
    for k, (di, dj, diag) in enumerate(lat.dirs):
        src, dst = _slices(di, dj, h, w)
        enter = allowed[k][win][dst]
        for p in parities:
            a, b, q = _step(rule, diag, p, False)
            cost = np.where(enter, _value(a, b) * mult[win][dst], np.inf)
            ops.append((dist[p][src], dist[q][dst], cost))
    _relax(dist, ops, limit + _EPS)
    return dist.min(axis=0)


def _euclidean_grid(
    lat: _Lattice,
    allowed: tuple[np.ndarray, ...],
    mult: np.ndarray,
    sources: tuple[Cell, ...],
    limit: float,
    win: tuple[slice, slice],
) -> np.ndarray:
    """Cheapest ``euclidean`` leg (cells) to every window cell from any source (module docstring)."""
    h, w = win[0].stop - win[0].start, win[1].stop - win[1].start
    n = len(sources)
    idx = [lat.index(c) for c in sources]
    seed = np.full((n, h, w), np.inf)
    for s, (i, j) in enumerate(idx):
        seed[s, i - win[0].start, j - win[1].start] = 0.0
    extra = mult[win] - 1.0  # 1 into a difficult cell, else 0
    # Fewest difficult steps along an octile-shortest path, per source: eight octant searches, two step kinds each.
    fewest = np.full((n, h, w), np.inf)
    for sdr, sdc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        for other in (-1, 1):
            ddr, ddc = (sdr or other), (sdc or other)
            octant = seed.copy()
            ops = []
            for di, dj in ((sdr, sdc), (ddr, ddc)):
                src, dst = _slices(di, dj, h, w)
                cost = np.where(allowed[lat.dir_index[(di, dj)]][win][dst], extra[dst], np.inf)
                ops.append((octant[:, src[0], src[1]], octant[:, dst[0], dst[1]], cost))
            _relax(octant, ops, math.inf)
            np.minimum(fewest, octant, out=fewest)
    rows = np.arange(h)[None, :, None] + win[0].start
    cols = np.arange(w)[None, None, :] + win[1].start
    di = np.abs(rows - np.array([i for i, _ in idx])[:, None, None])
    dj = np.abs(cols - np.array([j for _, j in idx])[:, None, None])
    straight = np.hypot(di, dj)
    steps = np.maximum(np.maximum(di, dj), 1)
    direct = straight * (1 + fewest / steps)
    # Legs that must detour are measured under exact, per source.
    detour = np.full((n, h, w), np.inf)
    if np.isinf(fewest).any():
        detour = seed.copy()
        ops = []
        for k, (di_, dj_, diag) in enumerate(lat.dirs):
            src, dst = _slices(di_, dj_, h, w)
            cost = np.where(allowed[k][win][dst], (_SQRT2 if diag else 1.0) * mult[win][dst], np.inf)
            ops.append((detour[:, src[0], src[1]], detour[:, dst[0], dst[1]], cost))
        _relax(detour, ops, limit + _EPS)
    return np.where(np.isinf(fewest), detour, direct).min(axis=0)


def movement(
    query: MovementQuery, spec: OverlaySpec, geo: GridGeometry, obstacles: Obstacles, param: str = "movement[0]"
) -> MovementGeometry:
    """Every cell a token reaches within its speed (module docstring).

    Args:
        query: The movement query.
        spec: The spec (for the token).
        geo: The grid.
        obstacles: From :func:`obstacles`; the query's own difficult cells are added here.
        param: The query's field (``movement[i]``); errors name ``movement[i].token``.

    Returns:
        The reachable cells with their cheapest cost in feet, sorted by row, then column.

    Raises:
        InputError: The token is not in the spec.
    """
    try:
        token = spec.token(query.token)
    except KeyError:
        raise InputError(f"{param}.token", query.token, "the id of a token") from None
    sources = footprint(token, geo, _token_field(spec, query.token))
    rule = _rule_for(geo, query.diagonals)
    limit = query.speed_ft / geo.grid.feet_per_cell * (2 if query.dash else 1)
    lat = _lattice(geo.grid)
    allowed = _allowed(geo.grid, obstacles.blocked, obstacles.walls)
    mult = np.where(lat.mask(obstacles.difficult | query.difficult), 2.0, 1.0)
    win = _window(lat, sources, limit)
    if rule == "euclidean":
        cost = _euclidean_grid(lat, allowed, mult, sources, limit, win)
    else:
        cost = _costs_grid(lat, allowed, mult, rule, sources, limit, win)
    own = set(sources)
    fpc = geo.grid.feet_per_cell
    found: list[tuple[Cell, float]] = []
    for i, j in zip(*np.nonzero(cost <= limit + _EPS), strict=True):
        cell = lat.cell(int(i) + win[0].start, int(j) + win[1].start)
        if cell not in own:
            found.append((cell, round(float(cost[i, j]) * fpc, 6)))
    found.sort(key=lambda item: (item[0][1], item[0][0]))
    return MovementGeometry(id=query.id, reachable=tuple(found), speed_ft=query.speed_ft, dash=query.dash)


def _token_field(spec: OverlaySpec, token_id: str) -> str:
    """``tokens[i].cell`` for the token with this id (what a footprint error names)."""
    for i, token in enumerate(spec.tokens):
        if token.id == token_id:
            return f"tokens[{i}].cell"
    return "tokens"
