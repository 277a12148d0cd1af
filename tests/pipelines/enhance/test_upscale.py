"""Upscale sizes, the Lanczos floor against a Lanczos written here, settings checks, and the hires plan and blend."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipelines.enhance import upscale
from pipelines.enhance.upscale import (
    METHODS,
    RepaintTile,
    UpscaleSettings,
    hires_blend,
    hires_plan,
    lanczos,
    model_resize,
    target_size,
)
from pipelines.errors import InputError


def lanczos_kernel(x: np.ndarray) -> np.ndarray:
    """Lanczos-3: sinc(x) sinc(x / 3) inside |x| < 3."""
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


def lanczos_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) resampling weights the way PIL builds them for an enlargement: output pixel centres mapped
    back with (i + 0.5) * n_in / n_out, the kernel sampled at input pixel centres inside a window of 3, cut at
    the image's edge and renormalised."""
    scale = n_in / n_out
    out = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - 3 + 0.5), 0), min(int(centre + 3 + 0.5), n_in)
        xs = np.arange(lo, hi)
        k = lanczos_kernel(xs - centre + 0.5)
        out[i, lo:hi] = k / k.sum()
    return out


def my_lanczos(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Horizontal pass, rounded and clipped to 8 bits as PIL's intermediate image is, then the vertical pass."""
    h_in, w_in = pixels.shape[:2]
    rows = np.einsum("ox,yxc->yoc", lanczos_matrix(w_in, width), pixels.astype(np.float64))
    rows = np.clip(np.rint(rows), 0, 255)
    cols = np.einsum("oy,yxc->oxc", lanczos_matrix(h_in, height), rows)
    return np.clip(np.rint(cols), 0, 255)


def test_target_size_rounds_each_side_to_the_nearest_multiple_of_8() -> None:
    assert target_size(100, 75, 2.0) == (200, 152)  # 150 -> 152 (18.75 eights -> 19)
    assert target_size(100, 75, 1.5) == (152, 112)  # 150 -> 152, 112.5 -> 112
    assert target_size(1024, 1024, 2.0) == (2048, 2048)
    assert target_size(101, 75, 1.5, multiple=1) == (152, 113)  # halves go up: 151.5 -> 152, 112.5 -> 113
    assert target_size(2, 2, 1.0) == (8, 8)  # never below one multiple


def test_lanczos_size_and_a_flat_colour_stays_that_colour() -> None:
    flat = Image.new("RGB", (37, 21), (200, 31, 90))
    out = lanczos(flat, 111, 70)
    assert out.size == (111, 70) and out.mode == "RGB"
    assert np.all(np.asarray(out) == (200, 31, 90))
    same = lanczos(flat, 37, 21)
    assert same is not flat and np.array_equal(np.asarray(same), np.asarray(flat))


def test_lanczos_of_a_checker_matches_an_independent_lanczos() -> None:
    # A 2x2 checker, black top-left, to 8x8: the corner stays dark but Lanczos rings past it.
    checker = np.array([[[0] * 3, [255] * 3], [[255] * 3, [0] * 3]], dtype=np.uint8)
    out = np.asarray(lanczos(Image.fromarray(checker, "RGB"), 8, 8)).astype(np.int64)
    expected = my_lanczos(checker, 8, 8)
    assert np.abs(out - expected).max() <= 1
    assert out[0, 0, 0] < 40 and out[0, 7, 0] > 215  # the corners keep their colours
    np.testing.assert_array_equal(out, out[::-1, ::-1])  # the checker's point symmetry survives
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    out = np.asarray(lanczos(Image.fromarray(noise, "RGB"), 30, 20)).astype(np.int64)
    assert np.abs(out - my_lanczos(noise, 30, 20)).max() <= 1


def test_default_settings_pass() -> None:
    UpscaleSettings().check(512, 512, 4096 * 4096)
    for method in METHODS:
        UpscaleSettings(scale=4, method=method, denoise=1.0, steps=150, tile=64, overlap=0).check(64, 64, 256 * 256)
    UpscaleSettings(scale=1).check(64, 64, 64 * 64)
    UpscaleSettings(scale=4).check(4096, 4096, None)  # no limit: the other fields are still checked
    with pytest.raises(InputError):
        UpscaleSettings(scale=5).check(64, 64, None)


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"scale": 0.5}, "scale"),
        ({"scale": 4.5}, "scale"),
        ({"scale": math.nan}, "scale"),
        ({"scale": "2"}, "scale"),
        ({"scale": True}, "scale"),
        ({"method": "bicubic"}, "method"),
        ({"denoise": 0.0}, "denoise"),
        ({"denoise": 1.5}, "denoise"),
        ({"steps": 0}, "steps"),
        ({"steps": 151}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"tile": 60}, "tile"),
        ({"tile": 100}, "tile"),
        ({"overlap": -1}, "overlap"),
        ({"overlap": 256}, "overlap"),
    ],
)
def test_settings_refuse_bad_fields_naming_them(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(InputError) as err:
        UpscaleSettings(**changes).check(512, 512, 4096 * 4096)
    assert err.value.param == param
    if param == "method":
        assert all(m in err.value.allowed for m in METHODS)


def test_scale_past_the_pixel_limit_is_refused_naming_scale() -> None:
    UpscaleSettings(scale=2).check(512, 512, 1024 * 1024)  # exactly at the limit
    with pytest.raises(InputError) as err:
        UpscaleSettings(scale=2.01).check(512, 512, 1024 * 1024)  # 1029 -> 1032 a side
    assert err.value.param == "scale" and "1032x1032" in err.value.allowed and "2.00" in err.value.allowed
    with pytest.raises(InputError) as err:
        UpscaleSettings(scale=4, method="hires").check(1024, 1024, 2048 * 2048)
    assert err.value.param == "scale"


def test_overlap_is_checked_against_the_tile_capped_at_native() -> None:
    settings = UpscaleSettings(method="hires", tile=512, overlap=64)
    settings.check(512, 512, 4096 * 4096, native=1024)
    assert settings.hires_tile(100) == 96
    with pytest.raises(InputError) as err:
        settings.check(512, 512, 4096 * 4096, native=100)
    assert err.value.param == "overlap" and "96" in err.value.allowed
    UpscaleSettings(method="lanczos", overlap=64).check(512, 512, 4096 * 4096, native=100)  # no hires tiles
    with pytest.raises(InputError) as err:
        hires_plan(Image.new("RGB", (200, 200)), settings, native=100)
    assert err.value.param == "overlap"


def smooth_image(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, 128 + 60 * np.sin(x / 5.0)], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def test_hires_plan_within_the_native_area_is_one_repaint_of_the_whole_base() -> None:
    image = smooth_image(64, 48)
    base, repaints = hires_plan(image, UpscaleSettings(scale=2, method="hires"), native=128)
    assert base.size == (128, 96)
    assert np.array_equal(np.asarray(base), np.asarray(image.resize((128, 96), Image.Resampling.LANCZOS)))
    assert len(repaints) == 1 and repaints[0].box == (0, 0, 128, 96)
    assert np.array_equal(np.asarray(repaints[0].crop), np.asarray(base))


def test_hires_plan_past_the_native_area_tiles_the_base_at_native_size() -> None:
    image = smooth_image(96, 70)
    settings = UpscaleSettings(scale=2, method="hires", tile=512, overlap=32)
    base, repaints = hires_plan(image, settings, native=128)
    assert base.size == (192, 144)  # 140 -> 144
    assert np.array_equal(np.asarray(base), np.asarray(image.resize((192, 144), Image.Resampling.LANCZOS)))
    # 192 needs two 128 tiles; so does 144: [0, 128) and [16, 144) on y, [0, 128) and [64, 192) on x.
    assert [r.box for r in repaints] == [(0, 0, 128, 128), (64, 0, 192, 128), (0, 16, 128, 144), (64, 16, 192, 144)]
    for r in repaints:
        assert r.crop.size == (128, 128)
        assert np.array_equal(np.asarray(r.crop), np.asarray(base)[r.box[1] : r.box[3], r.box[0] : r.box[2]])


def test_hires_blend_of_unchanged_repaints_is_the_base() -> None:
    settings = UpscaleSettings(scale=2, method="hires", overlap=32)
    base, repaints = hires_plan(smooth_image(96, 70), settings, native=128)
    out = hires_blend(base, [(r, r.crop) for r in repaints], settings.overlap)
    assert np.array_equal(np.asarray(out), np.asarray(base))
    single_base, (single,) = hires_plan(smooth_image(40, 40), settings, native=128)
    assert np.array_equal(np.asarray(hires_blend(single_base, [(single, single.crop)], 32)), np.asarray(single_base))


def test_hires_blend_resizes_repaints_of_another_size_and_mixes_them_without_a_seam() -> None:
    settings = UpscaleSettings(scale=2, method="hires", overlap=32)
    base, repaints = hires_plan(smooth_image(96, 70), settings, native=128)
    # The generator answers at twice the crop size, each tile a flat grey: 90 and 150 alternately.
    greys = [90 + 60 * (i % 2) for i in range(len(repaints))]
    answers = [(r, Image.new("RGB", (256, 256), (g, g, g))) for r, g in zip(repaints, greys, strict=True)]
    out = np.asarray(hires_blend(base, answers, settings.overlap)).astype(np.int64)
    assert out.shape == (144, 192, 3)
    assert out[0, 0, 0] == 90 and out[0, -1, 0] == 150  # corners only one tile covers
    assert out.min() >= 90 and out.max() <= 150
    assert np.abs(np.diff(out, axis=1)).max() <= 60 / 32 + 1  # ramps, no 60-level seam
    assert np.abs(np.diff(out, axis=0)).max() <= 60 / 32 + 1


def test_repaint_tile_compares_by_box() -> None:
    assert RepaintTile((0, 0, 8, 8), Image.new("RGB", (8, 8))) == RepaintTile((0, 0, 8, 8), Image.new("RGB", (8, 8), 9))


class NearestX2:
    """A stand-in x2 net: nearest-neighbour doubling, counting its calls."""

    scale = 2
    max_batch = 4

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        return batch.repeat(2, axis=1).repeat(2, axis=2)


def test_model_resize_runs_enough_passes_then_lanczos_to_the_exact_size() -> None:
    image = smooth_image(50, 30)
    net = NearestX2()
    out = model_resize(net, image, 150, 90, tile=64, overlap=8)  # type: ignore[arg-type]
    assert out.size == (150, 90)
    # 50x30 fits one tile: one call; 100x60 is two 64-wide tiles, run as one batch: 200x120, then Lanczos.
    assert [shape[:3] for shape in net.calls] == [(1, 30, 50), (2, 60, 64)]
    quad = Image.fromarray(np.asarray(image).repeat(4, axis=0).repeat(4, axis=1), "RGB")
    expected = np.asarray(quad.resize((150, 90), Image.Resampling.LANCZOS)).astype(np.int64)
    assert np.abs(np.asarray(out).astype(np.int64) - expected).max() <= 1
    net = NearestX2()
    assert model_resize(net, image, 100, 60).size == (100, 60)  # type: ignore[arg-type]
    assert len(net.calls) == 1


def test_exports() -> None:
    assert len(upscale.__all__) == len(set(upscale.__all__))
    for name in upscale.__all__:
        assert getattr(upscale, name) is not None
