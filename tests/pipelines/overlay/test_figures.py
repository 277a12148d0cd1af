"""pipelines/overlay/figures.py: tokens, item cards and size cues, checked against geometry computed here."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import InputError
from pipelines.overlay.figures import (
    FRAME_COLOR,
    PANEL_COLOR,
    card_layout,
    item_card,
    round_token,
    size_reference,
)


def _hex(value: str) -> tuple[int, int, int]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _gradient(width: int, height: int, blue: int = 90) -> Image.Image:
    """R rises linearly with x (0 at the first column, 255 at the last), G with y; B constant."""
    red = np.linspace(0.0, 255.0, width)[None, :].repeat(height, axis=0)
    green = np.linspace(0.0, 255.0, height)[:, None].repeat(width, axis=1)
    pixels = np.stack([red, green, np.full((height, width), float(blue))], axis=-1)
    return Image.fromarray(np.rint(pixels).astype(np.uint8), mode="RGB")


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _distances(size: int) -> np.ndarray:
    """Distance of every pixel centre from the centre of a ``size`` square."""
    centres = np.arange(size) + 0.5
    return np.hypot(centres[None, :] - size / 2, centres[:, None] - size / 2)


# --- round_token ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 256, 400, 512])
def test_token_is_transparent_outside_the_circle_and_opaque_inside(size: int) -> None:
    token = np.asarray(round_token(_gradient(300, 200), size=size))
    assert token.shape == (size, size, 4)
    dist = _distances(size)
    radius = size / 2
    # A pixel whose centre is more than 1 px (> half its diagonal) outside the circle has no part inside it.
    assert (token[..., 3][dist > radius + 1] == 0).all()
    assert (token[..., 3][dist < radius - 1] == 255).all()


@pytest.mark.parametrize("size", [32, 256, 512, 2048])
def test_token_alpha_sums_to_the_disc_area(size: int) -> None:
    alpha = np.asarray(round_token(_gradient(64, 64), size=size))[..., 3].astype(np.float64)
    area = alpha.sum() / 255.0
    assert area == pytest.approx(math.pi * (size / 2) ** 2, rel=0.01)
    edge = alpha[(alpha > 0) & (alpha < 255)]
    assert edge.size > 0, "the rim is antialiased"


def test_token_centre_comes_from_the_centre_square_of_the_art() -> None:
    art_w, art_h, size, ring_width = 300, 200, 256, 0.06
    token = np.asarray(round_token(_gradient(art_w, art_h), size=size, ring_width=ring_width)).astype(np.float64)
    inner = size / 2 * (1 - 2 * ring_width)
    dist = _distances(size)
    ys, xs = np.nonzero(dist < inner - 2)
    side = min(art_w, art_h)
    left, top = (art_w - side) // 2, (art_h - side) // 2
    # Token pixel centre -> source coordinates in the crop (pixel-centre mapping), then the gradient's value there.
    art_x = left + (xs + 0.5) * side / size - 0.5
    art_y = top + (ys + 0.5) * side / size - 0.5
    expected_r = 255.0 * art_x / (art_w - 1)
    expected_g = 255.0 * art_y / (art_h - 1)
    assert np.abs(token[ys, xs, 0] - expected_r).max() <= 3
    assert np.abs(token[ys, xs, 1] - expected_g).max() <= 3
    assert np.abs(token[ys, xs, 2] - 90).max() <= 1
    assert (token[ys, xs, 3] == 255).all()


@pytest.mark.parametrize(("ring_color", "ring_width"), [("#c9a227", 0.06), ("#3366cc", 0.1), ("#ffffff", 0.2)])
def test_token_ring_mid_radius_is_the_ring_color(ring_color: str, ring_width: float) -> None:
    size = 512
    token = np.asarray(round_token(_gradient(512, 512), size=size, ring_color=ring_color, ring_width=ring_width))
    outer = size / 2
    inner = outer * (1 - 2 * ring_width)
    mid = (outer + inner) / 2
    for degrees in range(0, 360, 10):
        angle = math.radians(degrees)
        x = math.floor(size / 2 + mid * math.cos(angle))
        y = math.floor(size / 2 + mid * math.sin(angle))
        assert tuple(token[y, x, :3]) == _hex(ring_color), degrees
        assert token[y, x, 3] == 255
    # Just inside the inner radius the art shows (the gradient never equals these ring colours there).
    x = math.floor(size / 2 + inner - 3)
    assert tuple(token[size // 2, x, :3]) != _hex(ring_color)


def test_token_without_ring_shows_the_art_out_to_the_rim() -> None:
    size = 256
    token = np.asarray(round_token(_gradient(256, 256), size=size, ring_width=0)).astype(np.float64)
    x, y = size - 6, size // 2  # 6 px inside the right rim, on the horizontal diameter
    assert token[y, x, 3] == 255
    assert abs(token[y, x, 0] - 255.0 * x / 255) <= 3


def test_token_accepts_any_mode_and_is_deterministic() -> None:
    art = _gradient(120, 180).convert("RGBA")
    first = round_token(art, size=128)
    assert first.mode == "RGBA"
    assert first.size == (128, 128)
    assert first.tobytes() == round_token(art, size=128).tobytes()
    assert round_token(art.convert("L"), size=64).mode == "RGBA"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"size": 31}, "token_size"),
        ({"size": 2049}, "token_size"),
        ({"size": 256.0}, "token_size"),
        ({"size": True}, "token_size"),
        ({"ring_color": "c9a227"}, "ring_color"),
        ({"ring_color": "#c9a22"}, "ring_color"),
        ({"ring_color": "#gggggg"}, "ring_color"),
        ({"ring_color": "gold"}, "ring_color"),
        ({"ring_width": -0.01}, "ring_width"),
        ({"ring_width": 0.3}, "ring_width"),
        ({"supersample": 0}, "supersample"),
        ({"supersample": 9}, "supersample"),
    ],
)
def test_token_rejects_bad_arguments(kwargs: dict[str, object], param: str) -> None:
    with pytest.raises(InputError) as caught:
        round_token(_gradient(64, 64), **kwargs)  # type: ignore[arg-type]
    assert caught.value.param == param


# --- item_card -----------------------------------------------------------------------------------------------------


def _expected_layout(width: int) -> dict[str, object]:
    """The card geometry from the documented formulas, computed here."""
    height = round(width * 1.4)
    margin = max(2, round(0.04 * width))
    band_h = round(0.18 * height)
    band = (margin, height - margin - band_h, width - margin, height - margin)
    pad = max(2, round(0.1 * band_h))
    return {
        "height": height,
        "margin": margin,
        "band": band,
        "art": (margin, margin, width - margin, band[1] - margin),
        "text": (band[0] + pad, band[1] + pad, band[2] - pad, band[3] - pad),
    }


def _relative_luminance(rgb: tuple[int, int, int]) -> float:
    channels = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(np.dot([0.2126, 0.7152, 0.0722], linear))


@pytest.mark.parametrize("width", [128, 300, 512, 1000])
def test_card_layout_follows_the_documented_formulas(width: int) -> None:
    expected = _expected_layout(width)
    layout = card_layout(width, expected["height"])  # type: ignore[arg-type]
    assert layout.margin == expected["margin"]
    assert layout.band_box == expected["band"]
    assert layout.art_box == expected["art"]
    assert layout.text_box == expected["text"]


@pytest.mark.parametrize("rarity_color", ["#1e88e5", "#9e9e9e", "#ff9800", "#7b1fa2", "#c62828", "#ffd700"])
def test_card_band_is_the_rarity_color_with_contrasting_text(rarity_color: str) -> None:
    width = 300
    card = item_card(_gradient(300, 200), name="Cloak of Elvenkind", rarity="uncommon", rarity_color=rarity_color)
    expected = _expected_layout(width)
    assert card.mode == "RGB"
    assert card.size == (width, expected["height"])
    pixels = np.asarray(card)
    left, top, right, bottom = expected["band"]  # type: ignore[misc]
    band = pixels[top:bottom, left:right]
    exact = (band == np.asarray(_hex(rarity_color))).all(axis=-1)
    assert exact.mean() >= 0.8
    assert exact.mean() < 0.995, "the name and rarity are drawn in the band"
    ink = (0, 0, 0) if _relative_luminance(_hex(rarity_color)) > 0.179 else (255, 255, 255)
    assert (band == np.asarray(ink)).all(axis=-1).any(), f"glyph cores are {ink}"


def test_card_frame_and_art_box() -> None:
    width = 300
    art_w, art_h = 300, 200
    card = np.asarray(item_card(_gradient(art_w, art_h), name="Ring", rarity="rare", rarity_color="#1e88e5"))
    expected = _expected_layout(width)
    margin = expected["margin"]
    frame = np.asarray(_hex(FRAME_COLOR))
    height = expected["height"]
    assert (card[:margin] == frame).all()
    assert (card[height - margin :] == frame).all()  # type: ignore[operator]
    assert (card[:, :margin] == frame).all()
    assert (card[:, width - margin :] == frame).all()
    a_left, a_top, a_right, a_bottom = expected["art"]  # type: ignore[misc]
    band_top = expected["band"][1]  # type: ignore[index]
    assert (card[a_bottom:band_top] == frame).all()
    # The art fits the box's width (it is wider than the box's aspect): scaled by box width / art width,
    # centred vertically, frame colour above and below it.
    scale = (a_right - a_left) / art_w
    fitted_h = round(art_h * scale)
    offset = a_top + ((a_bottom - a_top) - fitted_h) // 2
    assert (card[a_top : offset - 1, a_left:a_right] == frame).all()
    assert (card[offset + fitted_h + 1 : a_bottom, a_left:a_right] == frame).all()
    rows = np.arange(offset + 4, offset + fitted_h - 4)
    cols = np.arange(a_left + 4, a_right - 4)
    region = card[rows[:, None], cols[None, :]].astype(np.float64)
    art_x = (cols + 0.5 - a_left) / scale - 0.5
    art_y = (rows + 0.5 - offset) / scale - 0.5
    assert np.abs(region[..., 0] - 255.0 * art_x[None, :] / (art_w - 1)).max() <= 4
    assert np.abs(region[..., 1] - 255.0 * art_y[:, None] / (art_h - 1)).max() <= 4


@pytest.mark.parametrize("width", [128, 300, 1200])
def test_card_long_name_is_truncated_inside_the_band(width: int) -> None:
    color = "#7b1fa2"
    expected = _expected_layout(width)
    long_card = np.asarray(
        item_card(_gradient(300, 200), name="Vorpal " * 40, rarity="legendary", rarity_color=color, width=width)
    )
    short_card = np.asarray(
        item_card(_gradient(300, 200), name="Vorpal", rarity="legendary", rarity_color=color, width=width)
    )
    b_left, b_top, b_right, b_bottom = expected["band"]  # type: ignore[misc]
    t_left, t_top, t_right, t_bottom = expected["text"]  # type: ignore[misc]
    for card in (long_card, short_card):
        band = card[b_top:b_bottom, b_left:b_right]
        ys, xs = np.nonzero((band != np.asarray(_hex(color))).any(axis=-1))
        assert ys.size > 0
        assert ys.min() + b_top >= t_top and ys.max() + b_top < t_bottom
        assert xs.min() + b_left >= t_left and xs.max() + b_left < t_right

    # The long name runs to near the right of the text box; the short one stops well before.
    def rightmost(card: np.ndarray) -> int:
        band = card[b_top:b_bottom, b_left:b_right]
        return int(np.nonzero((band != np.asarray(_hex(color))).any(axis=-1))[1].max()) + b_left

    assert rightmost(long_card) > t_right - 0.15 * (t_right - t_left)
    assert rightmost(short_card) < t_right - 0.4 * (t_right - t_left)
    # Outside the band the two cards are the same pixels.
    assert (long_card[:b_top] == short_card[:b_top]).all()


def test_card_is_deterministic() -> None:
    args = {"name": "Bag of Holding", "rarity": "uncommon", "rarity_color": "#43a047"}
    art = _gradient(256, 256)
    first = _png(item_card(art, **args))
    assert first == _png(item_card(art, **args))
    assert first != _png(item_card(art, **{**args, "name": "Bag of Tricks"}))


def test_card_width_defaults_to_the_art_width_within_range() -> None:
    assert item_card(_gradient(64, 64), name="Dagger", rarity="common", rarity_color="#9e9e9e").size == (128, 179)
    assert item_card(_gradient(400, 300), name="Dagger", rarity="common", rarity_color="#9e9e9e").size == (400, 560)
    sized = item_card(_gradient(400, 300), name="Dagger", rarity="common", rarity_color="#9e9e9e", width=200)
    assert sized.size == (200, 280)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"rarity": ""}, "rarity"),
        ({"rarity_color": "#12345"}, "rarity_color"),
        ({"rarity_color": "blue"}, "rarity_color"),
        ({"width": 127}, "width"),
        ({"width": 4097}, "width"),
        ({"width": 300.0}, "width"),
    ],
)
def test_card_rejects_bad_arguments(kwargs: dict[str, object], param: str) -> None:
    args: dict[str, object] = {"name": "Dagger", "rarity": "common", "rarity_color": "#9e9e9e", **kwargs}
    with pytest.raises(InputError) as caught:
        item_card(_gradient(64, 64), **args)  # type: ignore[arg-type]
    assert caught.value.param == param


# --- size_reference ------------------------------------------------------------------------------------------------


def _cue_extent(image: Image.Image, art_width: int) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` (exclusive ends) of the first block of non-panel rows right of the art."""
    panel = np.asarray(image)[:, art_width:]
    marked = (panel != np.asarray(_hex(PANEL_COLOR))).any(axis=-1)
    rows = np.nonzero(marked.any(axis=1))[0]
    assert rows.size > 0, "something is drawn in the panel"
    top = bottom = int(rows[0])
    while bottom < marked.shape[0] and marked[bottom].any():
        bottom += 1
    cols = np.nonzero(marked[top:bottom].any(axis=0))[0]
    return top, bottom, int(cols[0]) + art_width, int(cols[-1]) + 1 + art_width


