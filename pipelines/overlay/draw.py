"""The overlay renderer: a spec and its measured geometry drawn onto a battle map, anti-aliased and deterministic.

:func:`render` takes the map art (or None for a plain parchment canvas), the :class:`~.spec.OverlaySpec`, the
:class:`~.spec.Geometry` measured from it (token cells and centres, template cells and outlines, path cells and
costs, reachable cells; :mod:`.geometry` computes it) and the :class:`~.grid.GridGeometry`, and paints the enabled
layers in :data:`~.spec.LAYERS` order. It never measures anything itself: what it draws is exactly the geometry
it is handed, so the picture and the JSON answer cannot disagree. :func:`render_png` encodes the result.

**Engine.** skia (skia-python), chosen by measurement on the benchmark scene (load_tests/bench_overlay.py: 40x30
cells at 70 px, 20 tokens, 10 templates, 5 paths, the grid; 2 CPU cores): skia anti-aliases every shape
analytically and renders the scene in about 27 ms (18 ms of drawing, the rest copying the background in and
the result out), while Pillow's ImageDraw is aliased and anti-aliasing it by supersampling each shape 4x took
about 130 ms. The pixels live in one ``height x width x 4`` buffer that Pillow sees as an RGBX image and skia as
two surfaces: BGRA (skia's native order, fastest for strokes, discs, text and thin rectangles: its colours go in
with red and blue swapped, exact because every blend is per channel) and RGBA (fastest for large translucent
cell fills). The fourth byte is padding no result reads (source-over never reads the destination's alpha into
the colour). Copies between Pillow and the buffer go through Pillow's core ``paste`` on a mapped view of the
buffer (a straight copy: Pillow keeps RGB as 4 bytes a pixel), with a numpy fallback if that ever stops working.

**Coordinates.** Grid units as in :mod:`.spec` (``(0, 0)`` the map's top-left corner, y down), times
``geo.ppu`` for pixels. Pixel ``(i, j)`` covers ``[i, i + 1] x [j, j + 1]``, so a grid intersection on a square
grid at ``70 px`` is the corner shared by four pixels and cell ``(c, r)`` is exactly the pixels
``[70 c, 70 c + 70) x [70 r, 70 r + 70)``. Edges falling inside a pixel get fractional coverage.

**Output.** An RGB image of exactly ``geo.width_px x geo.height_px``. A background of another size is resized to
it first (Lanczos); modes other than RGB are converted (transparent parts over :data:`PARCHMENT`).

**Colours.** Anything a spec leaves out comes from ``style.palette`` (``n`` colours): token ``i`` takes
``palette[i % n]``, template ``i`` ``palette[(i + 1) % n]``, path ``i`` ``palette[(n - 1 - i) % n]`` (from the
end, so the legend's templates and paths differ until there are more than ``n - 1`` of them), marker ``i``
``palette[(i + 3) % n]`` (``i`` the item's index in its list). Reach and auras use their token's colour.
Translucent layers blend once per item: an item's cells are one path, so shared cell edges neither double-blend
nor leave seams; two items overlapping blend in turn, in list order.

**Layers** (bottom to top; line widths in px with ``u = geo.ppu``):

- ``grid``: square grids: the ``cols + 1`` vertical and ``rows + 1`` horizontal lines at integer grid units,
  ``style.grid_width_px`` wide, centred on the line, ``style.grid_color`` at ``style.grid_opacity``, as disjoint
  rectangles (vertical lines whole, horizontal ones between them), so a crossing blends once but for its
  anti-aliased edge pixels. Hex grids: every hex edge once (``geo.hex_edges()``), one stroked shape.
- ``coordinates``: square grids: ``A1`` labels (column letters ``A..Z, AA..``, row numbers from 1) in each cell's
  top-left corner; hex grids: ``col,row`` in the upper part of each hex.
- ``areas``: each terrain area's cells (or polygon) in :data:`AREA_COLORS` for its kind at :data:`AREA_OPACITY`.
- ``walls``: walls as polylines (:data:`WALL_COLOR`, ``max(3, 0.1 u)`` wide, round ends), closed doors as
  thick :data:`DOOR_COLOR` bars outlined dark, open doors as a thin dashed bar, windows in :data:`WINDOW_COLOR`.
- ``movement``: each query's reachable cells, cost ``<= speed_ft`` in :data:`MOVE_COLOR`, beyond (the dash band)
  in :data:`DASH_COLOR`, both at :data:`HEAT_OPACITY`.
- ``reach``: each token's reach cells in its colour at :data:`REACH_OPACITY`.
- ``templates``: each template's covered CELLS filled with its colour at ``style.template_opacity``, then its
  outline polygon (the exact shape) stroked opaque, ``max(2, 0.04 u)`` wide.
- ``paths``: a polyline through the centres of the path's cells (``max(3, 0.08 u)`` wide, round joins), a dot
  at each waypoint; labels in a white pill: at each waypoint after the first the cost of the leg ending there
  and, at the last cell, the total (``"35 ft"``, one decimal at most), centred ``0.42 u`` above the cell centre.
- ``tokens``: a disc per token centred on its geometry centre, diameter :data:`TOKEN_DIAMETER` times the
  footprint side (square: ``max(1, SIZES[size])`` cells; Tiny :data:`TINY_DIAMETER` of a cell; hex: the span in
  :data:`HEX_TOKEN_SPAN`), filled with its colour, outlined :data:`OUTLINE_COLOR` ``max(1.5, 0.03 u)`` wide (the
  outline straddles the disc's edge); the label centred in it (black or white, whichever contrasts), or, when the
  token has art, the art's centre square scaled (Lanczos) to the disc and clipped round, with the label under it.
- ``auras``: each aura outline filled with its token's colour at :data:`AURA_FILL_OPACITY` and stroked at
  :data:`AURA_LINE_OPACITY`, ``max(1.5, 0.03 u)`` wide.
- ``markers``: ``pin``: a disc of radius ``0.16 u`` whose centre is ``0.42 u`` above the point, with a tail down
  to the point; ``icon``: a badge disc of radius ``0.3 u`` centred on the point holding a white glyph (``skull``,
  ``star``, ``x``, ``chest``, ``trap``, ``door``, ``exclamation``, ``question``; unknown names: a ring);
  ``text``: the text centred on the point with a light halo. Pins and icons show their text under them.
- ``fog``: the hidden cells painted ``fog.color`` at ``fog.opacity`` (above everything but the legend).
- ``legend``: a box whose top-left corner is at ``(m, m)``, ``m = `` :data:`LEGEND_MARGIN`, listing each template
  then each path (its label, else its id) with a colour swatch: with ``f`` the label font size, rows are
  ``1.6 f`` high from ``m + 0.6 f``; the swatch of row ``k`` is the square of side ``f`` whose top-left corner is
  ``(m + 0.6 f, m + 0.6 f + 1.6 f k + 0.3 f)``. No entries, no box.

Text is :mod:`.fonts`' embedded Aileron, emboldened, at ``style.font_px`` (default ``max(9, 0.22 u)``);
coordinates use 0.7 of it, path labels 0.8, token labels at most ``0.55`` of the disc radius (shrunk to fit).
Items in the geometry are matched to the spec's by id; one the geometry lacks is not drawn.

**Determinism.** No randomness, no clocks, no system fonts, one thread: the same inputs give the same pixels in
any process with the same skia and Pillow builds (both pinned), and :func:`render_png` writes no metadata
(fixed zlib level :data:`PNG_COMPRESS_LEVEL`, no timestamp), so the bytes repeat too. (skia picks SIMD code by
CPU at run time; its 8-bit pipelines are meant to give the same results at every width, but byte equality
across different CPU families is not something the tests here can check.)
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import skia
from PIL import Image

from pipelines.overlay import fonts
from pipelines.overlay.spec import (
    LAYERS,
    SIZES,
    Cell,
    Geometry,
    Marker,
    OverlaySpec,
    Point,
    TokenGeometry,
)

if TYPE_CHECKING:
    from pipelines.overlay.grid import GridGeometry

__all__ = [
    "AREA_COLORS",
    "AREA_OPACITY",
    "AURA_FILL_OPACITY",
    "AURA_LINE_OPACITY",
    "DASH_COLOR",
    "DEFAULT_AREA_COLOR",
    "DOOR_COLOR",
    "HEAT_OPACITY",
    "HEX_TOKEN_SPAN",
    "LEGEND_MARGIN",
    "MOVE_COLOR",
    "OUTLINE_COLOR",
    "PARCHMENT",
    "PNG_COMPRESS_LEVEL",
    "REACH_OPACITY",
    "TINY_DIAMETER",
    "TOKEN_DIAMETER",
    "WALL_COLOR",
    "WINDOW_COLOR",
    "Art",
    "render",
    "render_png",
    "token_diameter",
]

PARCHMENT = "#f4ecd8"
"""The plain canvas when there is no background (and behind transparent art)."""
OUTLINE_COLOR = "#1a1a1a"
"""Token discs', markers' and door bars' outlines."""
TOKEN_DIAMETER = 0.9
"""A token disc's diameter as a fraction of its footprint side."""
TINY_DIAMETER = 0.45
"""A Tiny token's disc diameter in cells (hexes)."""
HEX_TOKEN_SPAN: dict[str, float] = {
    "tiny": 0.5,
    "small": 1.0,
    "medium": 1.0,
    "large": 2.0,
    "huge": 3.0,
    "gargantuan": 5.0,
}
"""Hex grids: the footprint's span in grid units (1 hex, 3 hexes about 2 across, 7 hexes 3, 19 hexes 5)."""
MOVE_COLOR = "#2ecc71"
"""Movement heat: cells reachable within the speed."""
DASH_COLOR = "#f39c12"
"""Movement heat: cells reachable only by dashing (cost above the speed)."""
HEAT_OPACITY = 0.3
REACH_OPACITY = 0.2
AURA_FILL_OPACITY = 0.12
AURA_LINE_OPACITY = 0.85
AREA_OPACITY = 0.35
AREA_COLORS: dict[str, str] = {
    "water": "#3498db",
    "difficult": "#8d6e63",
    "rubble": "#7f8c8d",
    "vegetation": "#27ae60",
    "mud": "#6d4c41",
    "ice": "#b3e5fc",
    "pit": "#2b2b2b",
    "lava": "#e74c3c",
    "chasm": "#1b1b1b",
}
"""Terrain area tints by kind; other kinds take :data:`DEFAULT_AREA_COLOR`."""
DEFAULT_AREA_COLOR = "#95a5a6"
WALL_COLOR = "#222222"
DOOR_COLOR = "#8e5a2b"
WINDOW_COLOR = "#7fb7d9"
LEGEND_MARGIN = 8
"""Pixels from the map's top-left corner to the legend box."""
PNG_COMPRESS_LEVEL = 1
"""zlib level of :func:`render_png`, fixed so the bytes repeat. 1 because a map is mostly painted art: on the
benchmark's 2800x2100 background level 1 took 0.43 s for 8.9 MB, Pillow's default (6) 2.0 s for 9.6 MB."""

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_LABEL_BG = (255, 255, 255)
_LEGEND_BG = (255, 255, 255)
_LABEL_INK = (20, 20, 20)

_RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Art:
    """Decoded token art by ``image_id`` (the caller loads it; the renderer never fetches anything)."""

    images: Mapping[str, Image.Image]


# -- entry points -------------------------------------------------------------------------------------------------


def render(
    background: Image.Image | None,
    spec: OverlaySpec,
    geometry: Geometry,
    geo: GridGeometry,
    art: Art | Mapping[str, Image.Image] | None = None,
) -> Image.Image:
    """Draws the spec's enabled layers over the background.

    Args:
        background: The map art (any mode and size: fitted to the map's pixel size), or None for parchment.
        spec: What to draw and how (layers, style).
        geometry: The measured geometry (:func:`pipelines.overlay.geometry.measure`): tokens, templates, paths
            and movement are drawn from it, matched to the spec's items by id.
        geo: The grid geometry of ``spec.grid``.
        art: Token art by ``image_id``; a token whose art is missing is drawn as a plain disc.

    Returns:
        An RGB image of ``geo.width_px x geo.height_px``.
    """
    images = art.images if isinstance(art, Art) else (art or {})
    surface = _Surface(geo.width_px, geo.height_px)
    surface.load(background)
    ctx = _Context(surface, spec, geometry, geo, images)
    enabled = spec.enabled_layers
    for layer in LAYERS:
        if layer in enabled:
            _PAINTERS[layer](ctx)
    return surface.image()


