from __future__ import annotations

from pathlib import Path

import torch

from pipelines.tiny import build_tiny_pipeline, ensure_tiny_model, tiny_vocab


def _state(pipe) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    out = {}
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        for key, value in getattr(pipe, name).state_dict().items():
            out[f"{name}.{key}"] = value
    return out


def test_build_is_deterministic() -> None:
    a, b = _state(build_tiny_pipeline(seed=7)), _state(build_tiny_pipeline(seed=7))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _state(build_tiny_pipeline(seed=8))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_architecture_is_sdxl() -> None:
    pipe = build_tiny_pipeline()
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    # SDXL's VAE halves the size three times: 8x between pixels and latents.
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.cross_attention_dim == (
        pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    )


def test_tokenizer_knows_words_and_falls_back_to_bytes() -> None:
    pipe = build_tiny_pipeline()
    vocab, _ = tiny_vocab()
    ids = pipe.tokenizer("dragon zqx").input_ids
    assert ids[0] == vocab["<|startoftext|>"] and ids[-1] == vocab["<|endoftext|>"]
    assert len(pipe.tokenizer("dragon").input_ids) < 2 + len("dragon")  # merges shorten known words
    assert ids[-4:-1] == [vocab["z"], vocab["q"], vocab["x</w>"]]  # unknown ones fall back to bytes
    assert pipe.tokenizer_2.pad_token == "!"


def test_ensure_reuses_the_saved_model(tmp_path: Path) -> None:
    first = ensure_tiny_model(tmp_path, seed=5)
    stamp = (first / "model_index.json").stat().st_mtime_ns
    again = ensure_tiny_model(tmp_path, seed=5)
    assert again == first
    assert (first / "model_index.json").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
