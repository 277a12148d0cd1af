"""A tiny SDXL-architecture pipeline, and a ControlNet for it, built offline with random weights.

The model has every part of Stable Diffusion XL (a UNet with ``addition_embed_type="text_time"``, two CLIP
text encoders, the second with a projection, an AutoencoderKL that downsamples 8x, a CLIP BPE tokenizer)
but a few megabytes of weights, so the whole service runs and is tested on a laptop CPU. It draws noise,
not pictures: what matters is that every code path of the real model runs.

The build is deterministic (fixed seed, fixed vocabulary) and saved with ``save_pretrained`` into a cache
directory, so later loads are a plain ``from_pretrained`` of a diffusers folder, like a real checkpoint.

A tiny ControlNet (:func:`build_tiny_controlnet`) copies the tiny UNet's encoder, so a control image such as
a depth map can condition the tiny model too; it is cached the same way (:func:`ensure_tiny_controlnet`).

Example:
    >>> path = ensure_tiny_model(Path(".cache/models"))
    >>> # then pipelines.sdxl.load_pipeline(path, device="cpu")
    >>> # or pipelines.sdxl.load_pipeline("tiny", cache_dir=..., controlnet="tiny")
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "TINY_CONTROLNET_NAME",
    "TINY_MODEL_NAME",
    "TINY_SEED",
    "build_tiny_controlnet",
    "build_tiny_pipeline",
    "ensure_tiny_controlnet",
    "ensure_tiny_model",
    "tiny_vocab",
]

TINY_MODEL_NAME = "tiny-sdxl"
"""Folder name of the tiny model inside the model cache directory."""
TINY_SEED = 1234
"""Seed of the random weights; changing it changes every test image."""
TINY_CONTROLNET_NAME = "tiny-controlnet"
"""Folder name of the tiny ControlNet inside the model cache directory."""
# Bumped whenever the architecture below changes, so a stale cache is rebuilt rather than reused.
_BUILD_VERSION = 1
# Widths of the two text encoders, of the second one's pooled projection, and of each size-number embedding.
_TEXT_HIDDEN, _TEXT2_HIDDEN, _PROJECTION, _TIME_DIM = 32, 32, 32, 8
# Standard deviation of the ControlNet's otherwise zero-initialised output convolutions: large enough that two
# depth maps give visibly different tiny images (a mean pixel difference of a few grey levels), small enough
# that the ControlNet only nudges the UNet, as a trained one does.
_CONTROLNET_ZERO_CONV_STD = 0.05

# Common English words that get a single BPE token; everything else falls back to characters.
_WORDS = (
    "a an the of and in on with at to by for from map battle dungeon forest castle dragon knight "
    "portrait wizard sword shield tavern river mountain city village cave ruins desert sea ship tower "
    "landscape sand stone fire water ice light dark red blue green gold old ancient fantasy art "
    "detailed painting photo top down view grid hex square token hero monster elf dwarf orc"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte → printable unicode table (the same table as GPT-2 and OpenAI CLIP)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def tiny_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Builds the tiny CLIP BPE vocabulary and merge list.

    The vocabulary holds every byte symbol (alone and word-final, as CLIP's does), the merges that spell a
    few common words, and the two special tokens. Any text tokenizes: unknown words fall back to bytes.

    Returns:
        ``(vocab, merges)`` as ``CLIPTokenizer(vocab=..., merges=...)`` takes them (transformers 5 ignores
        ``vocab_file=``).
    """
    symbols = list(_bytes_to_unicode().values())
    tokens: list[str] = symbols + [s + "</w>" for s in symbols]
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        # Left-to-right merges: "d r" → "dr", "dr a" → "dra", ... with the last symbol word-final.
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merge = (parts[0], parts[1])
            joined = parts[0] + parts[1]
            if merge not in merges:
                merges.append(merge)
                if joined not in tokens:
                    tokens.append(joined)
            parts = [joined, *parts[2:]]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def _build_tiny_unet(seed: int) -> Any:
    """Builds the tiny SDXL UNet with seeded random weights (the one :func:`build_tiny_pipeline` uses)."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 2),
        use_linear_projection=True,
        cross_attention_dim=_TEXT_HIDDEN + _TEXT2_HIDDEN,
        addition_embed_type="text_time",
        addition_time_embed_dim=_TIME_DIM,
        # SDXL conditions on 6 size numbers (original size, crop, target size) plus the pooled text.
        projection_class_embeddings_input_dim=6 * _TIME_DIM + _PROJECTION,
        norm_num_groups=8,
    )


def build_tiny_pipeline(seed: int = TINY_SEED) -> Any:
    """Builds the tiny SDXL pipeline in memory with seeded random weights.

    Args:
        seed: Seed for the random weights.

    Returns:
        A ``diffusers.StableDiffusionXLPipeline`` on the CPU in float32.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, merges = tiny_vocab()
    unet = _build_tiny_unet(seed)
    torch.manual_seed(seed + 1)
    # Four blocks: three downsamplings, SDXL's 8x between pixels and latents.
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.13025,
    )
    common = {
        "bos_token_id": vocab["<|startoftext|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
        "vocab_size": len(vocab),
        "max_position_embeddings": 77,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "hidden_act": "gelu",
        "projection_dim": _PROJECTION,
    }
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=_TEXT_HIDDEN, **common))
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=_TEXT2_HIDDEN, **common))

    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    # SDXL's second tokenizer pads with "!" rather than <|endoftext|>; keep that difference.
    tokenizer_2 = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77, pad_token="!")
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )


def build_tiny_controlnet(seed: int = TINY_SEED) -> Any:
    """Builds a tiny ControlNet for the tiny SDXL model, in memory, with seeded random weights.

    The ControlNet is ``ControlNetModel.from_unet`` of the same tiny UNet that :func:`build_tiny_pipeline`
    builds for ``seed``, so it takes the same latents, text embeddings and SDXL ``text_time`` conditioning
    and its residuals fit that UNet's blocks. A fresh ControlNet has zero "zero convolutions", so its
    control image would have no effect at all; here they get small random weights instead, and the
    control-image embedding a scale-keeping initialisation, so tests can see a depth map change the image.

    Args:
        seed: Seed for the random weights (and of the UNet it copies).

    Returns:
        A ``diffusers.ControlNetModel`` on the CPU in float32 that reads an RGB control image.
    """
    import torch
    from diffusers import ControlNetModel

    unet = _build_tiny_unet(seed)
    torch.manual_seed(seed + 4)
    controlnet = ControlNetModel.from_unet(
        unet,
        # Three stride-2 convolutions: the control image is at pixel size, the latents 8x smaller.
        conditioning_embedding_out_channels=(8, 16, 16, 32),
        load_weights_from_unet=True,
    )
    generator = torch.Generator().manual_seed(seed + 5)
    embedding = controlnet.controlnet_cond_embedding
    with torch.no_grad():
        # With the default initialisation each SiLU layer of the embedding roughly halves its input (SiLU's
        # slope is 1/2 at 0), and a depth map would reach the latents 200x weaker than they are. A gain of 2
        # per layer, and 1 on the last (linear) one, keeps it at their scale, as a trained embedding does.
        for conv, gain in [*((c, 2.0) for c in (embedding.conv_in, *embedding.blocks)), (embedding.conv_out, 1.0)]:
            fan_in = conv.weight[0].numel()
            torch.nn.init.normal_(conv.weight, std=gain / fan_in**0.5, generator=generator)
            torch.nn.init.zeros_(conv.bias)
        for conv in (*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block):
            torch.nn.init.normal_(conv.weight, std=_CONTROLNET_ZERO_CONV_STD, generator=generator)
    return controlnet


def _save_atomically(target: Path, marker: str, save: Callable[[Path], None], build_info: dict[str, Any]) -> Path:
    """Runs ``save`` into a temporary sibling of ``target`` and renames it into place, unless already there.

    A concurrent or interrupted build never leaves a half-written folder under the final name.

    Args:
        target: The final folder.
        marker: A file that every complete folder holds at its root.
        save: Writes the folder's content into the directory it is given.
        build_info: Written to ``limner_build.json`` next to the content.

    Returns:
        ``target``.
    """
    if (target / marker).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save(tmp)
        (tmp / "limner_build.json").write_text(json.dumps(build_info))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / marker).exists():  # lost a race only if the winner finished
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_tiny_model(cache_dir: Path | str, seed: int = TINY_SEED) -> Path:
    """Returns the tiny model's diffusers folder, building and saving it first if needed.

    The folder is written to a temporary sibling and renamed into place, so a concurrent or interrupted
    build never leaves a half-written model under the final name.

    Args:
        cache_dir: Directory that holds built models (outside git).
        seed: Seed for the random weights; part of the folder's identity.

    Returns:
        Path of the diffusers folder (``model_index.json`` at its root).
    """
    target = Path(cache_dir).expanduser().resolve() / f"{TINY_MODEL_NAME}-v{_BUILD_VERSION}-s{seed}"
    return _save_atomically(
        target,
        "model_index.json",
        lambda tmp: build_tiny_pipeline(seed).save_pretrained(tmp, safe_serialization=True),
        {"seed": seed, "version": _BUILD_VERSION},
    )


def ensure_tiny_controlnet(cache_dir: Path | str, seed: int = TINY_SEED) -> Path:
    """Returns the tiny ControlNet's diffusers folder, building and saving it first if needed.

    Saved atomically like :func:`ensure_tiny_model`. It fits the tiny model of the same ``seed``.

    Args:
        cache_dir: Directory that holds built models (outside git).
        seed: Seed for the random weights; part of the folder's identity.

    Returns:
        Path of the diffusers folder (``config.json`` and the weights at its root), loadable with
        ``ControlNetModel.from_pretrained``.
    """
    target = Path(cache_dir).expanduser().resolve() / f"{TINY_CONTROLNET_NAME}-v{_BUILD_VERSION}-s{seed}"
    return _save_atomically(
        target,
        "config.json",
        lambda tmp: build_tiny_controlnet(seed).save_pretrained(tmp, safe_serialization=True),
        {"seed": seed, "version": _BUILD_VERSION},
    )


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Build the tiny SDXL model (and ControlNet) if not built yet.")
    parser.add_argument("--cache-dir", default=os.environ.get("LIMNER_MODEL_CACHE", "~/.cache/limner/models"))
    parser.add_argument("--seed", type=int, default=TINY_SEED)
    parser.add_argument("--controlnet", action="store_true", help="also build the tiny depth ControlNet")
    args = parser.parse_args()
    cache_dir = Path(args.cache_dir).expanduser()
    print(ensure_tiny_model(cache_dir, seed=args.seed))
    if args.controlnet:
        print(ensure_tiny_controlnet(cache_dir, seed=args.seed))


if __name__ == "__main__":
    _main()
