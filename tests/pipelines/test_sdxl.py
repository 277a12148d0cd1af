from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipelines.backend import Capability, ImageBackend
from pipelines.errors import Cancelled, InputError
from pipelines.request import SCHEDULER_NAMES, GenerationLimits, GenerationRequest
from pipelines.sdxl import SCHEDULERS, ModelConfigError, SDXLPipeline


def _req(seed: int = 1, prompt: str = "a dragon", **kw: Any) -> GenerationRequest:
    base: dict[str, Any] = {"width": 64, "height": 64, "steps": 4, "model": "tiny"}
    base.update(kw)
    return GenerationRequest(prompt=prompt, seed=seed, **base)


def _px(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_txt2img_size_and_seed(tiny_pipeline: SDXLPipeline) -> None:
    result = tiny_pipeline.generate([_req(width=96, height=64)])
    assert result.images[0].size == (96, 64)
    assert result.seeds == [1]
    assert result.batch_size == 1
    assert result.timings["steps"] == 4
    again = tiny_pipeline.generate([_req(width=96, height=64)]).images[0]
    other = tiny_pipeline.generate([_req(seed=2, width=96, height=64)]).images[0]
    assert np.array_equal(_px(result.images[0]), _px(again))
    assert not np.array_equal(_px(result.images[0]), _px(other))


def test_img2img_size_and_change(tiny_pipeline: SDXLPipeline) -> None:
    init = Image.new("RGB", (50, 30), (200, 40, 40))
    light = tiny_pipeline.generate([_req(mode="img2img", init_image=init, strength=0.3, width=80, height=64)])
    heavy = tiny_pipeline.generate([_req(mode="img2img", init_image=init, strength=1.0, width=80, height=64)])
    assert light.images[0].size == (80, 64)
    # A low strength keeps more of the (flat red) init image than a full one.
    red = np.array([200, 40, 40])
    dist_light = np.abs(_px(light.images[0]) - red).mean()
    dist_heavy = np.abs(_px(heavy.images[0]) - red).mean()
    assert dist_light < dist_heavy


@pytest.mark.parametrize("scheduler", ["euler", "euler_a", "dpmpp_2m_karras", "ddim"])
def test_image_does_not_depend_on_its_batch(tiny_pipeline: SDXLPipeline, scheduler: str) -> None:
    alone = tiny_pipeline.generate([_req(seed=7, scheduler=scheduler)]).images[0]
    batch = tiny_pipeline.generate(
        [
            _req(seed=1, prompt="a castle", scheduler=scheduler),
            _req(seed=7, scheduler=scheduler),
            _req(seed=3, prompt="sea", scheduler=scheduler),
            _req(seed=9, scheduler=scheduler),
        ]
    )
    assert batch.batch_size == 4
    # Batched matmuls may round differently in the last bit; one grey level is the tolerance.
    assert np.abs(_px(alone) - _px(batch.images[1])).max() <= 1
    assert np.abs(_px(alone) - _px(batch.images[3])).max() > 10  # and the seed does matter


def test_img2img_does_not_depend_on_its_batch(tiny_pipeline: SDXLPipeline) -> None:
    init = Image.effect_noise((64, 64), 60).convert("RGB")
    kw = {"mode": "img2img", "init_image": init, "strength": 0.6}
    alone = tiny_pipeline.generate([_req(seed=4, **kw)]).images[0]
    batch = tiny_pipeline.generate([_req(seed=1, **kw), _req(seed=4, **kw)]).images[1]
    assert np.abs(_px(alone) - _px(batch)).max() <= 1


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("width", {"width": 100}),
        ("width", {"width": 32}),
        ("height", {"height": 4096}),
        ("steps", {"steps": 0}),
        ("steps", {"steps": 151}),
        ("guidance", {"guidance": -1.0}),
        ("guidance", {"guidance": 31.0}),
        ("seed", {"seed": -1}),
        ("scheduler", {"scheduler": "plms"}),
        ("prompt", {"prompt": "x" * 2001}),
        ("negative_prompt", {"negative_prompt": "x" * 2001}),
        ("init_image", {"mode": "img2img"}),
        ("strength", {"mode": "img2img", "init_image": Image.new("RGB", (8, 8)), "strength": 0.0}),
        ("strength", {"mode": "img2img", "init_image": Image.new("RGB", (8, 8)), "strength": 0.1}),
        ("mode", {"mode": "inpaint"}),
    ],
)
def test_input_checks_name_the_field(tiny_pipeline: SDXLPipeline, field: str, overrides: dict[str, Any]) -> None:
    base: dict[str, Any] = {"prompt": "a dragon", "width": 64, "height": 64, "steps": 4}
    base.update(overrides)
    with pytest.raises(InputError) as info:
        tiny_pipeline.generate([GenerationRequest(**base)])
    assert info.value.param == field
    assert field in str(info.value)
    assert "not allowed" in str(info.value)


