"""pipelines/prompts/maps.py: layout sketch pixels at cells computed here (square and hex centres from the Red Blob
formulas), depth ordering and blur, the tactical prompt, model sizes worked by hand, exact fitting."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import InputError
from pipelines.overlay.spec import AREA_EFFECTS, FEATURE_BLOCKS, Area, Feature, Grid, OverlaySpec, Portal, Terrain
from pipelines.prompts.maps import (
    DEPTH_LEVELS,
    LAYOUT_COLOURS,
    MAP_NEGATIVE,
    WALL_WIDTH,
    depth_map,
    describe_terrain,
    fit_exact,
    layout_sketch,
    model_size,
    tactical_prompt,
)

C = LAYOUT_COLOURS
WATER_BLOCK = frozenset({(2, 3), (3, 3), (2, 4), (3, 4)})  # grid units x 2..4, y 3..5


def _sketch_spec() -> OverlaySpec:
    terrain = Terrain(
        walls=(((5.0, 1.0), (9.0, 1.0), (9.0, 6.0)),),
        doors=(Portal((0.0, 6.0), (2.0, 6.0)), Portal((5.0, 7.0), (7.0, 7.0), closed=False)),
        windows=(Portal((6.0, 3.0), (6.0, 5.0)),),
        areas=(
            Area("water", cells=WATER_BLOCK),
            Area("vegetation", polygon=((0.0, 0.0), (2.0, 0.0), (0.0, 2.0))),
            Area("sand", cells=frozenset({(4, 6)})),
        ),
        features=(Feature("tree", (7, 4)), Feature("chest", (1, 1)), Feature("bookshelf", (4, 1))),
    )
    return OverlaySpec(grid=Grid(cols=10, rows=8, cell_px=20), terrain=terrain)


def _px(image: Image.Image, x: float, y: float) -> tuple[int, ...]:
    return image.getpixel((math.floor(x), math.floor(y)))  # type: ignore[return-value]


def _centre(cell: tuple[int, int], cell_px: float = 20, ox: float = 0, oy: float = 0) -> tuple[float, float]:
    return ox + (cell[0] + 0.5) * cell_px, oy + (cell[1] + 0.5) * cell_px


# -- layout sketch ------------------------------------------------------------------------------------------------


def test_sketch_cells_areas_and_features_have_their_colours() -> None:
    image = layout_sketch(_sketch_spec(), 200, 160)
    assert image.mode == "RGB" and image.size == (200, 160)
    pixels = np.asarray(image)
    # the water cells tile exactly: every pixel of x 40..79, y 60..99 is water, the ring around them is not
    assert (pixels[60:100, 40:80] == C["water"]).all()
    assert (pixels[60:100, 39] == C["floor"]).all() and (pixels[60:100, 80] == C["floor"]).all()
    assert (pixels[59, 40:80] == C["floor"]).all() and (pixels[100, 40:80] == C["floor"]).all()
    assert _px(image, *_centre((4, 6))) == C["area"]  # an unknown area kind
    assert _px(image, 8, 8) == C["vegetation"]  # inside the triangle x + y <= 2 (units)
    assert _px(image, 21, 21) == C["floor"]  # (1.05, 1.05): x + y > 2, and off the chest disc (radius 0.4)
    assert _px(image, *_centre((7, 4))) == C["tree"]
    assert _px(image, *_centre((1, 1))) == C["chest"]
    assert _px(image, *_centre((4, 1))) == C["feature"]  # an unknown feature kind
    assert _px(image, 7 * 20 + 10 + 9, 90) == C["floor"]  # 0.45 units right of the tree's centre: off its disc


def test_sketch_walls_doors_windows_are_thick_lines_in_their_colours() -> None:
    image = layout_sketch(_sketch_spec(), 200, 160)
    pixels = np.asarray(image)
    # the wall along y = 1 unit = 20 px: a band of round(0.2 * 20) = 4 px centred on it (pixels 18..21)
    column = pixels[5:35, 140]
    wall_rows = [5 + i for i, p in enumerate(column) if tuple(p) == C["wall"]]
    assert wall_rows == list(range(20 - 2, 20 + 2)) and len(wall_rows) == round(WALL_WIDTH * 20)
    row = pixels[80, 165:195]  # the wall down x = 9 units = 180 px
    assert [165 + i for i, p in enumerate(row) if tuple(p) == C["wall"]] == [178, 179, 180, 181]
    assert _px(image, 180, 20) == C["wall"]  # the corner is joined
    assert _px(image, 20, 120) == C["door"] and _px(image, 20, 119) == C["door"]  # closed door, y = 6
    assert _px(image, 120, 140) == C["door"]  # an open door is drawn too
    assert _px(image, 120, 80) == C["window"] and _px(image, 119, 80) == C["window"]
    assert _px(image, 125, 80) == C["floor"]


def test_sketch_is_not_antialiased() -> None:
    pixels = np.asarray(layout_sketch(_sketch_spec(), 200, 160)).reshape(-1, 3)
    used = {tuple(int(v) for v in p) for p in np.unique(pixels, axis=0)}
    assert used <= set(C.values())
    assert {C["floor"], C["wall"], C["door"], C["window"], C["water"], C["tree"]} <= used


def test_sketch_scale_multiplies_the_size() -> None:
    half = layout_sketch(_sketch_spec(), 200, 160, scale=0.5)
    assert half.size == (100, 80)
    assert _px(half, *_centre((2, 3), 10)) == C["water"]
    assert _px(half, *_centre((3, 3), 10)) == C["water"] and _px(half, *_centre((4, 3), 10)) == C["floor"]
    assert layout_sketch(_sketch_spec(), 200, 160, scale=1.5).size == (300, 240)


def test_sketch_of_another_aspect_is_centred_at_one_scale() -> None:
    # 10 x 8 units into 256 x 160: s = min(25.6, 20) = 20 px per unit, centred: ox = (256 - 200) / 2 = 28
    image = layout_sketch(_sketch_spec(), 256, 160)
    assert _px(image, *_centre((2, 3), 20, ox=28)) == C["water"]
    assert _px(image, 28 + 39, 70) == C["floor"] and _px(image, 28 + 40, 70) == C["water"]
    assert _px(image, 28 + 140, 19) == C["wall"]
    assert _px(image, 5, 80) == C["floor"] and _px(image, 250, 80) == C["floor"]  # the margins


def test_sketch_at_model_size_lines_up_after_fit_exact() -> None:
    spec = _sketch_spec()
    # without the polygon area: pixel centres exactly on its diagonal edge fall either way in PIL's fill
    areas = tuple(a for a in spec.terrain.areas if not a.polygon)
    spec = dataclasses.replace(spec, terrain=dataclasses.replace(spec.terrain, areas=areas))
    exact = np.asarray(layout_sketch(spec, 200, 160)).astype(int)
    # the same scale (20 px per unit) in a wider image: fitting crops the margins off, pixel for pixel
    same_scale = np.asarray(fit_exact(layout_sketch(spec, 256, 160), 200, 160)).astype(int)
    assert np.abs(same_scale - exact).max() <= 1
    # a model size of another aspect (s = 25, ox = 3): after the fit, water and wall sit where the map says
    fitted = fit_exact(layout_sketch(spec, 256, 200), 200, 160)
    block = np.asarray(fitted).astype(int)[65:95, 45:75]
    assert np.abs(block - np.array(C["water"])).max() <= 3
    for y in (19, 20):
        got = np.array(_px(fitted, 140, y))
        assert np.abs(got - C["wall"]).sum() < np.abs(got - C["floor"]).sum()


def _hex_centre(cell: tuple[int, int], orientation: str, offset: str) -> tuple[float, float]:
    """Red Blob's offset-to-pixel in units of the flat-to-flat width (size 1/sqrt 3), origin at the box corner."""
    s = 1 / math.sqrt(3)
    c, r = cell
    if orientation == "pointy":  # rows shoved right: odd-r the odd ones, even-r the even ones
        shove = (r % 2 == 1) if offset == "odd-r" else (r % 2 == 0)
        return 0.5 + c + 0.5 * shove, s + 1.5 * s * r
    shove = (c % 2 == 1) if offset == "odd-q" else (c % 2 == 0)
    return s + 1.5 * s * c, 0.5 + r + 0.5 * shove