def render_png(
    background: Image.Image | None,
    spec: OverlaySpec,
    geometry: Geometry,
    geo: GridGeometry,
    art: Art | Mapping[str, Image.Image] | None = None,
) -> bytes:
    """:func:`render`, encoded as PNG with no metadata at zlib level :data:`PNG_COMPRESS_LEVEL` (same bytes for the
    same inputs)."""
    image = render(background, spec, geometry, geo, art)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def token_diameter(size: str, geo: GridGeometry) -> float:
    """A token disc's diameter in grid units (module docstring: 0.9 of the footprint side, Tiny 0.45)."""
    if size == "tiny":
        return TINY_DIAMETER
    if geo.grid.is_hex:
        return TOKEN_DIAMETER * HEX_TOKEN_SPAN.get(size, 1.0)
    return TOKEN_DIAMETER * max(1.0, SIZES.get(size, 1.0))


# -- the pixel buffer ---------------------------------------------------------------------------------------------


class _Surface:
    """One ``h x w x 4`` buffer: an RGBX image to Pillow, and two skia canvases over the same bytes.

    ``canvas`` declares the bytes BGRA (skia's native order: its fastest path for strokes, discs, text and thin
    rectangles), so its colours go in with red and blue swapped; ``cells`` declares them RGBA (faster for large
    translucent fills), with colours as they are. skia draws immediately on raster surfaces, so interleaving the
    two is safe.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = np.empty((height, width, 4), dtype=np.uint8)
        self._bgra = skia.Surface(self.pixels, colorType=skia.kBGRA_8888_ColorType, alphaType=skia.kOpaque_AlphaType)
        self._rgba = skia.Surface(self.pixels, colorType=skia.kRGBA_8888_ColorType, alphaType=skia.kOpaque_AlphaType)
        self.canvas = self._bgra.getCanvas()
        self.cells = self._rgba.getCanvas()

    def load(self, background: Image.Image | None) -> None:
        """Fills the buffer with the background, fitted to the size, or with parchment."""
        if background is None:
            self.canvas.clear(_color(_hex(PARCHMENT)))
            return
        image = _as_rgb(background)
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), Image.Resampling.LANCZOS)
        if not _paste_into(self.pixels, image):
            self.pixels[..., :3] = np.asarray(image)

    def image(self) -> Image.Image:
        """The buffer as a new RGB image."""
        self._bgra.flushAndSubmit()
        self._rgba.flushAndSubmit()
        out = _copy_out(self.pixels)
        if out is None:
            out = Image.fromarray(np.ascontiguousarray(self.pixels[..., :3]), "RGB")
        return out


def _paste_into(pixels: np.ndarray, image: Image.Image) -> bool:
    """Copies an RGB image into the buffer through a Pillow view of it (Pillow keeps RGB as 4 bytes a pixel, so
    this is a straight copy, about 10x faster than going through numpy). False if this Pillow cannot."""
    height, width = pixels.shape[:2]
    image.load()  # a lazily decoded file has no core image yet
    try:
        view = Image.frombuffer("RGBX", (width, height), pixels, "raw", "RGBX", 0, 1)
        view.im.paste(image.im, (0, 0, width, height))
    except (AttributeError, TypeError, ValueError):
        return False
    corner = image.getpixel((width - 1, height - 1))
    return tuple(int(v) for v in pixels[height - 1, width - 1, :3]) == corner


def _copy_out(pixels: np.ndarray) -> Image.Image | None:
    """The buffer as a new RGB image by the same straight copy, or None if this Pillow cannot."""
    height, width = pixels.shape[:2]
    try:
        view = Image.frombuffer("RGBX", (width, height), pixels, "raw", "RGBX", 0, 1)
        out = Image.new("RGB", (width, height), None)
        out.im.paste(view.im, (0, 0, width, height))
    except (AttributeError, TypeError, ValueError):
        return None
    if out.getpixel((width - 1, height - 1)) != tuple(int(v) for v in pixels[height - 1, width - 1, :3]):
        return None
    return out


def _as_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _hex(PARCHMENT))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


# -- paints, paths, text ------------------------------------------------------------------------------------------


def _hex(value: str) -> _RGB:
    digits = value.lstrip("#")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _color(rgb: _RGB, opacity: float = 1.0, *, swap: bool = True) -> int:
    """A skia colour: red and blue swapped for the BGRA-declared canvas (``swap``), as is for the cells canvas."""
    alpha = max(0, min(255, round(opacity * 255)))
    if swap:
        return skia.ColorSetARGB(alpha, rgb[2], rgb[1], rgb[0])
    return skia.ColorSetARGB(alpha, rgb[0], rgb[1], rgb[2])


def _fill(rgb: _RGB, opacity: float = 1.0) -> skia.Paint:
    return skia.Paint(AntiAlias=True, Color=_color(rgb, opacity))


def _stroke(rgb: _RGB, width: float, opacity: float = 1.0, *, round_ends: bool = True) -> skia.Paint:
    paint = skia.Paint(AntiAlias=True, Color=_color(rgb, opacity), Style=skia.Paint.kStroke_Style)
    paint.setStrokeWidth(width)
    if round_ends:
        paint.setStrokeCap(skia.Paint.kRound_Cap)
        paint.setStrokeJoin(skia.Paint.kRound_Join)
    return paint


def _polyline(points: Iterable[tuple[float, float]], scale: float, *, closed: bool) -> skia.Path:
    path = skia.Path()
    _add_poly(path, points, scale, closed=closed)
    return path


def _add_poly(path: skia.Path, points: Iterable[tuple[float, float]], scale: float, *, closed: bool) -> None:
    first = True
    for x, y in points:
        if first:
            path.moveTo(x * scale, y * scale)
            first = False
        else:
            path.lineTo(x * scale, y * scale)
    if closed and not first:
        path.close()


def _luminance(rgb: _RGB) -> float:
    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _ink_on(rgb: _RGB) -> _RGB:
    """Black or white, whichever contrasts more with ``rgb`` (WCAG equal-contrast point 0.179)."""
    return _BLACK if _luminance(rgb) > 0.179 else _WHITE


def _feet(value: float) -> str:
    rounded = round(value, 1)
    return f"{rounded:g} ft" if rounded != int(rounded) else f"{int(rounded)} ft"


def _column_letters(col: int) -> str:
    out = ""
    n = col + 1
    while n > 0:
        n, rem = divmod(n - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


# -- drawing context ----------------------------------------------------------------------------------------------


class _Context:
    """What every layer painter needs, with the colour and index lookups done once."""

    def __init__(
        self,
        surface: _Surface,
        spec: OverlaySpec,
        geometry: Geometry,
        geo: GridGeometry,
        art: Mapping[str, Image.Image],
    ) -> None:
        self.canvas = surface.canvas
        self._cells = surface.cells
        self.spec = spec
        self.geometry = geometry
        self.geo = geo
        self.art = art
        self.ppu = geo.ppu
        self.font_px = spec.style.font_px or max(9.0, 0.22 * self.ppu)
        palette = [_hex(c) for c in spec.style.palette]
        n = len(palette)
        self.token_colors = {t.id: _hex(t.color) if t.color else palette[i % n] for i, t in enumerate(spec.tokens)}
        self.template_colors = {
            t.id: _hex(t.color) if t.color else palette[(i + 1) % n] for i, t in enumerate(spec.templates)
        }
        self.path_colors = {
            p.id: _hex(p.color) if p.color else palette[(n - 1 - i) % n] for i, p in enumerate(spec.paths)
        }
        self.marker_colors = [_hex(m.color) if m.color else palette[(i + 3) % n] for i, m in enumerate(spec.markers)]
        self.tokens = {t.id: t for t in spec.tokens}
        self._fonts: dict[float, skia.Font] = {}

    def font(self, size: float) -> skia.Font:
        """The emboldened label font at ``size`` px (one object per size per render)."""
        font = self._fonts.get(size)
        if font is None:
            font = self._fonts[size] = fonts.skia_font(size, bold=True)
        return font

    def px(self, point: Point) -> tuple[float, float]:
        return point[0] * self.ppu, point[1] * self.ppu

    def fill_cells(self, cells: Iterable[Cell], rgb: _RGB, opacity: float, polygon: Sequence[Point] = ()) -> None:
        """Paints the cells (and a polygon, grid units) as one shape, so it blends once and shared edges leave no
        seam. Square cells are whole pixels (``cell_px`` is an integer): an integer region, exact without
        anti-aliasing. Hex cells and polygons: one anti-aliased path."""
        paint = skia.Paint(AntiAlias=True, Color=_color(rgb, opacity, swap=False))
        if not self.geo.grid.is_hex and not polygon:
            side = round(self.ppu)
            region = skia.Region()
            for c, r in cells:
                region.op(skia.IRect.MakeXYWH(c * side, r * side, side, side), skia.Region.kUnion_Op)
            if not region.isEmpty():
                paint.setAntiAlias(False)
                self._cells.drawRegion(region, paint)
            return
        path = skia.Path()
        u = self.ppu
        for cell in cells:
            if self.geo.grid.is_hex:
                _add_poly(path, self.geo.cell_polygon(cell), u, closed=True)
            else:
                path.addRect(skia.Rect.MakeXYWH(cell[0] * u, cell[1] * u, u, u))
        if len(polygon) >= 3:
            _add_poly(path, polygon, u, closed=True)
        if not path.isEmpty():
            self._cells.drawPath(path, paint)

    def text(
        self,
        text: str,
        x: float,
        y: float,
        size: float,
        ink: _RGB,
        halo: _RGB | None = None,
        *,
        align: str = "center",
    ) -> None:
        """``text`` (emboldened) centred vertically on ``y``; ``align`` center / left sets where ``x`` is."""
        font = self.font(size)
        metrics = font.getMetrics()
        width = font.measureText(text)
        left = x - width / 2 if align == "center" else x
        baseline = y - (metrics.fAscent + metrics.fDescent) / 2
        blob = skia.TextBlob.MakeFromString(text, font)
        if blob is None:
            return
        if halo is not None:
            self.canvas.drawTextBlob(blob, left, baseline, _stroke(halo, max(1.5, size / 6)))
        self.canvas.drawTextBlob(blob, left, baseline, _fill(ink))

    def pill(self, text: str, x: float, y: float, size: float, edge: _RGB) -> None:
        """A label in a white rounded box centred on ``(x, y)``."""
        width = self.font(size).measureText(text)
        pad = 0.3 * size
        rect = skia.Rect.MakeLTRB(x - width / 2 - pad, y - 0.62 * size, x + width / 2 + pad, y + 0.62 * size)
        radius = 0.45 * size
        self.canvas.drawRoundRect(rect, radius, radius, _fill(_LABEL_BG, 0.9))
        self.canvas.drawRoundRect(rect, radius, radius, _stroke(edge, max(1.0, size / 10)))
        self.text(text, x, y, size, _LABEL_INK)


# -- layers -------------------------------------------------------------------------------------------------------


def _grid(ctx: _Context) -> None:
    style = ctx.spec.style
    if style.grid_width_px <= 0 or style.grid_opacity <= 0:
        return
    colour = _hex(style.grid_color)
    if ctx.geo.grid.is_hex:
        path = skia.Path()
        for a, b in ctx.geo.hex_edges():
            path.moveTo(*ctx.px(a))
            path.lineTo(*ctx.px(b))
        ctx.canvas.drawPath(path, _stroke(colour, style.grid_width_px, style.grid_opacity))
        return
    _square_grid(ctx, colour, style.grid_width_px / 2, style.grid_opacity)


def _square_grid(ctx: _Context, colour: _RGB, half: float, opacity: float) -> None:
    """Vertical lines whole, horizontal ones in pieces between them: disjoint rectangles whose union is the grid,
    so a crossing blends once (bar its anti-aliased edge pixels), each on skia's fast rectangle path."""
    paint = _fill(colour, opacity)
    u, cols, rows = ctx.ppu, ctx.geo.grid.cols, ctx.geo.grid.rows
    height = rows * u
    for c in range(cols + 1):
        ctx.canvas.drawRect(skia.Rect.MakeLTRB(c * u - half, -half, c * u + half, height + half), paint)
    for r in range(rows + 1):
        y0, y1 = r * u - half, r * u + half
        for c in range(cols):
            left, right = c * u + half, (c + 1) * u - half
            if right > left:
                ctx.canvas.drawRect(skia.Rect.MakeLTRB(left, y0, right, y1), paint)


