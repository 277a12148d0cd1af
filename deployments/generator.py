"""The generator deployment: one loaded SDXL pipeline, batching concurrent requests by key.

Thin by design: loading and generation live in :mod:`pipelines.sdxl`, batch forming in
:mod:`deployments.batching`. This class adds what Ray Serve needs: a constructor that loads and warms the
model before the replica takes traffic, live-tunable batching through ``user_config``, a health check,
metrics, and cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ray import serve

from deployments.batching import KeyedBatcher, Pending
from pipelines.encode import encode
from serve_app.config import GeneratorConfig
from serve_app.schemas import ComposedRequest, GeneratedImage

if TYPE_CHECKING:
    from pipelines.sdxl import SDXLPipeline

__all__ = ["Generator", "PipelineFactory"]

logger = logging.getLogger("ray.serve.limner.generator")

PipelineFactory = Callable[[GeneratorConfig, str, str], "SDXLPipeline"]
"""Builds the pipeline from ``(config, model source, model cache dir)``; tests may inject their own."""


def _load(config: GeneratorConfig, source: str, cache_dir: str) -> SDXLPipeline:
    import torch

    from pipelines.sdxl import load_pipeline

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    dtype = config.dtype
    if dtype == "auto":
        dtype = "float16" if device == "cuda" else "float32"
    logger.info("loading model %s on %s as %s (%s attention)", source, device, dtype, config.attention)
    return load_pipeline(
        source,
        device=device,
        dtype=dtype,
        attention=config.attention,
        cache_dir=cache_dir,
        model_name=config.model_name,
        controlnet=config.controlnet,
        limits=config.limits.generation_limits(),
    )


@serve.deployment(name="Generator")
class Generator:
    """Holds one SDXL pipeline and serves :meth:`generate`.

    Args:
        config: The ``generator`` section of the app config.
        source: The resolved model source (``"tiny"``, a folder or a checkpoint file).
        cache_dir: Where the tiny model is built.
        pipeline_factory: Replaces the loader (tests).
    """

    def __init__(
        self,
        config: GeneratorConfig,
        source: str,
        cache_dir: str,
        pipeline_factory: PipelineFactory | None = None,
    ) -> None:
        from ray.serve import metrics

        started = time.perf_counter()
        self._config = config
        self._pipeline = (pipeline_factory or _load)(config, source, cache_dir)
        for width, height in config.warmup_sizes:
            self._pipeline.warmup(width=width, height=height)
        self._batcher: KeyedBatcher[ComposedRequest, GeneratedImage] = KeyedBatcher(
            self._run_batch,
            key=lambda c: c.request.batch_key(),
            max_batch_size=config.max_batch_size,
            batch_wait_s=config.batch_wait_s,
        )
        self._cancelled: set[str] = set()
        # request id → the queue its streaming caller reads progress from (filled from the worker thread).
        self._progress: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue[tuple[int, int]]]] = {}
        self._batch_sizes: Counter[int] = Counter()
        self._recent_calls: deque[dict[str, Any]] = deque(maxlen=256)
        self._images = 0
        # Denoising steps, one per request per step (a batch of 3 running 10 steps: 30), and those run for a
        # request that was already cancelled or whose caller had gone: work nobody will see. Written from
        # the worker thread, read by stats().
        self._steps = 0
        self._wasted_steps = 0
        self._steps_lock = threading.Lock()
        self._m_batch = metrics.Histogram(
            "limner_generator_batch_size",
            description="Requests per diffusers call.",
            boundaries=[1, 2, 3, 4, 6, 8, 12, 16, 32],
        )
        self._m_seconds = metrics.Histogram(
            "limner_generator_call_seconds",
            description="Seconds per diffusers call.",
            boundaries=[0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
        )
        self._m_images = metrics.Counter("limner_generator_images_total", description="Images generated.")
        self._ready_s = time.perf_counter() - started
        logger.info("generator ready in %.1fs (model %s)", self._ready_s, self._pipeline.model_name)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Applies ``user_config`` from the YAML live: ``max_batch_size`` and ``batch_wait_s``."""
        unknown = set(user_config) - {"max_batch_size", "batch_wait_s"}
        if unknown:
            raise ValueError(f"unknown generator user_config keys: {sorted(unknown)}")
        self._batcher.configure(
            int(user_config.get("max_batch_size", self._batcher.max_batch_size)),
            float(user_config.get("batch_wait_s", self._batcher.batch_wait_s)),
        )
        logger.info(
            "batching: max_batch_size=%d batch_wait_s=%.3f",
            self._batcher.max_batch_size,
            self._batcher.batch_wait_s,
        )

    async def check_health(self) -> None:
        """Serve's health probe. The constructor only returns once the model is loaded and warm."""
        if self._pipeline is None:
            raise RuntimeError("model not loaded")

    async def ready(self) -> dict[str, Any]:
        """What the readiness probe reports: the model, its device and how long loading took."""
        return {
            "model": self._pipeline.model_name,
            "device": str(self._pipeline.device),
            "controlnet": self._pipeline.has_controlnet,
            "load_s": round(self._ready_s, 3),
        }

    async def generate(self, composed: ComposedRequest) -> GeneratedImage:
        """Generates one image, batched with concurrent requests of the same key.

        Raises:
            InputError: The request is out of range (checked before it is queued).
            Cancelled: It was cancelled while its batch ran.
        """
        self._pipeline.check(composed.request)
        return await self._batcher.submit(composed)

    async def generate_stream(
        self, composed: ComposedRequest, progress_every_s: float = 0.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Like :meth:`generate`, streaming ``{"type": "progress", "step", "total"}`` as denoising steps
        finish, then ``{"type": "image", "image": GeneratedImage}``. Call through a handle with
        ``.options(stream=True)``; cancelling the stream cancels the request at its next step.

        Args:
            composed: The request.
            progress_every_s: Stream progress at most this often (the first step always). Every streamed item
                is a round trip through Ray on the caller's side, so a caller that records progress only
                this often anyway asks for no more. The last step is never streamed: the image that follows
                it says the same.
        """
        async for event in self._stream([composed], progress_every_s):
            if event["type"] == "image":
                event = {"type": "image", "image": event["image"]}
            yield event

    async def generate_batch_stream(
        self, composeds: Sequence[ComposedRequest], progress_every_s: float = 0.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Generates a family of requests queued together, so requests sharing a key run as one batch (up to
        ``max_batch_size`` per diffusers call): one job's ``variations``. Streams the family's progress (the
        denoising steps of its first request), then ``{"type": "image", "index": i, "image": ...}`` for each
        request in order. Cancelling the stream cancels all of them.

        Raises:
            InputError: A request is out of range (checked before any is queued).
            Cancelled: They were cancelled while their batch ran.
        """
        async for event in self._stream(list(composeds), progress_every_s):
            yield event

    async def _stream(self, composeds: list[ComposedRequest], progress_every_s: float) -> AsyncIterator[dict[str, Any]]:
        for composed in composeds:
            self._pipeline.check(composed.request)
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        lead = composeds[0].request_id  # the family's progress is its first member's
        self._progress[lead] = (loop, queue)
        if len(composeds) == 1:
            task: asyncio.Future[Any] = asyncio.ensure_future(self._batcher.submit(composeds[0]))
        else:
            task = asyncio.ensure_future(self._batcher.submit_all(composeds))
        sent_at: float | None = None
        try:
            while not task.done():
                step = asyncio.ensure_future(queue.get())
                await asyncio.wait({task, step}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    continue
                s, total = step.result()
                now = time.monotonic()
                if s < total and (sent_at is None or now - sent_at >= progress_every_s):
                    sent_at = now
                    yield {"type": "progress", "step": s, "total": total}
            results = [task.result()] if len(composeds) == 1 else task.result()
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            for index, result in enumerate(results):
                yield {"type": "image", "index": index, "image": result}
        finally:
            self._progress.pop(lead, None)
            if not task.done():
                task.cancel()

    async def cancel(self, request_id: str) -> None:
        """Cancels a queued or running request; a running batch stops at its next step if all of it is."""
        self._cancelled.add(request_id)

    async def stats(self) -> dict[str, Any]:
        """Batch-size histogram and the most recent calls (key and size), for tests and operators.

        ``steps`` counts denoising steps run, one per request per step; ``wasted_steps`` those run for a
        request that was already cancelled or abandoned by its caller (near zero when cancellation works).
        """
        with self._steps_lock:
            steps, wasted = self._steps, self._wasted_steps
        return {
            "images": self._images,
            "steps": steps,
            "wasted_steps": wasted,
            "batch_sizes": dict(self._batch_sizes),
            "recent_calls": list(self._recent_calls),
            "queued": self._batcher.queued,
            "max_batch_size": self._batcher.max_batch_size,
            "batch_wait_s": self._batcher.batch_wait_s,
        }

    async def _run_batch(
        self, batch: Sequence[Pending[ComposedRequest, GeneratedImage]]
    ) -> list[GeneratedImage | BaseException]:
        from pipelines.errors import Cancelled

        live = [p for p in batch if p.item.request_id not in self._cancelled]
        dropped = [p for p in batch if p not in live]
        for pending in dropped:
            self._cancelled.discard(pending.item.request_id)
        if not live:
            return [Cancelled(0, 0) for _ in batch]

        def keep_going(step: int, total: int) -> bool:
            # Runs in the worker thread: hands progress to the event loop, and stops the call when nobody
            # wants any image of this batch any more.
            unwanted = [p.abandoned() or p.item.request_id in self._cancelled for p in live]
            with self._steps_lock:
                self._steps += len(live)
                self._wasted_steps += sum(unwanted)
            for pending in live:
                sink = self._progress.get(pending.item.request_id)
                if sink is not None:
                    sink[0].call_soon_threadsafe(sink[1].put_nowait, (step, total))
            return not all(unwanted)

        def run() -> tuple[list[tuple[bytes, Any]], dict[str, float]]:
            result = self._pipeline.generate([p.item.request for p in live], on_step=keep_going)
            encoded = [
                (b"", image) if p.item.raw else (encode(image, "png", fast=True), None)
                for p, image in zip(live, result.images, strict=True)
            ]
            return encoded, result.timings

        started = time.perf_counter()
        try:
            encoded, timings = await asyncio.to_thread(run)
        finally:
            for pending in live:
                self._cancelled.discard(pending.item.request_id)
        elapsed = time.perf_counter() - started
        key = live[0].item.request.batch_key()
        self._batch_sizes[len(live)] += 1
        self._images += len(live)
        self._recent_calls.append(
            {
                "key": [key.width, key.height, key.steps, key.scheduler, key.guidance, key.mode],
                "size": len(live),
                "seconds": round(elapsed, 4),
                # Always 1: KeyedBatcher never mixes keys. Recorded so tests and operators can check it.
                "distinct_keys": len({p.item.request.batch_key() for p in live}),
            }
        )
        self._m_batch.observe(len(live))
        self._m_seconds.observe(elapsed)
        self._m_images.inc(len(live))
        out: dict[int, GeneratedImage | BaseException] = {id(p): Cancelled(0, 0) for p in dropped}
        for pending, (png, pixels) in zip(live, encoded, strict=True):
            request = pending.item.request
            out[id(pending)] = GeneratedImage(
                png=png,
                pixels=pixels,
                seed=request.seed,
                width=request.width,
                height=request.height,
                request_hash=pending.item.request_hash,
                batch_size=len(live),
                timings={
                    "queue_s": started - pending.enqueued,
                    "generate_s": elapsed,
                    "pipeline_s": timings.get("total_s", elapsed),
                },
            )
        return [out[id(p)] for p in batch]
