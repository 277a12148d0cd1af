"""pipelines/encode.py: decode, encode, transcode and fit, checked against independent computations."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from pipelines.encode import FORMATS, decode, encode, fit, transcode
from pipelines.errors import InputError

_PIL_NAMES = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}


def _noise(mode: str, size: tuple[int, int] = (33, 17), seed: int = 0) -> Image.Image:
    """A deterministic image with every channel varying (odd sizes, so nothing lines up with 8x8 blocks)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode)


def _smooth(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A smooth RGB image, so lossy formats reproduce it closely."""
    x = np.linspace(0, 255, size[0])[None, :].repeat(size[1], axis=0)
    y = np.linspace(0, 255, size[1])[:, None].repeat(size[0], axis=1)
    pixels = np.stack([x, y, (x + y) / 2], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _flattened_on_white(rgba: np.ndarray) -> np.ndarray:
    """Alpha compositing over white, computed in floating point (independent of PIL's integer blend)."""
    alpha = rgba[..., 3:4] / 255.0
    return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


# -- encode and decode -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("size", [(1, 1), (33, 17), (640, 8)])
def test_encode_decode_keeps_size_and_format(fmt: str, size: tuple[int, int]) -> None:
    image = _noise("RGB", size)
    decoded = decode(encode(image, fmt))  # type: ignore[arg-type]
    assert decoded.size == size
    assert decoded.format == _PIL_NAMES[fmt]
    assert decoded.mode == "RGB"


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize("fast", [False, True])
def test_png_is_lossless_in_the_image_s_own_mode(mode: str, fast: bool) -> None:
    image = _noise(mode)
    decoded = decode(encode(image, "png", fast=fast))
    assert decoded.mode == mode
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_fast_png_is_compression_level_1() -> None:
    image = _smooth()
    reference = io.BytesIO()
    image.save(reference, format="PNG", compress_level=1)
    assert encode(image, "png", fast=True) == reference.getvalue()


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_lossy_formats_stay_close_and_quality_matters(fmt: str) -> None:
    image = _smooth()
    high = encode(image, fmt, quality=95)  # type: ignore[arg-type]
    low = encode(image, fmt, quality=5)  # type: ignore[arg-type]
    assert np.abs(_array(decode(high)) - _array(image)).mean() < 3.0
    assert len(low) < len(high)


def test_jpeg_optimize_changes_bytes_not_pixels() -> None:
    image = _noise("RGB", (64, 64))
    plain = encode(image, "jpeg", quality=80)
    optimized = encode(image, "jpeg", quality=80, optimize=True)
    assert np.array_equal(np.asarray(decode(plain)), np.asarray(decode(optimized)))
    assert len(optimized) <= len(plain)


@pytest.mark.parametrize(("mode", "written"), [("RGB", "RGB"), ("RGBA", "RGBA"), ("LA", "RGBA")])
def test_webp_keeps_rgb_and_rgba_and_widens_the_rest(mode: str, written: str) -> None:
    assert decode(encode(_noise(mode), "webp")).mode == written


def test_webp_writes_grey_as_grey() -> None:
    # Widened to RGBA, fully opaque (libwebp then stores no alpha, so it decodes as RGB).
    grey = _smooth().convert("L")
    decoded = _array(decode(encode(grey, "webp", quality=95)).convert("RGB"))
    assert np.abs(decoded - _array(grey)[..., None]).mean() < 3.0


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_jpeg_flattens_alpha_on_white(mode: str) -> None:
    # Four flat 16x16 quadrants (whole JPEG blocks, so compression barely touches them), each its own alpha.
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    for (row, col), (colour, alpha) in {
        (0, 0): ((200, 30, 60), 255),
        (0, 1): ((200, 30, 60), 128),
        (1, 0): ((10, 120, 240), 64),
        (1, 1): ((0, 0, 0), 0),
    }.items():
        rgba[row * 16 : row * 16 + 16, col * 16 : col * 16 + 16] = (*colour, alpha)
    source = Image.fromarray(rgba, mode="RGBA")
    if mode == "LA":
        source = source.convert("LA")
        rgba = np.asarray(source.convert("RGBA"))
    decoded = decode(encode(source, "jpeg", quality=100))
    assert decoded.mode == "RGB"
    expected = _flattened_on_white(rgba.astype(np.float64))
    got = _array(decoded)
    for row in (4, 20):
        for col in (4, 20):
            centre = (slice(row, row + 8), slice(col, col + 8))
            assert np.abs(got[centre] - expected[centre]).max() <= 3.0, (row, col)
    assert np.abs(got[20:28, 20:28] - 255.0).max() <= 3.0  # fully transparent: white, whatever the colour


def test_jpeg_flattens_a_transparent_palette_colour_on_white() -> None:
    palette = Image.new("P", (32, 16))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    palette.paste(0, (0, 0, 16, 16))
    palette.paste(1, (16, 0, 32, 16))
    palette.info["transparency"] = 1
    got = _array(decode(encode(palette, "jpeg", quality=100)))
    assert np.abs(got[4:12, 4:12] - (255.0, 0.0, 0.0)).max() <= 3.0
    assert np.abs(got[4:12, 20:28] - 255.0).max() <= 3.0


def test_decode_returns_a_loaded_image_independent_of_its_bytes() -> None:
    buffer = bytearray(encode(_noise("RGB"), "png"))
    image = decode(bytes(buffer))
    buffer[:] = b"\0" * len(buffer)
    assert image.getpixel((0, 0)) == _noise("RGB").getpixel((0, 0))


def test_decode_refuses_what_is_not_an_image() -> None:
    with pytest.raises(UnidentifiedImageError):
        decode(b"definitely not an image")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"fmt": "gif"}, "fmt"),
        ({"fmt": "png", "quality": 0}, "quality"),
        ({"fmt": "jpeg", "quality": 101}, "quality"),
        ({"fmt": "png", "fast": True, "optimize": True}, "fast"),
    ],
)
def test_encode_names_the_bad_argument(kwargs: dict[str, object], param: str) -> None:
    with pytest.raises(InputError) as caught:
        encode(_noise("RGB"), **kwargs)  # type: ignore[arg-type]
    assert caught.value.param == param
    assert isinstance(caught.value, ValueError)


