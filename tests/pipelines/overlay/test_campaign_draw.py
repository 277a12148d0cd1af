"""pipelines/overlay/campaign_draw.py: rendered pixels and label layouts checked against computations done here.

Expected colours are plain alpha blends ``c * a + bg * (1 - a)`` with ``a = round(opacity * 255) / 255`` of the
module's documented colours and opacities; expected positions come from the spec (polygon edges, hex corners from
:func:`~pipelines.overlay.campaign.hex_corners`) and the documented size formulas, never from the renderer's output.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipelines.overlay import campaign_draw as cd
from pipelines.overlay.campaign import (
    CampaignSpec,
    Territory,
    hex_corners,
    hex_lattice,
    parse_campaign,
    territory_shape,
)
from pipelines.overlay.draw import PARCHMENT

TOL = 2  # 8-bit blending rounds differently from float maths by a unit or two
PLAIN = (200, 190, 170)


def _hex(value: str) -> tuple[int, int, int]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _blend(colour: str | tuple[int, int, int], under: np.ndarray | tuple[int, ...], opacity: float) -> np.ndarray:
    rgb = _hex(colour) if isinstance(colour, str) else colour
    a = round(opacity * 255) / 255
    return np.asarray(rgb, dtype=float) * a + np.asarray(under, dtype=float) * (1 - a)


def _plain(width: int, height: int, colour: tuple[int, int, int] = PLAIN) -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def _gradient(width: int, height: int) -> Image.Image:
    red = np.linspace(40.0, 220.0, width)[None, :].repeat(height, axis=0)
    green = np.linspace(30.0, 200.0, height)[:, None].repeat(width, axis=1)
    blue = np.full((height, width), 120.0)
    return Image.fromarray(np.stack([red, green, blue], axis=-1).round().astype(np.uint8), "RGB")


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _close(actual: np.ndarray, expected: np.ndarray, tol: float = TOL) -> bool:
    return bool(np.all(np.abs(np.asarray(actual, dtype=float) - np.asarray(expected, dtype=float)) <= tol))


def _spec(width: int = 512, height: int = 512, **doc: object) -> CampaignSpec:
    scale = doc.pop("scale", {"miles_per_pixel": 0.5})
    return parse_campaign({"canvas": {"width": width, "height": height}, "scale": scale, **doc})


def _unit(width: int, height: int) -> float:
    """The documented size unit."""
    return max(0.5, min(width, height) / 1024)


def _icon_box(x: float, y: float, importance: int, u: float) -> tuple[float, float, float, float]:
    """The documented icon box: half side ``max(3, (2 + 1.4 i) u)``."""
    r = max(3.0, (2.0 + 1.4 * importance) * u)
    return (x - r, y - r, x + r, y + r)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Interiors intersect (touching boxes do not overlap)."""
    return a[0] < b[2] - 1e-9 and b[0] < a[2] - 1e-9 and a[1] < b[3] - 1e-9 and b[1] < a[3] - 1e-9


# -- label placement ------------------------------------------------------------------------------------------------


def _candidates(item: cd.LabelItem) -> list[tuple[float, float, float, float]]:
    """The documented candidate boxes: right, left, above, below, then the diagonals (full gap on both axes)."""
    ax, ay = item.anchor
    w, h, g = item.width, item.height, item.gap
    xs = {"after": ax + g, "before": ax - g - w, "mid": ax - w / 2}
    ys = {"after": ay + g, "before": ay - g - h, "mid": ay - h / 2}
    order = [
        ("after", "mid"),
        ("before", "mid"),
        ("mid", "before"),
        ("mid", "after"),
        ("after", "before"),
        ("before", "before"),
        ("after", "after"),
        ("before", "after"),
    ]
    if item.centered:
        order.insert(0, ("mid", "mid"))
    return [(xs[hx], ys[vy], xs[hx] + w, ys[vy] + h) for hx, vy in order]