@pytest.mark.parametrize(
    ("orientation", "offset", "cols", "rows", "extent"),
    [
        ("pointy", "odd-r", 6, 5, (6.5, 8 / math.sqrt(3))),  # width cols + 1/2, height 2s + 1.5 s (rows - 1)
        ("flat", "even-q", 5, 4, (8 / math.sqrt(3), 4.5)),
    ],
)
def test_hex_sketch_fills_hexes_at_their_centres(
    orientation: str, offset: str, cols: int, rows: int, extent: tuple[float, float]
) -> None:
    grid = Grid(type="hex", cols=cols, rows=rows, size_px=20, orientation=orientation, offset=offset)
    terrain = Terrain(areas=(Area("water", cells=frozenset({(2, 2)})),), features=(Feature("tree", (4, 3)),))
    ppu = math.sqrt(3) * 20
    width, height = math.ceil(extent[0] * ppu), math.ceil(extent[1] * ppu)
    image = layout_sketch(OverlaySpec(grid=grid, terrain=terrain), width, height)
    assert image.size == (width, height)

    def at(cell: tuple[int, int]) -> tuple[int, ...]:
        x, y = _hex_centre(cell, orientation, offset)
        return _px(image, x * ppu, y * ppu)

    assert at((2, 2)) == C["water"]
    assert at((4, 3)) == C["tree"]
    for neighbour in ((1, 2), (3, 2), (2, 1), (2, 3)):
        assert at(neighbour) == C["floor"]


