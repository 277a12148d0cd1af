"""pipelines/overlay/draw.py: rendered pixels at places computed here from the documented geometry.

Every expected position comes from the conventions (cell (c, r) is the pixels [c*px, (c+1)*px); hex centres and
corners from Red Blob Games' formulas written out below), and every expected colour from a plain alpha blend
``c*a + bg*(1-a)`` with ``a = round(opacity*255)/255``, so nothing is checked against the renderer's own maths.
"""

from __future__ import annotations

import hashlib
import io
import math
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.overlay import draw, fonts
from pipelines.overlay.grid import GridGeometry
from pipelines.overlay.spec import (
    Area,
    Fog,
    Geometry,
    Grid,
    Marker,
    MovementGeometry,
    OverlaySpec,
    OverlayStyle,
    PathGeometry,
    PathSpec,
    Portal,
    Template,
    TemplateGeometry,
    Terrain,
    Token,
    TokenGeometry,
)

PX = 40
COLS, ROWS = 8, 6
ROOT = Path(__file__).resolve().parents[3]
TOL = 2  # 8-bit blending rounds differently from float maths by a unit or two


def _hex(value: str) -> tuple[int, int, int]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _blend(colour: tuple[int, int, int], under: np.ndarray, opacity: float) -> np.ndarray:
    a = round(opacity * 255) / 255
    return np.asarray(colour, dtype=float) * a + under.astype(float) * (1 - a)


def _background(width: int = COLS * PX, height: int = ROWS * PX) -> Image.Image:
    """A smooth gradient (R with x, G with y), so "unchanged" means something at every pixel."""
    red = np.linspace(40.0, 220.0, width)[None, :].repeat(height, axis=0)
    green = np.linspace(60.0, 200.0, height)[:, None].repeat(width, axis=1)
    pixels = np.stack([red, green, np.full((height, width), 150.0)], axis=-1)
    return Image.fromarray(np.rint(pixels).astype(np.uint8), "RGB")


def _grid(**kwargs: object) -> Grid:
    return Grid(cols=COLS, rows=ROWS, cell_px=PX, **kwargs)  # type: ignore[arg-type]