def _cluster(n: int = 60, seed: int = 3) -> list[tuple[str, float, float, int]]:
    """``n`` POIs packed in a 260 x 200 px patch around (512, 384), three capitals on its rim."""
    rng = np.random.default_rng(seed)
    out = [("Capital North", 512.0, 284.0, 5), ("Capital West", 382.0, 384.0, 5), ("Capital East", 642.0, 384.0, 5)]
    for i in range(n - 3):
        x, y = rng.uniform(392, 632), rng.uniform(294, 474)
        out.append((f"Hamlet {i:02d}", float(x), float(y), int(rng.integers(1, 5))))
    return out


def test_place_labels_dense_pure() -> None:
    pois = _cluster()
    u = 1.0
    obstacles = [_icon_box(x, y, imp, u) for _, x, y, imp in pois]
    items = []
    for name, x, y, imp in pois:
        r = max(3.0, (2.0 + 1.4 * imp) * u)
        items.append(cd.LabelItem(name, (x, y), 7.0 * len(name), 14.0, float(imp), r + 2.0))
    placements = cd.place_labels(items, obstacles, 1024, 768)

    assert [p.text for p in placements] == [i.text for i in items]  # input order
    placed = [p for p in placements if not p.dropped]
    dropped = [i for i, p in zip(items, placements, strict=True) if p.dropped]
    assert dropped, "the case is meant to be too dense for every label"
    assert len(placed) >= 15
    for a, b in itertools.combinations(placed, 2):
        assert not _overlap(a.box, b.box), (a, b)
    for p in placed:
        x0, y0, x1, y1 = p.box
        assert 0 <= x0 and 0 <= y0 and x1 <= 1024 and y1 <= 768
        assert not any(_overlap(p.box, ob) for ob in obstacles), p
        assert p.box in _candidates(next(i for i in items if i.text == p.text))
    taken = list(obstacles)
    for item, p in zip(items[:3], placements[:3], strict=True):  # the capitals, placed first, in input order
        free = [
            box
            for box in _candidates(item)
            if box[0] >= 0
            and box[1] >= 0
            and box[2] <= 1024
            and box[3] <= 768
            and not any(_overlap(box, t) for t in taken)
        ]
        assert free and p.box == free[0], (item.text, p)
        taken.append(free[0])
    # Greedy is maximal: every candidate of a dropped label is blocked by the final layout or leaves the canvas.
    blockers = obstacles + [p.box for p in placed]
    for item in dropped:
        for box in _candidates(item):
            outside = box[0] < 0 or box[1] < 0 or box[2] > 1024 or box[3] > 768
            assert outside or any(_overlap(box, b) for b in blockers), (item.text, box)


def test_place_labels_priority_and_order() -> None:
    low = cd.LabelItem("low", (100.0, 100.0), 40.0, 10.0, priority=1.0, gap=5.0)
    high = cd.LabelItem("high", (100.0, 100.0), 40.0, 10.0, priority=3.0, gap=5.0)
    first, second = cd.place_labels([low, high], [], 400, 400)
    assert second.position == "right" and second.box == (105.0, 95.0, 145.0, 105.0)
    assert first.position == "left" and first.box == (55.0, 95.0, 95.0, 105.0)
    # An obstacle on the right pushes it left; a canvas edge on the left pushes it above.
    (p,) = cd.place_labels([high], [(104.0, 90.0, 120.0, 110.0)], 400, 400)
    assert p.position == "left"
    near_edge = cd.LabelItem("x", (30.0, 100.0), 40.0, 10.0, gap=5.0)
    (p,) = cd.place_labels([near_edge], [(34.0, 95.0, 80.0, 105.0)], 400, 400)
    assert p.position == "above" and p.box == (10.0, 85.0, 50.0, 95.0)  # touching the obstacle is allowed
    (p,) = cd.place_labels([near_edge], [(34.0, 95.0, 80.0, 105.0), (0.0, 80.0, 400.0, 86.0)], 400, 400)
    assert p.position == "below"
    # Equal priorities keep input order; a centred item tries the centre first.
    a = cd.LabelItem("a", (200.0, 200.0), 30.0, 10.0, centered=True)
    b = cd.LabelItem("b", (200.0, 200.0), 30.0, 10.0, centered=True)
    pa, pb = cd.place_labels([a, b], [], 400, 400)
    assert pa.position == "center" and pa.box == (185.0, 195.0, 215.0, 205.0)
    assert pb.dropped  # with no gap every other box reaches the anchor, inside the first one
    pb = cd.place_labels([a, cd.LabelItem("b", (200.0, 200.0), 30.0, 10.0, centered=True, gap=5.0)], [], 400, 400)[1]
    assert pb.position == "above" and pb.box == (185.0, 185.0, 215.0, 195.0)  # right and left overlap "a"
    # No room at all: dropped.
    (p,) = cd.place_labels([cd.LabelItem("big", (50.0, 50.0), 500.0, 10.0)], [], 100, 100)
    assert p.dropped and p.box is None and p.position is None


