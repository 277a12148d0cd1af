"""Figure extras drawn over generated art: round VTT tokens, item cards and size-reference cues.

Pure PIL, no randomness: the same inputs give the same pixels (and so the same PNG bytes). The geometry is fixed by
the constants and formulas below, so tests compute where things must be without calling this module.

Coordinates are continuous pixel coordinates: pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``, so its centre is
``(x + 0.5, y + 0.5)``. Boxes are ``(left, top, right, bottom)`` with ``right`` and ``bottom`` exclusive (PIL's
``crop`` convention).

**Token** (:func:`round_token`, RGBA, ``size x size``): the centre square of the art (side ``min(w, h)``, offset
``((w - side) // 2, (h - side) // 2)``) scaled to ``size`` (Lanczos), inside a disc of radius ``R = size / 2``
centred at ``(size / 2, size / 2)``. The ring is the annulus from ``r = R - ring_width * size`` (i.e.
``R * (1 - 2 * ring_width)``) out to ``R``, filled with ``ring_color``. Coverage is antialiased by drawing the disc
and the inner edge at ``supersample`` times the size and box-averaging down, so alpha is 255 inside, 0 outside and
the alpha sum is ``π R²``. VTTs commonly use 256, 400 or 512 px tokens.

**Card** (:func:`item_card`, RGB): ``width x round(width * CARD_ASPECT)``; see :func:`card_layout` for the boxes. The
card is filled with :data:`FRAME_COLOR`; the art is scaled to fit (whole art visible, aspect kept, centred) in the
art box; the band is filled with the rarity colour and holds the item name (first line) and the rarity label
(second line) in black or white, whichever contrasts more with the rarity colour (WCAG relative luminance above
:data:`LUMINANCE_THRESHOLD` takes black). Text is PIL's default font; a name too long for the band is cut and ends
with "…".

**Size reference** (:func:`size_reference`): the canvas is widened to the right by a plain :data:`PANEL_COLOR` panel
holding the cue, drawn vertically, and its label (``"30 cm"``) under it; cue and label are centred in the panel
as one block. The item is assumed to span :data:`ITEM_SPAN` of the art's height, so the cue's length in pixels is
``round(ITEM_SPAN * H * reference_length_cm / item_length_cm)``: a ruler's height, a coin's diameter, a hand's
wrist-to-fingertip length. A length below :data:`MIN_CUE_PX` or above the room in the panel (``H`` less the
padding and the label) is clamped to that bound, the label then adds "(not to scale)" and the result's
``clamped`` is true.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps

from pipelines.errors import InputError

__all__ = [
    "BAND_FRACTION",
    "CARD_ASPECT",
    "DEFAULT_RING_COLOR",
    "DEFAULT_RING_WIDTH",
    "FRAME_COLOR",
    "ITEM_SPAN",
    "LUMINANCE_THRESHOLD",
    "MARGIN_FRACTION",
    "MAX_CARD_WIDTH",
    "MAX_RING_WIDTH",
    "MAX_TOKEN_SIZE",
    "MIN_CARD_WIDTH",
    "MIN_CUE_PX",
    "MIN_TOKEN_SIZE",
    "PANEL_COLOR",
    "REFERENCES",
    "CardLayout",
    "ScaleCue",
    "card_layout",
    "item_card",
    "round_token",
    "size_reference",
]

# --- token ---------------------------------------------------------------------------------------------------------

MIN_TOKEN_SIZE = 32
"""Smallest token side in pixels."""
MAX_TOKEN_SIZE = 2048
"""Largest token side in pixels."""
DEFAULT_RING_COLOR = "#c9a227"
"""Antique gold."""
DEFAULT_RING_WIDTH = 0.06
"""Ring width as a fraction of the token side (the ring is ``ring_width * size`` px wide)."""
MAX_RING_WIDTH = 0.25
"""Widest ring: half the radius."""
_MAX_MASK_SIDE = 4096
"""The supersampled masks are at most this many pixels a side (``supersample`` is lowered to fit)."""

# --- card ----------------------------------------------------------------------------------------------------------

CARD_ASPECT = 1.4
"""Card height over width (a 2.5 x 3.5 in playing card)."""
MIN_CARD_WIDTH = 128
"""Narrowest card in pixels."""
MAX_CARD_WIDTH = 4096
"""Widest card in pixels."""
MARGIN_FRACTION = 0.04
"""Frame margin as a fraction of the card width (at least 2 px)."""
BAND_FRACTION = 0.18
"""Rarity band height as a fraction of the card height."""
FRAME_COLOR = "#1f1a17"
"""The card's frame, also behind art that does not fill the art box."""
LUMINANCE_THRESHOLD = 0.179
"""Band colours with a WCAG relative luminance above this get black text, others white (equal contrast point)."""
_TEXT_PAD_FRACTION = 0.1  # of the band height, at least 2 px: inset of the text box in the band
_NAME_FONT_FRACTION = 0.34  # of the band height, at least 8 px
_RARITY_FONT_FRACTION = 0.22  # of the band height, at least 8 px
_ELLIPSIS = "\u2026"