@pytest.mark.parametrize(
    ("reference", "side", "item_cm", "reference_cm"),
    [
        ("ruler", 512, 90, 30),
        ("ruler", 256, 100, 15),
        ("ruler", 1024, 120, 30),
        ("coin", 512, 10, 2.5),
        ("coin", 256, 4, 2.4),
        ("hand", 512, 60, 18),
        ("hand", 768, 150, 18.5),
    ],
)
def test_cue_is_drawn_at_the_item_scale(reference: str, side: int, item_cm: float, reference_cm: float) -> None:
    art = _gradient(side, side)
    result = size_reference(art, reference=reference, item_length_cm=item_cm, reference_length_cm=reference_cm)
    expected = 0.8 * side * reference_cm / item_cm
    image = result.image
    assert image.mode == "RGB"
    assert image.height == side
    assert image.width > side
    assert (np.asarray(image)[:, :side] == np.asarray(art)).all(), "the art is untouched"
    top, bottom, left, right = _cue_extent(image, side)
    assert abs((bottom - top) - expected) <= 2
    if reference == "coin":
        assert abs((right - left) - expected) <= 2
    if reference == "hand":
        assert right - left < bottom - top
    assert not result.clamped
    below = np.asarray(image)[bottom:, side:]
    assert (below != np.asarray(_hex(PANEL_COLOR))).any(), "the label is under the cue"