def _dense_spec(layers: list[str] | None = None) -> CampaignSpec:
    doc: dict[str, object] = {
        "pois": [{"name": n, "kind": "town", "x": x, "y": y, "importance": imp} for n, x, y, imp in _cluster()],
    }
    if layers is not None:
        doc["layers"] = layers
    return _spec(1024, 768, **doc)


def test_rendered_labels_dense_cluster() -> None:
    spec = _dense_spec()
    result = cd.render_campaign_detailed(_plain(1024, 768), spec)
    u = _unit(1024, 768)
    icons = [_icon_box(p.x, p.y, p.importance, u) for p in spec.pois]
    panels = [b for b in (result.legend_box, result.compass_box, result.scale_bar.box) if b is not None]
    assert len(panels) == 3
    placed = [p for p in result.placements if not p.dropped]
    assert any(p.dropped for p in result.placements)
    for a, b in itertools.combinations(placed, 2):
        assert not _overlap(a.box, b.box)
    for p in placed:
        assert 0 <= p.box[0] and 0 <= p.box[1] and p.box[2] <= 1024 and p.box[3] <= 768
        assert not any(_overlap(p.box, icon) for icon in icons), p
        assert not any(_overlap(p.box, panel) for panel in panels), p
    names = {p.text for p in placed}
    assert {"Capital North", "Capital West", "Capital East"} <= names


def test_drawn_labels_stay_in_their_boxes_and_icons_in_theirs() -> None:
    """What the labels and icons paint lies inside the boxes the layout reasons about (1 px of anti-aliasing)."""
    for layers in (["labels"], ["pois"]):
        spec = _dense_spec(layers)
        result = cd.render_campaign_detailed(_plain(1024, 768), spec)
        changed = np.any(_pixels(result.image) != np.asarray(PLAIN), axis=-1)
        assert changed.any()
        if layers == ["labels"]:
            boxes = [p.box for p in result.placements if not p.dropped]
        else:
            u = _unit(1024, 768)
            boxes = [_icon_box(p.x, p.y, p.importance, u) for p in spec.pois]
        allowed = np.zeros_like(changed)
        for x0, y0, x1, y1 in boxes:
            allowed[max(0, math.floor(y0) - 1) : math.ceil(y1) + 1, max(0, math.floor(x0) - 1) : math.ceil(x1) + 1] = (
                True
            )
        assert not np.any(changed & ~allowed), layers


def test_every_poi_kind_stays_in_its_icon_box() -> None:
    kinds = ["capital", "city", "town", "village", "fort", "temple", "dungeon", "ruin", "landmark", "port", "camp"]
    pois = [
        {"name": f"{k}{imp}", "kind": k, "x": 40.0 + 42 * i, "y": 60.0 + 70 * imp, "importance": imp}
        for i, k in enumerate(kinds)
        for imp in range(1, 6)
    ]
    spec = _spec(512, 512, pois=pois, layers=["pois"])
    image = cd.render_campaign(_plain(512, 512), spec)
    changed = np.any(_pixels(image) != np.asarray(PLAIN), axis=-1)
    allowed = np.zeros_like(changed)
    u = _unit(512, 512)
    for p in spec.pois:
        x0, y0, x1, y1 = _icon_box(p.x, p.y, p.importance, u)
        allowed[math.floor(y0) - 1 : math.ceil(y1) + 1, math.floor(x0) - 1 : math.ceil(x1) + 1] = True
        assert changed[int(p.y) - 3 : int(p.y) + 3, int(p.x) - 3 : int(p.x) + 3].any(), p.name  # something drawn
    assert not np.any(changed & ~allowed)