# --- size reference ------------------------------------------------------------------------------------------------

ITEM_SPAN = 0.8
"""Fraction of the art's height the item is assumed to span (prompts ask for the item to fill the frame)."""
REFERENCES = ("hand", "coin", "ruler")
"""Scale cues :func:`size_reference` draws."""
PANEL_COLOR = "#efe6d2"
"""Plain parchment behind the cue (and behind transparent art)."""
MIN_CUE_PX = 8
"""Shortest cue drawn, in pixels."""
_PAD_FRACTION = 0.04  # of the art height, at least 4 px: panel padding around the cue block
_LABEL_FONT_FRACTION = 0.04  # of the art height, at least 10 px
_CUE_SUPERSAMPLE = 4
_RULER_WIDTH_FRACTION = 0.1  # of the ruler length, at least 6 px
_MIN_TICK_SPACING_PX = 4
_TICK_STEPS_CM = (1, 5, 10, 50, 100)
_HAND_WIDTH = 0.62  # of the hand length
_INK = (59, 47, 34)
_RULER_FILL = (217, 183, 121)
_COIN_FILL = (212, 175, 55)
_COIN_RIM = (138, 109, 31)
_HAND_FILL = (107, 84, 64)

_HEX = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class CardLayout:
    """Where an item card's parts go (boxes are ``(left, top, right, bottom)``, right and bottom exclusive).

    With ``m = max(2, round(MARGIN_FRACTION * width))``, ``b = round(BAND_FRACTION * height)`` and
    ``p = max(2, round(0.1 * b))``:

    - ``band_box = (m, height - m - b, width - m, height - m)``
    - ``art_box = (m, m, width - m, band_box[1] - m)``
    - ``text_box``: ``band_box`` inset by ``p`` on every side; all text ink lies inside it.

    Attributes:
        width: Card width.
        height: Card height.
        margin: ``m``.
        art_box: Where the art is fitted.
        band_box: The rarity band.
        text_box: Where the name and rarity text go.
        name_size: Font size of the name (first line, from the top of ``text_box``).
        rarity_size: Font size of the rarity label (second line, ending at the bottom of ``text_box``).
    """

    width: int
    height: int
    margin: int
    art_box: tuple[int, int, int, int]
    band_box: tuple[int, int, int, int]
    text_box: tuple[int, int, int, int]
    name_size: int
    rarity_size: int


@dataclass(frozen=True)
class ScaleCue:
    """What :func:`size_reference` drew.

    Attributes:
        image: The widened RGB image: the art at ``(0, 0)``, the cue panel to its right.
        cue_px: The cue's drawn length in pixels (ruler height, coin diameter, hand length).
        clamped: ``cue_px`` is not to scale: the true length was under :data:`MIN_CUE_PX` or over the panel's room.
        px_per_cm: The item's scale, ``ITEM_SPAN * H / item_length_cm``.
        box: The cue's box in ``image`` (its label is below it, outside the box).
        label: The text under the cue.
    """

    image: Image.Image
    cue_px: int
    clamped: bool
    px_per_cm: float
    box: tuple[int, int, int, int]
    label: str


