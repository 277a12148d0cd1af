"""Benchmarks of the enhancer: ``hires_tile_batch_gain`` and ``enhancer_overhead_ms``. Prints one JSON line each.

- ``hires_tile_batch_gain``: the repaint passes of a 2x hires upscale of a 512x512 image (1024x1024, tiles of 256
  with 32 px overlap: 25 tiles, 10 second-pass steps at denoise 0.3) on the tiny model through the real Generator
  class, handed over together (``generate_batch_stream``, what the recipe does; batches of up to 8) against the
  same tiles one call each (batch size 1), same run, interleaved. ``ratio`` = one by one / together. Target >= 1.5.
- ``enhancer_overhead_ms``: p50 of an upscale job (hires, 256x256 to 512x512 in tiles of 256) end to end in
  process (load_tests/_edge.py; 9 tiles) less the time its generator calls took, same job: planning, blending, encoding,
  storing, the job's own bookkeeping. Target <= 30 ms. ``lanczos_job_ms``: the same job by Lanczos (no repaint),
  the floor the job frame and the store of the result put under it.

Run: ``make bench`` or ``python load_tests/bench_enhance.py [--rounds 3] [--jobs 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _art(side: int) -> Any:
    """A deterministic art-like picture (smooth colour fields with fine noise): it encodes as a painting does,
    where pure noise would make every PNG step the incompressible worst case."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    noise = np.random.default_rng(side).normal(0, 6, (side, side, 1)).astype(np.float32)
    base = np.stack(
        [120 + 50 * np.sin(x / 37.0) * np.cos(y / 53.0), 110 + 40 * np.sin((x + y) / 61.0), 90 + 35 * np.cos(x / 29.0)],
        axis=-1,
    )
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


async def hires_tile_batch_gain(rounds: int) -> dict[str, object]:

    from deployments.generator import Generator
    from pipelines.enhance.upscale import UpscaleSettings, hires_plan
    from pipelines.request import GenerationRequest
    from serve_app.config import GeneratorConfig
    from serve_app.schemas import ComposedRequest

    cache = os.environ.get("LIMNER_MODEL_CACHE", str(ROOT / ".cache" / "models"))
    generator = Generator.func_or_class(
        GeneratorConfig(model_name="tiny", warmup_sizes=[], max_batch_size=8), "tiny", cache
    )
    source = _art(512)
    settings = UpscaleSettings(scale=2, method="hires", denoise=0.3, steps=10, tile=256, overlap=32)
    _, tiles = hires_plan(source, settings, native=256)

    def requests() -> list[ComposedRequest]:
        return [
            ComposedRequest(
                GenerationRequest(
                    prompt="a castle on a hill",
                    width=tile.crop.width,
                    height=tile.crop.height,
                    steps=10,
                    seed=7,
                    mode="img2img",
                    init_image=tile.crop,
                    strength=0.3,
                    model="tiny",
                ),
                f"bench:{uuid.uuid4().hex}",
                uuid.uuid4().hex,
            )
            for tile in tiles
        ]

    async def one_by_one() -> float:
        t0 = time.perf_counter()
        for composed in requests():
            async for _ in generator.generate_stream(composed):
                pass
        return time.perf_counter() - t0

    async def together() -> float:
        t0 = time.perf_counter()
        async for _ in generator.generate_batch_stream(requests()):
            pass
        return time.perf_counter() - t0

    await one_by_one()  # warm up both paths at this size
    await together()
    single, batched = [], []
    for _ in range(rounds):
        single.append(await one_by_one())
        batched.append(await together())
    stats = await generator.stats()
    value, baseline = statistics.median(single), statistics.median(batched)
    return {
        "bench": "hires_tile_batch_gain",
        "value": round(value / baseline, 2),
        "unit": "x",
        "one_by_one_s": round(value, 3),
        "together_s": round(baseline, 3),
        "ratio": round(value / baseline, 2),
        "tiles": len(tiles),
        "batch_sizes": stats["batch_sizes"],
        "rounds": rounds,
        "case": "512x512 -> 1024x1024, tiles 256 overlap 32, 10 steps at denoise 0.3, tiny model",
        "target": "ratio >= 1.5",
    }


async def enhancer_overhead_ms(jobs: int) -> dict[str, object]:

    from load_tests._edge import in_process
    from pipelines import encode
    from serve_app.config import ComposerConfig, EnhancerConfig
    from serve_app.enhance.models import UpscaleBody
    from serve_app.jobs.kinds import EnhanceRequest

    png = encode.encode(_art(256), "png")
    overheads, totals, floors = [], [], []
    config = {"composer": ComposerConfig(width=256, height=256, steps=20), "enhancer": EnhancerConfig(native_size=256)}
    async with in_process(**config) as service:
        stages = service.edge.stages
        for n in range(jobs + 1):
            source = await stages.store_image(
                png,
                width=256,
                height=256,
                kind="upload",
                prompt="a castle",
                seed=n,
                model="tiny",
                settings={"steps": 10, "guidance": 5.0, "scheduler": "euler"},
                request_hash=f"bench:{n}",
            )
            step = UpscaleBody(scale=2, method="hires", tile=256, overlap=32, denoise=0.3)
            _, elapsed, in_generator = await service.run("upscale", EnhanceRequest(source, step))
            # The floor under it: the same job with no repaint (Lanczos): the job's rows, the read, the encode
            # and the store of a 512x512 result.
            _, floor, _ = await service.run("upscale", EnhanceRequest(source, UpscaleBody(scale=2, method="lanczos")))
            if n > 0:  # the first warms the model up at this size
                totals.append(elapsed * 1000)
                overheads.append((elapsed - in_generator) * 1000)
                floors.append(floor * 1000)
    value, total = statistics.median(overheads), statistics.median(totals)
    return {
        "bench": "enhancer_overhead_ms",
        "value": round(value, 2),
        "unit": "ms",
        "baseline": round(total, 2),
        "baseline_is": "the whole job's p50",
        "ratio": round(value / total, 3),
        "lanczos_job_ms": round(statistics.median(floors), 2),
        "jobs": jobs,
        "case": "hires x2 of 256x256 (512x512 in 9 tiles of 256, overlap 32), tiny model",
        "target": "value <= 30",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(hires_tile_batch_gain(args.rounds))), flush=True)
    print(json.dumps(asyncio.run(enhancer_overhead_ms(args.jobs))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
