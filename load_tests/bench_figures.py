"""Benchmarks of the figure kinds: ``compose_us`` and ``variations_gain``. Prints one JSON line each.

- ``compose_us``: p50 microseconds to validate, moderate and compose one portrait spec under a three-level
  theme chain (resolution of the chain and a variation included), against composing the plain generic
  request (``pipelines.prompts.compose``) in the same run, interleaved. Target: under 1000 µs absolute.
- ``variations_gain``: wall time of four sequential single-image generations against one family of four
  queued together (``Generator.generate_batch_stream``, what a ``variations: 4`` job does), both on the tiny
  model at 64x64 through the real Generator class and its batcher, after a warm-up. ``ratio`` = sequential /
  family. Target: at least 2.

Run: ``make bench`` or ``python load_tests/bench_figures.py [--samples 2000] [--rounds 5]``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def compose_us(samples: int) -> dict[str, object]:
    from pipelines.moderation import load_policy, moderate
    from pipelines.prompts import Defaults, PartialRequest, compose, compose_figure, figure_prompt
    from pipelines.prompts.specs import Character, FigureCommon, PortraitSpec
    from pipelines.request import GenerationLimits
    from pipelines.styles import resolve_theme, theme_from_dict
    from serve_app.jobs.kinds.figure import text_fields

    root = theme_from_dict(
        {"name": "fantasy", "fragments": ["fantasy art", "detailed"], "negative_fragments": ["blurry"]}
    )
    middle = theme_from_dict(
        {
            "name": "ink",
            "parent": "fantasy",
            "fragments": ["ink and wash"],
            "medium": "sumi-e",
            "palette": ["#111111", "#c9a227"],
        }
    )
    leaf = theme_from_dict(
        {
            "name": "campaign",
            "parent": "ink",
            "fragments": ["northern coast"],
            "variations": {"night": {"lighting": "moonlight"}},
        }
    )
    chain = [root, middle, leaf]
    policy = load_policy()
    blocked = set(policy.default_block)
    defaults, limits = Defaults(), GenerationLimits()
    spec = PortraitSpec(
        character=Character(
            name="Mira", ancestry="elf", role="ranger", hair="silver braid", features=("scar over left eye",)
        ),
        equipment=("longbow", "cloak"),
        pose="drawing an arrow",
        framing="bust",
        background="plain",
        common=FigureCommon(theme="campaign", variation="night"),
    )
    partial = PartialRequest(prompt="portrait of an elf ranger, silver braid, longbow")

    def figure() -> None:
        style = resolve_theme(chain, "night")
        spec.check()
        moderate(text_fields(spec), policy, block=blocked)
        request = compose_figure(figure_prompt(spec), style, defaults, 42, limits)
        moderate({"prompt": request.prompt}, policy, block=blocked)

    def generic() -> None:
        compose(partial, defaults, seed=42, limits=limits)

    for _ in range(200):
        figure()
        generic()
    values, baselines = [], []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        figure()
        t1 = time.perf_counter_ns()
        generic()
        t2 = time.perf_counter_ns()
        values.append((t1 - t0) / 1000)
        baselines.append((t2 - t1) / 1000)
    value, baseline = statistics.median(values), statistics.median(baselines)
    return {
        "bench": "compose_us",
        "value": round(value, 2),
        "unit": "us",
        "baseline": round(baseline, 2),
        "ratio": round(value / baseline, 2),
        "p90_us": round(statistics.quantiles(values, n=10)[-1], 2),
        "samples": samples,
        "target": "value < 1000",
    }


async def variations_gain(rounds: int) -> dict[str, object]:
    from deployments.generator import Generator
    from pipelines.request import GenerationRequest
    from serve_app.config import GeneratorConfig
    from serve_app.schemas import ComposedRequest

    cache = os.environ.get("LIMNER_MODEL_CACHE", str(ROOT / ".cache" / "models"))
    generator = Generator.func_or_class(
        GeneratorConfig(model_name="tiny", warmup_sizes=[], max_batch_size=4), "tiny", cache
    )

    def family(seed: int) -> list[ComposedRequest]:
        return [
            ComposedRequest(
                GenerationRequest(
                    prompt="a red dragon token",
                    negative_prompt="",
                    width=64,
                    height=64,
                    steps=10,
                    guidance=5.0,
                    seed=seed + i,
                    scheduler="euler",
                    model="tiny",
                ),
                f"bench:{seed + i}",
                uuid.uuid4().hex,
            )
            for i in range(4)
        ]

    async def sequential(seed: int) -> float:
        t0 = time.perf_counter()
        for composed in family(seed):
            async for _ in generator.generate_stream(composed):
                pass
        return time.perf_counter() - t0

    async def together(seed: int) -> float:
        t0 = time.perf_counter()
        async for _ in generator.generate_batch_stream(family(seed)):
            pass
        return time.perf_counter() - t0

    await sequential(0)
    await together(0)
    seq, fam = [], []
    for r in range(rounds):
        seq.append(await sequential(100 * r))
        fam.append(await together(100 * r))
    stats = await generator.stats()
    value, baseline = statistics.median(seq), statistics.median(fam)
    return {
        "bench": "variations_gain",
        "value": round(value / baseline, 2),
        "unit": "x",
        "sequential_s": round(value, 4),
        "family_s": round(baseline, 4),
        "ratio": round(value / baseline, 2),
        "batch_sizes": stats["batch_sizes"],
        "rounds": rounds,
        "size": "64x64, 10 steps, tiny model",
        "target": "ratio >= 2",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(compose_us(args.samples)), flush=True)
    print(json.dumps(asyncio.run(variations_gain(args.rounds))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
