"""Image encoding: one PNG in, the format a client asked for out."""

from __future__ import annotations

import io
from typing import Literal

__all__ = ["FORMATS", "ImageFormat", "transcode"]

ImageFormat = Literal["png", "webp", "jpeg"]
FORMATS: dict[str, str] = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
"""Supported formats and their media types."""


def transcode(png: bytes, fmt: ImageFormat, quality: int = 90) -> bytes:
    """Re-encodes PNG bytes as ``fmt`` (PNG is returned as is).

    Args:
        png: A PNG image.
        fmt: ``png``, ``webp`` or ``jpeg``.
        quality: Lossy quality for webp and jpeg, 1-100.

    Raises:
        ValueError: ``fmt`` is not supported.
    """
    if fmt == "png":
        return png
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not allowed: one of {sorted(FORMATS)}")
    from PIL import Image

    out = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").save(out, format=fmt.upper(), quality=quality)
    return out.getvalue()