# -- borders and territories ------------------------------------------------------------------------------------------

_A = [[100, 100], [300, 100], [300, 300], [100, 300]]
_B = [[300, 100], [500, 100], [500, 300], [300, 300]]


def test_shared_border_is_drawn_once() -> None:
    spec = _spec(
        territories=[
            {"name": "A", "color": "#c0392b", "polygon": _A},
            {"name": "B", "color": "#2980b9", "polygon": _B},
        ],
        layers=["borders"],
    )
    px = _pixels(cd.render_campaign(_plain(512, 512), spec))
    once = _blend(cd.BORDER_COLOR, PLAIN, cd.BORDER_OPACITY)
    twice = _blend(cd.BORDER_COLOR, once, cd.BORDER_OPACITY)
    assert np.abs(once - twice).max() > 10  # a double-drawn stroke would be told apart
    # Width max(2.5, 2.5 u) = 2.5 px centred on x = 300 covers pixels 299 and 300 fully; likewise at x = 100, 500.
    for x in (299, 300):
        assert _close(px[200, x], once), (x, px[200, x], once)
    for x in (99, 100, 499, 500):
        assert _close(px[200, x], once), (x, px[200, x], once)
    assert _close(px[200, 299], px[200, 99], 1)
    assert _close(px[100, 200], once) and _close(px[300, 400], once)  # top and bottom edges
    assert _close(px[200, 200], PLAIN, 0)  # no fill on this layer


def test_shared_border_once_with_hexes() -> None:
    """Two hex territories side by side: their common edge is one stroke, like their outer edges."""
    hexes = {"size_px": 60}
    spec = _spec(
        scale={"hex": hexes},
        territories=[
            {"name": "A", "color": "#c0392b", "hexes": [[2, 2]]},
            {"name": "B", "color": "#2980b9", "hexes": [[3, 2]]},
        ],
        layers=["borders"],
    )
    px = _pixels(cd.render_campaign(_plain(512, 512), spec))
    once = _blend(cd.BORDER_COLOR, PLAIN, cd.BORDER_OPACITY)
    grid = spec.scale.hex
    a, b = hex_corners(2, 2, grid), hex_corners(3, 2, grid)
    shared = [p for p in a if any(math.dist(p, q) < 1e-6 for q in b)]
    assert len(shared) == 2
    mid = ((shared[0][0] + shared[1][0]) / 2, (shared[0][1] + shared[1][1]) / 2)
    outer = ((a[3][0] + a[4][0]) / 2, (a[3][1] + a[4][1]) / 2)  # A's edge facing away from B (corners 3-4)
    for x, y in (mid, outer):
        assert _close(px[int(y), int(x)], once), ((x, y), px[int(y), int(x)], once)


def test_no_border_between_a_territorys_own_pieces() -> None:
    colour = "#2e8b57"
    left = [[100, 100], [250, 100], [250, 300], [100, 300]]
    right = [[250, 100], [400, 100], [400, 300], [250, 300]]
    spec = _spec(
        territories=[{"name": "A", "color": colour, "polygons": [left, right]}],
        layers=["territories", "borders"],
    )
    px = _pixels(cd.render_campaign(_plain(512, 512), spec))
    fill = _blend(colour, PLAIN, cd.TERRITORY_OPACITY)
    assert _close(px[120:281, 246:255], fill), px[200, 246:255]  # the pieces' common edge x = 250: plain fill
    assert _close(px[200, 175], fill) and _close(px[200, 325], fill)
    assert _close(px[200, 100], _blend(cd.BORDER_COLOR, fill, cd.BORDER_OPACITY))  # the outer border is there
    assert _close(px[200, 99], _blend(cd.BORDER_COLOR, PLAIN, cd.BORDER_OPACITY))
    assert _close(px[50, 50], PLAIN, 0)


