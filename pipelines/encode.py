"""Image encoding: the one place images are decoded, fitted to a size, encoded and transcoded.

Pure PIL. Every writer of image bytes goes through here: the generator (fast PNG), the asset store's derived
formats (:func:`transcode`), the Experimance bridge (:func:`fit` to the requested size, then :func:`encode`)
and the bridge deployment (conditioning images as PNG).

How modes are written, per format:

- ``png``: the image's own mode (PNG holds alpha and palettes).
- ``jpeg``: RGB; alpha (``RGBA``, ``LA``, or a palette with a transparent colour) is flattened on white.
- ``webp``: RGB and RGBA as they are; any other mode as RGBA.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Literal

from PIL import Image, ImageOps

from pipelines.errors import InputError

__all__ = ["FORMATS", "ImageFormat", "ImageTooLarge", "decode", "encode", "fit", "transcode"]

ImageFormat = Literal["png", "webp", "jpeg"]
FORMATS: dict[str, str] = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
"""Supported formats and their media types."""

_PIL_NAMES: dict[str, str] = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}
_WHITE = (255, 255, 255)


class ImageTooLarge(ValueError):
    """An image has more pixels than the caller accepts (read from its header, before any pixel is decoded)."""

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        super().__init__(width, height, max_pixels)
        self.width, self.height, self.max_pixels = width, height, max_pixels

    def __str__(self) -> str:
        return f"{self.width} x {self.height} is more than {self.max_pixels} pixels"


def decode(data: bytes, *, max_pixels: int | None = None) -> Image.Image:
    """Decodes image bytes of any format PIL reads, pixels loaded.

    Args:
        data: An encoded image.
        max_pixels: Refuse an image whose header announces more pixels than this, before decoding it (a
            decompression bomb: a few KiB of PNG that inflate to gigabytes). None: Pillow's own guard only.

    Returns:
        The image, fully read (it does not refer back to ``data``); ``format`` tells what it was.

    Raises:
        ImageTooLarge: More than ``max_pixels`` pixels, or more than Pillow's decompression-bomb limit.
        PIL.UnidentifiedImageError: ``data`` is not an image PIL can read.
        OSError: The image is truncated or corrupt.
    """
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:  # the limit below decides; Pillow's warning would only repeat it
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageTooLarge(0, 0, limit if max_pixels is None else min(max_pixels, limit)) from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(width, height, max_pixels)
    image.load()
    return image


def encode(
    image: Image.Image, fmt: ImageFormat, *, quality: int = 90, fast: bool = False, optimize: bool = False
) -> bytes:
    """Encodes ``image`` as ``fmt`` (see the module docstring for how each mode is written).

    Args:
        image: The image.
        fmt: ``png``, ``webp`` or ``jpeg``.
        quality: Lossy quality for webp and jpeg, 1-100 (ignored for png).
        fast: PNG at compression level 1: larger files, far less CPU (the generator's hot path).
        optimize: Spend more CPU for smaller files with the same pixels (png, jpeg; webp ignores it); for
            stored derivatives.

    Returns:
        The encoded bytes.

    Raises:
        InputError: ``fmt`` is not supported, ``quality`` is out of range, or ``fast`` and ``optimize``
            are both set.
    """
    _check(fmt, quality)
    if fast and optimize:
        raise InputError("fast", fast, "fast=False when optimize=True (they pull opposite ways)")
    kwargs: dict[str, Any] = {}
    if fmt == "jpeg":
        converted = _flatten(image)
        kwargs["quality"] = quality
        if optimize:
            kwargs["optimize"] = True
    elif fmt == "webp":
        converted = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA")
        kwargs["quality"] = quality
        kwargs["method"] = 4  # libwebp's speed/size trade-off, pinned so a Pillow default change cannot move it
    else:
        converted = image
        if fast:
            kwargs["compress_level"] = 1
        elif optimize:
            kwargs["optimize"] = True
    out = io.BytesIO()
    converted.save(out, format=_PIL_NAMES[fmt], **kwargs)
    return out.getvalue()


def transcode(data: bytes, fmt: ImageFormat, *, quality: int = 90) -> bytes:
    """Re-encodes image bytes of any format PIL reads as ``fmt``, optimized (the result is kept).

    The image is always re-encoded, also when it is already ``fmt``.

    Args:
        data: An encoded image.
        fmt: ``png``, ``webp`` or ``jpeg``.
        quality: Lossy quality for webp and jpeg, 1-100.

    Returns:
        The encoded bytes.

    Raises:
        InputError: ``fmt`` is not supported or ``quality`` is out of range.
        PIL.UnidentifiedImageError: ``data`` is not an image PIL can read.
    """
    _check(fmt, quality)
    return encode(decode(data), fmt, quality=quality, optimize=True)


def fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scales and centre-crops ``image`` to cover ``size`` exactly, aspect kept (Lanczos).

    Args:
        image: The image.
        size: ``(width, height)`` of the result.

    Returns:
        A new image of ``size``, or ``image`` itself when it already has that size.

    Raises:
        InputError: A side of ``size`` is not positive.
    """
    if len(size) != 2 or min(size) < 1:
        raise InputError("size", size, "(width, height), both at least 1")
    if image.size == tuple(size):
        return image
    return ImageOps.fit(image, size, Image.Resampling.LANCZOS)


def _check(fmt: str, quality: int) -> None:
    if fmt not in _PIL_NAMES:
        raise InputError("fmt", fmt, f"one of {sorted(_PIL_NAMES)}")
    if not 1 <= quality <= 100:
        raise InputError("quality", quality, "an integer from 1 to 100")


def _flatten(image: Image.Image) -> Image.Image:
    """``image`` as RGB; transparent pixels are composited over white (JPEG has no alpha)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB") if image.mode != "RGB" else image
