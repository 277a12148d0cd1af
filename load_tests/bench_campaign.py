"""Benchmarks of campaign maps: ``campaign_overlay_ms`` and ``route_plan_ms``. One JSON line each.

- ``campaign_overlay_ms``: p50 milliseconds to re-draw the layers of a 2048 x 2048 campaign map (12 terrain
  regions, 40 POIs, 6 territories (one contested), 15 routes, a party with travelled and planned paths and day
  marks, resources, labels, legend, compass, scale bar) over a synthetic art-like background, as a ``PUT`` of the
  overlay does it: ``render_campaign`` on the decoded art (the drawing, ``value``), and, printed beside it, the
  measuring (``measure_ms``: route lengths and days, areas, holders) and the whole edit as the stage runs it
  (``edit_ms``: decode, parse, measure, draw, PNG-encode). Baseline, same run, interleaved: PNG-encoding the bare
  art at the renderer's level (``encode_ms``, zlib level 1, as ``render_campaign_png``); ``ratio`` = drawing /
  encode. Target: ``value`` (the drawing) at most 50 ms.
- ``route_plan_ms``: p50 milliseconds of A* (``campaign_travel.astar``) on the benchmark map's own 512 x 512 cost
  grid on foot (its sea, forests, hills, mountains, swamps, roads, trails and fords, with the planning premium),
  between the far corners of the land, ``value``. Baseline, same run: the same search on an open grid of plains
  (``open_ms``; the heuristic is exact there); ``ratio`` = value / open. Also ``worst_case_ms``: a grid built to
  defeat the heuristic (a mountain wall across the map with its one pass at the far end, so nearly every cell
  has ``g + h`` under the optimum), and ``plan_ms``: a whole ``plan_route`` on the benchmark map (the cost grid
  built from the regions and routes, then A*). Target: ``value`` at most 20 ms.

Run: ``python load_tests/bench_campaign.py [--rounds 15]``, with nothing else busy on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = 2048
TERRAIN_CYCLE = ("forest", "hills", "mountains", "swamp", "farmland", "desert", "grassland", "tundra", "badlands")
KINDS = ("capital", "city", "town", "town", "village", "village", "fort", "temple", "dungeon", "ruin", "port", "camp")


def _background() -> Any:
    """A deterministic 2048 x 2048 art-like picture: smooth colour fields with fine noise."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    rng = np.random.default_rng(12)
    noise = rng.normal(0, 6, (SIZE, SIZE, 1)).astype(np.float32)
    base = np.stack(
        [
            130 + 45 * np.sin(x / 191.0) * np.cos(y / 233.0),
            125 + 40 * np.sin((x + y) / 280.0),
            95 + 30 * np.cos(x / 107.0 - y / 151.0),
        ],
        axis=-1,
    )
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def _blob(cx: float, cy: float, r: float, n: int, wobble: float, phase: float) -> list[list[float]]:
    """A simple (non-self-intersecting) wobbly polygon: radius varies with angle, always positive."""
    return [
        [
            round(min(SIZE, max(0.0, cx + r * (1 + wobble * math.sin(3 * a + phase)) * math.cos(a))), 2),
            round(min(SIZE, max(0.0, cy + r * (1 + wobble * math.sin(3 * a + phase)) * math.sin(a))), 2),
        ]
        for a in (2 * math.pi * k / n for k in range(n))
    ]


