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
from typing import Any, Literal

from PIL import Image, ImageOps

from pipelines.errors import InputError

__all__ = ["FORMATS", "ImageFormat", "decode", "encode", "fit", "transcode"]

ImageFormat = Literal["png", "webp", "jpeg"]
FORMATS: dict[str, str] = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
"""Supported formats and their media types."""

_PIL_NAMES: dict[str, str] = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}
_WHITE = (255, 255, 255)


def decode(data: bytes) -> Image.Image:
    """Decodes image bytes of any format PIL reads, pixels loaded.

    Args:
        data: An encoded image.

    Returns:
        The image, fully read (it does not refer back to ``data``); ``format`` tells what it was.

    Raises:
        PIL.UnidentifiedImageError: ``data`` is not an image PIL can read.
        OSError: The image is truncated or corrupt.
    """
    image = Image.open(io.BytesIO(data))
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
