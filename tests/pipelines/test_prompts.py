from __future__ import annotations

import pytest

from pipelines.errors import InputError
from pipelines.prompts import Defaults, PartialRequest, compose, fit_aspect_ratio, request_hash
from pipelines.styles import Style, apply_style

DEFAULTS = Defaults(width=256, height=256, steps=20, negative_prompt="blurry", base_pixels=1024 * 1024)
PRESETS = {"portrait": (832, 1216)}


def test_defaults_fill_every_omitted_field() -> None:
    req = compose(PartialRequest(prompt="  a dragon "), DEFAULTS, seed=9)
    assert (req.prompt, req.negative_prompt) == ("a dragon", "blurry")
    assert (req.width, req.height, req.steps, req.seed, req.scheduler) == (256, 256, 20, 9, "euler")


def test_explicit_values_win() -> None:
    partial = PartialRequest(prompt="p", negative_prompt="", width=64, steps=3, seed=5, scheduler="ddim")
    req = compose(partial, DEFAULTS, seed=9)
    assert (req.width, req.height, req.steps, req.seed, req.scheduler) == (64, 256, 3, 5, "ddim")
    assert req.negative_prompt == ""  # an explicit empty negative prompt is kept, not defaulted


def test_presets_and_aspect_ratios() -> None:
    req = compose(PartialRequest(prompt="p", size="portrait"), DEFAULTS, seed=1, presets=PRESETS)
    assert (req.width, req.height) == (832, 1216)
    w, h = fit_aspect_ratio("16:9", 1024 * 1024)
    assert w % 64 == 0 and h % 64 == 0
    assert abs(w / h - 16 / 9) < 0.05 and abs(w * h - 1024 * 1024) < 0.1 * 1024 * 1024
    req = compose(PartialRequest(prompt="p", aspect_ratio="1:2"), DEFAULTS, seed=1)
    assert abs(req.height / req.width - 2) < 0.1 and req.width % 64 == 0


@pytest.mark.parametrize(
    ("partial", "field"),
    [
        (PartialRequest(prompt="   "), "prompt"),
        (PartialRequest(prompt="p", size="huge"), "size"),
        (PartialRequest(prompt="p", aspect_ratio="wide"), "aspect_ratio"),
        (PartialRequest(prompt="p", aspect_ratio="10:1"), "aspect_ratio"),
        (PartialRequest(prompt="p", size="portrait", aspect_ratio="1:1"), "aspect_ratio"),
        (PartialRequest(prompt="p", width=65), "width"),
        (PartialRequest(prompt="p", scheduler="nope"), "scheduler"),
    ],
)
def test_bad_fields_are_named(partial: PartialRequest, field: str) -> None:
    with pytest.raises(InputError) as info:
        compose(partial, DEFAULTS, seed=1, presets=PRESETS)
    assert info.value.param == field


def test_request_hash_identifies_the_image() -> None:
    a = compose(PartialRequest(prompt="p", seed=1), DEFAULTS, seed=0)
    same = compose(PartialRequest(prompt="p", seed=1), DEFAULTS, seed=123)  # seed given: default unused
    assert request_hash(a) == request_hash(same)
    assert request_hash(a).startswith("v1:")
    for change in ({"seed": 2}, {"steps": 21}, {"negative_prompt": "x"}, {"width": 64}, {"prompt": "q"}):
        other = compose(PartialRequest(**{"prompt": "p", "seed": 1, **change}), DEFAULTS, seed=0)
        assert request_hash(other) != request_hash(a), change


def test_style_rewrites_prompt_and_supplies_settings() -> None:
    style = Style("ink", "{prompt}, ink drawing", negative_prompt="color", settings={"steps": 12})
    req = compose(PartialRequest(prompt="a map"), DEFAULTS, seed=1, style=style)
    assert req.prompt == "a map, ink drawing"
    assert req.negative_prompt == "blurry, color"
    assert req.steps == 12
    assert compose(PartialRequest(prompt="a map", steps=5), DEFAULTS, seed=1, style=style).steps == 5
    with pytest.raises(ValueError, match="prompt_template"):
        apply_style(Style("bad", "no placeholder"), "p", "")
