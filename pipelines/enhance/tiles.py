"""Overlapping tile plans and the feathered weights that put tiles back together without a seam.

**Boxes.** A box is ``(left, top, right, bottom)`` in pixels, right and bottom exclusive (PIL's crop
convention), so a box's size is ``(right - left, bottom - top)`` and ``image.crop(box)`` is its tile.

**Plans** (:func:`tile_plan`). Each axis is planned on its own and the plan is their grid, listed row-major (top
row first, left to right). An axis of ``n`` pixels no longer than ``tile`` is one span, the whole axis. A longer
axis gets the fewest spans of exactly ``tile`` pixels that cover it with at least ``overlap`` pixels shared by
neighbours, ``k = 1 + ceil((n - tile) / (tile - overlap))``; the first starts at 0, the last ends at ``n`` (edge
tiles are shifted inward, never shrunk) and the others are spread evenly between them, span ``i`` starting at
``floor(i * (n - tile) / (k - 1))``, so every overlap is ``overlap`` or a little more and no tile is a near copy
of its neighbour. Every tile of a plan therefore has the same size (``tile x tile`` when the image is at least
that big both ways), which is what lets a generator run a plan's tiles as one batch.

**Weights** (:func:`feather_weights`). Along each axis, two neighbouring spans hand over at the middle ``c`` of
their overlap, through a linear ramp of width ``w`` centred on ``c``: inside ``[c - w/2, c + w/2]`` the later span's
weight rises from 0 to 1 and the earlier one's falls from 1 to 0, evaluated at pixel centres (``x + 0.5``); before
the ramp the earlier span has weight 1, after it the later one. ``w`` is ``overlap``, shrunk only where
neighbouring ramps would otherwise meet (spans closer than ``overlap`` apart, which happens when ``overlap`` is
more than about a third of ``tile``); ``overlap = 0`` is a hard cut at ``c``. A ramp lies inside both spans, two
ramps never overlap, and a side on the image border has no ramp (weight 1 up to the edge), so on every axis the
weights of all spans sum to exactly one at every pixel and at most two spans are non-zero there. A tile's weight
is the product of its row and column weights: they sum to one at every pixel of the image too, and a pixel that
only one tile covers has weight 1 in it. When the actual overlap is wider than the ramp, each tile's weight is 0
on the outer part of its overlap (its edge pixels, the ones with the least context, never count), which is what
lets a tiled convolutional network reproduce its untiled output exactly (pipelines/enhance/model.py).

``scale`` maps a plan made on an input image onto an output ``scale`` times its size (a super-resolution net's
output): every span, cut and ramp is multiplied by ``scale`` and the weights sampled at the output's pixel
centres, so they still sum to one everywhere.

**Blending** (:func:`blend`): the weighted sum of the tiles divided by the weight sum, rounded to 8 bits; a plan's
tiles that are all crops of one image give that image back exactly.

**Errors.** :class:`~pipelines.errors.InputError` naming ``tile`` (below 64 or not a multiple of 8), ``overlap``
(negative, or not below half the tile), ``width`` / ``height`` (below 1), or ``tiles`` (a tile not in the plan,
a missing tile, an image of the wrong size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipelines.errors import InputError, field_path

__all__ = ["MIN_TILE", "TILE_MULTIPLE", "Tile", "blend", "check_tiling", "feather_weights", "tile_plan"]

MIN_TILE = 64
"""The smallest tile side."""
TILE_MULTIPLE = 8
"""Tile sides are multiples of this (a latent-diffusion repaint needs multiples of 8)."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Tile:
    """One tile of a plan.

    Attributes:
        box: ``(left, top, right, bottom)`` in the image the plan covers, right and bottom exclusive.
    """

    box: Box

    @property
    def width(self) -> int:
        """The tile's width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        """The tile's height in pixels."""
        return self.box[3] - self.box[1]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_tiling(tile: int, overlap: int) -> None:
    """Raises :class:`InputError` naming ``tile`` or ``overlap`` when :func:`tile_plan` would refuse them.

    Args:
        tile: Tile side in pixels: at least :data:`MIN_TILE` and a multiple of :data:`TILE_MULTIPLE`.
        overlap: Pixels neighbouring tiles share at least: from 0 to below ``tile / 2``.
    """
    if not _is_int(tile) or tile < MIN_TILE or tile % TILE_MULTIPLE:
        raise InputError("tile", tile, f"an integer multiple of {TILE_MULTIPLE}, at least {MIN_TILE}")
    if not _is_int(overlap) or not 0 <= 2 * overlap < tile:
        raise InputError("overlap", overlap, f"an integer from 0 to below half the tile ({tile} / 2)")


def _check_size(width: int, height: int) -> None:
    for name, size in (("width", width), ("height", height)):
        if not _is_int(size) or size < 1:
            raise InputError(name, size, "an integer of at least 1")