def _coordinates(ctx: _Context) -> None:
    size = 0.7 * ctx.font_px
    geo = ctx.geo
    if not geo.grid.is_hex:
        pad = 0.12 * size + 2
        for c, r in geo.cells():
            x, y = ctx.px((c, r))
            ctx.text(
                f"{_column_letters(c)}{r + 1}", x + pad, y + pad + size / 2, size, _LABEL_INK, _WHITE, align="left"
            )
        return
    for cell in geo.cells():
        x, y = ctx.px(geo.cell_center(cell))
        ctx.text(f"{cell[0]},{cell[1]}", x, y - 0.28 * ctx.ppu, size, _LABEL_INK, _WHITE)


def _areas(ctx: _Context) -> None:
    for area in ctx.spec.terrain.areas:
        colour = _hex(AREA_COLORS.get(area.kind, DEFAULT_AREA_COLOR))
        ctx.fill_cells(sorted(area.cells), colour, AREA_OPACITY, area.polygon)


def _walls(ctx: _Context) -> None:
    u = ctx.ppu
    wall = max(3.0, 0.1 * u)
    terrain = ctx.spec.terrain
    if terrain.walls:
        path = skia.Path()
        for line in terrain.walls:
            _add_poly(path, line, u, closed=False)
        ctx.canvas.drawPath(path, _stroke(_hex(WALL_COLOR), wall))
    for door in terrain.doors:
        bar = _polyline((door.a, door.b), u, closed=False)
        if door.closed:
            ctx.canvas.drawPath(bar, _stroke(_hex(OUTLINE_COLOR), 1.6 * wall + 2, round_ends=False))
            ctx.canvas.drawPath(bar, _stroke(_hex(DOOR_COLOR), 1.6 * wall, round_ends=False))
        else:
            paint = _stroke(_hex(DOOR_COLOR), 0.5 * wall, round_ends=False)
            paint.setPathEffect(skia.DashPathEffect.Make([wall, wall * 0.8], 0))
            ctx.canvas.drawPath(bar, paint)
    for window in terrain.windows:
        bar = _polyline((window.a, window.b), u, closed=False)
        ctx.canvas.drawPath(bar, _stroke(_hex(OUTLINE_COLOR), 0.8 * wall + 2, round_ends=False))
        ctx.canvas.drawPath(bar, _stroke(_hex(WINDOW_COLOR), 0.8 * wall, round_ends=False))


