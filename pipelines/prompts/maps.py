"""Tactical battle maps: the layout sketch, the depth map and the prompt a background is generated from, the size it
is generated at and the fit to the map's exact size. Pure PIL.

**Placement.** :func:`layout_sketch` and :func:`depth_map` draw the map (its extent in grid units,
:func:`~pipelines.overlay.spec.map_extent`) at one uniform scale ``s = min(W / map_width, H / map_height)`` pixels
per grid unit, centred in the ``W x H`` image: exactly the region :func:`fit_exact` keeps when it fits a ``W x H``
image to the map's pixel size. So a background generated at :func:`model_size` from these images and then fitted
lines up with the grid. The margin left over (under one model ``multiple`` of pixels) is floor. Pixels are
continuous: pixel ``(i, j)`` spans ``[i, i + 1] x [j, j + 1]``; grid point ``(x, y)`` is at pixel
``(ox + s x, oy + s y)``. A square cell ``(c, r)`` fills the pixels ``round(ox + s c) <= i < round(ox + s (c + 1))``
(rows alike), so cells tile without gaps or overlaps; hex cells, polygon areas and discs are filled where PIL's
polygon fill puts them (pixel centres inside, edges in). Nothing is anti-aliased: every pixel of the sketch is one
of :data:`LAYOUT_COLOURS`.

**Layers**, bottom to top: floor; terrain areas in their order (later areas over earlier ones); features (discs of
:data:`FEATURE_DIAMETER` grid units at the cell centre); walls (polylines :data:`WALL_WIDTH` grid units thick,
with round joins and ends); windows; doors (open and closed alike on the sketch). The depth map draws the same
shapes in grey levels (:data:`DEPTH_LEVELS`: high is near), leaves open doors out (what is under them stays) and
is then blurred (Gaussian, radius ``s / 8``) so the depth ControlNet sees soft edges.

**Prompt.** :func:`tactical_prompt` is ``"top-down battle map, orthographic overhead view, <subject>, no grid, no
text"`` where the subject is the user's prompt or, without one, :func:`describe_terrain`'s words (``"stone walls,
2 doors, a pool of water, trees"``), and the negative prompt :data:`MAP_NEGATIVE`. Comma fragments are stripped
and empty ones dropped, as in :mod:`pipelines.prompts.figures`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Final

from PIL import Image, ImageDraw, ImageFilter

from pipelines.errors import InputError
from pipelines.overlay.grid import GridGeometry
from pipelines.overlay.spec import AREA_EFFECTS, Area, Cell, OverlaySpec, Point, Terrain

__all__ = [
    "DEPTH_LEVELS",
    "FEATURE_DIAMETER",
    "LAYOUT_COLOURS",
    "MAP_NEGATIVE",
    "WALL_WIDTH",
    "depth_map",
    "describe_terrain",
    "fit_exact",
    "layout_sketch",
    "model_size",
    "tactical_prompt",
]

RGB = tuple[int, int, int]

LAYOUT_COLOURS: Final[Mapping[str, RGB]] = MappingProxyType(
    {
        # structure (ADE20K segmentation colours: wall, floor, door, windowpane)
        "floor": (80, 50, 50),
        "wall": (120, 120, 120),
        "door": (8, 255, 51),
        "window": (230, 230, 230),
        # areas (ADE20K water, earth, plant, rug; the others distinct)
        "water": (61, 230, 250),
        "difficult": (120, 120, 70),
        "rubble": (170, 110, 60),
        "vegetation": (204, 255, 4),
        "mud": (110, 80, 40),
        "ice": (200, 235, 255),
        "pit": (25, 25, 25),
        "lava": (255, 96, 0),
        "chasm": (0, 0, 0),
        "carpet": (255, 9, 92),
        "area": (150, 110, 80),
        # features (ADE20K tree, column, rock, box, table; the others distinct)
        "tree": (4, 200, 3),
        "pillar": (255, 8, 41),
        "rock": (255, 41, 10),
        "boulder": (255, 41, 10),
        "statue": (220, 120, 255),
        "chest": (0, 255, 20),
        "crate": (0, 255, 20),
        "table": (255, 6, 82),
        "barrel": (200, 140, 0),
        "altar": (235, 12, 255),
        "feature": (255, 0, 255),
    }
)
"""Sketch colours: structure, then area kinds (``area`` for a kind not listed), then feature kinds (``feature``
for a kind not listed). Where ADE20K has the class its segmentation colour is used, so a segmentation ControlNet
could read the sketch too."""

DEPTH_LEVELS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "wall": 230,
        "blocking": 230,
        "furniture": 180,
        "floor": 128,
        "raised": 160,
        "low": 40,
        "water": 40,
        "mud": 110,
        "ice": 128,
    }
)
"""Depth grey levels (near is white): walls, closed doors and windows ``wall``; features that block ``blocking``,
other features ``furniture``; the floor ``floor``. An area takes its kind's level when listed here, else by what it
does (:data:`~pipelines.overlay.spec.AREA_EFFECTS`): ``difficult`` -> ``raised``, ``blocked`` (pits, lava, chasms)
-> ``low``, nothing -> ``floor``."""

WALL_WIDTH: Final = 0.2
"""Wall, door and window thickness in grid units (cells on a square grid)."""
FEATURE_DIAMETER: Final = 0.8
"""A feature's disc diameter in grid units."""
MAP_PREFIX: Final = "top-down battle map, orthographic overhead view"
MAP_SUFFIX: Final = "no grid, no text"
MAP_NEGATIVE: Final = "perspective, isometric, grid lines, text, watermark, characters, tokens"
"""The tactical map's negative prompt."""