def _axis_starts(n: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """The spans of one axis: their starts and their common length."""
    if n <= tile:
        return [0], n
    count = 1 + math.ceil((n - tile) / (tile - overlap))
    return [i * (n - tile) // (count - 1) for i in range(count)], tile


def _axis_weights(starts: Sequence[int], length: int, n: int, overlap: int, scale: int) -> list[np.ndarray]:
    """Each span's weights along one axis (float64, ``length * scale`` long), summing to one at every pixel."""
    cuts = [(starts[i + 1] + starts[i] + length) / 2 for i in range(len(starts) - 1)]
    widths = []
    for i, cut in enumerate(cuts):
        width = float(overlap)
        if i > 0:
            width = min(width, cut - cuts[i - 1])
        if i + 1 < len(cuts):
            width = min(width, cuts[i + 1] - cut)
        widths.append(width)
    centres = (np.arange(length * scale, dtype=np.float64) + 0.5) / scale  # pixel centres, in input pixels
    out = []
    for i, start in enumerate(starts):
        x = start + centres
        weight = np.ones_like(x)
        if i > 0:  # rises over the ramp at the cut with the previous span
            weight *= _rise(x, cuts[i - 1], widths[i - 1])
        if i + 1 < len(starts):  # falls over the ramp at the cut with the next span
            weight *= 1.0 - _rise(x, cuts[i], widths[i])
        out.append(weight)
    return out


def _rise(x: np.ndarray, cut: float, width: float) -> np.ndarray:
    """0 before the ramp centred on ``cut``, 1 after it, linear over its ``width``; a step at ``cut`` if 0."""
    if width <= 0:
        return (x >= cut).astype(np.float64)
    return np.clip((x - (cut - width / 2)) / width, 0.0, 1.0)


def tile_plan(width: int, height: int, tile: int, overlap: int) -> list[Tile]:
    """Plans overlapping tiles that cover every pixel of a ``width x height`` image.

    Args:
        width: Image width in pixels.
        height: Image height in pixels.
        tile: Tile side: at least :data:`MIN_TILE`, a multiple of :data:`TILE_MULTIPLE`.
        overlap: Pixels neighbouring tiles share at least: from 0 to below ``tile / 2``.

    Returns:
        The tiles in row-major order, all of one size: ``tile`` on each axis longer than ``tile``, the whole axis
        on a shorter one (one tile of the whole image when it fits in one tile).
    """
    check_tiling(tile, overlap)
    _check_size(width, height)
    xs, tile_w = _axis_starts(width, tile, overlap)
    ys, tile_h = _axis_starts(height, tile, overlap)
    return [Tile((x, y, x + tile_w, y + tile_h)) for y in ys for x in xs]


def feather_weights(tile: Tile, width: int, height: int, overlap: int, *, scale: int = 1) -> np.ndarray:
    """The blend weights of one tile of ``tile_plan(width, height, tile_side, overlap)``.

    Args:
        tile: A tile of that plan (its size tells the plan's tile side).
        width: Width of the image the plan covers.
        height: Height of that image.
        overlap: The plan's overlap.
        scale: Give the weights for the plan mapped onto an image ``scale`` times bigger (a super-resolution
            net's output); 1 for the plan's own image.

    Returns:
        float32 weights of shape ``(tile.height * scale, tile.width * scale)``, from 0 to 1; the weights of all
        the plan's tiles sum to one at every pixel.
    """
    _check_size(width, height)
    if not _is_int(overlap) or overlap < 0:
        raise InputError("overlap", overlap, "an integer of at least 0")
    if not _is_int(scale) or scale < 1:
        raise InputError("scale", scale, "an integer of at least 1")
    left, top, right, bottom = tile.box
    axes = []
    for start, end, n in ((left, right, width), (top, bottom, height)):
        length = end - start
        if length == n:
            starts = [0]
        elif 0 < length < n:
            starts = _axis_starts(n, length, overlap)[0]
        else:
            starts = []
        if start not in starts or (2 * overlap >= max(length, 1) and len(starts) > 1):
            raise InputError("tile", tile.box, f"a tile of tile_plan({width}, {height}, tile, {overlap})")
        axes.append(_axis_weights(starts, length, n, overlap, scale)[starts.index(start)])
    column, row = axes
    return np.outer(row, column).astype(np.float32)


def blend(tiles: Sequence[tuple[Tile, Image.Image]], width: int, height: int, overlap: int) -> Image.Image:
    """Puts a plan's tiles back into one image through their feather weights.

    Args:
        tiles: Every tile of ``tile_plan(width, height, tile_side, overlap)`` with its RGB image (the tile's
            size), in any order.
        width: Width of the image the plan covers.
        height: Height of that image.
        overlap: The plan's overlap.

    Returns:
        The ``width x height`` RGB image: at each pixel the weighted sum of the tiles over it divided by their
        weight sum (which is one), rounded.
    """
    _check_size(width, height)
    if not tiles:
        raise InputError("tiles", [], "every tile of the plan")
    # float32 throughout: 24 bits of mantissa hold a weighted sum of 0..255 values to far below rounding's 0.5.
    acc = np.zeros((height, width, 3), dtype=np.float32)
    total = np.zeros((height, width), dtype=np.float32)
    seen: set[Box] = set()
    for index, (tile, image) in enumerate(tiles):
        if image.size != (tile.width, tile.height):
            raise InputError(
                field_path("tiles", index), image.size, f"an image of its tile's size {(tile.width, tile.height)}"
            )
        if tile.box in seen:
            raise InputError(field_path("tiles", index), tile.box, "each tile of the plan once")
        seen.add(tile.box)
        weights = feather_weights(tile, width, height, overlap)
        left, top, right, bottom = tile.box
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)
        np.multiply(pixels, weights[..., None], out=pixels)
        acc[top:bottom, left:right] += pixels
        total[top:bottom, left:right] += weights
    # Foreign tiles fail in feather_weights and repeats above; a missing tile leaves pixels under one.
    if not np.all(total > 1 - 1e-4):
        y, x = np.argwhere(total <= 1 - 1e-4)[0]
        raise InputError(
            "tiles", f"<{len(tiles)} tiles>", f"every tile of the plan (pixel {(int(x), int(y))} has none)"
        )
    # The weights sum to one (to float32 rounding), so dividing by the total only removes that rounding.
    np.divide(acc, total[..., None], out=acc)
    np.rint(acc, out=acc)
    np.clip(acc, 0, 255, out=acc)
    return Image.fromarray(acc.astype(np.uint8), "RGB")