def _tick_count(image: Image.Image, art_width: int) -> int:
    """Dark runs down a column just inside the ruler's left outline (ticks start at the left edge)."""
    top, bottom, left, _ = _cue_extent(image, art_width)
    column = np.asarray(image)[top + 2 : bottom - 2, left + 2, 0]
    inked = column < 200
    return int(np.count_nonzero(inked[1:] & ~inked[:-1]) + inked[0])


@pytest.mark.parametrize(
    ("side", "item_cm", "reference_cm", "ticks"),
    [
        (512, 90, 30, 29),  # 4.55 px per cm: a tick every cm
        (256, 100, 100, 19),  # 2.05 px per cm: every 5 cm
    ],
)
def test_ruler_ticks(side: int, item_cm: float, reference_cm: float, ticks: int) -> None:
    result = size_reference(
        _gradient(side, side), reference="ruler", item_length_cm=item_cm, reference_length_cm=reference_cm
    )
    assert _tick_count(result.image, side) == ticks


def test_cue_too_long_is_clamped_to_the_panel() -> None:
    side = 64
    result = size_reference(_gradient(side, side), reference="hand", item_length_cm=3, reference_length_cm=18)
    expected = 0.8 * side * 18 / 3
    assert result.clamped
    top, bottom, _, _ = _cue_extent(result.image, side)
    assert bottom - top < expected
    assert bottom - top >= side // 4
    assert abs((bottom - top) - result.cue_px) <= 1
    panel = np.asarray(result.image)[:, side:]
    marked = np.nonzero((panel != np.asarray(_hex(PANEL_COLOR))).any(axis=-1).any(axis=1))[0]
    assert marked.min() > 0 and marked.max() < side - 1, "cue and label stay inside the canvas"
    assert "not to scale" in result.label


