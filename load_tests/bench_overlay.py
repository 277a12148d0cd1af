"""Benchmarks of the overlay stage: ``overlay_render_ms``, ``geometry_us``, ``tactical_map_s``. One JSON line each.

- ``overlay_render_ms``: p50 milliseconds of ``pipelines.overlay.draw.render`` on the benchmark scene: a 40x30
  square grid at 70 px a cell (2800x2100), 20 labelled tokens (four Large, one Huge), 10 templates (five 20-ft
  spheres with 720-vertex outlines and 52 cells each, five 60-ft flat cones with 32-73 cells), 5 paths of 13-25
  cells with waypoint and total labels, and the grid, over a synthetic art-like background (smooth colour fields
  plus fine noise, so PNG encoding costs what a painted map costs). The geometry is built here by hand: the
  renderer draws what it is handed, so its cost does not depend on how the cells were chosen (the cones have more
  cells than ``geometry.measure`` gives them, so this errs heavy). Baseline, same run, interleaved: PNG-encoding
  the bare background at the renderer's zlib level; ``ratio`` = render / encode. Also printed:
  ``buffer_copies_ms`` (the same render with no layers: the background into skia's buffer and the result back
  out), ``drawing_ms`` (``value`` less that), ``render_png_ms`` (render plus encode, end to end) and
  ``pillow_aa_ms``, the same scene drawn with Pillow anti-aliased by 4x supersampling per shape (the alternative
  the renderer was chosen against). Target: ``value`` at most 20 ms.
- ``geometry_us``: p50 microseconds to measure one template, the heavy case (a 60-ft flat cone under ``any``
  from (20, 15), direction 30 degrees), through ``pipelines.overlay.geometry.measure`` on a one-template spec;
  ``covered_cells_us`` is the template maths alone (``pipelines.overlay.templates.covered_cells``). Baseline: a
  20-ft sphere under ``center`` measured the same way. Target: ``value`` at
  most 200 us.
- ``movement_ms``: p50 of a 60-ft movement query from the middle of an open 40x30 grid under ``5-10-5`` against
  ``5-5-5`` (the alternating rule searches (cell, parity) states).

- ``tactical_map_s``: p50 seconds of a tactical map job end to end on the tiny model, in process (16x12 cells at
  64 px, generated at the CPU profile's 65536 pixels and 20 steps), and ``outside_generator_share``: the part of
  it not spent in the generator (acceptance, fitting, drawing, encoding, storing).

Run: ``make bench`` or ``python load_tests/bench_overlay.py [--rounds 30] [--samples 2000] [--maps 5]``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLS, ROWS, CELL_PX = 40, 30, 70


def _background() -> Any:
    """A deterministic 2800x2100 art-like picture: smooth colour fields with fine noise."""
    import numpy as np
    from PIL import Image

    h, w = ROWS * CELL_PX, COLS * CELL_PX
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(10)
    noise = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    base = np.stack(
        [
            120 + 50 * np.sin(x / 173.0) * np.cos(y / 211.0),
            110 + 40 * np.sin((x + y) / 260.0),
            90 + 35 * np.cos(x / 97.0 - y / 143.0),
        ],
        axis=-1,
    )
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def _disc_cells(cx: float, cy: float, r: float) -> tuple[tuple[int, int], ...]:
    return tuple(
        (c, rr) for rr in range(ROWS) for c in range(COLS) if (c + 0.5 - cx) ** 2 + (rr + 0.5 - cy) ** 2 <= r * r + 1e-9
    )


def _in_polygon(px: float, py: float, poly: list[tuple[float, float]]) -> bool:
    inside = False
    for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1], strict=True):
        if (y0 > py) != (y1 > py) and px < x0 + (py - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def _poly_cells(poly: list[tuple[float, float]]) -> tuple[tuple[int, int], ...]:
    return tuple((c, r) for r in range(ROWS) for c in range(COLS) if _in_polygon(c + 0.5, r + 0.5, poly))


def _scene() -> tuple[Any, Any, Any]:
    """(spec, geometry, geo) of the benchmark scene."""
    from pipelines.overlay import spec as s
    from pipelines.overlay.grid import GridGeometry

    grid = s.Grid(cols=COLS, rows=ROWS, cell_px=CELL_PX)
    tokens, token_geo = [], []
    for i in range(20):
        size = "huge" if i == 0 else "large" if i % 5 == 1 else "medium"
        side = int(max(1, s.SIZES[size]))
        cell = ((i * 7 + 1) % (COLS - side), (i * 11 + 2) % (ROWS - side))
        tokens.append(s.Token(id=f"t{i}", cell=cell, size=size, label=f"T{i}"))
        cells = tuple((cell[0] + dc, cell[1] + dr) for dr in range(side) for dc in range(side))
        token_geo.append(s.TokenGeometry(id=f"t{i}", cells=cells, center=(cell[0] + side / 2, cell[1] + side / 2)))
    templates, template_geo = [], []
    for i in range(10):
        ox, oy = 4.0 + 3.5 * i, 5.0 + 8.0 * (i % 3)
        if i % 2 == 0:
            r = 4.0
            outline = [(ox + r * math.cos(k * math.pi / 360), oy + r * math.sin(k * math.pi / 360)) for k in range(720)]
            cells = _disc_cells(ox, oy, r)
            shape = "sphere"
        else:
            d, a = 12.0, math.radians(25 * i)
            half = d / 2
            ex, ey = ox + d * math.cos(a), oy + d * math.sin(a)
            nx, ny = -math.sin(a) * half, math.cos(a) * half
            outline = [(ox, oy), (ex + nx, ey + ny), (ex - nx, ey - ny)]
            cells = _poly_cells(outline)
            shape = "cone"
        templates.append(s.Template(id=f"a{i}", shape=shape, distance_ft=20.0, origin=(ox, oy), label=f"Area {i}"))
        template_geo.append(s.TemplateGeometry(id=f"a{i}", cells=cells, outline=tuple(outline), rule="center"))
    paths, path_geo = [], []
    for i in range(5):
        start = (2 + 7 * i, 3 + i)
        cells = [start]
        for k in range(12 + 3 * i):
            c, r = cells[-1]
            cells.append((min(COLS - 1, c + (1 if k % 3 else 0)), min(ROWS - 1, r + 1)))
        waypoints = (0, len(cells) // 2, len(cells) - 1)
        steps = tuple(5.0 for _ in cells[1:])
        paths.append(s.PathSpec(id=f"p{i}", waypoints=tuple(cells[j] for j in waypoints), label=f"Path {i}"))
        path_geo.append(
            s.PathGeometry(
                id=f"p{i}",
                cells=tuple(cells),
                cost_ft=sum(steps),
                step_costs_ft=steps,
                waypoint_indexes=waypoints,
            )
        )
    spec = s.OverlaySpec(grid=grid, tokens=tuple(tokens), templates=tuple(templates), paths=tuple(paths))
    geometry = s.Geometry(tokens=tuple(token_geo), templates=tuple(template_geo), paths=tuple(path_geo))
    return spec, geometry, GridGeometry(grid)


def _pillow_aa(background: Any, spec: Any, geometry: Any) -> Any:
    """The reference: the same scene with Pillow, each anti-aliased shape supersampled 4x in its own box."""
    from PIL import Image, ImageDraw

    ss, u = 4, float(CELL_PX)
    image = background.copy()

    def hexrgb(value: str) -> tuple[int, int, int]:
        return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)

    def blit(
        colour: tuple[int, int, int], box: tuple[int, int, int, int], draw: Callable[[Any, int, int], None]
    ) -> None:
        x0, y0, x1, y1 = box
        big = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
        draw(ImageDraw.Draw(big), x0, y0)
        image.paste(colour, box, big.reduce(ss))

    def stroke(points: list[tuple[float, float]], width: float, colour: tuple[int, int, int], closed: bool) -> None:
        pts = points + points[:1] if closed else points
        for i in range(0, len(pts) - 1, 24):  # short chunks keep the supersampled boxes small
            seg = pts[i : i + 25]
            pad = width / 2 + 2
            box = (
                math.floor(min(p[0] for p in seg) - pad),
                math.floor(min(p[1] for p in seg) - pad),
                math.ceil(max(p[0] for p in seg) + pad),
                math.ceil(max(p[1] for p in seg) + pad),
            )
            blit(
                colour,
                box,
                lambda d, x0, y0, seg=seg: d.line(
                    [((x - x0) * ss, (y - y0) * ss) for x, y in seg], fill=255, width=round(width * ss)
                ),
            )

    def disc(cx: float, cy: float, r: float, colour: tuple[int, int, int]) -> None:
        box = (math.floor(cx - r) - 1, math.floor(cy - r) - 1, math.ceil(cx + r) + 1, math.ceil(cy + r) + 1)
        blit(
            colour,
            box,
            lambda d, x0, y0: d.ellipse(
                ((cx - r - x0) * ss, (cy - r - y0) * ss, (cx + r - x0) * ss, (cy + r - y0) * ss), fill=255
            ),
        )

    # Grid: exact coverage of 1.5 px axis-aligned lines, no supersampling needed.
    w, h, half, alpha = image.width, image.height, 0.75, round(0.5 * 255)
    for c in range(COLS + 1):
        x = c * u
        x0, x1 = max(0, math.floor(x - half)), min(w, math.ceil(x + half))
        row = bytes(round(alpha * (min(p + 1, x + half) - max(p, x - half))) for p in range(x0, x1))
        mask = Image.frombytes("L", (x1 - x0, 1), row).resize((x1 - x0, h), Image.Resampling.NEAREST)
        image.paste((0, 0, 0), (x0, 0, x1, h), mask)
    for r in range(ROWS + 1):
        y = r * u
        y0, y1 = max(0, math.floor(y - half)), min(h, math.ceil(y + half))
        col = bytes(round(alpha * (min(p + 1, y + half) - max(p, y - half))) for p in range(y0, y1))
        mask = Image.frombytes("L", (1, y1 - y0), col).resize((w, y1 - y0), Image.Resampling.NEAREST)
        image.paste((0, 0, 0), (0, y0, w, y1), mask)
    palette = [hexrgb(c) for c in spec.style.palette]
    fill = round(spec.style.template_opacity * 255)
    for i, tg in enumerate(geometry.templates):
        colour = palette[(i + 1) % len(palette)]
        xs, ys = [c for c, _ in tg.cells], [r for _, r in tg.cells]
        box = (min(xs) * CELL_PX, min(ys) * CELL_PX, (max(xs) + 1) * CELL_PX, (max(ys) + 1) * CELL_PX)
        mask = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
        md = ImageDraw.Draw(mask)
        for c, r in tg.cells:  # pixel-aligned cells: exact without supersampling
            md.rectangle(
                (
                    c * CELL_PX - box[0],
                    r * CELL_PX - box[1],
                    (c + 1) * CELL_PX - box[0] - 1,
                    (r + 1) * CELL_PX - box[1] - 1,
                ),
                fill=fill,
            )
        image.paste(colour, box, mask)
        stroke([(x * u, y * u) for x, y in tg.outline], 2.8, colour, True)
    for i, pg in enumerate(geometry.paths):
        stroke([((c + 0.5) * u, (r + 0.5) * u) for c, r in pg.cells], 5.6, palette[-1 - i], False)
    for i, tg in enumerate(geometry.tokens):
        side = max(1.0, {"huge": 3.0, "large": 2.0}.get(spec.tokens[i].size, 1.0))
        cx, cy, radius = tg.center[0] * u, tg.center[1] * u, 0.45 * side * u
        disc(cx, cy, radius + 1.05, (26, 26, 26))
        disc(cx, cy, radius - 1.05, palette[i % len(palette)])
    return image


def _p50(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(times)


def overlay_render_ms(rounds: int) -> dict[str, object]:
    from pipelines.overlay import draw

    background = _background()
    spec, geometry, geo = _scene()

    def encode() -> bytes:
        buffer = io.BytesIO()
        background.save(buffer, format="PNG", compress_level=draw.PNG_COMPRESS_LEVEL)
        return buffer.getvalue()

    def render() -> object:
        return draw.render(background, spec, geometry, geo)

    def render_png() -> bytes:
        return draw.render_png(background, spec, geometry, geo)

    def pillow() -> object:
        return _pillow_aa(background, spec, geometry)

    bare = replace(spec, layers=frozenset())

    def copies() -> object:  # no layers: the background into skia's buffer and back out, nothing drawn
        return draw.render(background, bare, geometry, geo)

    for fn in (render, encode, render_png, pillow, copies):  # warm: fonts, skia's caches, allocator
        fn()
    renders, encodes, pngs, pillows, empties = [], [], [], [], []
    for _ in range(rounds):
        renders.append(_p50(render, 1))
        encodes.append(_p50(encode, 1))
        pngs.append(_p50(render_png, 1))
        pillows.append(_p50(pillow, 1))
        empties.append(_p50(copies, 1))
    value, baseline = statistics.median(renders), statistics.median(encodes)
    empty = statistics.median(empties)
    return {
        "bench": "overlay_render_ms",
        "value": round(value, 2),
        "unit": "ms",
        "baseline": round(baseline, 2),
        "baseline_is": f"PNG encode of the bare background (zlib level {draw.PNG_COMPRESS_LEVEL})",
        "ratio": round(value / baseline, 3),
        "drawing_ms": round(value - empty, 2),
        "buffer_copies_ms": round(empty, 2),
        "render_png_ms": round(statistics.median(pngs), 2),
        "pillow_aa_ms": round(statistics.median(pillows), 2),
        "p90_ms": round(statistics.quantiles(renders, n=10)[-1], 2),
        "png_bytes": len(render_png()),
        "rounds": rounds,
        "scene": "40x30 cells at 70 px (2800x2100), 20 tokens, 10 templates, 5 paths, grid",
        "target": "value <= 20",
    }


def _template_measure(template: Any, via: str) -> Callable[[], object]:
    """A callable measuring one template: ``geometry.measure`` on a one-template spec (grid geometry built once),
    or ``templates.covered_cells`` directly."""
    from pipelines.overlay import spec as s
    from pipelines.overlay.geometry import measure
    from pipelines.overlay.grid import GridGeometry
    from pipelines.overlay.templates import covered_cells

    grid = s.Grid(cols=COLS, rows=ROWS, cell_px=CELL_PX)
    spec = s.OverlaySpec(grid=grid, templates=(template,))
    geo = GridGeometry(grid)
    if via == "measure":
        return lambda: measure(spec, geo)
    return lambda: covered_cells(template, spec, geo, "templates[0]")


def _pair_p50(heavy: Callable[[], object], light: Callable[[], object], samples: int) -> tuple[list[float], float]:
    for _ in range(200):
        heavy()
        light()
    values, baselines = [], []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        heavy()
        t1 = time.perf_counter_ns()
        light()
        t2 = time.perf_counter_ns()
        values.append((t1 - t0) / 1000)
        baselines.append((t2 - t1) / 1000)
    return values, statistics.median(baselines)


def geometry_us(samples: int) -> dict[str, object]:
    from pipelines.overlay import spec as s

    cone = s.Template(id="cone", shape="cone", origin=(20.0, 15.0), direction=30.0, distance_ft=60.0, rule="any")
    sphere = s.Template(id="ball", shape="sphere", origin=(20.0, 15.0), distance_ft=20.0, rule="center")
    values, baseline = _pair_p50(_template_measure(cone, "measure"), _template_measure(sphere, "measure"), samples)
    value = statistics.median(values)
    cells, _ = _pair_p50(_template_measure(cone, "covered_cells"), lambda: None, samples)  # the maths alone
    return {
        "bench": "geometry_us",
        "value": round(value, 2),
        "unit": "us",
        "baseline": round(baseline, 2),
        "baseline_is": "a 20-ft sphere under center, measured the same way",
        "ratio": round(value / baseline, 2),
        "p90_us": round(statistics.quantiles(values, n=10)[-1], 2),
        "via": "pipelines.overlay.geometry.measure",
        "covered_cells_us": round(statistics.median(cells), 2),
        "samples": samples,
        "case": "60-ft flat cone, rule any, origin (20, 15), direction 30",
        "target": "value <= 200",
    }


def movement_ms(samples: int) -> dict[str, object]:
    """p50 of a 60-ft movement query from the middle of an open 40x30 grid, under 5-10-5 (the alternating rule
    searches (cell, parity) states) against 5-5-5, same run, interleaved."""
    from pipelines.overlay.grid import GridGeometry
    from pipelines.overlay.paths import movement, obstacles
    from pipelines.overlay.spec import Grid, MovementQuery, OverlaySpec, Token

    def query(rule: str) -> Callable[[], object]:
        spec = OverlaySpec(Grid(cols=COLS, rows=ROWS, diagonals=rule), tokens=(Token("t", (20, 15)),))
        geo = GridGeometry(spec.grid)
        blocking = obstacles(spec, geo)
        move = MovementQuery("m", "t", 60)
        return lambda: movement(move, spec, geo, blocking)

    values, baseline = _pair_p50(query("5-10-5"), query("5-5-5"), samples)
    value = statistics.median(values) / 1000
    return {
        "bench": "movement_ms",
        "value": round(value, 3),
        "unit": "ms",
        "baseline": round(baseline / 1000, 3),
        "baseline_is": "the same query under 5-5-5",
        "ratio": round(value * 1000 / baseline, 2),
        "samples": samples,
        "case": "60 ft from (20, 15) on an open 40x30 grid",
    }


async def tactical_map_s(rounds: int) -> dict[str, object]:
    """Wall time of tactical map jobs end to end on the tiny model, in process (load_tests/_edge.py), and the share
    spent outside the generator (acceptance: measuring, the layout sketch and depth map; after it: fitting,
    drawing, encoding, storing, recording the map)."""
    from load_tests._edge import in_process
    from serve_app.config import ComposerConfig
    from serve_app.jobs.kinds import TacticalMapRequest
    from serve_app.overlays.models import OverlayBody

    body = {
        "grid": {"type": "square", "cols": 16, "rows": 12, "cell_px": 64},
        "terrain": {
            "walls": [[{"x": 8, "y": 0}, {"x": 8, "y": 5}], [{"x": 8, "y": 6}, {"x": 8, "y": 12}]],
            "doors": [{"a": {"x": 8, "y": 5}, "b": {"x": 8, "y": 6}}],
            "areas": [{"kind": "water", "cells": [[c, 9] for c in range(2, 6)]}],
            "features": [{"kind": "pillar", "cell": [12, 3]}, {"kind": "chest", "cell": [14, 10]}],
        },
        "tokens": [{"id": f"t{i}", "cell": [1 + i, 2], "label": f"T{i}"} for i in range(6)],
        "templates": [{"id": "fb", "shape": "sphere", "origin": {"x": 4, "y": 6}, "distance_ft": 20, "rule": "half"}],
        "paths": [{"id": "p", "token": "t0", "waypoints": [[1, 2], [6, 7]]}],
    }
    composer = ComposerConfig(width=256, height=256, steps=20, base_pixels=65536)  # configs/serve.yaml
    totals = []
    async with in_process(composer=composer) as service:
        for r in range(rounds + 1):
            request = TacticalMapRequest(overlay=OverlayBody.model_validate(body), seed=1000 + r)
            _, elapsed, in_generator = await service.run("tactical_map", request)
            if r > 0:  # the first one warms the model up at this size
                totals.append((elapsed, in_generator))
    total = statistics.median(t for t, _ in totals)
    outside = statistics.median((t - g) / t for t, g in totals)
    return {
        "bench": "tactical_map_s",
        "value": round(total, 3),
        "unit": "s",
        "generator_s": round(statistics.median(g for _, g in totals), 3),
        "outside_generator_share": round(outside, 3),
        "rounds": rounds,
        "map": "16x12 cells at 64 px (1024x768), generated at 256x192 (65536 px), 20 steps, tiny model",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="renders measured (each also encodes once)")
    parser.add_argument("--samples", type=int, default=2000, help="template measurements")
    parser.add_argument("--maps", type=int, default=5, help="tactical map jobs measured (after one warm-up)")
    args = parser.parse_args()
    print(json.dumps(overlay_render_ms(args.rounds)), flush=True)
    print(json.dumps(geometry_us(args.samples)), flush=True)
    print(json.dumps(movement_ms(max(50, args.samples // 10))), flush=True)
    import asyncio

    print(json.dumps(asyncio.run(tactical_map_s(args.maps))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