def test_no_border_between_adjacent_hexes_of_one_territory() -> None:
    colour = "#8e44ad"
    spec = _spec(
        scale={"hex": {"size_px": 50}},
        territories=[{"name": "A", "color": colour, "hexes": [[2, 2], [3, 2], [2, 3]]}],
        layers=["territories", "borders"],
    )
    px = _pixels(cd.render_campaign(_plain(512, 512), spec))
    fill = _blend(colour, PLAIN, cd.TERRITORY_OPACITY)
    grid = spec.scale.hex
    for other in ((3, 2), (2, 3)):
        a, b = hex_corners(2, 2, grid), hex_corners(*other, grid)
        shared = [p for p in a if any(math.dist(p, q) < 1e-6 for q in b)]
        (x0, y0), (x1, y1) = shared
        for t in (0.3, 0.5, 0.7):
            x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            assert _close(px[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2], fill), (other, t)
    a = hex_corners(2, 2, grid)
    outer = ((a[3][0] + a[4][0]) / 2, (a[3][1] + a[4][1]) / 2)
    assert not _close(px[int(outer[1]), int(outer[0])], fill, 10)  # the outside edge has its border


def test_contested_land_is_hatched_in_both_colours() -> None:
    red, blue = "#d62728", "#1f77b4"
    spec = _spec(
        territories=[
            {
                "name": "A",
                "color": red,
                "polygon": [[100, 100], [350, 100], [350, 350], [100, 350]],
                "contested_with": "B",
            },
            {"name": "B", "color": blue, "polygon": [[250, 250], [500, 250], [500, 500], [250, 500]]},
        ],
        layers=["territories"],
    )
    px = _pixels(cd.render_campaign(_plain(512, 512), spec))
    under = _blend(blue, _blend(red, PLAIN, cd.TERRITORY_OPACITY), cd.TERRITORY_OPACITY)
    stripe_a = _blend(red, under, cd.HATCH_OPACITY)
    stripe_b = _blend(blue, under, cd.HATCH_OPACITY)
    row = px[300, 256:345]
    near_a = np.all(np.abs(row - stripe_a) <= TOL, axis=-1)
    near_b = np.all(np.abs(row - stripe_b) <= TOL, axis=-1)
    assert near_a.sum() >= 15 and near_b.sum() >= 15, (near_a.sum(), near_b.sum())
    # Stripes at 45 degrees: moving one pixel right and one up keeps the colour (x + y constant).
    for x in range(260, 340):
        if near_a[x - 256]:
            assert _close(px[299, x + 1], px[300, x], 1)
    # Land held by one side only is its plain tint, no hatch.
    assert _close(px[150, 150], _blend(red, PLAIN, cd.TERRITORY_OPACITY))
    assert _close(px[450, 450], _blend(blue, PLAIN, cd.TERRITORY_OPACITY))
    assert _close(px[50, 50], PLAIN, 0)


def _buffered_union(spec: CampaignSpec, territory: Territory) -> Any:
    """The territory's land the slow, obvious way: every hex's corners and every ring, buffered and merged."""
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    parts = [Polygon(ring) for ring in territory.polygons]
    parts += [Polygon(hex_corners(q, r, spec.scale.hex)) for q, r in territory.hexes]
    return unary_union([p.buffer(1e-6) for p in parts]).buffer(-1e-6)


def test_territory_shape_merges_hexes_and_polygons_into_the_same_land_as_a_plain_union() -> None:
    for orientation in ("flat", "pointy"):
        spec = _spec(
            1024,
            1024,
            scale={"hex": {"size_px": 24, "orientation": orientation}},
            territories=[
                {
                    "name": "H",
                    "color": "#123456",
                    "hexes": [[q, r] for q in range(3, 14) for r in range(2, 9) if (q + 2 * r) % 7],
                },
                {
                    "name": "M",
                    "color": "#654321",
                    "hexes": [[20, 3], [21, 3]],
                    "polygons": [[[500, 500], [700, 500], [700, 650], [500, 650]]],
                },
                {"name": "P", "color": "#abcdef", "polygons": [_A, _B]},
            ],
        )
        for t in spec.territories:
            land, shape = territory_shape(spec, t), _buffered_union(spec, t)
            assert land.is_valid
            assert land.symmetric_difference(shape).area < 1e-3 * shape.area, (orientation, t.name)


