"""The request every backend is asked for (pipelines/request.py): its checks and configurable limits, and
how the composer (pipelines/prompts.py) applies them."""

from __future__ import annotations

import pytest

from pipelines.errors import InputError
from pipelines.prompts import Defaults, PartialRequest, compose, fit_aspect_ratio
from pipelines.request import GenerationLimits, GenerationRequest

DEFAULTS = Defaults(width=256, height=256, steps=20)


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
@pytest.mark.parametrize("text", ["\x00", "a castle\x00", "a\x00 castle"])
def test_a_nul_in_a_prompt_is_refused_naming_the_field(field: str, text: str) -> None:
    # PostgreSQL text cannot hold NUL: refused before any compute, not after the generation at the insert.
    request = GenerationRequest(**{"prompt": "a castle", field: text})
    with pytest.raises(InputError) as caught:
        request.check()
    assert caught.value.param == field
    assert f"character {text.index(chr(0))}" in str(caught.value)


def test_text_without_nul_passes() -> None:
    GenerationRequest(prompt="a castle \u2014 at dusk", negative_prompt="\t\nblurry").check()


def test_the_limits_are_the_ones_given() -> None:
    small = GenerationLimits(max_steps=10, max_size=512, max_pixels=512 * 512)
    with pytest.raises(InputError) as caught:
        GenerationRequest(prompt="p", width=256, height=256, steps=11).check(small)
    assert caught.value.param == "steps" and "1 to 10" in str(caught.value)
    with pytest.raises(InputError) as caught:
        GenerationRequest(prompt="p", width=520, height=256, steps=10).check(small)
    assert caught.value.param == "width" and "to 512" in str(caught.value)
    GenerationRequest(prompt="p", width=512, height=512, steps=10).check(small)


def test_compose_checks_against_the_limits_it_is_given() -> None:
    big = GenerationLimits(max_size=4096, max_pixels=4096 * 4096, max_steps=300)
    partial = PartialRequest(prompt="p", width=3072, height=3072, steps=200)
    with pytest.raises(InputError):  # the default limits: 2048 and 150 steps
        compose(partial, DEFAULTS, seed=1)
    request = compose(partial, DEFAULTS, seed=1, limits=big)
    assert (request.width, request.height, request.steps) == (3072, 3072, 200)
    with pytest.raises(InputError) as caught:
        compose(PartialRequest(prompt="p", steps=20), DEFAULTS, seed=1, limits=GenerationLimits(max_steps=19))
    assert caught.value.param == "steps"


@pytest.mark.parametrize("ratio", ["1" * 400 + ":" + "1" * 400, "1" * 400 + ":1", "1:" + "1" * 400])
def test_an_aspect_ratio_too_large_for_a_float_is_an_input_error(ratio: str) -> None:
    # 1e399 is inf as a float; inf:inf gave a NaN size (a ValueError, a 500) before.
    with pytest.raises(InputError) as caught:
        fit_aspect_ratio(ratio, 1024 * 1024)
    assert caught.value.param == "aspect_ratio"


def test_limits_fit_shrinks_a_size_to_the_bounds_keeping_its_shape() -> None:
    from pipelines.request import GenerationLimits

    limits = GenerationLimits(min_size=64, max_size=1024, max_pixels=512 * 512)
    assert limits.fit(256, 192) == (256, 192)  # within every bound: unchanged
    assert limits.fit(1000, 500) == (720, 360)  # max_pixels: scale sqrt(262144 / 500000) = 0.7241, down to 8
    assert limits.fit(4000, 100) == (1024, 64)  # max_size: scale 0.256 gives 25.6 high, raised to min_size
    assert limits.fit(250, 250) == (248, 248)  # rounded down to a multiple of 8
