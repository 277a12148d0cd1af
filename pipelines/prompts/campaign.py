"""Campaign (world) maps: the layout sketch the art is generated from (image to image) and its prompt. Pure PIL; the
labels, borders, routes and the rest are drawn by limner over the art afterwards, so none of them is in the sketch
or asked for in the prompt.

**Placement.** :func:`campaign_sketch` scales the canvas to the ``W x H`` image on each axis
(``sx = W / canvas_width``, ``sy = H / canvas_height``; a size from :func:`~pipelines.prompts.maps.model_size` keeps
the aspect, so the two agree to a pixel). Pixels are continuous as in :mod:`pipelines.prompts.maps`: canvas point
``(x, y)`` lies at image pixel coordinates ``(sx x, sy y)``, and pixel ``(i, j)`` spans ``[i, i + 1] x [j, j + 1]``.
Polygons are filled where PIL's polygon fill puts them (pixel centres inside, edges in); nothing is anti-aliased.

**Layers**, bottom to top: land the regions leave uncovered, in ``plains`` colour; each region filled with its
terrain's :data:`~pipelines.overlay.campaign.TERRAINS` colour (later regions over earlier ones); the coast, a
:data:`COAST_COLOUR` band :func:`line_width` pixels wide centred on every edge where water (a water terrain's pixel)
meets land, on both sides of it; rivers (routes of kind ``river``) as :data:`RIVER_COLOUR` polylines of the same
width with round joins and ends. No labels, roads, borders or symbols.

**Prompt.** :func:`campaign_prompt` is ``"fantasy world map, top-down, <subject>, no text, no labels"`` where the
subject is the user's prompt or, without one, :func:`describe_campaign`'s words: the terrains' prompt words
(:attr:`~pipelines.overlay.campaign.Terrain.prompt`) by the area they show on the map, largest first (uncovered
land counts as plains), then ``"winding rivers"`` when there are rivers. The negative prompt is
:data:`CAMPAIGN_NEGATIVE`.
"""

from __future__ import annotations

import re
from typing import Final

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from pipelines.errors import InputError
from pipelines.overlay.campaign import TERRAINS, CampaignSpec, Point, route_points

__all__ = [
    "CAMPAIGN_NEGATIVE",
    "CAMPAIGN_PREFIX",
    "CAMPAIGN_SUFFIX",
    "COAST_COLOUR",
    "MAX_TERRAIN_WORDS",
    "RIVER_COLOUR",
    "campaign_prompt",
    "campaign_sketch",
    "describe_campaign",
    "line_width",
    "terrain_areas",
]

RGB = tuple[int, int, int]

COAST_COLOUR: Final[RGB] = (52, 66, 82)
"""The coastline: a dark blue-grey, darker than every terrain colour."""
RIVER_COLOUR: Final[RGB] = (58, 110, 190)
"""Rivers: a clear blue, darker than the water terrains so a river into the sea stays visible."""
CAMPAIGN_PREFIX: Final = "fantasy world map, top-down"
CAMPAIGN_SUFFIX: Final = "no text, no labels"
CAMPAIGN_NEGATIVE: Final = (
    "text, labels, lettering, words, letters, numbers, grid, hex grid, frame, border, legend, compass rose, "
    "scale bar, watermark, signature, perspective, isometric"
)
"""The campaign map's negative prompt: limner draws every label, grid, legend, compass and frame itself."""
MAX_TERRAIN_WORDS: Final = 5
"""At most this many terrains are named in a described prompt."""

_SPACES = re.compile(r"\s+")


# -- the sketch ---------------------------------------------------------------------------------------------------


def line_width(width: int, height: int) -> int:
    """The coast and river width in pixels of a ``width x height`` sketch: ``round(min(width, height) / 256)``,
    at least 2."""
    return max(2, round(min(width, height) / 256))


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(name, value, "a whole number of pixels, at least 1")