def test_cue_too_short_is_clamped_to_the_minimum() -> None:
    side = 256
    result = size_reference(_gradient(side, side), reference="coin", item_length_cm=1000, reference_length_cm=1)
    assert result.clamped
    top, bottom, left, right = _cue_extent(result.image, side)
    assert 6 <= bottom - top <= 10
    assert 6 <= right - left <= 10


def test_size_reference_is_deterministic_and_flattens_alpha() -> None:
    art = _gradient(200, 300).convert("RGBA")
    art.putalpha(128)
    first = size_reference(art, reference="ruler", item_length_cm=80, reference_length_cm=30)
    second = size_reference(art, reference="ruler", item_length_cm=80, reference_length_cm=30)
    assert _png(first.image) == _png(second.image)
    assert first.image.mode == "RGB"
    assert first.image.height == 300


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"reference": "none"}, "reference"),
        ({"reference": "sword"}, "reference"),
        ({"item_length_cm": 0}, "item_length_cm"),
        ({"item_length_cm": -5}, "item_length_cm"),
        ({"item_length_cm": math.nan}, "item_length_cm"),
        ({"item_length_cm": math.inf}, "item_length_cm"),
        ({"item_length_cm": True}, "item_length_cm"),
        ({"reference_length_cm": 0}, "reference_length_cm"),
        ({"reference_length_cm": "30"}, "reference_length_cm"),
    ],
)
def test_size_reference_rejects_bad_arguments(kwargs: dict[str, object], param: str) -> None:
    args: dict[str, object] = {"reference": "ruler", "item_length_cm": 90, "reference_length_cm": 30, **kwargs}
    with pytest.raises(InputError) as caught:
        size_reference(_gradient(128, 128), **args)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_size_reference_rejects_art_too_short_for_a_cue() -> None:
    with pytest.raises(InputError) as caught:
        size_reference(_gradient(64, 16), reference="coin", item_length_cm=10, reference_length_cm=2)
    assert caught.value.param == "art"