def _movement(ctx: _Context) -> None:
    for query in ctx.geometry.movement:
        walk = [cell for cell, cost in query.reachable if cost <= query.speed_ft + 1e-9]
        dash = [cell for cell, cost in query.reachable if cost > query.speed_ft + 1e-9]
        for cells, colour in ((walk, MOVE_COLOR), (dash, DASH_COLOR)):
            if cells:
                ctx.fill_cells(cells, _hex(colour), HEAT_OPACITY)


def _reach(ctx: _Context) -> None:
    for tg in ctx.geometry.tokens:
        if tg.reach and tg.id in ctx.token_colors:
            ctx.fill_cells(tg.reach, ctx.token_colors[tg.id], REACH_OPACITY)


def _templates(ctx: _Context) -> None:
    opacity = ctx.spec.style.template_opacity
    width = max(2.0, 0.04 * ctx.ppu)
    for tg in ctx.geometry.templates:
        colour = ctx.template_colors.get(tg.id, _hex(ctx.spec.style.palette[0]))
        if tg.cells and opacity > 0:
            ctx.fill_cells(tg.cells, colour, opacity)
        if len(tg.outline) >= 2:
            ctx.canvas.drawPath(_polyline(tg.outline, ctx.ppu, closed=True), _stroke(colour, width))


