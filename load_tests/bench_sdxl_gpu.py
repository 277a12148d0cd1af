"""GPU benchmark: full-size SDXL base 1.0 text-to-image with random fp16 weights.

    python load_tests/bench_sdxl_gpu.py [--batch 1 4] [--steps 30] [--size 1024] [--attention sdpa|xformers]

Builds the real architecture from ``pipelines/configs/sdxl/`` on the GPU (no download; random weights give
noise images but run every real kernel), warms up at each batch size, then times full pipeline calls.
Prints one JSON line per figure; without a CUDA device, one ``"skipped"`` line and exit code 0.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

CONFIG_DIR = Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "sdxl"
TENSORRT_S_PER_IMAGE = 1.47  # published SDXL TensorRT seconds per image, the figure we compare against
H100_SXM_FP16_DENSE_TFLOPS = 989.0  # dense (no sparsity) fp16 tensor-core peak
# Work at 1024x1024: one denoising step with classifier-free guidance (UNet on 2 latents), and one decode.
UNET_TFLOP_PER_GUIDED_STEP = 13.5
VAE_DECODE_TFLOP = 10.5
PROMPT = "a hex-grid battle map of a ruined dwarven forge, lava channels, top-down, detailed"
NEGATIVE_PROMPT = "blurry, text, watermark"


@contextlib.contextmanager
def _default_device_and_dtype(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Makes new tensors default to ``device`` and ``dtype``, so weights are born there (no fp32 copy)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _byte_level_tokenizer(pad_token: str) -> CLIPTokenizer:
    """A 514-entry CLIP tokenizer (each byte symbol, alone and word-final, plus the two specials).

    Any text tokenizes, a token per byte, and every id stays below the encoders' 49408-entry vocab.
    """
    symbols = sorted(ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab |= {f"{symbol}</w>": len(symbols) + index for index, symbol in enumerate(symbols)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    return CLIPTokenizer(vocab=vocab, merges=[], pad_token=pad_token, model_max_length=77)


def build_components(config_dir: Path, device: str | torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Builds every SDXL pipeline component from ``config_dir`` with random weights.

    Args:
        config_dir: A diffusers SDXL folder layout (``pipelines/configs/sdxl``); only configs are read.
        device: Where the weights are created: ``"cuda"`` to run, ``"meta"`` to count parameters only.
        dtype: Weight dtype, e.g. ``torch.float16``.

    Returns:
        The keyword arguments of ``StableDiffusionXLPipeline``: unet, vae, text_encoder, text_encoder_2,
        tokenizer, tokenizer_2 and scheduler.
    """
    unet_config = UNet2DConditionModel.load_config(config_dir / "unet")
    vae_config = AutoencoderKL.load_config(config_dir / "vae")
    text_config = CLIPTextConfig.from_pretrained(config_dir / "text_encoder")
    text_config_2 = CLIPTextConfig.from_pretrained(config_dir / "text_encoder_2")
    with _default_device_and_dtype(device, dtype):
        models: dict[str, torch.nn.Module] = {
            "unet": UNet2DConditionModel.from_config(unet_config),
            "vae": AutoencoderKL.from_config(vae_config),
            "text_encoder": CLIPTextModel(text_config),
            "text_encoder_2": CLIPTextModelWithProjection(text_config_2),
        }
    for model in models.values():
        model.eval().requires_grad_(False)
    return {
        **models,
        "tokenizer": _byte_level_tokenizer(pad_token="<|endoftext|>"),
        "tokenizer_2": _byte_level_tokenizer(pad_token="!"),
        "scheduler": EulerDiscreteScheduler.from_pretrained(config_dir / "scheduler"),
    }


