"""The edge ``make serve`` builds, in one process, for the benchmarks that time a job end to end: the real Composer
and Generator classes on the tiny model, SQLite and a local asset folder, and a record of the time each job spent
in the generator (so a benchmark can report what was spent outside it)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class InProcess:
    """The edge and the generator's clock: ``generator_s`` sums the time spent in generator calls."""

    edge: Any
    generator: Any
    generator_s: list[float] = field(default_factory=list)

    async def run(self, kind: str, request: Any, timeout_s: float = 600) -> tuple[Any, float, float]:
        """Submits a job and waits for it; answers the finished job, its wall time and its generator time."""
        from serve_app.jobs.service import SubmitOptions

        self.generator_s.clear()
        t0 = time.perf_counter()
        job, _ = await self.edge.jobs.submit(kind, request, SubmitOptions(priority=0))
        done = await self.edge.jobs.wait(job.id, timeout_s)
        elapsed = time.perf_counter() - t0
        if done.status.value != "succeeded":
            raise RuntimeError(f"{kind} job failed: {done.error}")
        return done, elapsed, sum(self.generator_s)


@asynccontextmanager
async def in_process(*, redis_url: str | None = None, **config: Any) -> AsyncIterator[InProcess]:
    """An edge over a fresh data folder; ``config`` overrides sections of the app config (``composer=...``);
    ``redis_url``: the cache, events and rate limits in that Redis."""
    from deployments.composer import Composer
    from deployments.generator import Generator
    from serve_app.config import AppConfig, ComposerConfig, GeneratorConfig, Settings
    from serve_app.runtime import Handles, build_edge
    from serve_app.services import open_services

    cache = os.environ.get("LIMNER_MODEL_CACHE", str(ROOT / ".cache" / "models"))
    app = AppConfig(**config)
    composer_config: ComposerConfig = app.composer
    composer = Composer.func_or_class(composer_config, "tiny")
    generator = Generator.func_or_class(
        GeneratorConfig(model_name="tiny", warmup_sizes=[], max_batch_size=app.generator.max_batch_size), "tiny", cache
    )
    state = InProcess(edge=None, generator=generator)

    async def stream(composed: Any) -> Any:
        t0 = time.perf_counter()
        async for item in generator.generate_stream(composed, 0.5):
            yield item
        state.generator_s.append(time.perf_counter() - t0)

    async def stream_batch(composeds: Sequence[Any]) -> Any:
        t0 = time.perf_counter()
        async for item in generator.generate_batch_stream(composeds, 0.5):
            yield item
        state.generator_s.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as data:
        services = await open_services(app, Settings(data_dir=data, redis_url=redis_url))
        handles = Handles(
            compose=composer.compose,
            stream=stream,
            stream_batch=stream_batch,
            readiness=generator.ready,
            generator_stats=generator.stats,
        )
        edge = build_edge(app, services, handles, poll_interval_s=0.5, model_cache=cache)
        await edge.start()
        state.edge = edge
        try:
            yield state
        finally:
            await edge.aclose()
