"""The generator deployment's class on the tiny pipeline, called directly (no Ray)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deployments.generator import Generator
from pipelines.errors import Cancelled
from pipelines.request import GenerationRequest
from serve_app.config import GeneratorConfig
from serve_app.schemas import ComposedRequest, GeneratedImage
from tests.deployments.gated import GatedPipeline


def _generator(tiny_pipeline: Any) -> Any:
    config = GeneratorConfig(model_name="tiny", warmup_sizes=[])
    return Generator.func_or_class(config, "tiny", "", pipeline_factory=lambda *_: tiny_pipeline)


def _composed(steps: int, seed: int = 1) -> ComposedRequest:
    request = GenerationRequest(prompt="a hex map", width=64, height=64, steps=steps, seed=seed, model="tiny")
    return ComposedRequest(request, f"hash-{steps}-{seed}", f"id-{steps}-{seed}")


async def _items(generator: Any, composed: ComposedRequest, every: float) -> list[dict[str, Any]]:
    return [item async for item in generator.generate_stream(composed, every)]


async def test_stream_reports_every_step_but_the_last_then_the_image(tiny_pipeline: Any) -> None:
    items = await _items(_generator(tiny_pipeline), _composed(steps=5), every=0.0)
    assert [i["type"] for i in items] == ["progress"] * 4 + ["image"]
    assert [(i["step"], i["total"]) for i in items[:-1]] == [(1, 5), (2, 5), (3, 5), (4, 5)]
    image = items[-1]["image"]
    assert isinstance(image, GeneratedImage) and (image.width, image.height, image.seed) == (64, 64, 1)


async def test_stream_progress_is_throttled_at_the_source(tiny_pipeline: Any) -> None:
    generator = _generator(tiny_pipeline)
    items = await _items(generator, _composed(steps=6, seed=2), every=3600.0)
    assert [(i["type"], i.get("step")) for i in items] == [("progress", 1), ("image", None)]
    # Throttling changes what is reported, never what is drawn.
    unthrottled = await _items(generator, _composed(steps=6, seed=2), every=0.0)
    assert items[-1]["image"].png == unthrottled[-1]["image"].png


async def test_stats_count_steps_and_steps_wasted_on_cancelled_requests(tiny_pipeline: Any) -> None:
    gated = GatedPipeline(tiny_pipeline, hold_at=2)
    generator = Generator.func_or_class(
        GeneratorConfig(model_name="tiny", warmup_sizes=[]), "tiny", "", pipeline_factory=lambda *_: gated
    )
    gated.open()
    await _items(generator, _composed(steps=5, seed=3), every=0.0)
    assert {k: (await generator.stats())[k] for k in ("steps", "wasted_steps")} == {"steps": 5, "wasted_steps": 0}

    # Cancelled while its step 2 runs: step 2 was wasted, and nothing runs after it.
    gated.close()
    composed = _composed(steps=40, seed=4)
    run = asyncio.ensure_future(_items(generator, composed, every=0.0))
    assert await asyncio.to_thread(gated.reached.wait, 60)
    await generator.cancel(composed.request_id)
    gated.open()
    with pytest.raises(Cancelled):
        await run
    stats = await generator.stats()
    assert (stats["steps"], stats["wasted_steps"]) == (5 + 2, 1)


async def test_a_raw_request_answers_its_pixels_and_no_png(tiny_pipeline: Any) -> None:
    from dataclasses import replace

    import numpy as np

    from pipelines import encode

    generator = _generator(tiny_pipeline)
    family = [_composed(steps=3, seed=5), replace(_composed(steps=3, seed=5), request_id="raw-twin", raw=True)]
    images = {}
    async for event in generator.generate_batch_stream(family, 0.0):
        if event["type"] == "image":
            images[event["index"]] = event["image"]
    encoded, raw = images[0], images[1]
    assert raw.png == b"" and raw.pixels is not None and raw.pixels.size == (64, 64)
    assert encoded.pixels is None and encoded.png.startswith(b"\x89PNG")
    # One batch, same seed: the raw pixels are exactly what the PNG of its twin holds.
    assert np.array_equal(np.asarray(raw.pixels), np.asarray(encode.decode(encoded.png).convert("RGB")))