def test_layout_colours_cover_every_known_kind() -> None:
    assert set(AREA_EFFECTS) | set(FEATURE_BLOCKS) | {"floor", "wall", "door", "window", "area", "feature"} <= set(C)


# -- depth map ----------------------------------------------------------------------------------------------------


def _depth_spec() -> OverlaySpec:
    terrain = Terrain(
        walls=(((5.0, 1.0), (9.0, 1.0), (9.0, 6.0)),),
        doors=(Portal((0.0, 6.0), (2.0, 6.0)), Portal((4.0, 7.0), (6.0, 7.0), closed=False)),
        areas=(
            Area("water", cells=WATER_BLOCK),
            Area("rubble", cells=frozenset({(6, 4), (7, 4), (6, 5), (7, 5)})),
            Area("pit", cells=frozenset({(0, 0)})),
            Area("lava", cells=frozenset({(1, 7)})),
            Area("vegetation", cells=frozenset({(4, 5)})),
            Area("sand", cells=frozenset({(5, 3)})),
            Area("mud", cells=frozenset({(8, 3)})),
        ),
        features=(Feature("pillar", (1, 1)), Feature("chest", (4, 1))),
    )
    return OverlaySpec(grid=Grid(cols=10, rows=8, cell_px=20), terrain=terrain)


def test_depth_levels_and_ordering() -> None:
    depth = depth_map(_depth_spec(), 200, 160)
    assert depth.mode == "L" and depth.size == (200, 160)

    def at(x: float, y: float) -> int:
        return int(depth.getpixel((math.floor(x), math.floor(y))))  # type: ignore[arg-type]

    floor, water, rubble = at(110, 130), at(60, 80), at(140, 100)
    wall = at(140, 20)
    assert abs(floor - 128) <= 1 and abs(water - 40) <= 1 and abs(rubble - 160) <= 1
    assert wall > rubble > floor > water
    assert at(10, 10) <= 41 and at(30, 150) <= 41  # pit, lava
    assert abs(at(90, 110) - 160) <= 1  # vegetation: difficult -> raised
    assert abs(at(110, 70) - 128) <= 1  # an unknown kind: floor
    assert abs(at(170, 70) - DEPTH_LEVELS["mud"]) <= 2
    assert at(30, 30) > 220  # the pillar blocks: high
    assert abs(at(90, 30) - 180) <= 2  # the chest: furniture
    assert at(20, 120) > floor + 40  # the closed door is as high as a wall
    assert abs(at(100, 140) - 128) <= 1  # the open door is not drawn