_AREA_WORDS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "water": ("a pool of water", "pools of water"),
        "pit": ("a pit", "pits"),
        "lava": ("a pool of lava", "pools of lava"),
        "chasm": ("a chasm", "chasms"),
        "difficult": ("rough ground", "rough ground"),
        "rubble": ("rubble", "rubble"),
        "vegetation": ("dense undergrowth", "dense undergrowth"),
        "mud": ("mud", "mud"),
        "ice": ("a sheet of ice", "sheets of ice"),
        "carpet": ("a carpet", "carpets"),
        "floor": ("", ""),
    }
)
"""Area kind -> (one area, several); unknown kinds use the kind's own words."""
_SPACES = re.compile(r"\s+")


# -- placement ----------------------------------------------------------------------------------------------------


class _Plan:
    """Grid units to pixels of a ``width x height`` image (module docstring: uniform, centred)."""

    def __init__(self, spec: OverlaySpec, width: int, height: int) -> None:
        self.geo = GridGeometry(spec.grid)
        self.size = (width, height)
        self.s = min(width / self.geo.width, height / self.geo.height)
        self.ox = (width - self.s * self.geo.width) / 2
        self.oy = (height - self.s * self.geo.height) / 2

    def pil(self, point: Point) -> tuple[float, float]:
        """A grid point as PIL drawing coordinates (PIL puts pixel ``i``'s centre at ``i``, ours at ``i + .5``)."""
        return self.ox + self.s * point[0] - 0.5, self.oy + self.s * point[1] - 0.5

    def fill_cell(self, draw: ImageDraw.ImageDraw, cell: Cell, fill: int | RGB) -> None:
        if self.geo.is_hex:
            draw.polygon([self.pil(p) for p in self.geo.cell_polygon(cell)], fill=fill)
            return
        c, r = cell
        x0, x1 = round(self.ox + self.s * c), round(self.ox + self.s * (c + 1))
        y0, y1 = round(self.oy + self.s * r), round(self.oy + self.s * (r + 1))
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)

    def fill_area(self, draw: ImageDraw.ImageDraw, area: Area, fill: int | RGB) -> None:
        for cell in sorted(area.cells):
            self.fill_cell(draw, cell, fill)
        if len(area.polygon) >= 3:
            draw.polygon([self.pil(p) for p in area.polygon], fill=fill)

    def disc(self, draw: ImageDraw.ImageDraw, cell: Cell, fill: int | RGB) -> None:
        x, y = self.pil(self.geo.cell_center(cell))
        r = FEATURE_DIAMETER / 2 * self.s
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def stroke(self, draw: ImageDraw.ImageDraw, points: Sequence[Point], fill: int | RGB, scale: float = 1.0) -> None:
        """A polyline ``WALL_WIDTH * scale`` grid units thick (at least 1 px), round joins and ends."""
        width = max(1, round(WALL_WIDTH * scale * self.s))
        xy = [self.pil(p) for p in points]
        draw.line(xy, fill=fill, width=width, joint="curve")
        if width > 2:
            half = width / 2
            for x, y in xy:
                draw.ellipse((x - half, y - half, x + half, y + half), fill=fill)


def _area_level(kind: str) -> int:
    if kind in DEPTH_LEVELS:
        return DEPTH_LEVELS[kind]
    effect = AREA_EFFECTS.get(kind)
    return DEPTH_LEVELS["raised" if effect == "difficult" else "low" if effect == "blocked" else "floor"]


def _check_size(width: int, height: int, names: tuple[str, str]) -> None:
    for name, value in zip(names, (width, height), strict=True):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(name, value, "a whole number of pixels, at least 1")