def test_hex_lattice_matches_hex_corners() -> None:
    for orientation in ("flat", "pointy"):
        spec = _spec(scale={"hex": {"size_px": 17.5, "orientation": orientation}})
        cells = np.array([[q, r] for q in range(-2, 5) for r in range(-3, 4)])
        corners, (sx, sy) = hex_lattice(cells, spec.scale.hex)
        for (q, r), lattice in zip(cells.tolist(), corners, strict=True):
            expected = np.asarray(hex_corners(q, r, spec.scale.hex))
            assert np.allclose(lattice * np.array([sx, sy]), expected, atol=1e-9), (orientation, q, r)


# -- hex grid ---------------------------------------------------------------------------------------------------------


def test_hex_grid_draws_each_edge_once() -> None:
    for orientation in ("flat", "pointy"):
        spec = _spec(scale={"hex": {"size_px": 40, "orientation": orientation}}, layers=["hex_grid"])
        grid = spec.scale.hex
        segments = cd._hex_grid_polylines(spec, grid)

        def key(a: tuple[float, float], b: tuple[float, float]) -> tuple[tuple[float, float], ...]:
            return tuple(sorted(((round(a[0], 4), round(a[1], 4)), (round(b[0], 4), round(b[1], 4)))))

        drawn = [key(tuple(p), tuple(q)) for line in segments.tolist() for p, q in itertools.pairwise(line)]
        assert len(drawn) == len(set(drawn))
        expected = set()
        for q, r in itertools.product(range(-3, 20), range(-15, 20)):
            corners = hex_corners(q, r, grid)
            for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
                mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
                if 0 < mx < 512 and 0 < my < 512:
                    expected.add(key(a, b))
        assert expected <= set(drawn), (orientation, len(expected - set(drawn)))

        px = _pixels(cd.render_campaign(_plain(512, 512), spec))
        width = max(1.0, 0.035 * 40)
        assert width >= 1.4
        line = _blend(cd.HEX_GRID_COLOR, PLAIN, cd.HEX_GRID_OPACITY)
        c = hex_corners(3, 3, grid)
        for i in range(6):  # the middles of an inner hex's six edges
            a, b = c[i], c[(i + 1) % 6]
            mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
            # The pixel nearest the edge's middle is at least partly covered, never more than once.
            sample = px[int(my) - 1 : int(my) + 2, int(mx) - 1 : int(mx) + 2].reshape(-1, 3)
            darkest = sample[np.argmin(sample.sum(axis=1))]
            assert np.all(darkest >= line - TOL), (orientation, i, darkest, line)
            assert not _close(darkest, PLAIN, 3)
        assert _close(px[int(c[0][1] - 20), int(c[0][0] - 40)], PLAIN, 0)  # a hex's inside is untouched


# -- scale bar --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "scale"),
    [
        (1000, {"miles_per_pixel": 0.37}),
        (1000, {"miles_per_pixel": 0.05}),
        (800, {"miles_per_pixel": 3.0}),
        (1200, {"miles_per_pixel": 12.3}),
        (640, {"miles_per_pixel": 0.0021}),
        (1000, {"hex": {"size_px": 30, "miles_per_hex": 6}}),
    ],
)
def test_scale_bar_length_matches_its_label(width: int, scale: dict[str, object]) -> None:
    spec = _spec(width, 600, scale=scale, layers=["scale_bar"])
    result = cd.render_campaign_detailed(_plain(width, 600, (255, 255, 255)), spec)
    bar = result.scale_bar
    match = re.fullmatch(r"([0-9.]+) mi", bar.label)
    assert match, bar.label
    miles = float(match.group(1))
    mpp = spec.scale.miles_per_pixel
    expected = miles / mpp
    assert 0.15 * width <= expected <= 0.25 * width
    mantissa = miles / 10 ** math.floor(math.log10(miles))
    assert any(abs(mantissa - m) < 1e-9 for m in (1, 1.5, 2, 2.5, 3, 4, 5, 7.5)), miles
    px = _pixels(result.image)
    dark = px.sum(axis=-1) < 150  # the bar's ink (43, 33, 24); the panel's thin outline stays lighter
    counts = dark.sum(axis=1)
    row = int(np.argmax(counts))
    run = np.flatnonzero(dark[row])
    assert run.size and run[-1] - run[0] + 1 == run.size  # one unbroken bar
    assert abs(run.size - expected) <= 2, (bar.label, run.size, expected)


