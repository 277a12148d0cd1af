"""The one font the overlay draws with: Pillow's embedded Aileron Regular, the same bytes on every machine.

CI machines and slim containers may have no system fonts, and a system font would make the pixels depend on the
machine. Pillow (>= 10.1, built with FreeType, as every wheel is) embeds a subset of Aileron Regular
(https://dotcolon.net/fonts/aileron, SIL Open Font License) in :func:`PIL.ImageFont.load_default`; loading it from
a byte stream keeps the bytes on the font object (``FreeTypeFont.font_bytes``), which is where :func:`font_bytes`
takes them from. The subset covers printable ASCII and a few typographic marks (curly quotes, ellipsis, degree,
plus-minus, guillemets, the "fi"/"fl" ligatures); other characters draw as the font's missing-glyph box.

Everything is loaded on first use and cached (:func:`functools.cache`): nothing happens at import. The skia
typeface comes from an empty custom font manager, so fontconfig is never initialised (no system lookups, no
warnings) and the same glyph outlines are rasterised everywhere. :func:`skia_font` fixes every setting that
changes pixels (no hinting, grey-scale anti-aliasing, subpixel positioning, linear metrics), so text is the same
bytes across processes and machines running the same skia build.
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import skia
    from PIL import ImageFont

__all__ = ["FONT_FAMILY", "font_bytes", "pil_font", "skia_font", "typeface"]

FONT_FAMILY = "Aileron"
"""The family name inside :func:`font_bytes`."""


@functools.cache
def font_bytes() -> bytes:
    """The TrueType bytes of Pillow's embedded default font (Aileron Regular, subset).

    Returns:
        The font file's bytes (starts with the TrueType tag ``00 01 00 00``).

    Raises:
        RuntimeError: This Pillow has no FreeType support or no longer keeps the bytes on the font.
    """
    from PIL import ImageFont

    font = ImageFont.load_default(size=10)
    data = getattr(font, "font_bytes", None)
    if not isinstance(data, bytes) or not data:
        raise RuntimeError("Pillow's default font is not a FreeType font with its bytes kept (Pillow >= 10.1)")
    return data


@functools.cache
def typeface() -> skia.Typeface:
    """The skia typeface of :func:`font_bytes` (shared: skia typefaces are immutable and thread-safe)."""
    import skia

    manager = skia.FontMgr.New_Custom_Empty()
    face = manager.makeFromData(skia.Data.MakeWithCopy(font_bytes()))
    if face is None:
        raise RuntimeError("skia could not read Pillow's default font")
    return face


def skia_font(size: float, *, bold: bool = False) -> skia.Font:
    """A skia font of :func:`typeface` at ``size`` pixels, with every pixel-changing setting fixed.

    Args:
        size: Pixels (em size).
        bold: Synthetic emboldening (skia thickens the outlines; Aileron Regular's strokes are thin for small
            labels over art).

    Returns:
        A new object per call (cheap): skia fonts are mutable, so none is shared between threads.
    """
    import skia

    font = skia.Font(typeface(), float(size))
    font.setEmbolden(bold)
    font.setHinting(skia.FontHinting.kNone)
    font.setEdging(skia.Font.Edging.kAntiAlias)
    font.setSubpixel(True)
    font.setLinearMetrics(True)
    font.setBaselineSnap(False)
    font.setEmbeddedBitmaps(False)
    return font


def pil_font(size: float) -> ImageFont.FreeTypeFont:
    """The same font for PIL drawing, with the basic layout engine (raqm, when installed, may shape differently)."""
    from PIL import ImageFont

    return ImageFont.truetype(io.BytesIO(font_bytes()), size=size, layout_engine=ImageFont.Layout.BASIC)