def round_token(
    art: Image.Image,
    *,
    size: int = 512,
    ring_color: str = DEFAULT_RING_COLOR,
    ring_width: float = DEFAULT_RING_WIDTH,
    supersample: int = 4,
) -> Image.Image:
    """Draws a round VTT token: the art's centre square in a disc with a ring, transparent outside.

    Geometry is in the module docstring: outer radius ``size / 2``, inner ring radius
    ``size / 2 * (1 - 2 * ring_width)``.

    Args:
        art: The art, any mode (alpha is ignored).
        size: Token side in pixels, :data:`MIN_TOKEN_SIZE` to :data:`MAX_TOKEN_SIZE`.
        ring_color: ``"#rrggbb"``.
        ring_width: Ring width as a fraction of ``size``, 0 (no ring) to :data:`MAX_RING_WIDTH`.
        supersample: Antialiasing factor for the edges, 1 to 8 (lowered so a mask side stays within 4096 px).

    Returns:
        An RGBA image of ``size x size``.

    Raises:
        InputError: An argument is out of range (``param`` is ``token_size``, ``ring_color``, ``ring_width``,
            ``supersample`` or ``art``).
    """
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_TOKEN_SIZE <= size <= MAX_TOKEN_SIZE:
        raise InputError("token_size", size, f"an integer from {MIN_TOKEN_SIZE} to {MAX_TOKEN_SIZE}")
    ring = _rgb(ring_color, "ring_color")
    if not isinstance(ring_width, int | float) or not 0 <= ring_width <= MAX_RING_WIDTH:
        raise InputError("ring_width", ring_width, f"a number from 0 to {MAX_RING_WIDTH}")
    if isinstance(supersample, bool) or not isinstance(supersample, int) or not 1 <= supersample <= 8:
        raise InputError("supersample", supersample, "an integer from 1 to 8")
    _check_art(art)

    side = min(art.size)
    left, top = (art.width - side) // 2, (art.height - side) // 2
    face = art.convert("RGB").crop((left, top, left + side, top + side))
    face = face.resize((size, size), Image.Resampling.LANCZOS)

    factor = max(1, min(supersample, _MAX_MASK_SIDE // size))
    outer = size / 2
    alpha = _disc(size, factor, outer)
    inner = outer - ring_width * size
    if ring_width > 0:
        # Ring colour everywhere outside the inner disc; the alpha channel carries the outer edge.
        face = Image.composite(face, Image.new("RGB", face.size, ring), _disc(size, factor, inner))
    token = face.convert("RGBA")
    token.putalpha(alpha)
    return token


def card_layout(width: int, height: int) -> CardLayout:
    """The boxes of a ``width x height`` item card (formulas in :class:`CardLayout`).

    Args:
        width: Card width, :data:`MIN_CARD_WIDTH` to :data:`MAX_CARD_WIDTH`.
        height: Card height, at least ``width`` (cards are portrait).

    Returns:
        The layout.

    Raises:
        InputError: ``width`` or ``height`` is out of range.
    """
    _check_card_width(width)
    if isinstance(height, bool) or not isinstance(height, int) or not width <= height <= 2 * MAX_CARD_WIDTH:
        raise InputError("height", height, f"an integer from the width ({width}) to {2 * MAX_CARD_WIDTH}")
    margin = max(2, round(MARGIN_FRACTION * width))
    band_h = round(BAND_FRACTION * height)
    band = (margin, height - margin - band_h, width - margin, height - margin)
    art = (margin, margin, width - margin, band[1] - margin)
    pad = max(2, round(_TEXT_PAD_FRACTION * band_h))
    text = (band[0] + pad, band[1] + pad, band[2] - pad, band[3] - pad)
    return CardLayout(
        width=width,
        height=height,
        margin=margin,
        art_box=art,
        band_box=band,
        text_box=text,
        name_size=max(8, round(_NAME_FONT_FRACTION * band_h)),
        rarity_size=max(8, round(_RARITY_FONT_FRACTION * band_h)),
    )


def item_card(art: Image.Image, *, name: str, rarity: str, rarity_color: str, width: int | None = None) -> Image.Image:
    """Draws an item card: framed art over a band in the rarity colour with the name and rarity.

    Args:
        art: The item art, any mode (transparency shows the frame colour).
        name: The item's name (cut with "…" to fit the band).
        rarity: The rarity label, drawn with its first letter capitalised (``"very rare"`` → ``"Very rare"``).
        rarity_color: The band colour, ``"#rrggbb"``.
        width: Card width in pixels, :data:`MIN_CARD_WIDTH` to :data:`MAX_CARD_WIDTH`; ``None`` takes the art's
            width, brought into that range. The height is ``round(width * CARD_ASPECT)``.

    Returns:
        An RGB image.

    Raises:
        InputError: An argument is out of range (``param`` is ``name``, ``rarity``, ``rarity_color``, ``width``
            or ``art``).
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError("name", name, "a non-empty string")
    if not isinstance(rarity, str) or not rarity.strip():
        raise InputError("rarity", rarity, "a non-empty string")
    band_rgb = _rgb(rarity_color, "rarity_color")
    _check_art(art)
    if width is None:
        width = min(max(art.width, MIN_CARD_WIDTH), MAX_CARD_WIDTH)
    _check_card_width(width)
    layout = card_layout(width, round(width * CARD_ASPECT))

    frame = _rgb(FRAME_COLOR, "frame")
    card = Image.new("RGB", (layout.width, layout.height), frame)
    left, top, right, bottom = layout.art_box
    fitted = ImageOps.contain(_flatten(art, frame), (right - left, bottom - top), Image.Resampling.LANCZOS)
    card.paste(fitted, (left + (right - left - fitted.width) // 2, top + (bottom - top - fitted.height) // 2))

    draw = ImageDraw.Draw(card)
    draw.rectangle(_inclusive(layout.band_box), fill=band_rgb)
    ink = (0, 0, 0) if _luminance(band_rgb) > LUMINANCE_THRESHOLD else (255, 255, 255)
    t_left, t_top, t_right, t_bottom = layout.text_box
    room = t_right - t_left
    name_font = _font(layout.name_size)
    rarity_font = _font(layout.rarity_size)
    label = rarity.strip()
    label = label[0].upper() + label[1:]
    draw.text((t_left, t_top), _fit_text(name.strip(), name_font, room), font=name_font, fill=ink, anchor="la")
    draw.text((t_left, t_bottom), _fit_text(label, rarity_font, room), font=rarity_font, fill=ink, anchor="ld")
    return card


def size_reference(art: Image.Image, *, reference: str, item_length_cm: float, reference_length_cm: float) -> ScaleCue:
    """Widens ``art`` to the right and draws a scale cue beside the item at the item's scale.

    Layout and clamping are in the module docstring. Cues: ``ruler`` (a bar with a tick every 1 cm, or every 5,
    10, 50 or 100 cm when ticks would be under 4 px apart; longer ticks at multiples of 5 and 10 cm), ``coin`` (a
    disc whose diameter is the reference length) and ``hand`` (a fixed silhouette, palm, four fingers and thumb,
    whose wrist-to-fingertip length is the reference length and width 0.62 of it).

    Args:
        art: The item art, any mode (transparency shows the panel colour); tall enough for an 8 px cue, its label
            and padding (about 31 px).
        reference: ``hand``, ``coin`` or ``ruler``.
        item_length_cm: The item's real length.
        reference_length_cm: The cue's real length (ruler length, coin diameter, hand length).

    Returns:
        The widened image and where the cue is.

    Raises:
        InputError: An argument is out of range (``param`` is ``reference``, ``item_length_cm``,
            ``reference_length_cm`` or ``art``).
    """
    if reference not in REFERENCES:
        raise InputError("reference", reference, f"one of {list(REFERENCES)}")
    for param, value in (("item_length_cm", item_length_cm), ("reference_length_cm", reference_length_cm)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise InputError(param, value, "a positive, finite number of centimetres")
    _check_art(art)
    width, height = art.size
    pad = max(4, round(_PAD_FRACTION * height))
    font = _font(max(10, round(_LABEL_FONT_FRACTION * height)))
    ascent, descent = font.getmetrics()
    label_h = ascent + descent
    gap = max(2, pad // 2)
    room = height - 2 * pad - gap - label_h
    if room < MIN_CUE_PX:
        raise InputError("art", art.size, f"an image tall enough for a {MIN_CUE_PX} px cue and its label")

    px_per_cm = ITEM_SPAN * height / item_length_cm
    cue_px = round(px_per_cm * reference_length_cm)
    clamped = not MIN_CUE_PX <= cue_px <= room
    cue_px = min(max(cue_px, MIN_CUE_PX), room)
    label = f"{reference_length_cm:g} cm" + (" (not to scale)" if clamped else "")

    cue = _draw_cue(reference, cue_px, reference_length_cm)
    label_w = max(math.ceil(font.getlength(label)), font.getbbox(label, anchor="la")[2])
    panel_w = max(cue.width, label_w) + 2 * pad
    panel = _rgb(PANEL_COLOR, "panel")
    canvas = Image.new("RGB", (width + panel_w, height), panel)
    canvas.paste(_flatten(art, panel), (0, 0))
    block_top = (height - (cue_px + gap + label_h)) // 2
    cue_left = width + (panel_w - cue.width) // 2
    canvas.paste(cue.convert("RGB"), (cue_left, block_top), mask=cue.getchannel("A"))
    draw = ImageDraw.Draw(canvas)
    label_xy = (width + (panel_w - label_w) // 2, block_top + cue_px + gap)
    draw.text(label_xy, label, font=font, fill=_INK, anchor="la")
    return ScaleCue(
        image=canvas,
        cue_px=cue_px,
        clamped=clamped,
        px_per_cm=px_per_cm,
        box=(cue_left, block_top, cue_left + cue.width, block_top + cue_px),
        label=label,
    )


# --- drawing helpers -----------------------------------------------------------------------------------------------


def _disc(size: int, factor: int, radius: float) -> Image.Image:
    """An ``L`` mask of a disc of ``radius`` centred on a ``size`` square, box-averaged from ``factor`` x size.

    Drawn row by row at the supersampled size: a sample is inside when its centre is within the radius, so the
    geometry does not depend on PIL's ellipse rasteriser.
    """
    big = size * factor
    mask = Image.new("L", (big, big), 0)
    if radius <= 0:
        return mask.resize((size, size), Image.Resampling.BOX) if factor > 1 else mask
    draw = ImageDraw.Draw(mask)
    centre = big / 2
    r = radius * factor
    for y in range(big):
        dy = y + 0.5 - centre
        if abs(dy) >= r:
            continue
        half = math.sqrt(r * r - dy * dy)
        x0 = math.ceil(centre - half - 0.5)  # first sample centre x + 0.5 >= centre - half
        x1 = math.floor(centre + half - 0.5)  # last sample centre x + 0.5 <= centre + half
        if x1 >= x0:
            draw.line([(x0, y), (x1, y)], fill=255)
    return mask.resize((size, size), Image.Resampling.BOX) if factor > 1 else mask


def _draw_cue(reference: str, length: int, length_cm: float) -> Image.Image:
    """The cue as an RGBA image ``length`` px tall, drawn at 4x and box-averaged down."""
    ss = _CUE_SUPERSAMPLE
    if reference == "ruler":
        cue_w = max(6, round(_RULER_WIDTH_FRACTION * length))
    elif reference == "coin":
        cue_w = length
    else:
        cue_w = max(1, round(_HAND_WIDTH * length))
    big_w, big_h = cue_w * ss, length * ss
    layer = Image.new("RGBA", (big_w, big_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if reference == "ruler":
        _draw_ruler(draw, big_w, big_h, length / length_cm * ss, length_cm, ss)
    elif reference == "coin":
        rim = max(ss, big_w // 16)
        draw.ellipse((0, 0, big_w - 1, big_h - 1), fill=_COIN_FILL, outline=_COIN_RIM, width=rim)
        if length >= 12:
            inset = round(0.15 * big_w)
            draw.ellipse((inset, inset, big_w - 1 - inset, big_h - 1 - inset), outline=_COIN_RIM, width=ss)
    else:
        _draw_hand(draw, big_h)
    return layer.resize((cue_w, length), Image.Resampling.BOX)


def _draw_ruler(draw: ImageDraw.ImageDraw, w: int, h: int, px_per_cm: float, length_cm: float, ss: int) -> None:
    draw.rectangle((0, 0, w - 1, h - 1), fill=_RULER_FILL, outline=_INK, width=ss)
    step = next((s for s in _TICK_STEPS_CM if s * px_per_cm >= _MIN_TICK_SPACING_PX * ss), None)
    if step is None:
        return
    k = 1
    while k * step < length_cm:
        cm = k * step
        reach = 0.6 if cm % 10 == 0 else 0.45 if cm % 5 == 0 else 0.3
        y = round(h - cm * px_per_cm)
        draw.rectangle((0, y - ss // 2, round(reach * w), y - ss // 2 + ss - 1), fill=_INK)
        k += 1


def _draw_hand(draw: ImageDraw.ImageDraw, big: int) -> None:
    """A right hand, palm forward, fingers up, in unit coordinates (length 1 = ``big`` px, width 0.62)."""

    def at(u: float) -> float:
        return u * big

    def capsule(x0: float, y0: float, x1: float, y1: float) -> None:
        box = (at(x0), at(y0), max(at(x0), at(x1) - 1), max(at(y0), at(y1) - 1))
        radius = max(0, int(min(box[2] - box[0], box[3] - box[1]) / 2))
        draw.rounded_rectangle(box, radius=radius, fill=_HAND_FILL)

    palm = (at(0.2), at(0.42), at(_HAND_WIDTH) - 1, big - 1)
    draw.rounded_rectangle(palm, radius=max(0, int(at(0.08))), fill=_HAND_FILL)
    for x0, tip in ((0.205, 0.06), (0.31, 0.0), (0.415, 0.05), (0.52, 0.16)):  # index, middle, ring, little
        capsule(x0, tip, x0 + 0.095, 0.5)
    thumb_w = at(0.11)
    start, end = (at(0.27), at(0.8)), (at(0.06), at(0.52))
    draw.line([start, end], fill=_HAND_FILL, width=max(1, round(thumb_w)))
    for cx, cy in (start, end):
        r = thumb_w / 2
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_HAND_FILL)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's embedded default font (loaded per call, about 40 us, so no font object is shared between threads)."""
    return ImageFont.load_default(size=size)


def _fit_text(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, room: int) -> str:
    """``text``, or its longest prefix plus "…", whose ink and advance fit in ``room`` px."""
    if _text_width(text, font) <= room:
        return text
    lo, hi = 0, len(text)  # the answer keeps text[:lo]; lo fits, hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _text_width(text[:mid].rstrip() + _ELLIPSIS, font) <= room:
            lo = mid
        else:
            hi = mid
    while lo > 0 and _text_width(text[:lo].rstrip() + _ELLIPSIS, font) > room:
        lo -= 1
    return text[:lo].rstrip() + _ELLIPSIS


def _text_width(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> float:
    return max(font.getlength(text), font.getbbox(text, anchor="la")[2])


def _luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""

    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _flatten(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """``image`` as RGB, transparent parts over ``background``."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB") if image.mode != "RGB" else image


def _inclusive(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return box[0], box[1], box[2] - 1, box[3] - 1


def _rgb(value: str, param: str) -> tuple[int, int, int]:
    if not isinstance(value, str) or _HEX.fullmatch(value) is None:
        raise InputError(param, value, 'a colour as "#rrggbb"')
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _check_art(art: Image.Image) -> None:
    if not isinstance(art, Image.Image) or min(art.size) < 1:
        raise InputError("art", getattr(art, "size", art), "a non-empty PIL image")


def _check_card_width(width: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_CARD_WIDTH <= width <= MAX_CARD_WIDTH:
        raise InputError("width", width, f"an integer from {MIN_CARD_WIDTH} to {MAX_CARD_WIDTH}")
