"""GetImg.AI as a limner backend (shared/docs/REMOTE_APIS.md §2.1).

v1 (the default) covers SDXL text-to-image and image-to-image and the two enhancements, upscale and face fix;
each answers ``{"image": <base64>, "seed", "cost"}`` in one round trip. v2 (``v2=True``, the only generation the
official SDKs cover) has one ``/v2/images/generations`` endpoint for any model: it takes no steps, guidance,
seed or scheduler, and answers a signed URL that we download.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from PIL import Image

from pipelines.backend import Capability
from pipelines.errors import InputError
from pipelines.remote.base import RemoteBackend, RemoteLimits, b64, data_url, decode_image_async, run_each
from pipelines.remote.errors import BackendUnavailable
from pipelines.remote.transport import Transport
from pipelines.request import GenerationRequest, GenerationResult, StepCallback

__all__ = ["GetImgBackend"]


# GetImg publishes no scheduler enum; these are the names third-party v1 clients send for each limner sampler.
# It has no Karras variant, so both DPM++ 2M names map to its one "dpmsolver++".
_SCHEDULERS = {
    "euler": "euler",
    "euler_a": "euler_a",
    "ddim": "ddim",
    "dpmpp_2m": "dpmsolver++",
    "dpmpp_2m_karras": "dpmsolver++",
}
_UPSCALE_MODEL = "real-esrgan-4x"
_FACE_FIX_MODEL = "gfpgan-v1-3"


class GetImgBackend(RemoteBackend):
    """GetImg.AI's SDXL (v1) or model-agnostic (v2) image API.

    Attributes:
        v2: True to use ``/v2/images/generations`` instead of the v1 SDXL endpoints.
    """

    name: ClassVar[str] = "getimg"
    default_base_url: ClassVar[str] = "https://api.getimg.ai"
    key_env: ClassVar[str] = "LIMNER_GETIMG_API_KEY"
    default_model: ClassVar[str | None] = "stable-diffusion-xl-v1-0"
    limits = RemoteLimits(
        multiple=64, min_size=256, max_size=2048, max_steps=100, schedulers=tuple(_SCHEDULERS), max_input_side=1024
    )

    def __init__(
        self, transport: Transport, *, model: str | None = None, price_usd: float | None = None, v2: bool = False
    ) -> None:
        super().__init__(transport, model=model, price_usd=price_usd)
        self.v2 = v2
        if v2:
            # v2 takes neither steps nor a scheduler (any value is accepted and ignored), and sizes are only an
            # aspect ratio and a resolution class, so a multiple of 64 is all we ask.
            self.limits = RemoteLimits(multiple=64, min_size=256, max_size=2048, max_steps=None)

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Text- and image-to-image; upscale and face fix with v1 only."""
        if self.v2:
            return frozenset({Capability.TXT2IMG, Capability.IMG2IMG})
        return frozenset({Capability.TXT2IMG, Capability.IMG2IMG, Capability.UPSCALE, Capability.FACE_FIX})

    async def generate(
        self, requests: Sequence[GenerationRequest], on_step: StepCallback | None = None
    ) -> GenerationResult:
        """Generates one image per request, one API call each, run concurrently within the transport's slots.

        Args:
            requests: The requests.
            on_step: Called with ``(done, len(requests))`` before the calls and after each; False cancels.

        Returns:
            The images with the seeds and costs GetImg reported (v2 reports no seed: the request's is recorded).
        """
        self.check_batch(requests)
        start = time.perf_counter()
        one = self._generate_v2 if self.v2 else self._generate_v1
        results = await run_each(requests, one, on_step)
        return GenerationResult(
            images=[image for image, _, _ in results],
            seeds=[seed for _, seed, _ in results],
            timings={"total_s": time.perf_counter() - start},
            batch_size=len(requests),
            costs_usd=[self.cost(cost) for _, _, cost in results],
            backend=self.name,
        )

    async def _generate_v1(self, request: GenerationRequest) -> tuple[Image.Image, int, float | None]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "steps": request.steps,
            "guidance": request.guidance,
            "seed": request.seed,
            "scheduler": _SCHEDULERS[request.scheduler],
            "output_format": "png",
            "response_format": "b64",
        }
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if request.mode == "img2img":
            # image-to-image takes no width/height: the output has the input's size, so send it at the target size.
            body["image"] = b64(_fit(request.init_image, request.width, request.height))
            body["strength"] = request.strength
            path = "/v1/stable-diffusion-xl/image-to-image"
        else:
            body["width"], body["height"] = request.width, request.height
            path = "/v1/stable-diffusion-xl/text-to-image"
        answer = await self._post(path, body)
        image = await self._image(answer)
        return image, int(answer.get("seed", request.seed)), answer.get("cost")

    async def _generate_v2(self, request: GenerationRequest) -> tuple[Image.Image, int, float | None]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "aspect_ratio": _aspect_ratio(request.width, request.height),
            # UNVERIFIED: the SDK types name the field but not its values; "1K"/"2K" by the longer side.
            "resolution": "1K" if max(request.width, request.height) <= 1024 else "2K",
            "output_format": "png",
        }
        if request.mode == "img2img":
            body["images"] = [{"url": data_url(_fit(request.init_image, request.width, request.height))}]
        answer = await self._post("/v2/images/generations", body)
        items = answer.get("data") or []
        if not items or "url" not in items[0]:
            raise BackendUnavailable(self.name, "the API answered no image")
        image = await decode_image_async(await self.transport.download(items[0]["url"]), self.name)
        # v2 takes no seed: the request's is recorded, not honoured.
        return image, request.seed, (answer.get("usage") or {}).get("total_cost")

    async def upscale(self, image: Image.Image, scale: int) -> tuple[Image.Image, float | None]:
        """Upscales ``image`` 2x or 4x with Real-ESRGAN (v1 ``/v1/enhancements/upscale``).

        Args:
            image: At most 1024 pixels per side.
            scale: 2 or 4.

        Returns:
            The upscaled RGB image and its cost.
        """
        if self.v2:
            return await super().upscale(image, scale)
        if scale not in (2, 4):
            raise InputError("scale", scale, f"2 or 4 on backend {self.name}")
        self._check_input(image)
        body = {"image": b64(image), "model": _UPSCALE_MODEL, "scale": scale, "output_format": "png"}
        answer = await self._post("/v1/enhancements/upscale", {**body, "response_format": "b64"})
        return await self._image(answer), self.cost(answer.get("cost"))

    async def face_fix(self, image: Image.Image) -> tuple[Image.Image, float | None]:
        """Restores faces in ``image`` with GFPGAN (v1 ``/v1/enhancements/face-fix``).

        Args:
            image: At most 1024 pixels per side.

        Returns:
            The restored RGB image and its cost.
        """
        if self.v2:
            return await super().face_fix(image)
        self._check_input(image)
        body = {"image": b64(image), "model": _FACE_FIX_MODEL, "output_format": "png", "response_format": "b64"}
        answer = await self._post("/v1/enhancements/face-fix", body)
        return await self._image(answer), self.cost(answer.get("cost"))

    def _check_input(self, image: Image.Image) -> None:
        side = self.limits.max_input_side
        if side is not None and max(image.size) > side:
            raise InputError("image", f"{image.width}x{image.height}", f"at most {side} px per side on backend getimg")

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.transport.slot():
            response = await self.transport.request("POST", path, json=body)
        answer = response.json()
        if not isinstance(answer, dict):
            raise BackendUnavailable(self.name, "the API answered something other than a JSON object")
        return answer

    async def _image(self, answer: dict[str, Any]) -> Image.Image:
        """The image of a v1 answer: inline base64 (``image``), or a ``url`` to download."""
        if "image" in answer:
            return await decode_image_async(_b64decode(answer["image"], self.name), self.name)
        if "url" in answer:
            return await decode_image_async(await self.transport.download(answer["url"]), self.name)
        raise BackendUnavailable(self.name, "the API answered no image")


def _b64decode(text: str, backend: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError) as exc:
        raise BackendUnavailable(backend, "the API answered an image that is not base64") from exc


def _fit(image: Image.Image | None, width: int, height: int) -> Image.Image:
    """``image`` as RGB at ``width`` x ``height`` (the request says the init image is resized to its size)."""
    if image is None:
        raise InputError("init_image", None, "an image when mode is img2img")
    image = image.convert("RGB")
    return image if image.size == (width, height) else image.resize((width, height), Image.Resampling.LANCZOS)


def _aspect_ratio(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"
