"""pipelines/enhance/structure.py: structure maps checked against properties computed here.

Luminance: ordering kept on a ramp, the full 0..255 range after the contrast stretch, an inverted image giving the
inverted map, and close agreement with a Gaussian blur done by Pillow instead of OpenCV. Edges: white within a few
pixels of a drawn square's outline and black far from it (distances computed here), nothing on a flat image.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from pipelines.enhance.structure import KINDS, LUMINANCE_SIGMA, structure_map
from pipelines.errors import InputError

skdata = pytest.importorskip("skimage.data")


def grey_of(image: Image.Image) -> np.ndarray:
    out = np.asarray(image)
    assert image.mode == "RGB"
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    return out[..., 0].astype(np.int64)


def ramp(width: int, height: int, lo: int = 0, hi: int = 255) -> Image.Image:
    row = np.linspace(lo, hi, width).round().astype(np.uint8)
    return Image.fromarray(np.repeat(row[None, :], height, axis=0), "L").convert("RGB")


def square(size: int = 240, lo: int = 0, hi: int = 255) -> Image.Image:
    image = Image.new("RGB", (size, size), (hi, hi, hi))
    ImageDraw.Draw(image).rectangle((80, 80, 159, 159), fill=(lo, lo, lo))  # pixels 80..159 inclusive
    return image


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_size_mode_and_determinism(astronaut: Image.Image, kind: str, mode: str) -> None:
    image = astronaut.crop((0, 0, 300, 200)).convert(mode)
    first = structure_map(image, kind=kind)
    assert first.size == (300, 200)
    grey_of(first)
    again = structure_map(image.copy(), kind=kind)
    assert first.tobytes() == again.tobytes()


def test_default_kind_is_luminance(astronaut: Image.Image) -> None:
    assert structure_map(astronaut).tobytes() == structure_map(astronaut, kind="luminance").tobytes()


def test_luminance_keeps_the_order_and_spans_the_range() -> None:
    out = grey_of(structure_map(ramp(256, 64)))
    assert (np.diff(out, axis=1) >= 0).all()  # a left-to-right ramp stays one
    assert out.min() == 0 and out.max() == 255


def test_luminance_stretches_low_contrast() -> None:
    out = grey_of(structure_map(ramp(256, 64, lo=100, hi=110)))
    assert out.min() == 0 and out.max() == 255
    assert (np.diff(out, axis=1) >= 0).all()


def test_luminance_of_the_inverted_image_is_the_inverted_map(astronaut: Image.Image) -> None:
    inverted = Image.fromarray(255 - np.asarray(astronaut))
    total = grey_of(structure_map(astronaut)) + grey_of(structure_map(inverted))
    # Grey conversion rounds, so the inverse grey is within 1 level; the stretch maps that to a level or two.
    assert np.abs(total - 255).max() <= 3


def test_luminance_matches_a_pillow_blur(astronaut: Image.Image) -> None:
    sigma = LUMINANCE_SIGMA * 512
    ours = grey_of(structure_map(astronaut)).astype(np.float64)
    theirs = np.asarray(astronaut.convert("L").filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float64)
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.99


def test_flat_images() -> None:
    flat = Image.new("RGB", (64, 48), (40, 90, 200))
    assert set(np.unique(grey_of(structure_map(flat, kind="luminance")))) == {128}
    assert set(np.unique(grey_of(structure_map(flat, kind="edges")))) == {0}


def _distance_to_outline(size: int) -> np.ndarray:
    """Chebyshev distance from each pixel to the nearest pixel where the drawn square meets the background."""
    ys, xs = np.mgrid[0:size, 0:size]
    inside = (xs >= 80) & (xs <= 159) & (ys >= 80) & (ys <= 159)
    # Boundary pixels: inside ones with an outside 4-neighbour.
    pad = np.pad(inside, 1, constant_values=False)
    boundary = inside & ~(pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:])
    by, bx = np.nonzero(boundary)
    dist = np.full((size, size), np.inf)
    for y, x in zip(by, bx, strict=True):
        dist = np.minimum(dist, np.maximum(np.abs(ys - y), np.abs(xs - x)))
    return dist


@pytest.mark.parametrize(("lo", "hi"), [(0, 255), (120, 135)])
def test_edges_trace_the_outline(lo: int, hi: int) -> None:
    out = grey_of(structure_map(square(240, lo, hi), kind="edges"))
    assert set(np.unique(out)) <= {0, 255}  # white edges on black, not inverted
    dist = _distance_to_outline(240)
    assert (out[dist > 6] == 0).all()
    # Every outline pixel has an edge pixel within 2 px (the dilation makes the line 3 px or more wide).
    near = (out == 255).astype(np.uint8)
    for _ in range(2):
        near = np.maximum.reduce(
            [near, np.roll(near, 1, 0), np.roll(near, -1, 0), np.roll(near, 1, 1), np.roll(near, -1, 1)]
        )
    assert near[dist == 0].all()


def test_unknown_kind_is_refused(astronaut: Image.Image) -> None:
    with pytest.raises(InputError) as err:
        structure_map(astronaut, kind="depth")
    assert err.value.param == "kind"
    assert err.value.value == "depth"


def test_opencv_is_imported_lazily() -> None:
    code = "import sys, pipelines.enhance.structure; assert 'cv2' not in sys.modules, 'cv2 imported at import time'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