def test_nice_scale_miles_stays_in_range() -> None:
    for mpp in np.geomspace(1e-4, 500, 400):
        for width in (64, 333, 1024, 4096):
            miles = cd.nice_scale_miles(width, float(mpp))
            share = miles / mpp / width
            assert 0.15 - 1e-9 <= share <= 0.25 + 1e-9, (mpp, width, miles)
    assert cd.nice_scale_miles(2048, 0.25) == 100  # 1-2-5 numbers win when one fits
    assert cd.nice_scale_miles(1000, 0.1) == 20


# -- output, base, layers -------------------------------------------------------------------------------------------

_SCENE = {
    "pois": [
        {"name": "Keep", "kind": "fort", "x": 120, "y": 320},
        {"name": "Oakham", "kind": "town", "x": 200, "y": 380},
    ],
    "territories": [{"name": "Vale", "color": "#3a7d44", "polygon": [[60, 260], [260, 260], [260, 420], [60, 420]]}],
    "routes": [{"kind": "road", "from": "Keep", "to": "Oakham"}],
    "party": {"x": 150, "y": 400, "travelled": [[90, 410]], "planned": [[230, 330]]},
}


def _far_region(result: cd.CampaignRender) -> tuple[slice, slice]:
    """A patch away from the scene and from every panel and label the layout reports."""
    box = (380.0, 180.0, 500.0, 300.0)
    others = [result.legend_box, result.compass_box, result.scale_bar.box if result.scale_bar else None]
    others += [p.box for p in result.placements if p.box is not None]
    assert not any(o is not None and _overlap(box, o) for o in others)
    return slice(180, 300), slice(380, 500)


def test_output_size_and_untouched_base() -> None:
    spec = _spec(640, 480, title="Test", **_SCENE)
    base = _gradient(640, 480)
    result = cd.render_campaign_detailed(base, spec, day_marks=[(190, 365)])
    image = result.image
    assert image.mode == "RGB" and image.size == (640, 480)
    rows, cols = _far_region(result)
    assert np.array_equal(_pixels(image)[rows, cols], _pixels(base)[rows, cols])
    assert not np.array_equal(_pixels(image), _pixels(base))
    assert _pixels(base).shape == (480, 640, 3)  # the base itself is left alone
    assert base.getpixel((0, 0)) == _gradient(640, 480).getpixel((0, 0))


def test_base_of_another_size_is_resized_and_none_is_parchment() -> None:
    spec = _spec(640, 480, **_SCENE)
    small = _gradient(320, 240)
    result = cd.render_campaign_detailed(small, spec)
    assert result.image.size == (640, 480)
    rows, cols = _far_region(result)
    resized = small.resize((640, 480), Image.Resampling.LANCZOS)
    assert np.array_equal(_pixels(result.image)[rows, cols], _pixels(resized)[rows, cols])
    plain = cd.render_campaign_detailed(None, spec)
    assert np.all(_pixels(plain.image)[rows, cols] == np.asarray(_hex(PARCHMENT)))
    rgba = Image.new("RGBA", (640, 480), (0, 0, 0, 0))
    assert np.all(_pixels(cd.render_campaign(rgba, spec))[rows, cols] == np.asarray(_hex(PARCHMENT)))


def test_no_layers_leaves_the_base() -> None:
    spec = _spec(640, 480, layers=[], **_SCENE)
    base = _gradient(640, 480)
    result = cd.render_campaign_detailed(base, spec)
    assert np.array_equal(_pixels(result.image), _pixels(base))
    assert result.placements == () and result.scale_bar is None and result.legend_box is None


def test_png_is_deterministic_and_matches_the_image() -> None:
    spec = _spec(640, 480, title="Test", **_SCENE)
    base = _gradient(640, 480)
    first = cd.render_campaign_png(base, spec, day_marks=[(190, 365)])
    second = cd.render_campaign_png(base, spec, day_marks=[(190, 365)])
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and first == second
    decoded = Image.open(io.BytesIO(first))
    assert decoded.size == (640, 480)
    image = cd.render_campaign(base, spec, day_marks=[(190, 365)])
    assert np.array_equal(_pixels(decoded.convert("RGB")), _pixels(image))


