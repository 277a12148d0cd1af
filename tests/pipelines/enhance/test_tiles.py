"""Tile plans and feather weights against coverage, counts and ramps computed here, pixel by pixel."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipelines.enhance import tiles
from pipelines.enhance.tiles import Tile, blend, feather_weights, tile_plan
from pipelines.errors import InputError

_PROPS: dict[str, Any] = {"database": None, "deadline": None, "max_examples": 150}


def fewest_spans(n: int, tile: int, overlap: int) -> int:
    """The fewest ``tile``-long spans sharing at least ``overlap`` that cover ``n``: k spans reach k*tile - (k-1)*o."""
    if n <= tile:
        return 1
    k = 1
    while k * tile - (k - 1) * overlap < n:
        k += 1
    return k


def coverage(plan: list[Tile], width: int, height: int) -> np.ndarray:
    count = np.zeros((height, width), dtype=np.int64)
    for t in plan:
        left, top, right, bottom = t.box
        count[top:bottom, left:right] += 1
    return count


def weight_sum(plan: list[Tile], width: int, height: int, overlap: int) -> np.ndarray:
    total = np.zeros((height, width), dtype=np.float64)
    for t in plan:
        left, top, right, bottom = t.box
        weights = feather_weights(t, width, height, overlap)
        assert weights.shape == (bottom - top, right - left)
        assert weights.dtype == np.float32
        total[top:bottom, left:right] += weights
    return total


def spans(plan: list[Tile], axis: int) -> list[tuple[int, int]]:
    """The distinct (start, end) of the plan along x (axis 0) or y (axis 1), in order."""
    return sorted({(t.box[axis], t.box[axis + 2]) for t in plan})


CASES = [
    (100, 100, 64, 16),
    (112, 70, 64, 16),  # 112 = 2 * 64 - 16: two tiles meeting with exactly the overlap
    (64, 64, 64, 0),  # exactly one tile
    (65, 64, 64, 31),  # one pixel too wide: two tiles overlapping by 63
    (200, 130, 64, 30),  # spans closer than the overlap: three tiles over some pixels
    (50, 40, 64, 8),  # smaller than a tile: one tile, the whole image
    (300, 20, 64, 8),  # one axis shorter than the tile
    (1000, 600, 512, 64),
    (513, 1024, 512, 0),
]


@pytest.mark.parametrize(("width", "height", "tile", "overlap"), CASES)
def test_plan_covers_every_pixel_with_the_fewest_full_size_tiles(
    width: int, height: int, tile: int, overlap: int
) -> None:
    plan = tile_plan(width, height, tile, overlap)
    assert coverage(plan, width, height).min() >= 1
    size_w, size_h = min(tile, width), min(tile, height)
    for t in plan:
        left, top, right, bottom = t.box
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert (t.width, t.height) == (size_w, size_h)  # edge tiles shifted inward, never shrunk
    xs, ys = spans(plan, 0), spans(plan, 1)
    assert len(xs) == fewest_spans(width, tile, overlap)
    assert len(ys) == fewest_spans(height, tile, overlap)
    assert len(plan) == len(xs) * len(ys)
    assert [t.box for t in plan] == [(x0, y0, x1, y1) for y0, y1 in ys for x0, x1 in xs]  # row-major grid
    for axis_spans, n in ((xs, width), (ys, height)):
        assert axis_spans[0][0] == 0 and axis_spans[-1][1] == n
        for (_, end), (start, _) in itertools.pairwise(axis_spans):
            assert end - start >= overlap  # neighbours share at least the overlap


@pytest.mark.parametrize(("width", "height", "tile", "overlap"), CASES)
def test_weights_sum_to_one_and_single_cover_pixels_weigh_one(width: int, height: int, tile: int, overlap: int) -> None:
    plan = tile_plan(width, height, tile, overlap)
    np.testing.assert_allclose(weight_sum(plan, width, height, overlap), 1.0, rtol=0, atol=1e-6)
    count = coverage(plan, width, height)
    for t in plan:
        left, top, right, bottom = t.box
        weights = feather_weights(t, width, height, overlap)
        assert weights.min() >= 0.0 and weights.max() <= 1.0
        alone = count[top:bottom, left:right] == 1
        assert np.all(weights[alone] == 1.0)


def test_ramp_spans_exactly_the_overlap_when_tiles_meet_with_it() -> None:
    # 112 = 64 + 64 - 16: tiles [0, 64) and [48, 112); the ramp covers x = 48..63, at pixel centres x + 0.5.
    left, right = tile_plan(112, 64, 64, 16)
    assert (left.box, right.box) == ((0, 0, 64, 64), (48, 0, 112, 64))
    w_right = feather_weights(right, 112, 64, 16)
    w_left = feather_weights(left, 112, 64, 16)
    expected_rise = (np.arange(16) + 0.5) / 16  # 1/32, 3/32, ... 31/32
    np.testing.assert_allclose(w_right[0, :16], expected_rise, atol=1e-7)
    np.testing.assert_allclose(w_left[0, 48:], 1 - expected_rise, atol=1e-7)
    assert np.all(w_right[:, 16:] == 1.0) and np.all(w_left[:, :48] == 1.0)
    assert np.all(w_right == w_right[0])  # no ramp along y: one row of tiles


def test_ramp_sits_mid_overlap_and_edge_pixels_weigh_nothing() -> None:
    # 100 wide: tiles [0, 64) and [36, 100) overlap by 28; the 16-pixel ramp is centred on x = 50: 42..57.
    left, right = tile_plan(100, 64, 64, 16)
    assert right.box == (36, 0, 100, 64)
    row = feather_weights(right, 100, 64, 16)[0]
    assert np.all(row[: 42 - 36] == 0.0)  # the right tile's first 6 columns, its least-context pixels
    np.testing.assert_allclose(row[42 - 36 : 58 - 36], (np.arange(16) + 0.5) / 16, atol=1e-7)
    assert np.all(row[58 - 36 :] == 1.0)
    assert np.all(feather_weights(left, 100, 64, 16)[0, 58:] == 0.0)


def test_zero_overlap_is_a_hard_cut_mid_overlap() -> None:
    # 100 wide with overlap 0: tiles [0, 64) and [36, 100), cut at x = 50.
    left, right = tile_plan(100, 64, 64, 0)
    assert np.array_equal(feather_weights(left, 100, 64, 0)[0], (np.arange(64) < 50).astype(np.float32))
    assert np.array_equal(feather_weights(right, 100, 64, 0)[0], (np.arange(36, 100) >= 50).astype(np.float32))


def test_scaled_weights_are_the_ramps_at_output_pixel_centres() -> None:
    # The 112-wide plan at x3: the ramp covers output x = 144..191, rising at (X + 0.5) / 3 - 48 over 16.
    _, right = tile_plan(112, 64, 64, 16)
    w = feather_weights(right, 112, 64, 16, scale=3)
    assert w.shape == (64 * 3, 64 * 3)
    expected = np.clip(((np.arange(144, 336) + 0.5) / 3 - 48) / 16, 0, 1)
    np.testing.assert_allclose(w[0], expected, atol=1e-6)
    plan = tile_plan(200, 130, 64, 30)
    total = np.zeros((130 * 3, 200 * 3))
    for t in plan:
        left, top, right_, bottom = (side * 3 for side in t.box)
        total[top:bottom, left:right_] += feather_weights(t, 200, 130, 30, scale=3)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


@settings(**_PROPS)
@given(
    width=st.integers(1, 420),
    height=st.integers(1, 300),
    tile=st.sampled_from([64, 72, 96, 128]),
    overlap_frac=st.floats(0, 0.499),
)
def test_any_plan_covers_and_its_weights_sum_to_one(width: int, height: int, tile: int, overlap_frac: float) -> None:
    overlap = min(int(tile * overlap_frac), (tile - 1) // 2)
    plan = tile_plan(width, height, tile, overlap)
    assert coverage(plan, width, height).min() >= 1
    assert len(spans(plan, 0)) == fewest_spans(width, tile, overlap)
    np.testing.assert_allclose(weight_sum(plan, width, height, overlap), 1.0, rtol=0, atol=1e-6)
    nonzero = np.zeros((height, width), dtype=np.int64)
    for t in plan:
        left, top, right, bottom = t.box
        nonzero[top:bottom, left:right] += feather_weights(t, width, height, overlap) > 0
    assert nonzero.max() <= 4  # at most two tiles hand over on each axis


@settings(**_PROPS)
@given(n=st.integers(65, 600), tile=st.sampled_from([64, 128]), overlap_frac=st.floats(0.05, 0.32))
def test_weights_change_by_at_most_one_ramp_step_per_pixel(n: int, tile: int, overlap_frac: float) -> None:
    # With the overlap under a third of the tile, spans are at least `overlap` apart and ramps keep their width:
    # a tile's weight never jumps by more than 1 / overlap between neighbouring pixels (no seam).
    overlap = max(1, int(tile * overlap_frac))
    for t in tile_plan(n, 8, tile, overlap):
        row = feather_weights(t, n, 8, overlap)[0].astype(np.float64)
        assert np.abs(np.diff(row)).max() <= 1 / overlap + 1e-6


def test_blend_of_a_plans_own_crops_gives_the_image_back() -> None:
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (110, 150, 3), dtype=np.uint8), "RGB")
    plan = tile_plan(150, 110, 64, 20)
    assert len(plan) > 4
    out = blend([(t, image.crop(t.box)) for t in reversed(plan)], 150, 110, 20)
    assert np.array_equal(np.asarray(out), np.asarray(image))


def test_blend_of_flat_tiles_has_no_seam() -> None:
    # Tiles alternately painted 100 and 160: a seam would jump 60 levels; the ramps move at most 60 / 16 a pixel.
    plan = tile_plan(200, 140, 64, 16)
    painted = [(t, Image.new("RGB", (t.width, t.height), (100 + 60 * (i % 2),) * 3)) for i, t in enumerate(plan)]
    out = np.asarray(blend(painted, 200, 140, 16)).astype(np.int64)
    assert out.min() >= 100 and out.max() <= 160
    assert np.abs(np.diff(out, axis=1)).max() <= 60 / 16 + 1
    assert np.abs(np.diff(out, axis=0)).max() <= 60 / 16 + 1
    count = coverage(plan, 200, 140)
    first = plan[0].box
    assert np.all(out[: first[3], : first[2]][count[: first[3], : first[2]] == 1] == 100)


def test_blend_refuses_a_missing_repeated_foreign_or_wrong_size_tile() -> None:
    plan = tile_plan(150, 110, 64, 20)
    crops = [(t, Image.new("RGB", (t.width, t.height))) for t in plan]
    with pytest.raises(InputError) as err:
        blend(crops[1:], 150, 110, 20)
    assert err.value.param == "tiles"
    with pytest.raises(InputError) as err:
        blend([*crops, crops[2]], 150, 110, 20)
    assert err.value.param == f"tiles[{len(crops)}]"
    with pytest.raises(InputError) as err:
        blend([*crops[:-1], (Tile((1, 0, 65, 64)), crops[-1][1])], 150, 110, 20)
    assert err.value.param == "tile"
    with pytest.raises(InputError) as err:
        blend([crops[0], (crops[1][0], Image.new("RGB", (10, 10))), *crops[2:]], 150, 110, 20)
    assert err.value.param == "tiles[1]"
    with pytest.raises(InputError) as err:
        blend([], 150, 110, 20)
    assert err.value.param == "tiles"


@pytest.mark.parametrize(
    ("tile", "overlap", "param"),
    [(56, 0, "tile"), (100, 0, "tile"), (64.0, 0, "tile"), (True, 0, "tile"), (64, -1, "overlap"), (64, 32, "overlap")],
)
def test_plan_refuses_bad_tiling_naming_the_field(tile: Any, overlap: Any, param: str) -> None:
    with pytest.raises(InputError) as err:
        tile_plan(300, 300, tile, overlap)
    assert err.value.param == param
    tile_plan(300, 300, 64, 31)  # just under half the tile is fine


@pytest.mark.parametrize(("width", "height", "param"), [(0, 10, "width"), (10, -1, "height"), (10.0, 10, "width")])
def test_plan_refuses_an_empty_image(width: Any, height: Any, param: str) -> None:
    with pytest.raises(InputError) as err:
        tile_plan(width, height, 64, 8)
    assert err.value.param == param


def test_exports() -> None:
    assert len(tiles.__all__) == len(set(tiles.__all__))
    for name in tiles.__all__:
        assert getattr(tiles, name) is not None
    public = {n for n in vars(tiles) if not n.startswith("_") and callable(getattr(tiles, n))}
    assert {"Tile", "blend", "feather_weights", "tile_plan", "check_tiling"} <= public & set(tiles.__all__)
