"""Runware as a limner backend, over its REST task API (shared/docs/RUNWARE_API.md).

Every call is ``POST https://api.runware.ai/v1`` with a JSON array of tasks, each with its own ``taskUUID``;
a batch of requests is one POST with one ``imageInference`` task each, delivered synchronously as base64 with
its cost (``includeCost``). Errors come as ``{"errors": [{code, message, parameter, taskUUID}]}``, with an error
status or inside a 200 body next to the tasks that did succeed; both are mapped by the error ``code``.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
from PIL import Image

from pipelines.backend import Capability
from pipelines.errors import InputError
from pipelines.remote.base import RemoteBackend, RemoteLimits, data_url, decode_image_async, report_step
from pipelines.remote.errors import (
    BackendAuthError,
    BackendBudgetError,
    BackendInputError,
    BackendUnavailable,
    RemoteError,
)
from pipelines.request import GenerationRequest, GenerationResult, StepCallback

__all__ = ["RunwareBackend"]

# limner sampler names -> Runware's (it takes the A1111-style names, e.g. "DPM++ 2M Karras").
_SCHEDULERS = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "ddim": "DDIM",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
}
_MIN_PROMPT_CHARS = 2
_MAX_UPSCALED_SIDE = 4096


class RunwareBackend(RemoteBackend):
    """Runware's ``imageInference`` (``runware:101@1``, FLUX.1 dev, by default) and ``imageUpscale`` tasks."""

    name: ClassVar[str] = "runware"
    default_base_url: ClassVar[str] = "https://api.runware.ai/v1"
    key_env: ClassVar[str] = "LIMNER_RUNWARE_API_KEY"
    default_model: ClassVar[str | None] = "runware:101@1"
    limits = RemoteLimits(
        multiple=64, min_size=128, max_size=2048, max_steps=100, schedulers=tuple(_SCHEDULERS), max_prompt_chars=3000
    )
    capabilities = frozenset({Capability.TXT2IMG, Capability.IMG2IMG, Capability.UPSCALE})

    def check(self, request: GenerationRequest) -> None:
        """The base checks, plus Runware's shortest prompt (2 characters).

        Args:
            request: The request.
        """
        super().check(request)
        if len(request.prompt) < _MIN_PROMPT_CHARS:
            raise InputError("prompt", request.prompt, f"at least {_MIN_PROMPT_CHARS} characters on backend runware")

    @classmethod
    def classify(cls, response: httpx.Response) -> RemoteError | None:
        """Maps a body's ``errors`` by code: any status when the code says more than it, a 200 with no results.

        A 200 that holds results as well as errors is left alone: retrying it would pay again for the tasks that
        succeeded, so :meth:`generate` reports the failed one instead.
        """
        try:
            body = response.json()
        except ValueError:
            return None
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
            return None
        error = _error(errors[0], response.status_code)
        if response.is_success:
            return None if body.get("data") else error
        # An error status with a code that only says "failed" is left to the status rules (429/5xx retried).
        return None if type(error) is BackendUnavailable else error

    async def generate(
        self, requests: Sequence[GenerationRequest], on_step: StepCallback | None = None
    ) -> GenerationResult:
        """Generates one image per request, all as tasks of one POST.

        Args:
            requests: The requests.
            on_step: Called with (0, 1) before the POST and (1, 1) after it; False cancels.

        Returns:
            The images with the seeds and costs Runware reported.
        """
        self.check_batch(requests)
        start = time.perf_counter()
        tasks = [self._inference_task(request) for request in requests]
        report_step(on_step, 0, 1)
        items = await self._run(tasks)
        images = [await self._image(item) for item in items]
        report_step(on_step, 1, 1)
        return GenerationResult(
            images=images,
            seeds=[int(item.get("seed", task["seed"])) for item, task in zip(items, tasks, strict=True)],
            timings={"total_s": time.perf_counter() - start},
            batch_size=len(requests),
            costs_usd=[self.cost(item.get("cost")) for item in items],
            backend=self.name,
        )

    def _inference_task(self, request: GenerationRequest) -> dict[str, Any]:
        task: dict[str, Any] = {
            "taskType": "imageInference",
            "taskUUID": str(uuid.uuid4()),
            "positivePrompt": request.prompt,
            "model": self.model,
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "CFGScale": request.guidance,
            # Runware seeds start at 1: limner's seed 0 becomes 1 (the result records the seed used).
            "seed": request.seed or 1,
            "scheduler": _SCHEDULERS[request.scheduler],
            "numberResults": 1,
            "outputType": "base64Data",
            "outputFormat": "PNG",
            "includeCost": True,
            "deliveryMethod": "sync",
        }
        if len(request.negative_prompt) >= _MIN_PROMPT_CHARS:  # shorter ones are refused, and mean nothing
            task["negativePrompt"] = request.negative_prompt
        if request.mode == "img2img":
            if request.init_image is None:
                raise InputError("init_image", None, "an image when mode is img2img")
            image = request.init_image.convert("RGB").resize((request.width, request.height))
            task["seedImage"] = data_url(image)
            task["strength"] = request.strength
        return task

    async def upscale(self, image: Image.Image, scale: int) -> tuple[Image.Image, float | None]:
        """Upscales ``image`` 2x or 4x (``imageUpscale``; the output is capped at 4096 px per side).

        Args:
            image: The image.
            scale: 2 or 4.

        Returns:
            The upscaled RGB image and the cost Runware reported.
        """
        if scale not in (2, 4):
            raise InputError("scale", scale, "2 or 4 on backend runware")
        if max(image.size) * scale > _MAX_UPSCALED_SIDE:
            shown = f"{image.width}x{image.height}"
            raise InputError("scale", scale, f"an output of at most {_MAX_UPSCALED_SIDE} px per side ({shown})")
        task = {
            "taskType": "imageUpscale",
            "taskUUID": str(uuid.uuid4()),
            "inputImage": data_url(image.convert("RGB")),
            "upscaleFactor": scale,
            "outputType": "base64Data",
            "outputFormat": "PNG",
            "includeCost": True,
        }
        (item,) = await self._run([task])
        return await self._image(item), self.cost(item.get("cost"))

    async def _run(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POSTs ``tasks`` and returns their results, in task order (matched by ``taskUUID``)."""
        async with self.transport.slot():
            response = await self.transport.request("POST", "", json=tasks)
        body = response.json()
        if not isinstance(body, dict):
            raise BackendUnavailable(self.name, "the API answered something other than a JSON object")
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            raise _error(errors[0], response.status_code)
        by_task = {item.get("taskUUID"): item for item in body.get("data") or [] if isinstance(item, dict)}
        missing = [task["taskUUID"] for task in tasks if task["taskUUID"] not in by_task]
        if missing:
            raise BackendUnavailable(self.name, f"no result for task {missing[0]}")
        return [by_task[task["taskUUID"]] for task in tasks]

    async def _image(self, item: dict[str, Any]) -> Image.Image:
        """A result's image, from whichever output field it carries."""
        if item.get("imageBase64Data"):
            try:
                data = base64.b64decode(item["imageBase64Data"], validate=True)
            except binascii.Error as exc:
                raise BackendUnavailable(self.name, "the API answered an image that is not base64") from exc
            return await decode_image_async(data, self.name)
        url = item.get("imageDataURI") or item.get("imageURL")
        if not url:
            raise BackendUnavailable(self.name, f"task {item.get('taskUUID')} answered no image")
        return await decode_image_async(await self.transport.download(url), self.name)


def _error(error: dict[str, Any], status: int) -> RemoteError:
    """The error one ``errors`` item means, by its code (as Runware's own SDK classifies them)."""
    code = str(error.get("code") or "")
    message = f"HTTP {status}: {error.get('message') or code or 'task failed'}"
    param = error.get("parameter")
    fields: dict[str, Any] = {"status": status, "code": code or None, "param": None if param is None else str(param)}
    lowered = code.lower()
    if code == "invalidApiKey":
        return BackendAuthError(RunwareBackend.name, message, **fields)
    if any(word in lowered for word in ("credit", "quota", "balance")):
        return BackendBudgetError(RunwareBackend.name, message, **fields)
    if code.startswith(("invalid", "missing", "unsupported")):
        return BackendInputError(RunwareBackend.name, message, **fields)
    return BackendUnavailable(RunwareBackend.name, message, **fields)
