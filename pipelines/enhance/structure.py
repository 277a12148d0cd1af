"""Structure maps for restyle's ``keep_structure``: a depth-like control image derived from the image itself.

On the CPU profile there is no depth estimator, so the depth ControlNet is conditioned on one of two OpenCV maps
(:data:`KINDS`), both the input's size, RGB with ``R = G = B``, and deterministic (the same pixels in give the same
bytes out):

- ``luminance`` (the default): the grey levels (ITU-R 601, OpenCV's ``RGB2GRAY``), Gaussian-blurred with sigma
  :data:`LUMINANCE_SIGMA` times the longer side (at least 1 px) so texture does not read as relief, then stretched
  so the 1st percentile maps to 0 and the 99th to 255 (clipped outside). Bright reads as near, the depth
  ControlNet's convention; it holds the layout of light and dark masses, not true depth. A flat image gives flat
  mid-grey (128).
- ``edges``: the grey image blurred with sigma :data:`EDGE_SIGMA` times the longer side (at least 1 px) and
  stretched the same way (1st percentile to 0, 99th to 255, so a dim or hazy image still has edges), then
  ``cv2.Canny`` with the thresholds ControlNet's Canny examples use (:data:`CANNY_THRESHOLDS`, 100 and 200), then
  dilated by a 3 x 3 square once so a one-pixel line survives the ControlNet's resize. White (255) edges on black,
  NOT inverted (the Canny ControlNet convention); a flat image gives all black.

**Errors.** :class:`~pipelines.errors.InputError` naming ``kind``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image

from pipelines.errors import InputError

__all__ = ["CANNY_THRESHOLDS", "EDGE_SIGMA", "KINDS", "LUMINANCE_SIGMA", "structure_map"]

KINDS: tuple[str, ...] = ("luminance", "edges")
"""The structure maps :func:`structure_map` can derive."""

LUMINANCE_SIGMA = 0.01
"""Blur of the luminance map, as a fraction of the image's longer side (about 10 px at 1024)."""

EDGE_SIGMA = 0.002
"""Blur before edge detection, as a fraction of the image's longer side (about 2 px at 1024)."""

CANNY_THRESHOLDS = (100, 200)
"""``cv2.Canny``'s low and high hysteresis thresholds for the ``edges`` map."""

_FLAT = 128  # the luminance map of an image with no contrast


def structure_map(image: Image.Image, *, kind: str = "luminance") -> Image.Image:
    """Derive a depth-like control image from an image.

    Args:
        image: Any PIL image (converted to RGB first).
        kind: One of :data:`KINDS` (see the module docstring for what each is).

    Returns:
        An RGB image of the input's size with equal channels.

    Raises:
        InputError: ``kind`` is not one of :data:`KINDS`.
    """
    if kind not in KINDS:
        raise InputError("kind", kind, f"one of {', '.join(KINDS)}")
    cv2 = _cv2()
    grey = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    sigma = LUMINANCE_SIGMA if kind == "luminance" else EDGE_SIGMA
    blurred = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), max(1.0, sigma * max(grey.shape)))
    lo, hi = np.percentile(blurred, (1, 99))
    if hi - lo < 1e-3:
        # No contrast: a flat plane for the depth map, no edges for the edge map.
        return Image.new("RGB", image.size, (_FLAT,) * 3 if kind == "luminance" else (0, 0, 0))
    stretched = np.rint(np.clip((blurred - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)
    if kind == "luminance":
        out = stretched
    else:
        edges = cv2.Canny(stretched, *CANNY_THRESHOLDS)
        out = cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=1)
    return Image.fromarray(out, "L").convert("RGB")


@functools.cache
def _cv2() -> Any:
    import cv2

    return cv2