def _hex_rgb(colour: str) -> RGB:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def campaign_sketch(spec: CampaignSpec, width: int, height: int) -> Image.Image:
    """The campaign map as a colour-coded terrain plan for image to image (module docstring: placement, layers).

    Args:
        spec: A checked spec; its regions and rivers are drawn.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        An RGB image of ``width x height``.

    Raises:
        InputError: A size below 1 pixel.
    """
    _check_size(width, height)
    sx, sy = width / spec.width, height / spec.height

    def pil(point: Point) -> tuple[float, float]:
        # PIL puts pixel i's centre at i, ours at i + 0.5.
        return sx * point[0] - 0.5, sy * point[1] - 0.5

    image = Image.new("RGB", (width, height), _hex_rgb(TERRAINS["plains"].color))
    water = Image.new("L", (width, height), 0)
    draw, mask = ImageDraw.Draw(image), ImageDraw.Draw(water)
    for region in spec.regions:
        terrain = TERRAINS[region.terrain]
        xy = [pil(p) for p in region.polygon]
        draw.polygon(xy, fill=_hex_rgb(terrain.color))
        mask.polygon(xy, fill=255 if terrain.water else 0)
    line = line_width(width, height)
    # A pixel is on the coast when water and land both lie within line / 2 of it: the band where the dilated
    # water and the dilated land overlap.
    reach = 2 * (line // 2) + 1
    near_water = water.filter(ImageFilter.MaxFilter(reach))
    near_land = ImageChops.invert(water).filter(ImageFilter.MaxFilter(reach))
    coast = ImageChops.multiply(near_water, near_land).point(lambda v: 255 if v else 0)
    image.paste(COAST_COLOUR, (0, 0, width, height), coast)
    for route in spec.routes:
        if route.kind != "river":
            continue
        xy = [pil(p) for p in route_points(spec, route)]
        if len(xy) < 2:
            continue
        draw.line(xy, fill=RIVER_COLOUR, width=line, joint="curve")
        half = line / 2
        for x, y in (xy[0], xy[-1]):
            draw.ellipse((x - half, y - half, x + half, y + half), fill=RIVER_COLOUR)
    return image


# -- the prompt ---------------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip(" ,;")


def _join(*parts: str | None) -> str:
    """Comma-joins the non-empty parts; every fragment is stripped and empty ones dropped."""
    fragments = (_clean(f) for p in parts if p for f in p.split(","))
    return ", ".join(f for f in fragments if f)


def terrain_areas(spec: CampaignSpec) -> dict[str, float]:
    """The canvas area each terrain shows (regions clipped to the canvas, later ones hiding earlier ones, the
    uncovered rest as ``plains``), in square pixels, largest first (ties: the terrain seen first)."""
    from shapely.geometry import Polygon, box
    from shapely.ops import unary_union

    canvas = box(0, 0, spec.width, spec.height)
    shapes = [Polygon(r.polygon).intersection(canvas) for r in spec.regions]
    areas: dict[str, float] = {}
    above = Polygon()
    for region, shape in zip(reversed(spec.regions), reversed(shapes), strict=True):
        areas[region.terrain] = areas.get(region.terrain, 0.0) + shape.difference(above).area
        above = unary_union([above, shape])
    first_seen = {t: i for i, t in reversed(list(enumerate(r.terrain for r in spec.regions)))}
    uncovered = canvas.difference(above).area
    if uncovered > 0:
        areas["plains"] = areas.get("plains", 0.0) + uncovered
        first_seen.setdefault("plains", len(first_seen))
    ordered = sorted(areas.items(), key=lambda item: (-item[1], first_seen[item[0]]))
    return {terrain: area for terrain, area in ordered if area > 0}


def describe_campaign(spec: CampaignSpec) -> str:
    """The map in prompt words: up to :data:`MAX_TERRAIN_WORDS` terrains' prompt words by shown area, largest
    first, then ``"winding rivers"`` when a route is a river (``"dense forest, mountain ranges, sea, open plains,
    winding rivers"``)."""
    words = [TERRAINS[t].prompt or t for t in terrain_areas(spec)][:MAX_TERRAIN_WORDS]
    rivers = "winding rivers" if any(r.kind == "river" for r in spec.routes) else ""
    return _join(*words, rivers) or TERRAINS["plains"].prompt


def campaign_prompt(spec: CampaignSpec, prompt: str | None) -> tuple[str, str]:
    """The subject and negative prompts of a campaign map's art (before the theme).

    Args:
        spec: The map's spec; its terrain mix describes the map when there is no prompt.
        prompt: The user's description, or None (or blank) for :func:`describe_campaign`'s.

    Returns:
        ``(prompt, negative_prompt)``.
    """
    subject = prompt if prompt and _clean(prompt) else describe_campaign(spec)
    return _join(CAMPAIGN_PREFIX, subject, CAMPAIGN_SUFFIX), CAMPAIGN_NEGATIVE
