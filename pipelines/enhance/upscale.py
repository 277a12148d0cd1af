"""Upscaling: the settings users know from AUTOMATIC1111's hires fix, and the pure half of each engine.

**Engines** (:data:`METHODS`), chosen by ``UpscaleSettings.method``:

- ``lanczos``: a Lanczos resize (PIL's, support 3), the floor that is always there (:func:`lanczos`).
- ``hires``: Lanczos to the target size, then an image-to-image repaint at a low ``denoise`` with the image's own
  prompt and seed. Pure code plans it (:func:`hires_plan`): when the target fits in the generator's native area
  (``native x native`` pixels) the whole image is one repaint; past it, the target is cut into overlapping tiles
  of ``min(tile, native)`` pixels (rounded down to a multiple of 8; see :mod:`pipelines.enhance.tiles`), each
  repainted from its own crop of the Lanczos base, so every repaint of a plan has one size and they batch
  together. :func:`hires_blend` puts the repainted crops back through the feathered weights, so no seam shows.
- ``model``: an ESRGAN-family net (:mod:`pipelines.enhance.model`), run as many times as it takes to reach the
  target, then Lanczos to the exact size (:func:`model_resize`), as A1111 does with an upscaler whose factor is
  not the one asked for.

**Sizes** (:func:`target_size`). The result of every engine is ``round(width * scale)`` by ``round(height *
scale)``, each rounded to the nearest multiple of 8 (halves up), at least 8: an upscaled image can go through
image-to-image again, which needs multiples of 8. ``UpscaleSettings.check`` refuses a target past the configured
pixel limit naming ``scale``.

**Errors.** :class:`~pipelines.errors.InputError` naming ``scale``, ``method``, ``denoise``, ``steps``, ``tile`` or
``overlap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from pipelines.enhance.tiles import TILE_MULTIPLE, Tile, blend, check_tiling, tile_plan
from pipelines.errors import InputError

if TYPE_CHECKING:
    from pipelines.enhance.model import Upscaler

__all__ = [
    "MAX_SCALE",
    "METHODS",
    "RepaintTile",
    "UpscaleSettings",
    "hires_blend",
    "hires_plan",
    "lanczos",
    "model_resize",
    "target_size",
]

METHODS: tuple[str, ...] = ("lanczos", "hires", "model")
"""The upscale engines, by name."""
MAX_SCALE = 4.0
"""The largest ``scale``."""
_MAX_MODEL_PASSES = 4


def target_size(width: int, height: int, scale: float, multiple: int = TILE_MULTIPLE) -> tuple[int, int]:
    """The size an upscale by ``scale`` produces.

    Args:
        width: Source width in pixels.
        height: Source height in pixels.
        scale: The factor.
        multiple: Each side is rounded to the nearest multiple of this (halves up), at least ``multiple``.

    Returns:
        ``(width, height)`` of the result.
    """

    def side(n: int) -> int:
        return max(multiple, math.floor(n * scale / multiple + 0.5) * multiple)

    return side(width), side(height)


def lanczos(image: Image.Image, width: int, height: int) -> Image.Image:
    """Resizes with PIL's Lanczos filter.

    Args:
        image: The image (converted to RGB).
        width: Target width.
        height: Target height.

    Returns:
        A new RGB image of ``width x height`` (a copy when the size is unchanged).
    """
    rgb = image.convert("RGB")
    if rgb.size == (width, height):
        return rgb.copy()
    return rgb.resize((width, height), Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class UpscaleSettings:
    """One upscale, as a user asks for it.

    Attributes:
        scale: Factor on width and height, from 1 to :data:`MAX_SCALE`.
        method: One of :data:`METHODS`.
        denoise: ``hires`` only: the image-to-image strength of the repaint, above 0 and at most 1 (0.3 keeps
            detail; A1111's default is 0.75).
        steps: ``hires`` only: the repaint's step count before ``denoise`` shortens it; None: the image's own.
        tile: Tile side for ``hires`` (capped at the generator's native size) and ``model`` (input pixels).
        overlap: Pixels neighbouring tiles share at least.
    """

    scale: float = 2.0
    method: str = "lanczos"
    denoise: float = 0.3
    steps: int | None = None
    tile: int = 512
    overlap: int = 64

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The result's size for a ``width x height`` source (:func:`target_size`)."""
        return target_size(width, height, self.scale)

    def hires_tile(self, native: int) -> int:
        """The side of a ``hires`` repaint tile: ``min(tile, native)`` rounded down to a multiple of 8."""
        return min(self.tile, native) // TILE_MULTIPLE * TILE_MULTIPLE

    def check(
        self, width: int, height: int, max_pixels: int | None, *, native: int | None = None, max_steps: int = 150
    ) -> None:
        """Raises :class:`InputError` for the first field out of range.

        Args:
            width: Source width in pixels.
            height: Source height in pixels.
            max_pixels: Largest result, width x height; a bigger one is refused naming ``scale``. None: no limit
                (the source's size is not known yet).
            native: The generator's native side, when known: ``hires`` tiles are capped at it, so ``overlap`` is
                also checked against the capped tile.
            max_steps: Most repaint steps.
        """
        scale = self.scale
        if not isinstance(scale, int | float) or isinstance(scale, bool) or not 1.0 <= scale <= MAX_SCALE:
            raise InputError("scale", scale, f"a number from 1 to {MAX_SCALE:g}")
        out_w, out_h = self.output_size(width, height)
        if max_pixels is not None and out_w * out_h > max_pixels:
            most = math.sqrt(max_pixels / (width * height))
            raise InputError(
                "scale",
                scale,
                f"at most about {most:.2f} for a {width}x{height} image: the result, {out_w}x{out_h}, is past the "
                f"{max_pixels}-pixel limit",
            )
        if self.method not in METHODS:
            raise InputError("method", self.method, f"one of {list(METHODS)}")
        denoise = self.denoise
        if not isinstance(denoise, int | float) or isinstance(denoise, bool) or not 0.0 < denoise <= 1.0:
            raise InputError("denoise", denoise, "a number above 0 and at most 1")
        steps = self.steps
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= max_steps):
            raise InputError("steps", steps, f"null (the image's own) or an integer from 1 to {max_steps}")
        check_tiling(self.tile, self.overlap)
        if self.method == "hires" and native is not None:
            capped = self.hires_tile(native)
            if capped < self.tile and not 2 * self.overlap < capped:
                raise InputError(
                    "overlap", self.overlap, f"below half the repaint tile, {capped} here (the model's native size)"
                )


@dataclass(frozen=True)
class RepaintTile:
    """One image-to-image repaint of a hires upscale.

    Attributes:
        box: Where the crop sits in the upscaled image, ``(left, top, right, bottom)``, right/bottom exclusive.
        crop: The Lanczos-upscaled crop to repaint, the box's size.
    """

    box: tuple[int, int, int, int]
    crop: Image.Image = field(compare=False, repr=False)


def hires_plan(image: Image.Image, settings: UpscaleSettings, *, native: int) -> tuple[Image.Image, list[RepaintTile]]:
    """Plans a hires upscale: the Lanczos base and the crops the generator repaints.

    Args:
        image: The source image.
        settings: The upscale (``scale``, ``tile`` and ``overlap`` are used).
        native: The generator's native side in pixels (1024 for SDXL): a target of at most ``native x native``
            pixels is repainted whole, a bigger one in tiles of :meth:`UpscaleSettings.hires_tile` pixels.

    Returns:
        The Lanczos base at :meth:`UpscaleSettings.output_size`, and the repaints in row-major order, all of one
        size (a multiple of 8 on each side).
    """
    width, height = settings.output_size(*image.size)
    base = lanczos(image, width, height)
    if width * height <= native * native:
        return base, [RepaintTile((0, 0, width, height), base.copy())]
    side = settings.hires_tile(native)
    if not 2 * settings.overlap < side:
        raise InputError("overlap", settings.overlap, f"below half the repaint tile, {side} here")
    plan = tile_plan(width, height, side, settings.overlap)
    return base, [RepaintTile(t.box, base.crop(t.box)) for t in plan]


def hires_blend(base: Image.Image, tiles: Sequence[tuple[RepaintTile, Image.Image]], overlap: int) -> Image.Image:
    """Puts the repainted crops of a :func:`hires_plan` back together.

    Args:
        base: The plan's Lanczos base (only its size is used).
        tiles: Every repaint of the plan with the generator's image for it; an image of another size than its
            box is Lanczos-resized to it first.
        overlap: The overlap the plan was made with (``settings.overlap``).

    Returns:
        The upscaled RGB image, the base's size.
    """
    width, height = base.size
    placed = []
    for repaint, image in tiles:
        left, top, right, bottom = repaint.box
        fits = image.size == (right - left, bottom - top) and image.mode == "RGB"
        placed.append((Tile(repaint.box), image if fits else lanczos(image, right - left, bottom - top)))
    if len(placed) == 1 and placed[0][0].box == (0, 0, width, height):
        return placed[0][1]
    return blend(placed, width, height, overlap)


def model_resize(
    upscaler: Upscaler, image: Image.Image, width: int, height: int, *, tile: int = 512, overlap: int = 32
) -> Image.Image:
    """Upscales through a net to an exact size: as many tiled passes as it takes to reach it, then Lanczos.

    Args:
        upscaler: The net (:func:`pipelines.enhance.model.load_upscaler`).
        image: The source image.
        width: Target width (at least the source's, as a rule).
        height: Target height.
        tile: Input tile side of each pass.
        overlap: Input pixels neighbouring tiles share at least.

    Returns:
        The RGB image of ``width x height``.
    """
    from pipelines.enhance.model import upscale_with_model

    out = image.convert("RGB")
    passes = 0
    # A 1x net runs once; a 2x net asked for 3x runs twice (4x) and Lanczos takes it down to 3x.
    while passes == 0 or (
        upscaler.scale > 1 and passes < _MAX_MODEL_PASSES and (out.width < width or out.height < height)
    ):
        out = upscale_with_model(upscaler, out, tile=tile, overlap=overlap)
        passes += 1
    return lanczos(out, width, height)