# -- the sketch and the depth map ---------------------------------------------------------------------------------


def layout_sketch(spec: OverlaySpec, geo_width_px: int, geo_height_px: int, *, scale: float = 1.0) -> Image.Image:
    """The terrain as a colour-coded plan (module docstring: placement, layers, colours).

    Args:
        spec: The map's spec (square or hex grid); only the grid and the terrain are drawn.
        geo_width_px: Image width before ``scale`` (the map's pixel width, or a model size).
        geo_height_px: Image height before ``scale``.
        scale: Multiplies both sides (each rounded to the nearest pixel, at least 1).

    Returns:
        An RGB image of ``round(geo_width_px * scale) x round(geo_height_px * scale)`` pixels.

    Raises:
        InputError: A size below 1 pixel or a scale that is not a positive number.
    """
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise InputError("scale", scale, "a number more than 0")
    _check_size(geo_width_px, geo_height_px, ("geo_width_px", "geo_height_px"))
    width, height = max(1, round(geo_width_px * scale)), max(1, round(geo_height_px * scale))
    plan = _Plan(spec, width, height)
    image = Image.new("RGB", plan.size, LAYOUT_COLOURS["floor"])
    draw = ImageDraw.Draw(image)
    terrain = spec.terrain
    for area in terrain.areas:
        plan.fill_area(draw, area, LAYOUT_COLOURS.get(area.kind, LAYOUT_COLOURS["area"]))
    for feature in terrain.features:
        plan.disc(draw, feature.cell, LAYOUT_COLOURS.get(feature.kind, LAYOUT_COLOURS["feature"]))
    for wall in terrain.walls:
        plan.stroke(draw, wall, LAYOUT_COLOURS["wall"])
    for portal in terrain.windows:
        plan.stroke(draw, (portal.a, portal.b), LAYOUT_COLOURS["window"])
    for portal in terrain.doors:
        plan.stroke(draw, (portal.a, portal.b), LAYOUT_COLOURS["door"])
    return image


def depth_map(spec: OverlaySpec, width_px: int, height_px: int) -> Image.Image:
    """A depth-like ``L`` image of the terrain for the depth ControlNet (near is white; :data:`DEPTH_LEVELS`).

    Args:
        spec: The map's spec (square or hex grid).
        width_px: Image width.
        height_px: Image height.

    Returns:
        An ``L`` image of ``width_px x height_px``, Gaussian-blurred with radius ``s / 8`` (``s`` pixels per cell).

    Raises:
        InputError: A size below 1 pixel.
    """
    _check_size(width_px, height_px, ("width_px", "height_px"))
    plan = _Plan(spec, width_px, height_px)
    image = Image.new("L", plan.size, DEPTH_LEVELS["floor"])
    draw = ImageDraw.Draw(image)
    terrain = spec.terrain
    for area in terrain.areas:
        plan.fill_area(draw, area, _area_level(area.kind))
    for feature in terrain.features:
        plan.disc(draw, feature.cell, DEPTH_LEVELS["blocking" if feature.blocks else "furniture"])
    closed = (*terrain.windows, *(door for door in terrain.doors if door.closed))
    for line in (*terrain.walls, *((p.a, p.b) for p in closed)):
        plan.stroke(draw, line, DEPTH_LEVELS["wall"])
    return image.filter(ImageFilter.GaussianBlur(plan.s / 8))


# -- the prompt ---------------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip(" ,;")


def _join(*parts: str | None) -> str:
    """Comma-joins the non-empty parts; every fragment is stripped and empty ones dropped."""
    fragments = (_clean(f) for p in parts if p for f in p.split(","))
    return ", ".join(f for f in fragments if f)


def _plural(phrase: str) -> str:
    head, _, last = phrase.rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif len(last) > 1 and last.endswith("y") and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def _article(phrase: str) -> str:
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"


def _counted(kinds: Iterable[str], words: Callable[[str], tuple[str, str]]) -> list[str]:
    """One phrase per kind in first-seen order: the singular for one, the plural for more."""
    counts: dict[str, int] = {}
    for kind in kinds:
        key = _clean(kind.replace("_", " ").replace(",", " ")).lower()
        counts[key] = counts.get(key, 0) + 1
    return [words(kind)[count > 1] for kind, count in counts.items() if kind]


def _area_words(kind: str) -> tuple[str, str]:
    return _AREA_WORDS.get(kind, (kind, kind))


def _feature_words(kind: str) -> tuple[str, str]:
    return _article(kind), _plural(kind)


def _count(n: int, one: str, many: str) -> str:
    return "" if n == 0 else one if n == 1 else f"{n} {many}"