def test_depth_is_blurred_softly() -> None:
    depth = np.asarray(depth_map(_depth_spec(), 200, 160)).astype(int)
    edge = depth[80, 36:45]  # across the water's left edge at x = 40 px
    assert 40 + 5 < edge[4] < 128 - 5
    assert all(a >= b for a, b in itertools.pairwise(edge))  # falls monotonically into the water
    assert len(set(edge.tolist())) >= 5


# -- prompt -------------------------------------------------------------------------------------------------------


def test_tactical_prompt_with_a_user_prompt() -> None:
    prompt, negative = tactical_prompt(_sketch_spec(), "  a ruined temple,  moss ")
    assert prompt == "top-down battle map, orthographic overhead view, a ruined temple, moss, no grid, no text"
    assert negative == MAP_NEGATIVE == "perspective, isometric, grid lines, text, watermark, characters, tokens"


def test_tactical_prompt_from_the_terrain() -> None:
    terrain = Terrain(
        walls=(((0.0, 0.0), (1.0, 0.0)),),
        doors=(Portal((0.0, 1.0), (1.0, 1.0)), Portal((0.0, 2.0), (1.0, 2.0), closed=False)),
        areas=(Area("water", cells=frozenset({(0, 0)})),),
        features=(Feature("tree", (1, 1)), Feature("tree", (2, 2)), Feature("tree", (3, 3))),
    )
    spec = OverlaySpec(grid=Grid(cols=5, rows=5), terrain=terrain)
    for blank in (None, "", "  , "):
        prompt, _ = tactical_prompt(spec, blank)
        assert prompt == (
            "top-down battle map, orthographic overhead view, stone walls, 2 doors, a pool of water, trees, "
            "no grid, no text"
        )


def test_describe_terrain_counts_and_order() -> None:
    terrain = Terrain(
        doors=(Portal((0.0, 1.0), (1.0, 1.0)),),
        windows=(Portal((0.0, 2.0), (1.0, 2.0)),),
        areas=(
            Area("floor", cells=frozenset({(0, 0)})),
            Area("water", cells=frozenset({(0, 0)})),
            Area("lava", cells=frozenset({(1, 0)})),
            Area("water", cells=frozenset({(2, 0)})),
        ),
        features=(Feature("altar", (1, 1)), Feature("barrel", (2, 2)), Feature("barrel", (3, 3))),
    )
    assert describe_terrain(terrain) == "a door, a window, pools of water, a pool of lava, an altar, barrels"
    assert describe_terrain(Terrain()) == "open ground"


# -- sizes --------------------------------------------------------------------------------------------------------


def test_model_size_hand_worked() -> None:
    # 2800 x 2100 at 1 MP: h = sqrt(1048576 * 3 / 4) = 886.81, w = 1182.41
    assert model_size(2800, 2100, base_pixels=1024 * 1024, multiple=64) == (1152, 896)  # 18.48 -> 18, 13.86 -> 14
    assert model_size(2800, 2100, base_pixels=1024 * 1024) == (1184, 888)  # 147.8 -> 148, 110.85 -> 111
    assert model_size(1000, 1000, base_pixels=1024 * 1024) == (1024, 1024)
    # 4:1 at 1 MP is 2048 x 512; capped at 1536 the long side: 1536 x 384
    assert model_size(4000, 1000, base_pixels=1024 * 1024, max_side=1536) == (1536, 384)
    # a sliver: at least one multiple on the short side
    assert model_size(100, 10000, base_pixels=4096, multiple=64) == (64, 640)