def _paths(ctx: _Context) -> None:
    width = max(3.0, 0.08 * ctx.ppu)
    for pg in ctx.geometry.paths:
        if not pg.cells:
            continue
        colour = ctx.path_colors.get(pg.id, _hex(ctx.spec.style.palette[0]))
        centres = [ctx.px(ctx.geo.cell_center(cell)) for cell in pg.cells]
        if len(centres) > 1:
            ctx.canvas.drawPath(_polyline(centres, 1.0, closed=False), _stroke(colour, width))
        marks = sorted(set(pg.waypoint_indexes) | {0, len(centres) - 1})
        for index in marks:
            if 0 <= index < len(centres):
                ctx.canvas.drawCircle(*centres[index], 1.1 * width, _fill(colour))
        for index, label in _path_labels(pg.waypoint_indexes, pg.step_costs_ft, pg.cost_ft, len(centres)):
            x, y = centres[index]
            ctx.pill(label, x, y - 0.42 * ctx.ppu, 0.8 * ctx.font_px, colour)


def _path_labels(waypoints: Sequence[int], steps: Sequence[float], total: float, count: int) -> list[tuple[int, str]]:
    """``(cell index, text)``: each leg's cost at its waypoint (after the first), the total at the last cell."""
    last = count - 1
    labels: list[tuple[int, str]] = []
    marks = [i for i in waypoints if 0 <= i <= last]
    for before, index in itertools.pairwise(marks):
        if index != last:
            labels.append((index, _feet(sum(steps[before:index]))))
    if last > 0 or total > 0:
        labels.append((last, _feet(total)))
    return labels


def _tokens(ctx: _Context) -> None:
    for tg in ctx.geometry.tokens:
        token = ctx.tokens.get(tg.id)
        if token is not None:
            _token(ctx, tg, token.size, token.label, token.image_id)