def describe_terrain(terrain: Terrain) -> str:
    """The terrain in prompt words: walls, the number of doors and windows, the areas, the features.

    ``"stone walls, 2 doors, a window, a pool of water, trees"``: each area or feature kind once, in the order first
    seen, singular for one and plural for more (``floor`` areas add nothing); ``"open ground"`` for an empty
    terrain.
    """
    text = _join(
        "stone walls" if terrain.walls else "",
        _count(len(terrain.doors), "a door", "doors"),
        _count(len(terrain.windows), "a window", "windows"),
        *_counted((a.kind for a in terrain.areas), _area_words),
        *_counted((f.kind for f in terrain.features), _feature_words),
    )
    return text or "open ground"


def tactical_prompt(spec: OverlaySpec, prompt: str | None) -> tuple[str, str]:
    """The subject and negative prompts of a tactical map's background (before the theme).

    Args:
        spec: The map's spec; its terrain describes the map when there is no prompt.
        prompt: The user's description, or None (or blank) for :func:`describe_terrain`'s.

    Returns:
        ``(prompt, negative_prompt)``.
    """
    subject = prompt if prompt and _clean(prompt) else describe_terrain(spec.terrain)
    return _join(MAP_PREFIX, subject, MAP_SUFFIX), MAP_NEGATIVE


# -- sizes --------------------------------------------------------------------------------------------------------


def model_size(
    cols_px: int, rows_px: int, *, base_pixels: int, multiple: int = 8, max_side: int | None = None
) -> tuple[int, int]:
    """A generation size with the map's aspect ratio and about ``base_pixels`` pixels.

    The exact-aspect size of ``base_pixels`` pixels (``h = sqrt(base_pixels * rows_px / cols_px)``,
    ``w = h * cols_px / rows_px``) is shrunk, when ``max_side`` is given, so its longer side is at most
    ``max_side``; then each side is rounded to the nearest multiple of ``multiple`` (halves up), at least one
    multiple and at most ``max_side`` rounded down to a multiple.

    Args:
        cols_px: The map's width in pixels.
        rows_px: The map's height in pixels.
        base_pixels: The model's preferred pixel count (about 1024 x 1024 for SDXL).
        multiple: Both sides are multiples of it (8 for the VAE, 64 for SDXL's buckets).
        max_side: The longest side allowed, or None.

    Returns:
        ``(width, height)``.

    Raises:
        InputError: A non-positive input, or ``max_side`` below ``multiple``.
    """
    for name, value in (("cols_px", cols_px), ("rows_px", rows_px), ("base_pixels", base_pixels)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise InputError(name, value, "a whole number more than 0")
    if not (isinstance(multiple, int) and not isinstance(multiple, bool) and multiple > 0):
        raise InputError("multiple", multiple, "a whole number more than 0")
    if max_side is not None and not (isinstance(max_side, int) and max_side >= multiple):
        raise InputError("max_side", max_side, f"a whole number of pixels, at least multiple ({multiple})")
    height = math.sqrt(base_pixels * rows_px / cols_px)
    width = height * cols_px / rows_px
    if max_side is not None and max(width, height) > max_side:
        shrink = max_side / max(width, height)
        width, height = width * shrink, height * shrink
    top = max_side // multiple * multiple if max_side is not None else None

    def snap(value: float) -> int:
        snapped = max(multiple, math.floor(value / multiple + 0.5) * multiple)
        return snapped if top is None else min(snapped, top)

    return snap(width), snap(height)


def fit_exact(image: Image.Image, width_px: int, height_px: int) -> Image.Image:
    """``image`` scaled to cover ``width_px x height_px`` (aspect kept, Lanczos) and centre-cropped to exactly it.

    One resampling step: the centred source box with the target's aspect ratio (the largest that fits, at
    fractional coordinates) is resized to the target, so nothing is cropped twice or rounded before scaling.

    Args:
        image: Any PIL image; its mode is kept.
        width_px: Target width.
        height_px: Target height.

    Returns:
        A new image of exactly ``width_px x height_px``.

    Raises:
        InputError: A size below 1 pixel.
    """
    _check_size(width_px, height_px, ("width_px", "height_px"))
    iw, ih = image.size
    if (iw, ih) == (width_px, height_px):
        return image.copy()
    if iw * height_px > ih * width_px:  # wider than the target: keep the full height
        bw = ih * width_px / height_px
        box = ((iw - bw) / 2, 0.0, (iw + bw) / 2, float(ih))
    else:
        bh = iw * height_px / width_px
        box = (0.0, (ih - bh) / 2, float(iw), (ih + bh) / 2)
    return image.resize((width_px, height_px), Image.Resampling.LANCZOS, box=box)
