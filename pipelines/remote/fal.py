"""FAL.AI as a limner backend, over its queue protocol (shared/docs/REMOTE_APIS.md §2.2).

Every call is submitted to ``queue.fal.run/{model}``, which answers the request's ``status_url``,
``response_url`` and ``cancel_url``; we poll the status (0.25 s, growing x1.5 to 2 s), reporting queue and
progress to ``on_step``, then fetch the result and download its image through the transport. Polling is all we
use: the SSE status stream would save a few requests, not time. FAL's responses carry no cost, so each image is
recorded at the configured ``price_usd``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from PIL import Image

from pipelines.backend import Capability
from pipelines.errors import Cancelled, InputError
from pipelines.remote.base import RemoteBackend, RemoteLimits, data_url, decode_image_async
from pipelines.remote.errors import BackendInputError, BackendUnavailable, RemoteError
from pipelines.remote.transport import Transport
from pipelines.request import GenerationRequest, GenerationResult, StepCallback

__all__ = ["FalBackend"]

_UPSCALE_MODEL = "fal-ai/esrgan"
_FACE_FIX_MODEL = "fal-ai/codeformer"
# A progress line in a runner's logs, e.g. tqdm's " 40%|████      | 10/25 [...]" or "step 10/25".
_PROGRESS = re.compile(r"(\d+)\s*/\s*(\d+)")
# Records one job's (step, total); (None, None) when it completed.
_Report = Callable[[int | None, int | None], None]


class FalBackend(RemoteBackend):
    """FAL's queue API for an SDXL-style model (``fal-ai/fast-sdxl`` by default).

    Attributes:
        poll_s: First delay between status polls; each next one is 1.5 times longer, up to ``poll_max_s``.
        poll_max_s: Longest delay between status polls.
    """

    name: ClassVar[str] = "fal"
    default_base_url: ClassVar[str] = "https://queue.fal.run"
    key_env: ClassVar[str] = "LIMNER_FAL_KEY"
    default_model: ClassVar[str | None] = "fal-ai/fast-sdxl"
    # fast-sdxl takes any {width, height} and at most 50 steps (its published schema; the docs give no range).
    # It exposes no scheduler, so the request's is accepted and ignored (schedulers None).
    limits = RemoteLimits(multiple=8, min_size=64, max_size=2048, max_steps=50)
    capabilities = frozenset({Capability.TXT2IMG, Capability.IMG2IMG, Capability.UPSCALE, Capability.FACE_FIX})

    def __init__(
        self,
        transport: Transport,
        *,
        model: str | None = None,
        price_usd: float | None = None,
        poll_s: float = 0.25,
        poll_max_s: float = 2.0,
    ) -> None:
        super().__init__(transport, model=model, price_usd=price_usd)
        self.poll_s = poll_s
        self.poll_max_s = poll_max_s

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        """FAL's ``Authorization: Key <key>`` (``KEY_ID:KEY_SECRET`` keys go in as they are)."""
        return {"Authorization": f"Key {key}"}

    async def generate(
        self, requests: Sequence[GenerationRequest], on_step: StepCallback | None = None
    ) -> GenerationResult:
        """Generates one image per request, one queue job each, all in flight together.

        Progress is the sum over the jobs of ``(step, total)``: a job counts 0 steps while queued, what its logs
        report while running, and its full ``steps`` once completed. If ``on_step`` returns False, every job still
        in flight is cancelled on FAL (``PUT cancel_url``) and :class:`Cancelled` is raised.

        Args:
            requests: The requests.
            on_step: Progress callback; returning False cancels.

        Returns:
            The images, the seeds FAL used, and ``price_usd`` per image.
        """
        self.check_batch(requests)
        start = time.perf_counter()
        progress = _Progress([max(1, request.steps) for request in requests], on_step)
        tasks = [asyncio.ensure_future(self._generate_one(i, r, progress)) for i, r in enumerate(requests)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()  # each job's poll loop cancels itself on FAL (see _run)
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return GenerationResult(
            images=[image for image, _ in results],
            seeds=[seed for _, seed in results],
            timings={"total_s": time.perf_counter() - start},
            batch_size=len(requests),
            costs_usd=[self.cost(None)] * len(requests),
            backend=self.name,
        )

    async def _generate_one(
        self, index: int, request: GenerationRequest, progress: _Progress
    ) -> tuple[Image.Image, int]:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_size": {"width": request.width, "height": request.height},
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "seed": request.seed,
            "num_images": 1,
            "format": "png",
            # limner moderates prompts and images itself (pipelines/moderation.py); FAL's checker would blank them.
            "enable_safety_checker": False,
            "sync_mode": False,
        }
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        path = f"/{self.model}"
        if request.mode == "img2img":
            if request.init_image is None:
                raise InputError("init_image", None, "an image when mode is img2img")
            image = request.init_image.convert("RGB").resize((request.width, request.height))
            body["image_url"] = data_url(image)
            body["strength"] = request.strength
            path += "/image-to-image"
        result = await self._run(path, body, lambda step, total: progress.report(index, step, total))
        images = result.get("images") or []
        if not images or not images[0].get("url"):
            raise BackendUnavailable(self.name, "the result holds no image")
        image = await decode_image_async(await self.transport.download(images[0]["url"]), self.name)
        return image, int(result.get("seed", request.seed))

    async def upscale(self, image: Image.Image, scale: int) -> tuple[Image.Image, float | None]:
        """Upscales ``image`` 2x or 4x with ESRGAN (``fal-ai/esrgan``).

        Args:
            image: The image.
            scale: 2 or 4.

        Returns:
            The upscaled RGB image, and None for the cost (FAL reports none; ``price_usd`` prices generations).
        """
        if scale not in (2, 4):
            raise InputError("scale", scale, f"2 or 4 on backend {self.name}")
        result = await self._run(f"/{_UPSCALE_MODEL}", {"image_url": data_url(image.convert("RGB")), "scale": scale})
        return await self._result_image(result), None

    async def face_fix(self, image: Image.Image) -> tuple[Image.Image, float | None]:
        """Restores faces in ``image`` with CodeFormer (``fal-ai/codeformer``).

        Args:
            image: The image.

        Returns:
            The restored RGB image, and None for the cost (FAL reports none).
        """
        result = await self._run(f"/{_FACE_FIX_MODEL}", {"image_url": data_url(image.convert("RGB"))})
        return await self._result_image(result), None

    async def _result_image(self, result: dict[str, Any]) -> Image.Image:
        url = (result.get("image") or {}).get("url")
        if not url:
            raise BackendUnavailable(self.name, "the result holds no image")
        return await decode_image_async(await self.transport.download(url), self.name)

    async def _run(self, path: str, body: dict[str, Any], report: _Report | None = None) -> dict[str, Any]:
        """Submits ``body`` to the queue at ``path``, polls it to completion and returns its result.

        Args:
            path: The model id with its subpath (``/fal-ai/fast-sdxl/image-to-image``).
            body: The model's input.
            report: Called with ``(step, total)`` on every poll; False cancels the job and raises Cancelled.

        Returns:
            The model's output.
        """
        async with self.transport.slot():
            job = (await self.transport.request("POST", path, json=body)).json()
            for key in ("status_url", "response_url", "cancel_url"):
                if not isinstance(job.get(key), str):
                    raise BackendUnavailable(self.name, f"the queue answered no {key}")
            try:
                await self._wait(job, report)
            except (asyncio.CancelledError, Cancelled):
                # asyncio.shield: the cancel request goes out even while this task is being cancelled.
                await asyncio.shield(self._cancel(job["cancel_url"]))
                raise
            return (await self.transport.request("GET", job["response_url"])).json()

    async def _wait(self, job: dict[str, Any], report: _Report | None) -> None:
        if report is not None:
            report(0, None)  # submitted: the first chance to cancel
        delay = self.poll_s
        while True:
            status = (await self.transport.request("GET", job["status_url"], params={"logs": 1})).json()
            state = status.get("status")
            if state == "COMPLETED":
                if status.get("error"):
                    raise self._completed_error(status)
                if report is not None:
                    report(None, None)
                return
            if report is not None:
                step, total = _log_progress(status.get("logs")) if state == "IN_PROGRESS" else (0, None)
                report(step, total)
            await asyncio.sleep(delay)
            delay = min(self.poll_max_s, delay * 1.5)

    def _completed_error(self, status: dict[str, Any]) -> RemoteError:
        """A job that completed with ``error``: refused input, else a (retryable, unbilled) server failure."""
        message, kind = str(status["error"]), str(status.get("error_type") or "")
        if any(word in kind.lower() for word in ("input", "validation", "unprocessable")):
            return BackendInputError(self.name, message, code=kind or None)
        return BackendUnavailable(self.name, message, code=kind or None)

    async def _cancel(self, cancel_url: str) -> None:
        """Asks FAL to drop the job; best effort, once (a repeated PUT could cancel nothing new)."""
        try:
            await self.transport.request("PUT", cancel_url, retry=False)
        except RemoteError:
            pass


class _Progress:
    """The progress of a batch of jobs, summed into one ``on_step(step, total)``."""

    def __init__(self, totals: list[int], on_step: StepCallback | None) -> None:
        self.totals = totals
        self.steps = [0] * len(totals)
        self.on_step = on_step

    def report(self, index: int, step: int | None, total: int | None) -> None:
        """Records job ``index`` at ``step`` of ``total`` (None, None: completed); raises Cancelled on False."""
        if total is not None:
            self.totals[index] = max(1, total)
        self.steps[index] = self.totals[index] if step is None else min(step, self.totals[index])
        done, total_all = sum(self.steps), sum(self.totals)
        if self.on_step is not None and self.on_step(done, total_all) is False:
            raise Cancelled(done, total_all)


def _log_progress(logs: Any) -> tuple[int, int | None]:
    """``(step, total)`` from the last progress line in a status's logs; ``(0, None)`` when there is none."""
    for entry in reversed(logs or []):
        match = _PROGRESS.search(str(entry.get("message", "")) if isinstance(entry, dict) else "")
        if match and int(match.group(2)) > 0:
            return int(match.group(1)), int(match.group(2))
    return 0, None