def _token(ctx: _Context, tg: TokenGeometry, size: str, label: str | None, image_id: str | None) -> None:
    colour = ctx.token_colors[tg.id]
    cx, cy = ctx.px(tg.center)
    radius = token_diameter(size, ctx.geo) * ctx.ppu / 2
    art = ctx.art.get(image_id) if image_id else None
    ctx.canvas.drawCircle(cx, cy, radius, _fill(colour))
    if art is not None:
        _token_art(ctx, art, cx, cy, radius)
    ctx.canvas.drawCircle(cx, cy, radius, _stroke(_hex(OUTLINE_COLOR), max(1.5, 0.03 * ctx.ppu)))
    if not label:
        return
    size_px = min(ctx.font_px, max(6.0, 0.55 * radius))
    if art is not None:
        ctx.text(label, cx, cy + radius + 0.7 * size_px, size_px, _WHITE, _hex(OUTLINE_COLOR))
        return
    fit = ctx.font(size_px).measureText(label)
    if fit > 1.7 * radius:
        size_px = max(6.0, size_px * 1.7 * radius / fit)
    ctx.text(label, cx, cy, size_px, _ink_on(colour))


def _token_art(ctx: _Context, art: Image.Image, cx: float, cy: float, radius: float) -> None:
    """The art's centre square, scaled to the disc (Lanczos), at whole-pixel offsets, clipped round by a shader.

    Transparent parts of the art show the token's colour (the disc is painted under it)."""
    side = max(1, math.ceil(2 * radius) + 2)
    square = min(art.size)
    left, top = (art.width - square) // 2, (art.height - square) // 2
    face = art.convert("RGBA").crop((left, top, left + square, top + square))
    pixels = np.asarray(face.resize((side, side), Image.Resampling.LANCZOS))
    # The buffer is RGBX declared BGRA, so RGBA art is declared BGRA too: both swaps cancel.
    image = skia.Image.fromarray(pixels, colorType=skia.kBGRA_8888_ColorType, alphaType=skia.kUnpremul_AlphaType)
    x0, y0 = math.floor(cx - side / 2), math.floor(cy - side / 2)
    shader = image.makeShader(
        skia.TileMode.kClamp,
        skia.TileMode.kClamp,
        skia.SamplingOptions(skia.FilterMode.kNearest),
        skia.Matrix.Translate(x0, y0),
    )
    paint = skia.Paint(AntiAlias=True, Shader=shader)
    ctx.canvas.drawCircle(cx, cy, radius, paint)


def _auras(ctx: _Context) -> None:
    width = max(1.5, 0.03 * ctx.ppu)
    for tg in ctx.geometry.tokens:
        if len(tg.aura) < 3 or tg.id not in ctx.token_colors:
            continue
        colour = ctx.token_colors[tg.id]
        path = _polyline(tg.aura, ctx.ppu, closed=True)
        ctx.canvas.drawPath(path, _fill(colour, AURA_FILL_OPACITY))
        ctx.canvas.drawPath(path, _stroke(colour, width, AURA_LINE_OPACITY))


def _markers(ctx: _Context) -> None:
    for marker, colour in zip(ctx.spec.markers, ctx.marker_colors, strict=True):
        x, y = ctx.px(marker.at)
        if marker.kind == "text":
            ctx.text(marker.text or "", x, y, ctx.font_px, colour, _WHITE)
            continue
        if marker.kind == "pin":
            _pin(ctx, x, y, colour)
            below = y + 0.6 * ctx.font_px
        else:
            _icon(ctx, marker, x, y, colour)
            below = y + 0.3 * ctx.ppu + 0.7 * ctx.font_px
        if marker.text:
            ctx.text(marker.text, x, below, 0.85 * ctx.font_px, _LABEL_INK, _WHITE)


def _pin(ctx: _Context, x: float, y: float, colour: _RGB) -> None:
    u = ctx.ppu
    r, hy = 0.16 * u, y - 0.42 * u
    tail = skia.Path()
    tail.moveTo(x - 0.75 * r, hy + 0.66 * r)
    tail.lineTo(x, y)
    tail.lineTo(x + 0.75 * r, hy + 0.66 * r)
    tail.close()
    tail.addCircle(x, hy, r)
    tail.setFillType(skia.PathFillType.kWinding)
    ctx.canvas.drawPath(tail, _fill(colour))
    ctx.canvas.drawPath(tail, _stroke(_hex(OUTLINE_COLOR), max(1.0, 0.02 * u)))


def _icon(ctx: _Context, marker: Marker, x: float, y: float, colour: _RGB) -> None:
    u = ctx.ppu
    r = 0.3 * u
    ctx.canvas.drawCircle(x, y, r, _fill(colour))
    ctx.canvas.drawCircle(x, y, r, _stroke(_hex(OUTLINE_COLOR), max(1.0, 0.02 * u)))
    glyph = _ICONS.get(marker.icon or "", _icon_ring)
    glyph(ctx, x, y, 0.62 * r, _ink_on(colour))


def _icon_ring(ctx: _Context, x: float, y: float, s: float, ink: _RGB) -> None:
    ctx.canvas.drawCircle(x, y, 0.6 * s, _stroke(ink, 0.22 * s))


def _icon_star(ctx: _Context, x: float, y: float, s: float, ink: _RGB) -> None:
    points = []
    for i in range(10):
        angle = math.radians(-90 + 36 * i)
        rad = s if i % 2 == 0 else 0.42 * s
        points.append((x + rad * math.cos(angle), y + rad * math.sin(angle)))
    ctx.canvas.drawPath(_polyline(points, 1.0, closed=True), _fill(ink))


