"""ControlNet (depth) conditioning of the tiny SDXL pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.errors import InputError
from pipelines.request import GenerationRequest
from pipelines.sdxl import ModelConfigError, SDXLPipeline, load_pipeline
from pipelines.tiny import build_tiny_controlnet, ensure_tiny_controlnet


@pytest.fixture(scope="module")
def controlled(model_cache: Path) -> SDXLPipeline:
    """The tiny pipeline with the tiny ControlNet, loaded once for this module."""
    return load_pipeline("tiny", cache_dir=model_cache, model_name="tiny", controlnet="tiny")


def _depth(kind: str, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A greyscale depth map: a left-to-right ramp, a top-to-bottom ramp, or a central mound."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == "ramp_x":
        depth = xx / (w - 1)
    elif kind == "ramp_y":
        depth = yy / (h - 1)
    else:
        depth = np.exp(-((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.1 * w * h))
    return Image.fromarray((255 * depth).astype(np.uint8), "L")


def _req(seed: int = 1, **kw: Any) -> GenerationRequest:
    base: dict[str, Any] = {"prompt": "a dragon", "width": 64, "height": 64, "steps": 4, "model": "tiny"}
    base.update(kw)
    return GenerationRequest(seed=seed, **base)


def _px(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _diff(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.abs(_px(a) - _px(b))


@pytest.fixture(scope="module")
def seed1(controlled: SDXLPipeline) -> dict[str, Image.Image]:
    """Seed 1 at 64x64, generated once: without control, and with each depth map."""
    images = {"plain": controlled.generate([_req()]).images[0]}
    for kind in ("ramp_x", "ramp_y"):
        images[kind] = controlled.generate([_req(control_image=_depth(kind))]).images[0]
    return images


def test_a_depth_map_changes_the_image(controlled: SDXLPipeline, seed1: dict[str, Image.Image]) -> None:
    ramp = seed1["ramp_x"]
    assert _diff(ramp, seed1["plain"]).mean() > 2
    other = _diff(ramp, seed1["ramp_y"])
    assert other.mean() > 1 and other.max() > 10  # the map's content matters, not only its presence
    again = controlled.generate([_req(control_image=_depth("ramp_x"))]).images[0]
    assert np.array_equal(_px(ramp), _px(again))


def test_control_scale_zero_is_the_uncontrolled_image(controlled: SDXLPipeline, seed1: dict[str, Image.Image]) -> None:
    off = controlled.generate([_req(control_image=_depth("ramp_x"), control_scale=0.0)]).images[0]
    half = controlled.generate([_req(control_image=_depth("ramp_x"), control_scale=0.5)]).images[0]
    assert _diff(off, seed1["plain"]).max() <= 1
    # A smaller scale lands between no control and full control.
    assert 0 < _diff(half, seed1["plain"]).mean() < _diff(seed1["ramp_x"], seed1["plain"]).mean()


def test_control_image_is_resized_and_made_rgb(controlled: SDXLPipeline) -> None:
    small = _depth("ramp_x", (40, 30))  # greyscale, another size and aspect ratio
    result = controlled.generate([_req(width=96, height=64, control_image=small)])
    assert result.images[0].size == (96, 64)
    assert result.images[0].mode == "RGB"


def test_controlled_image_does_not_depend_on_its_batch(controlled: SDXLPipeline, seed1: dict[str, Image.Image]) -> None:
    batch = controlled.generate(
        [
            _req(seed=3, prompt="a castle", control_image=_depth("ramp_y")),
            _req(seed=1, control_image=_depth("ramp_x")),
            _req(seed=9, control_image=_depth("mound")),
        ]
    )
    assert batch.batch_size == 3
    # Batched matmuls may round differently in the last bit; one grey level is the tolerance.
    assert _diff(seed1["ramp_x"], batch.images[1]).max() <= 1


def test_img2img_with_a_depth_map(controlled: SDXLPipeline) -> None:
    init = Image.effect_noise((50, 40), 60).convert("RGB")
    kw: dict[str, Any] = {"mode": "img2img", "init_image": init, "strength": 0.6, "width": 80, "height": 64}
    plain = controlled.generate([_req(**kw)]).images[0]
    alone = controlled.generate([_req(control_image=_depth("ramp_x"), **kw)]).images[0]
    batch = controlled.generate(
        [_req(seed=5, control_image=_depth("ramp_y"), **kw), _req(control_image=_depth("ramp_x"), **kw)]
    )
    assert alone.size == (80, 64)
    assert _diff(alone, plain).mean() > 2
    assert _diff(alone, batch.images[1]).max() <= 1


def test_control_image_without_a_controlnet_is_refused(tiny_pipeline: SDXLPipeline) -> None:
    assert not tiny_pipeline.has_controlnet
    with pytest.raises(InputError) as info:
        tiny_pipeline.generate([_req(control_image=_depth("ramp_x"))])
    assert info.value.param == "control_image"
    assert "generator.controlnet" in str(info.value)
    assert "<image 64x64>" in str(info.value)  # the image itself is not dumped into the message


@pytest.mark.parametrize("scale", [-0.1, 2.5, float("nan"), "1"])
def test_control_scale_is_range_checked(controlled: SDXLPipeline, scale: Any) -> None:
    with pytest.raises(InputError) as info:
        controlled.generate([_req(control_image=_depth("ramp_x"), control_scale=scale)])
    assert info.value.param == "control_scale"


def test_controlled_and_uncontrolled_requests_never_share_a_call(controlled: SDXLPipeline) -> None:
    depth = _depth("ramp_x")
    assert _req().batch_key() != _req(control_image=depth).batch_key()
    assert _req(control_image=depth).batch_key() != _req(control_image=depth, control_scale=0.5).batch_key()
    # The scale does not matter without a control image, nor does which depth map is used.
    assert _req().batch_key() == _req(control_scale=0.5).batch_key()
    assert _req(control_image=depth).batch_key() == _req(control_image=_depth("mound")).batch_key()
    for mixed in (
        [_req(), _req(control_image=depth)],
        [_req(control_image=depth), _req(control_image=depth, control_scale=0.5)],
    ):
        with pytest.raises(InputError) as info:
            controlled.generate(mixed)
        assert info.value.param == "requests"


def test_a_controlnet_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError) as info:
        load_pipeline("tiny", cache_dir=tmp_path, controlnet=tmp_path / "missing")
    assert info.value.param == "controlnet"
    assert not list(tmp_path.iterdir())  # refused before building or loading the model


def test_tiny_controlnet_build_is_deterministic_and_fits_sdxl() -> None:
    a, b = build_tiny_controlnet(seed=7), build_tiny_controlnet(seed=7)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    sc = build_tiny_controlnet(seed=8).state_dict()
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.config.addition_embed_type == "text_time"
    # The zero convolutions are not zero, or the control image would have no effect.
    assert all(conv.weight.abs().sum() > 0 for conv in (*a.controlnet_down_blocks, a.controlnet_mid_block))


def test_ensure_tiny_controlnet_reuses_the_saved_model(tmp_path: Path) -> None:
    first = ensure_tiny_controlnet(tmp_path, seed=5)
    assert first.name == "tiny-controlnet-v1-s5"
    stamp = (first / "config.json").stat().st_mtime_ns
    again = ensure_tiny_controlnet(tmp_path, seed=5)
    assert again == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind

    from diffusers import ControlNetModel

    loaded = ControlNetModel.from_pretrained(first, local_files_only=True).state_dict()
    built = build_tiny_controlnet(seed=5).state_dict()
    assert all(torch.equal(loaded[k], built[k]) for k in built)
