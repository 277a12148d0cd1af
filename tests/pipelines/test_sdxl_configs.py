"""pipelines/configs/sdxl builds the full-size SDXL base 1.0 architecture offline.

Every model is built on the ``meta`` device, so no weight memory is allocated and the test needs no
GPU and no download.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

CONFIG_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "sdxl"

# Published sizes of SDXL base 1.0. These configs build exactly 2,567,463,684 / 83,653,863 /
# 123,060,480 / 694,659,840 parameters.
EXPECTED_PARAMETERS = {
    "unet": 2.567e9,
    "vae": 83.65e6,
    "text_encoder": 123e6,
    "text_encoder_2": 694.7e6,
}


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    with init_empty_weights():
        return {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIG_DIR / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(CONFIG_DIR / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(CONFIG_DIR / "text_encoder")),
            "text_encoder_2": CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(CONFIG_DIR / "text_encoder_2")
            ),
        }


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_component_has_the_published_parameter_count(models: dict[str, torch.nn.Module], name: str) -> None:
    parameters = list(models[name].parameters())

    assert {p.device.type for p in parameters} == {"meta"}
    assert sum(p.numel() for p in parameters) == pytest.approx(EXPECTED_PARAMETERS[name], rel=0.005)


def test_unet_cross_attends_to_both_text_encoders_concatenated(models: dict[str, torch.nn.Module]) -> None:
    hidden = models["text_encoder"].config.hidden_size
    hidden_2 = models["text_encoder_2"].config.hidden_size

    assert (hidden, hidden_2) == (768, 1280)
    assert models["unet"].config.cross_attention_dim == hidden + hidden_2 == 2048


def test_unet_added_embedding_takes_pooled_text_and_six_time_ids(models: dict[str, torch.nn.Module]) -> None:
    """SDXL's `text_time` embedding: the pooled text_encoder_2 output plus 6 size/crop ids."""
    unet = models["unet"].config
    pooled = models["text_encoder_2"].config.projection_dim

    assert unet.addition_embed_type == "text_time"
    assert unet.projection_class_embeddings_input_dim == pooled + 6 * unet.addition_time_embed_dim == 2816


def test_model_index_names_a_folder_for_every_pipeline_component() -> None:
    index = StableDiffusionXLPipeline.load_config(CONFIG_DIR)

    assert index["_class_name"] == "StableDiffusionXLPipeline"
    components = {name for name, value in index.items() if isinstance(value, list)}
    assert components == {
        "unet",
        "vae",
        "text_encoder",
        "text_encoder_2",
        "tokenizer",
        "tokenizer_2",
        "scheduler",
    }
    assert all((CONFIG_DIR / name).is_dir() for name in components)


def test_scheduler_is_sdxl_euler_discrete() -> None:
    scheduler = EulerDiscreteScheduler.from_pretrained(CONFIG_DIR / "scheduler")

    assert (scheduler.config.beta_start, scheduler.config.beta_end) == (0.00085, 0.012)
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.timestep_spacing == "leading"
    assert scheduler.config.prediction_type == "epsilon"
    assert scheduler.config.steps_offset == 1


@pytest.mark.parametrize(("folder", "pad_token"), [("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")])
def test_tokenizer_settings_load_once_vocabulary_files_are_added(tmp_path: Path, folder: str, pad_token: str) -> None:
    """The folder ships settings only; with any vocab.json and merges.txt beside them, they load."""
    for settings in (CONFIG_DIR / folder).iterdir():
        (tmp_path / settings.name).write_bytes(settings.read_bytes())
    symbols = sorted(ByteLevel.alphabet())
    vocab = {**{s: i for i, s in enumerate(symbols)}, **{f"{s}</w>": 256 + i for i, s in enumerate(symbols)}}
    vocab |= {"<|startoftext|>": 512, "<|endoftext|>": 513}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")

    tokenizer = CLIPTokenizer.from_pretrained(tmp_path, local_files_only=True)

    assert tokenizer.model_max_length == 77
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|startoftext|>",
        "<|endoftext|>",
        pad_token,
    )
    ids = tokenizer("A Map", padding="max_length").input_ids
    assert len(ids) == 77
    assert ids[0] == 512
    assert ids[1:5] == [vocab["a</w>"], vocab["m"], vocab["a"], vocab["p</w>"]]