def _icon_x(ctx: _Context, x: float, y: float, s: float, ink: _RGB) -> None:
    k = 0.7 * s
    path = skia.Path()
    path.moveTo(x - k, y - k)
    path.lineTo(x + k, y + k)
    path.moveTo(x + k, y - k)
    path.lineTo(x - k, y + k)
    ctx.canvas.drawPath(path, _stroke(ink, 0.3 * s))


def _icon_skull(ctx: _Context, x: float, y: float, s: float, ink: _RGB) -> None:
    ctx.canvas.drawCircle(x, y - 0.15 * s, 0.75 * s, _fill(ink))
    ctx.canvas.drawRect(skia.Rect.MakeLTRB(x - 0.42 * s, y + 0.3 * s, x + 0.42 * s, y + 0.85 * s), _fill(ink))
    hole = _BLACK if ink == _WHITE else _WHITE
    for dx in (-0.3, 0.3):
        ctx.canvas.drawCircle(x + dx * s, y - 0.15 * s, 0.2 * s, _fill(hole))


def _icon_chest(ctx: _Context, x: float, y: float, s: float, ink: _RGB) -> None:
    body = skia.Rect.MakeLTRB(x - 0.8 * s, y - 0.45 * s, x + 0.8 * s, y + 0.6 * s)
    ctx.canvas.drawRect(body, _stroke(ink, 0.18 * s, round_ends=False))
    ctx.canvas.drawLine(x - 0.8 * s, y - 0.05 * s, x + 0.8 * s, y - 0.05 * s, _stroke(ink, 0.14 * s))
    ctx.canvas.drawCircle(x, y + 0.12 * s, 0.13 * s, _fill(ink))


def _icon_trap(ctx: _Context, x: float, y: float, s: float, ink: _RGB) -> None:
    tri = ((x, y - 0.85 * s), (x + 0.85 * s, y + 0.65 * s), (x - 0.85 * s, y + 0.65 * s))
    ctx.canvas.drawPath(_polyline(tri, 1.0, closed=True), _stroke(ink, 0.16 * s))
    ctx.text("!", x, y + 0.1 * s, 1.1 * s, ink)


def _icon_door(ctx: _Context, x: float, y: float, s: float, ink: _RGB) -> None:
    ctx.canvas.drawRect(
        skia.Rect.MakeLTRB(x - 0.5 * s, y - 0.85 * s, x + 0.5 * s, y + 0.85 * s), _stroke(ink, 0.16 * s)
    )
    ctx.canvas.drawCircle(x + 0.25 * s, y + 0.05 * s, 0.11 * s, _fill(ink))


_Glyph = Callable[[_Context, float, float, float, _RGB], None]


def _icon_char(char: str) -> _Glyph:
    def glyph(ctx: _Context, x: float, y: float, s: float, ink: _RGB) -> None:
        ctx.text(char, x, y, 1.7 * s, ink)

    return glyph


_ICONS: dict[str, _Glyph] = {
    "star": _icon_star,
    "x": _icon_x,
    "skull": _icon_skull,
    "chest": _icon_chest,
    "trap": _icon_trap,
    "door": _icon_door,
    "exclamation": _icon_char("!"),
    "question": _icon_char("?"),
}


def _fog(ctx: _Context) -> None:
    fog = ctx.spec.fog
    if fog is None or not fog.hidden or fog.opacity <= 0:
        return
    ctx.fill_cells(sorted(fog.hidden), _hex(fog.color), fog.opacity)


def _legend(ctx: _Context) -> None:
    entries = [(t.label or t.id, ctx.template_colors[t.id]) for t in ctx.spec.templates]
    entries += [(p.label or p.id, ctx.path_colors[p.id]) for p in ctx.spec.paths]
    if not entries:
        return
    f, m = ctx.font_px, float(LEGEND_MARGIN)
    width = max(ctx.font(f).measureText(label) for label, _ in entries)
    rect = skia.Rect.MakeXYWH(m, m, 0.6 * f + f + 0.5 * f + width + 0.6 * f, 1.2 * f + 1.6 * f * len(entries))
    ctx.canvas.drawRect(rect, _fill(_LEGEND_BG, 0.88))
    ctx.canvas.drawRect(rect, _stroke(_hex(OUTLINE_COLOR), 1.0, round_ends=False))
    for k, (label, colour) in enumerate(entries):
        top = m + 0.6 * f + 1.6 * f * k
        swatch = skia.Rect.MakeXYWH(m + 0.6 * f, top + 0.3 * f, f, f)
        ctx.canvas.drawRect(swatch, _fill(colour))
        ctx.text(label, m + 0.6 * f + 1.5 * f, top + 0.8 * f, f, _LABEL_INK, align="left")


_PAINTERS = {
    "grid": _grid,
    "coordinates": _coordinates,
    "areas": _areas,
    "walls": _walls,
    "movement": _movement,
    "reach": _reach,
    "templates": _templates,
    "paths": _paths,
    "tokens": _tokens,
    "auras": _auras,
    "markers": _markers,
    "fog": _fog,
    "legend": _legend,
}