# -- transcode ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(FORMATS))
@pytest.mark.parametrize("target", sorted(FORMATS))
def test_transcode_between_every_pair(source: str, target: str) -> None:
    image = _smooth()
    out = transcode(encode(image, source, quality=95), target, quality=95)  # type: ignore[arg-type]
    decoded = decode(out)
    assert decoded.format == _PIL_NAMES[target]
    assert decoded.size == image.size
    assert np.abs(_array(decoded.convert("RGB")) - _array(image)).mean() < 4.0


def test_transcode_png_to_png_is_lossless() -> None:
    image = _noise("RGBA")
    again = decode(transcode(encode(image, "png"), "png"))
    assert np.array_equal(np.asarray(again), np.asarray(image))


def test_transcode_to_webp_keeps_alpha_and_to_jpeg_flattens_it() -> None:
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[...] = (0, 0, 0, 0)
    png = encode(Image.fromarray(rgba, mode="RGBA"), "png")
    webp = decode(transcode(png, "webp"))
    assert webp.mode == "RGBA" and webp.getchannel("A").getextrema() == (0, 0)
    jpeg = decode(transcode(png, "jpeg", quality=100))
    assert jpeg.mode == "RGB" and np.abs(_array(jpeg) - 255.0).max() <= 3.0


def test_transcode_checks_its_arguments_before_decoding() -> None:
    with pytest.raises(InputError, match="fmt"):
        transcode(b"not even an image", "tiff")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="quality"):
        transcode(b"not even an image", "jpeg", quality=0)


# -- fit ---------------------------------------------------------------------------------------------------


def _coordinates(size: tuple[int, int]) -> Image.Image:
    """Red = x and green = 2 * y (both < 256), so a pixel tells where in the source it came from."""
    width, height = size
    x = np.arange(width, dtype=np.float64)[None, :].repeat(height, axis=0)
    y = 2.0 * np.arange(height, dtype=np.float64)[:, None].repeat(width, axis=1)
    pixels = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


@pytest.mark.parametrize(
    ("source", "target"),
    [((200, 100), (50, 50)), ((100, 120), (50, 30)), ((120, 60), (240, 120)), ((64, 64), (32, 48))],
)
def test_fit_covers_the_size_and_crops_the_centre(source: tuple[int, int], target: tuple[int, int]) -> None:
    fitted = fit(_coordinates(source), target)
    assert fitted.size == target
    # Cover: scale by the larger ratio, then crop the middle. Output pixel i samples source x0 + (i + 0.5) / s.
    scale = max(target[0] / source[0], target[1] / source[1])
    x0 = (source[0] - target[0] / scale) / 2
    y0 = (source[1] - target[1] / scale) / 2
    cols = np.arange(target[0])
    rows = np.arange(target[1])
    want_x = x0 + (cols + 0.5) / scale - 0.5
    want_y = 2.0 * (y0 + (rows + 0.5) / scale - 0.5)
    got = _array(fitted)
    margin = 4  # Lanczos overshoots at the crop's edges; the interior is a linear ramp and reproduced
    inner = (slice(margin, target[1] - margin), slice(margin, target[0] - margin))
    assert np.abs(got[..., 0][inner] - want_x[None, :].repeat(target[1], axis=0)[inner]).max() <= 1.5
    assert np.abs(got[..., 1][inner] - want_y[:, None].repeat(target[0], axis=1)[inner]).max() <= 2.5


def test_fit_returns_an_image_of_the_right_size_unchanged() -> None:
    image = _noise("RGB")
    assert fit(image, image.size) is image


@pytest.mark.parametrize("size", [(0, 10), (10, 0), (-1, 5)])
def test_fit_refuses_an_empty_size(size: tuple[int, int]) -> None:
    with pytest.raises(InputError, match="size"):
        fit(_noise("RGB"), size)