# -- routes, party, legend --------------------------------------------------------------------------------------------


def test_route_styles() -> None:
    spec = _spec(
        1024,
        1024,
        routes=[
            {"kind": "road", "points": [[50, 100], [450, 100]]},
            {"kind": "river", "points": [[50, 200], [450, 200]]},
            {"kind": "trail", "points": [[50, 300], [450, 300]]},
            {"kind": "sea_lane", "points": [[50, 400], [450, 400]]},
        ],
        layers=["routes"],
    )
    px = _pixels(cd.render_campaign(_plain(1024, 1024), spec))
    u = _unit(1024, 1024)

    def band(y: int, colour: str) -> int:
        column = px[y - 10 : y + 10, 250]
        return int(np.all(np.abs(column - np.asarray(_hex(colour))) <= TOL, axis=-1).sum())

    road, river = cd.ROUTE_STYLES["road"], cd.ROUTE_STYLES["river"]
    assert _close(px[100, 250], _hex(road.color)) and _close(px[200, 250], _hex(river.color))
    assert band(200, river.color) > band(100, road.color) >= 1
    assert abs(band(200, river.color) - river.width * u) <= 1.5
    # A trail is dashed and a sea lane dotted: along them the colour comes and goes; a road does not break.
    for y, kind in ((300, "trail"), (400, "sea_lane")):
        along = np.all(np.abs(px[y, 60:440] - np.asarray(_hex(cd.ROUTE_STYLES[kind].color))) <= 40, axis=-1)
        assert 0.15 < along.mean() < 0.85, (kind, along.mean())
    assert np.all(np.abs(px[100, 60:440] - np.asarray(_hex(road.color))) <= TOL)


def test_party_marker_paths_and_day_marks() -> None:
    spec = _spec(
        party={"x": 250, "y": 250, "travelled": [[100, 250]], "planned": [[400, 250]]},
        layers=["party"],
    )
    px = _pixels(cd.render_campaign(_plain(512, 512), spec, day_marks=[(300, 250), (350, 250)]))
    red = np.asarray(_hex(cd.PARTY_COLOR))
    travelled = np.all(np.abs(px[250, 110:235] - red) <= TOL, axis=-1)
    planned = np.all(np.abs(px[250, 265:295] - red) <= TOL, axis=-1)
    assert travelled.all()  # solid
    assert 0.2 < planned.mean() < 0.9  # dashed
    assert _close(px[250, 300], (255, 255, 255)) and _close(px[250, 350], (255, 255, 255))  # day dots
    # Their numbers, up and right of each dot, are drawn in the party's colour.
    for x in (300, 350):
        patch = px[228:250, x + 2 : x + 16].reshape(-1, 3)
        assert np.any(np.all(np.abs(patch - red) <= 30, axis=-1)), x
    assert not _close(px[250, 250], PLAIN, 10)  # the marker


def test_legend_lists_what_is_present() -> None:
    spec = _spec(640, 480, title="Test", **_SCENE, resources=[{"kind": "mine", "x": 300, "y": 100, "quantity": 1200}])
    entries = cd.campaign_legend_entries(spec)
    assert [(e.section, e.key) for e in entries] == [
        ("faction", "Vale"),
        ("route", "road"),
        ("poi", "town"),
        ("poi", "fort"),
        ("resource", "mine"),
        ("party", "party"),
    ]
    result = cd.render_campaign_detailed(_plain(640, 480), spec)
    x0, y0, x1, y1 = result.legend_box
    assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
    assert _overlap(result.legend_box, result.legend_box)
    assert not _overlap(result.legend_box, result.scale_bar.box)
    assert not _overlap(result.legend_box, result.compass_box)
    off = _spec(640, 480, **{**_SCENE, "layers": ["routes", "legend"]})
    assert [e.section for e in cd.campaign_legend_entries(off)] == ["route"]