@pytest.mark.parametrize(
    ("cols_px", "rows_px", "base", "multiple", "max_side"),
    [
        (2800, 2100, 1024 * 1024, 8, None),
        (1400, 3500, 1024 * 1024, 64, None),
        (700, 700, 512 * 512, 8, None),
        (6300, 1050, 1024 * 1024, 8, 2048),
        (910, 1330, 768 * 768, 16, 1024),
    ],
)
def test_model_size_multiples_and_aspect(
    cols_px: int, rows_px: int, base: int, multiple: int, max_side: int | None
) -> None:
    w, h = model_size(cols_px, rows_px, base_pixels=base, multiple=multiple, max_side=max_side)
    assert w % multiple == 0 and h % multiple == 0 and w >= multiple and h >= multiple
    if max_side is not None:
        assert max(w, h) <= max_side
    # each side is within half a multiple of the exact-aspect size, so the aspect error is bounded by that
    aspect = cols_px / rows_px
    assert abs(w / h - aspect) <= aspect * (multiple / 2) * (1 / w + 1 / h) * 1.01
    if max_side is None or max(w, h) < max_side:
        assert abs(w * h - base) <= (multiple / 2) * (w + h) + multiple * multiple / 4


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"cols_px": 0}, "cols_px"),
        ({"rows_px": -3}, "rows_px"),
        ({"base_pixels": 0}, "base_pixels"),
        ({"multiple": 0}, "multiple"),
        ({"max_side": 4}, "max_side"),
    ],
)
def test_model_size_errors(kwargs: dict[str, int], param: str) -> None:
    args = {"cols_px": 100, "rows_px": 100, "base_pixels": 4096, "multiple": 8} | kwargs
    with pytest.raises(InputError) as info:
        model_size(args.pop("cols_px"), args.pop("rows_px"), **args)
    assert info.value.param == param


def _halves(width: int, height: int, vertical: bool) -> Image.Image:
    """Left half red, right half blue (vertical split), or top red, bottom blue."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height) if vertical else (0, 0, width, height // 2))
    return image


@pytest.mark.parametrize(
    ("source", "target"),
    [((300, 100), (100, 100)), ((100, 300), (50, 50)), ((640, 480), (2800, 2100)), ((1024, 1024), (2800, 2100))],
)
def test_fit_exact_size(source: tuple[int, int], target: tuple[int, int]) -> None:
    fitted = fit_exact(Image.new("RGB", source, (9, 9, 9)), *target)
    assert fitted.size == target


def test_fit_exact_crops_the_centre() -> None:
    # 300 x 100 to 100 x 100: the kept box is x 100..200 of the source, red up to 150: left half red
    wide = fit_exact(_halves(300, 100, vertical=True), 100, 100)
    assert _px(wide, 10, 50) == (255, 0, 0) and _px(wide, 90, 50) == (0, 0, 255)
    # 100 x 300 to 50 x 50: the kept box is y 100..200, red up to 150: top half red
    tall = fit_exact(_halves(100, 300, vertical=False), 50, 50)
    assert _px(tall, 25, 5) == (255, 0, 0) and _px(tall, 25, 45) == (0, 0, 255)
    # 1024 x 1024 to 2800 x 2100: the kept box is rows 128..896 of the source (768 rows scaled by 2.734)
    marked = Image.new("RGB", (1024, 1024), (0, 0, 0))
    marked.paste((255, 255, 255), (0, 0, 1024, 128))  # the cropped-off top band
    assert np.asarray(fit_exact(marked, 2800, 2100))[10:, :].max() == 0  # Lanczos reaches 3 source rows


def test_fit_exact_keeps_mode_and_copies_same_size() -> None:
    rgba = Image.new("RGBA", (40, 30), (1, 2, 3, 4))
    assert fit_exact(rgba, 20, 20).mode == "RGBA"
    grey = Image.new("L", (40, 30), 7)
    same = fit_exact(grey, 40, 30)
    assert same is not grey and same.tobytes() == grey.tobytes()
    with pytest.raises(InputError) as info:
        fit_exact(grey, 0, 10)
    assert info.value.param == "width_px"