def scene() -> dict[str, Any]:
    """The benchmark map's campaign JSON."""
    regions = [{"name": "Western Sea", "terrain": "water", "polygon": [[0, 0], [260, 0], [200, SIZE], [0, SIZE]]}]
    for i in range(11):
        cx, cy = 500 + (i % 4) * 420, 300 + (i // 4) * 600
        terrain = TERRAIN_CYCLE[i % len(TERRAIN_CYCLE)]
        regions.append({"name": f"Region {i}", "terrain": terrain, "polygon": _blob(cx, cy, 170, 48, 0.25, i)})
    pois = []
    for i in range(40):
        x = 320 + (i * 397) % 1680
        y = 120 + (i * 631) % 1800
        pois.append({"name": f"Place {i}", "kind": KINDS[i % len(KINDS)], "x": x, "y": y})
    colors = ("#b03a2e", "#2e86c1", "#229954", "#d4ac0d", "#7d3c98", "#ca6f1e")
    territories = []
    for i in range(6):
        x0, y0 = 300 + (i % 3) * 580, 100 + (i // 3) * 950
        ring = [[x0, y0], [x0 + 560, y0], [x0 + 560, y0 + 900], [x0, y0 + 900]]
        territory: dict[str, Any] = {"name": f"Realm {i}", "color": colors[i], "polygon": ring}
        if i == 1:
            territory["contested_with"] = "Realm 0"
            territory["polygon"] = [[x0 - 80, y0], [x0 + 560, y0], [x0 + 560, y0 + 900], [x0 - 80, y0 + 900]]
        territories.append(territory)
    routes: list[dict[str, Any]] = []
    for i in range(12):
        routes.append({"kind": "road" if i % 3 else "trail", "from": f"Place {i}", "to": f"Place {i + 7}"})
    routes.append({"kind": "river", "points": [[1200, 0], [1150, 500], [1250, 1000], [1180, 1500], [240, 1900]]})
    routes.append({"kind": "river", "points": [[1900, 300], [1600, 700], [1250, 1000]]})
    routes.append({"kind": "sea_lane", "points": [[100, 100], [150, 900], [120, 1900]]})
    party = {
        "name": "The Company",
        "x": 900,
        "y": 900,
        "travelled": [[400, 300], [600, 500], [800, 800]],
        "planned": [[1100, 1000], [1400, 1200], [1700, 1500]],
    }
    resources = [
        {"kind": k, "x": 350 + 250 * i, "y": 1950, "quantity": i + 1}
        for i, k in enumerate(("mine", "farm", "lumber", "fishery", "quarry", "magic_site"))
    ]
    return {
        "canvas": {"width": SIZE, "height": SIZE},
        "scale": {"miles_per_pixel": 0.25},
        "title": "The Benchmark Realms",
        "regions": regions,
        "pois": pois,
        "territories": territories,
        "routes": routes,
        "party": party,
        "resources": resources,
    }


def _p50(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def campaign_overlay_ms(rounds: int) -> dict[str, Any]:
    from pipelines import encode
    from pipelines.overlay.campaign import parse_campaign
    from pipelines.overlay.campaign_draw import render_campaign
    from pipelines.overlay.campaign_measure import measure_campaign
    from serve_app.overlays.stage import OverlayStage

    art = _background()
    art_png = encode.encode(art, "png")
    doc = scene()
    spec = parse_campaign(doc)
    geometry = measure_campaign(spec)
    stage = OverlayStage()
    for _ in range(2):  # warm up: fonts, skia, shapely
        render_campaign(art, spec, day_marks=geometry.day_marks)
        encode.encode(art, "png", fast=True)
    draw, encode_times, measure, edit = [], [], [], []
    for _ in range(rounds):  # interleaved, so a slower moment of the machine costs both sides
        draw.append(_p50(lambda: render_campaign(art, spec, day_marks=geometry.day_marks), 1))
        encode_times.append(_p50(lambda: encode.encode(art, "png", fast=True), 1))
        measure.append(_p50(lambda: measure_campaign(parse_campaign(doc)), 1))
        edit.append(_p50(lambda: stage._campaign_render(art_png, doc), 1))
    value, base = statistics.median(draw), statistics.median(encode_times)
    return {
        "metric": "campaign_overlay_ms",
        "value": round(value, 2),
        "encode_ms": round(base, 2),
        "ratio": round(value / base, 3),
        "measure_ms": round(statistics.median(measure), 2),
        "edit_ms": round(statistics.median(edit), 2),
        "target_ms": 50,
        "met": value <= 50,
        "scene": {"size": SIZE, "regions": 12, "pois": 40, "territories": 6, "routes": 15},
    }


def route_plan_ms(rounds: int) -> dict[str, Any]:
    import numpy as np

    from pipelines.overlay.campaign import parse_campaign
    from pipelines.overlay.campaign_travel import astar, cost_grid, plan_route

    spec = parse_campaign(scene())
    grid = cost_grid(spec, "foot", max_cells=512)
    cost = grid.planning_cost()
    start, goal = grid.cell_of((300, 40)), grid.cell_of((2000, 2000))
    wall = np.ones((512, 512), dtype=np.float64)
    wall[100:400, 150:350] = 2.0  # a forest
    wall[200:210, :] = math.inf  # a mountain wall
    wall[200:210, 470:480] = 2.0  # its one pass
    wall[:, 60:62] = 1.0  # a road (multiplier 1 through the forest)
    open_grid = np.ones((512, 512), dtype=np.float64)
    corner, far = (5, 5), (506, 506)
    for _ in range(3):
        astar(cost, start, goal)
        astar(open_grid, corner, far)
        astar(wall, corner, far)
    values, opens, worst = [], [], []
    for _ in range(rounds):  # interleaved
        values.append(_p50(lambda: astar(cost, start, goal), 1))
        opens.append(_p50(lambda: astar(open_grid, corner, far), 1))
        worst.append(_p50(lambda: astar(wall, corner, far), 1))
    plan_route(spec, (300, 40), (2000, 2000))
    plan = _p50(lambda: plan_route(spec, (300, 40), (2000, 2000)), max(3, rounds // 3))
    value, base = statistics.median(values), statistics.median(opens)
    return {
        "metric": "route_plan_ms",
        "value": round(value, 2),
        "open_ms": round(base, 2),
        "ratio": round(value / base, 3) if base else None,
        "worst_case_ms": round(statistics.median(worst), 2),
        "plan_ms": round(plan, 2),
        "grid": list(cost.shape),
        "target_ms": 20,
        "met": value <= 20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(json.dumps(campaign_overlay_ms(args.rounds)), flush=True)
    print(json.dumps(route_plan_ms(args.rounds)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