def test_pixel_budget_names_width() -> None:
    with pytest.raises(InputError) as info:
        _req(width=1024, height=1024).check(GenerationLimits(max_pixels=512 * 512))
    assert info.value.param == "width" and "pixels" in info.value.allowed


def test_checks_run_before_any_compute(tiny_pipeline: SDXLPipeline) -> None:
    calls: list[int] = []
    with pytest.raises(InputError):
        tiny_pipeline.generate([_req(), _req(steps=0)], on_step=lambda s, t: calls.append(s) or True)
    assert calls == []


def test_requests_of_different_keys_are_refused(tiny_pipeline: SDXLPipeline) -> None:
    with pytest.raises(InputError) as info:
        tiny_pipeline.generate([_req(), _req(width=72)])
    assert info.value.param == "requests"


def test_step_callback_reports_progress_and_cancels(tiny_pipeline: SDXLPipeline) -> None:
    seen: list[tuple[int, int]] = []
    tiny_pipeline.generate([_req(steps=5)], on_step=lambda s, t: seen.append((s, t)) is None)
    assert seen == [(i, 5) for i in range(1, 6)]
    with pytest.raises(Cancelled) as info:
        tiny_pipeline.generate([_req(steps=5)], on_step=lambda s, t: s < 2)
    assert (info.value.step, info.value.total) == (2, 5)


def test_errors_pickle() -> None:
    err = pickle.loads(pickle.dumps(InputError("width", 100, "a multiple of 8")))
    assert (err.param, err.value, err.allowed) == ("width", 100, "a multiple of 8")
    cancelled = pickle.loads(pickle.dumps(Cancelled(2, 5)))
    assert (cancelled.step, cancelled.total) == (2, 5)


def test_every_scheduler_name_runs(tiny_pipeline: SDXLPipeline) -> None:
    for name in SCHEDULERS:
        assert tiny_pipeline.generate([_req(scheduler=name, steps=2)]).images[0].size == (64, 64)


def test_a_model_without_tokenizer_files_is_refused(tmp_path: Any) -> None:
    import shutil

    from pipelines.sdxl import load_pipeline
    from pipelines.tiny import ensure_tiny_model

    folder = ensure_tiny_model(tmp_path / "cache")
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    for f in (broken / "tokenizer_2").iterdir():
        if f.name != "tokenizer_config.json":
            f.unlink()
    with pytest.raises(ModelConfigError) as info:
        load_pipeline(str(broken))
    assert info.value.param == "model" and "tokenizer_2" in str(info.value)
    assert load_pipeline(str(folder)).model_name == folder.name  # the intact copy loads


def test_every_scheduler_name_a_request_may_use_has_a_diffusers_class() -> None:
    assert tuple(SCHEDULERS) == SCHEDULER_NAMES


def test_the_pipeline_is_an_image_backend(tiny_pipeline: SDXLPipeline) -> None:
    assert isinstance(tiny_pipeline, ImageBackend)
    assert tiny_pipeline.capabilities == {Capability.TXT2IMG, Capability.IMG2IMG}  # no ControlNet loaded
    tiny_pipeline.check(_req())  # a good request passes without any compute
    with pytest.raises(InputError):
        tiny_pipeline.check(_req(steps=0))


def test_a_loader_mistake_is_not_a_request_input_error(tmp_path: Any) -> None:
    from pipelines.sdxl import load_pipeline

    with pytest.raises(ModelConfigError) as info:
        load_pipeline(str(tmp_path / "no-such-model"))
    assert not isinstance(info.value, InputError)
    assert info.value.param == "model" and "generator.model" in str(info.value)