def _render(
    spec: OverlaySpec,
    geometry: Geometry | None = None,
    background: Image.Image | None = None,
    art: draw.Art | dict[str, Image.Image] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(background, render) as int arrays, on the gradient unless another background is given."""
    bg = _background() if background is None else background
    out = draw.render(bg, spec, geometry or Geometry(), GridGeometry(spec.grid), art)
    return np.asarray(bg).astype(int), np.asarray(out).astype(int)


def _cell_centre(c: int, r: int) -> tuple[int, int]:
    """The pixel at the centre of square cell (c, r): (x, y) indexes."""
    return c * PX + PX // 2, r * PX + PX // 2


def _close(actual: np.ndarray, expected: np.ndarray | tuple[int, ...], tol: int = TOL) -> bool:
    return bool(np.all(np.abs(np.asarray(actual, dtype=float) - np.asarray(expected, dtype=float)) <= tol))


# -- size, background, layers -----------------------------------------------------------------------------------


def test_output_is_exactly_the_map_size_square_and_hex() -> None:
    spec = OverlaySpec(grid=_grid())
    out = draw.render(None, spec, Geometry(), GridGeometry(spec.grid))
    assert out.mode == "RGB" and out.size == (COLS * PX, ROWS * PX)
    # Pointy odd-r, size s: width sqrt(3) s cols + half a hex (rows > 1), height 2 s + 1.5 s (rows - 1).
    s = 21.0
    hexgrid = Grid(type="hex", cols=5, rows=4, size_px=s, orientation="pointy", offset="odd-r")
    w = math.ceil(math.sqrt(3) * s * 5 + math.sqrt(3) * s / 2)  # 200.07 -> 201
    h = math.ceil(2 * s + 1.5 * s * 3)  # 136.5 -> 137
    out = draw.render(None, OverlaySpec(grid=hexgrid), Geometry(), GridGeometry(hexgrid))
    assert out.size == (w, h)


def test_a_background_of_another_size_is_fitted_to_the_map() -> None:
    spec = OverlaySpec(grid=_grid(), layers=frozenset())
    flat = Image.new("RGB", (123, 45), (10, 200, 30))
    out = draw.render(flat, spec, Geometry(), GridGeometry(spec.grid))
    assert out.size == (COLS * PX, ROWS * PX)
    assert (np.asarray(out) == (10, 200, 30)).all()


def test_no_layers_leave_the_background_unchanged() -> None:
    token = Token(id="t", cell=(1, 1))
    tpl = Template(id="a", shape="sphere", distance_ft=5, origin=(3.0, 3.0))
    spec = OverlaySpec(grid=_grid(), tokens=(token,), templates=(tpl,), layers=frozenset())
    geometry = Geometry(
        tokens=(TokenGeometry(id="t", cells=((1, 1),), center=(1.5, 1.5)),),
        templates=(TemplateGeometry(id="a", cells=((2, 2),), outline=((2, 2), (4, 2), (4, 4)), rule="center"),),
    )
    bg, out = _render(spec, geometry)
    assert np.array_equal(bg, out)


def test_no_background_is_plain_parchment() -> None:
    spec = OverlaySpec(grid=_grid(), layers=frozenset())
    out = np.asarray(draw.render(None, spec, Geometry(), GridGeometry(spec.grid)))
    assert (out == _hex(draw.PARCHMENT)).all()


def test_transparent_background_shows_parchment_and_grey_is_converted() -> None:
    spec = OverlaySpec(grid=_grid(), layers=frozenset())
    clear = Image.new("RGBA", (COLS * PX, ROWS * PX), (255, 0, 0, 0))
    out = np.asarray(draw.render(clear, spec, Geometry(), GridGeometry(spec.grid)))
    assert (out == _hex(draw.PARCHMENT)).all()
    grey = Image.new("L", (COLS * PX, ROWS * PX), 77)
    out = np.asarray(draw.render(grey, spec, Geometry(), GridGeometry(spec.grid)))
    assert (out == 77).all()


def test_a_lazily_decoded_background_is_used_as_decoded() -> None:
    spec = OverlaySpec(grid=_grid(), layers=frozenset())
    encoded = io.BytesIO()
    _background().save(encoded, format="PNG")
    lazy = Image.open(io.BytesIO(encoded.getvalue()))
    out = draw.render(lazy, spec, Geometry(), GridGeometry(spec.grid))
    assert np.array_equal(np.asarray(out), np.asarray(_background()))


def test_the_fast_buffer_copies_match_plain_numpy_copies() -> None:
    # With the pinned Pillow the straight copies work (else render falls back to numpy, correct but slower).
    image = _background(37, 23)
    pixels = np.zeros((23, 37, 4), dtype=np.uint8)
    assert draw._paste_into(pixels, image)
    assert np.array_equal(pixels[..., :3], np.asarray(image))
    pixels[..., :3] = np.random.default_rng(3).integers(0, 256, (23, 37, 3), dtype=np.uint8)
    out = draw._copy_out(pixels)
    assert out is not None and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), pixels[..., :3])


# -- grid -------------------------------------------------------------------------------------------------------


def test_square_grid_lines_darken_the_pixels_either_side_of_each_line() -> None:
    spec = OverlaySpec(grid=_grid(), layers=frozenset({"grid"}))  # black, opacity 0.5, 1.5 px
    bg, out = _render(spec)
    # A 1.5 px line centred on x = c*PX covers 0.75 of pixel c*PX - 1 and 0.75 of pixel c*PX, nothing beyond.
    y = 2 * PX + PX // 2
    for c in range(1, COLS):
        x = c * PX
        for col in (x - 1, x):
            assert _close(out[y, col], _blend((0, 0, 0), bg[y, col], 0.5 * 0.75)), (c, col)
        for col in (x - 2, x + 1):
            assert np.array_equal(out[y, col], bg[y, col])
    x = 3 * PX + PX // 2
    for r in range(1, ROWS):
        for row in (r * PX - 1, r * PX):
            assert _close(out[row, x], _blend((0, 0, 0), bg[row, x], 0.5 * 0.75)), (r, row)
        assert np.array_equal(out[r * PX + 1, x], bg[r * PX + 1, x])
    # Cell interiors untouched; a crossing is at least as dark as a line alone.
    for c in range(COLS):
        for r in range(ROWS):
            cx, cy = _cell_centre(c, r)
            assert np.array_equal(out[cy, cx], bg[cy, cx])
    assert out[2 * PX, 2 * PX].sum() <= out[2 * PX + 20, 2 * PX].sum() + TOL


def test_grid_colour_opacity_and_width_come_from_the_style() -> None:
    style = OverlayStyle(grid_color="#ffffff", grid_opacity=1.0, grid_width_px=4.0)
    spec = OverlaySpec(grid=_grid(), layers=frozenset({"grid"}), style=style)
    bg, out = _render(spec)
    y = PX + PX // 2
    # 4 px centred on 2*PX: pixels 2*PX-2 .. 2*PX+1 fully covered, opaque white; the next ones untouched.
    for col in range(2 * PX - 2, 2 * PX + 2):
        assert tuple(out[y, col]) == (255, 255, 255)
    assert np.array_equal(out[y, 2 * PX - 3], bg[y, 2 * PX - 3])
    assert np.array_equal(out[y, 2 * PX + 2], bg[y, 2 * PX + 2])


@pytest.mark.parametrize(("orientation", "offset"), [("pointy", "odd-r"), ("flat", "odd-q")])
def test_hex_grid_outlines_run_through_the_computed_corners(orientation: str, offset: str) -> None:
    s = 24.0
    grid = Grid(type="hex", cols=4, rows=3, size_px=s, orientation=orientation, offset=offset)
    style = OverlayStyle(grid_opacity=1.0, grid_width_px=2.0)
    spec = OverlaySpec(grid=grid, layers=frozenset({"grid"}), style=style)
    geo = GridGeometry(grid)
    bg = _background(geo.width_px, geo.height_px)
    out = np.asarray(draw.render(bg, spec, Geometry(), geo)).astype(int)
    bgi = np.asarray(bg).astype(int)
    w = math.sqrt(3) * s
    for cell in ((1, 1), (2, 1)):
        c, r = cell
        if orientation == "pointy":  # odd rows shoved right by half a hex
            cx, cy, start = w / 2 + w * (c + 0.5 * (r & 1)), s + 1.5 * s * r, -30.0
        else:  # odd columns shoved down by half a hex
            cx, cy, start = s + 1.5 * s * c, w / 2 + w * (r + 0.5 * (c & 1)), 0.0
        corners = [
            (cx + s * math.cos(math.radians(start + 60 * i)), cy + s * math.sin(math.radians(start + 60 * i)))
            for i in range(6)
        ]
        for i in range(6):
            (ax, ay), (bx, by) = corners[i], corners[(i + 1) % 6]
            for t in (0.3, 0.5, 0.7):
                x, y = ax + t * (bx - ax), ay + t * (by - ay)
                px, py = int(x), int(y)
                # A 2 px opaque black line through the pixel's area: at least half of it covered.
                assert out[py, px].sum() < 0.55 * bgi[py, px].sum(), (cell, i, t)
        ix, iy = int(cx), int(cy)
        assert np.array_equal(out[iy, ix], bgi[iy, ix])
        # Halfway between the centre and a corner: well inside the hex, untouched.
        hx, hy = int((cx + corners[0][0]) / 2), int((cy + corners[0][1]) / 2)
        assert np.array_equal(out[hy, hx], bgi[hy, hx])


# -- tokens -----------------------------------------------------------------------------------------------------


def _token_scene(*tokens: tuple[Token, tuple[float, float]], **kwargs: object) -> tuple[OverlaySpec, Geometry]:
    spec = OverlaySpec(grid=_grid(), tokens=tuple(t for t, _ in tokens), layers=frozenset({"tokens"}), **kwargs)  # type: ignore[arg-type]
    geometry = Geometry(tokens=tuple(TokenGeometry(id=t.id, cells=(t.cell,), center=c) for t, c in tokens))
    return spec, geometry


def test_token_disc_has_its_colour_at_the_centre_and_its_size_from_the_footprint() -> None:
    medium = Token(id="m", cell=(1, 1), color="#123456")
    large = Token(id="l", cell=(4, 2), size="large", color="#a0b0c0")
    tiny = Token(id="t", cell=(6, 0), size="tiny", color="#ff8800")
    spec, geometry = _token_scene((medium, (1.5, 1.5)), (large, (5.0, 3.0)), (tiny, (6.5, 0.5)))
    bg, out = _render(spec, geometry)
    assert tuple(out[60, 60]) == (0x12, 0x34, 0x56)
    # Medium: radius 0.45 cell = 18 px; 14 px out is inside, 21 px out is past the outline.
    assert tuple(out[60, 60 + 14]) == (0x12, 0x34, 0x56)
    assert np.array_equal(out[60, 60 + 21], bg[60, 60 + 21])
    # Large (2x2 cells): radius 0.9 cell = 36 px around (200, 120).
    assert tuple(out[120, 200]) == (0xA0, 0xB0, 0xC0)
    assert tuple(out[120, 200 + 32]) == (0xA0, 0xB0, 0xC0)
    assert tuple(out[120 - 32, 200]) == (0xA0, 0xB0, 0xC0)
    assert np.array_equal(out[120, 200 + 39], bg[120, 200 + 39])
    # Tiny: diameter 0.45 cell, radius 9 px around (260, 20).
    assert tuple(out[20, 260 + 5]) == (0xFF, 0x88, 0x00)
    assert np.array_equal(out[20, 260 + 12], bg[20, 260 + 12])
    # The outline is dark: on the disc edge.
    assert out[60, 60 + 18].sum() < 3 * 60


def test_tokens_take_palette_colours_in_turn() -> None:
    palette = ("#111111", "#22cc22", "#3333ee")
    tokens = [Token(id=f"t{i}", cell=(i, 0)) for i in range(4)]
    spec, geometry = _token_scene(
        *((t, (i + 0.5, 0.5)) for i, t in enumerate(tokens)), style=OverlayStyle(palette=palette)
    )
    _, out = _render(spec, geometry)
    for i in range(4):
        x, y = _cell_centre(i, 0)
        assert tuple(out[y, x]) == _hex(palette[i % 3])


def test_token_label_ink_contrasts_with_the_disc() -> None:
    dark = Token(id="d", cell=(1, 1), color="#102030", label="Orc")
    light = Token(id="l", cell=(4, 1), color="#f0f0d0", label="Elf")
    style = OverlayStyle(font_px=14)
    spec, geometry = _token_scene((dark, (1.5, 1.5)), (light, (4.5, 1.5)), style=style)
    _, out = _render(spec, geometry)
    inner_dark = out[52:68, 48:72]
    inner_light = out[52:68, 168:192]
    assert (inner_dark.min(axis=-1) > 200).sum() >= 5  # white strokes on the dark disc
    assert (inner_light.max(axis=-1) < 100).sum() >= 5  # black strokes on the light one


def test_token_art_fills_the_disc_and_the_label_goes_under_it() -> None:
    token = Token(id="a", cell=(3, 2), color="#ff0000", label="Bat", image_id="img")
    spec, geometry = _token_scene((token, (3.5, 2.5)), style=OverlayStyle(font_px=12))
    # 50x30 art: its centre square (x 10..39) is blue, the side bands green; only the centre square is drawn.
    art = Image.new("RGB", (50, 30), (0, 255, 0))
    art.paste((0, 0, 255), (10, 0, 40, 30))
    _, out = _render(spec, geometry, art=draw.Art(images={"img": art}))
    x, y = _cell_centre(3, 2)
    for dx, dy in ((0, 0), (-8, 12), (-15, 0), (15, 0), (0, -15)):  # radius 18 px
        assert tuple(out[y + dy, x + dx]) == (0, 0, 255), (dx, dy)
    # Under the disc: white label ink on a dark halo, where the background was.
    below = out[y + 19 : y + 34, x - 15 : x + 15]
    assert (below.min(axis=-1) > 230).sum() >= 3
    # A plain mapping works as well as Art; transparent art shows the token colour; missing art, the plain disc.
    _, mapped = _render(spec, geometry, art={"img": art})
    assert np.array_equal(mapped, out)
    clear = Image.new("RGBA", (20, 20), (0, 0, 255, 0))
    _, see_through = _render(spec, geometry, art={"img": clear})
    assert tuple(see_through[y + 12, x - 8]) == (255, 0, 0)
    _, plain = _render(spec, geometry, art={})
    assert tuple(plain[y + 12, x - 8]) == (255, 0, 0)


@pytest.mark.parametrize(("size", "span"), [("medium", 1.0), ("large", 2.0), ("huge", 3.0)])
def test_hex_token_disc_at_the_computed_hex_centre(size: str, span: float) -> None:
    s = 22.0
    grid = Grid(type="hex", cols=7, rows=6, size_px=s, orientation="pointy", offset="odd-r")
    geo = GridGeometry(grid)
    w = math.sqrt(3) * s
    cx, cy = w / 2 + w * (2 + 0.5), s + 1.5 * s * 3  # cell (2, 3): an odd row, shoved right
    token = Token(id="h", cell=(2, 3), size=size, color="#00aa55")
    spec = OverlaySpec(grid=grid, tokens=(token,), layers=frozenset({"tokens"}))
    geometry = Geometry(tokens=(TokenGeometry(id="h", cells=((2, 3),), center=(cx / w, cy / w)),))
    bg = _background(geo.width_px, geo.height_px)
    out = np.asarray(draw.render(bg, spec, geometry, geo)).astype(int)
    radius = 0.45 * span * w
    assert tuple(out[int(cy), int(cx)]) == (0x00, 0xAA, 0x55)
    assert tuple(out[int(cy), int(cx + radius - 3)]) == (0x00, 0xAA, 0x55)
    far = int(cx + radius + 3)
    assert np.array_equal(out[int(cy), far], np.asarray(bg).astype(int)[int(cy), far])


# -- templates, reach, movement, auras, areas -------------------------------------------------------------------


def test_template_fills_its_cells_not_its_outline_interior() -> None:
    tpl = Template(id="a", shape="cube", distance_ft=10, origin=(1.0, 1.0), color="#ff0000")
    # The outline is the 2x2 square from (1, 1) to (3, 3); the covered cells leave (2, 2) out on purpose.
    geometry = Geometry(
        templates=(
            TemplateGeometry(
                id="a", cells=((1, 1), (2, 1), (1, 2)), outline=((1, 1), (3, 1), (3, 3), (1, 3)), rule="half"
            ),
        )
    )
    spec = OverlaySpec(grid=_grid(), templates=(tpl,), layers=frozenset({"templates"}))
    bg, out = _render(spec, geometry)
    for c, r in ((1, 1), (2, 1), (1, 2)):
        for dx in (-12, 0, 12):
            for dy in (-12, 0, 12):
                x, y = _cell_centre(c, r)
                assert _close(out[y + dy, x + dx], _blend((255, 0, 0), bg[y + dy, x + dx], 0.35)), (c, r, dx, dy)
    for c, r in ((2, 2), (0, 0), (5, 4), (4, 1)):
        x, y = _cell_centre(c, r)
        assert np.array_equal(out[y, x], bg[y, x])
    # The outline is opaque in the template colour: on its bottom edge, y = 3 cells, at a pixel it covers fully.
    assert tuple(out[3 * PX, 2 * PX + 20]) == (255, 0, 0) or tuple(out[3 * PX - 1, 2 * PX + 20]) == (255, 0, 0)


def test_template_colour_defaults_to_the_next_palette_entry_and_opacity_to_the_style() -> None:
    palette = ("#000000", "#00ff00", "#0000ff")
    style = OverlayStyle(palette=palette, template_opacity=0.6)
    tpls = tuple(Template(id=f"a{i}", shape="sphere", distance_ft=5, origin=(i + 0.5, 4.5)) for i in range(3))
    geometry = Geometry(
        templates=tuple(TemplateGeometry(id=f"a{i}", cells=((i * 2, 1),), outline=(), rule="center") for i in range(3))
    )
    spec = OverlaySpec(grid=_grid(), templates=tpls, layers=frozenset({"templates"}), style=style)
    bg, out = _render(spec, geometry)
    for i in range(3):
        x, y = _cell_centre(2 * i, 1)
        assert _close(out[y, x], _blend(_hex(palette[(i + 1) % 3]), bg[y, x], 0.6)), i


def test_movement_heat_tints_walk_and_dash_bands() -> None:
    move = MovementGeometry(id="m", reachable=(((1, 1), 5.0), ((2, 1), 30.0), ((3, 1), 35.0)), speed_ft=30, dash=True)
    spec = OverlaySpec(grid=_grid(), layers=frozenset({"movement"}))
    bg, out = _render(spec, Geometry(movement=(move,)))
    for cell, colour in (((1, 1), draw.MOVE_COLOR), ((2, 1), draw.MOVE_COLOR), ((3, 1), draw.DASH_COLOR)):
        x, y = _cell_centre(*cell)
        assert _close(out[y, x], _blend(_hex(colour), bg[y, x], draw.HEAT_OPACITY)), cell
    x, y = _cell_centre(4, 1)
    assert np.array_equal(out[y, x], bg[y, x])


def test_reach_and_aura_use_the_token_colour() -> None:
    token = Token(id="t", cell=(3, 2), color="#0000ff")
    aura = ((1.0, 0.0), (6.0, 0.0), (6.0, 5.0), (1.0, 5.0))
    tg = TokenGeometry(id="t", cells=((3, 2),), center=(3.5, 2.5), reach=((4, 2), (3, 3)), aura=aura)
    spec = OverlaySpec(grid=_grid(), tokens=(token,), layers=frozenset({"reach"}))
    bg, out = _render(spec, Geometry(tokens=(tg,)))
    for cell in ((4, 2), (3, 3)):
        x, y = _cell_centre(*cell)
        assert _close(out[y, x], _blend((0, 0, 255), bg[y, x], draw.REACH_OPACITY)), cell
    x, y = _cell_centre(2, 2)
    assert np.array_equal(out[y, x], bg[y, x])

    spec = OverlaySpec(grid=_grid(), tokens=(token,), layers=frozenset({"auras"}))
    bg, out = _render(spec, Geometry(tokens=(tg,)))
    x, y = _cell_centre(2, 1)  # inside the aura, away from its edge
    assert _close(out[y, x], _blend((0, 0, 255), bg[y, x], draw.AURA_FILL_OPACITY))
    x, y = _cell_centre(7, 1)  # outside it
    assert np.array_equal(out[y, x], bg[y, x])
    edge = out[2 * PX + 20, 6 * PX - 1 : 6 * PX + 1]  # the outline on x = 6 cells
    assert (np.abs(edge - bg[2 * PX + 20, 6 * PX - 1 : 6 * PX + 1]).sum(axis=-1) > 60).all()


def test_terrain_areas_are_tinted_by_kind() -> None:
    water = Area(kind="water", cells=frozenset({(5, 4)}))
    lava = Area(kind="lava", polygon=((1.0, 3.0), (3.0, 3.0), (3.0, 5.0), (1.0, 5.0)))
    carpet = Area(kind="carpet", cells=frozenset({(7, 0)}))
    spec = OverlaySpec(grid=_grid(), terrain=Terrain(areas=(water, lava, carpet)), layers=frozenset({"areas"}))
    bg, out = _render(spec)
    checks = (
        ((5, 4), draw.AREA_COLORS["water"]),
        ((2, 4), draw.AREA_COLORS["lava"]),
        ((7, 0), draw.DEFAULT_AREA_COLOR),
    )
    for cell, colour in checks:
        x, y = _cell_centre(*cell)
        assert _close(out[y, x], _blend(_hex(colour), bg[y, x], draw.AREA_OPACITY)), cell


def test_walls_doors_and_windows_are_drawn_on_their_segments() -> None:
    terrain = Terrain(
        walls=(((1.0, 1.0), (5.0, 1.0)),),
        doors=(Portal(a=(1.0, 3.0), b=(3.0, 3.0)),),
        windows=(Portal(a=(5.0, 3.0), b=(7.0, 3.0)),),
    )
    spec = OverlaySpec(grid=_grid(), terrain=terrain, layers=frozenset({"walls"}))
    bg, out = _render(spec)
    assert tuple(out[PX, 3 * PX]) == _hex(draw.WALL_COLOR)
    assert tuple(out[3 * PX, 2 * PX]) == _hex(draw.DOOR_COLOR)
    assert tuple(out[3 * PX, 6 * PX]) == _hex(draw.WINDOW_COLOR)
    x, y = _cell_centre(3, 4)
    assert np.array_equal(out[y, x], bg[y, x])


# -- paths, markers, fog, legend, coordinates -------------------------------------------------------------------


def test_paths_take_palette_colours_from_the_end() -> None:
    palette = ("#000000", "#00ff00", "#0000ff", "#ff0000")
    paths = tuple(PathSpec(id=f"p{i}", waypoints=((0, i), (3, i))) for i in range(2))
    geometry = Geometry(
        paths=tuple(
            PathGeometry(id=f"p{i}", cells=tuple((c, i) for c in range(4)), cost_ft=15, step_costs_ft=(5, 5, 5))
            for i in range(2)
        )
    )
    spec = OverlaySpec(grid=_grid(), paths=paths, layers=frozenset({"paths"}), style=OverlayStyle(palette=palette))
    _, out = _render(spec, geometry)
    for i, colour in enumerate(((255, 0, 0), (0, 0, 255))):
        assert tuple(out[i * PX + PX // 2, PX]) == colour, i  # between the centres of cells 0 and 1


def test_path_polyline_through_cell_centres_with_cost_labels() -> None:
    cells = ((0, 3), (1, 3), (2, 3), (3, 3), (4, 3), (5, 3))
    pg = PathGeometry(id="p", cells=cells, cost_ft=25.0, step_costs_ft=(5.0,) * 5, waypoint_indexes=(0, 3, 5))
    spec = OverlaySpec(
        grid=_grid(),
        paths=(PathSpec(id="p", waypoints=((0, 3), (3, 3), (5, 3)), color="#00ffff"),),
        layers=frozenset({"paths"}),
        style=OverlayStyle(font_px=14),
    )
    bg, out = _render(spec, Geometry(paths=(pg,)))
    y = 3 * PX + PX // 2
    for x in (PX + PX // 2 - 10, 2 * PX + PX // 2 + 5, 4 * PX + 10):
        assert tuple(out[y, x]) == (0, 255, 255), x
    assert np.array_equal(out[y + 10, 2 * PX + 20], bg[y + 10, 2 * PX + 20])
    # Labels (a leg cost at waypoint 3, the total at the end) sit in white pills 0.42 cell above the centres.
    for c in (3, 5):
        x, label_y = c * PX + PX // 2, y - round(0.42 * PX)
        pill = out[label_y - 4 : label_y + 5, x - 12 : x + 13]
        assert (pill.min(axis=-1) > 215).sum() >= 10, c
        # The pill is 1.24 x the label size (0.8 x 14 px) tall: 10 px under its centre is background again.
        assert np.array_equal(out[label_y + 10, x - 12 : x + 13], bg[label_y + 10, x - 12 : x + 13]), c
    # No pill over the first waypoint.
    x = PX // 2
    assert (out[y - 22 : y - 11, x - 6 : x + 7].min(axis=-1) > 215).sum() <= (
        bg[y - 22 : y - 11, x - 6 : x + 7].min(axis=-1) > 215
    ).sum()


def test_markers_pin_icon_and_text() -> None:
    markers = (
        Marker(id="p", kind="pin", at=(2.0, 2.0), color="#ff00ff"),
        Marker(id="i", kind="icon", at=(5.0, 3.0), icon="star", color="#0000ff"),
        Marker(id="t", kind="text", at=(4.0, 5.0), text="HERE", color="#ff0000"),
        Marker(id="u", kind="icon", at=(1.0, 5.0), icon="no-such-icon", color="#00ff00"),
    )
    spec = OverlaySpec(grid=_grid(), markers=markers, layers=frozenset({"markers"}), style=OverlayStyle(font_px=16))
    bg, out = _render(spec)
    # Pin: head disc of radius 0.16 cell centred 0.42 cell above the point.
    assert tuple(out[2 * PX - round(0.42 * PX), 2 * PX]) == (255, 0, 255)
    # Icon: a badge of radius 0.3 cell (12 px); 9 px east of the point is badge, outside the star glyph.
    assert tuple(out[3 * PX, 5 * PX + 9]) == (0, 0, 255)
    assert tuple(out[5 * PX, 1 * PX + 10]) == (0, 255, 0)
    # Text: red ink around the point.
    box = out[5 * PX - 8 : 5 * PX + 8, 4 * PX - 25 : 4 * PX + 25]
    assert (np.abs(box - (255, 0, 0)).sum(axis=-1) < 30).sum() >= 10
    x, y = _cell_centre(6, 0)
    assert np.array_equal(out[y, x], bg[y, x])


def test_fog_hides_cells_above_tokens_and_blends_at_its_opacity() -> None:
    token = Token(id="t", cell=(3, 2), color="#ff0000")
    geometry = Geometry(tokens=(TokenGeometry(id="t", cells=((3, 2),), center=(3.5, 2.5)),))
    fog = Fog(hidden=frozenset({(3, 2), (0, 0)}), color="#000000", opacity=1.0)
    spec = OverlaySpec(grid=_grid(), tokens=(token,), fog=fog, layers=frozenset({"tokens", "fog"}))
    bg, out = _render(spec, geometry)
    assert (out[2 * PX : 3 * PX, 3 * PX : 4 * PX] == 0).all()
    assert (out[0:PX, 0:PX] == 0).all()
    x, y = _cell_centre(5, 2)
    assert np.array_equal(out[y, x], bg[y, x])

    fog = Fog(hidden=frozenset({(6, 5)}), color="#ffffff", opacity=0.5)
    spec = OverlaySpec(grid=_grid(), fog=fog, layers=frozenset({"fog"}))
    bg, out = _render(spec)
    x, y = _cell_centre(6, 5)
    assert _close(out[y, x], _blend((255, 255, 255), bg[y, x], 0.5))


def test_legend_lists_templates_and_paths_with_swatches() -> None:
    f, m = 20, draw.LEGEND_MARGIN
    tpl = Template(id="fireball", shape="sphere", distance_ft=20, origin=(4.0, 3.0), color="#00ff00", label="Fireball")
    path = PathSpec(id="p", waypoints=((0, 0),), color="#0000ff")
    spec = OverlaySpec(
        grid=_grid(), templates=(tpl,), paths=(path,), layers=frozenset({"legend"}), style=OverlayStyle(font_px=f)
    )
    bg, out = _render(spec)
    for k, colour in enumerate(((0, 255, 0), (0, 0, 255))):
        x = round(m + 0.6 * f + f / 2)
        y = round(m + 0.6 * f + 1.6 * f * k + 0.3 * f + f / 2)
        assert tuple(out[y, x]) == colour, k
    # The box background is near white just inside its corner.
    assert out[m + 3, m + 3].min() > 200
    # Nothing to list: no box.
    spec = OverlaySpec(grid=_grid(), layers=frozenset({"legend"}))
    bg, out = _render(spec)
    assert np.array_equal(out, bg)


def test_coordinates_label_each_cell_corner() -> None:
    spec = OverlaySpec(grid=_grid(), layers=frozenset({"coordinates"}), style=OverlayStyle(font_px=16))
    bg, out = _render(spec)
    for c in range(COLS):
        for r in range(ROWS):
            corner = out[r * PX : r * PX + 16, c * PX : c * PX + 24]
            assert (corner.max(axis=-1) < 90).sum() >= 4, (c, r)  # dark ink
            x, y = _cell_centre(c, r)
            assert np.array_equal(out[y + 8, x + 8], bg[y + 8, x + 8])


# -- determinism and fonts --------------------------------------------------------------------------------------


def _scene() -> tuple[OverlaySpec, Geometry]:
    tokens = (Token(id="a", cell=(1, 1), label="Ana"), Token(id="b", cell=(4, 2), size="large", label="Ogre"))
    tpl = Template(id="c", shape="cone", distance_ft=15, origin=(2.0, 2.0), label="Cone")
    spec = OverlaySpec(
        grid=_grid(),
        tokens=tokens,
        templates=(tpl,),
        paths=(PathSpec(id="p", waypoints=((0, 5), (3, 5))),),
        markers=(Marker(id="m", kind="icon", at=(7.0, 1.0), icon="skull", text="Boss"),),
        layers=None,
    )
    geometry = Geometry(
        tokens=(
            TokenGeometry(
                id="a", cells=((1, 1),), center=(1.5, 1.5), aura=((0.5, 0.5), (2.5, 0.5), (2.5, 2.5), (0.5, 2.5))
            ),
            TokenGeometry(id="b", cells=((4, 2), (5, 2), (4, 3), (5, 3)), center=(5.0, 3.0), reach=((6, 2),)),
        ),
        templates=(
            TemplateGeometry(
                id="c", cells=((2, 2), (3, 2), (3, 3)), outline=((2, 2), (5, 1.2), (5, 2.8)), rule="center"
            ),
        ),
        paths=(
            PathGeometry(
                id="p",
                cells=((0, 5), (1, 5), (2, 5), (3, 5)),
                cost_ft=15,
                step_costs_ft=(5, 5, 5),
                waypoint_indexes=(0, 3),
            ),
        ),
    )
    return spec, geometry


def scene_png_digest() -> str:
    """The sha256 of the test scene's PNG (also run in a subprocess)."""
    spec, geometry = _scene()
    return hashlib.sha256(draw.render_png(_background(), spec, geometry, GridGeometry(spec.grid))).hexdigest()


def test_same_inputs_give_the_same_png_bytes_in_process_and_across_processes() -> None:
    first = scene_png_digest()
    assert scene_png_digest() == first
    code = "from tests.pipelines.overlay.test_draw import scene_png_digest; print(scene_png_digest())"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == first


def test_png_carries_no_metadata_and_decodes_to_the_render() -> None:
    spec, geometry = _scene()
    geo = GridGeometry(spec.grid)
    data = draw.render_png(None, spec, geometry, geo)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        chunks.append(kind)
        body = data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        pos += 12 + length
    assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    decoded = Image.open(io.BytesIO(data))
    assert decoded.size == (geo.width_px, geo.height_px)
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(draw.render(None, spec, geometry, geo)))


def test_the_font_is_pillows_embedded_truetype_loaded_once() -> None:
    data = fonts.font_bytes()
    assert data[:4] == b"\x00\x01\x00\x00" and len(data) > 1000
    assert fonts.font_bytes() is data
    assert fonts.typeface() is fonts.typeface()
    assert fonts.typeface().getFamilyName() == fonts.FONT_FAMILY
    assert fonts.pil_font(12).getname()[0] == fonts.FONT_FAMILY
    assert fonts.skia_font(20).measureText("MMMM") > fonts.skia_font(10).measureText("MMMM") > 0


@pytest.mark.parametrize("module", [draw, fonts])
def test_all_lists_real_documented_names(module: object) -> None:
    import inspect

    exported = module.__all__  # type: ignore[attr-defined]
    assert len(exported) == len(set(exported))
    for name in exported:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