def build_pipeline(config_dir: Path, attention: str, vae_fp16: bool) -> StableDiffusionXLPipeline:
    """Assembles a CUDA fp16 SDXL pipeline with random weights and the progress bar off.

    Args:
        config_dir: The SDXL config folder.
        attention: ``"sdpa"`` (PyTorch scaled_dot_product_attention) or ``"xformers"``.
        vae_fp16: Decode in fp16 instead of upcasting the VAE to fp32 (the official VAE's ``force_upcast``).
    """
    components = build_components(config_dir, "cuda", torch.float16)
    pipe = StableDiffusionXLPipeline(**components, add_watermarker=False)
    if vae_fp16:
        pipe.vae.register_to_config(force_upcast=False)
    if attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
    else:
        pipe.unet.set_attn_processor(AttnProcessor2_0())
        pipe.vae.set_attn_processor(AttnProcessor2_0())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe: StableDiffusionXLPipeline, batch: int, steps: int, size: int) -> np.ndarray:
    """Runs one text-to-image call for ``batch`` images and returns them as an NHWC float array."""
    return pipe(
        prompt=[PROMPT] * batch,
        negative_prompt=[NEGATIVE_PROMPT] * batch,
        num_inference_steps=steps,
        guidance_scale=5.0,
        height=size,
        width=size,
        generator=torch.Generator("cuda").manual_seed(0),
        output_type="np",
    ).images


def figures(batch: int, seconds_per_batch: float, steps: int, size: int) -> list[dict[str, Any]]:
    """Turns the wall time of one call of ``batch`` images into the seconds-per-image and TFLOP/s records.

    The work estimate is for 1024x1024 and scales with pixel count at other sizes (an approximation).
    """
    per_image = seconds_per_batch / batch
    tflop = (UNET_TFLOP_PER_GUIDED_STEP * steps + VAE_DECODE_TFLOP) * batch * (size / 1024) ** 2
    rows = [
        (f"sdxl_gpu_s_per_image_b{batch}", per_image, "s/image", TENSORRT_S_PER_IMAGE),
        (f"sdxl_gpu_tflops_b{batch}", tflop / seconds_per_batch, "TFLOP/s", H100_SXM_FP16_DENSE_TFLOPS),
    ]
    return [
        {"bench": n, "value": round(v, 4), "unit": u, "baseline": b, "ratio": round(v / b, 4)} for n, v, u, b in rows
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses and validates the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="batch sizes to time")
    parser.add_argument("--steps", type=int, default=30, help="denoising steps per call")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--attention", choices=["sdpa", "xformers"], default="sdpa")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per batch size")
    parser.add_argument("--vae-fp16", action="store_true", help="decode in fp16 (no fp32 VAE upcast)")
    parser.add_argument("--config-dir", type=Path, default=CONFIG_DIR)
    args = parser.parse_args(argv)
    if min(args.batch) < 1 or args.steps < 1 or args.runs < 1:
        parser.error(f"--batch, --steps and --runs must be >= 1, got {args.batch}, {args.steps}, {args.runs}")
    if args.size < 64 or args.size % 8:
        parser.error(f"--size must be a multiple of 8 and >= 64, got {args.size}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and prints one JSON line per figure; returns the exit code."""
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"bench": "sdxl_gpu", "skipped": "no CUDA device"}), flush=True)
        return 0
    if args.attention == "xformers" and importlib.util.find_spec("xformers") is None:
        sys.exit("--attention xformers needs the xformers package (pip install 'limner[gpu]')")
    print(f"device: {torch.cuda.get_device_name()}, attention: {args.attention}", file=sys.stderr)
    torch.backends.cudnn.benchmark = True
    pipe = build_pipeline(args.config_dir, args.attention, args.vae_fp16)
    for batch in args.batch:
        # A new shape pays for cuDNN autotuning once; a few steps cover it (shapes ignore step count).
        images = generate(pipe, batch, min(args.steps, 3), args.size)
        if not np.isfinite(images).all():
            print(f"warning: non-finite pixels at batch {batch}", file=sys.stderr)
        torch.cuda.reset_peak_memory_stats()
        times: list[float] = []
        for _ in range(args.runs):
            torch.cuda.synchronize()
            start = time.perf_counter()
            generate(pipe, batch, args.steps, args.size)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak_gib = torch.cuda.max_memory_allocated() / 2**30
        print(f"batch {batch}: {[round(t, 3) for t in times]} s, peak {peak_gib:.1f} GiB", file=sys.stderr)
        for record in figures(batch, statistics.median(times), args.steps, args.size):
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
